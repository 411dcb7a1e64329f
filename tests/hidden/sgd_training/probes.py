"""What the grader asks of each submission of sgd_training, one probe per answer cell.

This file runs inside the student's kernel (see tests/hidden/mnist_sgd/probes.py
for how). Each probe re-runs one answer cell with the grader's own stand-ins for
everything the cell uses from the steps around it: its own data, parameters
and loaders, and correct versions of the functions of the other steps. So a
mistake in one step never spills into another, and every run is deterministic.
No reference values and no assertions here: those stay with the grader.

A correct stand-in for step S is named stand_in_<S>. The grader sends it into
the kernel only after S's own probe has run, so a student's S can never call it.
"""
import torch

N_PIXELS = 28 * 28


def _mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def stand_in_calc_grad(xb, yb, model):
    _mnist_loss(model(xb), yb).backward()


def stand_in_batch_accuracy(xb, yb):
    return ((xb > 0) == (yb == 1)).float().mean()


class stand_in_basic_optim:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        with torch.no_grad():
            for p in self.params:
                p -= p.grad * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _batches(seed, sizes):
    g = _generator(seed)
    return [(torch.rand(n, N_PIXELS, generator=g), torch.randint(0, 2, (n, 1), generator=g)) for n in sizes]


def _start_params(seed):
    g = _generator(seed)
    return torch.randn(N_PIXELS, 1, generator=g) * 0.05, torch.randn(1, generator=g) * 0.1


def _linear_model(weights, bias):
    return lambda xb: xb @ weights + bias


def _leaves(*values):
    return [v.clone().requires_grad_() for v in values]


def _name(namespace, name):
    if name not in namespace:
        raise NameError(f"{name} is not defined")
    return namespace[name]


def _grads(*params):
    return [p.grad for p in params]


def probe_calc_grad(run_cell):
    start = _start_params(11)
    (xb, yb), = _batches(12, [9])
    decoy_x, decoy_y = _batches(13, [5])[0]
    # linear1 with parameters of its own: a calc_grad that ignores `model` leaves ours without .grad
    decoy_params = _leaves(*_start_params(14))
    ns = run_cell(mnist_loss=_mnist_loss, train_x=decoy_x, train_y=decoy_y, linear1=_linear_model(*decoy_params),
                  weights=decoy_params[0], bias=decoy_params[1])

    def grads():
        weights, bias = _leaves(*start)
        _name(ns, "calc_grad")(xb, yb, _linear_model(weights, bias))
        return {"weights": weights.grad, "bias": bias.grad, "decoy_has_grad": decoy_params[0].grad is not None}

    return {"inputs": lambda: {"xb": xb, "yb": yb, "weights": start[0], "bias": start[1]}, "grads": grads}


def _epoch_inputs():
    weights, bias = _start_params(21)
    return {
        "weights": weights, "bias": bias, "lr": 0.5,
        "batches": _batches(22, [6, 6, 4]),  # what dl serves, the last batch smaller
        "dataset": [(x, y) for xb, yb in _batches(23, [7]) for x, y in zip(xb, yb)],  # a decoy dset
        "valid_batches": _batches(24, [5, 5]),  # a decoy valid_dl
        "global_lr": 100.0,  # a decoy global lr: a train_epoch that ignores its argument takes this one
    }


def probe_train_epoch(run_cell):
    inputs = _epoch_inputs()
    ns = run_cell(dl=inputs["batches"], dset=inputs["dataset"], valid_dl=inputs["valid_batches"], calc_grad=stand_in_calc_grad,
                  mnist_loss=_mnist_loss, lr=inputs["global_lr"])

    def after_one_epoch():
        weights, bias = _leaves(inputs["weights"], inputs["bias"])
        _name(ns, "train_epoch")(_linear_model(weights, bias), inputs["lr"], (weights, bias))
        return {"weights": weights, "bias": bias, "grads": _grads(weights, bias),
                "leaves": all(p.is_leaf and p.requires_grad for p in (weights, bias))}

    return {"inputs": lambda: inputs, "after_one_epoch": after_one_epoch}


def _accuracy_inputs():
    g = _generator(31)
    xb = torch.randn(40, 1, generator=g) * 2
    xb[:10] = torch.linspace(0.05, 0.45, 10).unsqueeze(1)  # above 0 but below 0.5: thresholding logits at 0.5 shows
    return {"xb": xb, "yb": torch.randint(0, 2, (40, 1), generator=g)}


