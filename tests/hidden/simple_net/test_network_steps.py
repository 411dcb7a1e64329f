"""Hidden checks for the network itself: relu, its parameters, simple_net and seq_net.

The probes run the student's code on the grader's own tensors; the checks compare
what comes back with what a ReLU between two linear layers gives, and with what
the same two layers give with nothing between them, to name that mistake.
"""
import pytest
import torch

N_PIXELS, HIDDEN = 28 * 28, 30


def close(found, expected) -> bool:
    return type(found) is torch.Tensor and found.shape == expected.shape and torch.allclose(found.float(), expected, atol=1e-5, rtol=1e-4)


# relu

@pytest.mark.grade("relu", points=1)
def test_relu_gives_one_number_per_element(student):
    """relu returns one tensor of the shape it was given"""
    x = student.value("relu", "input")
    out = student.value("relu", "output")
    if isinstance(out, (tuple, list)):
        pytest.fail(f"relu returned {len(out)} things, not one tensor: x.max(0) takes the largest value of each column, "
                    "across the whole batch, and returns those values with their positions. Compare every element with "
                    "zero instead, as x.max(tensor(0.0)) does")
    assert type(out) is torch.Tensor, "relu should return a tensor"
    assert out.shape == x.shape, (f"relu turned a tensor of shape {tuple(x.shape)} into one of shape {tuple(out.shape)}: "
                                  "it should work element by element and keep the shape")


@pytest.mark.grade("relu", points=1)
def test_relu_replaces_negatives_by_zero(student):
    """each negative element becomes 0, every other one stays as it is"""
    x = student.value("relu", "input")
    out = student.value("relu", "output")
    if type(out) is not torch.Tensor or out.shape != x.shape:
        return  # costs in the check above
    assert close(out, x.clamp(min=0)), "relu should keep positive numbers as they are and replace negative ones by 0"


# the parameters

def param(student, name):
    return student.value("init", name)


@pytest.mark.grade("init", points=1)
def test_first_layer_weights(student):
    """w1 has one row per pixel and one column per hidden unit, and requires grad"""
    w1 = param(student, "w1")
    if w1["shape"] == [HIDDEN, N_PIXELS]:
        pytest.fail("w1 is transposed: it has 30 rows and 784 columns, so xb@w1 cannot multiply a batch of images. "
                    "Its rows must match the 28*28 pixels of an image and its columns the 30 hidden units")
    assert w1["shape"] == [N_PIXELS, HIDDEN], f"w1 has shape {tuple(w1['shape'])}: it should have 28*28 rows and 30 columns"
    assert w1["requires_grad"], "w1 does not require gradients: make it with init_params"


@pytest.mark.grade("init", points=1)
def test_hidden_bias(student):
    """b1 holds one bias per hidden unit, and requires grad"""
    b1 = param(student, "b1")
    assert b1["shape"] in ([HIDDEN], [1, HIDDEN]), (
        f"b1 has shape {tuple(b1['shape'])}: the first layer needs its own bias for each of its 30 hidden units, "
        "so b1 should hold 30 numbers")
    assert b1["requires_grad"], "b1 does not require gradients: make it with init_params"


@pytest.mark.grade("init", points=1)
def test_second_layer(student):
    """w2 turns the 30 hidden units into one prediction, b2 is one bias; both require grad"""
    w2, b2 = param(student, "w2"), param(student, "b2")
    assert w2["shape"] == [HIDDEN, 1], f"w2 has shape {tuple(w2['shape'])}: it should have 30 rows (the hidden units) and 1 column"
    assert b2["shape"] in ([1], [], [1, 1]), f"b2 has shape {tuple(b2['shape'])}: the second layer has one output, so one bias"
    assert w2["requires_grad"] and b2["requires_grad"], "w2 and b2 should require gradients: make them with init_params"


# simple_net and seq_net: both judged against the two layers, with and without the ReLU between them

def two_layers(inputs, relu=True):
    hidden = inputs["xb"] @ inputs["w1"] + inputs["b1"]
    return (hidden.clamp(min=0) if relu else hidden) @ inputs["w2"] + inputs["b2"]


