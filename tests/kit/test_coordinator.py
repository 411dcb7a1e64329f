"""Workers grade with nbgrader in a scratch course and the coordinator only writes (issue 13): the course ends
up as plain `nbgrader autograde` + `generate_feedback` leave it, row for row and page for page, including
a late submission's penalty and a manual grade kept through a changed resubmission."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ASSIGNMENT, SAMPLES, make_course, notebook_paths, run_coursekit

from coursekit.samples import make_submission, write_submission

BIN = Path(sys.executable).parent
LATE = "2026-01-02 00:00:00.000000 UTC"  # a day after the due date below
MISTAKE = next(s for s in SAMPLES[ASSIGNMENT] if s.name == "labels_reversed")
RESUBMITTED = next(s for s in SAMPLES[ASSIGNMENT] if s.name == "no_sigmoid")


def nbgrader(course: Path, *args: str) -> None:
    env = {**os.environ, "PATH": str(BIN) + os.pathsep + os.environ["PATH"]}
    result = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


def gradebook_rows(course: Path) -> dict:
    """Every row autograde writes for a submission, by student, notebook and cell."""
    from nbgrader.api import Gradebook

    rows = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for submission in gradebook.find_assignment(ASSIGNMENT).submissions:
            rows[submission.student.id] = {"timestamp": str(submission.timestamp), "late": submission.total_seconds_late}
            for notebook in submission.notebooks:
                rows[submission.student.id][notebook.name] = {
                    "penalty": notebook.late_submission_penalty,
                    "grades": {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade) for g in notebook.grades},
                    "comments": {c.name: (c.auto_comment, c.manual_comment) for c in notebook.comments}}
    return rows


def pages(course: Path, kind: str) -> dict:
    """The autograded notebooks or the feedback pages (without coursekit's own record), with their file modes."""
    return {str(path.relative_to(course)): (path.read_text(), oct(path.stat().st_mode & 0o777))
            for path in sorted((course / kind).rglob("*")) if path.is_file() and path.name != ".coursekit-graded.json"}


def without_outputs(autograded: dict) -> dict:
    """Autograded notebooks as nbgrader's sanitize and coursekit's steps leave them, but for what the kernel printed
    and when (two runs of one notebook print different losses and timings); the test cells' scores are in the gradebook.
    (nbclient's timing of each cell is not in a replayed run's notebook, as before issue 13.)"""
    shown = {}
    for name, (text, mode) in autograded.items():
        if not name.endswith(".ipynb"):
            shown[name] = (text, mode)
            continue
        notebook = json.loads(text)
        for cell in notebook["cells"]:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            cell["metadata"].pop("execution", None)
        shown[name] = (notebook, mode)
    return shown


def graded_by_both(kit: Path, plain: Path) -> dict:
    """What each course holds now; and the kit's feedback pages rendered again by nbgrader from the kit's own course."""
    found = {"kit": gradebook_rows(kit), "plain": gradebook_rows(plain),
             "kit autograded": without_outputs(pages(kit, "autograded")), "plain autograded": without_outputs(pages(plain, "autograded")),
             "kit feedback": pages(kit, "feedback"), "plain feedback": pages(plain, "feedback")}
    nbgrader(kit, "generate_feedback", ASSIGNMENT, "--force")
    found["nbgrader's kit feedback"] = pages(kit, "feedback")
    return found


def resubmit(course: Path, student: str, notebook) -> None:
    write_submission(course, ASSIGNMENT, student, notebook)


def give_manual_grade(course: Path, student: str) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:  # as formgrader records them
        grade = gradebook.find_grade("loss_vs_metric", ASSIGNMENT, ASSIGNMENT, student)
        grade.manual_score, grade.needs_manual_grade = 1.5, False
        gradebook.find_comment("loss_vs_metric", ASSIGNMENT, ASSIGNMENT, student).manual_comment = "well argued"
        gradebook.db.commit()


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    """One course graded by `coursekit grade`, a copy of it by nbgrader's own commands, twice."""
    from nbgrader.api import Gradebook

    kit = make_course(tmp_path_factory.mktemp("kit") / "course")
    with open(kit / "course_config.py", "a") as f:  # a late submission scores zero, as nbgrader's plugin decides
        f.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    source, release = notebook_paths(kit, ASSIGNMENT)
    write_submission(kit, ASSIGNMENT, "late", make_submission(source, release, None))
    (kit / "submitted" / "late" / ASSIGNMENT / "timestamp.txt").write_text(LATE)
    write_submission(kit, ASSIGNMENT, "mistaken", make_submission(source, release, MISTAKE))
    with Gradebook(f"sqlite:///{kit / 'gradebook.db'}", "mnist-sgd") as gradebook:
        gradebook.update_or_create_assignment(ASSIGNMENT, duedate="2026-01-01 00:00:00 UTC")
    plain = shutil.copytree(kit, tmp_path_factory.mktemp("plain") / "course")

    outputs = [run_coursekit(kit, "grade", ASSIGNMENT, "--workers", "2").stdout]
    nbgrader(plain, "generate_assignment", ASSIGNMENT, "--force")
    nbgrader(plain, "autograde", ASSIGNMENT, "--create", "--force")
    nbgrader(plain, "generate_feedback", ASSIGNMENT, "--force")
    first = graded_by_both(kit, plain)

    # staff grade the written answer, then the student hands in a changed notebook: the same one to both courses
    # (from the kit's release/: nbgrader's generate_assignment rewrote the plain course's without coursekit's metadata)
    changed = make_submission(source, release, RESUBMITTED)
    for course in (kit, plain):
        give_manual_grade(course, "mistaken")
        resubmit(course, "mistaken", changed)
    outputs.append(run_coursekit(kit, "grade", ASSIGNMENT).stdout)
    nbgrader(plain, "autograde", ASSIGNMENT, "--student", "mistaken", "--force")
    nbgrader(plain, "generate_feedback", ASSIGNMENT, "--student", "mistaken", "--force")
    second = graded_by_both(kit, plain)
    # the workers graded every submission: the coordinator ran no nbgrader autograde of its own
    assert not [line for output in outputs for line in output.splitlines() if "graded here" in line], outputs
    return first, second


def test_the_gradebook_matches_nbgrader_row_for_row(courses):
    first, second = courses
    assert first["kit"] == first["plain"]
    late = first["kit"]["late"][ASSIGNMENT]
    assert first["kit"]["late"]["late"] > 0 and late["penalty"] > 0  # the whole score, as the "zero" plugin says
    assert second["kit"] == second["plain"]
    kept = second["kit"]["mistaken"][ASSIGNMENT]["grades"]["loss_vs_metric"]
    assert kept[1] == 1.5 and kept[2] is True  # the manual grade is kept, and marked for review as nbgrader does


def test_the_autograded_notebooks_and_feedback_pages_match_nbgrader(courses):
    for graded in courses:
        assert graded["kit autograded"] == graded["plain autograded"]
        assert sorted(graded["kit feedback"]) == sorted(graded["plain feedback"])
        assert graded["kit feedback"] == graded["nbgrader's kit feedback"]
    # the resubmission's page shows the manual grade and comment given to the earlier notebook
    assert "well argued" in courses[1]["kit feedback"][f"feedback/mistaken/{ASSIGNMENT}/{ASSIGNMENT}.html"][0]
