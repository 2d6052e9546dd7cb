"""The Sequential model: a thin Python view of the C++ model that owns all
state. Training steps, inference and file I/O run in C++ with the GIL
released; Python does argument checking, the epoch loop, callbacks and
progress display."""

from __future__ import annotations

import json
import numbers
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, _fit
from . import callbacks as callbacks_mod
from . import layers as layers_mod
from . import optimizers as optimizers_mod

__all__ = ["Sequential", "load"]

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
    """A stack of layers, built at construction from ``input_shape`` (C, H, W).

    ``seed`` fixes the initial weights and dropout masks (random when None).
    """

    def __init__(self, layers: Sequence[layers_mod.Layer], input_shape: Sequence[int], seed: Optional[int] = None,
                 _core_model: Any = None) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, layers_mod.Layer):
                raise TypeError(f"layer {i} must be a cpucnn layer, got {type(layer).__name__}")
            if layer._model is not None:
                raise ValueError(f"layer {i} ({layer!r}) already belongs to another model; create a new one")
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise TypeError(f"input_shape must be a tuple of integers, got {input_shape!r}") from None
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be a non-negative 64-bit integer, got {seed!r}")
        if _core_model is None:
            _core_model = _core.Model(layers_mod._dumps(layers, shape), int(seed))
        self._m = _core_model
        self.layers: List[layers_mod.Layer] = layers
        for i, layer in enumerate(layers):
            layer._model = self._m
            layer._index = i
        self.optimizer: Optional[optimizers_mod.Optimizer] = None
        self.loss: Optional[str] = None
        self.metrics: List[str] = []
        self.stop_training = False
        self.history: Optional[callbacks_mod.History] = None

    # -- shapes --------------------------------------------------------------
    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self._m.input_shape)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        return tuple(self._m.output_shape)

    @property
    def seed(self) -> int:
        return int(self._m.seed)

    # -- compile -------------------------------------------------------------
    def compile(self, optimizer: Any = "adam", loss: str = "cross_entropy",
                metrics: Optional[Iterable[str]] = None) -> None:
        """Chooses the optimizer, the loss ("cross_entropy" or "mse") and metrics ("accuracy", "top5")."""
        opt = optimizers_mod.get(optimizer)
        if not isinstance(loss, str) or loss not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r} (expected one of {', '.join(_LOSSES)})")
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
        opt._model = self._m
        self.optimizer, self.loss, self.metrics = opt, loss, names

    def _require_compiled(self) -> None:
        if self.optimizer is None:
            raise ValueError("the model must be compiled before training or evaluation: call model.compile(...)")

    def _prepare(self, x: Any, y: Any) -> Tuple[np.ndarray, np.ndarray]:
        x = _as_input(x)
        self._check_x(x)
        n = x.shape[0]
        classes = self.output_shape[0]
        if self.loss == "mse":
            return x, _as_targets(y, n, classes)
        return x, _as_labels(y, n, classes)

    def _check_x(self, x: np.ndarray) -> None:
        want = self.input_shape
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            first = self._m.layer_info(0)["label"]
            raise ValueError(f"{first}: expects input (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")

    # -- training and inference -----------------------------------------------
    def train_on_batch(self, x: Any, y: Any) -> float:
        """One optimizer step on (x, y); returns the batch's mean loss."""
        self._require_compiled()
        x, y = self._prepare(x, y)
        if x.shape[0] == 0:
            raise ValueError("train_on_batch needs at least one sample")
        loss, _ = self._m.train_step(x, y)
        return float(loss)

    def predict(self, x: Any, batch_size: int = 256, steps: Optional[int] = None) -> np.ndarray:
        """The last layer's output for x (N, C, H, W), computed in batches. ``x`` may also be a
        ``cpucnn.data.Dataset`` or an iterable of batches (``x`` or ``(x, y)``; y is ignored),
        ``steps`` batches of it (None: one pass)."""
        batch_size = _positive_int("batch_size", batch_size)
        if not _fit.looks_like_array(x):
            stream = _fit.Stream(x, steps, "x", one_pass=True)
            outs = []
            it = stream.epoch(0)
            try:
                for xb, _ in it:
                    xb = _as_input(xb)
                    self._check_x(xb)
                    outs.append(self._m.predict(xb, batch_size))
            finally:
                it.close()
            if not outs:
                return np.zeros((0,) + self.output_shape, dtype=np.float32)
            return np.concatenate(outs)
        x = _as_input(x)
        self._check_x(x)
        return self._m.predict(x, batch_size)

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 256, verbose: int = 0,
                 steps: Optional[int] = None) -> Dict[str, float]:
        """Mean loss and the compiled metrics over (x, y). ``x`` may also be a
        ``cpucnn.data.Dataset`` or an iterable of ``(x, y)`` batches (y None), ``steps`` batches
        of it (None: one pass)."""
        self._require_compiled()
        batch_size = _positive_int("batch_size", batch_size)
        stream = _fit.as_stream(x, y, steps, "x", one_pass=True)
        if stream is not None:
            return self._evaluate_stream(stream)
        x, y = self._prepare(x, y)
        _require_finite(x, "x")
        return self._evaluate_arrays(x, y, batch_size)

    def _evaluate_stream(self, stream: "_fit.Stream") -> Dict[str, float]:
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
        out = {"loss": float(loss_sum / count)}
        if "accuracy" in self.metrics:
            out["accuracy"] = float(correct / count)
        if "top5" in self.metrics and self.loss == "cross_entropy":
            out["top5"] = float(top5 / count)
        return out

    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> Dict[str, float]:
        n = x.shape[0]
        if n == 0:
            raise ValueError("evaluate needs at least one sample")
        loss_sum, correct, top5, count = self._m.evaluate(x, y, batch_size)
        out = {"loss": float(loss_sum / count)}
        if "accuracy" in self.metrics:
            out["accuracy"] = float(correct / count)
        if "top5" in self.metrics and self.loss == "cross_entropy":
            out["top5"] = float(top5 / count)
        return out

    def fit(self, x: Any, y: Any = None, epochs: int = 1, batch_size: int = 32,
            validation_data: Any = None, validation_split: float = 0.0,
            shuffle: bool = True, callbacks: Optional[Sequence[callbacks_mod.Callback]] = None,
            verbose: int = 1, seed: Optional[int] = None, initial_epoch: int = 0,
            steps_per_epoch: Optional[int] = None, validation_steps: Optional[int] = None) -> callbacks_mod.History:
        """Trains for ``epochs`` epochs; returns a History (see cpucnn.callbacks).

        ``validation_split`` holds out the last fraction of (x, y) before
        shuffling, as Keras does. Shuffling is drawn from (seed, epoch), so a
        run resumed with ``initial_epoch`` sees the same batches. The last
        partial batch is trained. Ctrl-C stops after the current batch and
        keeps the weights and the history of the completed epochs
        (``history.interrupted`` is then True); wherever it lands (a callback,
        validation, the progress bar), fit returns normally.

        ``x`` may also be a ``cpucnn.data.Dataset`` or an iterable of ``(x, y)`` batches (a
        generator, a list, a ``Sequence``-like object with ``__len__``/``__getitem__``, a
        PyTorch ``DataLoader``), with y None; then ``batch_size``, ``shuffle`` and ``seed`` do
        not apply (the data decides) and ``steps_per_epoch`` batches make an epoch (None: one
        pass; a one-shot generator needs it and continues across epochs, as in Keras).
        ``validation_data`` may be such a source too (``validation_steps`` batches of it).
        """
        self._require_compiled()
        epochs, batch_size, initial_epoch, seed = _fit_settings(epochs, batch_size, initial_epoch, verbose, seed)
        if isinstance(callbacks, callbacks_mod.Callback):
            callbacks = [callbacks]
        source = _fit.as_stream(x, y, steps_per_epoch, "x", one_pass=False)
        val_source = None
        if validation_data is not None and not isinstance(validation_data, (tuple, list)):
            val_source = _fit.Stream(validation_data, validation_steps, "validation_data", one_pass=True)
            validation_data = None
        if source is not None:
            if validation_split:
                raise ValueError("validation_split needs arrays; with a dataset or generator pass validation_data")
            val = None
            if validation_data is not None:
                if len(validation_data) != 2:
                    raise ValueError("validation_data must be a pair (x_val, y_val)")
                val = self._prepare(*validation_data)
                _require_finite(val[0], "validation_data x")
            x = y = None
        else:
            x, y, val = self._fit_data(x, y, validation_data, validation_split)
        loop = _fit.FitLoop(self, x, y, val, list(callbacks or []), epochs=epochs, initial_epoch=initial_epoch,
                            batch_size=batch_size, shuffle=shuffle, seed=seed, verbose=verbose,
                            source=source, val_source=val_source)
        return loop.run()

    def _fit_data(self, x: Any, y: Any, validation_data: Optional[Tuple[Any, Any]],
                  validation_split: float) -> Tuple[np.ndarray, np.ndarray, Optional[Tuple[np.ndarray, np.ndarray]]]:
        """The training arrays and the validation pair, checked and converted once (batches are
        gathered from these arrays)."""
        x, y = self._prepare(x, y)
        _require_finite(x, "x")   # before the split: validation_split's samples are named as in x
        val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            val = self._prepare(*validation_data)
            _require_finite(val[0], "validation_data x")
            if val[0].shape[0] == 0:
                raise ValueError("validation_data holds no samples")
        elif validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            cut = int(x.shape[0] * (1.0 - float(validation_split)))
            if cut <= 0 or cut >= x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no training or validation samples")
            val = (x[cut:], y[cut:])
            x, y = x[:cut], y[:cut]
        if x.shape[0] == 0:
            raise ValueError("fit needs at least one training sample")
        return x, y, val

    # -- weights ---------------------------------------------------------------
    def get_weights(self) -> List[np.ndarray]:
        """Every layer's parameters (and BatchNorm running statistics) in order, read as one snapshot
        (a training step or set_weights in another thread is seen whole or not at all)."""
        return self._m.get_params([(layer._index, name) for layer in self.layers for name in layer.param_names])

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Writes every parameter (the order of get_weights) as one update: predict/evaluate in other
        threads see the old weights or the new ones, never a mix."""
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
        return sum(self._m.layer_info(i)["trainable_count"] for i in range(len(self.layers)))

    # -- summary ---------------------------------------------------------------
    def summary(self, print_fn=print) -> str:
        """Prints (and returns) layers, output shapes, parameter counts and MACs per image."""
        rows = [("Layer (type)", "Output shape", "Params", "MACs")]
        total_p = total_m = 0
        for i, layer in enumerate(self.layers):
            info = self._m.layer_info(i)
            total_p += info["trainable_count"]
            total_m += info["macs"]
            rows.append((f"{layer.name} ({info['type']})", str(tuple(info["output_shape"])),
                         f"{info['trainable_count']:,}", f"{info['macs']:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}"
        out = [f"Sequential, input {self.input_shape}", line, fmt(rows[0]), line]
        out += [fmt(r) for r in rows[1:]]
        out += [line, f"Total params: {total_p:,}", f"MACs per image: {total_m:,}"]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    # -- files -----------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike], include_optimizer: bool = True) -> None:
        """Writes one .cnn file (safetensors) atomically; see DESIGN.md."""
        meta = {"metrics": json.dumps(self.metrics)}
        self._m.save(os.fspath(path), bool(include_optimizer), list(meta.items()))

    def export_onnx(self, path: Union[str, os.PathLike], opset: int = 17) -> None:
        """Writes an ONNX graph of the model (needs ``pip install cpucnn[onnx]``)."""
        from . import onnx_export

        onnx_export.export(self, os.fspath(path), opset=opset)

    def __repr__(self) -> str:
        return f"Sequential({len(self.layers)} layers, input {self.input_shape} -> output {self.output_shape})"


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
    """Loads a model saved by ``Sequential.save`` (with its optimizer state when saved)."""
    core, meta = _core.Model.load(os.fspath(path))
    arch = json.loads(core.architecture())
    layers = [layers_mod.from_config(_tidy_floats(cfg)) for cfg in arch["layers"]]
    model = Sequential(layers, arch["input_shape"], seed=int(core.seed), _core_model=core)
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
    return model
