"""Hidden checks for measuring the model: batch_accuracy and validate_epoch."""
import pytest
import torch

from coursekit.checks import as_number


def accuracy_value(student):
    inputs = student.value("batch_accuracy", "inputs")
    return student.value("batch_accuracy", "accuracy"), len(inputs["yb"])


@pytest.mark.grade("batch_accuracy", points=1)
def test_batch_accuracy_is_a_share(student):
    """batch_accuracy returns one number between 0 and 1"""
    value, n = accuracy_value(student)
    number = as_number(value)
    if number is None:
        pytest.fail("batch_accuracy should return one number, the share of right answers: take .float().mean() of the "
                    f"right/wrong results (it returned {'a tensor of ' + str(value.numel()) + ' values' if isinstance(value, torch.Tensor) else 'something else'})")
    if 1 < number <= n and number.is_integer():
        pytest.fail("batch_accuracy counts the right answers instead of taking their share: use .mean(), not .sum()")
    assert 0 <= number <= 1, f"batch_accuracy should be between 0 and 1; it returned {number:g}"


@pytest.mark.grade("batch_accuracy", points=1)
def test_batch_accuracy_reads_a_sigmoid_above_half_as_a_three(student, reference):
    """a prediction whose sigmoid is above 0.5 counts as a 3 (label 1)"""
    value, n = accuracy_value(student)
    number = as_number(value)
    if number is None and isinstance(value, torch.Tensor) and value.numel() == n:
        number = float(value.double().mean())  # not averaged: that costs in the check above
    elif number is not None and number > 1:
        number /= n  # counted: that costs in the check above
    if number is None:
        pytest.fail("batch_accuracy did not return something the grader can read as a number")
    inputs = student.value("batch_accuracy", "inputs")
    logits_at_half = ((inputs["xb"] > 0.5) == (inputs["yb"] == 1)).double().mean().item()
    expected = as_number(reference.value("batch_accuracy", "accuracy"))
    if abs(number - logits_at_half) < 1e-6:
        pytest.fail("batch_accuracy compares the raw predictions with 0.5: they are not probabilities yet. "
                    "Apply .sigmoid() first, then compare with 0.5")
    assert abs(number - expected) < 1e-6, (
        "batch_accuracy does not match: take xb.sigmoid(), call it a 3 where it is above 0.5, compare with yb, "
        "and take the share that agree")


def validation_value(student):
    number = as_number(student.value("validate_epoch", "accuracy"))
    if number is None:
        pytest.fail("validate_epoch should return one number, the mean accuracy over the validation batches")
    return number


def accuracy_on(batches, inputs) -> float:
    right = sum(int(((xb @ inputs["weights"] + inputs["bias"] > 0) == (yb == 1)).sum()) for xb, yb in batches)
    return right / sum(len(yb) for _, yb in batches)


@pytest.mark.grade("validate_epoch", points=1)
def test_validate_epoch_measures_the_validation_set(student):
    """validate_epoch measures the images of valid_dl, not those the model trains on"""
    number = validation_value(student)
    inputs = student.value("validate_epoch", "inputs")
    assert abs(number - accuracy_on(inputs["train_batches"], inputs)) > 1e-3, (
        "validate_epoch measures the training set: loop over the validation loader valid_dl, not dl. "
        "Accuracy on images the model trained on says little about images it has never seen")


@pytest.mark.grade("validate_epoch", points=1)
def test_validate_epoch_is_the_mean_batch_accuracy(student, reference):
    """the accuracy of the model it is given, averaged over the validation batches"""
    number = validation_value(student)
    inputs = student.value("validate_epoch", "inputs")
    if abs(number - accuracy_on(inputs["train_batches"], inputs)) < 1e-3:
        return  # the wrong loader costs in the check above
    assert abs(number - as_number(reference.value("validate_epoch", "accuracy"))) < 1e-3, (
        "validate_epoch does not give the model's accuracy: for each xb, yb in valid_dl take "
        "batch_accuracy(model(xb), yb), then the mean of those. Use the model passed in")
