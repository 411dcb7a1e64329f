"""Hidden checks for steps 7-8: mnist_loss and DataLoader."""
import string

import pytest
import torch
from torch.testing import assert_close


@pytest.mark.grade("mnist_loss", points=2)
def test_loss_value(student, reference):
    """mnist_loss squashes with sigmoid, then takes 1-p for 3s and p for 7s, averaged"""
    loss = student.tensor("mnist_loss", "loss")
    inputs = student.value("mnist_loss", "inputs")
    p, t = inputs["predictions"].double(), inputs["targets"]
    s = torch.sigmoid(p)
    mistakes = {
        "the sigmoid is missing: squash the predictions into 0-1 with .sigmoid() before torch.where": torch.where(t == 1, 1 - p, p).mean(),
        "the two branches of torch.where are swapped: for a 3 (target 1) the loss is 1-prediction, for a 7 it is the prediction": torch.where(t == 1, s, 1 - s).mean(),
        "the loss is a sum: take the .mean(), so that it does not grow with the batch size": torch.where(t == 1, 1 - s, s).sum(),
    }
    if loss.numel() != 1:
        pytest.fail(f"mnist_loss returned a tensor of shape {tuple(loss.shape)}; it should be one number: take the .mean()")
    value = loss.double().reshape(())
    for hint, wrong in mistakes.items():
        if torch.allclose(value, wrong, atol=1e-5):
            pytest.fail(hint)
    assert_close(value, reference.tensor("mnist_loss", "loss").double().reshape(()), atol=1e-5, rtol=1e-5,
                 msg="mnist_loss does not give the expected value: sigmoid, then torch.where(targets==1, 1-p, p), then .mean()")


@pytest.mark.grade("mnist_loss", points=1)
def test_loss_is_differentiable(student, reference):
    """the loss is connected to the predictions, so backward() gives them gradients"""
    student.value("mnist_loss", "loss")  # no loss at all (a stub, an error) gets that hint, not this one
    if not student.value("mnist_loss", "loss_requires_grad"):
        pytest.fail("the loss is cut off from the predictions (by .item(), .detach(), .data or a new tensor): "
                    "SGD needs it to carry gradients, so keep it a tensor computed from predictions")
    grad = student.tensor("mnist_loss", "gradient")
    loss = student.tensor("mnist_loss", "loss")
    ref_loss = reference.tensor("mnist_loss", "loss")
    if loss.numel() == 1 and torch.allclose(loss.double().reshape(()), ref_loss.double().reshape(()), atol=1e-5):
        # the value is right, so its gradient must be right too; a wrong value already cost points above
        assert_close(grad.double(), reference.tensor("mnist_loss", "gradient").double(), atol=1e-5, rtol=1e-4,
                     msg="the loss has the right value but not the right gradient: compute it with torch operations only")


def values_of(batch):
    """The items of a batch as plain numbers, however it was (or was not) collated."""
    if isinstance(batch, torch.Tensor):
        return batch.reshape(-1).tolist()
    if isinstance(batch, (list, tuple)):
        return [v for item in batch for v in values_of(item)]
    return [batch]


def is_item(batch):
    """True for one dataset item that was not batched at all (an int from range(), say)."""
    return isinstance(batch, (int, float)) or (isinstance(batch, torch.Tensor) and batch.ndim == 0)


def batch_sizes(batches):
    return [1 if is_item(b) else len(values_of(b)) for b in batches]


def batches(student, name):
    found = student.value("dataloader", name)
    if not isinstance(found, list):
        pytest.fail("iterating over the DataLoader did not give batches")
    return found


@pytest.mark.grade("dataloader", points=1)
def test_batches_in_order(student):
    """without shuffle, batches of batch_size come in order; the last may be smaller, none is empty"""
    seventeen, fifteen = batches(student, "in_order_17"), batches(student, "in_order_15")
    if seventeen and all(is_item(b) for b in seventeen):
        pytest.fail("the DataLoader gives one item at a time: group batch_size items into each batch")
    if sorted(values_of(seventeen)) == list(range(15)):
        pytest.fail("the last, smaller batch is missing: with 17 items and batch_size=5 the batches hold 5, 5, 5 and 2 items")
    if batch_sizes(fifteen)[-1:] == [0]:
        pytest.fail("the DataLoader ends with an empty batch: with 15 items and batch_size=5 there are exactly 3 batches")
    if sorted(values_of(seventeen)) == list(range(17)) and values_of(seventeen) != list(range(17)):
        pytest.fail("the DataLoader shuffles even with shuffle=False: keep the dataset's order unless shuffle is True")
    assert values_of(seventeen) == list(range(17)) and batch_sizes(seventeen) == [5, 5, 5, 2], (
        "with 17 items and batch_size=5 the batches should hold items 0-4, 5-9, 10-14 and 15-16")
    seven = batches(student, "in_order_7")
    assert values_of(seven) == list(range(7)) and batch_sizes(seven) == [3, 3, 1], (
        "with 7 items and batch_size=3 the batches should hold items 0-2, 3-5 and 6: a last batch of one item too")
    assert batch_sizes(batches(student, "default_batch_size")) == [1, 1, 1], "batch_size should default to 1"


