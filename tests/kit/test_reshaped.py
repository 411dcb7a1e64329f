"""Issue 17: a notebook that holds the answers is graded, whatever editor saved it and however it was
reshaped, and a submission that cannot be graded says why, in a line and in a log file.

Each submission below is the full source solution of mnist_sgd (21/23: the written answer waits for
manual grading) with one change, modelled on what the editor or the student really writes. One run of
`coursekit grade` grades them all.
"""
import copy
import json

import nbformat
import pytest
from conftest import ASSIGNMENT, TRAINING, make_course, notebook_paths, read_csv, run_coursekit
from test_grading import FULL, scores

from coursekit.samples import make_submission, write_submission

LOG_FOLDER = f"reports/{ASSIGNMENT}/logs"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def index_of(nb, gid: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if grade_id(c) == gid)


def vscode(nb):
    """VS Code against a local venv: its kernelspec and language_info, its `vscode` keys."""
    nb.metadata["kernelspec"] = {"display_name": ".venv", "language": "python", "name": ".venv"}
    nb.metadata["language_info"] = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                                    "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                                    "pygments_lexer": "ipython3", "version": "3.11.9"}
    nb.metadata["vscode"] = {"interpreter": {"hash": "7f4f0d1e9c3b8a2f5e6d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f"}}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata["vscode"] = {"languageId": "python"}
    return nb


def conda(nb):
    nb.metadata["kernelspec"] = {"display_name": "Python [conda env:fastai]", "language": "python", "name": "conda-env-fastai-py"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.10.13", "pygments_lexer": "ipython3"}
    return nb


def metadata_gone(nb):
    """Pasted into a fresh notebook: every cell's metadata is gone and the cells have new ids."""
    for number, cell in enumerate(nb.cells):
        cell.metadata = nbformat.NotebookNode()
        cell["id"] = f"pasted-{number}"
    return nb


def answers_split_and_gone(nb):
    """Every cell's metadata gone, and three answers split over two cells: which half is the answer?"""
    for gid in ("flatten", "linear1", "mnist_loss"):
        index = index_of(nb, gid)
        lines = nb.cells[index].source.splitlines()
        nb.cells[index].source = "\n".join(lines[:1])
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell("\n".join(lines[1:])))
    return metadata_gone(nb)


def delete(gid):
    def edit(nb):
        del nb.cells[index_of(nb, gid)]
        return nb
    return edit


def empty_test_cell(nb):
    nb.cells[index_of(nb, "test_accuracy")].source = ""
    return nb


def colab(nb):
    """A Colab export: nbformat 4.0 with `colab` and `accelerator` keys, ids in cell metadata, output ids."""
    nb.nbformat_minor = 0
    nb.metadata = nbformat.NotebookNode({"colab": {"provenance": [], "name": NOTEBOOK, "gpuType": "T4"},
                                         "accelerator": "GPU",
                                         "kernelspec": {"name": "python3", "display_name": "Python 3"},
                                         "language_info": {"name": "python"}})
    for number, cell in enumerate(nb.cells):
        cell.pop("id", None)
        cell.metadata["id"] = f"Xq{number:03d}bC9kLm"
        if cell.cell_type == "code":
            cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
            cell.metadata["outputId"] = f"{number:04d}a1b2-c3d4-e5f6-0718-293a4b5c6d7e"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran on colab\n")]
            cell.execution_count = number
    return nb


def nbformat_44(nb):
    """nbformat 4.4, without cell ids (written by nbformat itself below)."""
    nb.nbformat_minor = 4
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


def scratch_cells(nb):
    for gid in ("test_flatten", "test_linear1", "test_mnist_loss"):
        index = index_of(nb, gid)
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell("print(train_x.shape)\nweights[:3]"))
        nb.cells.insert(index + 2, nbformat.v4.new_markdown_cell("my notes: shapes look right"))
    return nb


def copied_answer(nb):
    """The linear1 cell copied, grade id and all: a first try above the answer."""
    index = index_of(nb, "linear1")
    first = copy.deepcopy(nb.cells[index])
    first["id"] = "copied-linear1"
    first.source = "def linear1(xb):\n    return xb@weights"
    nb.cells.insert(index, first)
    return nb


def split_answer(nb):
    """The dataloader answer over two cells: collate in the answer cell, the class in a new one below."""
    index = index_of(nb, "dataloader")
    source = nb.cells[index].source
    cut = source.index("class DataLoader")
    nb.cells[index].source = source[:cut].rstrip()
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source[cut:]))
    return nb


def answer_as_markdown(nb):
    cell = nb.cells[index_of(nb, "accuracy")]
    cell.cell_type = "markdown"
    del cell["outputs"], cell["execution_count"]
    return nb


# the table of issue 17: student -> (how the notebook was changed, expected per-step scores)
def without(step):
    return {**FULL, step: 0}


REPAIRED = {
    "vscode_venv": vscode,
    "conda_kernel": conda,
    "metadata_gone": metadata_gone,
    "test_cell_deleted": delete("test_accuracy"),
    "given_cell_deleted": delete("load_data"),
    "test_cell_emptied": empty_test_cell,
    "colab": colab,
    "nbformat_44": nbformat_44,
    "scratch_cells": scratch_cells,
    "copied_answer": copied_answer,
    "split_answer": split_answer,
    "answer_as_markdown": answer_as_markdown,
}
# why each of these is not graded (a part of its message)
REFUSED = {
    "not_json": "is not a notebook: it is not valid JSON",
    "no_cells": "has no cells",
    "other_language": "is a notebook for R, not Python",
    "renamed": f"{NOTEBOOK} is missing",
    "kernel_dies": "the kernel died",
    "answers_not_found": "the notebook's grading marks were removed and 3 answer cells could not be found",
    "cell_without_source": "source",
    "another_assignment": "the notebook's graded cells are not this assignment's: it holds calc_grad, test_calc_grad, train_epoch, test_train_epoch …; mnist_sgd has flatten",
}


