"""Inference through prepared Winograd weights (ops/conv2d.hpp,
Conv2dWeightCache): a Conv2D transforms and packs its weights once and
reuses them for every forward outside training, which makes Winograd pay
from 8 tiles (batch 1 on 6x6 maps) instead of 256. The cache must follow
every change of the weights (set_weights, a training step, a single value)
and of the ISA (each packs for its own micro-kernel), and be safe when
several threads predict at once."""

import numpy as np
import pytest

import cpucnn as cc
from cpucnn import layers as L
from harness import assert_close, predict_concurrently, seeded_rng

K = cc._core.kernels

INPUT = (9, 20, 18)


def _model(seed=0):
    # Conv1: 10 x 9 = 90 tiles per image, conv2: 9 x 8 = 72 (both >= 64 at batch 1).
    return cc.Sequential([L.Conv2D(16, 3, padding=1), L.ReLU(), L.Conv2D(12, 3), L.ReLU(), L.Flatten(),
                          L.Dense(5)], input_shape=INPUT, seed=seed)


def _x(n, key="x"):
    return seeded_rng("winograd-inference", key, n).standard_normal((n,) + INPUT).astype(np.float32)


def _has_winograd():
    return dict(cc.cpu_info()["kernels"]).get("conv2d_winograd") is not None


def _skip_without_winograd(isa):
    if not _has_winograd():
        pytest.skip(f"{isa} has no Winograd kernel: the test would compare the GEMM path ('auto') with itself "
                    "('never'); test_winograd.py's test_fallbacks_are_exact checks that")


@pytest.fixture
def mode():
    before = K.conv2d_winograd()
    yield K.set_conv2d_winograd
    K.set_conv2d_winograd(before)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("n", [1, 3])
def test_prepared_weights_match_the_gemm_path(isa, threads, mode, n, nt):
    _skip_without_winograd(isa)
    cc.set_num_threads(nt)
    m, x = _model(), _x(n)
    mode("never")
    want = m.predict(x)
    mode("auto")
    got = [m.predict(x) for _ in range(3)]  # the first fills the cache, the others reuse it
    for g in got:
        assert_close(g, want, f"{isa} prepared Winograd vs GEMM, batch {n}")
    np.testing.assert_array_equal(got[0], got[2])
    assert not np.array_equal(got[0], want)  # Winograd rounds differently: it did run at batch 1


# Small maps at batch 1 are one block of tiles: with more threads than
# blocks, each block's output channels are split over the threads
# (ops/winograd.cc, channel_parts), in whole micro-kernel panels. A ragged
# channel count (40, 50) leaves a short last panel; 24x24 maps at 2 threads
# are one block by choice (one_block_pays). The split must not
# change a single bit.
@pytest.mark.parametrize("tile", ["2x2", "4x4"])
@pytest.mark.parametrize("cin,hw,cout", [(32, 16, 64), (64, 8, 128), (16, 8, 40), (8, 12, 50), (32, 24, 64)])
def test_split_channels_at_batch_1_are_exact(isa, threads, mode, tile, cin, hw, cout):
    _skip_without_winograd(isa)
    before = K.conv2d_winograd_tile()
    K.set_conv2d_winograd_tile(tile)
    try:
        m = cc.Sequential([L.Conv2D(cout, 3, padding=1), L.ReLU()], input_shape=(cin, hw, hw), seed=3)
        x = seeded_rng("winograd-split", f"{cin}-{hw}-{cout}", 1).standard_normal((1, cin, hw, hw)).astype(np.float32)
        cc.set_num_threads(1)
        one = m.predict(x)
        for nt in (2, 3, 4):
            cc.set_num_threads(nt)
            np.testing.assert_array_equal(m.predict(x), one, f"{isa} F({tile}) {cin}->{cout} on {hw}x{hw}, "
                                                             f"{nt} threads vs 1")
        mode("never")
        assert_close(m.predict(x), one, f"{isa} F({tile}) {cin}->{cout} on {hw}x{hw} vs the GEMM path")
    finally:
        K.set_conv2d_winograd_tile(before)


