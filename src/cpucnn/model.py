"""The Sequential model: a thin Python view of the C++ model that owns all
state. Training steps, inference and file I/O run in C++ with the GIL
released; Python does argument checking, the epoch loop, callbacks and
progress display."""

from __future__ import annotations

__docformat__ = "google"

import json
import numbers
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, _fit
from . import callbacks as callbacks_mod
from . import layers as layers_mod
from . import optimizers as optimizers_mod

__all__ = ["Sequential", "SubModel", "load"]

_LOSSES = ("cross_entropy", "mse")
_METRICS = ("accuracy", "top5")
_METRIC_ALIASES = {"acc": "accuracy", "top1": "accuracy", "top_5": "top5", "top5_accuracy": "top5"}


def _as_input(x: Any, what: str = "x") -> np.ndarray:
    """x as a C-contiguous float32 array (one conversion, no copy if already so)."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as e:  # ragged lists and the like
            raise TypeError(f"{what} must be a numeric array: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a numeric array, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # beyond float32's range -> inf, which training rejects by name
        return np.ascontiguousarray(arr, dtype=np.float32)


def _as_labels(y: Any, n: int, classes: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"labels y must be integers, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"labels y must have shape ({n},), got {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has {arr.shape[0]} labels")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError("labels y contain NaN or Inf")
        if not np.all(arr == np.round(arr)):
            raise ValueError("labels y must be integers, got non-integer values")
    elif arr.dtype.kind == "b":
        raise TypeError("labels y must be integers, got booleans")
    if arr.size:  # range-checked before the cast, which would wrap huge values
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= classes:
            bad = lo if lo < 0 else hi
            bad = int(bad) if arr.dtype.kind != "f" else float(bad)
            raise ValueError(f"labels y must be in [0, {classes}) for a model with {classes} outputs, got {bad}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _as_probs(arr: np.ndarray, n: int, classes: int) -> np.ndarray:
    """cross_entropy's probability (or one-hot) targets, (n, classes) float32."""
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"targets y must be numeric, got dtype {arr.dtype}")
    if arr.shape != (n, classes):
        raise ValueError(f"cross_entropy needs labels y of shape ({n},) or probability targets of shape "
                         f"({n}, {classes}), got {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise ValueError("targets y contain NaN or Inf")
    return out


def _sample_weights(sample_weight: Any, class_weight: Any, y: np.ndarray, n: int,
                    classes: int) -> Optional[np.ndarray]:
    """Keras's per-sample weights: sample_weight (n,) times class_weight[label] (the label of a
    probability target is its argmax); None when neither is given. Classes missing from
    class_weight weigh 1."""
    w: Optional[np.ndarray] = None
    if sample_weight is not None:
        arr = np.asarray(sample_weight)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"sample_weight must be numeric, got dtype {arr.dtype}")
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {arr.shape}")
        w = np.array(arr, dtype=np.float32)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("sample_weight must be finite and non-negative")
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{label: weight}}, got {type(class_weight).__name__}")
        if y.ndim != 1 and y.shape[1:] != (classes,):   # pragma: no cover (mse is refused before)
            raise ValueError("class_weight needs labels or probability targets")
        table = np.ones(classes, dtype=np.float32)
        for k, v in class_weight.items():
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or not 0 <= k < classes:
                raise ValueError(f"class_weight keys must be labels in [0, {classes}), got {k!r}")
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v < 0:
                raise ValueError(f"class_weight[{k}] must be a finite non-negative number, got {v!r}")
            table[int(k)] = v
        labels = y if y.ndim == 1 else np.argmax(y, axis=1)
        cw = table[labels]
        w = cw if w is None else w * cw
    return w


