"""ONNX export: ``model.export_onnx(path, opset=17)`` (needs ``pip install cpucnn[onnx]``).

Writes a standard ONNX graph, one node (or a few) per layer, with float32 initializers in
PyTorch's layouts (which are ONNX's), input ``"input"`` of shape (batch, C, H, W) with a dynamic
batch dimension and output ``"output"``:

=================  ==============================================================
cpucnn layer       ONNX
=================  ==============================================================
Conv2D             Conv (explicit pads; "same" puts any odd padding bottom/right)
MaxPool2D          MaxPool
AvgPool2D          AveragePool (count_include_pad=1, as cpucnn and PyTorch)
GlobalAvgPool2D    GlobalAveragePool + Flatten (cpucnn's output is (N, C))
Dense              Gemm (transB=1)
Flatten            Flatten (axis=1)
ReLU, LeakyReLU    Relu, LeakyRelu(alpha)
Sigmoid, Tanh      Sigmoid, Tanh
Softmax            Softmax(axis=1) (per pixel over channels for 4-D inputs; before opset 13
                   through Transpose, since older Softmax flattens the trailing axes)
BatchNorm2D        BatchNormalization (inference: running statistics)
Dropout            nothing (an identity at inference)
=================  ==============================================================

An int8 model (``cpucnn.quantize``) exports as QDQ (opset >= 13): each int8 tensor is
Clip -> QuantizeLinear (uint8) -> DequantizeLinear around the float ops, the Clip keeping the codes
in cpucnn's 7-bit range [0, 127]; weights are int8 initializers behind a per-channel
DequantizeLinear (axis 0); biases stay float32. QMaxPool2D, QReLU and QFlatten become MaxPool, Relu
(nothing when fused) and Flatten on the dequantized values; Dequantize becomes nothing.

The graph passes ``onnx.checker`` (with full shape inference) before it is written.
"""

from __future__ import annotations

import json
import numbers
import os
from typing import Any, Dict, List, Sequence

import numpy as np

__all__ = ["export", "MIN_OPSET"]

