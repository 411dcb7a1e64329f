"""Stage: what grading produced, as CSV files and a table.

reports/<assignment>/grades.csv: a row per student, a column per graded cell, the total.
reports/<assignment>/checks.csv: a row per student and hidden check: passed, points, hint.
Scores come from nbgrader's gradebook; the checks from the autograded notebooks,
where HiddenChecks left them in each test cell's metadata.

FeedbackExporter is the HTML exporter of nbgrader's generate_feedback (course_config.py).
"""
from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from traitlets import default

from .clean import LIMIT_NOTE, Remembered
from .course import CourseError, repairs_made


def read_gradebook(db_url: str, assignment: str, notebook: str, students: list[str]) -> dict[str, dict[str, float | None]]:
    """student -> {grade cell: score (None while it awaits manual grading)} for graded submissions."""
    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(db_url) as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission_notebook(notebook, assignment, student)
            except MissingEntry:
                continue
            scores[student] = {g.name: (None if g.needs_manual_grade else g.score) for g in submission.grades}
    return scores


def grade_columns(db_url: str, assignment: str, notebook: str, order: list[str]) -> list[tuple[str, float]]:
    """(grade cell, max points), in the order of `order` (the notebook's)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gradebook:
        try:
            cells = {c.name: c.max_score for c in gradebook.find_notebook(notebook, assignment).grade_cells}
        except MissingEntry:
            raise CourseError(f"{assignment} is not in the gradebook yet: grade it first (coursekit grade {assignment})") from None
    return [(name, cells[name]) for name in order if name in cells] + [(n, p) for n, p in cells.items() if n not in order]


def read_checks(autograded: Path) -> tuple[list[dict], list[dict]]:
    """The outcome of every hidden check in an autograded notebook, and notes for staff: what the guard
    withheld from it, and the limits it reached."""
    if not autograded.exists():
        return [], []
    rows = []
    # plain JSON: nbgrader wrote and validated this notebook; validating it again costs more than the rest
    notebook = json.loads(autograded.read_text(encoding="utf-8"))
    notes = list(notebook.get("metadata", {}).get("coursekit", {}).get("withheld", []))
    for index, cell in enumerate(notebook["cells"]):
        rows.extend(cell.get("metadata", {}).get("coursekit", {}).get("checks", []))
        where = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"
        notes += [{"cell": where, "limit": o["metadata"][LIMIT_NOTE]} for o in cell.get("outputs", [])
                  if LIMIT_NOTE in o.get("metadata", {})]
    return rows, notes


OUTCOMES_FILE = "outcomes.json"  # in reports/<assignment>/: what `coursekit grade` last said of each submission


@dataclass
class RecordedOutcome:
    """What the reports say of a submission: graded or not, and why not, or what was repaired to grade it."""
    student: str
    graded: bool
    message: str = ""
    note: str = ""


def read_recorded(folder: Path) -> dict[str, dict]:
    try:
        return json.loads((folder / OUTCOMES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_outcomes(folder: Path, outcomes: list) -> None:
    """Keep what this run said of each submission it saw, beside what earlier runs said of the others."""
    folder.mkdir(parents=True, exist_ok=True)
    recorded = read_recorded(folder)
    for outcome in outcomes:
        recorded[outcome.student] = {"graded": outcome.graded, "message": outcome.message, "note": outcome.note, "at": time.time()}
    partial = folder / (OUTCOMES_FILE + ".partial")
    partial.write_text(json.dumps(recorded, indent=1), encoding="utf-8")
    os.replace(partial, folder / OUTCOMES_FILE)


def gradebook_students(db_url: str, assignment: str) -> tuple[set[str], dict[str, str]]:
    """The students with a submission of this assignment in the gradebook; and every student's name, where it holds one."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gradebook:
        try:
            submitted = {s.student.id for s in gradebook.find_assignment(assignment).submissions}
        except MissingEntry:
            submitted = set()
        names = {s.id: " ".join(n for n in (s.first_name, s.last_name) if n) for s in gradebook.students}
    return submitted, {student: name for student, name in names.items() if name}


