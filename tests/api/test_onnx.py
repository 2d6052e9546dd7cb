"""ONNX export: every layer type (and whole models) through onnxruntime, compared with predict."""

import builtins
import json

import numpy as np
import pytest

import cpucnn as cc

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

L = cc.layers
TOL = 1e-4


def _randomize(model, rng):
    """Random weights, and BatchNorm statistics far from the identity."""
    for layer in model.layers:
        for name in layer.param_names:
            shape = layer.get_param(name).shape
            if name == "running_var":
                value = rng.uniform(0.5, 2.0, shape)
            elif name in ("running_mean", "bias"):
                value = rng.normal(0.0, 0.5, shape)
            else:
                value = rng.normal(0.0, 0.5, shape)
            layer.set_param(name, value.astype(np.float32))


def _run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def _check(model, tmp_path, rng, opset=17, batches=(1, 3)):
    path = tmp_path / "model.onnx"
    model.export_onnx(path, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    for n in batches:  # the batch dimension is dynamic
        x = rng.normal(0.0, 1.0, (n, *model.input_shape)).astype(np.float32)
        want = model.predict(x)
        got = _run_onnx(path, x)
        assert got.shape == want.shape, f"opset {opset}, batch {n}: {got.shape} vs {want.shape}"
        diff = float(np.max(np.abs(got - want)))
        assert diff <= TOL, f"opset {opset}, batch {n}: max abs diff {diff}"
    return proto


LAYER_CASES = {
    "conv_valid": ([L.Conv2D(4, 3)], (3, 8, 8)),
    "conv_explicit_pad_stride": ([L.Conv2D(5, (3, 2), stride=(2, 1), padding=(1, 2))], (2, 9, 7)),
    "conv_same_odd": ([L.Conv2D(4, 3, padding="same")], (2, 7, 7)),
    "conv_same_even_kernel": ([L.Conv2D(4, 4, padding="same")], (2, 7, 6)),  # asymmetric pads
    "conv_same_stride2": ([L.Conv2D(3, 3, stride=2, padding="same")], (2, 8, 9)),
    "conv_dilation_groups_nobias": ([L.Conv2D(6, 3, dilation=2, groups=3, use_bias=False)], (3, 10, 10)),
    "maxpool": ([L.MaxPool2D(2)], (3, 8, 9)),
    "maxpool_stride_pad": ([L.MaxPool2D(3, stride=2, padding=1)], (2, 9, 8)),
    "avgpool": ([L.AvgPool2D(2)], (3, 8, 8)),
    "avgpool_pad_counts_zeros": ([L.AvgPool2D(3, stride=2, padding=1)], (2, 9, 7)),
    "global_avgpool": ([L.GlobalAvgPool2D()], (5, 6, 7)),
    "flatten_dense": ([L.Flatten(), L.Dense(7)], (2, 4, 3)),
    "dense_nobias": ([L.Flatten(), L.Dense(5, use_bias=False)], (1, 3, 3)),
    "relu": ([L.ReLU()], (3, 5, 5)),
    "leaky_relu": ([L.LeakyReLU(0.2)], (3, 5, 5)),
    "sigmoid": ([L.Sigmoid()], (3, 5, 5)),
    "tanh": ([L.Tanh()], (3, 5, 5)),
    "softmax_flat": ([L.Flatten(), L.Dense(6), L.Softmax()], (2, 3, 3)),
    "softmax_channels": ([L.Softmax()], (4, 3, 5)),  # per pixel, over channels
    "batchnorm": ([L.BatchNorm2D(momentum=0.2, eps=1e-3)], (4, 5, 5)),
    "dropout": ([L.Conv2D(2, 1), L.Dropout(0.5)], (2, 4, 4)),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_predict(case, tmp_path, rng):
    layers, shape = LAYER_CASES[case]
    model = cc.Sequential(layers, input_shape=shape, seed=1)
    _randomize(model, rng)
    _check(model, tmp_path, rng)


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_whole_model_matches_predict(opset, tmp_path, rng):
    model = cc.Sequential([
        L.Conv2D(8, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(16, 4, stride=2, padding="same", use_bias=False), L.LeakyReLU(0.1),
        L.AvgPool2D(2, padding=1), L.Dropout(0.25), L.Softmax(), L.Conv2D(12, 1), L.Tanh(),
        L.GlobalAvgPool2D(), L.Dense(32), L.Sigmoid(), L.Dense(10), L.Softmax(),
    ], input_shape=(3, 20, 18), seed=3)
    _randomize(model, rng)
    proto = _check(model, tmp_path, rng, opset=opset)
    ops = [n.op_type for n in proto.graph.node]
    assert "Dropout" not in ops
    assert proto.opset_import[0].version == opset


def test_lenet_after_training_and_reload(tmp_path, rng):
    model = cc.Sequential([
        L.Conv2D(6, 5, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Conv2D(16, 5), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(120), L.ReLU(), L.Dense(84), L.ReLU(), L.Dense(10),
    ], input_shape=(1, 28, 28), seed=0)
    model.compile(optimizer=cc.optimizers.SGD(lr=0.05), loss="cross_entropy")
    x = rng.normal(0.0, 1.0, (16, 1, 28, 28)).astype(np.float32)
    model.train_on_batch(x, rng.integers(0, 10, 16))
    model.save(tmp_path / "lenet.cnn")
    reloaded = cc.load(tmp_path / "lenet.cnn")
    _check(reloaded, tmp_path, rng, batches=(1, 5))


def test_graph_interface(tmp_path):
    model = cc.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(4)], input_shape=(1, 6, 6), seed=0)
    path = tmp_path / "m.onnx"
    model.export_onnx(str(path))  # str and PathLike both work
    proto = onnx.load(str(path))
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert inp.name == "input" and out.name == "output"
    in_dims = inp.type.tensor_type.shape.dim
    assert in_dims[0].dim_param == "batch" and [d.dim_value for d in in_dims[1:]] == [1, 6, 6]
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [n.op_type for n in proto.graph.node] == ["Conv", "Flatten", "Gemm"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["cpucnn.architecture"])["input_shape"] == [1, 6, 6]
    assert proto.producer_name == "cpucnn"


def test_bad_opset(tmp_path):
    model = cc.Sequential([L.ReLU()], input_shape=(1, 2, 2), seed=0)
    for bad in (7, "17", 10_000):
        with pytest.raises(ValueError, match="opset"):
            model.export_onnx(tmp_path / "m.onnx", opset=bad)
    assert not (tmp_path / "m.onnx").exists()


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    model = cc.Sequential([L.ReLU()], input_shape=(1, 2, 2), seed=0)
    with pytest.raises(ImportError, match=r"pip install cpucnn\[onnx\]"):
        model.export_onnx(tmp_path / "m.onnx")
