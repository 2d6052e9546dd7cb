"""The forward convolution with the output channels in the vector lanes, any
count of them (kernels/conv_oc/, AVX2: 8 channels a register, padded),
through the conv operator on every ISA that has it (elsewhere skipped: the
shapes would run another path), against the float64 reference: the thin
layers it is planned for (lenet5's convs, the 1- and 3-channel first layers
of convnet_s and vgg_s) and ragged sizes: 1 to 32 output channels (one
register, an odd last register beside pairs, partial registers), rows
narrower and wider than the 6- and 12-pixel blocks and split into unequal
blocks, strides, dilations, asymmetric padding, in-place (unpadded) and
padded input, tile sizes that end in a partial 8x8 transpose, batches that
split unevenly over threads and batch 1 (rows split over threads)."""

import numpy as np
import pytest

import cpucnn as cc
import reference as ref
from harness import (assert_close, assert_kernel_on_isas, conv_case, conv_case_id, seeded_rng,
                     skip_unless_kernel)

K = cc._core.kernels

# (n, cin, cout, h, w, (kh, kw), stride, padding, dilation)
SHAPES = [
    (4, 1, 6, 28, 28, (5, 5), (1, 1), (2, 2), (1, 1)),  # lenet5 conv1: 6 of 8 lanes, rows 10 + 9 + 9
    (3, 6, 16, 14, 14, (5, 5), (1, 1), (0, 0), (1, 1)),  # lenet5 conv2: a pair of registers, rows 5 + 5
    (3, 1, 32, 28, 28, (3, 3), (1, 1), (0, 0), (1, 1)),  # convnet_s conv1: read in place
    (2, 3, 32, 32, 32, (3, 3), (1, 1), (1, 1), (1, 1)),  # vgg_s conv1
    (3, 2, 24, 9, 13, (3, 3), (1, 1), (1, 1), (1, 1)),  # 3 registers: a pair then a single one
    (2, 5, 13, 11, 17, (3, 4), (2, 3), (1, 2), (2, 1)),  # strides, dilation, a partial second register
    (5, 3, 1, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1)),  # one output channel, 49 pixels: a partial transpose
    (2, 4, 9, 5, 31, (1, 3), (1, 1), (0, 1), (1, 2)),  # 9 channels (1 + 1 registers), rows of 27
    (3, 7, 8, 6, 6, (2, 2), (2, 2), (0, 0), (1, 1)),  # 3x3 outputs, stride 2, even kernel
    (1, 2, 16, 3, 3, (5, 5), (1, 1), (2, 2), (1, 1)),  # output wider than the input, all padding around
    (2, 16, 32, 6, 5, (4, 4), (1, 1), (0, 2), (1, 1)),  # 256 taps x channels, the largest it takes
]
# "same" padding whose odd row and column go after the input only (the layer
# computes them): no padding before, yet the input must be copied.
SAME = [(5, (30, 30), 17, 3, 2), (3, (9, 12), 8, 4, 1), (1, (7, 7), 32, 2, 3)]


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=conv_case_id)
def test_oc_forward_matches_reference(isa, threads, shape, nt):
    skip_unless_kernel(isa, "conv2d_oc")
    cc.set_num_threads(nt)
    x, wt, b, _, want = conv_case("oc", shape)
    _, _, _, _, _, _, st, pad, dil = shape
    kw = dict(stride=st, padding=pad, dilation=dil)
    assert_close(K.conv2d_forward(x, wt, b, **kw), want, f"{isa} forward {shape} threads {nt}")
    assert_close(K.conv2d_forward(x, wt, b, relu=True, **kw), np.maximum(want, 0),
                 f"{isa} forward+relu {shape} threads {nt}")
    assert_close(K.conv2d_forward(x, wt, None, relu=True, **kw), np.maximum(want - b[:, None, None], 0),
                 f"{isa} forward+relu without bias {shape} threads {nt}")
    # Batch 1: the rows of the image split over the threads.
    assert_close(K.conv2d_forward(x[:1], wt, b, **kw), want[:1], f"{isa} forward batch 1 {shape} threads {nt}")


@pytest.mark.parametrize("cin, hw, filters, k, stride", SAME)
def test_oc_same_padding_after_the_input(isa, threads, cin, hw, filters, k, stride):
    skip_unless_kernel(isa, "conv2d_oc")
    cc.set_num_threads(2)
    m = cc.Sequential([cc.layers.Conv2D(filters, k, stride=stride, padding="same")], input_shape=(cin,) + hw, seed=3)
    x = seeded_rng("oc-same", cin, hw).standard_normal((3, cin) + hw).astype(np.float32)
    wt, b = m.get_weights()
    ho, wo = -(-hw[0] // stride), -(-hw[1] // stride)
    th, tw = max(0, (ho - 1) * stride + k - hw[0]), max(0, (wo - 1) * stride + k - hw[1])
    xp = np.pad(x, ((0, 0), (0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2)))
    assert_close(m.predict(x), ref.conv2d_forward(xp, wt, b, stride=(stride, stride)),
                 f"{isa} same padding {(cin, hw, filters, k, stride)}")


def test_oc_forward_is_deterministic_across_threads(isa, threads):
    skip_unless_kernel(isa, "conv2d_oc")
    x, wt, b, _, _ = conv_case("oc", SHAPES[0])
    cc.set_num_threads(1)
    one = K.conv2d_forward(x, wt, b, padding=(2, 2), relu=True)
    cc.set_num_threads(2)
    np.testing.assert_array_equal(K.conv2d_forward(x, wt, b, padding=(2, 2), relu=True), one)


def test_oc_forward_allocates_nothing_in_parallel_regions(isa, threads):
    skip_unless_kernel(isa, "conv2d_oc")
    cc.set_num_threads(2)
    before = K.allocations_in_parallel_regions()
    for shape in SHAPES[:4]:
        x, wt, b, _, _ = conv_case("oc", shape)
        _, _, _, _, _, _, st, pad, dil = shape
        K.conv2d_forward(x, wt, b, stride=st, padding=pad, dilation=dil, relu=True)
    assert K.allocations_in_parallel_regions() == before


def test_oc_kernel_is_listed_on_avx2_only(isa):
    # Not written for AVX-512 yet: that table keeps its own thin-layer kernels.
    assert_kernel_on_isas(isa, "conv2d_oc", ("avx2",))
