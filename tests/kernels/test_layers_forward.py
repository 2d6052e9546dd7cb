"""Every layer's forward pass (inference mode, ``model.predict``) on every
ISA against the float64 NumPy reference, with ragged channel and spatial
sizes, batches of 1, 3 and 67 (so ops/conv2d.cc runs both its GEMM-parallel
and its batch-parallel plans) and 1 or 2 threads.

Training-mode forwards (BatchNorm batch statistics, Dropout) are checked in
test_gradients.py, where a training step can be observed.
"""

import numpy as np
import pytest

import cpucnn as cc
import reference as ref
from harness import assert_close, build, seeded_rng

L = cc.layers

BATCHES = (1, 3, 67)
THREADS = (1, 2)

# The reference output of a case depends only on the case and the batch: it
# is computed once and shared by every ISA / thread count.
_cache = {}


def cached(key, fn):
    if key not in _cache:
        _cache[key] = fn()
    return _cache[key]


def run(model, x, nt):
    cc.set_num_threads(nt)
    return model.predict(x)


# ---------------------------------------------------------------------------
# Conv2D
# ---------------------------------------------------------------------------

# (cin, (h, w), filters, kernel, stride, padding, dilation, groups, use_bias)
CONV_CASES = [
    (1, (1, 1), 1, 1, 1, 0, 1, 1, True),                     # smallest; 1x1 direct path
    (3, (7, 7), 5, 3, 1, 1, 1, 1, True),
    (5, (30, 30), 17, 3, 2, "same", 1, 1, True),             # "same", stride 2, odd pad at the bottom/right
    (17, (30, 30), 16, 3, 1, "same", 1, 1, True),            # big enough for the threaded GEMM at batch 1
    (3, (13, 7), 4, (3, 2), (2, 1), (1, 0), (1, 2), 1, False),  # everything rectangular, no bias
    (4, (13, 13), 6, 3, 1, "same", 2, 2, True),              # groups + dilation + "same"
    (5, (7, 13), 5, 3, 2, 1, 1, 5, True),                    # depthwise, stride 2
    (6, (7, 7), 9, 2, 1, "same", 1, 3, True),                # even kernel "same": asymmetric padding
    (3, (13, 13), 5, 1, 1, 0, 1, 1, True),                   # 1x1 stride 1: im2col-free path
    (17, (13, 13), 3, 1, 2, 0, 1, 1, True),                  # 1x1 stride 2
    (1, (30, 30), 5, 5, 3, 2, 1, 1, True),                   # 5x5 stride 3 pad 2
    (3, (7, 7), 2, 7, 1, "valid", 1, 1, True),               # kernel = input: 1x1 output
    (5, (1, 7), 3, (1, 3), 1, "same", 1, 1, True),           # H = 1
    (2, (13, 30), 33, 3, (1, 2), "same", (2, 1), 1, True),   # 33 filters: partial GEMM tiles
    (16, (7, 7), 32, 3, 1, 1, 1, 4, True),
    (3, (13, 13), 4, 4, 3, "same", 1, 1, True),              # k4 s3 "same": pads 1 top, 2 bottom
    (4, (7, 7), 4, 3, 1, (2, 0), 3, 1, True),                # dilation 3 with padding (2, 0)
    (3, (1, 1), 7, 3, 1, "same", 1, 1, False),               # 3x3 "same" on 1x1: all padding but one tap
]