MIN_OPSET = 11


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise ImportError(
            "ONNX export needs the 'onnx' package, which is not installed: pip install cpucnn[onnx] "
            f"(or pip install onnx). Cause: {e}"
        ) from e
    return onnx, helper, numpy_helper


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> List[int]:
    """[before, after] padding of cpucnn's "same" mode along one axis (odd padding goes after)."""
    out = (size + stride - 1) // stride
    eff = dilation * (kernel - 1) + 1
    total = max(0, (out - 1) * stride + eff - size)
    return [total // 2, total - total // 2]


class _Builder:
    def __init__(self, onnx: Any, helper: Any, numpy_helper: Any, opset: int) -> None:
        self.onnx, self.helper, self.numpy_helper, self.opset = onnx, helper, numpy_helper, opset
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self.current = "input"

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def int_constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def qdq(self, name: str, scale: float, zp: int) -> None:
        """Clip to the 7-bit codes' range, QuantizeLinear (uint8), DequantizeLinear."""
        s = self.constant(f"{name}.scale", np.array(scale, dtype=np.float32))
        z = self.int_constant(f"{name}.zero_point", np.array(zp, dtype=np.uint8))
        lo = self.constant(f"{name}.clip_min", np.array((0 - zp) * np.float32(scale), dtype=np.float32))
        hi = self.constant(f"{name}.clip_max", np.array((127 - zp) * np.float32(scale), dtype=np.float32))
        self.node("Clip", name, [lo, hi])
        self.node("QuantizeLinear", name, [s, z])
        self.node("DequantizeLinear", name, [s, z])

    def int8_weight(self, name: str, w: np.ndarray, scale: np.ndarray) -> str:
        """An int8 initializer behind a per-output-channel DequantizeLinear; returns the float tensor."""
        q = self.int_constant(f"{name}.weight_q", np.rint(w).astype(np.int8))
        s = self.constant(f"{name}.weight_scale", scale)
        z = self.int_constant(f"{name}.weight_zero_point", np.zeros(scale.shape, dtype=np.int8))
        out = f"{name}.weight"
        self.nodes.append(self.helper.make_node("DequantizeLinear", [q, s, z], [out], name=f"{name}.weight_dq",
                                                axis=0))
        return out

    def node(self, op: str, name: str, extra_inputs: Sequence[str] = (), **attrs: Any) -> None:
        out = f"{name}.{op.lower()}.{len(self.nodes)}"
        self.nodes.append(self.helper.make_node(op, [self.current, *extra_inputs], [out], name=f"{name}.{op}", **attrs))
        self.current = out


def _export_layer(b: _Builder, layer: Any, cfg: Dict[str, Any], in_shape: Sequence[int]) -> None:
    kind = cfg["type"]
    name = layer.name
    param = layer.get_param
    if kind == "Conv2D":
        kh, kw = cfg["kernel_size"]
        sh, sw = cfg.get("stride", [1, 1])
        dh, dw = cfg.get("dilation", [1, 1])
        pad = cfg.get("padding", [0, 0])
        if pad == "same":
            top, bottom = _same_pads(in_shape[1], kh, sh, dh)
            left, right = _same_pads(in_shape[2], kw, sw, dw)
        elif pad == "valid":
            top = bottom = left = right = 0
        else:
            top = bottom = int(pad[0])
            left = right = int(pad[1])
        inputs = [b.constant(f"{name}.weight", param("weight"))]
        if cfg.get("use_bias", True):
            inputs.append(b.constant(f"{name}.bias", param("bias")))
        b.node("Conv", name, inputs, kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
               pads=[top, left, bottom, right], group=int(cfg.get("groups", 1)))
    elif kind in ("MaxPool2D", "AvgPool2D"):
        kh, kw = cfg["pool_size"]
        sh, sw = cfg.get("stride", [kh, kw])
        ph, pw = cfg.get("padding", [0, 0])
        attrs: Dict[str, Any] = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw])
        if kind == "AvgPool2D":
            b.node("AveragePool", name, count_include_pad=1, **attrs)
        else:
            b.node("MaxPool", name, **attrs)
    elif kind == "GlobalAvgPool2D":
        b.node("GlobalAveragePool", name)
        b.node("Flatten", name, axis=1)
    elif kind == "Flatten":
        b.node("Flatten", name, axis=1)
    elif kind == "Dense":
        inputs = [b.constant(f"{name}.weight", param("weight"))]
        if cfg.get("use_bias", True):
            inputs.append(b.constant(f"{name}.bias", param("bias")))
        b.node("Gemm", name, inputs, transB=1)
    elif kind == "ReLU":
        b.node("Relu", name)
    elif kind == "LeakyReLU":
        b.node("LeakyRelu", name, alpha=float(cfg.get("alpha", 0.01)))
    elif kind == "Sigmoid":
        b.node("Sigmoid", name)
    elif kind == "Tanh":
        b.node("Tanh", name)
    elif kind == "Softmax":
        if len(in_shape) == 1 or b.opset >= 13:
            b.node("Softmax", name, axis=1)
        else:  # opset < 13 flattens everything after `axis`: move channels last first
            last = len(in_shape)
            b.node("Transpose", name, perm=[0, *range(2, last + 1), 1])
            b.node("Softmax", name, axis=last)
            b.node("Transpose", name + ".back", perm=[0, last, *range(1, last)])
    elif kind == "BatchNorm2D":
        inputs = [b.constant(f"{name}.{p}", param(p)) for p in ("weight", "bias", "running_mean", "running_var")]
        # ONNX's momentum weighs the old running value (PyTorch's weighs the new batch).
        b.node("BatchNormalization", name, inputs, epsilon=float(cfg.get("eps", 1e-5)),
               momentum=1.0 - float(cfg.get("momentum", 0.1)))
    elif kind == "Dropout":
        pass  # identity at inference
    elif kind == "Quantize":
        b.qdq(name, float(cfg["scale"]), int(cfg["zero_point"]))
    elif kind in ("Dequantize", "QFlatten") or (kind == "QReLU" and cfg.get("fused")):
        if kind == "QFlatten":
            b.node("Flatten", name, axis=1)
    elif kind == "QReLU":
        b.node("Relu", name)
    elif kind == "QMaxPool2D":
        _export_layer(b, layer, {**cfg, "type": "MaxPool2D"}, in_shape)
    elif kind in ("QConv2D", "QDense"):
        inputs = [b.int8_weight(name, param("weight"), param("weight_scale"))]
        if cfg.get("use_bias", True):
            inputs.append(b.constant(f"{name}.bias", param("bias")))
        if kind == "QDense":
            b.node("Gemm", name, inputs, transB=1)
        else:
            kh, kw = cfg["kernel_size"]
            sh, sw = cfg.get("stride", [1, 1])
            dh, dw = cfg.get("dilation", [1, 1])
            pad = cfg.get("padding", [0, 0])
            if pad == "same":
                top, bottom = _same_pads(in_shape[1], kh, sh, dh)
                left, right = _same_pads(in_shape[2], kw, sw, dw)
            elif pad == "valid":
                top = bottom = left = right = 0
            else:
                top = bottom = int(pad[0])
                left = right = int(pad[1])
            b.node("Conv", name, inputs, kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
                   pads=[top, left, bottom, right])
        if cfg.get("relu"):
            b.node("Relu", name)
        if cfg.get("output", "int8") == "int8":
            b.qdq(name + ".out", float(cfg["out_scale"]), int(cfg["out_zero_point"]))
    else:
        raise ValueError(f"{name}: layer type {kind!r} has no ONNX export")


def export(model: Any, path: str, opset: int = 17) -> None:
    """Writes ``model`` (a cpucnn.Sequential) to ``path`` as an ONNX graph at the given opset."""
    onnx, helper, numpy_helper = _import_onnx()
    latest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset must be an integer in [{MIN_OPSET}, {latest}] (this onnx's newest), got {opset!r}")
    opset = int(opset)
    from . import __version__
    from .quantization import is_quantized

    if is_quantized(model) and opset < 13:
        raise ValueError(f"an int8 model exports as QDQ with per-channel weight scales, which needs opset >= 13, "
                         f"got {opset}")

    arch = json.loads(model._m.architecture())
    b = _Builder(onnx, helper, numpy_helper, opset)
    for layer, cfg in zip(model.layers, arch["layers"]):
        _export_layer(b, layer, cfg, layer.input_shape)
    if b.current == "input":  # a model of Dropouts only: ONNX outputs need a node
        b.node("Identity", "output")
    # The last node writes "output" directly.
    last = b.nodes[-1]
    last.output[0] = "output"

    in_dims: List[Any] = ["batch", *model.input_shape]
    out_dims: List[Any] = ["batch", *model.output_shape]
    graph = helper.make_graph(
        b.nodes,
        "cpucnn",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, out_dims)],
        initializer=b.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="cpucnn", producer_version=__version__,
                              doc_string=f"Exported by cpucnn {__version__} from a Sequential model.")
    # The oldest IR version that holds this opset, so older runtimes read the file.
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(proto, {"cpucnn.architecture": json.dumps(arch)})
    onnx.checker.check_model(proto, full_check=True)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        onnx.save(proto, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
