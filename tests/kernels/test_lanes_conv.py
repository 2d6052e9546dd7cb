"""The convolution with output channels in the vector lanes
(kernels/conv_lanes/, AVX-512 and AVX2: 8 channels a register on AVX2)
through the conv operator, on every ISA
that has it (elsewhere skipped: the shapes would run the GEMM path),
against the float64 reference: forward (16 or 32 output channels, 64 to
256 taps x input channels) and the weight gradient (3- or 5-wide kernels,
any reduction up to 256). Ragged sizes: rows wider than the 24- and
12-pixel register blocks, odd sizes, padding (its zero-padded copy),
"same" padding with the odd row at the bottom, row stride and dilation,
48 channels (two registers then one), batches that split unevenly, and as
many images as threads (at fewer, batch 1, other kernels run); rows of
7, 9, 15 and 17 outputs (AVX2's 6-pixel blocks and 8x8 transposes, whose
last block of pixels is partial)."""

import numpy as np
import pytest

import cpucnn as cc
import reference as ref
from harness import (assert_close, assert_kernel_on_isas, check_conv_layer, conv_case, conv_case_id, seeded_rng,
                     skip_unless_kernel)

K = cc._core.kernels

# (n, cin, cout, h, w, (kh, kw), stride, padding, dilation)
SHAPES = [
    (5, 6, 16, 14, 14, (5, 5), (1, 1), (0, 0), (1, 1)),  # lenet5 conv2: forward and dw
    (3, 1, 32, 28, 28, (3, 3), (1, 1), (0, 0), (1, 1)),  # convnet_s conv1: dw only (9 taps)
    (2, 3, 32, 32, 32, (3, 3), (1, 1), (1, 1), (1, 1)),  # vgg_s conv1: dw only (27)
    (3, 8, 32, 9, 30, (3, 3), (1, 1), (1, 1), (1, 1)),  # 72: forward too; rows of 12 + 12 + 6
    (2, 3, 16, 11, 53, (5, 5), (1, 1), (2, 2), (1, 1)),  # 75: rows of 24 + 24 + 5
    (3, 4, 48, 12, 10, (3, 5), (2, 1), (1, 2), (2, 1)),  # 60 (dw) with row stride and dilation; 48 channels
    (7, 10, 16, 8, 7, (3, 3), (1, 1), (1, 1), (1, 1)),  # 90, 7 images over 2 threads
    (2, 28, 16, 6, 6, (3, 3), (1, 1), (0, 0), (1, 1)),  # 252 taps x channels
    (4, 9, 16, 5, 9, (3, 5), (1, 1), (1, 2), (1, 1)),  # 135, non-square kernel
    (2, 1, 16, 3, 3, (5, 5), (1, 1), (2, 2), (1, 1)),  # output wider than the input, all padding around
    (3, 8, 16, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1)),  # 72: 7x7, 49 pixels (6 transposes + 1)
    (2, 7, 32, 9, 9, (3, 3), (1, 1), (1, 1), (1, 1)),  # 63 (dw only) on 9 wide rows
    (2, 3, 16, 15, 15, (5, 5), (1, 1), (2, 2), (1, 1)),  # 75: rows of 15 = 6 + 6 + 3
    (3, 5, 32, 8, 19, (3, 5), (1, 1), (1, 1), (1, 1)),  # 75: rows of 17 outputs = 6 + 6 + 5
]


def _case(shape):
    return conv_case("lanes", shape)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=conv_case_id)
def test_lanes_convolutions_match_reference(isa, threads, shape, nt):
    skip_unless_kernel(isa, "conv2d_lanes")
    cc.set_num_threads(nt)
    check_conv_layer(isa, "lanes", shape)


def test_same_padding_odd_row_at_the_bottom(isa, threads):
    # "same" with an even kernel: one row and column of padding, after the input.
    # Not skipped without conv2d_lanes: the layer's padding is checked on any path.
    cc.set_num_threads(2)
    m = cc.Sequential([cc.layers.Conv2D(16, (4, 4), padding="same")], input_shape=(5, 7, 9), seed=1)
    x = seeded_rng("lanes-same").standard_normal((4, 5, 7, 9)).astype(np.float32)
    wt, b = m.get_weights()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 2)))
    assert_close(m.predict(x), ref.conv2d_forward(xp, wt, b), f"{isa} same padding")


def test_lanes_weight_gradient_is_reproducible(isa, threads):
    skip_unless_kernel(isa, "conv2d_lanes", "check the GEMM's reproducibility")
    cc.set_num_threads(2)
    x, wt, _, dy, _ = _case(SHAPES[0])
    first = K.conv2d_backward(x, wt, dy, need_dx=False)
    again = K.conv2d_backward(x, wt, dy, need_dx=False)
    for a, e in zip(first[1:], again[1:]):
        np.testing.assert_array_equal(a, e)


def test_lanes_kernel_is_listed_on_avx512_and_avx2(isa):
    assert_kernel_on_isas(isa, "conv2d_lanes", ("avx512", "avx2"))
