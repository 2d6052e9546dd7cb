"""Quantized convolutions equal an exact NumPy model of the int8 arithmetic on every output-width class
of the op's copies and packing (widths 1-2, 3-7, 8-15, 16 and more; padded or not, dilated or not;
stride 1, the padded-image paths, plain and channel-interleaved, and stride 2, the im2col path), on
codes (a QConv2D whose output feeds another int8 layer) and on floats (the last one), on every ISA,
at batch 1 and 5 on 1 and 2 threads."""

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")
L = cc.layers

# (input (C, H, W), filters, kernel, padding, stride)
GEOMETRIES = [((2, 5, 5), 3, 3, 0, 1), ((1, 6, 9), 4, 3, 1, 1), ((3, 7, 12), 5, 3, 0, 1), ((2, 9, 17), 6, 3, 1, 1),
              ((1, 12, 26), 6, 5, 2, 1), ((2, 10, 33), 7, 3, 0, 1), ((1, 14, 14), 16, 5, 0, 1),
              ((2, 11, 21), 5, 3, 1, 2), ((3, 8, 40), 9, 3, 0, 1), ((2, 4, 4), 3, 3, 0, 1), ((1, 3, 5), 2, 3, 0, 1),
              # channels in groups of 4: the channel-interleaved path (one- and several-row panels)
              ((4, 9, 9), 8, 3, 1, 1), ((8, 8, 8), 12, 3, 1, 1), ((4, 6, 26), 6, 3, 0, 1), ((8, 5, 5), 4, 3, 1, 1),
              ((12, 7, 19), 5, 5, 2, 1), ((4, 4, 4), 3, 3, 0, 1), ((16, 6, 33), 7, 3, 1, 1)]


def _f32(v):
    return np.float32(v)


def _fma_f32(a, m, b):
    """fmaf(a, m, b) on float32 arrays: the product is exact in float64, one rounding after the add
    (double rounding differs from one rounding only on exact float32 ties, vanishingly rare here)."""
    return (a.astype(np.float64) * m.astype(np.float64) + b.astype(np.float64)).astype(np.float32)


def _conv_acc(codes, zp, w, pad, stride, dil=1):
    """sum over taps and channels of (code - zp) * w, the padding reading zp (so adding 0): int64."""
    f, _, kh, kw = w.shape
    x = np.pad(codes.astype(np.int64) - int(zp), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    span = ((kh - 1) * dil + 1, (kw - 1) * dil + 1)
    win = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))[:, :, ::stride, ::stride, ::dil, ::dil]
    return np.einsum("nchwij,fcij->nfhw", win, w.astype(np.int64))


def _reference(q, x):
    """The int8 model's output from its settings and parameters, in NumPy."""
    kinds = [layer._type for layer in q.layers]
    assert kinds[0] == "Quantize" and kinds[1] == "QConv2D" and kinds[-1] == "QConv2D", kinds
    s = q.layers[0].settings
    codes = np.clip(np.rint(x.astype(np.float32) / _f32(s["scale"])) + _f32(s["zero_point"]), 0, 127)
    out = None
    for layer in q.layers[1:]:
        if layer._type != "QConv2D":
            assert layer._type == "QReLU" and layer.settings["fused"], layer.settings
            continue
        st = layer.settings
        w = layer.get_param("weight")
        ws = layer.get_param("weight_scale").astype(np.float32)
        b = layer.get_param("bias").astype(np.float32)
        pad = st["padding"][0] if isinstance(st["padding"], (list, tuple)) else 0
        acc = _conv_acc(codes, st["in_zero_point"], w, pad, st["stride"][0], st["dilation"][0])
        assert np.abs(acc).max() < 2**24  # exact as float32
        acc = acc.astype(np.float32)
        in_s = _f32(st["in_scale"])
        if st["output"] == "int8":
            out_s, out_zp = _f32(st["out_scale"]), _f32(st["out_zero_point"])
            mult = (in_s * ws) / out_s
            add = b / out_s + out_zp
        else:
            mult, add = in_s * ws, b
        v = _fma_f32(acc, mult[None, :, None, None], add[None, :, None, None])
        if st["output"] == "int8":
            lo = out_zp if st["relu"] else _f32(0)
            codes = np.rint(np.minimum(np.maximum(v, lo), _f32(127)))
        else:
            out = np.maximum(v, 0) if st["relu"] else v
    return out


# dilated: (input, filters, kernel, padding, stride, dilation), plain and channel-interleaved paths
DILATED = [((2, 9, 11), 4, 3, 2, 1, 2), ((4, 10, 21), 5, 3, 1, 1, 2), ((8, 7, 9), 6, 3, 3, 1, 3)]


@pytest.mark.parametrize("shape,filters,k,pad,stride,dil", [g + (1,) for g in GEOMETRIES] + DILATED)
def test_qconv_equals_the_numpy_model(shape, filters, k, pad, stride, dil):
    rng = np.random.default_rng(sum(shape) + filters + k)
    model = cc.Sequential([L.Conv2D(filters, k, padding=pad, stride=stride, dilation=dil), L.ReLU(), L.Conv2D(3, 1)],
                          input_shape=shape, seed=1)
    x = rng.standard_normal((5,) + shape).astype(np.float32)
    q = cc.quantize(model, x)
    want = _reference(q, x)
    threads = cc.get_num_threads()
    for isa in cc.available_isas():
        cc.set_isa(isa)
        try:
            # one image (units of a few output rows, each padding only the rows it reads on 2 threads)
            # and five (whole images a unit), on 1 and 2 threads
            for t in (1, 2):
                cc.set_num_threads(t)
                for n in (1, 5):
                    got = q.predict(x[:n])
                    assert got.shape == want[:n].shape, (isa, shape, got.shape, want.shape)
                    np.testing.assert_allclose(got, want[:n], rtol=1e-6, atol=1e-6,
                                               err_msg=f"{isa}, {t} threads, {n} images: input {shape}, Conv2D("
                                                       f"{filters}, {k}, padding={pad}, stride={stride}, dilation="
                                                       f"{dil}) -> ReLU -> Conv2D(3, 1)")
        finally:
            cc.set_isa(cc.available_isas()[0])
            cc.set_num_threads(threads)