def test_prepared_weights_run_from_8_tiles(isa, one_thread, mode):
    # 6x6 output maps at batch 1: 9 tiles of 2x2 (the threshold is 8), 4x4 maps: 4 (GEMM).
    _skip_without_winograd(isa)
    x = seeded_rng("winograd-inference", "small").standard_normal((1, 16, 6, 6)).astype(np.float32)
    outs = {}
    for m in ("never", "auto"):
        mode(m)
        big = cc.Sequential([L.Conv2D(16, 3, padding=1)], input_shape=(16, 6, 6), seed=3)
        small = cc.Sequential([L.Conv2D(16, 3, padding=1)], input_shape=(16, 4, 4), seed=3)
        outs[m] = (big.predict(x), small.predict(x[:, :, :4, :4]))
    assert_close(outs["auto"][0], outs["never"][0], f"{isa} 6x6 prepared vs GEMM")
    assert not np.array_equal(outs["auto"][0], outs["never"][0]), "the prepared Winograd weights did not run"
    np.testing.assert_array_equal(outs["auto"][1], outs["never"][1])


def _fresh_predict(weights, x):
    m = _model(seed=7)
    m.set_weights(weights)
    return m.predict(x)


def test_prepared_weights_follow_set_weights(isa, one_thread):
    m, x = _model(), _x(1)
    before = m.predict(x)
    w = m.get_weights()
    w[0] = w[0] * np.float32(-0.5)
    m.set_weights(w)
    got = m.predict(x)
    assert not np.array_equal(got, before)
    np.testing.assert_array_equal(got, _fresh_predict(w, x))


@pytest.mark.parametrize("which", [0, -1])
def test_prepared_weights_follow_one_changed_value(isa, one_thread, which):
    m, x = _model(), _x(1)
    m.predict(x)
    w = m.get_weights()
    for i in (0, 2):  # each conv's weight: its first or its last value
        w[i].reshape(-1)[which] += np.float32(0.25)
    m.set_weights(w)
    np.testing.assert_array_equal(m.predict(x), _fresh_predict(w, x))


def test_prepared_weights_follow_training(isa, one_thread):
    m, x = _model(), _x(1)
    m.compile(optimizer=cc.optimizers.SGD(lr=0.05), loss="cross_entropy")
    before = m.predict(x)
    xs = _x(8, "train")
    y = np.arange(8, dtype=np.int64) % 5
    m.train_on_batch(xs, y)
    got = m.predict(x)
    assert not np.array_equal(got, before)
    np.testing.assert_array_equal(got, _fresh_predict(m.get_weights(), x))


def test_prepared_weights_follow_the_isa(one_thread):
    isas = cc.available_isas()
    if len(isas) < 2:
        pytest.skip("one ISA on this machine")
    default = cc.cpu_info()["isa"]
    m, x = _model(), _x(1)
    try:
        for name in isas + isas[::-1]:  # each ISA after another's cache
            cc.set_isa(name)
            np.testing.assert_array_equal(m.predict(x), _model().predict(x), err_msg=name)
    finally:
        cc.set_isa(default)


def test_prepared_weights_follow_the_tile_setting(isa, one_thread):
    # Prepared F(4x4) weights are never used for F(2x2) or the other way
    # round: each switch remakes them (on ISAs without F(4x4) both are F(2x2)).
    m, x = _model(), _x(1)
    try:
        for tile in ("2x2", "4x4", "2x2", "auto"):
            K.set_conv2d_winograd_tile(tile)
            np.testing.assert_array_equal(m.predict(x), _model().predict(x), err_msg=tile)
        K.set_conv2d_winograd_tile("2x2")
        f2 = m.predict(x)
        K.set_conv2d_winograd_tile("4x4")
        f4 = m.predict(x)
    finally:
        K.set_conv2d_winograd_tile("auto")
    if isa not in ("avx2", "avx512"):  # no Winograd: both ran the GEMM (the switches above are still checked)
        return
    assert_close(f4, f2, f"{isa} F(4x4) vs F(2x2) prepared")
    assert not np.array_equal(f4, f2), "F(4x4) did not run"


def test_prepared_weights_under_concurrent_predicts(isa, threads):
    cc.set_num_threads(2)
    xs = [_x(1, f"thread{i}") for i in range(4)]
    want = [_model().predict(x) for x in xs]
    m = _model()  # its cache is filled by whichever thread comes first
    got = predict_concurrently(m, xs, 20)
    for i, outs in enumerate(got):
        assert len(outs) == 20
        for o in outs:
            np.testing.assert_array_equal(o, want[i])
