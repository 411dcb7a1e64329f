"""Which students handed in the same work: a similarity report that discounts the book's code.

`coursekit similarity ASSIGNMENT` (and `write_similarity`, for the end of `coursekit grade`) reads
submitted/<student>/<assignment>/<notebook>.ipynb and writes reports/<assignment>/similarity.csv and
similarity.html. Nothing leaves the machine, and the report shows no student code beyond the lines that match.

How a pair is scored:
- Only answer cells count: code cells whose nbgrader metadata says `solution: true`, and the written
  answers (markdown answer cells), since a copied explanation is as much a copy as copied code. A notebook
  whose grading marks are all gone is compared on every cell (boilerplate removes what the release gave).
- Each answer cell is fingerprinted on its own by copydetect: its tokens (identifiers become V, comments
  and whitespace go, so renaming and reformatting change nothing), hashed in k-grams; its winnowing window
  is 1 (its default), which keeps every k-gram rather than MOSS's sample of them. Cells are
  fingerprinted one by one so that no k-gram spans two cells; a student's fingerprints are then one set,
  so the order of functions, or the cell they were moved to, hides nothing either.
- Boilerplate: every k-gram (not only the winnowed ones, which depend on their neighbours) of the release,
  of the source notebook with its solutions, and of each equivalent rewrite among the assignment's samples
  (tests/hidden/<assignment>/samples.py: SAMPLES, mistake=False). A fingerprint found there never counts.
- A shared fingerprint weighs by how rare it is in the class: 1/(n-1) when n students hold it, so 1 when
  only the pair has it and 1/19 when twenty do (rarity_weight).
- score = the weighted fingerprints a pair shares / the weighted fingerprints of the one who wrote less of
  their own (but at least Similarity.min_evidence): 1.0 when everything one student wrote beyond the book
  is in the other's notebook, and that was enough to tell. Little own work caps the score, since two
  students who add one identical line to the book's code are no evidence of anything.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from copydetect.utils import filter_code, get_copied_slices, get_document_fingerprints, hashed_kgrams
from traitlets import Float, Integer
from traitlets.config import Configurable

from .course import CourseError, load_config, source_notebooks
from .samples import answers, apply_edits, load_samples, solution_code

# k: a match shorter than 15 characters of filtered text (about 8 tokens) is noise. copydetect's default of 25
# let a reordering hide a copied line: every k-gram that reached into the next line changed with it
NOISE_THRESHOLD = 15
WINDOW = 1  # winnowing window: 1 keeps every k-gram (copydetect's default), so no short match is missed
CSV_COLUMNS = ["student_a", "student_b", "score", "steps", "shared_lines"]


class Similarity(Configurable):
    """The similarity report's settings (course_config.py: c.Similarity.threshold = …)."""

    threshold = Float(0.5, min=0.0, max=1.0, help=(
        "Pairs scoring at least this are listed in similarity.csv and shown side by side. A score is the share "
        "of the code one student wrote beyond the book's (weighted by how rare it is in the class) that the "
        "other's notebook also holds: 1.0 is everything. A high score is a reason to look, not a verdict.")).tag(config=True)
    min_evidence = Integer(100, min=1, help=(
        "The least amount of own work, in fingerprints (about one per character of code once names are V and "
        "whitespace is gone: some three lines), that can score 1.0; a pair sharing less scores in proportion. "
        "So two students sharing one odd line (a typo, a common slip) are not flagged.")).tag(config=True)


class NotebookUnreadable(Exception):
    """A submission that cannot be compared; the message says why."""


@dataclass
class AnswerCell:
    step: str  # the grade id, or "cell N" when the grading marks are gone
    source: str
    fingerprint: CellFingerprint


@dataclass
class StudentAnswers:
    student: str
    cells: list[AnswerCell]
    hashes: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # unique, sorted


@dataclass
class MatchedLines:
    step: str
    lines: list[tuple[int, str]]  # (line number in the cell, 1-based; the line), only lines that match


@dataclass
class FlaggedPair:
    student_a: str
    student_b: str
    score: float
    steps: list[str]
    lines_a: list[MatchedLines]
    lines_b: list[MatchedLines]

    @property
    def shared_lines(self) -> int:
        """Lines of student_a's answers that match (the count staff can expect to read)."""
        return sum(len(m.lines) for m in self.lines_a)


