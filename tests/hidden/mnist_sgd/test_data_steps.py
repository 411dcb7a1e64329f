"""Hidden checks for steps 1-3: flatten, labels, datasets.

Each probe re-ran the student's cell on small stand-in images (see probes.py),
so these checks compare with the reference solution run on the same stand-ins.
"""
import pytest
import torch
from torch.testing import assert_close

from probes import N_THREES, N_VALID_THREES

SPLITS = {"train": N_THREES, "valid": N_VALID_THREES}  # how many 3s come first in each split


def same(actual, expected):
    return actual.shape == expected.shape and torch.allclose(actual.double(), expected.double())


def threes_last(t, n_threes):
    """The same rows with the 7s moved before the 3s: what a swapped torch.cat gives."""
    return torch.cat([t[n_threes:], t[:n_threes]])


@pytest.mark.grade("flatten", points=1)
def test_one_row_of_784_pixels_per_image(student):
    """train_x and valid_x have one row of 28*28 = 784 pixels per image"""
    for name in ("train_x", "valid_x"):
        x = student.tensor("flatten", name)
        if x.ndim == 2 and x.shape[0] == 28 * 28 and x.shape[1] != 28 * 28:
            pytest.fail(f"{name} has shape {tuple(x.shape)}: one column per image. Each image should be one row: "
                        "use .view(-1, 28*28), not .view(28*28, -1)")
        assert x.ndim == 2 and x.shape[1] == 28 * 28, (
            f"{name} has shape {tuple(x.shape)}; it should be (number of images, 784): flatten each 28x28 image "
            "into a row with .view(-1, 28*28)")


@pytest.mark.grade("flatten", points=1)
def test_images_in_order(student, reference):
    """train_x and valid_x hold the right images: 3s first, then 7s"""
    ref_train = reference.tensor("flatten", "train_x")
    for name, split in (("train_x", "train"), ("valid_x", "valid")):
        x = student.tensor("flatten", name)
        if x.numel() % (28 * 28):
            pytest.fail(f"{name} does not hold whole 28x28 images")
        x, expected = x.reshape(-1, 28 * 28), reference.tensor("flatten", name)
        if name == "valid_x" and same(x, ref_train):
            pytest.fail("valid_x holds the training images: build it from valid_3_tens and valid_7_tens")
        if same(x, threes_last(expected, SPLITS[split])):
            pytest.fail(f"{name} has the 7s before the 3s: concatenate the 3s first, so that the labels line up")
        if len(x) != len(expected):
            pytest.fail(f"{name} has {len(x)} images; it should have every 3 and every 7 of the {split} set, once each")
        assert_close(x.double(), expected.double(), msg=f"{name} does not hold the {split} images as they were loaded: "
                     "concatenate the 3s and the 7s as they are, scaled 0-1, without changing their pixels")


@pytest.mark.grade("labels", points=1)
def test_labels_are_a_column(student):
    """train_y and valid_y are columns: shape (number of images, 1)"""
    for name in ("train_y", "valid_y"):
        y = student.tensor("labels", name)
        if y.ndim == 1:
            pytest.fail(f"{name} has shape {tuple(y.shape)}, a flat list: add a second axis with .unsqueeze(1) "
                        "so that it is a column like the predictions")
        assert y.ndim == 2 and y.shape[1] == 1, f"{name} has shape {tuple(y.shape)}; it should be a column: (number of images, 1)"


@pytest.mark.grade("labels", points=1)
def test_labels_values(student, reference):
    """a 3 is labelled 1 and a 7 is labelled 0, in the order of the images"""
    ref_train = reference.tensor("labels", "train_y").flatten().double()
    for name in ("train_y", "valid_y"):
        y = student.tensor("labels", name).flatten()
        if y.dtype == torch.bool:
            y = y.long()
        y = y.double()
        expected = reference.tensor("labels", name).flatten().double()
        if same(y, 1 - expected):
            pytest.fail(f"{name} is reversed: a 3 should be labelled 1 and a 7 labelled 0")
        if name == "valid_y" and same(y, ref_train):
            pytest.fail("valid_y has the training labels: count the validation 3s and 7s (valid_3_tens, valid_7_tens)")
        if len(y) != len(expected):
            pytest.fail(f"{name} has {len(y)} labels; it needs one per image: as many 1s as there are 3s, "
                        "then as many 0s as there are 7s")
        assert_close(y, expected, msg=f"{name} does not follow the images: all the 1s (for the 3s) first, then the 0s")


def pairs_match(items, xs, ys):
    if len(items) != len(xs):
        return False
    for item, x, y in zip(items, xs, ys):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            return False
        got_x, got_y = item
        if not (isinstance(got_x, torch.Tensor) and isinstance(got_y, torch.Tensor) and same(got_x, x) and same(got_y, y)):
            return False
    return True


@pytest.mark.grade("datasets", points=1)
def test_datasets_are_lists(student):
    """dset and valid_dset can be indexed and measured with len()"""
    for name in ("dset", "valid_dset"):
        kind = student.value("datasets", f"{name}_type")
        if kind in ("zip", "map", "generator", "filter"):
            pytest.fail(f"{name} is a {kind} object, which can be read only once and has no len(): wrap it in list(...)")
        student.value("datasets", f"{name}_len")  # raises, with the hint, when len() fails


@pytest.mark.grade("datasets", points=1)
def test_datasets_pair_images_with_labels(student):
    """item i of each dataset is the pair (image i, label i)"""
    inputs = student.value("datasets", "inputs")
    for name, split in (("dset", "train"), ("valid_dset", "valid")):
        items = student.value("datasets", f"{name}_items")
        xs, ys = inputs[f"{split}_x"], inputs[f"{split}_y"]
        if pairs_match(items, xs, ys):
            continue
        if name == "valid_dset" and pairs_match(items, inputs["train_x"], inputs["train_y"]):
            pytest.fail("valid_dset pairs the training images: zip valid_x with valid_y")
        if pairs_match([tuple(reversed(i)) if isinstance(i, (tuple, list)) else i for i in items], xs, ys):
            pytest.fail(f"the items of {name} are (label, image): put the image first, zip({split}_x, {split}_y)")
        pytest.fail(f"{name} should hold one (image, label) pair per image, in order: zip({split}_x, {split}_y)")
