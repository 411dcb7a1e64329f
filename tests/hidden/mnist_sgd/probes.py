"""What the grader asks of each submission, one probe per answer cell.

This file runs inside the student's kernel. Each probe_<grade_id> re-runs the
student's answer cell with run_cell(**inputs) on a copy of the notebook's
namespace, replacing the names in `inputs` with stand-ins the grader made, so
that a mistake in an earlier step cannot spill into this one. It returns
thunks: each is called on its own, so one failing value does not hide the
others. No reference values and no assertions here: those stay with the
grader (test_*.py beside this file).
"""
import string

import torch

# Small stand-ins for the given data. The counts differ on purpose, so that code
# which assumes as many 3s as 7s, or mixes up train and valid, shows it.
N_THREES, N_SEVENS, N_VALID_THREES, N_VALID_SEVENS = 5, 4, 3, 2


def _images(n, seed):
    return torch.rand(n, 28, 28, generator=torch.Generator().manual_seed(seed))


def _data():
    threes, sevens = _images(N_THREES, 1), _images(N_SEVENS, 2)
    valid_threes, valid_sevens = _images(N_VALID_THREES, 3), _images(N_VALID_SEVENS, 4)
    return dict(
        stacked_threes=threes, stacked_sevens=sevens, valid_3_tens=valid_threes, valid_7_tens=valid_sevens,
        threes=[f"train/3/{i}.png" for i in range(N_THREES)], sevens=[f"train/7/{i}.png" for i in range(N_SEVENS)],
    )


def _flat_data():
    data = _data()
    data["train_x"] = torch.cat([data["stacked_threes"], data["stacked_sevens"]]).view(-1, 28 * 28)
    data["valid_x"] = torch.cat([data["valid_3_tens"], data["valid_7_tens"]]).view(-1, 28 * 28)
    return data


def _name(namespace, name):
    if name not in namespace:
        raise NameError(f"{name} is not defined")
    return namespace[name]


def probe_flatten(run_cell):
    ns = run_cell(**_data())
    return {name: (lambda name=name: _name(ns, name)) for name in ("train_x", "valid_x")}


def probe_labels(run_cell):
    ns = run_cell(**_flat_data())
    return {name: (lambda name=name: _name(ns, name)) for name in ("train_y", "valid_y")}


def probe_datasets(run_cell):
    data = _flat_data()
    data["train_y"] = torch.tensor([1] * N_THREES + [0] * N_SEVENS).unsqueeze(1)
    data["valid_y"] = torch.tensor([1] * N_VALID_THREES + [0] * N_VALID_SEVENS).unsqueeze(1)
    ns = run_cell(**data)
    thunks = {"inputs": lambda: {k: data[k] for k in ("train_x", "train_y", "valid_x", "valid_y")}}
    for name in ("dset", "valid_dset"):
        # type and len first: taking the items consumes an iterator such as a bare zip
        thunks[f"{name}_type"] = lambda name=name: type(_name(ns, name)).__name__
        thunks[f"{name}_len"] = lambda name=name: len(_name(ns, name))
        thunks[f"{name}_items"] = lambda name=name: take(_name(ns, name), 100)
    return thunks


def _tensor_facts(make):
    value = make()
    return {
        "value": value,
        "requires_grad": getattr(value, "requires_grad", None),
        "is_leaf": getattr(value, "is_leaf", None),
    }


def probe_init_params(run_cell):
    ns = run_cell()
    return {
        "default_std": lambda: _tensor_facts(lambda: _name(ns, "init_params")((1000, 20))),
        "std_0.1": lambda: _tensor_facts(lambda: _name(ns, "init_params")((1000, 20), std=0.1)),
        "std_3": lambda: _tensor_facts(lambda: _name(ns, "init_params")((1000, 20), 3.0)),
        "size_1": lambda: _tensor_facts(lambda: _name(ns, "init_params")(1)),
    }


def _linear_inputs():
    g = torch.Generator().manual_seed(5)
    return {
        "xb": torch.rand(7, 28 * 28, generator=g),
        "weights": torch.randn(28 * 28, 1, generator=g),
        "bias": torch.randn(1, generator=g),
        "decoy_train_x": torch.rand(3, 28 * 28, generator=g),
        "next_weights": torch.randn(28 * 28, 1, generator=g),
        "next_bias": torch.tensor([2.5]),
        # pixels of both signs (as normalised images have): half the predictions are negative, so a linear1
        # that turns negative predictions into 0 or flips them shows; the first xb's predictions are all positive
        "signed_xb": torch.randn(9, 28 * 28, generator=g),
    }


def probe_linear1(run_cell):
    inputs = _linear_inputs()
    # train_x is a decoy, so that a linear1 that ignores xb gives itself away
    ns = run_cell(weights=inputs["weights"], bias=inputs["bias"], train_x=inputs["decoy_train_x"])

    def after_new_parameters():
        ns["weights"], ns["bias"] = inputs["next_weights"], inputs["next_bias"]
        return _name(ns, "linear1")(inputs["xb"])

    return {
        "inputs": lambda: inputs,
        "preds": lambda: _name(ns, "linear1")(inputs["xb"]),
        "preds_after_new_parameters": after_new_parameters,
        "signed_preds": lambda: _name(ns, "linear1")(inputs["signed_xb"]),
    }