@dataclass
class SimilarityResult:
    assignment: str
    threshold: float
    compared: list[str]
    not_compared: dict[str, str]  # student -> why
    pair_scores: np.ndarray  # every pair's score, for the distribution
    flagged: list[FlaggedPair]  # highest first
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # boilerplate that could not be built, said once


# ---- reading notebooks ------------------------------------------------------------------------------------

def cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def read_notebook_cells(path: Path) -> list[dict]:
    """The cells of a notebook file, or NotebookUnreadable naming the file and the problem."""
    if not path.exists():
        found = sorted(p.name for p in path.parent.glob("*.ipynb"))
        raise NotebookUnreadable(f"{path.name} is missing" + (f" (found {', '.join(found)}: was it renamed?)" if found else ""))
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotebookUnreadable(f"{path.name} is not a notebook (not JSON: {exc})") from exc
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list) or not cells:
        raise NotebookUnreadable(f"{path.name} has no cells")
    return [c for c in cells if isinstance(c, dict)]


def answer_cells(cells: list[dict]) -> list[tuple[str, str, str]]:
    """(step, cell type, source) of each answer cell; every code and markdown cell when no cell is marked."""
    marked = [(c.get("metadata", {}).get("nbgrader", {}).get("grade_id", f"cell {n}"), c.get("cell_type"), cell_text(c))
              for n, c in enumerate(cells, 1)
              if isinstance(c.get("metadata", {}).get("nbgrader"), dict) and c["metadata"]["nbgrader"].get("solution")]
    if marked:
        return [m for m in marked if m[1] in ("code", "markdown")]
    return [(f"cell {n}", c.get("cell_type"), cell_text(c)) for n, c in enumerate(cells, 1) if c.get("cell_type") in ("code", "markdown")]


@dataclass
class CellFingerprint:
    """What copydetect makes of one cell, less the boilerplate."""
    hashes: set  # the fingerprints (k-gram hashes) left once boilerplate is taken out
    hash_idx: dict  # fingerprint -> where it starts in the filtered text
    offsets: np.ndarray  # copydetect's map from the filtered text back to the student's (empty for a written answer)


def filter_cell(cell_type: str, source: str) -> tuple[str, np.ndarray]:
    """copydetect's filtered text of a cell: code as Python tokens (names become V, comments and whitespace go), a
    written answer as lower-case text (lower() keeps every character where it was, so matches map back)."""
    if cell_type == "code":
        return filter_code(source, "answer.py", "python")
    return source.lower(), np.array([])


def fingerprint(filtered: str, offsets: np.ndarray, boilerplate: set) -> CellFingerprint:
    hashes, hash_idx = get_document_fingerprints(filtered, NOISE_THRESHOLD, WINDOW)
    # boilerplate taken out here, not by copydetect: its np.intersect1d(assume_unique=True) takes a k-gram
    # that a cell repeats for one of the boilerplate's, since with a window of 1 the hashes keep duplicates
    kept = {h for h in hashes if h not in boilerplate}
    return CellFingerprint(kept, {h: hash_idx[h] for h in kept}, offsets)


def all_kgrams(source: str, cell_type: str) -> np.ndarray:
    text = filter_code(source, "boilerplate.py", "python")[0] if cell_type == "code" else source.lower()
    return hashed_kgrams(text, NOISE_THRESHOLD)


def boilerplate_hashes(root: Path, assignment: str) -> tuple[set, list[str]]:
    """Every k-gram of the release, the source solution and the equivalent samples; and what was left out."""
    source = source_notebooks(root, assignment)[0]
    release = root / "release" / assignment / source.name
    documents, notes = [], []
    for notebook, strip in ((source, True), (release, False)):
        try:
            for cell in read_notebook_cells(notebook):
                if cell.get("cell_type") in ("code", "markdown"):
                    documents.append((solution_code(cell_text(cell)) if strip else cell_text(cell), cell["cell_type"]))
        except NotebookUnreadable as exc:
            notes.append(f"boilerplate without {notebook.relative_to(root)}: {exc}")
    solutions = answers(source)
    try:
        course_samples = load_samples(root, assignment)
    except CourseError as exc:  # a broken samples.py costs the report its equivalents, not the report itself
        course_samples = None
        notes.append(f"boilerplate without the equivalent samples: {exc}")
    for sample in course_samples.samples if course_samples else []:
        if sample.mistake or sample.step not in solutions:
            continue
        try:
            documents.append((apply_edits(solutions[sample.step], sample), "code"))
        except ValueError as exc:  # the notebook changed under the sample: the sample no longer applies
            notes.append(f"boilerplate without the equivalent sample {sample.name}: {exc}")
    return {int(h) for text, kind in documents for h in all_kgrams(text, kind)}, notes