def _conv_data(case, n):
    cin, (h, w), filters, k, s, p, d, g, use_bias = case
    rng = seeded_rng("conv", case, n)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    kh, kw = ref.pair(k)
    wt = (rng.uniform(-1, 1, (filters, cin // g, kh, kw)) / np.sqrt(cin // g * kh * kw)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, filters).astype(np.float32) if use_bias else None
    y = ref.conv2d_forward(x, wt, b, s, p, d, g)
    return x, wt, b, y


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_forward(isa, threads, case, n, nt):
    cin, (h, w), filters, k, s, p, d, g, use_bias = case
    x, wt, b, expected = cached(("conv", case, n), lambda: _conv_data(case, n))
    layer = L.Conv2D(filters, k, stride=s, padding=p, dilation=d, groups=g, use_bias=use_bias)
    model = build([layer], (cin, h, w), loss=None)
    layer.weight = wt
    if use_bias:
        layer.bias = b
    what = f"Conv2D isa={isa} threads={nt} N={n} (cin, (h, w), filters, k, stride, pad, dil, groups, bias)={case}"
    assert model.output_shape == expected.shape[1:], f"{what}: output shape"
    assert_close(run(model, x, nt), expected, what)


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 3, 5, 8, 13)], ids=str)
def test_conv2d_relu_forward(isa, threads, case, n, nt):
    """Conv2D followed by ReLU: the model fuses the ReLU into the convolution
    (on every plan: batch-parallel, row slabs, single thread) and, with the
    ReLU last, copies the fused result out."""
    cin, (h, w), filters, k, s, p, d, g, use_bias = case
    x, wt, b, expected = cached(("conv", case, n), lambda: _conv_data(case, n))
    conv = L.Conv2D(filters, k, stride=s, padding=p, dilation=d, groups=g, use_bias=use_bias)
    model = build([conv, L.ReLU()], (cin, h, w), loss=None)
    conv.weight = wt
    if use_bias:
        conv.bias = b
    what = f"Conv2D+ReLU isa={isa} threads={nt} N={n} case={case}"
    assert_close(run(model, x, nt), np.maximum(expected, 0.0), what)


def test_conv2d_same_padding_rule():
    """'same' follows TensorFlow: output ceil(in/stride), odd padding at the bottom/right."""
    assert ref.conv2d_padding(30, 30, 3, 2, "same") == (0, 1, 0, 1)
    assert ref.conv2d_padding(13, 13, 4, 3, "same") == (1, 2, 1, 2)
    assert ref.conv2d_padding(7, 7, 2, 1, "same") == (0, 1, 0, 1)
    for h, k, s, dil in [(30, 3, 2, 1), (13, 4, 3, 1), (7, 2, 1, 1), (13, 3, 1, 2), (1, 5, 1, 1), (8, 3, 4, 1)]:
        model = build([L.Conv2D(2, k, stride=s, padding="same", dilation=dil)], (1, h, h + 1), loss=None)
        want = (2, -(-h // s), -(-(h + 1) // s))
        assert model.output_shape == want, f"(h, k, stride, dilation)={(h, k, s, dil)}"


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------

# (c, h, w, pool_size, stride, padding)
POOL_CASES = [
    (1, 1, 1, 1, None, 0),
    (3, 7, 7, 2, None, 0),               # floor: the last row/column is dropped
    (5, 13, 13, 3, 2, 1),
    (17, 30, 30, 2, 2, 1),
    (3, 13, 7, (3, 2), (1, 2), (1, 1)),
    (5, 7, 13, (2, 3), (3, 1), (0, 1)),
    (3, 7, 7, 7, None, 3),
    (1, 30, 30, 4, 3, 2),
    (5, 13, 67, 2, 2, 0),                # 2x2 stride 2 fast paths: 33 outputs a row (vectors + a tail)
    (2, 2, 2, 2, None, 0),
]


def _pool_data(kind, case, n):
    c, h, w, k, s, p = case
    rng = seeded_rng("pool", kind, case, n)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if kind == "MaxPool2D":
        x[x > 1.5] = 1.5  # ties: the first maximum wins (only matters for backward)
        y = ref.maxpool2d_forward(x, k, s, p)[0]
    else:
        y = ref.avgpool2d_forward(x, k, s, p)
    return x, y


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["MaxPool2D", "AvgPool2D"])
def test_pool2d_forward(isa, threads, kind, case, n, nt):
    c, h, w, k, s, p = case
    x, expected = cached(("pool", kind, case, n), lambda: _pool_data(kind, case, n))
    model = build([getattr(L, kind)(k, stride=s, padding=p)], (c, h, w), loss=None)
    what = f"{kind} isa={isa} threads={nt} N={n} (c, h, w, pool, stride, pad)={case}"
    assert model.output_shape == expected.shape[1:], f"{what}: output shape"
    assert_close(run(model, x, nt), expected, what, rtol=1e-6, atol_frac=1e-6)


@pytest.mark.parametrize("kind", ["MaxPool2D", "AvgPool2D"])
def test_pool2d_stride_in_the_core(kind):
    """The core (model files, the C API) reads a missing stride as the pool
    size and rejects a zero one (the Python layer checks it first)."""
    arch = '{"input_shape": [1, 6, 6], "layers": [{"type": "%s", "pool_size": [3, 2]%s}]}'
    assert tuple(cc._core.Model(arch % (kind, ""), 0).output_shape) == (1, 2, 3)
    assert tuple(cc._core.Model(arch % (kind, ', "stride": null'), 0).output_shape) == (1, 2, 3)
    assert tuple(cc._core.Model(arch % (kind, ', "stride": [1, 2]'), 0).output_shape) == (1, 4, 3)
    for bad in ("0", "[0, 1]", "[2, 0]", "-1"):
        with pytest.raises(ValueError, match="stride must be positive"):
            cc._core.Model(arch % (kind, ', "stride": ' + bad), 0)


def test_maxpool2d_propagates_nan(isa):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 1] = np.nan
    model = build([L.MaxPool2D(2)], (1, 4, 4), loss=None)
    y = model.predict(x)[0, 0]
    assert np.isnan(y[0, 0]) and not np.isnan(y[1:, :]).any() and not np.isnan(y[0, 1]), f"isa={isa}: {y}"


