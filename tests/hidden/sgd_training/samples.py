"""Sample submissions of sgd_training: the source solution typed into the release, with one typical mistake
or one equivalent rewrite each (coursekit.samples.Sample). `coursekit demo` grades the DEMO ones, the
kit's tests grade them all, and the similarity report discounts the equivalent ones.

They hold answers, so they live here, beside the hidden checks, and never in anything students get or install.
Grading does not read this file.
"""
from coursekit.samples import Sample

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

SAMPLES = [
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
    Sample("batch_accuracy_at_or_above_half", "batch_accuracy", (("(preds > 0.5)", "(preds >= 0.5)"),), hint="exactly on the threshold"),
    Sample("batch_accuracy_all_sevens", "batch_accuracy", (("correct = (preds > 0.5) == yb", "correct = (preds > 2) == yb"),), hint="every image a 7"),
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

# the samples `coursekit demo` grades
DEMO = ["grads_never_zeroed", "updates_p_in_place", "thresholds_logits_at_half", "optim_keeps_generator", "no_grad_update"]

# the answer to the written question that every sample submission gives
WRITTEN_ANSWER = ("Accuracy only changes when a prediction crosses the threshold, so a small change to a weight almost never "
                  "changes it: its gradient is zero almost everywhere and SGD gets no direction. A loss must change smoothly.")
