"""What the grader asks of each submission of simple_net, one probe per answer cell.

This file runs inside the student's kernel (see tests/hidden/mnist_sgd/probes.py
for how). Each probe re-runs one answer cell with the grader's own stand-ins for
everything the cell uses from the steps around it: its own parameters, batches
and loaders, and correct versions of the functions of the other steps. So a
mistake in one step never spills into another, and every run is deterministic.
No reference values and no assertions here: those stay with the grader.

A correct stand-in for step S is named stand_in_<S>. The grader sends it into
the kernel only after S's own probe has run, so a student's S can never call it.
"""
import torch
nn = torch.nn

N_PIXELS = 28 * 28
HIDDEN = 30
EPOCHS, LR = 10, 1.0  # the budget of the notebook's linear model (a locked cell), which the network's run gets too


def _mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def _batch_accuracy(xb, yb):
    return ((xb > 0) == (yb == 1)).float().mean()


class _BasicOptim:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        with torch.no_grad():
            for p in self.params:
                p -= p.grad * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


def stand_in_relu(x):
    return x.clamp(min=0)


class stand_in_learner:
    def __init__(self, dls, model, opt_func, loss_func, metric):
        self.dls, self.model, self.opt_func, self.loss_func, self.metric = dls, model, opt_func, loss_func, metric
        self.accs = []

    def fit(self, epochs, lr):
        train, valid = self.dls
        opt = self.opt_func(self.model.parameters(), lr)
        for _ in range(epochs):
            for xb, yb in train:
                self.loss_func(self.model(xb), yb).backward()
                opt.step()
                opt.zero_grad()
            with torch.no_grad():
                self.accs.append(round(torch.stack([self.metric(self.model(xb), yb) for xb, yb in valid]).mean().item(), 4))


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _batches(seed, sizes):
    g = _generator(seed)
    return [(torch.rand(n, N_PIXELS, generator=g), torch.randint(0, 2, (n, 1), generator=g)) for n in sizes]


def _name(namespace, name):
    if name not in namespace:
        raise NameError(f"{name} is not defined")
    return namespace[name]


def probe_relu(run_cell):
    x = torch.randn(6, 5, generator=_generator(1))
    x[0, 0] = 0.0
    ns = run_cell()
    return {"input": lambda: x, "output": lambda: _name(ns, "relu")(x.clone())}


def _init_params(size, std=1.0):
    return (torch.randn(size) * std).requires_grad_()


def probe_init(run_cell):
    torch.manual_seed(0)
    ns = run_cell(init_params=_init_params)

    def described(name):
        p = _name(ns, name)
        return {"shape": list(p.shape), "requires_grad": bool(p.requires_grad)}

    return {name: (lambda name=name: described(name)) for name in ("w1", "b1", "w2", "b2")}


def _net_inputs(seed):
    """Parameters of the two layers as simple_net uses them (xb@w1 + b1), and a batch on which the ReLU matters
    (seed 41: some hidden values and some predictions are negative)."""
    g = _generator(seed)
    w1, b1 = torch.randn(N_PIXELS, HIDDEN, generator=g) * 0.1, torch.randn(HIDDEN, generator=g)
    w2, b2 = torch.randn(HIDDEN, 1, generator=g) * 0.5, torch.randn(1, generator=g)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "xb": torch.rand(6, N_PIXELS, generator=g)}


def probe_simple_net(run_cell):
    inputs = _net_inputs(41)  # its predictions have both signs (seed 31's are all positive): a relu on the output shows
    ns = run_cell(relu=stand_in_relu, init_params=_init_params, **{k: v for k, v in inputs.items() if k != "xb"})
    return {"inputs": lambda: inputs, "preds": lambda: _name(ns, "simple_net")(inputs["xb"])}


def probe_seq_net(run_cell):
    inputs = _net_inputs(41)
    torch.manual_seed(0)
    ns = run_cell(relu=stand_in_relu)

    def layers():
        net = _name(ns, "seq_net")
        module = isinstance(net, nn.Module)
        return {"type": type(net).__name__, "is_module": module, "shapes": [list(p.shape) for p in net.parameters()] if module else []}

    def preds():
        net = _name(ns, "seq_net")
        # nn.Linear keeps its weights one row per output: the transpose of w1 and w2
        values = [inputs["w1"].t(), inputs["b1"], inputs["w2"].t(), inputs["b2"]]
        with torch.no_grad():
            for p, v in zip(net.parameters(), values):
                p.copy_(v)
            return net(inputs["xb"])

    return {"inputs": lambda: inputs, "layers": layers, "preds": preds}


