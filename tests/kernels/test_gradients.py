"""Backward passes on every ISA.

Gradients are read from one SGD step (see harness.py) and checked two ways:
  * against the float64 reference model (tests/kernels/reference.py), at a
    tight tolerance, for every element of every parameter;
  * against central finite differences of the loss the library itself
    computes (``evaluate`` in inference mode; a zero-learning-rate training
    step for BatchNorm2D and Dropout, whose training forward differs).
The input gradient (dx) of each layer is exercised by putting a
parametrised layer (Conv2D 1x1 or Dense) in front of it: that layer's weight
gradient is built from the dx of the layer under test.
"""

import re

import numpy as np
import pytest

import cpucnn as cc
import reference as ref
from harness import (analytic_grads, assert_close, assert_grads_close, build, cancelled_grad_scales, check_fd, eval_loss,
                     get_params, probe_outputs, randomize, ref_loss_grads, seeded_rng, train_loss)

L = cc.layers


@pytest.fixture(autouse=True)
def _one_thread(threads):
    """One thread unless a test asks for more: the finite differences make
    hundreds of tiny calls, for which waking an OpenMP team on a busy
    machine costs more than the work. The threaded plans are covered by
    test_conv2d_backward_paths and the forward tests."""
    cc.set_num_threads(1)


def _targets(rng, n, k, loss):
    if loss == "mse":
        return rng.standard_normal((n, k)).astype(np.float32)
    return rng.integers(0, k, n).astype(np.int64)


def _setup(layers, input_shape, loss, n, key, classes=None):
    model = build(layers, input_shape, loss)
    rng = seeded_rng(*key)
    randomize(model, rng)
    x = rng.standard_normal((n,) + tuple(input_shape)).astype(np.float32)
    y = _targets(rng, n, classes or model.output_shape[0], loss)
    return model, x, y, rng


# ---------------------------------------------------------------------------
# Conv2D: weight, bias and dx (through a 1x1 convolution in front)
# ---------------------------------------------------------------------------

# (cin, (h, w), filters, kernel, stride, padding, dilation, groups, use_bias)
CONV_GRAD_CASES = [
    (3, (7, 7), 5, 3, 1, 1, 1, 1, True),
    (5, (13, 13), 4, 3, 2, "same", 1, 1, True),
    (3, (13, 7), 4, (3, 2), (2, 1), (1, 0), (1, 2), 1, False),
    (4, (7, 13), 6, 3, 1, "same", 2, 2, True),
    (5, (7, 7), 5, 3, 2, 1, 1, 5, True),
    (6, (7, 7), 9, 2, 1, "same", 1, 3, True),
    (3, (7, 7), 5, 1, 1, 0, 1, 1, True),
    (17, (7, 7), 3, 1, 2, 0, 1, 1, True),
    (1, (13, 13), 3, 5, 3, 2, 1, 1, True),
    (3, (5, 5), 2, 5, 1, "valid", 1, 1, True),
    (2, (1, 7), 3, (1, 3), 1, "same", 1, 1, True),
    (3, (7, 7), 4, 4, 3, "same", 1, 1, True),
]


def _conv_layer(case):
    cin, hw, filters, k, s, p, d, g, use_bias = case
    return L.Conv2D(filters, k, stride=s, padding=p, dilation=d, groups=g, use_bias=use_bias)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("case", CONV_GRAD_CASES, ids=str)
def test_conv2d_gradients(isa, case, loss):
    cin, (h, w) = case[0], case[1]
    layers = [L.Conv2D(cin, 1), _conv_layer(case), L.Flatten(), L.Dense(3)]
    model, x, y, rng = _setup(layers, (cin, h, w), loss, 3, ("conv-grad", case, loss))
    what = f"Conv2D isa={isa} loss={loss} (cin, (h, w), filters, k, stride, pad, dil, groups, bias)={case}"
    grads = analytic_grads(model, x, y)
    _, expected = ref_loss_grads(model, x, y, loss)
    assert_grads_close(grads, expected, what)
    # the model is linear up to the loss: central differences are exact up to rounding
    check_fd(model, grads, lambda: eval_loss(model, x, y), rng, what, h=1e-2, per_param=5)