def gather_outcomes(root: Path, assignment: str, notebook: str, db_url: str) -> list[RecordedOutcome]:
    """Every submission of the assignment, as the gradebook has it now.

    A student is graded when the gradebook holds their submission and its autograded notebook
    exists; that includes those graded by nbgrader's own autograde or formgrader since the last
    `coursekit grade`. A submission the last run could not grade stays "not graded", with its
    reason, until something grades it after that run.
    """
    folder = root / "reports" / assignment
    recorded = read_recorded(folder)
    in_gradebook, _ = gradebook_students(db_url, assignment)
    submitted = {p.parent.name for p in (root / "submitted").glob(f"*/{assignment}") if p.is_dir()}
    outcomes = []
    for student in sorted(in_gradebook | submitted | set(recorded)):
        autograded = root / "autograded" / student / assignment / f"{notebook}.ipynb"
        last = recorded.get(student)
        graded_since = autograded.exists() and (last is None or autograded.stat().st_mtime > last["at"])
        if last and not last["graded"] and not graded_since:
            outcomes.append(RecordedOutcome(student, False, last["message"]))
        elif student in in_gradebook and autograded.exists():
            message = last["message"] if last and last["graded"] and not graded_since else ""
            outcomes.append(RecordedOutcome(student, True, message, repairs_made(root, assignment, student)))
        else:
            outcomes.append(RecordedOutcome(student, False, f"not graded yet: run coursekit grade {assignment}"))
    return outcomes


