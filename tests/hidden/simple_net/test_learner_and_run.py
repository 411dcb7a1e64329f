"""Hidden checks for the Learner and for the training run of the network.

The Learner is fitted on fixed batches; the checks replay SGD on them, epoch by
epoch, to know the parameters and validation accuracies a correct Learner leaves,
and replay the typical mistakes (gradients never reset, accuracy measured on the
training batches) to name the one made. The run is re-run with torch.manual_seed(0)
on data the probe reads itself, and compared with the linear model of the reference's
run of the notebook (a locked cell trains it, from the same seed).
"""
import pytest
import torch


def mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def accuracy(weights, bias, batches) -> float:
    return torch.stack([((xb @ weights + bias > 0) == (yb == 1)).float().mean() for xb, yb in batches]).mean().item()


def replay(inputs, zero_grad=True):
    """The parameters after fit, and the accuracies on the validation and on the training batches after each epoch."""
    w, b = inputs["weights"].clone().requires_grad_(), inputs["bias"].clone().requires_grad_()
    valid, train = [], []
    for _ in range(inputs["epochs"]):
        for xb, yb in inputs["batches"]:
            mnist_loss(xb @ w + b, yb).backward()
            with torch.no_grad():
                for p in (w, b):
                    p -= inputs["lr"] * p.grad
                    if zero_grad:
                        p.grad = None
        with torch.no_grad():
            valid.append(accuracy(w, b, inputs["valid_batches"]))
            train.append(accuracy(w, b, inputs["batches"]))
    return {"params": [w.detach(), b.detach()], "valid": valid, "train": train}


def same(found, expected) -> bool:
    return all(type(f) is torch.Tensor and f.shape == e.shape and torch.allclose(f, e, atol=1e-5, rtol=1e-4)
               for f, e in zip(found, expected))


def fitted(student):
    found = student.value("learner", "fitted")
    return found, [found["weights"], found["bias"]], student.value("learner", "inputs")


# Learner

@pytest.mark.grade("learner", points=2)
def test_fit_takes_an_sgd_step_per_batch(student):
    """fit trains the model: one step of the optimizer it was given for every batch of the training loader, every epoch"""
    _, params, inputs = fitted(student)
    if same(params, replay(inputs, zero_grad=False)["params"]):
        return  # costs in the check below
    assert same(params, replay(inputs)["params"]), (
        "after fit the model's parameters are not those of SGD: make the optimizer with opt_func(model.parameters(), lr), "
        "then, each epoch, for each xb, yb of the training loader, compute loss_func(model(xb), yb), call backward on it, "
        "then the optimizer's step() and zero_grad(). Use the loaders, loss and learning rate the learner was given")


@pytest.mark.grade("learner", points=1)
def test_fit_resets_the_gradients(student):
    """the optimizer's zero_grad() after every step"""
    _, params, inputs = fitted(student)
    assert not same(params, replay(inputs, zero_grad=False)["params"]), (
        "the gradients are never reset, so they accumulate: each step also repeats all the steps before it. "
        "Call the optimizer's zero_grad() after its step()")


@pytest.mark.grade("learner", points=1)
def test_fit_records_an_accuracy_every_epoch(student):
    """accs holds one validation accuracy per epoch"""
    found, _, inputs = fitted(student)
    accs, epochs = found["accs"], inputs["epochs"]
    if not found["has_accs"]:
        pytest.fail("the learner has no attribute accs: keep the validation accuracies in a list self.accs")
    if not isinstance(accs, (list, tuple)):
        pytest.fail(f"accs should be a list of accuracies, one per epoch; it is a {type(accs).__name__}")
    assert len(accs) == epochs, (
        f"after fit({epochs}, lr) accs holds {len(accs)} accuracies: measure the validation set at the end of every epoch "
        "and append each result, so that we can see how the model learned")


@pytest.mark.grade("learner", points=1)
def test_fit_measures_the_validation_set(student):
    """each recorded accuracy is the metric on the validation loader after that epoch"""
    found, params, inputs = fitted(student)
    expected = replay(inputs)
    accs = found["accs"]
    if not isinstance(accs, (list, tuple)) or len(accs) != inputs["epochs"] or not same(params, expected["params"]):
        return  # costs in the checks above
    values = [float(a) if not isinstance(a, torch.Tensor) else float(a.reshape(-1)[0]) for a in accs]

    def match(target):
        return all(abs(v - t) < 1e-3 for v, t in zip(values, target))

    if match(expected["train"]):
        pytest.fail("the accuracies are measured on the training loader, on images the model trains on: measure them "
                    "on the validation loader, the second of dls, which the model never sees")
    assert match(expected["valid"]), (
        "the accuracies are not those of the model on the validation loader after each epoch: average the metric over "
        "the batches of the second loader of dls, once each epoch has run")


# the training run

@pytest.mark.grade("net_run", points=1)
def test_run_trains_a_neural_net(student):
    """net is a module with a non-linearity, trained by a Learner"""
    net = student.value("net_run", "net")
    assert net["is_module"], f"net should be an nn.Sequential like seq_net; it is a {net['type']}"
    assert not net["affine"], "net is a linear model: put nn.ReLU() between its two linear layers, as in seq_net"
    assert net.get("outputs") == [20, 1], (
        f"net gives {net.get('outputs', ['?'])[-1]} numbers per image: it should give one prediction per image, so its "
        "last layer is nn.Linear(30, 1)")
    assert net["trained"], "net is not the model your Learner trained: make learn = Learner(dls, net, ...) and call learn.fit"


@pytest.mark.grade("net_run", points=2)
def test_run_beats_the_linear_model(student, reference):
    """with the same budget, the network ends with a lower validation loss than the linear model"""
    student.value("net_run", "net")  # no net made in the cell: not attempted
    run = student.value("net_run", "trained")
    linear = reference.value("net_run", "linear")
    budget = len(linear["accs"])
    assert run["epochs"] <= budget, (
        f"the network trained for {run['epochs']} epochs and the linear model for {budget}: give them the same budget, "
        "learn.fit(epochs, lr)")
    assert run["loss"] < linear["loss"], (
        f"after {run['epochs']} epochs the network's validation loss is {run['loss']:.4f}, not below the linear model's: "
        "start from torch.manual_seed(0) and fit for epochs epochs at the learning rate lr, as the linear model did")


@pytest.mark.grade("net_run", points=1)
def test_run_plots_both_curves(student, reference):
    """one plot shows the validation accuracy per epoch of both models"""
    student.value("net_run", "net")  # no net made in the cell: not attempted
    run = student.value("net_run", "trained")
    linear = reference.value("net_run", "linear")
    lines = student.value("net_run", "plotted")
    if not lines:
        pytest.fail("the cell draws no plot: plot linear_accs and learn.accs with plt.plot")

    def shown(accs):
        return any(len(line) == len(accs) and all(abs(a - b) < 1e-6 for a, b in zip(line, accs)) for line in lines)

    assert shown(run["accs"]) and shown(linear["accs"]), (
        "the plot should show both curves, the accuracy after each epoch of the linear model (linear_accs) and of the "
        "network (learn.accs), so that we can compare them")