_ref_cache = {}

# Batch- and thread-dependent plans of ops/conv2d.cc's backward: one chunk
# with the GEMM threaded, one sample per chunk, several chunks per thread
# (partial sums reduced in thread order), chunks of several samples.
CONV_PATH_CASES = [
    (17, (30, 30), 16, 3, 1, "same", 1, 1, True),   # 137700 floats of im2col per sample: chunks of 7
    (4, (13, 13), 6, 3, 2, 1, 1, 2, True),
    (5, (7, 7), 8, 1, 1, 0, 1, 1, False),           # 1x1: the input is its own im2col at chunk size 1
]


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("n", [1, 3, 67])
@pytest.mark.parametrize("case", CONV_PATH_CASES, ids=str)
def test_conv2d_backward_paths(isa, threads, case, n, nt):
    cc.set_num_threads(nt)
    cin, (h, w) = case[0], case[1]
    layers = [L.Conv2D(cin, 1, use_bias=False), _conv_layer(case), L.GlobalAvgPool2D()]
    model, x, y, _ = _setup(layers, (cin, h, w), "mse", n, ("conv-path", case, n))
    what = f"Conv2D backward isa={isa} threads={nt} N={n} case={case}"
    key = ("conv-path", case, n)  # the same data for every ISA and thread count
    if key not in _ref_cache:
        _ref_cache[key] = ref_loss_grads(model, x, y, "mse")[1]
    assert_grads_close(analytic_grads(model, x, y), _ref_cache[key], what)


# ---------------------------------------------------------------------------
# Dense: weight, bias and dx (through a Dense in front)
# ---------------------------------------------------------------------------

# (features, hidden, units, use_bias)
DENSE_GRAD_CASES = [(1, 1, 1, True), (5, 3, 4, True), (17, 33, 5, False), (300, 17, 10, True), (13, 67, 3, True)]


@pytest.mark.parametrize("n", [1, 3, 67])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("case", DENSE_GRAD_CASES, ids=str)
def test_dense_gradients(isa, case, loss, n):
    f, hidden, units, use_bias = case
    layers = [L.Dense(hidden), L.Dense(units, use_bias=use_bias)]
    model, x, y, rng = _setup(layers, (f,), loss, n, ("dense-grad", case, loss, n))
    what = f"Dense isa={isa} loss={loss} N={n} (features, hidden, units, bias)={case}"
    grads = analytic_grads(model, x, y)
    assert_grads_close(grads, ref_loss_grads(model, x, y, loss)[1], what)
    if n != 67:
        check_fd(model, grads, lambda: eval_loss(model, x, y), rng, what, h=1e-2, per_param=4)


# ---------------------------------------------------------------------------
# dx of every other layer, through Conv2D 1x1 (or Dense) in front of it
# ---------------------------------------------------------------------------