def read_class(root: Path, assignment: str, boilerplate: set) -> tuple[list[StudentAnswers], dict[str, str]]:
    notebook = source_notebooks(root, assignment)[0].name
    submitted = root / "submitted"
    folders = sorted(p for p in submitted.glob(f"*/{assignment}") if p.is_dir()) if submitted.is_dir() else []
    answers_of, not_compared = {}, {}
    for folder in folders:
        student = folder.parent.name
        try:
            answers_of[student] = answer_cells(read_notebook_cells(folder / notebook))
        except NotebookUnreadable as exc:
            not_compared[student] = str(exc)
        except Exception as exc:  # one odd notebook never stops the others; its reason is reported
            not_compared[student] = f"{notebook} could not be read: {type(exc).__name__}: {exc}"
    # a cell many students left as it is (a stub, the book's line) is lexed and fingerprinted once. Lexing
    # (pygments) is most of the work, about 4 CPU seconds for 500 notebooks of 2,000 characters; sharing it
    # out to processes saved a second on an idle machine and cost seconds on a busy one, so it is not done
    distinct = dict.fromkeys((kind, text) for cells in answers_of.values() for _, kind, text in cells)
    fingerprints = {cell: fingerprint(*filter_cell(*cell), boilerplate) for cell in distinct}
    students = []
    for student, cells in answers_of.items():
        answer = [AnswerCell(step, text, fingerprints[kind, text]) for step, kind, text in cells]
        found = [np.fromiter(c.fingerprint.hashes, dtype=np.int64, count=len(c.fingerprint.hashes)) for c in answer]
        students.append(StudentAnswers(student, answer, np.unique(np.concatenate(found)) if found else np.array([], dtype=np.int64)))
    return students, not_compared


# ---- scoring ----------------------------------------------------------------------------------------------

def rarity_weight(holders: np.ndarray) -> np.ndarray:
    """1/(n-1) for a fingerprint n students hold (1 for one only they have, or only a pair has).

    When n students hold the same fingerprint, each of them could have it from any of the n-1 others (or
    all from a common source), so the evidence it gives a pair is spread over them: shared by 2 weighs 1,
    by 20 weighs 1/19, and a fingerprint the whole class holds weighs next to nothing."""
    return 1.0 / np.maximum(holders - 1, 1)


