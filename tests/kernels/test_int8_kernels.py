"""The int8 kernels: every GEMM variant (avx512vnni, avxvnni, avx2) equals the scalar reference exactly
on ragged sizes, the reference equals a NumPy model of the requantisation, and the quantize /
dequantize / max-pool kernels equal theirs. Variants this CPU lacks are skipped with the reason."""

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")
q8 = cc._core.int8

VARIANTS = ["avx512vnni", "avxvnni", "avx2"]
HAVE = q8.isas()
# (m, k, n): rows (output channels), depth, columns; ragged against 4-row panels, 4-deep groups
# and 8/16/32-column panels.
SIZES = [(1, 1, 1), (3, 5, 7), (4, 4, 16), (5, 9, 17), (13, 27, 33), (32, 288, 50), (7, 130, 65), (64, 577, 31)]


def _skip_unless(isa):
    if isa not in HAVE:
        feats = ", ".join(k for k, v in cc.cpu_info().get("features", {}).items() if v) or "none"
        pytest.skip(f"CPU lacks the {isa} int8 GEMM: it runs {', '.join(HAVE)} (features: {feats})")


def _case(m, k, n, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (m, k)).astype(np.int8)
    x = rng.integers(0, 128, (n, k)).astype(np.uint8)
    # the extremes too: all-max activations against all-extreme weights (the int16 saturation case)
    w[0, :] = 127 if m > 1 else -127
    x[0, :] = 127
    ib = rng.integers(-50000, 50000, m).astype(np.int32)
    mult = rng.uniform(1e-5, 3e-3, m).astype(np.float32)
    add = rng.uniform(-40, 160, m).astype(np.float32)
    return w, x, ib, mult, add


@pytest.mark.parametrize("isa", VARIANTS)
@pytest.mark.parametrize("m,k,n", SIZES)
@pytest.mark.parametrize("out_u8,relu", [(True, False), (True, True), (False, False), (False, True)])
def test_qgemm_variant_equals_scalar(isa, m, k, n, out_u8, relu):
    _skip_unless(isa)
    w, x, ib, mult, add = _case(m, k, n, m * 1000 + k + n)
    lo = 20.0 if relu else 0.0
    ref = q8.qgemm("scalar", w, x, ib, mult, add, lo, 127.0, relu, out_u8)
    got = q8.qgemm(isa, w, x, ib, mult, add, lo, 127.0, relu, out_u8)
    assert got.dtype == ref.dtype and got.shape == (m, n)
    bad = np.argwhere(got != ref)
    assert bad.size == 0, (f"{isa} != scalar for (m, k, n) = {(m, k, n)}, out_u8={out_u8}, relu={relu}: "
                           f"{len(bad)} elements, first at {tuple(bad[0])}: {got[tuple(bad[0])]} vs {ref[tuple(bad[0])]}")


@pytest.mark.parametrize("m,k,n", SIZES)
def test_scalar_reference_matches_numpy(m, k, n):
    w, x, ib, mult, add = _case(m, k, n, 7 + m + k + n)
    acc = w.astype(np.int64) @ x.astype(np.int64).T + ib[:, None]
    assert np.abs(acc).max() < 2**31
    v = np.array(acc, dtype=np.float32).astype(np.float64) * mult[:, None] + add[:, None]
    f = q8.qgemm("scalar", w, x, ib, mult, add, 0.0, 127.0, False, False)
    # one fused multiply-add: within half an ulp of the exact value
    np.testing.assert_allclose(f, v.astype(np.float32), rtol=1e-6, atol=1e-6, err_msg=f"float out, {(m, k, n)}")
    u = q8.qgemm("scalar", w, x, ib, mult, add, 0.0, 127.0, False, True)
    want = np.rint(np.clip(f, 0, 127)).astype(np.uint8)
    np.testing.assert_array_equal(u, want, err_msg=f"u8 out, {(m, k, n)}")


@pytest.mark.parametrize("m,k,n", SIZES)
@pytest.mark.parametrize("out_u8,relu", [(True, True), (False, False), (False, True)])
def test_qgemv_equals_scalar_and_the_gemm(m, k, n, out_u8, relu):
    isa = _vector_isa()
    w, x, ib, mult, add = _case(m, k, n, 3 * m + k + n)
    lo = 5.0 if relu else 0.0
    ref = q8.qgemv("scalar", w, x, ib, mult, add, lo, 127.0, relu, out_u8)
    got = q8.qgemv(isa, w, x, ib, mult, add, lo, 127.0, relu, out_u8)
    np.testing.assert_array_equal(got, ref, err_msg=f"qgemv {isa} vs scalar, (m, k, n) = {(m, k, n)}")
    gemm = q8.qgemm("scalar", w, x, ib, mult, add, lo, 127.0, relu, out_u8)
    np.testing.assert_array_equal(ref, gemm.T, err_msg=f"qgemv vs qgemm, (m, k, n) = {(m, k, n)}")