# (c, h, w)
GAP_CASES = [(1, 1, 1), (5, 7, 13), (17, 30, 30), (3, 1, 7)]


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("case", GAP_CASES, ids=str)
def test_global_avgpool2d_and_flatten_forward(isa, threads, case, n, nt):
    x = seeded_rng("gap", case, n).standard_normal((n,) + case).astype(np.float32) + 3.0
    what = f"isa={isa} threads={nt} N={n} (c, h, w)={case}"
    gap = build([L.GlobalAvgPool2D()], case, loss=None)
    assert_close(run(gap, x, nt), ref.global_avgpool2d_forward(x), "GlobalAvgPool2D " + what)
    flat = build([L.Flatten()], case, loss=None)
    out = run(flat, x, nt)
    assert out.shape == (n, int(np.prod(case))), what
    assert np.array_equal(out, x.reshape(n, -1)), "Flatten must keep NCHW order " + what


# ---------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------

# (features, units, use_bias)
DENSE_CASES = [(1, 1, True), (5, 3, True), (17, 33, False), (300, 17, True), (64, 10, True), (13, 67, True)]


def _dense_data(case, n):
    f, u, use_bias = case
    rng = seeded_rng("dense", case, n)
    x = rng.standard_normal((n, f)).astype(np.float32)
    wt = (rng.uniform(-1, 1, (u, f)) / np.sqrt(f)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, u).astype(np.float32) if use_bias else None
    return x, wt, b, ref.dense_forward(x, wt, b)


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("case", DENSE_CASES, ids=str)
def test_dense_forward(isa, threads, case, n, nt):
    f, u, use_bias = case
    x, wt, b, expected = cached(("dense", case, n), lambda: _dense_data(case, n))
    layer = L.Dense(u, use_bias=use_bias)
    model = build([layer], (f,), loss=None)
    layer.weight = wt
    if use_bias:
        layer.bias = b
    assert_close(run(model, x, nt), expected, f"Dense isa={isa} threads={nt} N={n} (features, units, bias)={case}")


def test_dense_after_flatten_uses_nchw_order(isa):
    rng = seeded_rng("dense-flatten")
    x = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    dense = L.Dense(4)
    model = build([L.Flatten(), dense], (3, 5, 7), loss=None)
    expected = ref.dense_forward(x.reshape(3, -1), dense.weight, dense.bias)
    assert_close(model.predict(x), expected, f"Flatten+Dense isa={isa}")


# ---------------------------------------------------------------------------
# Element-wise activations, Softmax, Dropout (inference), BatchNorm2D (inference)
# ---------------------------------------------------------------------------

ACTIVATIONS = [("ReLU", None), ("LeakyReLU", 0.01), ("LeakyReLU", 0.3), ("LeakyReLU", -0.5), ("Sigmoid", None),
               ("Tanh", None)]
# per-sample shapes: flat, and (C, H, W) with SIMD tails; (17, 30, 30) x 67 is
# large enough to be split across threads at a non-multiple of 16
ACT_SHAPES = [(1,), (17,), (5, 7, 13), (17, 30, 30)]


def _act_input(shape, n):
    rng = seeded_rng("act", shape, n)
    x = rng.standard_normal((n,) + shape).astype(np.float32) * 3.0
    flat = x.reshape(-1)
    flat[::7] = 0.0                      # exact zeros (ReLU's kink)
    flat[1::11] = 60.0                   # saturation of sigmoid / tanh
    flat[2::13] = -60.0
    flat[3::17] = -np.float32(1e-30)     # tiny negatives
    return x


