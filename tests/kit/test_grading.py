"""The whole flow on a real course directory: nbgrader's autograde with coursekit's
probes and hidden checks, one `coursekit grade` run over many submissions."""
import os

import pytest
from conftest import ASSIGNMENT, EQUIVALENTS, GRADED, MISTAKES, REPO, SIMPLE_NET, TRAINING, read_csv

from coursekit.samples import require_samples

FULL_SCORES = {
    ASSIGNMENT: {"test_flatten": 2, "test_labels": 2, "test_datasets": 2, "test_init_params": 3, "test_linear1": 3,
                 "test_accuracy": 2, "test_mnist_loss": 3, "test_dataloader": 4},
    TRAINING: {"test_calc_grad": 2, "test_train_epoch": 5, "test_batch_accuracy": 2, "test_validate_epoch": 2,
               "test_basic_optim": 3, "test_train_model": 3, "test_training_run": 4},
    SIMPLE_NET: {"test_relu": 2, "test_init": 3, "test_simple_net": 3, "test_seq_net": 3, "test_learner": 5, "test_net_run": 4},
}
WRITTEN = {ASSIGNMENT: "loss_vs_metric", SIMPLE_NET: "two_linear_layers"}  # the written answers, graded by a person
FULL = FULL_SCORES[ASSIGNMENT]
ASSIGNMENTS = pytest.mark.parametrize("assignment", list(GRADED))


def scores(row, assignment=ASSIGNMENT):
    return {name: float(row[name]) for name in FULL_SCORES[assignment]}


@pytest.fixture
def graded(request, assignment):
    """The session's graded course of this assignment."""
    return request.getfixturevalue(GRADED[assignment])


@ASSIGNMENTS
def test_source_solution_earns_full_marks(graded, assignment):
    row = graded["grades"]["full_marks"]
    assert scores(row, assignment) == FULL_SCORES[assignment]
    if assignment in WRITTEN:
        assert row["status"] == "graded (manual part pending)"
        assert row[WRITTEN[assignment]] == ""  # the written answer waits for a person
    else:
        assert row["status"] == "graded" and float(row["total"]) == sum(FULL_SCORES[assignment].values())


@ASSIGNMENTS
def test_untouched_release_earns_zero(graded, assignment):
    row = graded["grades"]["untouched_release"]
    assert row["status"].startswith("graded")
    assert set(scores(row, assignment).values()) == {0.0}
    hints = {c["hint"] for c in graded["checks"] if c["student"] == "untouched_release"}
    assert hints == {"not attempted yet: the answer cell still raises NotImplementedError"}, hints


@pytest.mark.parametrize("assignment,sample", MISTAKES, ids=lambda v: getattr(v, "name", v))
def test_mistake_costs_points_in_its_own_step_only(graded, assignment, sample):
    full = FULL_SCORES[assignment]
    got = scores(graded["grades"][sample.name], assignment)
    step = f"test_{sample.step}"
    assert 0 <= got[step] < full[step], f"{sample.name} should lose points in {step}"
    assert {k: v for k, v in got.items() if k != step} == {k: v for k, v in full.items() if k != step}
    failed = [c for c in graded["checks"] if c["student"] == sample.name and c["passed"] == "False"]
    assert [c["step"] for c in failed] and {c["step"] for c in failed} == {sample.step}
    assert len(failed) == 1, f"one mistake should fail one check, not {[c['check'] for c in failed]}"
    assert sample.hint.lower() in failed[0]["hint"].lower(), failed[0]["hint"]


@pytest.mark.parametrize("assignment,sample", EQUIVALENTS, ids=lambda v: getattr(v, "name", v))
def test_equivalent_code_earns_full_marks(graded, assignment, sample):
    assert scores(graded["grades"][sample.name], assignment) == FULL_SCORES[assignment]


def test_not_a_notebook_is_reported_and_others_graded(graded_course):
    row = graded_course["grades"]["not_json"]
    assert row["status"] == "not graded"
    assert row["message"].startswith("submitted/not_json/mnist_sgd/mnist_sgd.ipynb is not a notebook")


def test_renamed_notebook_is_reported(graded_course):
    row = graded_course["grades"]["renamed"]
    assert row["status"] == "not graded"
    assert "mnist_sgd.ipynb is missing" in row["message"] and "renamed" in row["message"]


