"""Sample submissions of simple_net: the source solution typed into the release, with one typical mistake
or one equivalent rewrite each (coursekit.samples.Sample). `coursekit demo` grades the DEMO ones, the
kit's tests grade them all, and the similarity report discounts the equivalent ones.

They hold answers, so they live here, beside the hidden checks, and never in anything students get or install.
Grading does not read this file.
"""
from coursekit.samples import Sample

SEQ = "nn.Sequential(nn.Linear(28*28, 30), nn.ReLU(), nn.Linear(30, 1))"
NAMED_LAYERS = ("nn.Sequential(OrderedDict([('hidden', nn.Linear(28*28, 30)), ('relu', nn.ReLU()), "
                "('output', nn.Linear(30, 1))]))")

SAMPLES = [
    Sample("relu_max_over_batch", "relu", (("x.max(tensor(0.0))", "x.max(0)"),), hint="batch"),
    Sample("w1_transposed", "init", (("w1 = init_params((28*28, 30))", "w1 = init_params((30, 28*28))"),), hint="transposed"),
    Sample("hidden_bias_of_one", "init", (("b1 = init_params(30)", "b1 = init_params(1)"),), hint="hidden units"),
    Sample("simple_net_no_relu", "simple_net", (("    res = relu(res)\n", ""),), hint="non-linearity"),
    Sample("simple_net_relu_output", "simple_net", (("    return res", "    return relu(res)"),), hint="turned into 0"),
    Sample("seq_net_relu_output", "seq_net", ((SEQ, "nn.Sequential(nn.Linear(28*28, 30), nn.ReLU(), nn.Linear(30, 1), nn.ReLU())"),),
           hint="turned into 0"),
    Sample("seq_net_no_relu", "seq_net", ((SEQ, "nn.Sequential(nn.Linear(28*28, 30), nn.Linear(30, 1))"),), hint="non-linearity"),
    Sample("learner_never_zeroes_grads", "learner", (("                self.opt.zero_grad()\n", ""),), hint="zero_grad"),
    Sample("learner_validates_on_training_data", "learner", (("self.accs.append(self.validate(valid_dl))",
                                                              "self.accs.append(self.validate(train_dl))"),), hint="training loader"),
    Sample("learner_records_last_epoch", "learner", (("            self.accs.append(self.validate(valid_dl))",
                                                      "        self.accs.append(self.validate(valid_dl))"),), hint="every epoch"),
    Sample("plots_only_the_net", "net_run", (("plt.plot(range(1, epochs + 1), linear_accs, label='linear model')\n", ""),), hint="both curves"),
    # equivalent code: full marks
    Sample("relu_torch", "relu", (("x.max(tensor(0.0))", "torch.relu(x)"),), mistake=False),
    Sample("relu_clamp", "relu", (("x.max(tensor(0.0))", "x.clamp(min=0)"),), mistake=False),
    Sample("relu_functional", "relu", ((None, "import torch.nn.functional as F\n\ndef relu(x):\n    return F.relu(x)"),), mistake=False),
    Sample("simple_net_one_line", "simple_net", ((None, "def simple_net(xb):\n    return relu(xb@w1 + b1)@w2 + b2"),), mistake=False),
    Sample("seq_net_named_layers", "seq_net", ((None, f"from collections import OrderedDict\n\nseq_net = {NAMED_LAYERS}"),), mistake=False),
    Sample("learner_zero_grad_first", "learner", (("                loss = self.loss_func(self.model(xb), yb)\n"
                                                   "                loss.backward()\n                self.opt.step()\n                self.opt.zero_grad()",
                                                   "                self.opt.zero_grad()\n                self.loss_func(self.model(xb), yb).backward()\n"
                                                   "                self.opt.step()"),), mistake=False),
    Sample("net_run_named_layers", "net_run", ((SEQ, NAMED_LAYERS), ("torch.manual_seed(0)", "from collections import OrderedDict\ntorch.manual_seed(0)")),
           mistake=False),
]

# the samples `coursekit demo` grades
DEMO = ["relu_max_over_batch", "w1_transposed", "simple_net_no_relu", "learner_never_zeroes_grads", "relu_clamp"]

# the answer to the written question that every sample submission gives
WRITTEN_ANSWER = ("Two linear layers in a row compute (xb@w1 + b1)@w2 + b2 = xb@(w1@w2) + (b1@w2 + b2): one linear layer "
                  "again, so they can represent nothing one layer cannot. The ReLU between them is not linear, so the "
                  "layers no longer fold into one.")
