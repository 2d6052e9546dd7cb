"""The direct convolution with 16 images in the vector lanes
(kernels/conv_batch/, AVX-512 and AVX2: two registers of 8 images on
AVX2) through the conv operator, on every ISA
that has it (elsewhere skipped: the shapes would run the GEMM path),
against the float64 reference: the forward of thin layers (<= 16 output
channels) and backward-data, the full convolution it runs for layers with
<= 16 input channels, once there are 16 images or more per thread. Ragged
sizes: a last group of fewer than 16 images, output channel counts that
leave a partial block of 6, rows that are not a multiple of the 4-pixel
block, padding on every side (the taps skipped over it), row stride and
row dilation, rectangular kernels, an output pixel whose window is all
padding; a last group of 8 images or fewer (one AVX2 register), widths of
7, 9, 15 and 17 (the 8x8 transposes' partial blocks) and channel counts
that are not multiples of 8."""

import numpy as np
import pytest

import cpucnn as cc
from harness import assert_close, assert_kernel_on_isas, check_conv_layer, conv_case, conv_case_id, skip_unless_kernel

K = cc._core.kernels

# (n, cin, cout, h, w, (kh, kw), stride, padding, dilation)
SHAPES = [
    (32, 1, 6, 28, 28, (5, 5), (1, 1), (2, 2), (1, 1)),  # lenet5 conv1 (and its dx: 6 -> 1)
    (32, 6, 16, 14, 14, (5, 5), (1, 1), (0, 0), (1, 1)),  # lenet5 conv2's dx: 16 -> 6 over a padded 10x10
    (67, 3, 7, 9, 11, (3, 3), (1, 1), (1, 1), (1, 1)),  # 4 full groups and 3 images; 7 channels = 6 + 1
    (40, 2, 16, 7, 41, (3, 5), (1, 1), (1, 2), (1, 1)),  # 16 = 6 + 6 + 4 channels; rows of 10 blocks + 1
    (33, 4, 5, 13, 10, (3, 3), (2, 1), (1, 1), (2, 1)),  # row stride and dilation
    (32, 5, 3, 2, 3, (5, 5), (1, 1), (4, 4), (1, 1)),  # outputs whose whole window is padding
    (48, 9, 12, 6, 6, (2, 4), (1, 1), (0, 3), (1, 1)),  # kernel wider than tall, padding along W only
    (37, 4, 7, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1)),  # 7x7 maps; 37 = 2 groups + 5 images (half a group)
    (24, 5, 11, 9, 9, (3, 3), (1, 1), (0, 0), (1, 1)),  # 9 wide; 24 = a group + 8 images (one register)
    (41, 2, 5, 15, 15, (5, 5), (1, 1), (2, 2), (1, 1)),  # 15 wide; 41 = 2 groups + 9 images
    (32, 3, 13, 6, 17, (3, 5), (1, 1), (1, 2), (1, 1)),  # 17 wide; 13 = 3 blocks of 4 + 1
]


def _case(shape):
    return conv_case("batch", shape)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=conv_case_id)
def test_batch_convolutions_match_reference(isa, threads, shape, nt):
    skip_unless_kernel(isa, "conv2d_batch")
    cc.set_num_threads(nt)
    check_conv_layer(isa, "batch", shape)


def test_batch_and_row_kernels_agree(isa, threads):
    # The same layer at 32 images (16 a lane group) and one image at a time
    # (the row kernel): the same sums in a different order.
    skip_unless_kernel(isa, "conv2d_batch", "compare GEMM with GEMM")
    cc.set_num_threads(1)
    x, wt, b, dy, _ = _case(SHAPES[0])
    whole = K.conv2d_forward(x, wt, b, padding=(2, 2))
    one = np.concatenate([K.conv2d_forward(x[i:i + 1], wt, b, padding=(2, 2)) for i in range(len(x))])
    assert_close(whole, one, f"{isa} batch vs row kernel")


def test_batch_kernel_is_listed_on_avx512_and_avx2(isa):
    assert_kernel_on_isas(isa, "conv2d_batch", ("avx512", "avx2"))