@pytest.fixture(scope="module")
def reshaped(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("reshaped"))
    full = make_submission(*notebook_paths(course, ASSIGNMENT), None)
    write_submission(course, ASSIGNMENT, "full_solution", full)
    for student, edit in REPAIRED.items():
        nb = edit(copy.deepcopy(full))
        if student == "colab":  # Colab's 4.0 layout (ids in cell metadata): written as Colab does, not by nbformat
            write_submission(course, ASSIGNMENT, student, json.dumps(nb, indent=2))
        else:
            write_submission(course, ASSIGNMENT, student, nb)
    write_submission(course, ASSIGNMENT, "not_json", b"{ this is not a notebook")
    write_submission(course, ASSIGNMENT, "no_cells", json.dumps({**full, "cells": []}))
    other = copy.deepcopy(full)
    other.metadata["kernelspec"] = {"display_name": "R", "language": "R", "name": "ir"}
    other.metadata["language_info"] = {"name": "R"}
    write_submission(course, ASSIGNMENT, "other_language", other)
    write_submission(course, ASSIGNMENT, "renamed", full, name=f"{ASSIGNMENT} (1).ipynb")
    dies = copy.deepcopy(full)
    dies.cells[index_of(dies, "linear1")].source = "import os\nos._exit(1)"
    write_submission(course, ASSIGNMENT, "kernel_dies", dies)
    write_submission(course, ASSIGNMENT, "answers_not_found", answers_split_and_gone(copy.deepcopy(full)))
    broken = json.loads(nbformat.writes(full))
    del broken["cells"][6]["source"]  # valid JSON and a list of cells, but a cell nbformat cannot read
    write_submission(course, ASSIGNMENT, "cell_without_source", json.dumps(broken))
    # the second assignment's notebook, handed in under the first's name
    write_submission(course, ASSIGNMENT, "another_assignment", make_submission(*notebook_paths(course, TRAINING), None))
    result = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "2", status=1)  # the refused ones are NOT GRADED
    grades = {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}
    return {"course": course, "output": result.stdout + result.stderr, "grades": grades}


@pytest.mark.parametrize("student", ["full_solution", *REPAIRED])
def test_every_notebook_holding_the_answers_earns_them(reshaped, student):
    row = reshaped["grades"][student]
    assert row["status"] == "graded (manual part pending)", row
    assert scores(row) == FULL, row
    assert row["total"] == "21" and row["max_total"] == "23"


def test_lost_marks_are_found_by_position_and_said(reshaped):
    row = reshaped["grades"]["metadata_gone"]
    assert "matched by position" in row["message"], row
    html = (reshaped["course"] / "feedback" / "metadata_gone" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "matched by position" in html
    assert "matched by position" not in reshaped["grades"]["full_solution"]["message"]


def test_a_deleted_test_cell_is_the_graders(reshaped):
    assert float(reshaped["grades"]["test_cell_deleted"]["test_accuracy"]) == 2
    assert "test_accuracy" in reshaped["grades"]["test_cell_deleted"]["message"]  # said: it was put back


@pytest.mark.parametrize("student", list(REFUSED))
def test_not_graded_names_its_cause_and_its_log(reshaped, student):
    row = reshaped["grades"][student]
    assert row["status"] == "not graded", row
    assert REFUSED[student] in row["message"], row["message"]
    log = f"{LOG_FOLDER}/{student}.txt"
    assert log in row["message"], row["message"]
    assert (reshaped["course"] / log).read_text().strip()
    line = next(line for line in reshaped["output"].splitlines() if f"] {student}: NOT GRADED" in line)
    assert REFUSED[student] in line and log in line, line


def test_no_one_is_told_to_see_a_traceback_that_is_not_there(reshaped):
    texts = [reshaped["output"], (reshaped["course"] / "reports" / ASSIGNMENT / "grades.csv").read_text()]
    assert not any("above traceback" in text for text in texts)


def test_the_log_keeps_the_whole_story(reshaped):
    log = (reshaped["course"] / LOG_FOLDER / "answers_not_found.txt").read_text()
    assert "Traceback" in log and "could not be found" in log
    assert not (reshaped["course"] / LOG_FOLDER / "full_solution.txt").exists()


def test_plain_nbgrader_autograde_finds_lost_marks_too(reshaped):
    """The same repair in nbgrader's own command (its sanitize step, one notebook run in this process's kernel)."""
    import os
    import subprocess
    import sys

    from nbgrader.api import Gradebook

    nbgrader = os.path.join(os.path.dirname(sys.executable), "nbgrader")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    result = subprocess.run([nbgrader, "autograde", ASSIGNMENT, "--student=metadata_gone", "--force",
                             "--NbGrader.config_file=course_config"], cwd=reshaped["course"], capture_output=True,
                            text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "matched by position" in result.stderr
    with Gradebook(f"sqlite:///{reshaped['course'] / 'gradebook.db'}") as gradebook:
        graded = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "metadata_gone").grades
        assert {g.name: g.score for g in graded if g.name in FULL} == FULL
