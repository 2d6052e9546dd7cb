"""dx alone (a frozen layer: the operator skips the weight gradient) on every
ISA and every convolution path a plan picks: bit for bit the dx of the full
backward wherever both run the same passes (im2col + GEMM over the same
chunks, the direct kernels), within the reference tolerance where Winograd's
dx comes out of the weight-gradient pass in the full backward."""

import numpy as np
import pytest

import cpucnn as cc
from harness import assert_close
import reference as ref

K = cc._core.kernels

# (n, cin, cout, h, w, k, stride, padding, dilation, groups)
SHAPES = [
    (5, 3, 10, 11, 9, 3, 2, 1, 1, 1),     # strided: GEMM
    (4, 8, 12, 7, 7, 1, 1, 0, 1, 1),      # 1x1: the input is its own im2col
    (3, 6, 9, 10, 10, 3, 1, 2, 2, 3),     # dilated, grouped
    (33, 1, 6, 14, 14, 5, 1, 2, 1, 1),    # thin: direct / batch kernels where the ISA has them
    (2, 16, 16, 9, 9, 3, 1, 1, 1, 1),     # Winograd where the ISA has it
]


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dx_alone_matches_full_backward(isa, threads, shape, nt):
    cc.set_num_threads(nt)
    n, cin, cout, h, w, k, st, pad, dil, g = shape
    r = np.random.default_rng(sum(shape))
    x = r.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = r.standard_normal((cout, cin // g, k, k)).astype(np.float32)
    kw = dict(stride=(st, st), padding=(pad, pad), dilation=(dil, dil), groups=g)
    ho = (h + 2 * pad - dil * (k - 1) - 1) // st + 1
    wo = (w + 2 * pad - dil * (k - 1) - 1) // st + 1
    dy = r.standard_normal((n, cout, ho, wo)).astype(np.float32)
    full_dx, _, _ = K.conv2d_backward(x, wt, dy, **kw)
    dx, none_w, none_b = K.conv2d_backward(x, wt, dy, need_dw=False, **kw)
    assert none_w is None and none_b is None
    want, _, _ = ref.conv2d_backward(x, wt, dy, stride=st, padding=pad, dilation=dil, groups=g)
    assert_close(dx, want, f"{isa} dx alone {shape}")
    winograd = k == 3 and st == 1 and dil == 1 and g == 1 and min(cin, cout) >= 8 and isa != "scalar"
    if not winograd:
        np.testing.assert_array_equal(dx, full_dx)


def test_neither_dx_nor_dw_is_an_error():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="neither dx nor dw"):
        K.conv2d_backward(x, np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 2, 2), np.float32),
                          need_dx=False, need_dw=False)
