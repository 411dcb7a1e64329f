"""Hidden checks for steps 4-6: init_params, linear1, accuracy.

Every function is called on the grader's own inputs, so a mistake in one step
never costs points in another.
"""
import pytest
import torch
from torch.testing import assert_close

from coursekit.checks import as_number


def facts(student, name):
    found = student.value("init_params", name)
    if type(found["value"]) is not torch.Tensor:
        pytest.fail(f"init_params should return a tensor, but it returned a {type(found['value']).__name__}")
    return found


@pytest.mark.grade("init_params", points=0.5)
def test_params_have_the_requested_size(student, reference):
    """init_params(size) returns a tensor of that size"""
    for name in ("default_std", "size_1"):
        got = facts(student, name)["value"]
        expected = reference.value("init_params", name)["value"]
        assert got.shape == expected.shape, f"init_params gave a tensor of shape {tuple(got.shape)} when asked for {tuple(expected.shape)}"


@pytest.mark.grade("init_params", points=1)
def test_params_are_normal(student):
    """the values are drawn from a normal distribution with mean 0 (torch.randn)"""
    values = facts(student, "default_std")["value"].double()
    if values.min() >= 0 and abs(values.mean() - 0.5) < 0.1:
        pytest.fail("the values are all between 0 and 1: torch.rand draws from a uniform distribution; "
                    "use torch.randn for a normal one")
    assert abs(values.mean()) < 0.1 and values.min() < -1.5 and values.max() > 1.5, (
        "the values should come from a normal distribution centred on 0, as torch.randn gives")


@pytest.mark.grade("init_params", points=0.5)
def test_params_use_std(student):
    """the spread of the values follows std (0.1 and 3 tried)"""
    base = facts(student, "default_std")["value"].double().std()
    for name, std in (("std_0.1", 0.1), ("std_3", 3.0)):
        spread = facts(student, name)["value"].double().std()
        if abs(spread / base - 1) < 0.1:
            pytest.fail("std is ignored: init_params(size, std=0.1) gives the same spread as std=1.0; multiply by std")
        assert abs(spread / base / std - 1) < 0.15, f"with std={std:g} the values should be spread {std:g} times as wide: multiply by std"


@pytest.mark.grade("init_params", points=1)
def test_params_are_leaves_that_require_grad(student):
    """the result is a leaf tensor that requires grad, so training can fill in .grad"""
    for name in ("default_std", "std_0.1", "std_3", "size_1"):
        found = facts(student, name)
        if not found["requires_grad"]:
            pytest.fail("the parameters do not require grad: call .requires_grad_() on the result so PyTorch tracks gradients")
        if not found["is_leaf"]:
            pytest.fail("the parameters are not leaf tensors: you asked for gradients before multiplying by std, so the result "
                        "is computed from another tensor and its .grad stays empty. Multiply first, then call .requires_grad_()")


def linear_inputs(student):
    return student.value("linear1", "inputs")


@pytest.mark.grade("linear1", points=1)
def test_linear1_predicts_each_row_of_xb(student):
    """linear1(xb) returns one prediction per row of xb: shape (n, 1)"""
    inputs, preds = linear_inputs(student), student.tensor("linear1", "preds")
    if len(preds) == len(inputs["decoy_train_x"]) != len(inputs["xb"]):
        pytest.fail("linear1 ignores its argument and predicts for the global train_x: use xb inside the function")
    assert preds.shape == (len(inputs["xb"]), 1), f"for 7 images linear1 returned shape {tuple(preds.shape)}; it should be (7, 1)"


@pytest.mark.grade("linear1", points=1)
def test_linear1_is_weights_times_pixels_plus_bias(student, reference):
    """each prediction is the pixels times the weights, summed, plus the bias"""
    inputs, preds = linear_inputs(student), student.tensor("linear1", "preds").double()
    x = inputs["xb"] if len(preds) == len(inputs["xb"]) else inputs["decoy_train_x"]  # using train_x costs in the check above
    w, b = inputs["weights"].double(), inputs["bias"].double()
    expected = (x.double() @ w + b) if x is not inputs["xb"] else reference.tensor("linear1", "preds").double()
    if preds.numel() == len(x) and torch.allclose(preds.reshape(-1), (x.double() @ w).reshape(-1), atol=1e-4):
        pytest.fail("the bias is missing: add bias to xb@weights")
    assert preds.numel() == len(x), f"linear1 returned {preds.numel()} numbers for {len(x)} images"
    assert_close(preds.reshape(-1), expected.reshape(-1), atol=1e-4, rtol=1e-4,
                 msg="the predictions are not xb@weights + bias: multiply the batch by the weights with @, then add the bias")
    if x is not inputs["xb"]:
        return  # predicting for train_x costs in the check above
    # the first xb's predictions are all positive: judge each prediction again on pixels of both signs
    signed, expected_signed = student.tensor("linear1", "signed_preds").double(), reference.tensor("linear1", "signed_preds").double()
    if signed.numel() != expected_signed.numel():
        pytest.fail("linear1 does not give one prediction per image for every batch: use xb, whatever its size")
    signed, expected_signed = signed.reshape(-1), expected_signed.reshape(-1)
    if not close(signed, expected_signed):
        if close(signed, expected_signed.clamp(min=0)):
            pytest.fail("negative predictions were turned into 0 (relu or clamp on the output): return xb@weights + bias as it is. "
                        "A negative prediction means a 7, and only its exact value gives SGD a gradient")
        if close(signed, expected_signed.abs()):
            pytest.fail("negative predictions were turned positive (abs on the output): return xb@weights + bias as it is; "
                        "its sign says 3 or 7")
        pytest.fail("some predictions are not xb@weights + bias (those below 0 among them): return xb@weights + bias, unchanged")
    after = student.tensor("linear1", "preds_after_new_parameters")
    expected_after = reference.tensor("linear1", "preds_after_new_parameters")
    if after.shape != expected_after.shape or torch.equal(after, student.tensor("linear1", "preds")):
        return  # kept the parameters it was defined with: that costs in the check below
    assert close(after.double(), expected_after.double()), (
        "with new weights and bias the predictions are not xb@weights + bias: compute them from the current weights and bias")


