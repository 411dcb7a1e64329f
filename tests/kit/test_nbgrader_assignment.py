"""An ordinary nbgrader assignment, with no hidden checks, grades under the kit as nbgrader grades it:
the visible asserts decide, in the kit's sandbox and with its reports."""
import shutil

import nbformat
import pytest
from conftest import make_course, read_csv, run_coursekit
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ANSWER = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"


def nbgrader_cell(cell, grade_id, *, grade=False, solution=False, locked=False, points=None):
    cell.metadata["nbgrader"] = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        cell.metadata["nbgrader"]["points"] = points
    return cell


def ps1_source() -> nbformat.NotebookNode:
    nb = new_notebook(cells=[
        nbgrader_cell(new_markdown_cell("Write `add(a, b)`, which returns the sum of its arguments."), "intro", locked=True),
        nbgrader_cell(new_code_cell(ANSWER), "add", solution=True),
        nbgrader_cell(new_code_cell("assert add(1, 2) == 3\nassert add(-1, 1) == 0"), "test_add", grade=True, locked=True, points=1),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def graded_ps1(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("ps1"))
    (course / "source" / "ps1").mkdir()
    nbformat.write(ps1_source(), course / "source" / "ps1" / "ps1.ipynb")
    run_coursekit(course, "release", "ps1")
    for student, body in (("right", "    return a + b"), ("wrong", "    return a - b")):
        nb = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", as_version=4)
        answer = next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == "add")
        answer.source = f"def add(a, b):\n{body}"
        (course / "submitted" / student / "ps1").mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / "ps1" / "ps1.ipynb")
    result = run_coursekit(course, "grade", "ps1", "--workers", "2")
    return {"course": course, "output": result.stdout, "grades": {r["student"]: r for r in read_csv(course / "reports" / "ps1" / "grades.csv")}}


def test_visible_asserts_decide_without_hidden_checks(graded_ps1):
    grades = graded_ps1["grades"]
    assert (grades["right"]["status"], grades["right"]["test_add"]) == ("graded", "1")
    assert (grades["wrong"]["status"], grades["wrong"]["test_add"]) == ("graded", "0")


def test_the_run_says_once_that_there_are_no_hidden_checks(graded_ps1):
    assert graded_ps1["output"].count("ps1 has no hidden checks") == 1
    assert "sandbox: bubblewrap" in graded_ps1["output"] or "WARNING: NO SANDBOX" in graded_ps1["output"]


def test_a_run_that_grades_every_submission_exits_0(graded_ps1):
    # run_coursekit checked the status (0); and no line says a submission failed
    assert "NOT GRADED" not in graded_ps1["output"]
    assert "class report: reports/ps1/index.html" in graded_ps1["output"].splitlines()[-1]


def test_a_run_with_a_submission_not_graded_exits_1_and_names_it(graded_ps1, tmp_path):
    """Another assignment's notebook, handed in as ps1.ipynb, is refused: the run's exit status and last line say so."""
    course = tmp_path / "course"
    shutil.copytree(graded_ps1["course"], course)
    (course / "submitted" / "alice" / "ps1").mkdir(parents=True)
    shutil.copy(course / "release" / "mnist_sgd" / "mnist_sgd.ipynb", course / "submitted" / "alice" / "ps1" / "ps1.ipynb")
    result = run_coursekit(course, "grade", "ps1", "--workers", "2", status=1)
    lines = result.stdout.rstrip().splitlines()
    assert lines[-1] == "1 submission(s) NOT GRADED: alice (why: their rows above; logs in reports/ps1/logs/)"
    assert "class report: reports/ps1/index.html" in lines[-2]
    assert "kept: graded by an earlier run" in result.stdout  # right and wrong: graded before, and still counted graded


def test_a_run_with_nothing_to_grade_exits_2(graded_ps1):
    result = run_coursekit(graded_ps1["course"], "grade", "ps2", status=2)
    assert "nothing to grade: no submissions of ps2 in" in result.stderr