def _more_accuracy_inputs():
    """Batches on which one accuracy cannot hide two mistakes that cancel."""
    g = _generator(32)
    on_half = torch.randn(12, 1, generator=g)
    on_half[:5] = 0.0  # sigmoid(0) is exactly 0.5, the threshold the contract names: a 7, since only above 0.5 is a 3
    return {
        "on_half": {"xb": on_half, "yb": torch.tensor([0, 0, 0, 1, 0] + [1, 0, 1, 1, 0, 0, 1]).unsqueeze(1)},
        "mostly_threes": {"xb": torch.rand(10, 1, generator=g) * 3 - 0.5, "yb": torch.ones(10, 1, dtype=torch.long)},
        "near_minus_one": {"xb": torch.linspace(-1.9, -0.1, 10).unsqueeze(1), "yb": torch.tensor([0, 0, 0, 0, 0, 0, 1, 0, 0, 0]).unsqueeze(1)},
    }


def probe_batch_accuracy(run_cell):
    inputs, more = _accuracy_inputs(), _more_accuracy_inputs()
    ns = run_cell()
    thunks = {"inputs": lambda: inputs, "accuracy": lambda: _name(ns, "batch_accuracy")(inputs["xb"], inputs["yb"]),
              "more_inputs": lambda: more}
    for name, batch in more.items():
        thunks[f"accuracy_{name}"] = lambda batch=batch: _name(ns, "batch_accuracy")(batch["xb"], batch["yb"])
    return thunks


def _labelled_batches(seed, model, sizes, right):
    """Batches on which `model` is right on exactly `right[i]` items of batch i."""
    batches = []
    for i, (xb, _) in enumerate(_batches(seed, sizes)):
        yb = (model(xb) > 0).long()
        yb[right[i]:] = 1 - yb[right[i]:]
        batches.append((xb, yb))
    return batches


def _validation_inputs():
    weights, bias = _start_params(41)
    model = _linear_model(weights, bias)
    return {
        "weights": weights, "bias": bias,
        # batches of one size, so that the mean of batch accuracies and the overall accuracy agree
        "valid_batches": _labelled_batches(42, model, [8, 8, 8], right=[8, 6, 4]),
        "train_batches": _labelled_batches(43, model, [8, 8], right=[2, 1]),
    }


def probe_validate_epoch(run_cell):
    inputs = _validation_inputs()
    model = _linear_model(inputs["weights"], inputs["bias"])
    decoy = _linear_model(-inputs["weights"], -inputs["bias"])
    ns = run_cell(valid_dl=inputs["valid_batches"], dl=inputs["train_batches"], batch_accuracy=stand_in_batch_accuracy, linear1=decoy)
    return {"inputs": lambda: inputs, "accuracy": lambda: _name(ns, "validate_epoch")(model)}


def _optim_inputs():
    g = _generator(51)
    return {"start": [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)], "lr": 0.1,
            "first_grads": [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)],
            "second_grads": [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)]}


def probe_basic_optim(run_cell):
    inputs = _optim_inputs()
    ns = run_cell()
    params = _leaves(*inputs["start"])
    state = {}

    def values():
        return [p.detach().clone() for p in params]

    def make():
        # a generator, as model.parameters() is: it can be looped over once only
        state["opt"] = _name(ns, "BasicOptim")((p for p in params), inputs["lr"])
        return True

    def first_step():
        for p, g in zip(params, inputs["first_grads"]):
            p.grad = g.clone()
        state["opt"].step()
        return values()

    def zero_grad():
        # an optimizer of its own, made from a list: keeping a generator costs in another check
        others = _leaves(*inputs["start"])
        for p, g in zip(others, inputs["first_grads"]):
            p.grad = g.clone()
        _name(ns, "BasicOptim")(list(others), inputs["lr"]).zero_grad()
        return _grads(*others)

    def second_step():
        for p, g in zip(params, inputs["second_grads"]):
            p.grad = g.clone()
        state["opt"].step()
        return {"values": values(), "leaves": all(p.is_leaf and p.requires_grad for p in params)}

    return {"inputs": lambda: inputs, "made": make, "after_first_step": first_step,
            "grads_after_zero_grad": zero_grad, "after_second_step": second_step}


