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
    """a prediction whose sigmoid is above 0.5 counts as a 3 (label 1), one of exactly 0.5 as a 7, on several batches"""
    inputs, more = student.value("batch_accuracy", "inputs"), student.value("batch_accuracy", "more_inputs")
    batches = {"accuracy": inputs, **{f"accuracy_{name}": batch for name, batch in more.items()}}
    found = {name: share(student.value("batch_accuracy", name), len(batch["yb"])) for name, batch in batches.items()}
    expected = {name: as_number(reference.value("batch_accuracy", name)) for name in batches}
    if all(abs(found[n] - expected[n]) < 1e-6 for n in batches):
        return

    def matches(rule) -> bool:
        return all(abs(found[n] - (rule(b["xb"]) == (b["yb"] == 1)).double().mean().item()) < 1e-6 for n, b in batches.items())

    if matches(lambda xb: xb > 0.5):
        pytest.fail("batch_accuracy compares the raw predictions with 0.5: they are not probabilities yet. "
                    "Apply .sigmoid() first, then compare with 0.5")
    if matches(lambda xb: xb.sigmoid() >= 0.5):
        pytest.fail("the prediction exactly on the threshold (a sigmoid of exactly 0.5) was counted as a 3: "
                    "only above 0.5 is a 3 (use >, not >=)")
    if matches(lambda xb: torch.zeros_like(xb, dtype=torch.bool)):
        pytest.fail("batch_accuracy calls every image a 7: compare (xb.sigmoid() > 0.5) with yb for each image")
    if matches(lambda xb: torch.ones_like(xb, dtype=torch.bool)):
        pytest.fail("batch_accuracy calls every image a 3: compare (xb.sigmoid() > 0.5) with yb for each image")
    pytest.fail("batch_accuracy does not match on every batch: take xb.sigmoid(), call it a 3 where it is above 0.5, "
                "compare with yb, and take the share that agree")


def share(value, n) -> float:
    """The student's accuracy as a share; a count or an unaveraged tensor costs in the check above, not here."""
    number = as_number(value)
    if number is None and isinstance(value, torch.Tensor) and value.numel() == n:
        number = float(value.double().mean())
    elif number is not None and number > 1:
        number /= n
    if number is None:
        pytest.fail("batch_accuracy did not return something the grader can read as a number")
    return number


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
