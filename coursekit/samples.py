"""Sample submissions: the reference solution typed into the student notebook,
with one typical mistake or one equivalent rewrite.

The demo grades a few of them; the kit's tests grade them all. Each is built
from source/ and release/, so it follows the notebook when the notebook changes
(a rewrite that no longer applies raises, rather than quietly testing nothing).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

DATALOADER_RANDOM_SHUFFLE = '''
import random

class DataLoader:
    "Shuffles a list of indices with random.shuffle; collates with a helper."
    def __init__(self, dataset, batch_size=1, shuffle=False):
        self.dataset, self.bs, self.shuffle = dataset, batch_size, shuffle
    def __len__(self):
        return -(-len(self.dataset) // self.bs)
    def _collate(self, batch):
        if isinstance(batch[0], tuple):
            return tuple(self._collate([b[i] for b in batch]) for i in range(len(batch[0])))
        if isinstance(batch[0], torch.Tensor):
            return torch.stack(batch)
        if isinstance(batch[0], str):
            return tuple(batch)
        return torch.tensor(batch)
    def __iter__(self):
        idxs = list(range(len(self.dataset)))
        if self.shuffle:
            random.shuffle(idxs)
        batches = [idxs[i:i + self.bs] for i in range(0, len(idxs), self.bs)]
        return iter([self._collate([self.dataset[j] for j in b]) for b in batches])
'''

DATALOADER_TORCH_WRAPPER = '''
import torch.utils.data

class DataLoader(torch.utils.data.DataLoader):
    "PyTorch's own DataLoader already batches, shuffles every epoch and collates."
    def __init__(self, dataset, batch_size=1, shuffle=False):
        super().__init__(list(dataset), batch_size=batch_size, shuffle=shuffle)
'''


@dataclass(frozen=True)
class Sample:
    name: str
    step: str  # the grade id whose answer is changed ('' for none)
    edits: tuple = ()  # (old, new) replacements in that answer; old None replaces the whole answer
    mistake: bool = True  # a mistake loses points in `step` only; an equivalent earns full marks
    hint: str = ""  # words the hint for the mistake must contain


MNIST_SGD_SAMPLES = [
    Sample("labels_reversed", "labels", (("[1]*len(threes) + [0]*len(sevens)", "[0]*len(threes) + [1]*len(sevens)"),
                                          ("[1]*len(valid_3_tens) + [0]*len(valid_7_tens)", "[0]*len(valid_3_tens) + [1]*len(valid_7_tens)")), hint="reversed"),
    Sample("no_unsqueeze", "labels", ((".unsqueeze(1)", ""),), hint="unsqueeze"),
    Sample("view_784_first", "flatten", ((".view(-1, 28*28)", ".view(28*28, -1)"),), hint="view(28*28, -1)"),
    Sample("valid_from_train", "flatten", (("valid_x = torch.cat([valid_3_tens, valid_7_tens])", "valid_x = torch.cat([stacked_threes, stacked_sevens])"),), hint="training images"),
    Sample("rand_not_randn", "init_params", (("torch.randn(size)", "torch.rand(size)"),), hint="torch.rand"),
    Sample("no_requires_grad", "init_params", (("(torch.randn(size)*std).requires_grad_()", "torch.randn(size)*std"),), hint="requires_grad_"),
    Sample("non_leaf_params", "init_params", (("(torch.randn(size)*std).requires_grad_()", "torch.randn(size, requires_grad=True)*std"),), hint="leaf"),
    Sample("std_ignored", "init_params", (("(torch.randn(size)*std)", "torch.randn(size)"),), hint="std is ignored"),
    Sample("no_bias", "linear1", (("xb@weights + bias", "xb@weights"),), hint="bias is missing"),
    Sample("linear1_uses_train_x", "linear1", (("xb@weights + bias", "train_x@weights + bias"),), hint="train_x"),
    Sample("threshold_half", "accuracy", (("preds > 0.0", "preds > 0.5"),), hint="0.5"),
    Sample("accuracy_counts", "accuracy", ((".mean().item()", ".sum().item()"),), hint="counts"),
    Sample("no_sigmoid", "mnist_loss", (("    predictions = predictions.sigmoid()\n", ""),), hint="sigmoid is missing"),
    Sample("branches_swapped", "mnist_loss", (("1-predictions, predictions", "predictions, 1-predictions"),), hint="swapped"),
    Sample("loss_sum", "mnist_loss", ((").mean()", ").sum()"),), hint="sum"),
    Sample("loss_detached", "mnist_loss", ((").mean()", ").mean().detach()"),), hint="cut off"),
    Sample("drop_last_batch", "dataloader", (("range(0, n, self.batch_size)", "range(0, n - self.batch_size + 1, self.batch_size)"),), hint="last, smaller batch"),
    Sample("shuffle_ignored", "dataloader", (("torch.randperm(n) if self.shuffle else torch.arange(n)", "torch.arange(n)"),), hint="ignored"),
    Sample("shuffle_once", "dataloader", (("self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle",
                                           "self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle\n"
                                           "        self.order = torch.randperm(len(dataset)) if shuffle else torch.arange(len(dataset))"),
                                          ("order = torch.randperm(n) if self.shuffle else torch.arange(n)", "order = self.order")), hint="only once"),
    Sample("with_replacement", "dataloader", (("torch.randperm(n)", "torch.randint(0, n, (n,))"),), hint="repeats"),
    Sample("no_batching", "dataloader", (("yield collate([self.dataset[int(i)] for i in order[start:start + self.batch_size]])",
                                          "yield from (self.dataset[int(i)] for i in order[start:start + self.batch_size])"),), hint="one item at a time"),
    Sample("empty_last_batch", "dataloader", (("range(0, n, self.batch_size)", "range(0, n + 1, self.batch_size)"),
                                              ("    first = items[0]", "    if not items:\n        return tensor([])\n    first = items[0]")), hint="empty batch"),
    Sample("no_collation", "dataloader", (("yield collate([self.dataset[int(i)] for i in order[start:start + self.batch_size]])",
                                           "yield [self.dataset[int(i)] for i in order[start:start + self.batch_size]]"),), hint="not collated"),
    # equivalent code: full marks
    Sample("reshape_and_vstack", "flatten", (("torch.cat([stacked_threes, stacked_sevens]).view(-1, 28*28)", "torch.vstack([stacked_threes, stacked_sevens]).reshape(-1, 784)"),
                                             ("torch.cat([valid_3_tens, valid_7_tens]).view(-1, 28*28)", "torch.cat([valid_3_tens, valid_7_tens]).flatten(1)")), mistake=False),
    Sample("float_labels_none_index", "labels", (("tensor([1]*len(threes) + [0]*len(sevens)).unsqueeze(1)", "tensor([1.]*len(stacked_threes) + [0.]*len(stacked_sevens))[:, None]"),), mistake=False),
    Sample("empty_normal_params", "init_params", (("(torch.randn(size)*std).requires_grad_()", "torch.empty(size).normal_(0, std).requires_grad_()"),), mistake=False),
    Sample("accuracy_tensor_result", "accuracy", (("((preds > 0.0) == (targets == 1)).float().mean().item()", "(preds > 0).eq(targets.bool()).float().mean()"),), mistake=False),
    Sample("handmade_sigmoid_blend", "mnist_loss", (("    predictions = predictions.sigmoid()\n    return torch.where(targets==1, 1-predictions, predictions).mean()",
                                                     "    s = 1/(1+torch.exp(-predictions))\n    t = targets\n    return (t*(1-s)+(1-t)*s).mean()"),), mistake=False),
    Sample("random_shuffle_loader", "dataloader", ((None, DATALOADER_RANDOM_SHUFFLE),), mistake=False),
    Sample("torch_loader_wrapper", "dataloader", ((None, DATALOADER_TORCH_WRAPPER),), mistake=False),
]

TRAIN_EPOCH_NO_GRAD = '''
def train_epoch(model, lr, params):
    for xb, yb in dl:
        calc_grad(xb, yb, model)
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
'''

BASIC_OPTIM_NO_GRAD = '''
class BasicOptim:
    "Steps under torch.no_grad() and zeroes the gradients in place."
    def __init__(self, params, lr):
        self.params = [p for p in params]
        self.lr = lr

    @torch.no_grad()
    def step(self):
        for p in self.params:
            p.sub_(self.lr * p.grad)

    def zero_grad(self):
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()
'''

SGD_TRAINING_SAMPLES = [
    Sample("no_backward", "calc_grad", (("\n    loss.backward()", ""),), hint="backward"),
    Sample("calc_grad_uses_linear1", "calc_grad", (("preds = model(xb)", "preds = linear1(xb)"),), hint="linear1"),
    Sample("grads_never_zeroed", "train_epoch", (("\n            p.grad.zero_()", ""),), hint="accumulate"),
    Sample("updates_p_in_place", "train_epoch", (("p.data -= p.grad*lr", "p -= p.grad*lr"),), hint="p.data"),
    Sample("rebinds_p", "train_epoch", (("p.data -= p.grad*lr", "p = p - p.grad*lr"),), hint="p.data"),
    Sample("steps_up_the_gradient", "train_epoch", (("p.data -= p.grad*lr", "p.data += p.grad*lr"),), hint="up the gradient"),
    Sample("loops_over_dataset", "train_epoch", (("for xb, yb in dl:", "for xb, yb in dset:"),), hint="DataLoader"),
    Sample("trains_on_valid_dl", "train_epoch", (("for xb, yb in dl:", "for xb, yb in valid_dl:"),), hint="trains on valid_dl"),
    Sample("ignores_lr_argument", "train_epoch", (("def train_epoch(model, lr, params):", "def train_epoch(model, step_size, params):"),),
           hint="global lr"),
    Sample("no_learning_rate", "train_epoch", (("p.data -= p.grad*lr", "p.data -= p.grad"),), hint="without multiplying it by lr"),
    Sample("thresholds_logits_at_half", "batch_accuracy", (("preds = xb.sigmoid()", "preds = xb"),), hint="sigmoid"),
    Sample("batch_accuracy_counts", "batch_accuracy", (("correct.float().mean()", "correct.float().sum()"),), hint=".sum()"),
    Sample("validates_on_training_set", "validate_epoch", (("for xb, yb in valid_dl]", "for xb, yb in dl]"),), hint="training set"),
    Sample("optim_steps_up", "basic_optim", (("p.data -= p.grad.data * self.lr", "p.data += p.grad.data * self.lr"),), hint="up the gradient"),
    Sample("zero_grad_does_nothing", "basic_optim", (("p.grad = None", "pass"),), hint="zero_grad"),
    Sample("optim_keeps_generator", "basic_optim", (("self.params, self.lr = list(params), lr", "self.params, self.lr = params, lr"),), hint="generator"),
    Sample("train_model_no_zero_grad", "train_model", (("            opt.zero_grad()\n", ""),), hint="zero_grad"),
    Sample("validates_once", "train_model", (("        accs.append(validate_epoch(model))\n    return accs",
                                              "    accs.append(validate_epoch(model))\n    return accs"),), hint="accuracies"),
    Sample("learning_rate_too_small", "training_run", (("BasicOptim(linear_model.parameters(), lr)", "BasicOptim(linear_model.parameters(), 1e-4)"),), hint="0.9"),
    Sample("no_plot", "training_run", (("plt.plot(range(1, len(accs) + 1), accs)\nplt.xlabel('epoch')\nplt.ylabel('validation accuracy');", "accs"),), hint="plot"),
    # equivalent code: full marks
    Sample("one_line_calc_grad", "calc_grad", ((None, "def calc_grad(xb, yb, model):\n    mnist_loss(model(xb), yb).backward()"),), mistake=False),
    Sample("no_grad_update", "train_epoch", ((None, TRAIN_EPOCH_NO_GRAD),), mistake=False),
    Sample("accuracy_from_logits", "batch_accuracy", ((None, "def batch_accuracy(xb, yb):\n    return ((xb > 0).long() == yb).float().mean().item()"),), mistake=False),
    Sample("validate_counts_all_items", "validate_epoch", ((None, "def validate_epoch(model):\n    right = total = 0\n    for xb, yb in valid_dl:\n"
                                                            "        right += ((model(xb).sigmoid() > 0.5) == yb).sum().item()\n        total += len(yb)\n    return right / total"),), mistake=False),
    Sample("optim_under_no_grad", "basic_optim", ((None, BASIC_OPTIM_NO_GRAD),), mistake=False),
    Sample("zero_grad_first", "train_model", (("            calc_grad(xb, yb, model)\n            opt.step()\n            opt.zero_grad()",
                                               "            opt.zero_grad()\n            calc_grad(xb, yb, model)\n            opt.step()"),), mistake=False),
    Sample("plot_without_x", "training_run", (("plt.plot(range(1, len(accs) + 1), accs)", "plt.plot(accs, marker='o')"),), mistake=False),
]

SAMPLES = {"mnist_sgd": MNIST_SGD_SAMPLES, "sgd_training": SGD_TRAINING_SAMPLES}
DEMO_SAMPLES = {
    "mnist_sgd": ["labels_reversed", "non_leaf_params", "threshold_half", "loss_detached", "shuffle_once", "torch_loader_wrapper"],
    "sgd_training": ["grads_never_zeroed", "updates_p_in_place", "thresholds_logits_at_half", "optim_keeps_generator", "no_grad_update"],
}


def solution_code(source: str) -> str:
    """An answer cell's source as a student would type it: without nbgrader's markers."""
    return "\n".join(line for line in source.splitlines() if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)


def answers(source_notebook: Path) -> dict[str, str]:
    nb = nbformat.read(source_notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: solution_code(c.source) for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def apply_edits(code: str, sample: Sample) -> str:
    for old, new in sample.edits:
        if old is None:
            code = new.strip("\n")
            continue
        if old not in code:
            raise ValueError(f"sample {sample.name}: {old!r} is not in the {sample.step} answer of the source notebook")
        code = code.replace(old, new)
    return code


WRITTEN_ANSWER = ("Accuracy only changes when a prediction crosses the threshold, so a small change to a weight almost never "
                  "changes it: its gradient is zero almost everywhere and SGD gets no direction. A loss must change smoothly.")


def make_submission(source_notebook: Path, release_notebook: Path, sample: Sample | None) -> nbformat.NotebookNode:
    """The release notebook with every answer filled in from the source, one of them changed by `sample`."""
    filled = answers(source_notebook)
    nb = copy.deepcopy(nbformat.read(release_notebook, as_version=4))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = WRITTEN_ANSWER
        if cell.cell_type == "code" and grade_id in filled:
            cell.source = apply_edits(filled[grade_id], sample) if sample and grade_id == sample.step else filled[grade_id]
    return nb


def write_submission(root: Path, assignment: str, student: str, nb: nbformat.NotebookNode | str | bytes, name: str | None = None) -> Path:
    """Place a notebook (or raw file content) where nbgrader expects student's submission."""
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{assignment}.ipynb")
    if isinstance(nb, nbformat.NotebookNode):
        nbformat.write(nb, path)
    else:
        path.write_bytes(nb if isinstance(nb, bytes) else nb.encode())
    return path


def write_samples(root: Path, assignment: str, names: list[str] | None = None) -> list[str]:
    """Write the named samples, plus a full solution and the untouched release, as submissions."""
    source = root / "source" / assignment / f"{assignment}.ipynb"
    release = root / "release" / assignment / f"{assignment}.ipynb"
    chosen = [s for s in SAMPLES.get(assignment, []) if names is None or s.name in names]
    write_submission(root, assignment, "full_marks", make_submission(source, release, None))
    write_submission(root, assignment, "untouched_release", nbformat.read(release, as_version=4))
    for sample in chosen:
        write_submission(root, assignment, sample.name, make_submission(source, release, sample))
    return ["full_marks", "untouched_release", *(s.name for s in chosen)]
