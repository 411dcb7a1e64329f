"""RestoreCellMetadata alone, without a kernel: lost grading marks found again, deleted grader's cells put
back, a notebook that cannot be matched refused with the cells named; and a failure's cause read from
nbgrader's log. (The graded versions of these are in test_reshaped.py.)"""
import copy
from pathlib import Path

import nbformat
import pytest
from test_reshaped import answers_split_and_gone, delete, grade_id, metadata_gone

from coursekit.grade import autograde_failure, last_exception
from coursekit.samples import make_submission
from coursekit.sanitize import NOTE_HEADING, CellsNotFound, RestoreCellMetadata, sanitize_for_worker

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "source" / "mnist_sgd" / "mnist_sgd.ipynb"
RELEASE = REPO / "release" / "mnist_sgd" / "mnist_sgd.ipynb"


@pytest.fixture(scope="module")
def full():
    return make_submission(SOURCE, RELEASE, None)


def restore(nb):
    resources = {"nbgrader": {"assignment": "mnist_sgd", "notebook": "mnist_sgd", "student": "ada"}}
    nb, _ = RestoreCellMetadata(source_directory=str(REPO / "source")).preprocess(nb, resources)
    nbformat.validate(nb)
    return nb


def marks(nb):
    """Each cell's text (first line) with the grade id it carries."""
    return [(c.source.splitlines()[0] if c.source else "", grade_id(c)) for c in nb.cells if not c.source.startswith(NOTE_HEADING)]


def test_lost_marks_are_found_by_text_and_position(full):
    nb = restore(metadata_gone(copy.deepcopy(full)))
    assert marks(nb) == marks(full)
    assert nb.cells[0].source.startswith(NOTE_HEADING) and "matched by position" in nb.cells[0].source
    assert "matched by position" in nb.metadata["coursekit"]["repairs"][0]
    # the marks are the source's own (points, locked), not a guess
    source = {grade_id(c): c.metadata["nbgrader"] for c in nbformat.read(SOURCE, as_version=4).cells if grade_id(c)}
    assert all(c.metadata["nbgrader"] == source[grade_id(c)] for c in nb.cells if grade_id(c))


def test_a_notebook_whose_marks_are_intact_is_left_as_it_is(full):
    nb = restore(copy.deepcopy(full))
    assert marks(nb) == marks(full) and len(nb.cells) == len(full.cells)
    assert nb.metadata["coursekit"]["repairs"] == []


@pytest.mark.parametrize("gid,kind", [("test_accuracy", "test cell"), ("load_data", "given cell")])
def test_a_deleted_graders_cell_is_put_back_where_it_was(full, gid, kind):
    nb = restore(delete(gid)(copy.deepcopy(full)))
    assert marks(nb) == marks(full)
    assert nb.metadata["coursekit"]["repairs"] == [f"put back from the assignment, where it was deleted: {gid} ({kind})"]


def test_a_deleted_test_cell_is_put_back_also_when_every_mark_is_gone(full):
    nb = restore(metadata_gone(delete("test_accuracy")(copy.deepcopy(full))))
    assert marks(nb) == marks(full)


def test_answers_that_cannot_be_told_apart_refuse_the_notebook(full):
    with pytest.raises(CellsNotFound, match="grading marks were removed and 3 answer cells could not be found: flatten "
                                            r"\(2 code cells after .* where 1 was expected\); linear1 .*; mnist_loss"):
        restore(answers_split_and_gone(copy.deepcopy(full)))


def test_a_deleted_answer_with_marks_intact_is_said_not_refused(full):
    nb = restore(delete("accuracy")(copy.deepcopy(full)))
    assert nb.metadata["coursekit"]["repairs"] == [
        "the answer cell accuracy was not found (no code cell after the cell \"## Step 6: accuracy\" and before cell "
        "test_accuracy), so its step earns nothing"]


def test_a_copied_test_cell_without_marks_does_not_take_the_marks_twice(full):
    nb = delete("accuracy")(copy.deepcopy(full))  # something is missing, so cells are matched
    copied = copy.deepcopy(next(c for c in nb.cells if grade_id(c) == "test_linear1"))
    copied.metadata = nbformat.NotebookNode()
    copied["id"] = "copy-of-test"
    nb.cells.append(copied)
    ids = [grade_id(c) for c in restore(nb).cells if grade_id(c)]
    assert len(ids) == len(set(ids))


def test_the_worker_runs_the_course_kernel(full):
    nb = copy.deepcopy(full)
    nb.metadata["kernelspec"] = {"display_name": ".venv", "language": "python", "name": ".venv"}
    resources = {"nbgrader": {"assignment": "mnist_sgd", "notebook": "mnist_sgd", "student": "ada"}}
    nb, _ = sanitize_for_worker(nb, REPO / "source", resources)
    assert nb.metadata["kernelspec"]["name"] == "python3"


# what nbgrader's capture_log returns for a submission whose sanitize step raised (trimmed)
NBGRADER_LOG = """[INFO] Sanitizing /course/submitted/ada/mnist_sgd/mnist_sgd.ipynb
[ERROR] There was an error processing assignment: /course/submitted/ada/mnist_sgd
[ERROR] Traceback (most recent call last):
      File "/venv/nbgrader/converters/base.py", line 390, in convert_notebooks
        self.convert_single_notebook(notebook_filename)
        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/venv/nbclient/client.py", line 600, in async_start_new_kernel
        raise NoSuchKernel(kernel_name)
    jupyter_client.kernelspec.NoSuchKernel: No such kernel named .venv

[ERROR] There was an error processing assignment 'mnist_sgd' for student 'ada'
[ERROR] Please see the the above traceback for details on the specific errors on the above failures.
"""
NBGRADER_ERROR = """Traceback (most recent call last):
  File "/venv/nbgrader/converters/base.py", line 468, in convert_notebooks
    raise NbGraderException(msg)
nbgrader.converters.base.NbGraderException: Please see the the above traceback for details on the specific errors on the above failures.
"""


def test_a_failure_is_told_by_its_exception_not_by_nbgrader_summary():
    assert last_exception(NBGRADER_LOG) == "jupyter_client.kernelspec.NoSuchKernel: No such kernel named .venv"
    assert autograde_failure({"log": NBGRADER_LOG, "error": NBGRADER_ERROR}) == \
        "jupyter_client.kernelspec.NoSuchKernel: No such kernel named .venv"
    # no traceback in the log at all: never "see the above traceback"
    assert "above traceback" not in autograde_failure({"log": NBGRADER_LOG.split("[ERROR] Traceback")[0], "error": NBGRADER_ERROR})