def _as_targets(y: Any, n: int, outputs: int) -> np.ndarray:
    arr = _as_input(y, "targets y")
    if arr.shape != (n, outputs):
        raise ValueError(f"mse needs targets y of shape ({n}, {outputs}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("targets y contain NaN or Inf")
    return arr


def _require_finite(x: np.ndarray, what: str) -> None:
    """Raises ValueError naming the first sample of x that holds NaN or Inf."""
    if not np.all(np.isfinite(x)):
        bad = int(np.argwhere(~np.isfinite(x.reshape(x.shape[0], -1)))[0][0])
        raise ValueError(f"{what} contains NaN or Inf (sample {bad})")


def _fit_settings(epochs: Any, batch_size: Any, initial_epoch: Any, verbose: Any,
                  seed: Any) -> Tuple[int, int, int, int]:
    """fit's counts and switches, checked; a seed is drawn when None."""
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    batch_size = _positive_int("batch_size", batch_size)
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral) or initial_epoch < 0:
        raise ValueError(f"initial_epoch must be a non-negative integer, got {initial_epoch!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    return int(epochs), batch_size, int(initial_epoch), int(seed)


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


class Sequential:
    """A stack of layers, built at construction for inputs of ``input_shape``.

    Args:
        layers (sequence of cpucnn.layers.Layer): the layers, in order; each new (a layer belongs to
            one model and may appear once in it).
        input_shape (tuple of int): one sample's shape: (C, H, W) for images, (F,) for features; with
            ``data_format="channels_last"``, (H, W, C).
        seed (int, optional): fixes the initial weights (PyTorch's default initialisation) and the
            dropout masks; random when None.
        data_format (str, optional): ``"channels_first"`` (the default: inputs (N, C, H, W)) or
            ``"channels_last"`` (inputs (N, H, W, C), transposed on the way in; image outputs are
            transposed back). When not given, a 3-D ``input_shape`` that looks channels-last (such as
            (28, 28, 1)) is refused with a message saying how to transpose.

    Raises:
        TypeError: a layer that is not a cpucnn layer, or input_shape not integers.
        ValueError: no layers; a layer already in a model or placed twice; a bad seed or data_format;
            or a layer that does not fit its input (the message names the layer and the shapes).

    Example:
        >>> import cpucnn as cc
        >>> L = cc.layers
        >>> model = cc.Sequential([L.Conv2D(8, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
        ...                        L.Dense(10)], input_shape=(1, 28, 28), seed=0)
        >>> model.output_shape
        (10,)
    """

    def __init__(self, layers: Sequence[layers_mod.Layer], input_shape: Sequence[int], seed: Optional[int] = None,
                 data_format: Optional[str] = None, _core_model: Any = None) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        seen: Dict[int, int] = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, layers_mod.Layer):
                raise TypeError(f"layer {i} must be a cpucnn layer, got {type(layer).__name__}")
            if id(layer) in seen:
                raise ValueError(f"layer {i} ({layer!r}) is the same object as layer {seen[id(layer)]}: a layer can "
                                 "be placed only once in a model; create a new one")
            seen[id(layer)] = i
            if layer._model is not None:
                raise ValueError(f"layer {i} ({layer!r}) already belongs to another model; create a new one")
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise TypeError(f"input_shape must be a tuple of integers, got {input_shape!r}") from None
        self._channels_last = _channels_last(data_format, shape)
        if self._channels_last:
            shape = (shape[2], shape[0], shape[1])
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be a non-negative 64-bit integer, got {seed!r}")
        if _core_model is None:
            try:
                _core_model = _core.Model(layers_mod._dumps(layers, shape), int(seed))
            except ValueError as e:
                if data_format is None and len(shape) == 3 and shape[2] <= 4 < shape[0]:
                    raise type(e)(f"{e} (if input_shape {shape} is (height, width, channels): "
                                  f"{_transpose_hint(shape)})") from None
                raise
        self._m = _core_model
        self.layers: List[layers_mod.Layer] = layers
        for i, layer in enumerate(layers):
            layer._model = self._m
            layer._index = i
        self.optimizer: Optional[optimizers_mod.Optimizer] = None
        self.loss: Optional[str] = None
        self.metrics: List[str] = []
        self.label_smoothing = 0.0
        self.stop_training = False
        self.history: Optional[callbacks_mod.History] = None

    # -- shapes --------------------------------------------------------------
    @property
    def input_shape(self) -> Tuple[int, ...]:
        """The shape of one input sample, in the model's ``data_format``: (C, H, W), (H, W, C) or (F,)."""
        return _shape_out(tuple(self._m.input_shape), self._channels_last)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """The shape of one output sample (image outputs in the model's ``data_format``)."""
        return _shape_out(tuple(self._m.output_shape), self._channels_last)

    @property
    def data_format(self) -> str:
        """``"channels_first"`` (inputs (N, C, H, W), the default) or ``"channels_last"`` (inputs (N, H, W, C),
        transposed to (N, C, H, W) on the way in; image outputs are transposed back)."""
        return "channels_last" if self._channels_last else "channels_first"

    @property
    def seed(self) -> int:
        """The seed the model was built with (drawn at random when none was given)."""
        return int(self._m.seed)

    # -- compile -------------------------------------------------------------
    def compile(self, optimizer: Any = "adam", loss: str = "cross_entropy",
                metrics: Optional[Iterable[str]] = None, label_smoothing: float = 0.0) -> None:
        """Chooses the optimizer, the loss and the metrics; needed before training or evaluation.

        Args:
            optimizer (Optimizer, str or dict, default "adam"): an optimizer (cpucnn.optimizers), a
                name (``"adam"``, ``"sgd"``) or a config dict. An optimizer instance is bound to this
                model (it cannot serve another one).
            loss (str, default "cross_entropy"): ``"cross_entropy"`` (integer labels (N,), or probability /
                one-hot targets (N, classes); the model outputs logits, log-softmax is applied by the loss)
                or ``"mse"`` (float targets).
            metrics (iterable of str, optional): ``"accuracy"`` (alias ``"acc"``) and ``"top5"``.
            label_smoothing (float, default 0.0): in [0, 1]; cross_entropy's target becomes
                ``(1 - e) * target + e / classes`` (torch.nn.CrossEntropyLoss's definition), in training
                and in evaluate's loss.

        Raises:
            ValueError: an unknown loss or metric, an optimizer bound to another model, or a model
                whose output is not flat (classes,).
            TypeError: a metric that is not a string, or an optimizer of the wrong kind.
        """
        opt = optimizers_mod.get(optimizer)
        if not isinstance(loss, str) or loss not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r} (expected one of {', '.join(_LOSSES)})")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
                or not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        if label_smoothing and loss != "cross_entropy":
            raise ValueError("label_smoothing applies to the cross_entropy loss only")
        names = []
        for m in metrics or []:
            if not isinstance(m, str):
                raise TypeError(f"metrics must be names, got {m!r}")
            m = _METRIC_ALIASES.get(m.lower(), m.lower())
            if m not in _METRICS:
                raise ValueError(f"unknown metric {m!r} (expected one of {', '.join(_METRICS)})")
            if m not in names:
                names.append(m)
        if opt._model is not None and opt._model is not self._m:
            raise ValueError("this optimizer is already bound to another model; create a new one")
        self._m.compile(loss, opt._json())
        self._m.label_smoothing = float(label_smoothing)
        self.label_smoothing = float(label_smoothing)
        opt._model = self._m
        self.optimizer, self.loss, self.metrics = opt, loss, names

    def _refuse_if_quantized(self, what: str) -> None:
        if any(getattr(layer, "_runs_in", "float32") != "float32" for layer in self.layers):
            raise ValueError(f"{what}: this model is quantized (int8) and inference-only; train the float32 model "
                             "and quantize it again (cpucnn.quantize)")

    def _require_compiled(self) -> None:
        if self.optimizer is None:
            raise ValueError("the model must be compiled before training or evaluation: call model.compile(...)")

    def _prepare(self, x: Any, y: Any) -> Tuple[np.ndarray, np.ndarray]:
        x = self._to_core_input(_as_input(x))
        n = x.shape[0]
        classes = self._m.output_shape[0]
        if self.loss == "mse":
            return x, _as_targets(y, n, classes)
        arr = y if isinstance(y, np.ndarray) else np.asarray(y)
        if arr.ndim == 2 and not (arr.shape[1] == 1 and classes != 1):
            return x, _as_probs(arr, n, classes)
        return x, _as_labels(arr, n, classes)

    def _weights(self, sample_weight: Any, class_weight: Any, y: np.ndarray) -> Optional[np.ndarray]:
        if class_weight is not None and self.loss != "cross_entropy":
            raise ValueError("class_weight needs the cross_entropy loss (labels or probability targets)")
        return _sample_weights(sample_weight, class_weight, y, y.shape[0], self.output_shape[0])

    def _check_x(self, x: np.ndarray) -> None:
        want = self.input_shape
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            first = self._m.layer_info(0)["label"]
            msg = f"{first}: expects input (N, {', '.join(map(str, want))}), got {tuple(x.shape)}"
            got = tuple(x.shape[1:])
            if len(want) == 3 and len(got) == 3 and want[0] != want[2]:
                if not self._channels_last and got == (want[1], want[2], want[0]):
                    msg += ("; x looks channels-last (N, H, W, C): transpose it with x.transpose(0, 3, 1, 2), "
                            "or build the model with data_format='channels_last'")
                elif self._channels_last and got == (want[2], want[0], want[1]):
                    msg += ("; x looks channels-first (N, C, H, W) but the model is channels_last: transpose it "
                            "with x.transpose(0, 2, 3, 1)")
            raise ValueError(msg)

    def _to_core_input(self, x: np.ndarray) -> np.ndarray:
        """x checked against input_shape, as the core's C-contiguous (N, C, H, W) float32."""
        self._check_x(x)
        if self._channels_last:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x

    # -- training and inference -----------------------------------------------
    def train_on_batch(self, x: Any, y: Any, sample_weight: Any = None, class_weight: Any = None) -> float:
        """One optimizer step on the batch (x, y); returns the batch's mean loss (float).

        Args:
            x: array-like (N, *input_shape).
            y: integer labels (N,) or probability targets (N, classes) for ``cross_entropy``, targets
                (N, outputs) for ``mse``.
            sample_weight, class_weight: as in ``fit``; the loss returned is weighted the same way.

        Raises:
            ValueError: not compiled, an empty batch, bad shapes, labels or NaN/Inf values.
        """
        self._refuse_if_quantized("train_on_batch")
        self._require_compiled()
        x, y = self._prepare(x, y)
        if x.shape[0] == 0:
            raise ValueError("train_on_batch needs at least one sample")
        loss, _ = self._m.train_step(x, y, self._weights(sample_weight, class_weight, y))
        return float(loss)

    def predict(self, x: Any, batch_size: int = 256,
                outputs: Optional[Sequence[Union[int, layers_mod.Layer]]] = None, steps: Optional[int] = None,
                distributed: bool = False) -> Any:
        """The model's output for ``x``, computed in batches of ``batch_size``.

        Args:
            x: array-like of shape (N, *input_shape) (channels-last when the model's ``data_format`` is).
            batch_size (int, default 256): samples per forward pass.
            outputs (sequence of int or Layer, optional): when given, the outputs of these layers (indices,
                negative ones counting from the end, or the layer objects) are returned as a list in the
                order asked, each the true output of that layer (a Conv2D followed by a ReLU gives its
                output before the ReLU), computed in one pass.
            steps (int, optional): when ``x`` is a ``cpucnn.data.Dataset`` or an iterable of batches
                (``x`` or ``(x, y)``; y is ignored), the batches to run (None: one pass).
            distributed (bool, default False): under MPI (``cpucnn.distributed``), each process runs its
                slice of x (every process passes the whole array) and process 0 gathers the outputs;
                the other processes get None. Arrays only, without ``outputs``.

        Returns:
            np.ndarray (N, *output_shape), or a list of arrays when ``outputs`` is given.

        Raises:
            ValueError: x of the wrong shape (the message names the first layer and both shapes), a
                non-positive batch_size, or an unknown layer in ``outputs``.
            TypeError: x not numeric.

        Example:
            >>> feats, probs = model.predict(x, outputs=[-3, -1])  # doctest: +SKIP
        """
        batch_size = _positive_int("batch_size", batch_size)
        if distributed:
            if outputs is not None or not _fit.looks_like_array(x):
                raise ValueError("predict(distributed=True) needs an array x and no outputs=")
            from . import distributed as dist_mod
            out = dist_mod.gather_predictions(self._m, self._to_core_input(_as_input(x)), batch_size)
            return None if out is None else _image_out(out, self._channels_last)
        if not _fit.looks_like_array(x):
            if outputs is not None:
                raise ValueError("predict(outputs=...) needs an array x, not a dataset or an iterable of batches")
            return self._predict_stream(_fit.Stream(x, steps, "x", one_pass=True), batch_size)
        x = self._to_core_input(_as_input(x))
        if outputs is None:
            return _image_out(self._m.predict(x, batch_size), self._channels_last)
        self._refuse_if_quantized("predict(outputs=...)")  # int8 layers' outputs are codes, not values
        return self._predict_outputs(x, 0, [self._layer_index(o) for o in _as_list(outputs, "outputs")],
                                     batch_size)

    def _predict_stream(self, stream: "_fit.Stream", batch_size: int) -> np.ndarray:
        outs = []
        it = stream.epoch(0)
        try:
            for xb, _ in it:
                xb = self._to_core_input(_as_input(xb))
                outs.append(_image_out(self._m.predict(xb, batch_size), self._channels_last))
        finally:
            it.close()
        if not outs:
            return np.zeros((0,) + tuple(self.output_shape), dtype=np.float32)
        return np.concatenate(outs)

    def _layer_index(self, o: Any) -> int:
        """A layer of this model as its index: an int (negative from the end) or the layer object."""
        if isinstance(o, layers_mod.Layer):
            for i, layer in enumerate(self.layers):
                if layer is o:
                    return i
            raise ValueError(f"{o!r} is not a layer of this model")
        if isinstance(o, bool) or not isinstance(o, numbers.Integral):
            raise TypeError(f"a layer must be given by its index or as the layer object, got {o!r}")
        n = len(self.layers)
        if not -n <= o < n:
            raise ValueError(f"layer index {o} is out of range for a model of {n} layers")
        return int(o) % n

    def _predict_outputs(self, x: np.ndarray, begin: int, indices: List[int], batch_size: int) -> List[np.ndarray]:
        if not indices:
            raise ValueError("outputs must name at least one layer")
        capture = sorted(set(indices))
        arrays = dict(zip(capture, self._m.predict_outputs(x, begin, capture, batch_size)))
        return [_image_out(arrays[i] if k == indices.index(i) else arrays[i].copy(), self._channels_last)
                for k, i in enumerate(indices)]

    def submodel(self, start: int = 0, stop: Optional[int] = None) -> "SubModel":
        """Layers ``start`` to ``stop`` (excluded, as a slice) as a model for inference that shares this
        model's weights: a weight change in one (training, set_weights) is seen by the other.

        Args:
            start (int, default 0): the first layer (negative counts from the end).
            stop (int, optional): one past the last layer (None: to the end).

        Returns:
            SubModel: ``predict``, ``input_shape``, ``output_shape``, ``layers``, ``get_weights``.

        Raises:
            ValueError: an empty or out-of-range slice.

        Example:
            >>> features = model.submodel(0, -1).predict(x)  # everything but the last layer  # doctest: +SKIP
        """
        self._refuse_if_quantized("submodel")  # its layers pass int8 codes, not values
        return SubModel(self, start, stop)

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 256, verbose: int = 0,
                 metrics: Optional[Iterable[str]] = None, sample_weight: Any = None,
                 class_weight: Any = None, steps: Optional[int] = None, distributed: bool = False) -> Dict[str, Any]:
        """Mean loss and metrics over (x, y).

        Args:
            x: array-like (N, *input_shape).
            y: integer labels (N,) for ``cross_entropy``; targets (N, outputs) for ``mse``.
            batch_size (int, default 256): samples per forward pass.
            verbose (int, default 0): 1 shows a progress bar (one step per batch) on stderr.
            metrics (iterable of str, optional): the metrics to report instead of the compiled ones:
                ``"accuracy"``, ``"top5"``, and for ``cross_entropy`` ``"confusion_matrix"`` (an int64
                array (classes, classes), rows the true class, columns the predicted one) and
                ``"per_class"`` (a dict of arrays over the classes: ``precision``, ``recall``, ``f1``,
                ``support``; a class never predicted or never present gets 0).
            sample_weight, class_weight: as in ``fit``: the loss is the weighted mean
                ``sum(w_i * loss_i) / N``; the metrics stay unweighted (arrays only).
            steps (int, optional): when ``x`` is a ``cpucnn.data.Dataset`` or an iterable of ``(x, y)``
                batches (y None), the batches to evaluate (None: one pass).
            distributed (bool, default False): under MPI (``cpucnn.distributed``), each process evaluates
                its slice of (x, y) (every process passes the whole arrays) and the results are summed
                over the processes; every process gets them. Arrays only.

        Returns:
            dict: ``"loss"`` and one entry per metric.

        Raises:
            ValueError: not compiled, bad shapes or labels, NaN/Inf in x, an unknown metric, or
                ``confusion_matrix``/``per_class`` with the ``mse`` loss.

        Example:
            >>> model.evaluate(x, y, metrics=["accuracy", "confusion_matrix"])["confusion_matrix"]  # doctest: +SKIP
        """
        self._require_compiled()
        batch_size = _positive_int("batch_size", batch_size)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        names = self.metrics if metrics is None else _metric_names(metrics, _METRICS + _EVAL_METRICS)
        if self.loss != "cross_entropy" and any(m in _EVAL_METRICS for m in names):
            raise ValueError(f"confusion_matrix and per_class need the cross_entropy loss, not {self.loss}")
        stream = _fit.as_stream(x, y, steps, "x", one_pass=True)
        if stream is not None and distributed:
            raise ValueError("evaluate(distributed=True) needs arrays (x, y), not a dataset or an iterable of batches")
        if stream is not None:
            if sample_weight is not None or class_weight is not None:
                raise ValueError("sample_weight and class_weight need arrays, not a dataset or an iterable of batches")
            if any(m in _EVAL_METRICS for m in names):
                raise ValueError("confusion_matrix and per_class need arrays, not a dataset or an iterable of batches")
            return self._evaluate_stream(stream, names)
        x, y = self._prepare(x, y)
        _require_finite(x, "x")
        out = self._evaluate_arrays(x, y, batch_size, self._weights(sample_weight, class_weight, y), names,
                                    bar=verbose == 1 and not distributed, distributed=distributed)
        if any(m in _EVAL_METRICS for m in names):
            classes = self._m.output_shape[0]
            lo, hi = 0, x.shape[0]
            if distributed:
                from . import distributed as dist_mod
                lo, hi = dist_mod._slice(x.shape[0])
            pred = np.argmax(self._m.predict(x[lo:hi], batch_size), axis=1) if hi > lo else np.zeros(0, np.int64)
            cm = np.zeros((classes, classes), np.int64)
            np.add.at(cm, ((y if y.ndim == 1 else np.argmax(y, axis=1))[lo:hi], pred), 1)
            if distributed:
                cm = dist_mod.confusion_sum(cm)
            if "confusion_matrix" in names:
                out["confusion_matrix"] = cm
            if "per_class" in names:
                out["per_class"] = _per_class(cm)
        return out

    def _evaluate_stream(self, stream: "_fit.Stream", metrics: Optional[Sequence[str]] = None) -> Dict[str, float]:
        """evaluate over a stream's batches (epoch 0 of a Dataset: the same batches every time)."""
        loss_sum, correct, top5, count = 0.0, 0, 0, 0
        it = stream.epoch(0)
        try:
            for xb, yb in it:
                if yb is None:
                    raise ValueError("evaluate needs (x, y) batches; a batch came without labels")
                xb, yb = self._prepare(xb, yb)
                if xb.shape[0] == 0:
                    continue
                _require_finite(xb, "x")
                ls, c, t5, n = self._m.evaluate(xb, yb, max(xb.shape[0], 1))
                loss_sum, correct, top5, count = loss_sum + ls, correct + c, top5 + t5, count + n
        finally:
            it.close()
        if count == 0:
            raise ValueError("evaluate needs at least one sample; the data yielded no batches")
        metrics = self.metrics if metrics is None else metrics
        out = {"loss": float(loss_sum / count)}
        if "accuracy" in metrics:
            out["accuracy"] = float(correct / count)
        if "top5" in metrics and self.loss == "cross_entropy":
            out["top5"] = float(top5 / count)
        return out

    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int, w: Optional[np.ndarray] = None,
                         metrics: Optional[Sequence[str]] = None, bar: bool = False,
                         distributed: bool = False) -> Dict[str, Any]:
        n = x.shape[0]
        if n == 0:
            raise ValueError("evaluate needs at least one sample")
        metrics = self.metrics if metrics is None else metrics
        if distributed:
            from . import distributed as dist_mod
            loss_sum, correct, top5, count = dist_mod.evaluate_sums(self._m, x, y, batch_size, w)
        elif bar:
            loss_sum, correct, top5, count = _evaluate_with_bar(self._m, x, y, batch_size, w)
        else:
            loss_sum, correct, top5, count = self._m.evaluate(x, y, batch_size, w)
        out: Dict[str, Any] = {"loss": float(loss_sum / count)}
        if "accuracy" in metrics:
            out["accuracy"] = float(correct / count)
        if "top5" in metrics and self.loss == "cross_entropy":
            out["top5"] = float(top5 / count)
        return out

    def fit(self, x: Any, y: Any = None, epochs: int = 1, batch_size: int = 32,
            validation_data: Any = None, validation_split: float = 0.0,
            shuffle: bool = True, callbacks: Optional[Sequence[callbacks_mod.Callback]] = None,
            verbose: int = 1, seed: Optional[int] = None, initial_epoch: int = 0, sample_weight: Any = None,
            class_weight: Any = None, steps_per_epoch: Optional[int] = None,
            validation_steps: Optional[int] = None, distributed: bool = False,
            sync_batchnorm: bool = False) -> callbacks_mod.History:
        """Trains for ``epochs`` epochs; returns a History (see cpucnn.callbacks).

        Args:
            x: array-like (N, *input_shape); or a ``cpucnn.data.Dataset`` or an iterable of ``(x, y)``
                batches (a generator, a list, a ``Sequence``-like object with ``__len__``/``__getitem__``,
                a PyTorch ``DataLoader``), with y None: then ``batch_size``, ``shuffle`` and ``seed`` do
                not apply (the data decides).
            y: integer labels (N,) or probability targets (N, classes) for ``cross_entropy``, float
                targets (N, outputs) for ``mse``.
            epochs (int, default 1): the epoch to stop at (counting ``initial_epoch``).
            batch_size (int, default 32): samples per training step; the last partial batch is trained.
            validation_data ((x_val, y_val), optional): evaluated at the end of each epoch
                (``val_loss``, ``val_<metric>`` in the logs).
            validation_split (float, default 0.0): instead, hold out this last fraction of (x, y)
                (before shuffling, as Keras does).
            shuffle (bool, default True): shuffle the samples each epoch; the order is drawn from
                (seed, epoch), so a run resumed with ``initial_epoch`` sees the same batches.
            callbacks (sequence of Callback, optional): see cpucnn.callbacks.
            verbose (int, default 1): 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
            seed (int, optional): the shuffling seed; random when None.
            initial_epoch (int, default 0): the epoch to start from (to resume a run).
            sample_weight (array-like (N,), optional): weighs each sample's loss; ``class_weight``
                ({label: weight}, missing labels weigh 1) each class's, as Keras: a batch's loss is
                ``sum(w_i * loss_i) / batch size``, w_i the product of both. ``validation_data`` may be
                ``(x_val, y_val, sample_weight_val)``. Arrays only.
            steps_per_epoch (int, optional): with a dataset or iterable, the batches of an epoch (None:
                one pass; a one-shot generator needs it and continues across epochs, as in Keras).
            validation_steps (int, optional): the batches of a ``validation_data`` given as a dataset or
                iterable (None: one pass).
            distributed (bool, default False): data-parallel training over MPI (``cpucnn.distributed``;
                launch with ``mpirun``): ``batch_size`` is per process, each process trains on its slice
                of every global batch of ``batch_size * size()`` samples, the gradients are averaged over
                the processes every step, the logs, validation and callbacks see values over every
                process, and only process 0 prints and runs ``main_rank_only`` callbacks (checkpoints).
                Arrays only.
            sync_batchnorm (bool, default False): with ``distributed``, BatchNorm2D uses the statistics
                of the global batch (summed over the processes in each forward and backward); by
                default each process normalises by its own batch's, and the running statistics are
                averaged over the processes at each epoch's end.

        Ctrl-C stops after the current batch and keeps the weights and the history of the completed
        epochs (``history.interrupted`` is then True); wherever it lands (a callback, validation,
        the progress bar), fit returns normally.

        Raises:
            ValueError: not compiled; bad shapes, labels, NaN/Inf in x, or bad settings (each named).
            TypeError: x or y not numeric, a callback that is not a Callback.

        Example:
            >>> model.compile(optimizer="adam", metrics=["accuracy"])  # doctest: +SKIP
            >>> history = model.fit(x, y, epochs=3, validation_split=0.1)  # doctest: +SKIP
        """
        self._refuse_if_quantized("fit")
        self._require_compiled()
        epochs, batch_size, initial_epoch, seed = _fit_settings(epochs, batch_size, initial_epoch, verbose, seed)
        if isinstance(callbacks, callbacks_mod.Callback):
            callbacks = [callbacks]
        if sync_batchnorm and not distributed:
            raise ValueError("sync_batchnorm=True needs distributed=True")
        source = _fit.as_stream(x, y, steps_per_epoch, "x", one_pass=False)
        if distributed and (source is not None or (validation_data is not None
                                                   and not isinstance(validation_data, (tuple, list)))):
            raise ValueError("fit(distributed=True) needs arrays (x, y) and array validation_data; a dataset or "
                             "an iterable of batches is not sharded across processes")
        val_source = None
        if validation_data is not None and not isinstance(validation_data, (tuple, list)):
            val_source = _fit.Stream(validation_data, validation_steps, "validation_data", one_pass=True)
            validation_data = None
        if source is not None:
            if sample_weight is not None or class_weight is not None:
                raise ValueError("sample_weight and class_weight need arrays, not a dataset or an iterable of batches")
            if validation_split:
                raise ValueError("validation_split needs arrays; with a dataset or generator pass validation_data")
            val = None
            if validation_data is not None:
                if len(validation_data) != 2:
                    raise ValueError("validation_data must be a pair (x_val, y_val)")
                val = self._prepare(*validation_data)
                _require_finite(val[0], "validation_data x")
            x = y = w = None
        else:
            x, y, val, w = self._fit_data(x, y, validation_data, validation_split, sample_weight, class_weight)
        dist = None
        if distributed:
            from . import distributed as dist_mod
            dist = dist_mod.DataParallel(self, sync_batchnorm=sync_batchnorm)
        loop = _fit.FitLoop(self, x, y, val, list(callbacks or []), epochs=epochs, initial_epoch=initial_epoch,
                            batch_size=batch_size, shuffle=shuffle, seed=seed, verbose=verbose, w=w,
                            source=source, val_source=val_source, dist=dist)
        return loop.run()

    def _fit_data(self, x: Any, y: Any, validation_data: Optional[Tuple[Any, ...]], validation_split: float,
                  sample_weight: Any = None, class_weight: Any = None) -> Tuple[np.ndarray, np.ndarray, Any, Any]:
        """The training arrays, the validation data (x, y[, w]) and the training weights (or None),
        checked and converted once (batches are gathered from these arrays)."""
        x, y = self._prepare(x, y)
        _require_finite(x, "x")   # before the split: validation_split's samples are named as in x
        w = self._weights(sample_weight, class_weight, y)
        val: Any = None
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a pair (x_val, y_val) or (x_val, y_val, sample_weight)")
            val = self._prepare(*validation_data[:2])
            _require_finite(val[0], "validation_data x")
            if val[0].shape[0] == 0:
                raise ValueError("validation_data holds no samples")
            if len(validation_data) == 3 and validation_data[2] is not None:
                val = val + (self._weights(validation_data[2], None, val[1]),)
        elif validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            cut = int(x.shape[0] * (1.0 - float(validation_split)))
            if cut <= 0 or cut >= x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no training or validation samples")
            val = (x[cut:], y[cut:]) if w is None else (x[cut:], y[cut:], w[cut:])
            x, y = x[:cut], y[:cut]
            w = None if w is None else w[:cut]
        if x.shape[0] == 0:
            raise ValueError("fit needs at least one training sample")
        return x, y, val, w

    # -- weights ---------------------------------------------------------------
    def get_weights(self) -> List[np.ndarray]:
        """Every layer's parameters (and BatchNorm running statistics) in order, as a list of float32
        arrays (copies) in PyTorch's layouts, read as one snapshot (a training step or set_weights in
        another thread is seen whole or not at all)."""
        return self._m.get_params([(layer._index, name) for layer in self.layers for name in layer.param_names])

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Writes every parameter as one update: predict/evaluate in other threads see the old weights or
        the new ones, never a mix.

        Args:
            weights (sequence of array-like): one array per parameter, in the order and shapes of
                ``get_weights()``; converted to float32.

        Raises:
            ValueError: the wrong number of arrays, or a wrong shape (naming the layer and parameter).
            TypeError: an array that is not numeric.
        """
        slots = [(layer, name) for layer in self.layers for name in layer.param_names]
        weights = list(weights)
        if len(weights) != len(slots):
            raise ValueError(f"set_weights needs {len(slots)} arrays, got {len(weights)}")
        items = []
        for (layer, name), w in zip(slots, weights):
            info = self._m.layer_info(layer._index)
            label = info["label"]
            try:
                arr = np.asarray(w)
            except (ValueError, TypeError) as e:  # ragged nested lists and the like
                raise TypeError(f"{label}: {name} must be a numeric array: {e}") from None
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{label}: {name} must be numeric, got dtype {arr.dtype}")
            want = next(tuple(shape) for pname, shape, _ in info["params"] if pname == name)
            if arr.shape != want:
                raise ValueError(f"{label}: {name} must have shape {want}, got {arr.shape}")
            items.append((layer._index, name, np.ascontiguousarray(arr, dtype=np.float32)))
        self._m.set_params(items)

    def count_params(self) -> int:
        """The number of trainable parameters (BatchNorm's running statistics not counted)."""
        return sum(self._m.layer_info(i)["trainable_count"] for i in range(len(self.layers)))

    # -- summary ---------------------------------------------------------------
    def summary(self, print_fn=print) -> str:
        """Prints (and returns) the layers, their output shapes, parameter counts and MACs per image.

        Args:
            print_fn (callable or None, default print): called with the text; None prints nothing.

        The totals split the parameters into trainable ones and those of frozen layers
        (``layer.trainable = False``); BatchNorm running statistics are buffers, not counted.
        """
        quantized = any(getattr(layer, "_runs_in", "float32") != "float32" for layer in self.layers)
        rows = [("Layer (type)", "Output shape", "Params", "MACs") + (("Runs in",) if quantized else ())]
        total_p = total_m = frozen_p = 0
        for i, layer in enumerate(self.layers):
            info = self._m.layer_info(i)
            count = info["trainable_count"]
            if quantized:  # int8 models: nothing trains; count every stored value
                count = sum(int(np.prod(shape)) for _, shape, _ in info["params"])
            total_p += count
            frozen_p += 0 if layer.trainable else count
            total_m += info["macs"]
            rows.append((f"{layer.name} ({info['type']})", str(tuple(info["output_shape"])),
                         f"{count:,}", f"{info['macs']:,}") +
                        ((getattr(layer, "_runs_in", "float32"),) if quantized else ()))
        cols = len(rows[0])
        widths = [max(len(r[c]) for r in rows) for c in range(cols)]
        line = "-" * (sum(widths) + 2 * (cols - 1))
        fmt = lambda r: (f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}" +
                         (f"  {r[4]:<{widths[4]}}" if cols > 4 else ""))
        out = [f"Sequential, input {self.input_shape}", line, fmt(rows[0]), line]
        out += [fmt(r) for r in rows[1:]]
        if quantized:
            out += [line, f"Total params: {total_p:,} (int8 model, inference only: "
                    f"{sum(1 for r in rows[1:] if r[4] == 'int8')} of {len(rows) - 1} layers run in int8)",
                    f"MACs per image: {total_m:,}"]
            text = "\n".join(out)
            if print_fn is not None:
                print_fn(text)
            return text
        out += [line, f"Total params: {total_p:,}", f"Trainable params: {total_p - frozen_p:,}",
                f"Non-trainable params: {frozen_p:,} (frozen layers; BatchNorm running statistics are buffers, "
                "not counted)" if frozen_p else "Non-trainable params: 0", f"MACs per image: {total_m:,}"]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    # -- files -----------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike], include_optimizer: bool = True) -> None:
        """Writes the model to one ``.cnn`` file (safetensors: the architecture, the weights and, with
        ``include_optimizer``, the optimizer's state), atomically (a crash leaves the old file or the
        new one).

        Args:
            path (str or os.PathLike): the file to write.
            include_optimizer (bool, default True): save the optimizer's settings and state, to resume
                training after ``cpucnn.load``.

        Raises:
            OSError: the file cannot be written.
        """
        meta = {"metrics": json.dumps(self.metrics)}
        if self.label_smoothing:
            meta["label_smoothing"] = repr(self.label_smoothing)
        if self._channels_last:
            meta["data_format"] = "channels_last"
        self._m.save(os.fspath(path), bool(include_optimizer), list(meta.items()))

    def export_onnx(self, path: Union[str, os.PathLike], opset: int = 17) -> None:
        """Writes an ONNX graph of the model (needs ``pip install cpucnn[onnx]``).

        Args:
            path (str or os.PathLike): the ``.onnx`` file to write.
            opset (int, default 17): the ONNX opset, at least 11.

        Raises:
            ImportError: onnx is not installed. ValueError: an unsupported opset, or a channels_last model.
        """
        from . import onnx_export

        if self._channels_last:
            raise ValueError("export_onnx writes channels-first (N, C, H, W) graphs; this model is channels_last")
        onnx_export.export(self, os.fspath(path), opset=opset)

    def to_torch(self) -> Any:
        """The equivalent ``torch.nn.Sequential`` with a copy of the weights, in eval mode (see
        `cpucnn.torch_interop.to_torch`; needs torch).

        Example:
            >>> net = model.to_torch()  # doctest: +SKIP
        """
        from . import torch_interop

        return torch_interop.to_torch(self)

    def __repr__(self) -> str:
        return f"Sequential({len(self.layers)} layers, input {self.input_shape} -> output {self.output_shape})"