def _labelled_batches(seed, weights, bias, sizes, right):
    """Batches on which the linear model (weights, bias) is right on exactly `right[i]` items of batch i."""
    batches = []
    for i, (xb, _) in enumerate(_batches(seed, sizes)):
        yb = (xb @ weights + bias > 0).long()
        yb[right[i]:] = 1 - yb[right[i]:]
        batches.append((xb, yb))
    return batches


def _learner_inputs():
    g = _generator(51)
    weights, bias = torch.randn(N_PIXELS, 1, generator=g) * 0.05, torch.randn(1, generator=g) * 0.1
    return {"weights": weights, "bias": bias, "lr": 0.5, "epochs": 3,
            "batches": _batches(52, [6, 6, 4]),
            "valid_batches": _labelled_batches(53, weights, bias, [8, 8], right=[5, 3]),
            "decoy_batches": _batches(54, [5, 5])}  # the notebook's dl and valid_dl: a learner must use its dls


def probe_learner(run_cell):
    inputs = _learner_inputs()
    decoys = (inputs["decoy_batches"], inputs["decoy_batches"])
    ns = run_cell(dl=decoys[0], valid_dl=decoys[1], dls=decoys, BasicOptim=_BasicOptim, mnist_loss=_mnist_loss,
                  batch_accuracy=_batch_accuracy, lr=100.0, epochs=7)

    def fitted():
        model = nn.Linear(N_PIXELS, 1)
        with torch.no_grad():
            model.weight.copy_(inputs["weights"].t())
            model.bias.copy_(inputs["bias"])
        learn = _name(ns, "Learner")((inputs["batches"], inputs["valid_batches"]), model, _BasicOptim, _mnist_loss, _batch_accuracy)
        learn.fit(inputs["epochs"], inputs["lr"])
        return {"weights": model.weight.detach().t(), "bias": model.bias.detach(), "accs": getattr(learn, "accs", None),
                "has_accs": hasattr(learn, "accs")}

    return {"inputs": lambda: inputs, "fitted": fitted}


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
        return x, y

    return split("train"), split("valid")


def probe_net_run(run_cell):
    import matplotlib.pyplot as plt
    from torch.utils.data import DataLoader

    (train_x, train_y), (valid_x, valid_y) = _mnist_sample()
    dls = DataLoader(list(zip(train_x, train_y)), batch_size=64, shuffle=True), DataLoader(list(zip(valid_x, valid_y)), batch_size=100)
    learners = []

    def valid_loss(model):
        with torch.no_grad():
            return round(_mnist_loss(model(valid_x), valid_y).item(), 4)

    class Learner(stand_in_learner):
        def fit(self, epochs, lr):
            learners.append((self, epochs))
            super().fit(epochs, lr)

    torch.manual_seed(0)
    plt.close("all")
    missing = object()  # the cell itself must make net: one an earlier cell made does not count
    # the notebook's own linear model and its accuracies (a locked cell made them): what the student plots beside the net's
    ns = run_cell(dl=dls[0], valid_dl=dls[1], dls=dls, valid_x=valid_x, valid_y=valid_y, Learner=Learner, BasicOptim=_BasicOptim,
                  mnist_loss=_mnist_loss, batch_accuracy=_batch_accuracy, valid_loss=valid_loss, relu=stand_in_relu,
                  epochs=EPOCHS, lr=LR, net=missing)

    def net():
        found = _name(ns, "net")
        if found is missing:
            raise NameError("net is not made in this cell: create a fresh nn.Sequential here")
        described = {"type": type(found).__name__, "is_module": isinstance(found, nn.Module),
                     "trained": any(learn.model is found for learn, _ in learners), "affine": None}
        if described["is_module"]:
            a, b = valid_x[:20], valid_x[100:120]  # an affine model maps the midpoint of two images to the midpoint of its outputs
            with torch.no_grad():
                described["affine"] = bool(torch.allclose(found((a + b) / 2), (found(a) + found(b)) / 2, atol=1e-5))
                described["outputs"] = list(found(a).shape)  # one prediction per image: (20, 1)
        return described

    def trained():
        if not learners:
            raise RuntimeError("no Learner was fitted")
        learn = learners[-1][0]
        return {"epochs": sum(e for other, e in learners if other.model is learn.model), "accs": list(learn.accs),
                "loss": valid_loss(learn.model)}

    def plotted():
        lines = [[float(y) for y in line.get_ydata()] for n in plt.get_fignums() for ax in plt.figure(n).axes for line in ax.get_lines()]
        plt.close("all")  # nothing left for the kernel to render after the probe
        return lines

    def linear():
        return {"accs": [float(a) for a in _name(ns, "linear_accs")], "loss": valid_loss(_name(ns, "linear_model"))}

    return {"net": net, "trained": trained, "linear": linear, "plotted": plotted}
