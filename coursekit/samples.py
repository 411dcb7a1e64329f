"""Sample submissions, the machinery: an assignment's samples live in its hidden checks folder.

tests/hidden/<assignment>/samples.py (beside the hidden checks, never released, not read by grading)
defines SAMPLES (a list of `Sample`: the reference solution typed into the student notebook, with one
typical mistake or one equivalent rewrite), DEMO (the names `coursekit demo` grades) and WRITTEN_ANSWER
(the text every sample gives for a written answer). They hold answers, so none of them is in this
package, which students may install for `coursekit check`.

The demo grades a few of them; the kit's tests grade them all. Each is built
from source/ and release/, so it follows the notebook when the notebook changes
(a rewrite that no longer applies raises, rather than quietly testing nothing).
"""
from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import SAMPLES_FILE, CourseError, find_course_root, hidden_checks_dir, load_config


@dataclass(frozen=True)
class Sample:
    name: str
    step: str  # the grade id whose answer is changed ('' for none)
    edits: tuple = ()  # (old, new) replacements in that answer; old None replaces the whole answer
    mistake: bool = True  # a mistake loses points in `step` only; an equivalent earns full marks
    hint: str = ""  # words the hint for the mistake must contain



@dataclass
class CourseSamples:
    """What an assignment's samples.py defines."""
    path: Path
    samples: list[Sample]
    demo: list[str] = field(default_factory=list)
    written_answer: str = ""


_loaded: dict[tuple, CourseSamples] = {}


def samples_file(root: Path, assignment: str) -> Path:
    return hidden_checks_dir(load_config(root), root, assignment) / SAMPLES_FILE


def load_samples(root: Path, assignment: str) -> CourseSamples | None:
    """The assignment's sample submissions, or None when it has no samples.py; read once per version of the file."""
    path = samples_file(root, assignment)
    if not path.is_file():
        return None
    key = (str(path), path.stat().st_mtime_ns, path.stat().st_size)
    if key not in _loaded:
        spec = importlib.util.spec_from_file_location(f"coursekit_samples_{assignment}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise CourseError(f"{path} could not be loaded: {type(exc).__name__}: {exc}") from exc
        samples = getattr(module, "SAMPLES", None)
        if not isinstance(samples, list) or not all(isinstance(s, Sample) for s in samples):
            raise CourseError(f"{path} should define SAMPLES, a list of coursekit.samples.Sample")
        unknown = [name for name in getattr(module, "DEMO", []) if name not in {s.name for s in samples}]
        if unknown:
            raise CourseError(f"{path}: DEMO names samples that SAMPLES does not define: {', '.join(unknown)}")
        _loaded[key] = CourseSamples(path, samples, list(getattr(module, "DEMO", [])), getattr(module, "WRITTEN_ANSWER", ""))
    return _loaded[key]


def require_samples(root: Path, assignment: str) -> CourseSamples:
    found = load_samples(root, assignment)
    if found is None:
        raise CourseError(f"{assignment} has no sample submissions: {samples_file(root, assignment)} does not exist")
    return found


def solution_code(source: str) -> str:
    """An answer cell's source as a student would type it: without nbgrader's markers."""
    return "\n".join(line for line in source.splitlines() if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)


def answers(source_notebook: Path) -> dict[str, str]:
    nb = nbformat.read(source_notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: solution_code(c.source) for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def apply_edits(code: str, sample: Sample) -> str:
    for old, new in sample.edits:
        if old is None:
            code = new.strip("\n")
            continue
        if old not in code:
            raise ValueError(f"sample {sample.name}: {old!r} is not in the {sample.step} answer of the source notebook")
        code = code.replace(old, new)
    return code


def course_written_answer(source_notebook: Path) -> str:
    """The WRITTEN_ANSWER of the samples of the assignment whose source notebook this is ('' if none)."""
    try:
        root = find_course_root(source_notebook.parent)
    except CourseError:
        return ""
    found = load_samples(root, source_notebook.parent.name)
    return found.written_answer if found else ""


def make_submission(source_notebook: Path, release_notebook: Path, sample: Sample | None,
                    written_answer: str | None = None) -> nbformat.NotebookNode:
    """The release notebook with every answer filled in from the source, one of them changed by `sample`;
    a written answer gets `written_answer` (default: the WRITTEN_ANSWER of the assignment's samples.py)."""
    filled = answers(source_notebook)
    written = course_written_answer(source_notebook) if written_answer is None else written_answer
    nb = copy.deepcopy(nbformat.read(release_notebook, as_version=4))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution") and written:
            cell.source = written
        if cell.cell_type == "code" and grade_id in filled:
            cell.source = apply_edits(filled[grade_id], sample) if sample and grade_id == sample.step else filled[grade_id]
    return nb


def write_submission(root: Path, assignment: str, student: str, nb: nbformat.NotebookNode | str | bytes, name: str | None = None) -> Path:
    """Place a notebook (or raw file content) where nbgrader expects student's submission."""
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{assignment}.ipynb")
    if isinstance(nb, nbformat.NotebookNode):
        nbformat.write(nb, path)
    else:
        path.write_bytes(nb if isinstance(nb, bytes) else nb.encode())
    return path


def write_samples(root: Path, assignment: str, names: list[str] | None = None) -> list[str]:
    """Write the named samples, plus a full solution and the untouched release, as submissions."""
    source = root / "source" / assignment / f"{assignment}.ipynb"
    release = root / "release" / assignment / f"{assignment}.ipynb"
    course = require_samples(root, assignment)
    chosen = [s for s in course.samples if names is None or s.name in names]
    write_submission(root, assignment, "full_marks", make_submission(source, release, None, course.written_answer))
    write_submission(root, assignment, "untouched_release", nbformat.read(release, as_version=4))
    for sample in chosen:
        write_submission(root, assignment, sample.name, make_submission(source, release, sample, course.written_answer))
    return ["full_marks", "untouched_release", *(s.name for s in chosen)]
