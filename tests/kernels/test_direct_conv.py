"""The direct convolution kernels for thin layers (kernels/conv_direct/,
AVX-512 and AVX2) on every ISA that has them (elsewhere skipped: the shapes would run
the GEMM path), through the conv operator, against the float64 reference:
forward (few output channels), backward-data as a full convolution (few
input channels) and the direct weight gradient (fewer than 8 output channels
or fewer than 16 taps x input channels). Ragged sizes: rows wider than a
register, odd widths, non-square kernels, row stride and row dilation (the
kernels need stride and dilation 1 only along W), batches that split
unevenly over threads, images fewer than threads; widths and channel
counts around AVX2's 8 lanes (7, 9, 15, 17 wide; 3, 5, 7, 9, 11 channels),
whose last register of a row is partial."""

import numpy as np
import pytest

import cpucnn as cc
from harness import assert_kernel_on_isas, check_conv_layer, conv_case, conv_case_id, skip_unless_kernel

K = cc._core.kernels

# (n, cin, cout, h, w, (kh, kw), stride, padding, dilation)
SHAPES = [
    (3, 1, 6, 28, 28, (5, 5), (1, 1), (2, 2), (1, 1)),  # lenet5 conv1
    (5, 6, 16, 14, 14, (5, 5), (1, 1), (0, 0), (1, 1)),  # lenet5 conv2
    (2, 1, 32, 28, 28, (3, 3), (1, 1), (0, 0), (1, 1)),  # convnet_s conv1
    (1, 2, 7, 9, 70, (3, 5), (1, 1), (1, 2), (1, 1)),  # rows of five registers, one ragged
    (3, 3, 5, 17, 19, (3, 3), (2, 1), (1, 1), (2, 1)),  # row stride and row dilation
    (67, 1, 3, 6, 5, (2, 2), (1, 1), (0, 1), (1, 1)),
    (1, 4, 9, 5, 33, (1, 7), (1, 1), (0, 3), (1, 1)),  # one kernel row, seven columns
    # 8-lane tails (AVX2): rows of 7, 9, 15 and 17 outputs, channels not a multiple of 8.
    (2, 3, 5, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1)),  # one partial register a row
    (3, 1, 11, 9, 11, (3, 3), (1, 1), (0, 0), (1, 1)),  # 9 wide: a register and one pixel; 11 = 4 + 4 + 3
    (2, 5, 7, 15, 15, (5, 5), (1, 1), (2, 2), (1, 1)),  # 15 wide, padding on both edges; 7 = 4 + 3
    (2, 9, 3, 6, 17, (3, 5), (1, 1), (1, 2), (1, 1)),  # 17 wide: two registers and one pixel
    (1, 2, 13, 4, 19, (2, 3), (1, 1), (0, 0), (1, 1)),  # 17 outputs from 19; 13 = 4 * 3 + 1
]


def _case(shape):
    return conv_case("direct", shape)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=conv_case_id)
def test_thin_convolutions_match_reference(isa, threads, shape, nt):
    skip_unless_kernel(isa, "conv2d_direct")
    cc.set_num_threads(nt)
    check_conv_layer(isa, "direct", shape)


def test_direct_weight_gradient_is_reproducible(isa, threads):
    skip_unless_kernel(isa, "conv2d_direct", "check the GEMM's reproducibility")
    cc.set_num_threads(2)
    x, wt, _, dy, _ = _case(SHAPES[0])
    first = K.conv2d_backward(x, wt, dy, padding=(2, 2), need_dx=False)
    again = K.conv2d_backward(x, wt, dy, padding=(2, 2), need_dx=False)
    for a, e in zip(first[1:], again[1:]):
        np.testing.assert_array_equal(a, e)


def test_direct_kernel_is_listed_on_avx512_and_avx2(isa):
    assert_kernel_on_isas(isa, "conv2d_direct", ("avx512", "avx2"))
