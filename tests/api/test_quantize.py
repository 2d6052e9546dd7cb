"""cpucnn.quantize: int8 models. Per-layer error within the bound the scales imply, the same outputs
on every ISA, save/load round trips (int8 tensors in the file), the summary, the errors; and on
Fashion-MNIST a trained convnet_s-like model loses at most 0.5% test accuracy."""

import json

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")
L = cc.layers
Q = cc.quantization


def _settings(layer):
    return layer.settings


def _bound_check(model, x, tol=1e-4):
    """A one-compute-layer model (Conv2D or Dense, optionally ReLU): |int8 - float| <= s_in/2 sum|w|
    + s_w/2 sum|x_hat| per output (+ float rounding), for inputs inside the calibrated range."""
    q = cc.quantize(model, x)
    kinds = [layer._type for layer in q.layers]
    assert kinds[0] == "Quantize" and kinds[1] in ("QConv2D", "QDense"), kinds
    s_in, z_in = q.layers[0].settings["scale"], q.layers[0].settings["zero_point"]
    ql = q.layers[1]
    assert ql.settings["output"] == "float"
    ws = ql.get_param("weight_scale")
    wq = ql.get_param("weight")
    assert np.all(np.abs(wq) <= 127) and np.all(wq == np.rint(wq))
    w = model.layers[0].get_param("weight")
    x_hat = (np.clip(np.rint(x / s_in) + z_in, 0, 127) - z_in) * s_in
    yf = model.predict(x)
    yq = q.predict(x)
    if kinds[1] == "QDense":
        bound = s_in / 2 * np.abs(w).sum(1)[None, :] + (np.abs(x_hat) @ np.ones_like(w.T)) * ws[None, :] / 2
    else:  # sum |x_hat| over each window of the padded input (all channels), by sliding windows
        cfg = model.layers[0].get_config()
        kh, kw = cfg["kernel_size"]
        sh, sw = cfg["stride"]
        if cfg["padding"] == "same":
            ho, wo = -(-x.shape[2] // sh), -(-x.shape[3] // sw)
            th, tw = max(0, (ho - 1) * sh + kh - x.shape[2]), max(0, (wo - 1) * sw + kw - x.shape[3])
            pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
        else:
            ph, pw = cfg["padding"]
            pads = ((ph, ph), (pw, pw))
        a = np.pad(np.abs(x_hat).sum(1), ((0, 0), *pads))
        win = np.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
        sum_x = win.sum((3, 4))[:, None]
        bound = s_in / 2 * np.abs(w).sum((1, 2, 3))[None, :, None, None] + sum_x * ws[None, :, None, None] / 2
    err = np.abs(yq - yf)
    assert np.all(err <= bound * (1 + tol) + tol), (
        f"{kinds[1]} on input {x.shape}: error {err.max():.3g} over the bound at "
        f"{np.unravel_index(np.argmax(err - bound), err.shape)}")
    # ... and the bound is not vacuous: the errors are of its order, not orders below it
    assert err.max() > 1e-3 * bound.max(), (err.max(), bound.max())
    return q


@pytest.mark.parametrize("relu", [False, True])
def test_dense_error_within_the_scales_bound(relu):
    rng = np.random.default_rng(1)
    model = cc.Sequential([L.Dense(37)] + ([L.ReLU()] if relu else []), input_shape=(53,), seed=2)
    x = rng.normal(0.5, 1.0, (40, 53)).astype(np.float32)
    _bound_check(model, x)


@pytest.mark.parametrize("padding,stride", [(1, 1), (0, 2), ("same", 1)])
def test_conv_error_within_the_scales_bound(padding, stride):
    rng = np.random.default_rng(2)
    model = cc.Sequential([L.Conv2D(7, 3, stride=stride, padding=padding)], input_shape=(5, 11, 13), seed=3)
    x = rng.normal(0.2, 1.0, (6, 5, 11, 13)).astype(np.float32)
    _bound_check(model, x)


def _lenet(softmax=False):
    layers = [L.Conv2D(6, 5, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Conv2D(16, 5), L.ReLU(),
              L.MaxPool2D(2), L.Flatten(), L.Dense(120), L.ReLU(), L.Dense(84), L.ReLU(), L.Dense(10)]
    return cc.Sequential(layers + ([L.Softmax()] if softmax else []), input_shape=(1, 28, 28), seed=0)


def test_layers_that_run_in_int8_and_the_summary():
    rng = np.random.default_rng(0)
    model = _lenet(softmax=True)
    q = cc.quantize(model, rng.random((16, 1, 28, 28), dtype=np.float32))
    kinds = [layer._type for layer in q.layers]
    assert kinds == ["Quantize", "QConv2D", "QReLU", "QMaxPool2D", "QConv2D", "QReLU", "QMaxPool2D", "QFlatten",
                     "QDense", "QReLU", "QDense", "QReLU", "QDense", "Softmax"], kinds
    assert q.layers[-2].settings["output"] == "float"  # the dequantisation fused before Softmax
    text = q.summary(print_fn=None)
    assert "Runs in" in text and "int8" in text and "float32 -> int8" in text
    assert "12 of 14 layers run in int8" in text, text
    x = rng.random((5, 1, 28, 28), dtype=np.float32)
    p = q.predict(x)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    # a float layer between int8 ones: Dequantize before it, Quantize after
    m2 = cc.Sequential([L.Conv2D(4, 3), L.Tanh(), L.Conv2D(3, 3), L.ReLU(), L.Flatten(), L.Dense(5)],
                       input_shape=(2, 9, 9), seed=1)
    q2 = cc.quantize(m2, rng.random((8, 2, 9, 9), dtype=np.float32))
    assert [layer._type for layer in q2.layers] == ["Quantize", "QConv2D", "Tanh", "Quantize", "QConv2D", "QReLU",
                                                    "QFlatten", "QDense"]
    xx = rng.random((4, 2, 9, 9), dtype=np.float32)
    np.testing.assert_allclose(q2.predict(xx), m2.predict(xx), atol=0.05)


def test_same_outputs_on_every_isa(isa):
    rng = np.random.default_rng(4)
    model = _lenet()
    x = rng.random((33, 1, 28, 28), dtype=np.float32)
    q = cc.quantize(model, x)
    got = q.predict(x)
    default = cc.available_isas()[0]
    cc.set_isa("scalar")
    try:
        ref = q.predict(x)
    finally:
        cc.set_isa(isa)
    np.testing.assert_array_equal(got, ref, err_msg=f"int8 lenet on {isa} vs scalar")
    assert default  # (the fixture restores the default)


def test_thread_count_does_not_change_results(threads):
    rng = np.random.default_rng(5)
    q = cc.quantize(_lenet(), rng.random((8, 1, 28, 28), dtype=np.float32))
    x = rng.random((20, 1, 28, 28), dtype=np.float32)
    cc.set_num_threads(1)
    one = q.predict(x)
    cc.set_num_threads(2)
    np.testing.assert_array_equal(q.predict(x), one)
    # one and two samples at a time take the one-column Dense kernel; 20 the GEMM: the same numbers
    np.testing.assert_array_equal(np.concatenate([q.predict(x[i:i + 1]) for i in range(20)]), one)
    np.testing.assert_array_equal(np.concatenate([q.predict(x[i:i + 2]) for i in range(0, 20, 2)]), one)


def test_save_load_round_trip_with_int8_tensors(tmp_path):
    rng = np.random.default_rng(6)
    model = _lenet()
    q = cc.quantize(model, rng.random((16, 1, 28, 28), dtype=np.float32), method="percentile", percentile=99.9)
    x = rng.random((7, 1, 28, 28), dtype=np.float32)
    q.save(tmp_path / "q.cnn")
    model.save(tmp_path / "f.cnn", include_optimizer=False)
    back = cc.load(tmp_path / "q.cnn")
    np.testing.assert_array_equal(back.predict(x), q.predict(x))
    assert [layer._type for layer in back.layers] == [layer._type for layer in q.layers]
    raw = (tmp_path / "q.cnn").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    dtypes = {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}
    weights = [k for k in dtypes if k.endswith(".weight")]
    assert weights and all(dtypes[k] == "I8" for k in weights), dtypes
    assert all(dtypes[k] == "F32" for k in dtypes if k.endswith("weight_scale") or k.endswith(".bias"))
    f_size, q_size = (tmp_path / "f.cnn").stat().st_size, (tmp_path / "q.cnn").stat().st_size
    assert q_size < 0.3 * f_size, (q_size, f_size)


def _corrupt(path, out, key_suffix, data_fn=None, dtype=None):
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    key = next(k for k in header if k.endswith(key_suffix))
    b0, b1 = header[key]["data_offsets"]
    if data_fn:
        raw[8 + n + b0:8 + n + b1] = data_fn(bytes(raw[8 + n + b0:8 + n + b1]))
    if dtype:  # same length: the header's size stays
        text = bytes(raw[8:8 + n]).decode()
        at = text.index('"I8"', text.index(f'"{key}"'))
        raw[8 + at:8 + at + 4] = f'"{dtype}"'.encode()
    out.write_bytes(bytes(raw))
    return out


def test_corrupted_int8_files_are_clear_errors(tmp_path):
    rng = np.random.default_rng(7)
    q = cc.quantize(_lenet(), rng.random((8, 1, 28, 28), dtype=np.float32))
    good = tmp_path / "q.cnn"
    q.save(good)
    bad = _corrupt(good, tmp_path / "m128.cnn", "qconv2d.weight", lambda b: b"\x80" + b[1:])
    with pytest.raises(ValueError, match=r"int8 weight must hold integers in \[-127, 127\].*-128"):
        cc.load(bad)
    neg = np.float32(-0.5).tobytes()
    bad = _corrupt(good, tmp_path / "scale.cnn", "qdense.weight_scale", lambda b: neg + b[4:])
    with pytest.raises(ValueError, match="weight_scale must be finite and positive"):
        cc.load(bad)
    bad = _corrupt(good, tmp_path / "dtype.cnn", "1.qconv2d.weight", dtype="U8")
    with pytest.raises(ValueError, match="has dtype U8, expected I8"):
        cc.load(bad)
    (tmp_path / "short.cnn").write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError):
        cc.load(tmp_path / "short.cnn")


def test_bad_input_errors():
    rng = np.random.default_rng(8)
    model = _lenet()
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    with pytest.raises(ValueError, match=r"calibration_x: .*expects input \(N, 1, 28, 28\), got \(4, 28, 28\)"):
        cc.quantize(model, x[:, 0])
    with pytest.raises(ValueError, match=r"calibration_x: .*got \(4, 3, 28, 28\)"):
        cc.quantize(model, np.repeat(x, 3, axis=1))
    bad = x.copy()
    bad[2, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf \(first in sample 2 of 4"):
        cc.quantize(model, bad)
    bad[2, 0, 5, 5] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        cc.quantize(model, bad)
    with pytest.raises(ValueError, match="is empty"):
        cc.quantize(model, x[:0])
    with pytest.raises(TypeError, match="calibration_x must be a numeric array"):
        cc.quantize(model, np.array([["a"]]))
    with pytest.raises(TypeError, match="needs a cpucnn.Sequential"):
        cc.quantize(model.layers, x)
    with pytest.raises(ValueError, match="method must be"):
        cc.quantize(model, x, method="kl")
    with pytest.raises(ValueError, match="percentile must be"):
        cc.quantize(model, x, method="percentile", percentile=101)
    q = cc.quantize(model, x)
    with pytest.raises(ValueError, match="already quantized"):
        cc.quantize(q, x)
    w = model.layers[0].weight
    w[0, 0, 0, 0] = np.nan
    model.layers[0].weight = w
    with pytest.raises(ValueError, match="conv2d_0: weight holds NaN or Inf"):
        cc.quantize(model, x)


def test_uncompiled_models_quantize_and_int8_models_do_not_train():
    rng = np.random.default_rng(9)
    model = _lenet()  # never compiled nor trained: quantizes (its initial weights)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    q = cc.quantize(model, x)
    assert q.optimizer is None
    with pytest.raises(ValueError, match="must be compiled"):
        q.evaluate(x, y)
    model.compile(loss="cross_entropy", metrics=["accuracy"])
    q = cc.quantize(model, x)
    assert q.loss == "cross_entropy" and q.metrics == ["accuracy"]
    r = q.evaluate(x, y)
    assert set(r) >= {"loss", "accuracy"}
    with pytest.raises(ValueError, match="quantized \\(int8\\) and inference-only"):
        q.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="quantized \\(int8\\) and inference-only"):
        q.train_on_batch(x, y)
    with pytest.raises(ValueError, match="predict\\(outputs=...\\): this model is quantized"):
        q.predict(x, outputs=[1])
    with pytest.raises(ValueError, match="submodel: this model is quantized"):
        q.submodel(0, 3)


def test_calibration_methods_pick_different_ranges():
    rng = np.random.default_rng(10)
    model = cc.Sequential([L.Dense(8), L.ReLU(), L.Dense(4)], input_shape=(16,), seed=0)
    x = rng.normal(0, 1, (2000, 16)).astype(np.float32)
    x[0] = 40.0  # one outlier: minmax covers it, percentile and entropy clip it
    scales = {}  # (the input's scale, the hidden ReLU output's)
    for method in ("minmax", "percentile", "entropy"):
        q = cc.quantize(model, x, method=method, percentile=99.0)
        scales[method] = (q.layers[0].settings["scale"], q.layers[1].settings["out_scale"])
        assert np.isfinite(q.predict(x[1:50])).all()
    assert scales["minmax"][0] > 3 * scales["percentile"][0], scales
    assert scales["minmax"][1] > 3 * scales["percentile"][1], scales
    assert scales["entropy"][0] == scales["minmax"][0], scales  # the model's input keeps its range
    assert scales["minmax"][1] > 2 * scales["entropy"][1], scales


@pytest.fixture(scope="module")
def fashion():
    try:
        return cc.datasets.load_fashion_mnist()
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {str(e).splitlines()[0]}")


@pytest.mark.slow
def test_fashion_mnist_convnet_loses_at_most_half_a_percent(fashion):
    (x, y), (xt, yt) = fashion
    model = cc.Sequential([
        L.Conv2D(16, 3), L.ReLU(), L.Conv2D(32, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(64), L.ReLU(),
        L.Dense(10),
    ], input_shape=(1, 28, 28), seed=0)  # convnet_s's shape at half the width
    model.compile(cc.optimizers.Adam(lr=2e-3), loss="cross_entropy", metrics=["accuracy"])
    model.fit(x[:15000], y[:15000], epochs=1, batch_size=64, seed=0, verbose=0)
    f = model.evaluate(xt, yt)["accuracy"]
    accs = {}
    for method in ("minmax", "percentile", "entropy"):
        q = cc.quantize(model, x[20000:21000], method=method)
        accs[method] = q.evaluate(xt, yt)["accuracy"]
    print(f"Fashion-MNIST test accuracy: float32 {f:.4f}, int8 " +
          ", ".join(f"{k} {v:.4f}" for k, v in accs.items()))
    assert f > 0.80, f
    for method, a in accs.items():
        assert a >= f - 0.005, (method, a, f)


def test_onnx_qdq_export_matches_in_onnxruntime(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(11)
    model = _lenet(softmax=False)
    x = rng.random((64, 1, 28, 28), dtype=np.float32)
    q = cc.quantize(model, x)
    path = tmp_path / "q.onnx"
    with pytest.raises(ValueError, match="opset >= 13"):
        q.export_onnx(path, opset=12)
    q.export_onnx(path)
    proto = onnx.load(str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") == 5 and ops.count("DequantizeLinear") == 5 + 5, ops  # + 5 weights
    int8 = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.name.endswith("_q")]
    assert len(int8) == 5
    ours = q.predict(x)
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        theirs = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        # The same codes but for rare rounding ties (float sums in onnxruntime, exact int32 in ours).
        diff = np.abs(theirs - ours)
        assert diff.max() <= 0.02 * np.abs(ours).max(), (level, diff.max(), np.abs(ours).max())
        assert diff.mean() <= 0.002 * np.abs(ours).max(), (level, diff.mean())
        assert (theirs.argmax(1) == ours.argmax(1)).mean() >= 0.95