# name -> (layers under test, per-sample input shape, smooth?)
# Non-smooth layers (kinks at 0 / argmax switches) get a smaller step.
DX_CASES = {
    "MaxPool2D(2)": ([L.MaxPool2D(2)], (3, 7, 7), False),
    "MaxPool2D(2) wide": ([L.MaxPool2D(2)], (1, 4, 69), False),  # 35 windows a row: two registers and a tail
    "MaxPool2D(3,s2,p1)": ([L.MaxPool2D(3, stride=2, padding=1)], (3, 7, 6), False),
    "MaxPool2D((2,3),s(1,2),p(1,1))": ([L.MaxPool2D((2, 3), stride=(1, 2), padding=(1, 1))], (2, 5, 7), False),
    "AvgPool2D(2)": ([L.AvgPool2D(2)], (3, 7, 7), True),
    "AvgPool2D(3,s2,p1)": ([L.AvgPool2D(3, stride=2, padding=1)], (3, 7, 6), True),
    "AvgPool2D((2,3),s(1,2),p(1,1))": ([L.AvgPool2D((2, 3), stride=(1, 2), padding=(1, 1))], (2, 5, 7), True),
    "GlobalAvgPool2D": ([L.GlobalAvgPool2D()], (5, 7, 3), True),
    "Flatten": ([], (3, 5, 7), True),
    "ReLU": ([L.ReLU()], (3, 5, 7), False),
    "LeakyReLU(0.2)": ([L.LeakyReLU(0.2)], (3, 5, 7), False),
    "Sigmoid": ([L.Sigmoid()], (3, 5, 7), True),
    "Tanh": ([L.Tanh()], (3, 5, 7), True),
    "Softmax(CHW)": ([L.Softmax()], (5, 3, 4), True),
    "Dropout(0)": ([L.Dropout(0.0)], (3, 5, 7), True),
}
# flat inputs: Dense in front instead of the 1x1 convolution
DX_FLAT_CASES = {
    "ReLU(flat)": ([L.ReLU()], (17,), False),
    "Sigmoid(flat)": ([L.Sigmoid()], (17,), True),
    "Tanh(flat)": ([L.Tanh()], (17,), True),
    "Softmax(flat)": ([L.Softmax()], (17,), True),
    "LeakyReLU(flat)": ([L.LeakyReLU(0.01)], (17,), False),
}


def _fresh(layers):
    """New layer objects (a layer belongs to one model)."""
    return [L.from_config(layer.get_config()) for layer in layers]


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("name", list(DX_CASES) + list(DX_FLAT_CASES))
def test_layer_input_gradient(isa, name, loss):
    under, shape, smooth = {**DX_CASES, **DX_FLAT_CASES}[name]
    pre = L.Conv2D(shape[0], 1) if len(shape) == 3 else L.Dense(shape[0])
    tail = [L.Flatten()] if len(shape) == 3 and name != "GlobalAvgPool2D" else []
    layers = [pre] + _fresh(under) + tail + [L.Dense(4)]
    model, x, y, rng = _setup(layers, shape, loss, 3, ("dx", name, loss))
    what = f"{name} isa={isa} loss={loss} input={shape} layers={[la.get_config()['type'] for la in layers]}"
    grads = analytic_grads(model, x, y)
    assert_grads_close(grads, ref_loss_grads(model, x, y, loss)[1], what)
    h = 1e-2 if smooth else 1e-3
    check_fd(model, grads, lambda: eval_loss(model, x, y), rng, what, h=h, per_param=8,
             rtol=1e-2 if smooth else 2e-2, atol_frac=2e-3 if smooth else 5e-3, kinks=not smooth)


@pytest.mark.parametrize("case", [(2, None, 0, (6, 37)), (2, 2, 1, (5, 6)), (3, 2, 1, (7, 7)), ((2, 3), 1, 0, (4, 5))],
                         ids=str)
def test_maxpool2d_backward_with_ties(isa, case):
    """Ties go to the first maximum in window order (PyTorch). An identity
    1x1 convolution in front passes the tied values through exactly, and its
    weight gradient shows where each window's gradient went."""
    k, s, p, (h, w) = case
    c = 3
    layers = [L.Conv2D(c, 1), L.MaxPool2D(k, stride=s, padding=p), L.Flatten(), L.Dense(4)]
    model, _, y, rng = _setup(layers, (c, h, w), "mse", 3, ("maxpool-ties", case))
    model.layers[0].weight = np.eye(c).reshape(c, c, 1, 1)
    model.layers[0].bias = np.zeros(c)
    x = rng.integers(-2, 3, (3, c, h, w)).astype(np.float32)  # five values: ties everywhere
    what = f"MaxPool2D ties isa={isa} (pool, stride, pad, (h, w))={case}"
    assert_grads_close(analytic_grads(model, x, y), ref_loss_grads(model, x, y, "mse")[1], what)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [1, 3, 10])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_loss_value_and_gradient(isa, loss, classes):
    dense = L.Dense(classes)
    model, x, y, rng = _setup([L.Flatten(), dense], (2, 3, 5), loss, 5, ("loss", loss, classes), classes)
    what = f"loss={loss} isa={isa} classes={classes}"
    value, expected = ref_loss_grads(model, x, y, loss)
    np.testing.assert_allclose(eval_loss(model, x, y), value, rtol=1e-5, atol=1e-6, err_msg=what + " evaluate")
    np.testing.assert_allclose(train_loss(model, x, y), value, rtol=1e-5, atol=1e-6, err_msg=what + " train_step")
    grads = analytic_grads(model, x, y)
    assert_grads_close(grads, expected, what)
    check_fd(model, grads, lambda: eval_loss(model, x, y), rng, what, h=1e-2, per_param=10)


