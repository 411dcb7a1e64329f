"""A student works anywhere: the bundle alone runs in a Python that has only what its README.txt says to install
(plus ipykernel and nbclient, which any Jupyter brings), with no coursekit, no nbgrader and no mlxtend.

The student's Python is a fresh virtual environment (`python -m venv --without-pip`) into whose site-packages the
test links, from the kit's own .venv, the distributions the README names and everything they require, and
nothing else. Its kernel runs the notebooks where the bundle was unpacked, as Jupyter would.
"""
import importlib.metadata
import json
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import ASSIGNMENT, TRAINING, make_course, notebook_paths
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from coursekit.execute import execute_and_probe
from coursekit.samples import make_submission
from coursekit.student import bundle_release

JUPYTER = ["ipykernel", "nbclient"]  # what running a notebook takes, in any Jupyter
NOT_THERE = ["coursekit", "nbgrader", "mlxtend"]
# the cell appended to each run: where the kernel ran, what it could import, and the images as it read them
REPORT_CELL = """\
import importlib.util, json, sys
print(json.dumps({"python": sys.executable, "found": [m for m in %r if importlib.util.find_spec(m)]}))
if "train_x" in globals():
    import torch
    torch.save(train_x, "train_x.pt")
""" % (NOT_THERE,)
RUNNER = """\
import sys
import nbformat
from nbclient import NotebookClient

path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, out)
"""


def readme_packages(readme: str) -> list[str]:
    found = re.search(r"^\s+pip install ([\w\- ]+)$", readme, re.M)
    assert found, f"README.txt says nothing to pip install:\n{readme}"
    return found.group(1).split()


