"""Hidden checks for the steps that take SGD steps: calc_grad, train_epoch, train_model.

The probes run the student's function on fixed parameters and batches; the
checks compare the parameters it leaves with the reference's. When they differ,
the grader replays the typical mistakes here (a plus sign, gradients never
zeroed, a loop over the dataset) to name the one that was made. Each mistake
fails one check; the others let it pass, because it costs points there.
"""
import pytest
import torch
from torch.testing import assert_close


def mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def sgd(weights, bias, batches, lr, sign=-1.0, zero_grad=True):
    """The parameters after SGD over `batches`, as a correct loop leaves them, or with one mistake."""
    w, b = weights.clone().requires_grad_(), bias.clone().requires_grad_()
    for xb, yb in batches:
        mnist_loss(xb @ w + b, yb).backward()
        with torch.no_grad():
            for p in (w, b):
                p += sign * lr * p.grad
                if zero_grad:
                    p.grad.zero_()
    return [w.detach(), b.detach()]


def same(found, expected) -> bool:
    return all(type(f) is torch.Tensor and f.shape == e.shape and torch.allclose(f, e, atol=1e-5, rtol=1e-4)
               for f, e in zip(found, expected))


# calc_grad

@pytest.mark.grade("calc_grad", points=1)
def test_calc_grad_fills_in_the_gradients(student):
    """after calc_grad every parameter of the model has a gradient"""
    grads = student.value("calc_grad", "grads")
    if grads["weights"] is None or grads["bias"] is None:
        if grads["decoy_has_grad"]:
            pytest.fail("calc_grad predicted with linear1, not with the model it was given: use model(xb)")
        pytest.fail("after calc_grad the parameters have no gradient: call .backward() on the loss")


@pytest.mark.grade("calc_grad", points=1)
def test_calc_grad_gives_the_gradients_of_the_loss(student, reference):
    """the gradients are those of mnist_loss(model(xb), yb)"""
    grads = student.value("calc_grad", "grads")
    if grads["weights"] is None or grads["bias"] is None:
        return  # no gradient at all costs in the check above
    expected = reference.value("calc_grad", "grads")
    assert same([grads["weights"], grads["bias"]], [expected["weights"], expected["bias"]]), (
        "the gradients are not those of the loss of this batch: predict with model(xb), "
        "compute mnist_loss(preds, yb) and call backward on that loss")


# train_epoch

IN_PLACE_HINT = ("updating p itself fails: PyTorch does not let you change a leaf tensor that requires grad in place. "
                 "Update p.data (p.data -= p.grad*lr), or do the update inside `with torch.no_grad():`")


def epoch_outcome(student, reference) -> str:
    """Which of the known outcomes the student's train_epoch had: 'right', a named mistake, or 'other'."""
    error = student.error("train_epoch", "after_one_epoch")
    if error:
        if "in-place" in error or "leaf Variable" in error:
            return "in_place"
        # `p = p - ...` makes p a new tensor, without a gradient of its own
        return "rebinds" if "'NoneType' object has no attribute" in error else "error"
    found = student.value("train_epoch", "after_one_epoch")
    if not found["leaves"]:
        return "not_leaves"
    params = [found["weights"], found["bias"]]
    inputs = student.value("train_epoch", "inputs")
    start, batches, lr = [inputs["weights"], inputs["bias"]], inputs["batches"], inputs["lr"]
    expected = reference.value("train_epoch", "after_one_epoch")
    mistakes = {
        "unchanged": start,
        "plus": sgd(*start, batches, lr, sign=1.0),
        "accumulates": sgd(*start, batches, lr, zero_grad=False),
        "dataset": sgd(*start, inputs["dataset"], lr),
        "valid_dl": sgd(*start, inputs["valid_batches"], lr),
        # the lr argument ignored: the notebook's global lr (a decoy in the probe), or no learning rate at all
        "ignores_lr": sgd(*start, batches, inputs["global_lr"]),
        "no_lr": sgd(*start, batches, 1.0),
    }
    if same(params, [expected["weights"], expected["bias"]]):
        return "right"
    return next((name for name, mistake in mistakes.items() if same(params, mistake)), "other")


@pytest.mark.grade("train_epoch", points=1)
def test_train_epoch_changes_the_parameters(student, reference):
    """the parameters change where the model sees them, and stay tensors that require grad"""
    outcome = epoch_outcome(student, reference)
    if outcome == "in_place":
        pytest.fail(IN_PLACE_HINT)
    if outcome == "rebinds":
        pytest.fail("p.grad is None after the update: `p = p - ...` makes p a new tensor, which has no gradient, and "
                    "leaves the parameter itself unchanged. Change the parameter's values with p.data -= p.grad*lr")
    if outcome == "unchanged":
        pytest.fail("after an epoch the parameters are unchanged: `p = p - ...` makes a new tensor and leaves the "
                    "parameter as it was. Change the parameter's values with p.data -= p.grad*lr")
    if outcome == "not_leaves":
        pytest.fail("after an epoch the parameters no longer require grad, or are no longer leaves: change p.data, not p")