def test_qgemm_rejects_codes_out_of_range():
    w, x, ib, mult, add = _case(4, 8, 4, 0)
    x[1, 2] = 200
    with pytest.raises(ValueError, match="activations must be in \\[0, 127\\]"):
        q8.qgemm("scalar", w, x, ib, mult, add, 0.0, 127.0, False, True)
    w[0, 0] = -128
    x[1, 2] = 0
    with pytest.raises(ValueError, match="weights must be in \\[-127, 127\\]"):
        q8.qgemm("scalar", w, x, ib, mult, add, 0.0, 127.0, False, True)


def test_unknown_or_missing_variant_is_an_error():
    w, x, ib, mult, add = _case(4, 8, 4, 0)
    with pytest.raises(ValueError, match="unknown int8 GEMM"):
        q8.qgemm("sse9", w, x, ib, mult, add, 0.0, 127.0, False, True)
    lacking = [v for v in VARIANTS if v not in HAVE]
    if not lacking:
        pytest.skip("CPU runs every int8 GEMM variant: none to refuse")
    with pytest.raises(ValueError, match="not supported by this CPU"):
        q8.qgemm(lacking[0], w, x, ib, mult, add, 0.0, 127.0, False, True)


def _vector_isa():
    if "avx2" not in HAVE:
        pytest.skip(f"CPU lacks AVX2: it runs {', '.join(HAVE)}")
    return "avx2"


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 1031])
def test_quantize_dequantize_equal_scalar_and_numpy(n):
    isa = _vector_isa()
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    x[: min(n, 4)] = [np.nan, np.inf, -np.inf, 0.5][: min(n, 4)]
    scale, zp = np.float32(0.037), 40.0
    ref = q8.quantize("scalar", x, scale, zp)
    got = q8.quantize(isa, x, scale, zp)
    np.testing.assert_array_equal(got, ref, err_msg=f"quantize n={n}")
    with np.errstate(invalid="ignore"):
        want = np.nan_to_num(np.clip(np.rint(x / scale) + zp, 0, 127), nan=0.0).astype(np.uint8)
    np.testing.assert_array_equal(ref, want, err_msg=f"quantize vs numpy n={n}")
    back_ref = q8.dequantize("scalar", ref, scale, zp)
    np.testing.assert_array_equal(q8.dequantize(isa, ref, scale, zp), back_ref, err_msg=f"dequantize n={n}")
    np.testing.assert_array_equal(back_ref, ((ref.astype(np.float32) - np.float32(zp)) * scale).astype(np.float32))


# 2x2 stride 2 at every row-width class of the AVX2 kernel: under 4 outputs (scalar), 4-7 and 8-15 (two
# overlapping 8-byte / 16-byte chunks), 16 and more (32-byte chunks, the last one overlapping), odd widths.
POOL_2X2 = [(1, 6, 7), (2, 10, 10), (1, 9, 15), (2, 24, 24), (3, 28, 28), (1, 6, 31), (2, 8, 32), (1, 4, 34),
            (2, 33, 35)]


@pytest.mark.parametrize("shape,k,s,pad", [((3, 8, 8), 2, 2, 0), ((1, 5, 70), 2, 2, 0), ((2, 9, 9), 3, 2, 1),
                                          ((4, 7, 6), 3, 1, 0)] + [(sh, 2, 2, 0) for sh in POOL_2X2])
def test_maxpool_u8_equals_scalar_and_numpy(shape, k, s, pad):
    isa = _vector_isa()
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(0, 128, shape).astype(np.uint8)
    ref = q8.maxpool2d("scalar", x, k, s, pad)
    np.testing.assert_array_equal(q8.maxpool2d(isa, x, k, s, pad), ref, err_msg=f"{shape} k={k} s={s} pad={pad}")
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = ref.shape[1:]
    want = np.zeros_like(ref)
    for i in range(ho):
        for j in range(wo):
            want[:, i, j] = xp[:, i * s:i * s + k, j * s:j * s + k].max(axis=(1, 2))
    np.testing.assert_array_equal(ref, want, err_msg=f"numpy {shape} k={k} s={s} pad={pad}")