def test_cross_entropy_is_stable_for_large_logits(isa):
    dense = L.Dense(4)
    model, x, y, _ = _setup([L.Flatten(), dense], (1, 2, 3), "cross_entropy", 3, ("ce-large",))
    dense.weight = dense.weight * 400.0  # logits in the hundreds
    value, expected = ref_loss_grads(model, x, y, "cross_entropy")
    assert value > 10, "the case must have large losses"
    np.testing.assert_allclose(eval_loss(model, x, y), value, rtol=1e-5, err_msg=f"isa={isa}")
    assert_grads_close(analytic_grads(model, x, y), expected, f"cross_entropy large logits isa={isa}")


def test_loss_is_mean_over_batch(isa):
    """Repeating the batch changes neither the loss nor the gradient (mean, not sum)."""
    for loss in ("mse", "cross_entropy"):
        model, x, y, _ = _setup([L.Flatten(), L.Dense(3)], (2, 2, 2), loss, 3, ("mean", loss))
        g1 = analytic_grads(model, x, y)
        g2 = analytic_grads(model, np.concatenate([x, x]), np.concatenate([y, y]))
        for k in g1:
            np.testing.assert_allclose(g2[k], g1[k], rtol=1e-5, atol=1e-7, err_msg=f"{loss} isa={isa} {k}")
        np.testing.assert_allclose(eval_loss(model, np.concatenate([x, x]), np.concatenate([y, y])),
                                   eval_loss(model, x, y), rtol=1e-6, err_msg=f"{loss} isa={isa}")


# ---------------------------------------------------------------------------
# BatchNorm2D in training mode
# ---------------------------------------------------------------------------

BN_CASES = [(1, (4, 4)), (3, (5, 7)), (17, (3, 3))]


