"""Layer specifications.

A layer here is a spec: its settings, and (once its model is built) a view of
the parameters that the C++ model owns. ``layer.weight`` / ``layer.bias``
read and write them in PyTorch's layouts.
"""

from __future__ import annotations

__docformat__ = "google"

import difflib
import json
import math
import numbers
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "Layer",
    "WeightedLayer",
    "Pool2D",
    "Conv2D",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "Dense",
    "Flatten",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Dropout",
    "BatchNorm2D",
    "from_config",
]

IntOrPair = Union[int, Tuple[int, int], Sequence[int]]


def _int(name: str, value: Any, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{layer}: {name} must be an integer, got {value!r}")
    if not -(2**63) <= int(value) < 2**63:
        raise ValueError(f"{layer}: {name} is out of the int64 range, got {value!r}")
    return int(value)


def _pair(name: str, value: Any, layer: str) -> Tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{layer}: {name} must be an integer or a pair, got {value!r}")
        return (_int(name, value[0], layer), _int(name, value[1], layer))
    v = _int(name, value, layer)
    return (v, v)


def _number(name: str, value: Any, layer: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{layer}: {name} must be finite, got {value!r}")
    return float(value)


class Layer:
    """Base class of the layers: settings, shapes, and access to parameters once built.

    A layer is created with its settings only; ``Sequential(layers, input_shape)`` builds it (infers
    its shapes and creates its parameters in the C++ model). A layer belongs to one model and may be
    placed only once in it. Shapes are per sample, channels-first: (C, H, W) or (F,).

    ``trainable`` (default True): set it to False to freeze the layer. Its parameters then get no
    update from ``fit``/``train_on_batch`` (bit for bit, whatever the optimizer, weight decay and
    momentum included) and no weight gradient is computed. A frozen BatchNorm2D keeps gamma and beta
    but, as PyTorch with ``requires_grad=False``, still normalises with the batch statistics in
    training and updates its running statistics (Keras instead runs a frozen BatchNormalization in
    inference mode). Takes effect at the next training step, no recompile needed; saved in model files.

    Setting an attribute a layer does not have (``layer.trainabel = False``) raises AttributeError.
    """

    _type = "Layer"

    def __init__(self) -> None:
        self._model = None  # the C++ model, set by Sequential
        self._index: Optional[int] = None
        self._trainable = True

    def __setattr__(self, name: str, value: Any) -> None:
        # Private names, the settings made in __init__ and the class's properties; anything else is a
        # typo that would otherwise be silently accepted.
        if name.startswith("_") or name in self.__dict__ or hasattr(type(self), name) or self._initialising():
            object.__setattr__(self, name, value)
            return
        known = [k for k in self.__dict__ if not k.startswith("_")]
        known += [k for k in dir(type(self)) if not k.startswith("_")]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AttributeError(f"{self._type} has no attribute {name!r}{hint}")

    def _initialising(self) -> bool:
        # True while a constructor of this layer runs (it sets the settings).
        return not self.__dict__.get("_ready", False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _track_init(cls.__dict__["__init__"])  # type: ignore[misc]

    @property
    def trainable(self) -> bool:
        """False freezes the layer's parameters (see the class docstring)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{self.name}: trainable must be True or False, got {value!r}")
        self._trainable = bool(value)
        if self._model is not None:
            self._model.set_trainable(self._index, self._trainable)

    # -- settings ----------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        """The settings as a dict (with ``type``), as stored in model files."""
        return {"type": self._type}

    def _full_config(self) -> Dict[str, Any]:
        cfg = self.get_config()
        if not self._trainable:
            cfg["trainable"] = False
        return cfg

    @property
    def name(self) -> str:
        """``"<type>_<index>"`` (e.g. ``"conv2d_0"``) once in a model, the type name before."""
        return self._type if self._index is None else f"{self._type.lower()}_{self._index}"

    def __repr__(self) -> str:
        cfg = self._full_config()
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k != "type")
        return f"{self._type}({args})"

    # -- parameters (after the model is built) ------------------------------
    def _bound(self):
        if self._model is None:
            raise ValueError(f"{self!r} is not part of a built model yet: pass it to Sequential(...) first")
        return self._model, self._index

    @property
    def param_names(self) -> Tuple[str, ...]:
        """The names of its parameters in the built model (e.g. ``("weight", "bias")``); empty before."""
        if self._model is None:
            return ()
        info = self._model.layer_info(self._index)
        return tuple(name for name, _, _ in info["params"])

    def get_param(self, name: str) -> np.ndarray:
        """A copy of the parameter ``name`` (str, one of ``param_names``), in PyTorch's layout.

        Raises:
            ValueError: the layer is not in a model yet, or has no parameter ``name``.
        """
        model, index = self._bound()
        return model.get_param(index, name)

    def set_param(self, name: str, value: Any) -> None:
        """Writes the parameter ``name`` (str) from ``value`` (array-like of its exact shape, converted
        to float32).

        Raises:
            ValueError: the layer is not in a model yet, no parameter ``name``, or the wrong shape.
            TypeError: value is not numeric.
        """
        model, index = self._bound()
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:  # ragged nested lists and the like
            raise TypeError(f"{self.name}: {name} must be a numeric array: {e}") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: {name} must be numeric, got dtype {arr.dtype}")
        model.set_param(index, name, np.ascontiguousarray(arr, dtype=np.float32))

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """Its output shape per sample (channels-first). Raises ValueError before it is in a model."""
        model, index = self._bound()
        return tuple(model.layer_info(index)["output_shape"])

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Its input shape per sample (channels-first). Raises ValueError before it is in a model."""
        model, index = self._bound()
        return tuple(model.layer_info(index)["input_shape"])


def _track_init(init: Any) -> Any:
    """Wraps a layer constructor so that the layer accepts no new attribute once the outermost
    constructor has returned (see Layer.__setattr__)."""
    def wrapped(self: Layer, *args: Any, **kw: Any) -> None:
        depth = self.__dict__.get("_init_depth", 0)
        object.__setattr__(self, "_init_depth", depth + 1)
        try:
            init(self, *args, **kw)
        finally:
            object.__setattr__(self, "_init_depth", depth)
        if depth == 0:
            object.__setattr__(self, "_ready", True)

    for attr in ("__doc__", "__name__", "__qualname__", "__module__"):
        setattr(wrapped, attr, getattr(init, attr))
    wrapped.__wrapped__ = init  # type: ignore[attr-defined]
    return wrapped


Layer.__init__ = _track_init(Layer.__init__)  # type: ignore[method-assign]


class WeightedLayer(Layer):
    """Base class of the layers with parameters (Conv2D, Dense, BatchNorm2D): ``weight`` and ``bias``
    read and write them (copies, in PyTorch's layouts) once the layer is in a model."""

    @property
    def weight(self) -> np.ndarray:
        """The weight, a copy, in PyTorch's layout."""
        return self.get_param("weight")

    @weight.setter
    def weight(self, value: Any) -> None:
        self.set_param("weight", value)

    @property
    def bias(self) -> Optional[np.ndarray]:
        """The bias (a copy), or None when the layer has none."""
        if "bias" not in self.param_names:
            return None
        return self.get_param("bias")

    @bias.setter
    def bias(self, value: Any) -> None:
        if "bias" not in self.param_names:
            raise ValueError(f"{self.name} was built without a bias (use_bias=False)")
        self.set_param("bias", value)


class Conv2D(WeightedLayer):
    """2-D convolution over (C, H, W) inputs, as ``torch.nn.Conv2d`` (cross-correlation).

    Args:
        filters (int): output channels.
        kernel_size (int or (int, int)): the kernel's height and width.
        stride (int or (int, int), default 1): the step between windows.
        padding (int, (int, int), "same" or "valid", default 0): zeros added on each side; ``"same"``
            gives an output of ceil(input / stride), any odd padding going bottom/right;
            ``"valid"`` is 0.
        dilation (int or (int, int), default 1): the spacing of the kernel's taps.
        groups (int, default 1): the input and output channels are split into this many groups;
            it must divide both.
        use_bias (bool, default True): whether to add a bias per output channel.

    Parameters: ``weight`` (filters, C / groups, kh, kw) and ``bias`` (filters,), PyTorch's default
    initialisation.

    Raises:
        TypeError: a setting that is not an integer (or a pair of them).
        ValueError: a bad padding string; building (in ``Sequential``) raises ValueError naming the
            layer for a kernel larger than the padded input, groups not dividing the channels, etc.

    Example:
        >>> Conv2D(32, 3, padding="same")
        Conv2D(filters=32, kernel_size=[3, 3], stride=[1, 1], padding='same', ...)
    """

    _type = "Conv2D"

    def __init__(
        self,
        filters: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: Union[IntOrPair, str] = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        use_bias: bool = True,
    ) -> None:
        super().__init__()
        me = "Conv2D"
        self.filters = _int("filters", filters, me)
        self.kernel_size = _pair("kernel_size", kernel_size, me)
        self.stride = _pair("stride", stride, me)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2D: padding must be an integer, a pair, 'same' or 'valid', got {padding!r}")
            self.padding: Union[str, Tuple[int, int]] = padding
        else:
            self.padding = _pair("padding", padding, me)
        self.dilation = _pair("dilation", dilation, me)
        self.groups = _int("groups", groups, me)
        self.use_bias = bool(use_bias)

    def get_config(self) -> Dict[str, Any]:
        return {
            "type": self._type,
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "use_bias": self.use_bias,
        }


class Dense(WeightedLayer):
    """Fully connected layer over flat (F,) inputs, as ``torch.nn.Linear``: y = x W^T + b.

    Args:
        units (int): output features.
        use_bias (bool, default True): whether to add a bias.

    Parameters: ``weight`` (units, F) and ``bias`` (units,).

    Raises:
        TypeError: units is not an integer. Building raises ValueError for a non-flat input (add
            ``Flatten()`` before it).
    """

    _type = "Dense"

    def __init__(self, units: int, use_bias: bool = True) -> None:
        super().__init__()
        self.units = _int("units", units, "Dense")
        self.use_bias = bool(use_bias)

    def get_config(self) -> Dict[str, Any]:
        return {"type": self._type, "units": self.units, "use_bias": self.use_bias}


class Pool2D(Layer):
    """Base class of MaxPool2D and AvgPool2D: windows of ``pool_size`` moved by ``stride`` (default:
    ``pool_size``), with ``padding`` on each side.

    Args:
        pool_size (int or (int, int), default 2): the window.
        stride (int or (int, int), optional): the step; defaults to pool_size.
        padding (int or (int, int), default 0): added on each side, at most half the window.
    """

    def __init__(self, pool_size: IntOrPair = 2, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0) -> None:
        super().__init__()
        me = self._type
        self.pool_size = _pair("pool_size", pool_size, me)
        self.stride = self.pool_size if stride is None else _pair("stride", stride, me)
        self.padding = _pair("padding", padding, me)

    def get_config(self) -> Dict[str, Any]:
        return {
            "type": self._type,
            "pool_size": list(self.pool_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
        }


class MaxPool2D(Pool2D):
    """Max pooling over (C, H, W), as ``torch.nn.MaxPool2d`` (padding never wins the max).

    Args:
        pool_size (int or (int, int), default 2): the window.
        stride (int or (int, int), optional): the step; defaults to pool_size.
        padding (int or (int, int), default 0): added on each side, at most half the window.

    Raises:
        TypeError: a setting that is not an integer or a pair. Building raises ValueError naming the
            layer for a window larger than the padded input.
    """

    _type = "MaxPool2D"


class AvgPool2D(Pool2D):
    """Average pooling over (C, H, W), as ``torch.nn.AvgPool2d`` (padding counts in the divisor).

    Args:
        pool_size (int or (int, int), default 2): the window.
        stride (int or (int, int), optional): the step; defaults to pool_size.
        padding (int or (int, int), default 0): zeros added on each side.

    Raises:
        TypeError: a setting that is not an integer or a pair. Building raises ValueError naming the
            layer for a window larger than the padded input.
    """

    _type = "AvgPool2D"


class GlobalAvgPool2D(Layer):
    """(C, H, W) -> (C,): the mean of each channel (``AdaptiveAvgPool2d(1)`` then ``Flatten()`` in
    PyTorch). No settings."""

    _type = "GlobalAvgPool2D"


class Flatten(Layer):
    """(C, H, W) -> (C*H*W,), in C order (as ``torch.nn.Flatten()``). No settings."""

    _type = "Flatten"


class ReLU(Layer):
    """max(x, 0), elementwise. No settings.

    After a Conv2D it is fused into the convolution; ``predict(x, outputs=[i])`` still gives each
    layer's own output."""

    _type = "ReLU"


class LeakyReLU(Layer):
    """x for x >= 0, alpha * x otherwise, elementwise (``torch.nn.LeakyReLU(negative_slope=alpha)``).

    Args:
        alpha (float, default 0.01): the slope for negative inputs.

    Raises:
        TypeError: alpha is not a number. ValueError: alpha is not finite.
    """

    _type = "LeakyReLU"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = _number("alpha", alpha, "LeakyReLU")

    def get_config(self) -> Dict[str, Any]:
        return {"type": self._type, "alpha": self.alpha}


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), elementwise. No settings."""

    _type = "Sigmoid"


class Tanh(Layer):
    """tanh(x), elementwise. No settings."""

    _type = "Tanh"


class Softmax(Layer):
    """Softmax over the channel axis (axis 1 of the batch; per pixel for (C, H, W) inputs), as
    ``torch.nn.Softmax(dim=1)``. No settings.

    The ``cross_entropy`` loss applies its own log-softmax to the model's output: a model trained
    with it should end with the logits (Dense), not with Softmax."""

    _type = "Softmax"


class Dropout(Layer):
    """Inverted dropout: in training, zeroes each value with probability ``rate`` and scales the
    others by 1 / (1 - rate); an identity in ``predict``/``evaluate``. The masks come from the
    model's seed and the step, so a seeded run is reproducible.

    Args:
        rate (float, default 0.5): the probability of dropping a value, in [0, 1).

    Raises:
        TypeError: rate is not a number. ValueError: rate not finite; building raises ValueError
            naming the layer for a rate outside [0, 1).
    """

    _type = "Dropout"

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        self.rate = _number("rate", rate, "Dropout")

    def get_config(self) -> Dict[str, Any]:
        return {"type": self._type, "rate": self.rate}


class BatchNorm2D(WeightedLayer):
    """Batch normalisation over the channels of (C, H, W) inputs, as ``torch.nn.BatchNorm2d``: batch
    statistics in training (updating the running ones), running statistics in inference.

    Args:
        momentum (float, default 0.1): running = (1 - momentum) * running + momentum * batch (the
            running variance takes the unbiased batch variance, as PyTorch).
        eps (float, default 1e-5): added to the variance.

    Parameters: ``weight`` and ``bias`` (C,) (trained), ``running_mean`` and ``running_var`` (C,) (not
    trained; saved with the model and returned by ``get_weights``).

    Raises:
        TypeError: a setting that is not a number. ValueError: one not finite; building raises
            ValueError naming the layer for a non-(C, H, W) input.
    """

    _type = "BatchNorm2D"

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = _number("momentum", momentum, "BatchNorm2D")
        self.eps = _number("eps", eps, "BatchNorm2D")

    def get_config(self) -> Dict[str, Any]:
        return {"type": self._type, "momentum": self.momentum, "eps": self.eps}

    @property
    def running_mean(self) -> np.ndarray:
        """The running mean (C,), a copy; settable."""
        return self.get_param("running_mean")

    @running_mean.setter
    def running_mean(self, value: Any) -> None:
        self.set_param("running_mean", value)

    @property
    def running_var(self) -> np.ndarray:
        """The running variance (C,), a copy; settable."""
        return self.get_param("running_var")

    @running_var.setter
    def running_var(self, value: Any) -> None:
        self.set_param("running_var", value)


_TYPES = {
    cls._type: cls
    for cls in (Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dense, Flatten, ReLU, LeakyReLU, Sigmoid, Tanh,
                Softmax, Dropout, BatchNorm2D)
}


# The int8 inference layers (cpucnn.quantization registers them): read from model files, never
# written by hand, so kept apart from the layers users build models from.
_INT8_TYPES: Dict[str, Any] = {}


def from_config(config: Dict[str, Any]) -> Layer:
    """Builds a new layer from ``config`` (dict), the output of ``get_config()`` (or an entry of a model
    file's architecture).

    Raises:
        ValueError: an unknown ``type``. TypeError: settings the layer does not take.

    Example:
        >>> from_config({"type": "Dense", "units": 10, "use_bias": True})
        Dense(units=10, ...)
    """
    cfg = dict(config)
    kind = cfg.pop("type", None)
    if kind not in _TYPES and kind not in _INT8_TYPES:
        raise ValueError(f"unknown layer type {kind!r}")
    trainable = cfg.pop("trainable", True)
    cls = _TYPES[kind] if kind in _TYPES else _INT8_TYPES[kind]
    if kind in ("MaxPool2D", "AvgPool2D"):
        layer = cls(pool_size=tuple(cfg["pool_size"]), stride=tuple(cfg["stride"]), padding=tuple(cfg["padding"]))
    else:
        if kind == "Conv2D":
            pad = cfg.get("padding", 0)
            cfg["padding"] = pad if isinstance(pad, str) else tuple(pad)
            for key in ("kernel_size", "stride", "dilation"):
                if key in cfg:
                    cfg[key] = tuple(cfg[key])
        layer = cls(**cfg)
    layer.trainable = trainable
    return layer


def _dumps(layers: Sequence[Layer], input_shape: Sequence[int]) -> str:
    return json.dumps({"input_shape": list(input_shape), "layers": [layer._full_config() for layer in layers]})