def _training_inputs():
    weights, bias = _start_params(61)
    model = _linear_model(weights, bias)
    return {"weights": weights, "bias": bias, "lr": 0.5, "epochs": 3,
            "batches": _batches(62, [6, 6, 4]),
            "valid_batches": _labelled_batches(63, model, [8, 8], right=[5, 3])}


def probe_train_model(run_cell):
    inputs = _training_inputs()
    valid = inputs["valid_batches"]

    def validate(model):
        return round(torch.stack([stand_in_batch_accuracy(model(xb), yb) for xb, yb in valid]).mean().item(), 4)

    ns = run_cell(dl=inputs["batches"], calc_grad=stand_in_calc_grad, validate_epoch=validate, mnist_loss=_mnist_loss,
                  batch_accuracy=stand_in_batch_accuracy, BasicOptim=stand_in_basic_optim, lr=100.0)

    def trained():
        weights, bias = _leaves(inputs["weights"], inputs["bias"])
        accs = _name(ns, "train_model")(_linear_model(weights, bias), stand_in_basic_optim((weights, bias), inputs["lr"]), inputs["epochs"])
        return {"weights": weights, "bias": bias, "accs": accs}

    return {"inputs": lambda: inputs, "trained": trained}


def _mnist_sample():
    """The course's data, read from disk here, so that a run cannot be judged on data the notebook changed."""
    import numpy as np
    from PIL import Image

    from coursekit.data import mnist_sample_path

    path = mnist_sample_path()

    def split(name):
        images = [[torch.tensor(np.array(Image.open(f))) for f in sorted((path / name / d).iterdir())] for d in ("3", "7")]
        x = torch.stack(images[0] + images[1]).float().view(-1, N_PIXELS) / 255
        y = torch.tensor([1] * len(images[0]) + [0] * len(images[1])).unsqueeze(1)
        return list(zip(x, y))

    return split("train"), split("valid")


def probe_training_run(run_cell):
    import matplotlib.pyplot as plt
    from torch.utils.data import DataLoader

    train, valid = _mnist_sample()
    dl, valid_dl = DataLoader(train, batch_size=64, shuffle=True), DataLoader(valid, batch_size=100)
    seen = {"epochs": 0, "models": []}

    def validate(model):
        return round(torch.stack([stand_in_batch_accuracy(model(xb), yb) for xb, yb in valid_dl]).mean().item(), 4)

    def train_model(model, opt, epochs):
        seen["models"].append(model)
        accs = []
        for _ in range(epochs):
            seen["epochs"] += 1
            for xb, yb in dl:
                stand_in_calc_grad(xb, yb, model)
                opt.step()
                opt.zero_grad()
            accs.append(validate(model))
        seen["accs"] = accs
        return accs

    torch.manual_seed(0)
    plt.close("all")
    missing = object()  # the cell itself must make linear_model: the one an earlier cell made does not count
    ns = run_cell(dl=dl, valid_dl=valid_dl, train_model=train_model, calc_grad=stand_in_calc_grad, validate_epoch=validate,
                  batch_accuracy=stand_in_batch_accuracy, mnist_loss=_mnist_loss, BasicOptim=stand_in_basic_optim, lr=1.0, linear_model=missing)

    def model():
        found = _name(ns, "linear_model")
        if found is missing:
            raise NameError("linear_model is not made in this cell: create a fresh nn.Linear(28*28, 1) here")
        return {"type": type(found).__name__, "is_nn_linear": isinstance(found, torch.nn.Linear),
                "shape": [getattr(found, "in_features", None), getattr(found, "out_features", None)],
                "trained": any(m is found for m in seen["models"])}

    def accuracy():
        if not seen["models"]:
            raise RuntimeError("train_model was never called")
        return validate(seen["models"][-1])

    def plotted():
        lines = [[float(y) for y in line.get_ydata()] for n in plt.get_fignums() for ax in plt.figure(n).axes for line in ax.get_lines()]
        plt.close("all")  # nothing left for the kernel to render after the probe
        return lines

    return {"model": model, "epochs": lambda: seen["epochs"], "accs": lambda: seen.get("accs"),
            "final_accuracy": accuracy, "plotted": plotted}