@pytest.mark.parametrize("momentum", [0.1, 0.5])
@pytest.mark.parametrize("case", BN_CASES, ids=str)
def test_batchnorm2d_training_forward_and_running_stats(isa, case, momentum):
    c, (h, w) = case
    rng = seeded_rng("bn-train", case, momentum)
    x = (rng.standard_normal((4, c, h, w)) * 2 + 0.5).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, c).astype(np.float32), rng.uniform(-0.5, 0.5, c).astype(np.float32)
    rm, rv = rng.uniform(-1, 1, c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    params = {(0, "weight"): gamma, (0, "bias"): beta, (0, "running_mean"): rm, (0, "running_var"): rv}
    what = f"BatchNorm2D isa={isa} momentum={momentum} (c, (h, w))={case}"
    # the training-mode output, through the probe
    out = probe_outputs([L.BatchNorm2D(momentum=momentum)], (c, h, w), x, params=params)
    assert_close(out, ref.batchnorm2d_forward(x, gamma, beta).reshape(4, -1), what + " training output")
    # one training step updates the running statistics (unbiased variance)
    model = build([L.BatchNorm2D(momentum=momentum), L.Flatten(), L.Dense(2)], (c, h, w), "mse")
    for (i, n), v in params.items():
        model._m.set_param(i, n, v)
    model._m.train_step(x, rng.standard_normal((4, 2)).astype(np.float32))
    want_m, want_v = ref.batchnorm2d_running_update(x, rm, rv, momentum)
    assert_close(model.layers[0].running_mean, want_m, what + " running_mean", rtol=1e-5)
    assert_close(model.layers[0].running_var, want_v, what + " running_var", rtol=1e-5)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("case", BN_CASES, ids=str)
def test_batchnorm2d_gradients(isa, case, loss):
    c, (h, w) = case
    layers = [L.Conv2D(c, 1), L.BatchNorm2D(), L.Flatten(), L.Dense(3)]
    model, x, y, rng = _setup(layers, (c, h, w), loss, 4, ("bn-grad", case, loss))
    what = f"BatchNorm2D isa={isa} loss={loss} (c, (h, w))={case}"
    # keep the BatchNorm input's variance far above eps (with one channel and a
    # tiny weight the loss hardly depends on the weight but through eps)
    w = model.layers[0].weight
    model.layers[0].weight = w + np.sign(w) * 0.5
    grads = analytic_grads(model, x, y)
    _, expected = ref_loss_grads(model, x, y, loss, training=True)
    # each parameter at its own scale; the conv's gradients cancel through
    # BatchNorm (its bias's is zero, with one channel its weight's is too but
    # for eps): those at the scale of the terms they sum
    assert_grads_close(grads, expected, what, rtol=1e-4, atol_frac=1e-4,
                       cancelled=cancelled_grad_scales(model, x, y, loss))
    check_fd(model, grads, lambda: train_loss(model, x, y), rng, what, h=1e-2, per_param=5,
             rtol=2e-2, atol_frac=5e-3)


def test_batchnorm2d_inference_uses_running_stats_after_training(isa):
    layers = [L.BatchNorm2D(momentum=0.3), L.Flatten(), L.Dense(2)]
    model, x, y, _ = _setup(layers, (3, 4, 5), "mse", 8, ("bn-infer",))
    for _ in range(3):
        model._m.train_step(x, y)
    bn = model.layers[0]
    expected = ref.RefModel([la.get_config() for la in model.layers],
                            [{n: la.get_param(n) for n in la.param_names} for la in model.layers]).forward(x)
    assert_close(model.predict(x), expected, f"BatchNorm2D inference after training isa={isa}")
    assert not np.allclose(bn.running_var, 1.0), "running statistics must have moved"


# ---------------------------------------------------------------------------
# Dropout in training mode
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4096,), (7, 13, 17)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
def test_dropout_mask_statistics(isa, threads, rate, shape):
    n = 4
    rng = seeded_rng("dropout-stats", rate, shape)
    x = (rng.uniform(0.5, 1.5, (n,) + shape) * rng.choice([-1, 1], (n,) + shape)).astype(np.float32)
    what = f"Dropout({rate}) isa={isa} shape={shape}"
    out = probe_outputs([L.Dropout(rate)], shape, x, step=0)
    flat = x.reshape(n, -1).astype(np.float64)
    kept = out != 0
    # kept values are scaled by exactly 1/(1 - rate), the rest are zero
    np.testing.assert_allclose(out[kept], flat[kept] * np.float32(1.0 / (1.0 - rate)), rtol=1e-6, err_msg=what)
    total = kept.size
    dropped = total - kept.sum()
    sd = np.sqrt(total * rate * (1 - rate))
    assert abs(dropped - rate * total) <= 5 * sd + 1, f"{what}: dropped {dropped} of {total}"
    if 0 < rate:
        # every sample gets its own mask; masks change with the step, not with threads
        assert not all(np.array_equal(kept[0], kept[i]) for i in range(1, n)), what
        assert not np.array_equal(kept, probe_outputs([L.Dropout(rate)], shape, x, step=1) != 0), what
        assert np.array_equal(out, probe_outputs([L.Dropout(rate)], shape, x, step=0)), what + " same step"
        cc.set_num_threads(1 if cc.get_num_threads() > 1 else 2)
        assert np.array_equal(out, probe_outputs([L.Dropout(rate)], shape, x, step=0)), what + " other threads"
        # the model seed changes the mask
        assert not np.array_equal(out, probe_outputs([L.Dropout(rate)], shape, x, seed=1)), what + " seed"


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("rate", [0.3, 0.7])
def test_dropout_gradients(isa, rate, loss):
    shape, n = (3, 5, 7), 4
    layers = [L.Conv2D(3, 1), L.Dropout(rate), L.Flatten(), L.Dense(3)]
    model, x, y, rng = _setup(layers, shape, loss, n, ("dropout-grad", rate, loss))
    what = f"Dropout({rate}) isa={isa} loss={loss}"
    # the keep-mask of step 0, read through a probe with the dropout at the same layer index
    params = {k: v for k, v in get_params(model).items() if k[0] == 0}
    probe = probe_outputs([L.Conv2D(3, 1), L.Dropout(rate)], shape, x, params=params, step=0)
    pre = ref.conv2d_forward(x, params[(0, "weight")], params[(0, "bias")])
    assert np.all(pre != 0), "zeros before the dropout would hide the mask"
    mask = (probe != 0).reshape((n,) + shape)
    grads = analytic_grads(model, x, y, step=0)
    _, expected = ref_loss_grads(model, x, y, loss, training=True, dropout_masks={1: mask})
    assert_grads_close(grads, expected, what)
    check_fd(model, grads, lambda: train_loss(model, x, y, step=0), rng, what, h=1e-2, per_param=6)


