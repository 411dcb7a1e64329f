"""release/ is what nbgrader makes of source/, and reveals nothing students should not see."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ASSIGNMENT, REPO, SIMPLE_NET, TRAINING, hidden_check_names, make_course, run_coursekit

from coursekit.grader_text import leaked_lines, protected_lines


@pytest.fixture(scope="module", params=[ASSIGNMENT, TRAINING, SIMPLE_NET])
def fresh_release(request, tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("release"))
    run_coursekit(course, "release", request.param)
    return request.param, course / "release" / request.param / f"{request.param}.ipynb"


def cells(path):
    return [(c["cell_type"], "".join(c["source"]), c["metadata"].get("nbgrader")) for c in json.loads(Path(path).read_text())["cells"]]


def test_committed_release_matches_source(fresh_release):
    assignment, released = fresh_release
    assert cells(REPO / "release" / assignment / f"{assignment}.ipynb") == cells(released), \
        f"release/ is out of date: run `coursekit release {assignment}` and commit it"


def test_release_reveals_no_solution_line(fresh_release):
    assignment, released = fresh_release
    source = REPO / "source" / assignment / f"{assignment}.ipynb"
    assert len(protected_lines(source)) > 10  # the check has something to look for
    assert leaked_lines(source, released) == []


def test_release_holds_no_hidden_check(fresh_release):
    assignment, released = fresh_release
    text = released.read_text()
    assert [name for name in hidden_check_names(assignment) if name in text] == []
    assert sorted(p.name for p in released.parent.iterdir()) == [f"{assignment}.ipynb"]


def test_leak_check_can_fail(tmp_path):
    source = REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    leaky = json.loads(source.read_text())  # the source itself, shipped by mistake
    (tmp_path / "leaky.ipynb").write_text(json.dumps(leaky))
    assert "BEGIN SOLUTION" in leaked_lines(source, tmp_path / "leaky.ipynb")


@pytest.mark.parametrize("assignment", [ASSIGNMENT, TRAINING, SIMPLE_NET])
def test_check_points_match_notebook_points(assignment):
    from coursekit.checks import run_checks

    results = run_checks(REPO / "tests" / "hidden" / assignment, {}, {})
    per_step = {}
    for r in results:
        per_step[r.step] = per_step.get(r.step, 0) + r.points
    notebook = {meta["grade_id"].removeprefix("test_"): meta["points"] for kind, _, meta in cells(REPO / "source" / assignment / f"{assignment}.ipynb")
                if meta and meta.get("grade") and kind == "code"}
    assert per_step == notebook
    assert all(not r.passed and r.hint for r in results)  # no values at all: every check fails, with a hint


def test_bad_command_gives_clear_error(tmp_path):
    entry = Path(sys.executable).parent / "coursekit"  # the installed command, called without activating the venv
    result = subprocess.run([str(entry), "grade", ASSIGNMENT], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "no course_config.py" in result.stderr