@pytest.mark.grade("train_epoch", points=1)
def test_train_epoch_steps_against_the_gradient(student, reference):
    """each step moves the parameters against the gradient: p minus lr times its gradient"""
    assert epoch_outcome(student, reference) != "plus", (
        "the steps go up the gradient, so the loss grows: subtract p.grad*lr from p.data, do not add it")


@pytest.mark.grade("train_epoch", points=1)
def test_train_epoch_zeroes_the_gradients(student, reference):
    """the gradients are reset after each step, so that each step follows its own batch"""
    assert epoch_outcome(student, reference) != "accumulates", (
        "the gradients are never reset, so they accumulate: each step also repeats all the steps before it. "
        "Call p.grad.zero_() after updating each p")


@pytest.mark.grade("train_epoch", points=1)
def test_train_epoch_loops_over_the_dataloader(student, reference):
    """one step per mini-batch of dl"""
    outcome = epoch_outcome(student, reference)
    assert outcome != "dataset", (
        "train_epoch loops over the dataset dset, one image at a time, instead of over the DataLoader dl: "
        "write `for xb, yb in dl:` so that each step uses a mini-batch")
    assert outcome != "valid_dl", (
        "train_epoch trains on valid_dl, the validation images, instead of the training DataLoader dl: write "
        "`for xb, yb in dl:`. The validation set must stay unseen, or its accuracy says nothing about new images")


@pytest.mark.grade("train_epoch", points=1)
def test_train_epoch_is_one_sgd_step_per_batch(student, reference):
    """after one epoch the parameters are those of SGD with the learning rate given"""
    outcome = epoch_outcome(student, reference)
    if outcome == "error":
        pytest.fail(f"train_epoch raised {student.error('train_epoch', 'after_one_epoch')}")
    if outcome in ("ignores_lr", "no_lr"):
        pytest.fail("the steps do not use the learning rate train_epoch is given: "
                    + ("they take the notebook's global lr instead of the argument lr" if outcome == "ignores_lr" else
                       "p.grad is subtracted as it is, without multiplying it by lr")
                    + ". Write p.data -= p.grad*lr with lr, the argument, so that the caller chooses the step size")
    assert outcome != "other", (
        "after one epoch the parameters are not those of SGD: for each xb, yb in dl call calc_grad(xb, yb, model), "
        "then for each p in params subtract p.grad*lr from p.data and zero p.grad. Use the lr and params passed in")


# train_model

def trained(student):
    found = student.value("train_model", "trained")
    return found, [found["weights"], found["bias"]]


@pytest.mark.grade("train_model", points=1)
def test_train_model_steps_with_the_optimizer(student, reference):
    """every epoch, every mini-batch: gradients, then opt.step()"""
    found, params = trained(student)
    expected = reference.value("train_model", "trained")
    inputs = student.value("train_model", "inputs")
    accumulated = sgd(inputs["weights"], inputs["bias"], inputs["batches"] * inputs["epochs"], inputs["lr"], zero_grad=False)
    if same(params, accumulated):
        return  # costs in the check below
    assert same(params, [expected["weights"], expected["bias"]]), (
        "after training the parameters are not those of SGD: for each of the epochs, for each xb, yb in dl, "
        "call calc_grad(xb, yb, model), then opt.step() and opt.zero_grad()")


@pytest.mark.grade("train_model", points=1)
def test_train_model_resets_the_gradients(student):
    """opt.zero_grad() after every step"""
    _, params = trained(student)
    inputs = student.value("train_model", "inputs")
    accumulated = sgd(inputs["weights"], inputs["bias"], inputs["batches"] * inputs["epochs"], inputs["lr"], zero_grad=False)
    assert not same(params, accumulated), (
        "the gradients are never reset, so they accumulate from step to step: call opt.zero_grad() after opt.step()")


@pytest.mark.grade("train_model", points=1)
def test_train_model_returns_one_accuracy_per_epoch(student, reference):
    """train_model returns a list of the validation accuracies, one after each epoch"""
    found, params = trained(student)
    expected = reference.value("train_model", "trained")
    epochs = student.value("train_model", "inputs")["epochs"]
    accs = found["accs"]
    if not isinstance(accs, (list, tuple)):
        pytest.fail(f"train_model should return the list of accuracies, one per epoch; it returned a {type(accs).__name__}")
    assert len(accs) == epochs, f"for {epochs} epochs train_model returned {len(accs)} accuracies: validate after every epoch"
    if same(params, [expected["weights"], expected["bias"]]):  # the same training, so the same accuracies
        values = [float(a) for a in accs]
        assert_close(values, [float(a) for a in expected["accs"]], atol=1e-4, rtol=0,
                     msg="the accuracies are not those of the model after each epoch: call validate_epoch(model) once each epoch has run")