def _accuracy_inputs():
    g = torch.Generator().manual_seed(6)
    preds = torch.randn(40, 1, generator=g) * 2
    preds[:8] = torch.linspace(0.05, 0.45, 8).unsqueeze(1)  # between 0 and 0.5: a 0.5 threshold shows
    return {"preds": preds, "targets": torch.randint(0, 2, (40, 1), generator=g)}


def _more_accuracy_inputs():
    """Batches on which one accuracy cannot hide two mistakes that cancel: each tells other thresholds apart."""
    g = torch.Generator().manual_seed(16)
    on_zero = torch.randn(12, 1, generator=g)
    on_zero[:5] = 0.0  # exactly on the threshold the contract names: a 7, since only above 0 is a 3
    mostly_threes = torch.rand(10, 1, generator=g) * 3 - 0.5  # most above 0, a few between -0.5 and 0
    near_minus_one = torch.linspace(-1.9, -0.1, 10).unsqueeze(1)  # all 7s, below 0 and around -1
    return {
        "on_zero": {"preds": on_zero, "targets": torch.tensor([0, 0, 0, 1, 0] + [1, 0, 1, 1, 0, 0, 1]).unsqueeze(1)},
        "mostly_threes": {"preds": mostly_threes, "targets": torch.ones(10, 1, dtype=torch.long)},
        "near_minus_one": {"preds": near_minus_one, "targets": torch.tensor([0, 0, 0, 0, 0, 0, 1, 0, 0, 0]).unsqueeze(1)},
    }


def probe_accuracy(run_cell):
    inputs, more = _accuracy_inputs(), _more_accuracy_inputs()
    ns = run_cell()
    thunks = {"inputs": lambda: inputs, "accuracy": lambda: _name(ns, "accuracy")(inputs["preds"], inputs["targets"]),
              "more_inputs": lambda: more}
    for name, batch in more.items():
        thunks[f"accuracy_{name}"] = lambda batch=batch: _name(ns, "accuracy")(batch["preds"], batch["targets"])
    return thunks


def _loss_inputs():
    g = torch.Generator().manual_seed(7)
    return {"predictions": torch.randn(30, 1, generator=g) * 2, "targets": torch.randint(0, 2, (30, 1), generator=g)}


def probe_mnist_loss(run_cell):
    inputs = _loss_inputs()
    ns = run_cell()
    predictions = inputs["predictions"].clone().requires_grad_()
    outcome = {}

    def loss():
        outcome["loss"] = _name(ns, "mnist_loss")(predictions, inputs["targets"])
        return outcome["loss"]

    def gradient():
        if "loss" not in outcome:
            raise RuntimeError("mnist_loss did not return a value")
        found = outcome["loss"]
        if not getattr(found, "requires_grad", False):
            raise RuntimeError("the loss is not connected to the predictions, so backward() cannot run")
        found.sum().backward()
        return predictions.grad

    return {"inputs": lambda: inputs, "loss": loss, "loss_requires_grad": lambda: getattr(outcome.get("loss"), "requires_grad", None), "gradient": gradient}


def _pairs():
    # xs of both signs: a collate that zeroes or flips negative numbers shows
    return [(torch.full((6,), i - 4.5), torch.tensor([i % 2])) for i in range(10)]


def probe_dataloader(run_cell):
    ns = run_cell()

    def loader(*args, **kwargs):
        return _name(ns, "DataLoader")(*args, **kwargs)

    def epochs():
        # 64 items in batches of 8: no partial batch, so only shuffling is judged here
        dl = loader(range(64), batch_size=8, shuffle=True)
        return [take(dl, 100) for _ in range(3)]

    return {
        "in_order_17": lambda: take(loader(range(17), batch_size=5), 30),
        "in_order_15": lambda: take(loader(range(15), batch_size=5), 30),
        "len_17": lambda: len(loader(range(17), batch_size=5)),
        "len_15": lambda: len(loader(range(15), batch_size=5)),
        # every remainder of a division by 3: 0, 1 and 2 items left over for a last, partial batch
        "lens_by_3": lambda: [len(loader(range(n), batch_size=3)) for n in (6, 7, 8)],
        "in_order_7": lambda: take(loader(range(7), batch_size=3), 30),
        "signed_numbers": lambda: take(loader([-3.0, -1.5, 0.0, 2.0, -7.0], batch_size=2), 30),
        "default_batch_size": lambda: take(loader(range(3)), 30),
        "shuffled_epochs": epochs,
        "pairs": lambda: take(loader(_pairs(), batch_size=4), 30),
        "letters": lambda: take(loader(list(enumerate(string.ascii_lowercase)), batch_size=6, shuffle=True), 30),
    }
