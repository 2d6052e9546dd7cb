"""Inference through packed weights on the im2col + GEMM and
output-channels-in-lanes paths (ops/conv2d.cc, Conv2dOp::infer): a Conv2D
that runs as a GEMM (strided, dilated, grouped, 1x1, or too wide for the
direct kernels) packs its weights as the micro-kernel's A, a thin one on the
oc kernel (kernels/conv_oc/) its weights and bias 8 channels a row, and one
on the lanes kernel (kernels/conv_lanes/) its weights transposed, once per
version of its parameters, not once per call (and tile). The result must
be bit-identical to packing per call, and the packed copy must follow every
change of the weights and of the ISA."""

import numpy as np
import pytest

import cpucnn as cc
from cpucnn import layers as L
from harness import predict_concurrently, seeded_rng

K = cc._core.kernels

# (input shape, Conv2D kwargs): layers no Winograd kernel takes.
SHAPES = {
    "1x1": ((24, 7, 7), dict(filters=40, kernel_size=1)),
    "stride2": ((16, 11, 11), dict(filters=48, kernel_size=3, stride=2, padding=1)),
    "dilated": ((16, 12, 12), dict(filters=36, kernel_size=3, dilation=2, padding=2)),
    "groups": ((32, 9, 9), dict(filters=64, kernel_size=3, groups=2, padding=1)),
    "5x5": ((8, 12, 12), dict(filters=40, kernel_size=5)),
    # thin: the oc kernel where the ISA has it (avx2, avx512), the GEMM elsewhere
    "thin_rgb": ((3, 16, 16), dict(filters=20, kernel_size=3, padding=1)),
    "thin_stride2": ((4, 13, 13), dict(filters=12, kernel_size=3, stride=2)),
    # 16 outputs, 100 taps x channels: the oc kernel on avx2, the lanes kernel on avx512 (n >= threads)
    "thin_5x5": ((4, 20, 20), dict(filters=16, kernel_size=5, padding=2)),
}


def _layer_model(name, seed=0):
    shape, kw = SHAPES[name]
    return cc.Sequential([L.Conv2D(**kw), L.ReLU()], input_shape=shape, seed=seed)


def _x(name, n):
    return seeded_rng("conv-prepared", name, n).standard_normal((n,) + SHAPES[name][0]).astype(np.float32)


def _per_call(name, weights, x):
    """The same layer through the one-shot op, which packs per call."""
    kw = SHAPES[name][1]
    stride = kw.get("stride", 1)
    pad = kw.get("padding", 0)
    dil = kw.get("dilation", 1)
    return K.conv2d_forward(x, weights[0], weights[1], stride=(stride, stride), padding=(pad, pad),
                            dilation=(dil, dil), groups=kw.get("groups", 1), relu=True)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_packed_weights_equal_packing_per_call(isa, threads, name, n, nt):
    cc.set_num_threads(nt)
    m, x = _layer_model(name), _x(name, n)
    before = K.conv2d_packed_count()
    got = [m.predict(x) for _ in range(3)]  # the first packs, the others reuse
    packs = K.conv2d_packed_count() - before
    assert packs == 1, f"{isa} {name}: the weights were packed {packs} times in 3 predicts"
    want = _per_call(name, m.get_weights(), x)
    for g in got:
        np.testing.assert_array_equal(g, want, f"{isa} {name} batch {n}, {nt} threads: packed vs per call")


@pytest.mark.parametrize("name", ["stride2", "groups", "thin_rgb", "thin_5x5"])
def test_packed_weights_follow_set_weights(isa, one_thread, name):
    m, x = _layer_model(name), _x(name, 2)
    before = m.predict(x)
    w = m.get_weights()
    w[0] = w[0] * np.float32(-0.5)
    w[0].flat[7] = 3.0
    w[1] = w[1] + np.float32(0.25)  # the oc path packs the bias too
    m.set_weights(w)
    got = m.predict(x)
    assert not np.array_equal(got, before)
    np.testing.assert_array_equal(got, _per_call(name, w, x))


def test_packed_weights_follow_training(isa, one_thread):
    shape, kw = SHAPES["stride2"]
    m = cc.Sequential([L.Conv2D(**kw), L.ReLU(), L.Flatten(), L.Dense(3)], input_shape=shape, seed=0)
    m.compile(cc.optimizers.SGD(lr=0.1), loss="cross_entropy")
    x = _x("stride2", 4)
    before = m.predict(x, outputs=[1])[0]  # packs this version's conv weights
    m.train_on_batch(x, np.array([0, 1, 2, 1]))
    got = m.predict(x, outputs=[1])[0]
    assert not np.array_equal(got, before)
    np.testing.assert_array_equal(got, _per_call("stride2", m.get_weights()[:2], x))


def test_packed_weights_follow_the_isa(one_thread):
    isas = cc._core.available_isas()
    if len(isas) < 2:
        pytest.skip(f"one ISA on this CPU ({isas[0]}): nothing to switch between")
    default = cc.cpu_info()["isa"]
    m, x = _layer_model("1x1"), _x("1x1", 3)
    try:
        for name in isas + [default]:
            cc.set_isa(name)  # each ISA packs for its own micro-kernel (MR rows a panel)
            np.testing.assert_array_equal(m.predict(x), _per_call("1x1", m.get_weights(), x),
                                          f"{name} after another ISA's packing")
    finally:
        cc.set_isa(default)


def test_packed_weights_under_concurrent_predicts(isa, threads):
    cc.set_num_threads(2)
    xs = [_x("groups", 2 + i) for i in range(4)]
    m = _layer_model("groups")  # its packed copy is made by whichever thread comes first
    want = [_per_call("groups", m.get_weights(), x) for x in xs]
    got = predict_concurrently(m, xs, 10)
    for i, outs in enumerate(got):
        assert len(outs) == 10
        for o in outs:
            np.testing.assert_array_equal(o, want[i], f"{isa} thread {i}: a concurrent predict differs")