def requirement_closure(names: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """The distributions of the kit's .venv that `pip install NAMES` would bring: the names and all they require."""
    found, todo = {}, list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found[name] = importlib.metadata.distribution(name)
        for line in found[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def student_python(folder: Path, packages: list[str]) -> Path:
    """A fresh venv holding links to exactly the closure of `packages`, and a python3 kernel spec that is its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    distributions = requirement_closure(packages + JUPYTER)
    assert not set(distributions) & set(NOT_THERE), "the student's Python must not get the kit, nbgrader or mlxtend"
    for dist in distributions.values():
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")} - {"__pycache__"}:
            if (ours / top).exists() and not (site / top).exists():
                (site / top).symlink_to(ours / top)
    # Jupyter finds kernels here first (JUPYTER_PATH): "python3" is the student's Python, as in their own Jupyter
    spec = folder / "share" / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                  "display_name": "student", "language": "python"}))
    return python


def run_as_student(python: Path, notebook: nbformat.NotebookNode, where: Path) -> nbformat.NotebookNode:
    """Run a notebook from a fresh kernel of the student's Python, in the folder the bundle was unpacked to."""
    notebook = nbformat.from_dict(notebook)
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    src, out = where / ".to_run.ipynb", where / ".ran.ipynb"
    nbformat.write(notebook, src)
    env = {"PATH": str(python.parent), "HOME": str(where), "JUPYTER_PATH": str(python.parents[1] / "share" / "jupyter"),
           "JUPYTER_RUNTIME_DIR": str(where / ".runtime"), "MPLBACKEND": "agg", "PYTHONNOUSERSITE": "1"}
    result = subprocess.run([str(python), "-c", RUNNER, str(src), str(out), str(where)], env=env, cwd=where,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"the student's Python could not run {where}:\n{result.stdout}\n{result.stderr}"
    ran = nbformat.read(out, as_version=4)
    report = json.loads(ran.cells[-1].outputs[0]["text"])
    assert report == {"python": str(python), "found": []}, "the kernel was not the student's Python, or it had the kit"
    ran.cells.pop()
    return ran


def errors(notebook) -> list[tuple[str, str]]:
    """(grade id or cell number, 'Error: message') of each cell that raised."""
    return [(c.metadata.get("nbgrader", {}).get("grade_id") or f"cell {i}", f"{o.ename}: {o.evalue}")
            for i, c in enumerate(notebook.cells) if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """assignment -> (the student's Python, the folder the bundle was unpacked to, README.txt), built once."""
    course = make_course(tmp_path_factory.mktemp("anywhere"))
    found = {}
    for assignment in (ASSIGNMENT, TRAINING):
        bundle_release(course, assignment, course / "bundles" / f"{assignment}.zip")  # `coursekit bundle`, in this process
        home = tmp_path_factory.mktemp(f"student-{assignment}")
        with zipfile.ZipFile(course / "bundles" / f"{assignment}.zip") as archive:
            archive.extractall(home)
        readme = (home / assignment / "README.txt").read_text()
        found[assignment] = (student_python(home / "venv", readme_packages(readme)), home / assignment, readme)
    return course, found


@pytest.mark.parametrize("assignment", [ASSIGNMENT, TRAINING])
def test_untouched_release_sets_up_without_the_kit(unpacked, assignment):
    """The given cells before the first answer (imports, data) run; the first answer is what stops it."""
    course, found = unpacked
    python, folder, readme = found[assignment]
    assert ("matplotlib" in readme_packages(readme)) == (assignment == TRAINING)
    ran = run_as_student(python, nbformat.read(folder / f"{assignment}.ipynb", as_version=4), folder)
    first_answer = next(i for i, c in enumerate(ran.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    assert errors(nbformat.from_dict({**ran, "cells": ran.cells[:first_answer]})) == []
    assert errors(ran)[0] == (ran.cells[first_answer].metadata["nbgrader"]["grade_id"], "NotImplementedError: ")
    setup = next(c for c in ran.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    assert setup.outputs[0]["data"]["text/plain"] == "['train', 'valid']"


@pytest.fixture(scope="module")
def solved(unpacked):
    """assignment -> the release with the source solution typed in, as the student's Python ran it from the bundle."""
    course, found = unpacked
    runs = {}
    for assignment, (python, folder, _) in found.items():
        runs[assignment] = run_as_student(python, make_submission(*notebook_paths(course, assignment), None), folder)
        (folder / "train_x.pt").rename(folder.parent / "train_x.pt")
    return runs


@pytest.mark.parametrize("assignment", [ASSIGNMENT, TRAINING])
def test_solution_passes_every_visible_test_without_the_kit(solved, assignment):
    """The source solution typed into the release: every cell runs and every visible test passes."""
    ran = solved[assignment]
    assert errors(ran) == []
    tests = [c for c in ran.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")]
    assert len(tests) >= 7 and all(any("looks right" in o.get("text", "") for o in c.outputs) for c in tests)


# the grader's kernel, asked for the train_x the notebook built from its data (the course's probe of this step runs
# the cell on small stand-ins instead, so it cannot tell)
TRAIN_X_PROBE = """
def probe_flatten(run_cell):
    namespace = run_cell()
    return {"train_x": lambda: namespace["train_x"]}
"""


def test_student_and_grader_read_the_same_train_x(unpacked, solved, tmp_path):
    """train_x as the student's runs from the bundles made it, and as the grader's kernel made it (the kit's
    ExecuteAndProbe, as grading runs it, on the same submission): the same images in the same order."""
    course, found = unpacked
    student = {a: torch.load(folder.parent / "train_x.pt", weights_only=True) for a, (_, folder, _) in found.items()}
    (tmp_path / "checks" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "checks" / ASSIGNMENT / "probes.py").write_text(TRAIN_X_PROBE)
    _, probes = execute_and_probe(make_submission(*notebook_paths(course, ASSIGNMENT), None), ASSIGNMENT,
                                  tmp_path / "checks", tmp_path)
    grader = probes["flatten"]["values"]["train_x"]["ok"]
    assert grader.shape == (800, 28 * 28) and grader.std() > 0.1  # real images, not zeros
    assert torch.equal(student[ASSIGNMENT], grader) and torch.equal(student[TRAINING], grader)
    # and the comparison can fail: the same images in another order are not the same train_x
    assert not torch.equal(student[ASSIGNMENT], grader.flip(0))


def test_validate_works_from_the_bundle(unpacked):
    """nbgrader's Validate (the button runs `nbgrader validate`) on the bundle alone, its kernel the student's Python."""
    course, found = unpacked
    python, folder, _ = found[ASSIGNMENT]
    answered = folder.parent / "answered"
    answered.mkdir()
    for item in folder.iterdir():
        if item.name != f"{ASSIGNMENT}.ipynb":
            (answered / item.name).symlink_to(item)
    notebook = make_submission(*notebook_paths(course, ASSIGNMENT), None)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; open('kernel.txt', 'w').write(sys.executable)"))
    nbformat.write(notebook, answered / f"{ASSIGNMENT}.ipynb")
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(answered),
           "JUPYTER_PATH": str(python.parents[1] / "share" / "jupyter")}
    result = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "validate", f"{ASSIGNMENT}.ipynb"],
                            cwd=answered, env=env, capture_output=True, text=True, timeout=600)
    assert (answered / "kernel.txt").read_text() == str(python)  # the student's Python ran it
    assert "Success! Your notebook passes all the tests." in result.stdout, f"{result.stdout}\n{result.stderr}"
