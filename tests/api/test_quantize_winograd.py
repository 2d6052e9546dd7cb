"""The int8 Winograd F(2x2, 3x3) path of quantized 3x3 stride-1 convolutions is exact: its outputs
equal the direct path's bit for bit (codes feeding another int8 layer and floats at the end; ReLU
fused or not; input zero point 0 or not; padding 0 and 1; odd and even maps; ragged channel counts;
batch 1 and several; 1 and 2 threads), its scalar kernels equal the AVX2 ones, and a layer whose
int32 intermediates could overflow stays on the direct path."""

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")
L = cc.layers
q8 = cc._core.int8

# (input (C, H, W), filters, padding): odd/even maps, maps narrower and wider than a group of 16
# tiles, ragged input channels (odd: a zero channel pairs the last) and outputs (4-row panels)
GEOMETRIES = [((8, 9, 9), 12, 1), ((5, 7, 10), 6, 0), ((3, 5, 4), 3, 1), ((16, 16, 16), 32, 1),
              ((9, 33, 35), 13, 1), ((32, 8, 8), 20, 1), ((2, 3, 3), 5, 0), ((7, 4, 38), 9, 1),
              ((12, 26, 26), 16, 0), ((1, 6, 5), 4, 1)]


def _restore(threads):
    q8.set_conv2d_winograd("auto")
    cc.set_isa(cc.available_isas()[0])
    cc.set_num_threads(threads)


def _model(shape, filters, pad, relu, seed):
    # the first conv writes codes (it feeds the second), the second writes floats
    mid = [L.ReLU()] if relu else []
    return cc.Sequential([L.Conv2D(filters, 3, padding=pad)] + mid + [L.Conv2D(7, 3, padding=1)],
                         input_shape=shape, seed=seed)


def _predict(q, x, mode):
    q8.set_conv2d_winograd(mode)
    before = q8.winograd_runs()
    y = q.predict(x)
    return y, q8.winograd_runs() - before


@pytest.mark.parametrize("shape,filters,pad", GEOMETRIES)
@pytest.mark.parametrize("relu,zero_zp", [(True, False), (False, False), (True, True), (False, True)])
def test_winograd_equals_the_direct_path(shape, filters, pad, relu, zero_zp):
    rng = np.random.default_rng(sum(shape) + filters + pad)
    x = rng.standard_normal((3,) + shape).astype(np.float32)
    if zero_zp:
        x = np.abs(x)  # non-negative calibration data: input zero point 0
    q = cc.quantize(_model(shape, filters, pad, relu, 1), x)
    zps = [layer.settings["in_zero_point"] for layer in q.layers if layer._type == "QConv2D"]
    assert (zps[0] == 0) == zero_zp, zps
    threads = cc.get_num_threads()
    try:
        for isa in cc.available_isas():
            cc.set_isa(isa)
            for t in (1, 2):
                cc.set_num_threads(t)
                for n in (1, 3):
                    want, runs = _predict(q, x[:n], "never")
                    assert runs == 0
                    got, runs = _predict(q, x[:n], "always")
                    assert runs == 2, f"both convs should run on the Winograd path, {runs} did"
                    bad = np.argwhere(got != want)
                    assert bad.size == 0, (
                        f"{isa}, {t} threads, {n} images: input {shape}, Conv2D({filters}, 3, padding={pad}) "
                        f"relu={relu} zero points {zps}: {len(bad)} outputs differ, first at {tuple(bad[0])}: "
                        f"{got[tuple(bad[0])]} vs {want[tuple(bad[0])]}")
    finally:
        _restore(threads)


def test_scalar_kernels_equal_avx2():
    if "avx2" not in cc.available_isas():
        pytest.skip(f"CPU lacks AVX2 (runs {cc.available_isas()}): only the scalar Winograd kernels exist here")
    threads = cc.get_num_threads()
    try:
        for shape, filters, pad in GEOMETRIES:
            rng = np.random.default_rng(filters)
            x = rng.standard_normal((2,) + shape).astype(np.float32)
            q = cc.quantize(_model(shape, filters, pad, False, 2), x)
            out = {}
            for isa in ("scalar", "avx2"):
                cc.set_isa(isa)
                out[isa], runs = _predict(q, x, "always")
                assert runs == 2, (isa, shape)
            np.testing.assert_array_equal(out["avx2"], out["scalar"],
                                          err_msg=f"avx2 vs scalar: input {shape}, Conv2D({filters}, 3, padding={pad})")
    finally:
        _restore(threads)


@pytest.mark.parametrize("cin,winograd", [(911, True), (912, False)])
def test_overflow_bound_falls_back_to_direct(cin, winograd):
    # every intermediate stays below 2^31 while cin * 127^2 * 146 does: 911 input channels, not 912
    assert (cin * 127 * 127 * 146 < 2**31) == winograd
    rng = np.random.default_rng(cin)
    model = cc.Sequential([L.Conv2D(3, 3, padding=1)], input_shape=(cin, 4, 5), seed=3)
    x = rng.standard_normal((2, cin, 4, 5)).astype(np.float32)
    x[0] = 3.0  # the extremes: all-max codes against the largest weights
    q = cc.quantize(model, x)
    threads = cc.get_num_threads()
    try:
        want, _ = _predict(q, x, "never")
        got, runs = _predict(q, x, "always")
        assert runs == (1 if winograd else 0), f"cin={cin}: {runs} Winograd runs"
        np.testing.assert_array_equal(got, want, err_msg=f"cin={cin}")
    finally:
        _restore(threads)


def test_auto_mode_keeps_thin_first_layers_direct():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    model = cc.Sequential([L.Conv2D(32, 3, padding=1), L.ReLU(), L.Conv2D(64, 3, padding=1)], input_shape=(1, 12, 12),
                          seed=4)
    q = cc.quantize(model, x)
    threads = cc.get_num_threads()
    try:
        assert q8.conv2d_winograd() == "auto"
        _, runs = _predict(q, x, "auto")
        assert runs == 1, f"the 1-channel first layer runs direct, the 32-channel one Winograd: {runs} runs"
    finally:
        _restore(threads)


def test_mode_setting():
    try:
        for mode in ("never", "always", "auto"):
            q8.set_conv2d_winograd(mode)
            assert q8.conv2d_winograd() == mode
        with pytest.raises(ValueError, match="auto"):
            q8.set_conv2d_winograd("sometimes")
    finally:
        q8.set_conv2d_winograd("auto")
