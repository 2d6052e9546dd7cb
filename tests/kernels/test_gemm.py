"""The packed GEMM per ISA against a float64 reference: shapes that cross the
row blocks (kGemmMc = 192), the depth blocks (kGemmKc = 256) and the column
blocks (2048), partial micro-tiles, every transpose; the result must not depend
on the thread count (bit for bit), and the measured FMA peak is sane."""

import numpy as np
import pytest

import cpucnn as cc

K = cc._core.kernels

SHAPES = [  # (m, k, n)
    (1, 7, 5),
    (6, 16, 16),
    (7, 17, 33),
    (193, 257, 40),     # one row and one depth step past a block
    (400, 300, 70),     # several row blocks, a partial last one
    (385, 513, 2100),   # three depth blocks, two column blocks (2048 + 52)
    (1100, 64, 17),     # many row blocks, a narrow C
]


def _reference(a, b, trans_a, trans_b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matches_reference(isa, rng, m, k, n, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    want = _reference(a, b, trans_a, trans_b)
    for threads in (1, 2):
        got = K.gemm(a, b, trans_a=trans_a, trans_b=trans_b, threads=threads)
        assert got.shape == (m, n)
        err = np.max(np.abs(got - want)) / max(1.0, np.sqrt(k))
        assert err < 1e-5, f"{isa} {m}x{k}x{n} ta={trans_a} tb={trans_b} threads={threads}: {err}"


@pytest.mark.parametrize("m,k,n", [(400, 300, 70), (385, 513, 2100)])
def test_gemm_does_not_depend_on_thread_count(isa, rng, m, k, n):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    one = K.gemm(a, b, threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(K.gemm(a, b, threads=threads), one)


@pytest.mark.parametrize("name", ["avx2", "avx512"])
def test_fma_peak_is_measured(name):
    if name not in cc.available_isas():
        with pytest.raises(ValueError, match="not supported"):
            K.fma_peak_gflops(name, 1, 0.01)
        return
    one = K.fma_peak_gflops(name, threads=1, seconds=0.05)
    assert 1.0 < one < 1e4, one  # GFLOP/s of one core: anything real is in this range


def test_fma_peak_rejects_bad_arguments():
    with pytest.raises(ValueError, match="isa must be"):
        K.fma_peak_gflops("scalar", 1, 0.01)
    if "avx2" not in cc.available_isas():
        pytest.skip("CPU lacks avx2: the thread and time checks come after the ISA check")
    with pytest.raises(ValueError, match="threads"):
        K.fma_peak_gflops("avx2", 0, 0.01)
    with pytest.raises(ValueError, match="seconds"):
        K.fma_peak_gflops("avx2", 1, 0.0)