_EVAL_METRICS = ("confusion_matrix", "per_class")


def _metric_names(metrics: Iterable[str], allowed: Sequence[str]) -> List[str]:
    names: List[str] = []
    if isinstance(metrics, str):
        metrics = [metrics]
    for m in metrics:
        if not isinstance(m, str):
            raise TypeError(f"metrics must be names, got {m!r}")
        m = _METRIC_ALIASES.get(m.lower(), m.lower())
        if m not in allowed:
            raise ValueError(f"unknown metric {m!r} (expected one of {', '.join(allowed)})")
        if m not in names:
            names.append(m)
    return names


def _per_class(cm: np.ndarray) -> Dict[str, np.ndarray]:
    """precision, recall, f1 and support per class from a confusion matrix (rows: true class)."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _evaluate_with_bar(core: Any, x: np.ndarray, y: np.ndarray, batch_size: int,
                       w: Optional[np.ndarray] = None) -> Tuple[float, int, int, int]:
    """core.evaluate one batch at a time with a tqdm bar; the sums are those of one call."""
    from tqdm.auto import tqdm
    import sys

    n = x.shape[0]
    loss_sum, correct, top5, count = 0.0, 0, 0, 0
    with tqdm(total=(n + batch_size - 1) // batch_size, desc="Evaluate", unit="step", file=sys.stderr,
              dynamic_ncols=True, mininterval=0.2) as bar:
        for s in range(0, n, batch_size):
            ws = None if w is None else w[s:s + batch_size]
            ls, c, t5, k = core.evaluate(x[s:s + batch_size], y[s:s + batch_size], batch_size, ws)
            loss_sum, correct, top5, count = loss_sum + ls, correct + c, top5 + t5, count + k
            bar.set_postfix({"loss": f"{loss_sum / count:.4f}"}, refresh=False)
            bar.update(1)
    return loss_sum, correct, top5, count


def _channels_last(data_format: Optional[str], shape: Tuple[int, ...]) -> bool:
    """Whether input_shape is (H, W, C); raises for a channels-last looking shape given no data_format."""
    if data_format not in (None, "channels_first", "channels_last"):
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
    if data_format == "channels_last":
        if len(shape) != 3:
            raise ValueError(f"data_format='channels_last' needs input_shape (height, width, channels), got {shape}")
        return True
    # (28, 28, 1), (32, 32, 3): as (C, H, W), images of width <= 4 with 8+ channels and rows, which
    # no one means; smaller shapes are refused only when they do not build (see _transpose_hint).
    if data_format is None and len(shape) == 3 and shape[2] <= 4 and shape[0] >= 8 and shape[1] >= 8:
        raise ValueError(f"input_shape {shape} looks channels-last (height, width, channels), but cpucnn is "
                         f"channels-first (channels, height, width): {_transpose_hint(shape)}; pass "
                         f"data_format='channels_first' if {shape} really is (channels, height, width)")
    return False


def _transpose_hint(shape: Tuple[int, ...]) -> str:
    h, w, c = shape
    return (f"pass input_shape=({c}, {h}, {w}) and transpose x with x.transpose(0, 3, 1, 2), or pass "
            f"data_format='channels_last' to keep (N, {h}, {w}, {c}) inputs")


def _shape_out(shape: Tuple[int, ...], channels_last: bool) -> Tuple[int, ...]:
    return (shape[1], shape[2], shape[0]) if channels_last and len(shape) == 3 else shape


def _image_out(arr: np.ndarray, channels_last: bool) -> np.ndarray:
    """A core output (N, C, H, W) as (N, H, W, C) for a channels-last model (other ranks unchanged)."""
    if channels_last and arr.ndim == 4:
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))
    return arr


def _as_list(v: Any, what: str) -> List[Any]:
    if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
        v = [v]
    return list(v)


class SubModel:
    """Consecutive layers of a `Sequential`, for inference, sharing its weights (made by
    `Sequential.submodel`). A weight change in the model is seen here and the other way round.

    Args:
        model (Sequential): the model.
        start (int, default 0): the first layer (negative counts from the end).
        stop (int, optional): one past the last layer (None: to the end).

    Raises:
        TypeError: start or stop not integers. ValueError: an empty slice.
    """

    def __init__(self, model: Sequential, start: int = 0, stop: Optional[int] = None) -> None:
        n = len(model.layers)
        for name, v in (("start", start), ("stop", stop)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
                raise TypeError(f"submodel {name} must be an integer, got {v!r}")
        begin, end, step = slice(start, stop).indices(n)
        if end <= begin:
            raise ValueError(f"submodel({start}, {stop}) selects no layers of a model of {n} layers")
        self.model = model
        self.start, self.stop = begin, end
        self.layers: List[layers_mod.Layer] = model.layers[begin:end]

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """The input shape of its first layer (in the model's ``data_format``)."""
        return _shape_out(tuple(self.model._m.layer_info(self.start)["input_shape"]), self.model._channels_last)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """The output shape of its last layer (in the model's ``data_format``)."""
        return _shape_out(tuple(self.model._m.layer_info(self.stop - 1)["output_shape"]), self.model._channels_last)

    def get_weights(self) -> List[np.ndarray]:
        """Its layers' parameters (copies), in order, as `Sequential.get_weights`."""
        return self.model._m.get_params([(layer._index, name) for layer in self.layers for name in layer.param_names])

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """The last layer's output for ``x`` of shape (N, *input_shape), in batches of ``batch_size``.

        Raises:
            ValueError: x of the wrong shape (naming the first layer), a non-positive batch_size.
        """
        batch_size = _positive_int("batch_size", batch_size)
        x = _as_input(x)
        want = self.input_shape
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            first = self.model._m.layer_info(self.start)["label"]
            raise ValueError(f"{first}: expects input (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        if self.model._channels_last and x.ndim == 4:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return self.model._predict_outputs(x, self.start, [self.stop - 1], batch_size)[0]

    def __repr__(self) -> str:
        return f"SubModel(layers {self.start}..{self.stop - 1}, input {self.input_shape} -> output {self.output_shape})"


def _tidy_floats(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The core keeps settings as float32 and reports them as doubles (0.2 -> 0.20000000298023224);
    show the shortest decimal of that float32 instead (0.2), as the user wrote it."""
    def tidy(v: Any) -> Any:
        if isinstance(v, float):
            return float(str(np.float32(v)))
        if isinstance(v, list):
            return [tidy(u) for u in v]
        return v

    return {k: tidy(v) for k, v in cfg.items()}


def load(path: Union[str, os.PathLike]) -> Sequential:
    """Loads a model saved by ``Sequential.save`` (compiled, with its optimizer state, when saved so).

    Args:
        path (str or os.PathLike): the ``.cnn`` file.

    Returns:
        Sequential

    Raises:
        OSError: the file cannot be read. ValueError: the file is not a valid cpucnn model file
            (the message says what is wrong).
    """
    core, meta = _core.Model.load(os.fspath(path))
    arch = json.loads(core.architecture())
    layers = [layers_mod.from_config(_tidy_floats(cfg)) for cfg in arch["layers"]]
    model = Sequential(layers, arch["input_shape"], seed=int(core.seed), data_format="channels_first",
                       _core_model=core)
    model._channels_last = meta.get("data_format") == "channels_last"
    if core.compiled:
        opt = optimizers_mod.get(_tidy_floats(json.loads(core.optimizer_config())))
        opt._model = core
        model.optimizer, model.loss = opt, core.loss
        try:
            saved = json.loads(meta.get("metrics", "[]"))
        except ValueError:
            saved = []
        # Caller metadata, not validated by the core: keep only the names we know.
        model.metrics = [m for m in saved if isinstance(m, str) and m in _METRICS] if isinstance(saved, list) else []
        try:
            smoothing = float(meta.get("label_smoothing", "0"))
        except ValueError:
            smoothing = 0.0
        if 0.0 < smoothing <= 1.0 and model.loss == "cross_entropy":
            core.label_smoothing = smoothing
            model.label_smoothing = smoothing
    return model