def check_prediction_shape(preds, name):
    assert type(preds) is torch.Tensor and preds.shape == (6, 1), (
        f"{name} should give one prediction per image, in a column: shape (number of images, 1)")


def check_nonlinearity(inputs, preds, name, fix):
    if close(preds, two_layers(inputs, relu=False)):
        pytest.fail(f"{name} has no non-linearity between its two layers, so it computes no more than one linear layer "
                    f"would: {fix}")


def check_two_layers(inputs, preds, name, fix):
    if type(preds) is not torch.Tensor or preds.shape != (6, 1) or close(preds, two_layers(inputs, relu=False)):
        return  # costs in the checks above
    expected = two_layers(inputs)
    if close(preds, expected.clamp(min=0)) and not close(preds, expected):
        pytest.fail(f"{name}'s negative predictions were turned into 0 (a ReLU after the last layer): the output is a raw "
                    "score, negative for a 7; apply the ReLU between the layers only")
    if close(preds, expected.abs()) and not close(preds, expected):
        pytest.fail(f"{name}'s negative predictions were turned positive (abs after the last layer): the output is a raw "
                    "score, negative for a 7; return it as the second layer gives it")
    assert close(preds, two_layers(inputs)), f"{name} does not compute the two layers with a ReLU between them: {fix}"


SIMPLE_NET_FIX = "compute xb@w1 + b1, apply relu to it, then multiply by w2 and add b2"


@pytest.mark.grade("simple_net", points=1)
def test_simple_net_gives_one_prediction_per_image(student):
    """simple_net(xb) has shape (number of images, 1)"""
    check_prediction_shape(student.value("simple_net", "preds"), "simple_net")


@pytest.mark.grade("simple_net", points=1)
def test_simple_net_has_a_nonlinearity(student):
    """a ReLU between the layers: the network is not linear"""
    preds = student.value("simple_net", "preds")
    check_nonlinearity(student.value("simple_net", "inputs"), preds, "simple_net", "apply relu to the first layer's result")


@pytest.mark.grade("simple_net", points=1)
def test_simple_net_is_two_layers_with_a_relu(student):
    """the predictions are relu(xb@w1 + b1)@w2 + b2, with the parameters w1, b1, w2, b2"""
    preds = student.value("simple_net", "preds")
    check_two_layers(student.value("simple_net", "inputs"), preds, "simple_net", SIMPLE_NET_FIX + ", with the parameters w1, b1, w2 and b2")


SEQ_SHAPES = [[HIDDEN, N_PIXELS], [HIDDEN], [1, HIDDEN], [1]]


@pytest.mark.grade("seq_net", points=1)
def test_seq_net_has_two_linear_layers(student):
    """seq_net is a module whose parameters are those of nn.Linear(28*28, 30) and nn.Linear(30, 1)"""
    layers = student.value("seq_net", "layers")
    assert layers["is_module"], f"seq_net should be a PyTorch module made with nn.Sequential; it is a {layers['type']}"
    assert layers["shapes"] == SEQ_SHAPES, (
        "seq_net's parameters are not those of two linear layers, 28*28 inputs to 30 outputs, then 30 to 1: "
        f"their shapes are {layers['shapes']}")


def seq_preds(student):
    layers = student.value("seq_net", "layers")
    if layers["shapes"] != SEQ_SHAPES:
        return None  # costs in the check above
    return student.value("seq_net", "preds")


@pytest.mark.grade("seq_net", points=1)
def test_seq_net_has_a_nonlinearity(student):
    """a ReLU layer between the linear layers"""
    preds = seq_preds(student)
    if preds is not None:
        check_nonlinearity(student.value("seq_net", "inputs"), preds, "seq_net", "put nn.ReLU() between the two nn.Linear layers")


@pytest.mark.grade("seq_net", points=1)
def test_seq_net_computes_what_simple_net_does(student):
    """with the same parameters, seq_net predicts what simple_net does"""
    preds = seq_preds(student)
    if preds is not None:
        check_two_layers(student.value("seq_net", "inputs"), preds, "seq_net",
                         "give nn.Sequential the first linear layer, then nn.ReLU(), then the second linear layer, in that order")