# ---------------------------------------------------------------------------
# A whole CNN, every layer type, one step
# ---------------------------------------------------------------------------


def _stack(loss):
    """(analytic, reference, cancelled) gradients of a CNN with every layer type."""
    layers = [L.Conv2D(5, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2, padding=1),
              L.Conv2D(6, (2, 3), stride=(1, 2), groups=1), L.LeakyReLU(0.1), L.AvgPool2D(2, stride=1),
              L.Conv2D(4, 1), L.Sigmoid(), L.Flatten(), L.Dense(9), L.Tanh(), L.Dense(5)]
    model, x, y, _ = _setup(layers, (3, 13, 11), loss, 6, ("stack-grad", loss))
    _, expected = ref_loss_grads(model, x, y, loss, training=True)
    return analytic_grads(model, x, y), expected, cancelled_grad_scales(model, x, y, loss)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_stack_gradients(isa, loss):
    grads, expected, cancelled = _stack(loss)
    # each parameter at its own scale (the first conv's and BatchNorm's are
    # ~1% of the largest); the first conv's bias, zero through BatchNorm, at
    # the scale of its terms
    assert_grads_close(grads, expected, f"stack isa={isa} loss={loss}", rtol=1e-4, atol_frac=1e-4,
                       cancelled=cancelled)


def _model_relative_check_passes(ana, expected, rtol=1e-4, atol_frac=1e-4):
    """The check the stack test made before: atol = atol_frac times the
    model's largest gradient (assert_grads_close's former floor=1.0)."""
    overall = max(float(np.abs(e).max()) for e in expected.values())
    return all(np.allclose(ana[k], e, rtol=rtol, atol=atol_frac * overall) for k, e in expected.items())


@pytest.mark.parametrize("key", [(0, "weight"), (1, "weight"), (1, "bias")], ids=lambda k: f"{k[0]}.{k[1]}")
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_stack_check_catches_a_half_percent_gradient_bug(isa, loss, key):
    # An early layer's gradient 0.5% too large (the first conv's weight,
    # BatchNorm's weight or bias) fails the stack test's check.
    grads, expected, cancelled = _stack(loss)
    bad = dict(grads)
    bad[key] = grads[key] * 1.005
    with pytest.raises(AssertionError, match=re.escape(f"gradient of {key}")):
        assert_grads_close(bad, expected, f"stack isa={isa} loss={loss}", rtol=1e-4, atol_frac=1e-4,
                           cancelled=cancelled)
    if key[0] == 1:
        # BatchNorm's gradients are ~1% of the model's largest: the former,
        # model-relative tolerance (1e-4 of the largest) let this bug pass
        assert _model_relative_check_passes(bad, expected), "the premise: the old check missed this bug"


# ---------------------------------------------------------------------------
# Layer chains the model wires specially: ReLU fused into a Conv2D or run in
# place on its input, Flatten as a view, views and in-place layers last
# ---------------------------------------------------------------------------

