"""Post-training int8 quantization: ``cpucnn.quantize(model, calibration_x)``.

The quantized model is a ``Sequential`` like any other (``predict``, ``evaluate``, ``save``/``load``,
the C API and ``cpucnn-run``), for inference only. Its scheme, the same on every ISA so results are
bit-identical whichever kernel runs:

- Conv2D (groups 1) and Dense weights: symmetric int8 in [-127, 127], one scale per output channel
  (max |w| / 127);
- activations: 7-bit unsigned codes q in [0, 127], x = (q - zero_point) * scale, one scale and zero
  point per tensor, from the calibration data (``method``); 7 bits keep AVX2's ``vpmaddubsw`` (u8 x s8
  pairs summed into a saturating int16) exact: 2 x 127 x 127 < 32767;
- int32 sums; the bias, the requantisation and a following ReLU fused into the layer's output;
  MaxPool2D, ReLU and Flatten run on the codes directly; any other layer (Softmax, Sigmoid, AvgPool2D,
  BatchNorm2D, ...) runs in float32 with Dequantize / Quantize layers inserted around it. The last
  int8 layer before a float one (or the model's end) writes floats directly.

``summary()`` of a quantized model has a column saying where each layer runs.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import layers as layers_mod

__all__ = [
    "quantize",
    "QuantizedLayer",
    "QConv2D",
    "QDense",
    "Quantize",
    "Dequantize",
    "QMaxPool2D",
    "QReLU",
    "QFlatten",
]

QMAX = 127  # activation codes are 7-bit: [0, 127]


class QuantizedLayer(layers_mod.Layer):
    """Base class of the int8 inference layers that ``quantize`` builds (and ``cpucnn.load`` reads back).
    Their settings are the ones stored in the model file's architecture; they are not meant to be
    written by hand.

    Args:
        settings: the layer's settings as stored in model files (scales, zero points, shapes).
    """

    _type = "QuantizedLayer"
    _runs_in = "int8"

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self._settings = dict(settings)

    def get_config(self) -> Dict[str, Any]:
        return {"type": self._type, **self._settings}

    @property
    def settings(self) -> Dict[str, Any]:
        """A copy of the layer's settings (scales, zero points, ...)."""
        return dict(self._settings)


class QConv2D(QuantizedLayer):
    """An int8 Conv2D: int8 ``weight`` with a per-output-channel ``weight_scale`` (float32), a float32
    ``bias``; 7-bit input codes (``in_scale``, ``in_zero_point``); output codes (``out_scale``,
    ``out_zero_point``) or, with ``output="float"``, float32; ``relu`` fused. Inference only."""

    _type = "QConv2D"


class QDense(QuantizedLayer):
    """An int8 Dense layer: int8 ``weight`` (units, features) with a per-unit ``weight_scale``, a float32
    ``bias``; input and output quantised as in QConv2D. Inference only."""

    _type = "QDense"


class Quantize(QuantizedLayer):
    """float32 -> 7-bit codes: q = clip(round_half_even(x / scale) + zero_point, 0, 127)."""

    _type = "Quantize"
    _runs_in = "float32 -> int8"


class Dequantize(QuantizedLayer):
    """7-bit codes -> float32: x = (q - zero_point) * scale."""

    _type = "Dequantize"
    _runs_in = "int8 -> float32"


class QMaxPool2D(QuantizedLayer):
    """MaxPool2D on codes (the scale and zero point pass through unchanged)."""

    _type = "QMaxPool2D"


class QReLU(QuantizedLayer):
    """ReLU on codes: max(q, zero_point). ``fused``: already applied by the int8 layer before it (then it
    runs nothing)."""

    _type = "QReLU"


class QFlatten(QuantizedLayer):
    """Flatten on codes (a view)."""

    _type = "QFlatten"


_Q_TYPES = (QConv2D, QDense, Quantize, Dequantize, QMaxPool2D, QReLU, QFlatten)
layers_mod._INT8_TYPES.update({cls._type: cls for cls in _Q_TYPES})


def is_quantized(model: Any) -> bool:
    """Whether ``model`` (a Sequential) holds int8 layers (made by ``quantize`` or loaded from such a file).

    Args:
        model: a cpucnn.Sequential.
    """
    return any(isinstance(layer, QuantizedLayer) for layer in getattr(model, "layers", ()))


