"""Stage: the last guard before anything of grading is written for a student.

`WithholdGraderText` runs in nbgrader's autograde pipeline after HiddenChecks, so
the autograded notebook, and the feedback page made from it, never show a line of
the assignment's probes, hidden checks or solution that the student did not write.
The kit writes its hints for students, but a framework's error text can quote the
code it was running (nbclient's timeout message previews the cell it ran, which
was a probe); this guard is what holds if a hint ever does.
"""
from __future__ import annotations

import re
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from .course import grading_files
from .grader_text import grading_code, notebook_lines

WITHHELD_LINE = "[a line the grader wrote here was withheld: it showed part of the grader's own code]"
HINT_LINE = re.compile(r"^\s*hint: ")
WITHHELD_HINT = "(this hint was withheld: it showed part of the grader's own code; your teacher has been told)"


_protected_cache: dict[tuple, dict[str, Path]] = {}


def protected_text(checks_dir: Path, source_notebook: Path) -> dict[str, Path]:
    """Each line a student must not be shown, with the file it comes from; read once per version of the files.

    Lines the students are given (the notebook outside its solution regions) are not secret, and
    neither is what the hidden checks' authors wrote into their hints ("call p.grad.zero_()").
    """
    files = grading_files(checks_dir, "*.py") + [source_notebook]
    key = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.exists())
    if key not in _protected_cache:
        _protected_cache[key] = _read_protected_text(checks_dir, source_notebook)
    return _protected_cache[key]


def _read_protected_text(checks_dir: Path, source_notebook: Path) -> dict[str, Path]:
    code, hints = grading_code(checks_dir) if checks_dir.is_dir() else ({}, "")
    lines = dict(code)
    if source_notebook.exists():
        solution, given = notebook_lines(source_notebook)
        lines.update({line: source_notebook for line in solution if line not in lines})
        for line in given:
            lines.pop(line, None)
    return {line: path for line, path in lines.items() if line not in hints}


def students_own_text(nb) -> str:
    """What the student wrote: the cells nbgrader does not restore from source/ (answers and cells of their own)."""
    own = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
            continue
        own.append(cell.source)
    return "\n".join(own)


class WithholdGraderText(NbGraderPreprocessor):
    """Withhold every line of grading output that quotes the grader's code or the solution.

    Every text of every output (hints, check summaries, error texts) is searched for a line
    of tests/hidden/<assignment>/*.py or of the source notebook's solution regions, unless
    the student's own cells hold that line too. Such a line is replaced by a neutral note; a
    check's hint by another. Each is recorded for staff: in the check's row of checks.csv
    ("withheld", naming the file) and in the notebook's metadata["coursekit"]["withheld"].
    """

    checks_root = Unicode("tests/hidden", help="Folder holding <assignment>/probes.py and the hidden checks.").tag(config=True)
    source_directory = Unicode("source", help="Folder holding <assignment>/<notebook>.ipynb, the reference solution.").tag(config=True)
    checks_label = Unicode("", help="The hidden checks' folder as staff know it, named in what is withheld; empty: checks_root "
                           "(a worker grading in a scratch copy of the course reads the checks from elsewhere)").tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        notebook = resources["nbgrader"]["notebook"]
        own = students_own_text(nb)
        secret = {line: path for line, path in protected_text(Path(self.checks_root) / assignment,
                                                               Path(self.source_directory) / assignment / f"{notebook}.ipynb").items()
                  if line not in own}
        root = Path(CourseDirectory(parent=self).root)
        withheld = []

        def quoted(text: str) -> Path | None:
            return next((path for line, path in secret.items() if line in text), None)

        def record(cell, check: str, path: Path) -> str:
            checks = Path(self.checks_root)
            if self.checks_label and path.is_relative_to(checks):
                label = str(Path(self.checks_label) / path.relative_to(checks))
            else:
                label = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            where = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {nb.cells.index(cell) + 1}"
            if not check and any(e["cell"] == where and e["file"] == label for e in withheld):
                return label  # the summary line of a hint withheld from its check's row just before
            withheld.append({"cell": where, "check": check, "file": label})
            self.log.warning("%s: withheld a line of grading output in %s%s that quoted %s", resources["nbgrader"].get("student", ""),
                             where, f" ({check})" if check else "", label)
            return label

        for cell in nb.cells:
            for check in cell.metadata.get("coursekit", {}).get("checks", []):
                path = quoted(check.get("hint", ""))
                if path:
                    check["withheld"] = record(cell, check["check"], path)
                    check["hint"] = WITHHELD_HINT
            for output in cell.get("outputs", []):
                self.withhold_in_output(output, quoted, lambda path, cell=cell: record(cell, "", path))
        if withheld:
            nb.metadata.setdefault("coursekit", {})["withheld"] = withheld
        return nb, resources

    @staticmethod
    def withhold_in_output(output, quoted, record) -> None:
        """Replace, in every text an output holds, each line that quotes the grader."""

        def clean(text: str) -> str:
            if not quoted(text):  # one pass over the whole text: most outputs quote nothing
                return text
            lines = text.splitlines(keepends=True)
            for i, line in enumerate(lines):
                path = quoted(line)
                if path:
                    record(path)
                    hint = HINT_LINE.match(line)  # a hint in HiddenChecks' summary reads as the check's row does
                    lines[i] = (hint.group(0) + WITHHELD_HINT if hint else WITHHELD_LINE) + ("\n" if line.endswith("\n") else "")
            return "".join(lines)

        if output.get("output_type") == "stream":
            output["text"] = clean(output.get("text", ""))
        elif output.get("output_type") == "error":
            output["evalue"] = clean(output.get("evalue", ""))
            output["traceback"] = [clean(line) for line in output.get("traceback", [])]
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") and isinstance(value, str):
                output["data"][mime] = clean(value)
            elif mime.startswith("text/") and isinstance(value, list):
                output["data"][mime] = clean("".join(value))