def _act_layer(kind, alpha):
    return L.LeakyReLU(alpha) if kind == "LeakyReLU" else getattr(L, kind)()


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=str)
@pytest.mark.parametrize("kind,alpha", ACTIVATIONS, ids=[f"{k}{a or ''}" for k, a in ACTIVATIONS])
def test_activation_forward(isa, threads, kind, alpha, shape, n, nt):
    x = cached(("act", shape, n), lambda: _act_input(shape, n))
    model = build([_act_layer(kind, alpha)], shape, loss=None)
    expected = ref.activation_forward(kind, x, alpha if alpha is not None else 0.01)
    what = f"{kind}(alpha={alpha}) isa={isa} threads={nt} N={n} shape={shape}"
    out = run(model, x, nt)
    assert np.all(np.isfinite(out)), what
    assert_close(out, expected, what, rtol=2e-6, atol_frac=1e-6)
    if kind == "ReLU":
        assert np.array_equal(out, np.maximum(x, 0)), what


SOFTMAX_SHAPES = [(1,), (3,), (17,), (5, 7, 13), (3, 1, 1), (33,)]


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
def test_softmax_forward(isa, threads, shape, n, nt):
    rng = seeded_rng("softmax", shape, n)
    x = (rng.standard_normal((n,) + shape) * 5).astype(np.float32)
    x[0] += 1000.0  # stability: large logits must not overflow
    model = build([L.Softmax()], shape, loss=None)
    out = run(model, x, nt)
    what = f"Softmax isa={isa} threads={nt} N={n} shape={shape}"
    assert_close(out, ref.softmax_forward(x), what, rtol=1e-5, atol_frac=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5, err_msg=what)


@pytest.mark.parametrize("shape", [(17,), (5, 7, 13)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9])
def test_dropout_is_identity_in_inference(isa, shape, rate):
    x = seeded_rng("dropout-inf", shape).standard_normal((3,) + shape).astype(np.float32)
    model = build([L.Dropout(rate)], shape, loss=None)
    assert np.array_equal(model.predict(x), x), f"Dropout({rate}) isa={isa} shape={shape}"


@pytest.mark.parametrize("nt", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("case", [(1, 1, 1), (3, 7, 13), (17, 30, 30)], ids=str)
def test_batchnorm2d_inference_forward(isa, threads, case, n, nt):
    rng = seeded_rng("bn-inf", case, n)
    c = case[0]
    x = (rng.standard_normal((n,) + case) * 2 + 1).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.uniform(-0.5, 0.5, c)
    mean, var = rng.uniform(-1, 1, c), rng.uniform(0.1, 3.0, c)
    bn = L.BatchNorm2D(eps=1e-3)
    model = build([bn], case, loss=None)
    bn.weight, bn.bias, bn.running_mean, bn.running_var = gamma, beta, mean, var
    f32 = lambda a: a.astype(np.float32)  # noqa: E731 - the values the layer holds
    expected = ref.batchnorm2d_forward(x, f32(gamma), f32(beta), 1e-3, False, f32(mean), f32(var))
    assert_close(run(model, x, nt), expected, f"BatchNorm2D isa={isa} threads={nt} N={n} (c, h, w)={case}")


def test_stack_forward(isa):
    """A small CNN with every layer type, inference mode, vs the reference model."""
    from harness import randomize, ref_model

    layers = [L.Conv2D(5, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2, padding=1),
              L.Conv2D(6, (2, 3), stride=(1, 2), groups=1), L.LeakyReLU(0.1), L.AvgPool2D(2, stride=1),
              L.Dropout(0.5), L.Conv2D(4, 1), L.Sigmoid(), L.Flatten(), L.Dense(9), L.Tanh(), L.Dense(5),
              L.Softmax()]
    model = build(layers, (3, 13, 11), loss=None)
    rng = seeded_rng("stack")
    randomize(model, rng)
    x = rng.standard_normal((7, 3, 13, 11)).astype(np.float32)
    expected = ref_model(model).forward(x, training=False)
    assert_close(model.predict(x), expected, f"stack isa={isa}", rtol=1e-4, atol_frac=1e-5)
    # batch_size splits the batch; the result must not change
    assert_close(model.predict(x, batch_size=3), expected, f"stack isa={isa} batch_size=3")