# -- calibration ---------------------------------------------------------------------------------------

class _Stats:
    """The values seen at one tensor: min/max, and a bounded random sample (percentile, entropy)."""

    def __init__(self, keep: bool, rng: np.random.Generator, cap: int = 1 << 21) -> None:
        self.lo, self.hi = np.inf, -np.inf
        self.keep, self.rng, self.cap = keep, rng, cap
        self.samples: List[np.ndarray] = []
        self.seen = 0

    def add(self, a: np.ndarray, per_batch: int) -> None:
        flat = a.reshape(-1)
        self.lo = min(self.lo, float(flat.min()))
        self.hi = max(self.hi, float(flat.max()))
        if self.keep:
            take = min(flat.size, per_batch)
            idx = self.rng.choice(flat.size, size=take, replace=False) if take < flat.size else slice(None)
            self.samples.append(np.array(flat[idx], dtype=np.float32))

    def values(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(1, np.float32)


def _entropy_threshold(v: np.ndarray, levels: int, bins: int = 2048) -> float:
    """The clipping threshold of |v| that minimises the KL divergence between the clipped histogram
    and its quantisation to ``levels`` levels (TensorRT's calibration)."""
    a = np.abs(v)
    amax = float(a.max())
    if amax == 0.0:
        return 0.0
    hist, edges = np.histogram(a, bins=bins, range=(0.0, amax))
    hist = hist.astype(np.float64)
    # Zeros (ReLU's spike, an image's background) are exact whatever the threshold: left out, they
    # would dominate both distributions and pull the threshold down.
    hist[0] = 0.0
    best, best_kl = amax, np.inf
    for i in range(levels, bins + 1, max(1, (bins - levels) // 128)):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        # Quantise the first i bins to `levels` levels, spread back over the non-empty bins.
        chunks = np.array_split(np.arange(i), levels)
        q = np.zeros(i)
        for c in chunks:
            nz = hist[c] > 0
            if nz.any():
                q[c[nz]] = hist[c].sum() / nz.sum()
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p /= ps
        q /= qs
        mask = p > 0
        qm = np.where(q[mask] > 0, q[mask], 1e-12)
        kl = float(np.sum(p[mask] * np.log(p[mask] / qm)))
        if kl < best_kl:
            best_kl, best = kl, float(edges[i])
    return best


def _range(stats: _Stats, method: str, percentile: float, nonneg: bool) -> Tuple[float, float]:
    lo, hi = stats.lo, stats.hi
    if method == "percentile":
        v = stats.values()
        hi = float(np.percentile(v, percentile))
        lo = float(np.percentile(v, 100.0 - percentile))
    elif method == "entropy":
        v = stats.values()
        if nonneg or lo >= 0:
            hi, lo = _entropy_threshold(v, QMAX + 1), 0.0
        else:  # signed: the threshold of |v|, kept asymmetric where one side is shorter
            t = _entropy_threshold(v, (QMAX + 1) // 2)
            lo, hi = max(lo, -t), min(hi, t)
    if nonneg:
        lo = 0.0
    return min(lo, 0.0), max(hi, 0.0)


def _qparams(lo: float, hi: float) -> Tuple[float, int]:
    """(scale, zero point) of 7-bit codes covering [lo, hi] (which holds 0: zero is exact)."""
    span = hi - lo
    if not np.isfinite(span) or span <= 0.0:
        span = 1e-6
    scale = float(np.float32(span / QMAX))
    zp = int(np.clip(np.rint(-lo / scale), 0, QMAX))
    return scale, zp


def _quantize_weight(w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 (values as float32 integers in [-127, 127]) and the scales."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    amax = np.abs(flat).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(flat / scale[:, None].astype(np.float64)), -127, 127).astype(np.float32)
    return q.reshape(w.shape), scale


# -- the quantized model -------------------------------------------------------------------------------

_INT8_FOLLOWERS = ("MaxPool2D", "Flatten", "ReLU")


def _int8_compute(layer: layers_mod.Layer) -> bool:
    return layer._type == "Dense" or (layer._type == "Conv2D" and layer.groups == 1)


def _int8_capable(layer: layers_mod.Layer) -> bool:
    return _int8_compute(layer) or layer._type in _INT8_FOLLOWERS


def quantize(model: Any, calibration_x: Any, method: str = "minmax", percentile: float = 99.99,
             batch_size: int = 256, seed: int = 0) -> Any:
    """An int8 copy of ``model`` for inference, calibrated on ``calibration_x``.

    Conv2D (groups 1) and Dense run in int8 with per-output-channel weight scales; the activation
    scales come from running the float model on ``calibration_x``; MaxPool2D, ReLU and Flatten run on
    int8 codes; other layers run in float32 with conversions inserted (see the module's docstring).
    The model need not be compiled (a model never trained quantizes too); the copy is compiled with
    the same loss and metrics when ``model`` is, so ``evaluate`` works on it, and it cannot be trained.

    Args:
        model (Sequential): the float32 model.
        calibration_x (array-like): inputs of the model's input shape, (N, *input_shape), N >= 1;
            a few hundred to a thousand representative samples.
        method (str, default "minmax"): how an activation's range is chosen: ``"minmax"`` (the
            extremes seen), ``"percentile"`` (the ``percentile``-th and (100 - ``percentile``)-th
            percentiles, clipping outliers) or ``"entropy"`` (the clipping threshold minimising the
            KL divergence of the quantised histogram, as TensorRT; the model's input keeps its
            min/max range).
        percentile (float, default 99.99): for ``method="percentile"``, in (50, 100].
        batch_size (int, default 256): samples per calibration forward pass.
        seed (int, default 0): seeds the sampling of values for the percentile and entropy methods.

    Returns:
        Sequential: the int8 model (same input and output shapes).

    Raises:
        TypeError: model is not a Sequential, or calibration_x is not numeric.
        ValueError: model is already quantized; calibration_x of the wrong shape, empty, or holding
            NaN/Inf; model weights that are NaN/Inf; an unknown method or a bad percentile.

    Example:
        >>> qmodel = cc.quantize(model, x_train[:1000], method="percentile")  # doctest: +SKIP
    """
    from .model import Sequential, _as_input

    if not isinstance(model, Sequential):
        raise TypeError(f"quantize needs a cpucnn.Sequential, got {type(model).__name__}")
    if is_quantized(model):
        raise ValueError("the model is already quantized (it holds int8 layers); quantize its float32 original")
    if method not in ("minmax", "percentile", "entropy"):
        raise ValueError(f"method must be 'minmax', 'percentile' or 'entropy', got {method!r}")
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) or not 50.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x = _as_input(calibration_x, "calibration_x")
    try:
        x = model._to_core_input(x)
    except ValueError as e:
        raise ValueError(f"calibration_x: {e}") from None
    if x.shape[0] == 0:
        raise ValueError(f"calibration_x is empty (shape {tuple(x.shape)}): quantize needs at least one sample")
    bad = ~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
    if bad.any():
        raise ValueError(f"calibration_x holds NaN or Inf (first in sample {int(np.argmax(bad))} of "
                         f"{x.shape[0]}, shape {tuple(x.shape)})")
    for layer in model.layers:
        for name in layer.param_names:
            if not np.isfinite(layer.get_param(name)).all():
                raise ValueError(f"{layer.name}: {name} holds NaN or Inf; cannot quantize it")

    src = model.layers
    n_layers = len(src)
    # Which float tensors need a range: -1 is the input; i the output of layer i.
    plan: List[Tuple[str, int, Dict[str, Any]]] = []  # (kind, source layer, extras)
    need: Dict[int, bool] = {}  # tensor -> non-negative (after a ReLU)
    int8 = False
    cur = -1  # the float tensor the current int8 codes represent
    i = 0
    while i < n_layers:
        layer = src[i]
        if _int8_compute(layer):
            if not int8:
                need[i - 1] = False
                plan.append(("quantize", i - 1, {}))
            relu = i + 1 < n_layers and src[i + 1]._type == "ReLU"
            out = i + 1 if relu else i
            consumer_int8 = out + 1 < n_layers and _int8_capable(src[out + 1])
            plan.append(("qcompute", i, {"in": cur if int8 else i - 1, "out": out, "relu": relu,
                                         "u8": consumer_int8}))
            if consumer_int8:
                need[out] = relu
                if relu:
                    plan.append(("qrelu_fused", i + 1, {"t": out}))
                int8, cur = True, out
            else:
                if relu:
                    plan.append(("float", i + 1, {}))  # max(., 0) again in float: a no-op, kept for the layout
                int8 = False
            i = out + 1
            continue
        if int8 and layer._type in _INT8_FOLLOWERS:
            plan.append(({"MaxPool2D": "qpool", "Flatten": "qflatten", "ReLU": "qrelu"}[layer._type], i, {"t": cur}))
            i += 1
            continue
        if int8:
            plan.append(("dequantize", i, {"t": cur}))
            int8 = False
        plan.append(("float", i, {}))
        i += 1
    if int8:
        plan.append(("dequantize", n_layers, {"t": cur}))

    # Calibration: the float model's tensors, batch by batch.
    rng = np.random.default_rng(seed)
    keep = method != "minmax"
    stats = {t: _Stats(keep, rng) for t in need}
    layer_tensors = sorted(t for t in need if t >= 0)
    per_batch = max(1, (1 << 21) * min(batch_size, x.shape[0]) // x.shape[0])
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size]
        if -1 in stats:
            stats[-1].add(xb, per_batch)
        if layer_tensors:
            outs = model._m.predict_outputs(xb, 0, layer_tensors, batch_size)
            for t, a in zip(layer_tensors, outs):
                stats[t].add(a, per_batch)
    qp: Dict[int, Tuple[float, int]] = {}
    for t, nonneg in need.items():
        # The entropy method clips the heavy tails of hidden activations; the model's input (t == -1)
        # keeps its extremes: it is data (pixels), whose spike at 0 would pull KL's threshold far down.
        how = "minmax" if method == "entropy" and t == -1 else method
        qp[t] = _qparams(*_range(stats[t], how, float(percentile), nonneg))

    # The new layers, and the parameters to copy into them.
    new_layers: List[layers_mod.Layer] = []
    params: List[Dict[str, np.ndarray]] = []
    for kind, i, ex in plan:
        p: Dict[str, np.ndarray] = {}
        if kind == "quantize":
            s_, z = qp[i]
            new_layers.append(Quantize(scale=s_, zero_point=z))
        elif kind == "dequantize":
            s_, z = qp[ex["t"]]
            new_layers.append(Dequantize(scale=s_, zero_point=z))
        elif kind == "qcompute":
            layer = src[i]
            s_in, z_in = qp[ex["in"]]
            act: Dict[str, Any] = {"in_scale": s_in, "in_zero_point": z_in, "relu": ex["relu"],
                                   "output": "int8" if ex["u8"] else "float"}
            if ex["u8"]:
                act["out_scale"], act["out_zero_point"] = qp[ex["out"]]
            cfg = layer.get_config()
            cfg.pop("type")
            cfg.pop("groups", None)
            cls = QConv2D if layer._type == "Conv2D" else QDense
            new_layers.append(cls(**cfg, **act))
            wq, ws = _quantize_weight(layer.get_param("weight"))
            p = {"weight": wq, "weight_scale": ws}
            if "bias" in layer.param_names:
                p["bias"] = layer.get_param("bias")
        elif kind == "qrelu_fused":
            new_layers.append(QReLU(zero_point=qp[ex["t"]][1], fused=True))
        elif kind == "qrelu":
            new_layers.append(QReLU(zero_point=qp[ex["t"]][1], fused=False))
        elif kind == "qpool":
            cfg = src[i].get_config()
            cfg.pop("type")
            new_layers.append(QMaxPool2D(**{k: list(v) for k, v in cfg.items()}))
        elif kind == "qflatten":
            new_layers.append(QFlatten())
        else:  # a float layer, copied
            layer = src[i]
            new_layers.append(layers_mod.from_config(layer._full_config()))
            p = {name: layer.get_param(name) for name in layer.param_names}
        params.append(p)

    qmodel = Sequential(new_layers, tuple(model._m.input_shape), seed=model.seed, data_format="channels_first")
    qmodel._channels_last = model._channels_last
    for layer, p in zip(new_layers, params):
        for name, value in p.items():
            layer.set_param(name, value)
    if model.loss is not None:
        qmodel.compile(optimizer="sgd", loss=model.loss, metrics=list(model.metrics),
                       label_smoothing=model.label_smoothing)
    return qmodel
