"""Stage: grade every submission of an assignment with nbgrader's autograde.

For each submitted/<student>/<assignment>/ folder: check that the notebook is
there and is a notebook, run nbgrader's autograde (whose pipeline,
course_config.py, executes, probes and applies the hidden checks), then write
the student's feedback. One submission that fails never stops the others; its
outcome says what went wrong.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .course import CourseError, nbgrader_api, source_notebooks


@dataclass
class SubmissionOutcome:
    student: str
    graded: bool
    message: str  # why a submission could not be graded; empty when it was
    seconds: float


def find_students(root: Path, assignment: str) -> list[str]:
    submitted = root / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())


def submission_problem(root: Path, folder: Path, notebook_names: list[str]) -> str:
    """Why the files in a submission folder (relative to the course root, as staff see it) cannot be graded, or ''."""
    for name in notebook_names:
        path = folder / name
        if not (root / path).exists():
            found = sorted(p.name for p in (root / folder).glob("*.ipynb"))
            return f"{path} is missing" + (f" (found {', '.join(found)}: was it renamed?)" if found else "")
        try:
            notebook = json.loads((root / path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"{path} is not a notebook: it is not valid JSON ({exc})"
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            return f"{path} is not a notebook: it has no list of cells"
    return ""


def autograde_failure(result: dict) -> str:
    """The reason nbgrader gives for a failed autograde, in one line."""
    text = (result.get("log") or "") + (result.get("error") or "")
    if "DeadKernelError" in text or "Kernel died" in text:
        return "the kernel died while running the notebook (it crashed, ran out of memory or exited)"
    errors = [line for line in text.splitlines() if line.startswith("[ERROR]")]
    if errors:
        return re.sub(r"^\[ERROR\]\s*", "", errors[-1])[:300]
    last = [line for line in text.strip().splitlines() if line.strip()]
    return (last[-1] if last else "autograde failed")[:300]


def prepare_gradebook(root: Path, assignment: str) -> None:
    """Record the assignment, its notebooks and their grade cells in the gradebook, from source/.

    nbgrader's generate_assignment does that; it writes its student version into
    a throwaway folder, so grading never touches the committed release/.
    """
    with tempfile.TemporaryDirectory(prefix="coursekit-release-") as scratch:
        result = nbgrader_api(root, release_directory=scratch).generate_assignment(assignment, force=True)
    if not result["success"]:
        raise CourseError(f"nbgrader could not read source/{assignment}: {autograde_failure(result)}")


def grade_submission(api, root: Path, assignment: str, student: str, notebook_names: list[str]) -> SubmissionOutcome:
    started = time.monotonic()
    problem = submission_problem(root, Path("submitted") / student / assignment, notebook_names)
    if not problem:
        result = api.autograde(assignment, student, force=True, create=True)
        if not result["success"]:
            problem = autograde_failure(result)
        else:
            feedback = api.generate_feedback(assignment, student, force=True)
            if not feedback["success"]:
                problem = f"graded, but its feedback could not be written: {autograde_failure(feedback)}"
    return SubmissionOutcome(student, not problem or problem.startswith("graded"), problem, time.monotonic() - started)


def grade_assignment(root: Path, assignment: str, students: list[str] | None = None,
                     on_outcome: Callable[[int, int, SubmissionOutcome], None] | None = None) -> list[SubmissionOutcome]:
    notebook_names = [p.name for p in source_notebooks(root, assignment)]
    prepare_gradebook(root, assignment)
    api = nbgrader_api(root)
    students = students if students is not None else find_students(root, assignment)
    outcomes = []
    for done, student in enumerate(students, start=1):
        outcome = grade_submission(api, root, assignment, student, notebook_names)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(done, len(students), outcome)
    return outcomes