def close(actual, expected) -> bool:
    return actual.shape == expected.shape and torch.allclose(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.grade("linear1", points=1)
def test_linear1_reads_the_current_parameters(student):
    """linear1 uses weights and bias as they are when it is called"""
    before = student.tensor("linear1", "preds")
    after = student.tensor("linear1", "preds_after_new_parameters")
    assert not (before.shape == after.shape and torch.equal(before, after)), (
        "linear1 kept the parameters it saw when it was defined: when weights and bias change, its predictions must change too. "
        "Read the globals weights and bias inside the function")


@pytest.mark.grade("accuracy", points=1)
def test_accuracy_is_a_share(student):
    """accuracy returns one number between 0 and 1: the share of right predictions"""
    value = student.value("accuracy", "accuracy")
    n = len(student.value("accuracy", "inputs")["targets"])
    number = as_number(value)
    if number is None:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else None
        pytest.fail(f"accuracy should return a single number, not {'a tensor of shape ' + str(shape) if shape else 'a ' + type(value).__name__}: "
                    "average the right/wrong results with .float().mean()")
    if number > 1 and number <= n and float(number).is_integer():
        pytest.fail("accuracy counts the right predictions instead of averaging them: use .mean(), so the result is between 0 and 1")
    assert 0 <= number <= 1, f"accuracy should be between 0 and 1; it returned {number:g}"


@pytest.mark.grade("accuracy", points=1)
def test_accuracy_reads_positive_predictions_as_threes(student, reference):
    """a prediction above 0 counts as a 3 (label 1), anything else (0 included) as a 7, on several batches"""
    inputs = student.value("accuracy", "inputs")
    more = student.value("accuracy", "more_inputs")
    batches = {"accuracy": inputs, **{f"accuracy_{name}": batch for name, batch in more.items()}}
    found, expected = {}, {}
    for name, batch in batches.items():
        found[name] = share(student.value("accuracy", name), len(batch["targets"]))
        expected[name] = as_number(reference.value("accuracy", name))

    def matches(rule) -> bool:
        return all(abs(found[n] - ((rule(b["preds"]) == (b["targets"] == 1)).double().mean().item())) < 1e-6 for n, b in batches.items())

    if found == expected or all(abs(found[n] - expected[n]) < 1e-6 for n in batches):
        return
    if matches(lambda p: p > 0.5):
        pytest.fail("accuracy thresholds at 0.5: these are raw predictions (logits), not probabilities, so a 3 is any prediction above 0")
    if matches(lambda p: p >= 0):
        pytest.fail("the prediction exactly on the threshold, 0, was counted as a 3: only a prediction above 0 is a 3 (use >, not >=)")
    if matches(lambda p: torch.zeros_like(p, dtype=torch.bool)):
        pytest.fail("accuracy calls every image a 7: compare (preds > 0) with (targets == 1) for each image")
    if matches(lambda p: torch.ones_like(p, dtype=torch.bool)):
        pytest.fail("accuracy calls every image a 3: compare (preds > 0) with (targets == 1) for each image")
    pytest.fail("accuracy does not match on every batch: compare (preds > 0) with (targets == 1) for each image and take the share that agree")


def share(value, n) -> float:
    """The student's accuracy as a share; a count or an unaveraged tensor costs in test_accuracy_is_a_share, not here."""
    number = as_number(value)
    if number is None and isinstance(value, torch.Tensor) and value.numel() == n:
        number = float(value.double().mean())
    if number is not None and number > 1:
        number /= n
    if number is None:
        pytest.fail("accuracy did not return something the grader can read as a number")
    return number