def test_edited_locked_cell_is_restored_as_nbgrader_does(graded_course):
    # the worker ran the edited cell; nbgrader restores it, so the coordinator runs the notebook again
    assert scores(graded_course["grades"]["edits_locked_cell"]) == FULL


def test_dead_kernel_costs_only_that_submission(graded_course):
    row = graded_course["grades"]["kernel_dies"]
    assert row["status"] == "not graded" and "kernel died" in row["message"]


def test_hanging_function_fails_its_step_after_a_bounded_time(graded_course):
    got = scores(graded_course["grades"]["hangs"])
    assert got["test_accuracy"] == 0
    assert {k: v for k, v in got.items() if k != "test_accuracy"} == {k: v for k, v in FULL.items() if k != "test_accuracy"}
    hints = [c["hint"] for c in graded_course["checks"] if c["student"] == "hangs" and c["step"] == "accuracy"]
    assert hints and set(hints) == {"`accuracy` did not return within 15 s, so the grader stopped it: check it for a loop that "
                                    "never ends (a `while` whose condition never becomes false, say)"}, hints


def test_feedback_shows_the_hint(graded_course):
    html = (graded_course["course"] / "feedback" / "labels_reversed" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "train_y is reversed" in html
    assert "1 of 2 points" in html


def test_scores_are_in_nbgrader_gradebook(graded_course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded_course['course'] / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "threshold_half")
        found = {g.name: g.score for g in submission.grades}
    assert found["test_accuracy"] == 1 and found["test_flatten"] == 2


def test_progress_and_table_are_printed(graded_course):
    out = graded_course["output"]
    total = len(graded_course["grades"])
    failed = sum(row["status"] == "not graded" for row in graded_course["grades"].values())
    assert f"[1/{total} done, " in out and f"[{total}/{total} done, {failed} failed, " in out
    from coursekit.parallel import LocalWorkers, worker_processes

    processes = worker_processes(2, os.cpu_count() or 1, LocalWorkers.THREADS_PER_PROCESS)  # 2 on 2 cores
    assert "/min, about " in out and f"running submissions on 2 local workers ({processes} process{'es' * (processes > 1)})" in out
    assert "full_marks" in out.split("student")[-1]
    assert "graded in" in out


def test_seeded_training_run_is_judged_the_same_every_time(graded_training):
    hints = [[c["hint"] for c in graded_training["checks"] if c["student"] == student and c["step"] == "training_run"]
             for student in ("learning_rate_too_small", "learning_rate_too_small_again")]
    assert hints[0] == hints[1] and any("validation accuracy is only" in h for h in hints[0]), hints


def test_training_feedback_shows_the_plot_and_the_hint(graded_training):
    html = (graded_training["course"] / "feedback" / "grads_never_zeroed" / TRAINING / f"{TRAINING}.html").read_text()
    assert "the gradients are never reset, so they accumulate" in html
    assert "4 of 5 points" in html
    assert "data:image/png;base64," in html  # the accuracy plot drawn by the training run


def test_demo_grades_the_samples_of_every_assignment(demo_course):
    """`make demo` runs `coursekit demo`: the samples of every assignment are written, graded and tabled."""
    out = demo_course["output"]
    assert out.index("== mnist_sgd ==") < out.index("== sgd_training ==") < out.index("== simple_net ==")
    assert "8 of 8 graded in" in out and "7 of 7 graded in" in out
    assert "Hidden checks failed most often (of 8 submissions):" in out
    # an untouched notebook is counted apart, so that the hints shown are those of real mistakes
    assert "Steps not attempted: " in out and "most common hint (1x): not attempted" not in out
    rows = demo_course["grades"][ASSIGNMENT]
    assert rows["full_marks"]["total"] == "21" and rows["labels_reversed"]["total"] == "20"
    rows = demo_course["grades"][TRAINING]
    assert rows["full_marks"]["total"] == "21" and rows["untouched_release"]["total"] == "0"
    assert float(rows["grads_never_zeroed"]["total"]) == 20
    rows = demo_course["grades"][SIMPLE_NET]
    assert set(rows) == {"full_marks", "untouched_release", *require_samples(REPO, SIMPLE_NET).demo}
    assert all(row["status"] != "not graded" for row in rows.values())
