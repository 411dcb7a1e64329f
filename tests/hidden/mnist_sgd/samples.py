"""Sample submissions of mnist_sgd: the source solution typed into the release, with one typical mistake
or one equivalent rewrite each (coursekit.samples.Sample). `coursekit demo` grades the DEMO ones, the
kit's tests grade them all, and the similarity report discounts the equivalent ones.

They hold answers, so they live here, beside the hidden checks, and never in anything students get or install.
Grading does not read this file.
"""
from coursekit.samples import Sample

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

def collate_strings_as_tuple(batch):
    "PyTorch's collation, but with strings kept a tuple, as the contract asks (PyTorch gives a list)."
    out = torch.utils.data.default_collate(batch)
    if isinstance(out, list):
        return [tuple(part) if isinstance(part, list) else part for part in out]
    return tuple(out) if isinstance(batch[0], str) else out

class DataLoader(torch.utils.data.DataLoader):
    "PyTorch's own DataLoader already batches, shuffles every epoch and collates."
    def __init__(self, dataset, batch_size=1, shuffle=False):
        super().__init__(list(dataset), batch_size=batch_size, shuffle=shuffle, collate_fn=collate_strings_as_tuple)
'''


SAMPLES = [
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
    # the blind spots of issue 19: a probe of one sign, one aggregate that hides two errors, no value on a boundary
    Sample("linear1_relu_output", "linear1", (("xb@weights + bias", "torch.relu(xb@weights + bias)"),), hint="turned into 0"),
    Sample("linear1_abs_output", "linear1", (("xb@weights + bias", "(xb@weights + bias).abs()"),), hint="turned positive"),
    Sample("threshold_at_or_above_zero", "accuracy", (("preds > 0.0", "preds >= 0.0"),), hint="exactly on the threshold"),
    Sample("threshold_minus_one", "accuracy", (("preds > 0.0", "preds > -1.0"),), hint="every batch"),
    Sample("accuracy_all_sevens", "accuracy", (("(preds > 0.0)", "torch.zeros_like(preds, dtype=torch.bool)"),), hint="every image a 7"),
    Sample("len_off_by_one", "dataloader", (("(len(self.dataset) + self.batch_size - 1) // self.batch_size",
                                             "len(self.dataset) // self.batch_size + (len(self.dataset) % self.batch_size > 1)"),), hint="off by one"),
    Sample("strings_in_a_list", "dataloader", (("    return tuple(items)", "    return list(items)"),), hint="not a tuple"),
    Sample("collate_zeroes_negatives", "dataloader", (("return torch.stack(items)", "return torch.stack(items).clamp(min=0)"),), hint="negative numbers"),
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

# the samples `coursekit demo` grades
DEMO = ["labels_reversed", "non_leaf_params", "threshold_half", "loss_detached", "shuffle_once", "torch_loader_wrapper"]

# the answer to the written question that every sample submission gives
WRITTEN_ANSWER = ("Accuracy only changes when a prediction crosses the threshold, so a small change to a weight almost never "
                  "changes it: its gradient is zero almost everywhere and SGD gets no direction. A loss must change smoothly.")
