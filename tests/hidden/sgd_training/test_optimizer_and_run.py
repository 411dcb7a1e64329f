"""Hidden checks for BasicOptim and for the training run of nn.Linear."""
import pytest
import torch

IN_PLACE_HINT = ("step() fails because it changes p itself: PyTorch does not let you change a leaf tensor that "
                 "requires grad in place. Update p.data, or do the update inside `with torch.no_grad():`")


def close(found, expected) -> bool:
    return isinstance(found, list) and len(found) == len(expected) and all(
        type(f) is torch.Tensor and f.shape == e.shape and torch.allclose(f, e, atol=1e-6) for f, e in zip(found, expected))


def moved(start, grads, lr, sign):
    return [s + sign * lr * g for s, g in zip(start, grads)]


@pytest.mark.grade("basic_optim", points=1)
def test_step_moves_against_the_gradient(student):
    """step() subtracts lr times the gradient from each parameter"""
    inputs = student.value("basic_optim", "inputs")
    student.value("basic_optim", "made")
    error = student.error("basic_optim", "after_first_step")
    if error and ("in-place" in error or "leaf Variable" in error):
        pytest.fail(IN_PLACE_HINT)
    found = student.value("basic_optim", "after_first_step")
    if close(found, moved(inputs["start"], inputs["first_grads"], inputs["lr"], +1)):
        pytest.fail("step() moves the parameters up the gradient, so the loss grows: subtract p.grad*lr, do not add it")
    if close(found, inputs["start"]):
        pytest.fail("step() left the parameters unchanged: change their values with p.data -= p.grad*self.lr")
    assert close(found, moved(inputs["start"], inputs["first_grads"], inputs["lr"], -1)), (
        "after step() each parameter should be p - lr*p.grad, with the lr given to BasicOptim")


@pytest.mark.grade("basic_optim", points=1)
def test_zero_grad_resets_the_gradients(student):
    """zero_grad() leaves no gradient behind: None or zeros"""
    student.value("basic_optim", "made")
    grads = student.value("basic_optim", "grads_after_zero_grad")
    assert all(g is None or (type(g) is torch.Tensor and not g.any()) for g in grads), (
        "zero_grad() left the gradients as they were: set p.grad = None for each parameter")


@pytest.mark.grade("basic_optim", points=1)
def test_every_step_updates_every_parameter(student):
    """the second step updates the parameters too, also when they came from a generator"""
    inputs = student.value("basic_optim", "inputs")
    student.value("basic_optim", "made")
    if student.error("basic_optim", "after_first_step"):
        return  # a failing step costs in the first check
    first = student.value("basic_optim", "after_first_step")
    second = student.value("basic_optim", "after_second_step")
    if close(second["values"], first):
        pytest.fail("the second step changed nothing: the parameters came from a generator, as model.parameters() does, "
                    "and a generator is used up by the first loop over it. Keep them with self.params = list(params)")
    # either sign: a wrong one costs in the first check
    assert any(close(second["values"], moved(first, inputs["second_grads"], inputs["lr"], sign)) for sign in (-1, 1)), (
        "the second step did not move each parameter by lr times its new gradient")


@pytest.mark.grade("training_run", points=1)
def test_run_trains_an_nn_linear(student):
    """linear_model is a torch.nn.Linear(28*28, 1), and it is the model trained"""
    model = student.value("training_run", "model")
    assert model["is_nn_linear"] and model["shape"] == [28 * 28, 1], (
        f"linear_model should be nn.Linear(28*28, 1); it is a {model['type']}"
        + (f" of shape {model['shape']}" if model["is_nn_linear"] else ""))
    assert model["trained"], "linear_model is not the model you trained: pass it to train_model"


@pytest.mark.grade("training_run", points=2)
def test_run_reaches_ninety_percent_within_twenty_epochs(student):
    """the trained model reaches a validation accuracy of 0.9 in at most 20 epochs"""
    student.value("training_run", "model")  # no linear_model made in the cell: not attempted
    epochs = student.value("training_run", "epochs")
    if epochs == 0:
        pytest.fail("the cell never trains a model: call train_model(linear_model, opt, 20)")
    assert epochs <= 20, f"the run took {epochs} epochs; it should reach 0.9 within 20"
    accuracy = student.value("training_run", "final_accuracy")
    assert accuracy >= 0.9, (
        f"after {epochs} epochs the validation accuracy is only {accuracy:.2f}; it should reach 0.9. "
        "Check the learning rate you give BasicOptim (lr = 1. works) and the number of epochs")


@pytest.mark.grade("training_run", points=1)
def test_run_plots_the_accuracy_per_epoch(student):
    """the cell plots the validation accuracy after each epoch"""
    student.value("training_run", "model")  # no linear_model made in the cell: not attempted
    accs = student.value("training_run", "accs")
    lines = student.value("training_run", "plotted")
    if not lines:
        pytest.fail("the cell draws no plot: plot the accuracies with plt.plot(accs)")
    assert accs and any(len(line) == len(accs) and all(abs(a - float(b)) < 1e-6 for a, b in zip(line, accs)) for line in lines), (
        "the plot does not show the accuracy after each epoch: plot the list train_model returned")