def score_pairs(students: list[StudentAnswers], min_evidence: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, a, b): the score of every pair of students a < b (indices into `students`)."""
    from scipy import sparse

    n = len(students)
    if n < 2:
        return np.array([]), np.array([], dtype=int), np.array([], dtype=int)
    owners = np.repeat(np.arange(n), [len(s.hashes) for s in students])
    every = np.concatenate([s.hashes for s in students])
    _, fingerprint_ids, holders = np.unique(every, return_inverse=True, return_counts=True)
    weights = rarity_weight(holders)
    own_work = np.bincount(owners, weights=weights[fingerprint_ids], minlength=n)
    # only fingerprints that two or more hold can be shared: a sparse students x fingerprints matrix of them
    shared = holders[fingerprint_ids] >= 2
    columns = np.unique(fingerprint_ids[shared], return_inverse=True)
    held = sparse.csr_matrix((np.ones(shared.sum()), (owners[shared], columns[1])), shape=(n, len(columns[0])))
    in_common = (held.multiply(weights[columns[0]]).tocsr() @ held.T).toarray()
    a, b = np.triu_indices(n, k=1)
    scale = np.maximum(np.minimum(own_work[a], own_work[b]), min_evidence)
    return np.clip(in_common[a, b] / scale, 0.0, 1.0), a, b


# ---- matching lines of a flagged pair ---------------------------------------------------------------------

def matched_lines(cells: list[AnswerCell], other: set) -> list[MatchedLines]:
    """The lines of these cells that hold a fingerprint of the other student (no other line of theirs)."""
    matched = []
    for cell in cells:
        fp = cell.fingerprint
        common = fp.hashes & other
        if not common:
            continue
        starts = np.concatenate([np.array(fp.hash_idx[h]) for h in common])
        slices = get_copied_slices(starts, NOISE_THRESHOLD).astype(np.int64)
        if len(fp.offsets) > 0:  # from positions in the filtered tokens back to the student's text, as copydetect does
            slices += fp.offsets[:, 1][np.clip(np.searchsorted(fp.offsets[:, 0], slices), 0, fp.offsets.shape[0] - 1)]
        covered = np.zeros(len(cell.source) + 1, dtype=bool)
        for start, end in zip(*slices):
            covered[max(int(start), 0):max(int(end), 0)] = True
        # a line is shown when the match covers most of it: a k-gram that only reaches into a line's first
        # tokens does not put the rest of the student's line into the report
        kept, position = [], 0
        for number, line in enumerate(cell.source.splitlines(keepends=True), 1):
            visible = [i for i, ch in enumerate(line, position) if not ch.isspace()]
            if visible and covered[visible].mean() >= 0.5:
                kept.append((number, line.rstrip("\n")))
            position += len(line)
        if kept:
            matched.append(MatchedLines(cell.step, kept))
    return matched


def describe_pair(a: StudentAnswers, b: StudentAnswers, score: float) -> FlaggedPair:
    hashes_a = set().union(*(c.fingerprint.hashes for c in a.cells))
    hashes_b = set().union(*(c.fingerprint.hashes for c in b.cells))
    steps = [c.step for c in a.cells if c.fingerprint.hashes & hashes_b] + [c.step for c in b.cells if c.fingerprint.hashes & hashes_a]
    return FlaggedPair(a.student, b.student, score, list(dict.fromkeys(steps)), matched_lines(a.cells, hashes_b), matched_lines(b.cells, hashes_a))


# ---- the whole run ----------------------------------------------------------------------------------------

def compare_class(root: Path, assignment: str, settings: Similarity | None = None) -> SimilarityResult:
    started = time.monotonic()
    settings = settings or Similarity(config=load_config(root))
    boilerplate, notes = boilerplate_hashes(root, assignment)
    students, not_compared = read_class(root, assignment, boilerplate)
    scores, a, b = score_pairs(students, settings.min_evidence)
    order = np.argsort(-scores, kind="stable")
    flagged = [describe_pair(students[a[i]], students[b[i]], float(scores[i])) for i in order if scores[i] >= settings.threshold]
    return SimilarityResult(assignment, settings.threshold, [s.student for s in students], not_compared, scores,
                            flagged, time.monotonic() - started, notes)


def write_csv(path: Path, result: SimilarityResult) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for pair in result.flagged:
            writer.writerow([pair.student_a, pair.student_b, f"{pair.score:.3f}", " ".join(pair.steps), pair.shared_lines])


def format_summary(result: SimilarityResult, folder: str) -> str:
    """What `coursekit similarity` prints (and `coursekit grade` can print at its end): the flagged pairs, the
    notebooks not compared and why, and where the report is."""
    lines = [f"compared {len(result.compared)} notebook(s) of {result.assignment} ({len(result.pair_scores)} pairs) in {result.seconds:.1f} s; "
             f"{len(result.flagged)} pair(s) at or above the threshold {result.threshold:g}, a reason to look, not a verdict"
             + (":" if result.flagged else "")]
    lines += [f"  {p.score:.2f}  {p.student_a} and {p.student_b}: {', '.join(p.steps)} ({p.shared_lines} matching lines)" for p in result.flagged]
    lines += [f"not compared: {student}: {reason}" for student, reason in sorted(result.not_compared.items())]
    lines += [f"note: {note}" for note in result.notes]
    lines.append(f"wrote {folder}/similarity.csv and {folder}/similarity.html")
    return "\n".join(lines)


def write_similarity(root: Path, assignment: str) -> SimilarityResult:
    """Compare the class and write reports/<assignment>/similarity.csv and similarity.html."""
    result = compare_class(root, assignment)
    folder = root / "reports" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "similarity.csv", result)
    (folder / "similarity.html").write_text(similarity_page(result), encoding="utf-8")
    return result


# ---- HTML -------------------------------------------------------------------------------------------------

STYLE = """<style>
.ck-similarity table.ck-pair { border-collapse: collapse; width: 100%; table-layout: fixed; margin-bottom: 1.5em; }
.ck-similarity table.ck-pair td, .ck-similarity table.ck-pair th { border: 1px solid #ccc; vertical-align: top; padding: 4px; }
.ck-similarity pre { margin: 0; white-space: pre-wrap; font-size: 0.85em; }
.ck-similarity mark { background: #ffe08a; }
.ck-similarity .ck-gap { color: #777; font-style: italic; }
</style>"""


def distribution_png(result: SimilarityResult) -> str:
    """The histogram of every pair's score as a base64 PNG (matplotlib, Agg: no display, no network)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 2.8), dpi=100)
    axes = figure.add_subplot()
    axes.hist(result.pair_scores, bins=50, range=(0, 1), color="#4a78b5")
    axes.set_yscale("log")  # thousands of unremarkable pairs and one outlier on the same plot
    axes.axvline(result.threshold, color="#c0392b", linestyle="--", label=f"threshold {result.threshold:g}")
    axes.set_xlabel("pair score")
    axes.set_ylabel("pairs (log scale)")
    axes.legend(loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def lines_html(matches: list[MatchedLines]) -> str:
    parts = []
    for match in matches:
        parts.append(f"<div><b>{html.escape(match.step)}</b></div>")
        previous = 0
        for number, line in match.lines:
            if number > previous + 1:
                parts.append(f'<pre class="ck-gap">… {number - previous - 1} line(s) not shown</pre>')
            parts.append(f"<pre>{number:>3} <mark>{html.escape(line)}</mark></pre>")
            previous = number
    return "".join(parts) or '<pre class="ck-gap">(no line)</pre>'


def similarity_section(result: SimilarityResult) -> str:
    """The class report's similarity section: a self-contained HTML fragment (no network, everything escaped)."""
    e = html.escape
    n = len(result.compared)
    parts = [f'<section class="ck-similarity" id="similarity">{STYLE}', "<h2>Similarity</h2>",
             f"<p>{n} notebook(s) of {e(result.assignment)} compared ({len(result.pair_scores)} pairs); "
             f"{len(result.flagged)} pair(s) score at least the threshold of {result.threshold:g} "
             "(<code>c.Similarity.threshold</code> in course_config.py).</p>",
             "<p><strong>A high score is a reason to look, not a verdict.</strong> The score is the share of the code "
             "one student wrote beyond the book's that the other's notebook also holds, counting code that is rare "
             "in the class most. The release, the source solution and the equivalent rewrites the kit knows never "
             "count; two students can still reach the same uncommon answer on their own. Only the matching lines "
             "are shown.</p>"]
    if result.not_compared:
        parts.append("<h3>Not compared</h3><ul>")
        parts += [f"<li>{e(student)}: {e(reason)}</li>" for student, reason in sorted(result.not_compared.items())]
        parts.append("</ul>")
    if len(result.pair_scores):
        parts.append(f'<img id="similarity-plot" alt="distribution of the scores of all {len(result.pair_scores)} pairs" '
                     f'src="data:image/png;base64,{distribution_png(result)}">')
    for pair in result.flagged:
        parts.append(f"<h3>{e(pair.student_a)} and {e(pair.student_b)}: {pair.score:.2f}</h3>"
                     f"<p>steps: {e(', '.join(pair.steps))}; {pair.shared_lines} matching line(s)</p>"
                     f'<table class="ck-pair"><tr><th>{e(pair.student_a)}</th><th>{e(pair.student_b)}</th></tr>'
                     f"<tr><td>{lines_html(pair.lines_a)}</td><td>{lines_html(pair.lines_b)}</td></tr></table>")
    parts.append("</section>")
    return "\n".join(parts)


def similarity_page(result: SimilarityResult) -> str:
    """A minimal standalone page around similarity_section (the class report embeds the section itself)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Similarity: {html.escape(result.assignment)}</title></head>\n<body>\n"
            f"{similarity_section(result)}\n</body></html>\n")
