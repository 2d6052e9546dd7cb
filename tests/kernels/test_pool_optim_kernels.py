"""The max-pooling and optimizer kernels of every ISA, called directly
(cc._core.kernels), against the scalar kernels and references on ragged
sizes: plane widths that leave a tail of a vector, odd rows and columns
without a window, parameter counts that are no multiple of a vector. Max
pooling is exact on every ISA (values, argmax with ties and NaN, and dx);
SGD and Adam are bit-for-bit a float32 NumPy evaluation of the same formula
on scalar and avx2 (no fused multiply-adds), and within rounding on avx512
(which fuses them). Also: the im2col + GEMM convolution forward (Winograd
off) against the reference, on shapes that stress the implicit im2col (GEMM
panels packed straight from the image) where an ISA's table has one.
"""

import numpy as np
import pytest

import cpucnn as cc
import reference as ref
from harness import assert_close, listed_kernel, seeded_rng

K = cc._core.kernels

# (planes shape (..., h, w), pool, stride, padding)
POOL_CASES = [
    ((3, 5, 4, 4), (2, 2), (2, 2), (0, 0)),
    ((2, 3, 9, 17), (2, 2), (2, 2), (0, 0)),     # odd row and column without a window, wo = 8
    ((1, 2, 28, 28), (2, 2), (2, 2), (0, 0)),    # lenet: wo = 14 (a vector + a tail)
    ((2, 4, 10, 10), (2, 2), (2, 2), (0, 0)),    # wo = 5: only a tail
    ((1, 1, 3, 35), (2, 2), (2, 2), (0, 0)),     # wo = 17
    ((2, 2, 5, 67), (2, 2), (2, 2), (0, 0)),     # wo = 33
    ((7, 1, 2, 2), (2, 2), (2, 2), (0, 0)),      # one output per plane
    ((3, 6, 9, 11), (3, 3), (2, 2), (1, 1)),     # other windows: the scalar kernel on every ISA
    ((2, 3, 8, 9), (2, 2), (1, 1), (0, 0)),      # 2x2 stride 1 (overlapping windows)
    ((2, 3, 7, 7), (2, 2), (2, 2), (1, 1)),      # 2x2 stride 2 with padding
]


def _pool_input(shape, key):
    """Few distinct values (many ties, +0 and -0 among them), some NaN."""
    rng = seeded_rng("pool-kernel", shape, key)
    x = rng.integers(-2, 3, shape).astype(np.float32)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, np.float32(0.0), np.float32(-0.0))
    x[rng.random(shape) < 0.03] = np.nan
    return x