def write_reports(root: Path, assignment: str, notebook: str, db_url: str, outcomes: list) -> dict:
    """Write grades.csv and checks.csv for these outcomes; return the rows of the table."""
    folder = root / "reports" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    source = nbformat.read(root / "source" / assignment / f"{notebook}.ipynb", as_version=4)
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in source.cells]
    columns = grade_columns(db_url, assignment, notebook, order)
    scores = read_gradebook(db_url, assignment, notebook, [o.student for o in outcomes])
    table = []
    with open(folder / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", *[name for name, _ in columns], "total", "max_total", "message"])
        max_total = sum(points for _, points in columns)
        for outcome in outcomes:
            cells = scores.get(outcome.student, {}) if outcome.graded else {}
            values = [cells.get(name) for name, _ in columns]
            total = sum(v for v in values if v is not None) if outcome.graded else 0.0
            status = "graded" if outcome.graded else "not graded"
            if outcome.graded and any(v is None for v in values):
                status = "graded (manual part pending)"
            message = "; ".join(m for m in (outcome.message, getattr(outcome, "note", "")) if m)  # why not graded; what was repaired
            writer.writerow([outcome.student, status, *["" if v is None else f"{v:g}" for v in values], f"{total:g}", f"{max_total:g}", message])
            table.append({"student": outcome.student, "status": status, "scores": dict(zip([n for n, _ in columns], values)), "total": total, "max_total": max_total, "message": message})
    with open(folder / "checks.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "step", "check", "description", "passed", "points", "hint", "withheld"])
        notes = []
        for outcome in outcomes:
            checks, held = read_checks(root / "autograded" / outcome.student / assignment / f"{notebook}.ipynb") if outcome.graded else ([], [])
            notes += [{"student": outcome.student, **entry} for entry in held]
            for check in checks:
                earned = check["points"] if check["passed"] else 0
                writer.writerow([outcome.student, check["step"], check["check"], check["description"], check["passed"], f"{earned:g}",
                                 check["hint"], check.get("withheld", "")])
    return {"columns": columns, "rows": table, "folder": folder, "notes": notes}


def format_notes(report: dict) -> str:
    """For staff: each line of grading output withheld from a student because it quoted the grader's code,
    and each limit a notebook reached."""
    lines = []
    for e in report["notes"]:
        if "limit" in e:
            lines.append(f"NOTE: {e['student']}: in {e['cell']}, {e['limit'].removeprefix('[the grader: your ').rstrip(']')}")
        else:
            lines.append(f"WARNING: {e['student']}: a line in {e['cell']}{' (' + e['check'] + ')' if e['check'] else ''} quoted "
                         f"{e['file']}; it was withheld from the student's notebook and feedback")
    return "\n".join(lines)


def format_table(report: dict) -> str:
    """A plain-text table: one row per student, one column per graded cell."""
    names = [name.removeprefix("test_") for name, _ in report["columns"]]
    header = ["student", *names, "total"]
    lines = [header]
    for row in report["rows"]:
        values = ["-" if v is None else f"{v:g}" for v in row["scores"].values()] if row["status"] != "not graded" else [""] * len(names)
        lines.append([row["student"], *values, f"{row['total']:g}/{row['max_total']:g}"])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    for row in report["rows"]:
        if row["message"]:
            text.append(f"{row['student']}: {row['message']}")
    if any(v is None for row in report["rows"] for v in row["scores"].values()):
        text.append("- : awaits manual grading (nbgrader formgrader)")
    return "\n".join(text)


class TemplateBytecode(jinja2.BytecodeCache):
    """Compiled templates kept in memory, so that each feedback page does not compile them again."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])  # jinja checks it against the source's checksum

    def dump_bytecode(self, bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = TemplateBytecode()
HIGHLIGHTED = Remembered()


class RememberedHighlight2HTML(Highlight2HTML):
    """nbconvert's code highlighting, each distinct cell once per process: most code on a class's feedback pages is
    the same for every student. Keyed by everything that _pygments_highlight reads (of the cell's metadata, only
    magics_language)."""

    def __call__(self, source, language=None, metadata=None):
        key = (source, language or self.pygments_lexer, (metadata or {}).get("magics_language"),
               repr(sorted(self.extra_formatter_options.items())))
        return HIGHLIGHTED.get(key, lambda: super(RememberedHighlight2HTML, self).__call__(source, language, metadata))


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTMLExporter, for nbgrader's generate_feedback, with three costs removed.

    nbgrader makes a new exporter for each student, which compiles the templates
    again; here they are compiled once per process. Each distinct code cell is
    highlighted once per process (RememberedHighlight2HTML). And the accessibility pass
    parses the whole page with BeautifulSoup (0.4 s of the 0.7 s a page takes) to
    add alt text to images and tabindex to lab-template cells; nbgrader's feedback
    template has neither unless an output holds an image, and then it still runs.
    A page goes to a student and may be opened by staff, so it is sanitized
    (sanitize_html) even where the course's configuration does not say so.
    """

    @default("sanitize_html")
    def _sanitize_html_default(self):
        return True

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = COMPILED_TEMPLATES
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        # the same filters HTMLExporter.from_notebook_node registers before rendering
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name", None))
        self.register_filter("highlight_code", self.filters.get("highlight_code", RememberedHighlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        if "<img" in html or "jp-Cell-inputWrapper" in html or "jp-OutputArea-output" in html:
            return super().from_notebook_node(nb, resources, **kw)
        return html, resources


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


NOT_ATTEMPTED = "not attempted yet"  # the start of the hint every check of an untouched step gets


def failed_checks(checks: list[dict]) -> tuple[list[dict], Counter]:
    """The hidden checks failed by a mistake, most often first, with their most common hint;
    and, apart, how many students left each step untouched (every check of it fails alike)."""
    students, hints, untouched = {}, {}, set()
    for row in checks:
        if row["passed"] != "False":
            continue
        if row["hint"].startswith(NOT_ATTEMPTED):
            untouched.add((row["student"], row["step"]))
            continue
        key = (row["step"], row["check"], row["description"])
        students.setdefault(key, set()).add(row["student"])
        hints.setdefault(key, Counter())[row["hint"]] += 1
    ranked = []
    for key in sorted(students, key=lambda k: (-len(students[k]), k)):
        hint, times = hints[key].most_common(1)[0]
        ranked.append({"step": key[0], "check": key[1], "description": key[2], "students": len(students[key]),
                       "hint": hint, "hint_students": times})
    return ranked, Counter(step for _, step in untouched)


def format_check_summary(checks_csv: Path, submissions: int, top: int = 5) -> str:
    """For staff: the hidden checks failed most often by a mistake, with their most common hints.

    A step not attempted yet fails every check of its step with the same hint; that says
    nothing about which mistakes students make, so it is counted on a line of its own.
    """
    ranked, untouched = failed_checks(read_csv_rows(checks_csv))
    lines = [f"\nHidden checks failed most often (of {submissions} submissions):" if ranked else "\nNo hidden check failed by a mistake."]
    for entry in ranked[:top]:
        lines.append(f"  {entry['students']:>4}  {entry['step']}: {entry['description']}")
        lines.append(f"        most common hint ({entry['hint_students']}x): {entry['hint']}")
    if untouched:
        lines.append(f"Steps not attempted: {', '.join(f'{step} ({n}x)' for step, n in untouched.most_common())}")
    return "\n".join(lines)