@pytest.mark.grade("dataloader", points=0.5)
def test_len_counts_batches(student):
    """len() of a DataLoader is its number of batches"""
    assert (student.value("dataloader", "len_17"), student.value("dataloader", "len_15")) == (4, 3), (
        "len() should be the number of batches, the last partial one included: 17 items in batches of 5 make 4")
    # 6, 7 and 8 items in batches of 3: every remainder, so a formula off by one for one of them shows
    assert student.value("dataloader", "lens_by_3") == [2, 3, 3], (
        "len() is off by one for some sizes: 6 items in batches of 3 make 2 batches, 7 make 3 (the last holds 1 item), 8 make 3")


@pytest.mark.grade("dataloader", points=1.5)
def test_shuffle_every_epoch(student):
    """with shuffle=True, every epoch visits each item once, in a new order"""
    epochs = [values_of(epoch) for epoch in batches(student, "shuffled_epochs")]
    for order in epochs:
        if sorted(order) != list(range(64)):
            pytest.fail("a shuffled epoch misses some items and repeats others: shuffle the order of all items "
                        "(a permutation, such as torch.randperm) rather than drawing items at random")
    if all(order == list(range(64)) for order in epochs):
        pytest.fail("shuffle=True is ignored: the items come in their original order")
    assert len({tuple(order) for order in epochs}) == len(epochs), (
        "the order is shuffled only once: every pass over the DataLoader should draw a new order, so shuffle inside __iter__")


def is_pair_batch(batch):
    return isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(part, (torch.Tensor, tuple, list)) for part in batch)


@pytest.mark.grade("dataloader", points=1)
def test_batches_are_collated(student, reference):
    """a batch of numbers is a tensor; a batch of (x, y) pairs is a pair (xb, yb) of stacked tensors"""
    seventeen = batches(student, "in_order_17")
    if seventeen and all(is_item(b) for b in seventeen):
        return  # no batching at all: that costs points in test_batches_in_order, not again here
    hint = "batches are not collated: turn a batch of numbers into one tensor, and a batch of (x, y) pairs into (xb, yb), stacking the xs and the ys"
    assert all(isinstance(b, torch.Tensor) for b in seventeen), hint
    pairs, expected_pairs = batches(student, "pairs"), reference.value("dataloader", "pairs")
    for batch, expected, size in zip(pairs, expected_pairs, (4, 4, 2)):
        assert is_pair_batch(batch) and all(isinstance(part, torch.Tensor) for part in batch), hint
        xb, yb = batch
        assert xb.shape == (size, 6) and yb.shape == (size, 1), (
            f"a batch of {size} (x, y) pairs came out as shapes {tuple(xb.shape)} and {tuple(yb.shape)}; "
            f"stack them into xb of shape ({size}, 6) and yb of shape ({size}, 1)")
        assert torch.equal(yb, expected[1]), "each x must stay with its own y"
        if torch.equal(xb, expected[0]):
            continue
        if torch.equal(xb.abs(), expected[0].abs()) or torch.equal(xb, expected[0].clamp(min=0)):
            pytest.fail("negative numbers were changed on the way into a batch (turned into 0 or made positive): stack the items as they are")
        pytest.fail("the xs of a batch are not the items' own: stack each x as it is, in order")
    # batch by batch: a missing or an extra batch costs in test_batches_in_order, not again here
    for batch, expected in zip(batches(student, "signed_numbers"), reference.value("dataloader", "signed_numbers")):
        assert values_of(batch) == values_of(expected), (
            "negative numbers were changed on the way into a batch (turned into 0 or made positive): "
            "a batch of numbers is tensor(items), as they are")
    for batch in batches(student, "letters"):
        assert is_pair_batch(batch) and isinstance(batch[0], torch.Tensor), hint
        numbers, letters = batch
        assert all(isinstance(letter, str) for letter in letters), "the letters should stay strings, collected in a tuple"
        assert type(letters) is tuple, (
            f"the strings of a batch came out as a {type(letters).__name__}, not a tuple: collect them with tuple(items), as the contract says")
        assert [string.ascii_lowercase[i] for i in numbers.tolist()] == list(letters), "each number must stay with its own letter"