def _on(isa_name, fn):
    before = cc.cpu_info()["isa"]
    cc.set_isa(isa_name)
    try:
        return fn()
    finally:
        cc.set_isa(before)


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}")
def test_maxpool2d_kernel_is_exact(isa, case):
    shape, pool, stride, pad = case
    what = f"isa={isa} maxpool2d planes={shape} pool={pool} stride={stride} padding={pad}"
    x = _pool_input(shape, "x")
    y, arg = K.maxpool2d_forward(x, pool, stride, pad)
    want_y, want_arg = _on("scalar", lambda: K.maxpool2d_forward(x, pool, stride, pad))
    assert y.tobytes() == want_y.tobytes(), f"{what}: forward differs from scalar (NaN and -0 included)"
    assert np.array_equal(arg, want_arg), f"{what}: argmax differs from scalar"
    x4 = x.reshape((-1, 1) + shape[-2:])
    ref_y, ref_arg = ref.maxpool2d_forward(x4, pool, stride, pad)
    np.testing.assert_array_equal(y.reshape(ref_y.shape), ref_y, err_msg=what + ": forward vs reference")
    # (windows with two NaN: the scalar kernel of other shapes takes a later one, the reference the first)
    clean = ~np.isnan(ref_y)
    np.testing.assert_array_equal(arg.reshape(ref_arg.shape)[clean], ref_arg[clean],
                                  err_msg=what + ": argmax vs reference")

    dy = seeded_rng("pool-kernel-dy", shape).standard_normal(y.shape).astype(np.float32)
    dy.flat[::7] = -0.0
    dy.flat[3::11] = np.nan
    dx = K.maxpool2d_backward(dy, arg, shape[-2:], pool, stride, pad)
    want_dx = _on("scalar", lambda: K.maxpool2d_backward(dy, arg, shape[-2:], pool, stride, pad))
    assert dx.tobytes() == want_dx.tobytes(), f"{what}: dx differs from scalar (-0 dy lands as +0)"
    ref_dx = np.zeros((arg.size // (y.shape[-2] * y.shape[-1]), shape[-2] * shape[-1]), np.float32)
    for r, (a, d) in enumerate(zip(arg.reshape(len(ref_dx), -1), dy.reshape(len(ref_dx), -1))):
        np.add.at(ref_dx[r], a, d)
    np.testing.assert_array_equal(dx.reshape(ref_dx.shape), ref_dx, err_msg=what + ": dx vs dy summed at argmax")


def test_maxpool2d_kernel_keeps_the_first_nan(isa):
    """Each window's first NaN wins (its index), whatever follows it."""
    x = np.zeros((1, 4, 34), np.float32)
    x[0, 0, 1] = np.nan          # window 0: the NaN at (0, 1), before a larger value
    x[0, 1, 0] = 5.0
    x[0, 1, 2] = np.inf          # window 1: inf, then a NaN below it
    x[0, 1, 3] = np.nan
    x[0, 2, 33] = np.nan         # the last window of the last row pair
    x[0, 3, 32] = np.nan
    y, arg = K.maxpool2d_forward(x, (2, 2), (2, 2))
    assert np.isnan(y[0, 0, 0]) and arg[0, 0, 0] == 1, f"isa={isa}: {y[0, 0, :2]} {arg[0, 0, :2]}"
    assert np.isnan(y[0, 0, 1]) and arg[0, 0, 1] == 34 + 3, f"isa={isa}: {y[0, 0, :2]} {arg[0, 0, :2]}"
    assert np.isnan(y[0, 1, 16]) and arg[0, 1, 16] == 2 * 34 + 33, f"isa={isa}: {arg[0, 1]}"
    assert not np.isnan(y[0, 0, 2:]).any() and not np.isnan(y[0, 1, :16]).any(), f"isa={isa}: {y}"


SIZES = [1, 7, 8, 9, 15, 17, 64, 1003]
EXACT = ("scalar", "avx2")  # no fused multiply-adds


def _check_update(isa, got, want, what):
    for name, g, w in zip(("w", "state", "state2"), got, want):
        if isa in EXACT:
            assert g.tobytes() == w.tobytes(), f"{what}: {name} is not bit-for-bit the float32 formula " \
                                               f"(max diff {np.abs(g - w).max()})"
        else:
            np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7, err_msg=f"{what}: {name}")


def _opt_data(n, key):
    rng = seeded_rng("optim-kernel", n, key)
    f = lambda: rng.standard_normal(n).astype(np.float32)  # noqa: E731
    return f(), f(), f(), np.abs(f())


SGD_SETTINGS = {
    "plain": dict(lr=0.1),
    "wd": dict(lr=0.1, weight_decay=1e-2),
    "momentum-first": dict(lr=0.05, momentum=0.9, weight_decay=1e-3, first_step=True),
    "momentum": dict(lr=0.05, momentum=0.8),
    "nesterov-wd": dict(lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True),
}


@pytest.mark.parametrize("setting", list(SGD_SETTINGS))
@pytest.mark.parametrize("n", SIZES)
def test_sgd_kernel(isa, n, setting):
    s = SGD_SETTINGS[setting]
    w, g, buf, _ = _opt_data(n, "sgd")
    got = K.sgd_update(w, g, buf, **s)
    f32 = np.float32
    lr, mom, wd = f32(s["lr"]), f32(s.get("momentum", 0.0)), f32(s.get("weight_decay", 0.0))
    gi = g + wd * w
    b = buf
    if mom != 0:
        b = gi if s.get("first_step") else mom * buf + gi
        gi = gi + mom * b if s.get("nesterov") else b
    want = (w - lr * gi, b)
    _check_update(isa, got, want, f"isa={isa} sgd {setting} n={n}")


@pytest.mark.parametrize("step", [1, 5])
@pytest.mark.parametrize("n", SIZES)
def test_adam_kernel(isa, n, step):
    w, g, m, v = _opt_data(n, "adam")
    lr, b1, b2, eps, wd = 1e-3, 0.9, 0.99, 1e-8, 1e-2
    got = K.adam_update(w, g, m, v, lr, b1, b2, eps, wd, step)
    f32 = np.float32
    bc1, bc2 = (f32(1.0 - float(f32(b)) ** step) for b in (b1, b2))  # in double, from the float betas
    step_size = f32(lr) / bc1
    gi = g + f32(wd) * w
    m2 = f32(b1) * m + (f32(1) - f32(b1)) * gi
    v2 = f32(b2) * v + (f32(1) - f32(b2)) * gi * gi
    denom = np.sqrt(v2) / np.sqrt(bc2) + f32(eps)
    want = (w - step_size * (m2 / denom), m2, v2)
    _check_update(isa, got, want, f"isa={isa} adam step={step} n={n}")


def test_pool_and_optimizer_kernels_are_listed(isa):
    """cpu_info names the vector ISAs' own max-pooling, SGD and Adam kernels."""
    assert listed_kernel("maxpool2d").split()[0] == isa
    assert listed_kernel("sgd") == isa
    assert listed_kernel("adam") == isa


# (n, cin, cout, h, w, (kh, kw), stride, padding, dilation): stride 1 along W
# (the implicit im2col's case), ragged widths, padding past a tap's reach,
# dilation, GEMM depths past one packed block (256), several images side by side.
IMPLICIT_CASES = [
    (3, 3, 5, 7, 9, (3, 3), (1, 1), (1, 1), (1, 1)),
    (2, 4, 7, 13, 35, (3, 5), (2, 1), (2, 1), (2, 1)),
    (1, 2, 3, 5, 40, (1, 7), (1, 1), (0, 3), (1, 1)),
    (5, 1, 6, 28, 28, (5, 5), (1, 1), (2, 2), (1, 1)),
    (2, 8, 4, 6, 6, (3, 3), (3, 1), (0, 0), (1, 1)),
    (2, 30, 8, 9, 11, (3, 3), (1, 1), (1, 1), (1, 1)),
    (1, 2, 3, 4, 5, (3, 3), (1, 1), (2, 4), (1, 1)),
    (3, 5, 9, 10, 17, (3, 3), (1, 1), (1, 2), (1, 2)),
    (4, 3, 16, 1, 23, (1, 3), (1, 1), (0, 1), (1, 1)),
]


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", IMPLICIT_CASES, ids=lambda s: "x".join(map(str, s[:5])) + f"-k{s[5]}-s{s[6]}")
def test_conv_forward_with_implicit_im2col(isa, threads, shape, nt):
    cc.set_num_threads(nt)
    n, cin, cout, h, w, ks, st, pad, dil = shape
    rng = seeded_rng("implicit-im2col", shape)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = (rng.standard_normal((cout, cin) + ks) / np.sqrt(cin * ks[0] * ks[1])).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    want = ref.conv2d_forward(x, wt, b, stride=st, padding=pad, dilation=dil)
    before = K.conv2d_winograd()
    K.set_conv2d_winograd("never")
    try:
        got = K.conv2d_forward(x, wt, b, stride=st, padding=pad, dilation=dil)
        got_relu = K.conv2d_forward(x, wt, None, stride=st, padding=pad, dilation=dil, relu=True)
    finally:
        K.set_conv2d_winograd(before)
    what = f"isa={isa} threads={nt} conv {shape}"
    assert_close(got, want, what)
    assert_close(got_relu, np.maximum(want - b[:, None, None], 0), what + " relu, no bias")
