"""Fixtures for the kit's own tests: a real course directory in a temporary folder,
graded once per session by the real `coursekit` command."""
import ast
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coursekit.samples import SAMPLES, make_submission, write_samples, write_submission

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "mnist_sgd"
TRAINING = "sgd_training"  # the second assignment, graded by the same machinery
COURSEKIT = [sys.executable, "-m", "coursekit.cli"]
# Short limits, so that the hanging submission costs seconds, not minutes
TEST_LIMITS = "\nc.ExecuteAndProbe.timeout = 15\nc.ExecuteAndProbe.probe_timeout = 5\n"


def make_course(folder: Path) -> Path:
    """A course directory like the repository's: source, release, hidden checks, config (both files)."""
    for name in ("source", "release"):
        shutil.copytree(REPO / name, folder / name)
    shutil.copytree(REPO / "tests" / "hidden", folder / "tests" / "hidden", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "course_config.py").write_text((REPO / "course_config.py").read_text() + TEST_LIMITS)
    shutil.copy(REPO / "nbgrader_config.py", folder / "nbgrader_config.py")
    return folder


def run_coursekit(course: Path, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([*COURSEKIT, *args], cwd=course, capture_output=True, text=True, timeout=3000)
    if check and result.returncode != 0:
        raise AssertionError(f"coursekit {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def hidden_check_names(assignment: str = ASSIGNMENT) -> list[str]:
    """The names of the hidden checks and probes: none may appear in anything students see."""
    names = []
    for module in (REPO / "tests" / "hidden" / assignment).glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith(("test_", "probe_")):
                names.append(node.name)
    return names


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """Every sample submission plus broken ones, graded in one run of `coursekit grade`."""
    course = make_course(tmp_path_factory.mktemp("course"))
    write_samples(course, ASSIGNMENT)
    source = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    full = make_submission(source, release, None)
    write_submission(course, ASSIGNMENT, "not_json", b"{ this is not a notebook")
    write_submission(course, ASSIGNMENT, "renamed", full, name="mnist_sgd (1).ipynb")
    dies = nbformat.from_dict(full)
    hangs = nbformat.from_dict(full)
    for nb, grade_id, code in ((dies, "linear1", "import os\nos._exit(1)"),
                               (hangs, "accuracy", "def accuracy(preds, targets):\n    while True:\n        pass")):
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        cell.source = code
    write_submission(course, ASSIGNMENT, "kernel_dies", dies)
    edited = nbformat.from_dict(full)
    next(c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "make_params").source = "weights = bias = None"
    write_submission(course, ASSIGNMENT, "edits_locked_cell", edited)
    write_submission(course, ASSIGNMENT, "hangs", hangs)
    result = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "2")
    grades = {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}
    checks = read_csv(course / "reports" / ASSIGNMENT / "checks.csv")
    return {"course": course, "output": result.stdout, "grades": grades, "checks": checks}


def notebook_paths(course: Path, assignment: str) -> tuple[Path, Path]:
    return (course / "source" / assignment / f"{assignment}.ipynb", course / "release" / assignment / f"{assignment}.ipynb")


@pytest.fixture(scope="session")
def graded_training(tmp_path_factory):
    """Every sample submission of the second assignment, graded in one run; one of them twice."""
    course = make_course(tmp_path_factory.mktemp("training"))
    write_samples(course, TRAINING)
    # graded under two names: a seeded training run must give the very same outcome both times
    again = next(s for s in SAMPLES[TRAINING] if s.name == "learning_rate_too_small")
    write_submission(course, TRAINING, "learning_rate_too_small_again", make_submission(*notebook_paths(course, TRAINING), again))
    result = run_coursekit(course, "grade", TRAINING, "--workers", "2")
    grades = {row["student"]: row for row in read_csv(course / "reports" / TRAINING / "grades.csv")}
    checks = read_csv(course / "reports" / TRAINING / "checks.csv")
    return {"course": course, "output": result.stdout, "grades": grades, "checks": checks}


GRADED = {ASSIGNMENT: "graded_course", TRAINING: "graded_training"}
MISTAKES = [(a, s) for a in GRADED for s in SAMPLES[a] if s.mistake]
EQUIVALENTS = [(a, s) for a in GRADED for s in SAMPLES[a] if not s.mistake]