CHAINS = {
    "Conv-ReLU": ([L.Conv2D(4, 3, padding=1), L.ReLU(), L.Flatten(), L.Dense(3)], (3, 5, 6), 3),
    "Conv-ReLU-ReLU": ([L.Conv2D(4, 3), L.ReLU(), L.ReLU(), L.Flatten(), L.Dense(3)], (2, 6, 5), 3),
    "Conv-Flatten-ReLU": ([L.Conv2D(3, 2), L.Flatten(), L.ReLU(), L.Dense(3)], (2, 5, 5), 3),
    "Conv-Flatten(last)": ([L.Conv2D(2, 3, stride=2), L.Flatten()], (3, 5, 7), 3),
    "Conv-ReLU-Flatten(last)": ([L.Conv2D(2, 3, padding="same"), L.ReLU(), L.Flatten()], (2, 3, 3), 3),
    "Flatten-Dense-ReLU-Dense": ([L.Flatten(), L.Dense(7), L.ReLU(), L.Dense(3)], (2, 3, 4), 3),
    "Dense-ReLU(last)": ([L.Flatten(), L.Dense(5), L.ReLU()], (1, 3, 3), 3),
    "Sigmoid-ReLU": ([L.Conv2D(3, 1), L.Sigmoid(), L.ReLU(), L.Flatten(), L.Dense(3)], (2, 4, 4), 3),
    "Tanh-ReLU": ([L.Conv2D(3, 1), L.Tanh(), L.ReLU(), L.Flatten(), L.Dense(3)], (2, 4, 4), 3),
    "Softmax-ReLU": ([L.Conv2D(3, 1), L.Softmax(), L.ReLU(), L.Flatten(), L.Dense(3)], (2, 4, 4), 3),
    "BN-ReLU": ([L.Conv2D(3, 3), L.BatchNorm2D(), L.ReLU(), L.Flatten(), L.Dense(3)], (2, 5, 5), 4),
    "MaxPool-ReLU": ([L.Conv2D(3, 1), L.MaxPool2D(2), L.ReLU(), L.Flatten(), L.Dense(3)], (2, 5, 4), 3),
    "Conv-ReLU-Conv-ReLU-GAP": ([L.Conv2D(4, 3, padding=1), L.ReLU(), L.Conv2D(5, 3, groups=1), L.ReLU(),
                                 L.GlobalAvgPool2D(), L.Dense(3)], (3, 7, 7), 3),
    "Flatten-Flatten": ([L.Conv2D(2, 1), L.Flatten(), L.Flatten(), L.Dense(3)], (2, 3, 3), 3),
    # one sample, two threads: the conv forward splits output rows, ReLU fused
    "Conv-ReLU big, N=1": ([L.Conv2D(16, 3, padding=1), L.ReLU(), L.GlobalAvgPool2D(), L.Dense(3)], (9, 20, 20),
                           1),
    "Conv-ReLU-MaxPool2x2, N=2": ([L.Conv2D(16, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(3)],
                                  (9, 20, 21), 2),
}


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("name", list(CHAINS))
def test_layer_chains(isa, threads, name, nt):
    cc.set_num_threads(nt)
    layers, shape, n = CHAINS[name]
    loss = "cross_entropy" if "BN" in name else "mse"
    model, x, y, _ = _setup(_fresh(layers), shape, loss, n, ("chain", name))
    what = f"chain {name} isa={isa} threads={nt} N={n} input={shape}"
    if "BN" not in name:  # inference-mode forward, through predict and evaluate
        expected = ref.RefModel([la.get_config() for la in model.layers],
                                [{k: la.get_param(k) for k in la.param_names} for la in model.layers]).forward(x)
        assert_close(model.predict(x), expected, what + " predict")
        assert_close(model.predict(x, batch_size=1), expected, what + " predict batch_size=1")
    value, expected_grads = ref_loss_grads(model, x, y, loss, training=True)
    np.testing.assert_allclose(train_loss(model, x, y), value, rtol=1e-5, atol=1e-7, err_msg=what + " loss")
    assert_grads_close(analytic_grads(model, x, y), expected_grads, what, rtol=1e-4, atol_frac=1e-4,
                       cancelled=cancelled_grad_scales(model, x, y, loss))
