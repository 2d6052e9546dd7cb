"""Callbacks for ``Sequential.fit`` (Keras-style), the History it returns,
and the progress display."""

from __future__ import annotations

__docformat__ = "google"

import inspect
import math
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
]

Logs = Dict[str, float]


class Callback:
    """Base class of the callbacks: override any of the hooks; they do nothing here.
    ``self.model`` is the model being trained (set by ``fit``); setting ``self.model.stop_training =
    True`` stops training after the current batch. In ``fit(distributed=True)`` every process runs the
    callbacks with the same logs (summed over the processes), except those whose ``main_rank_only``
    is True (``ModelCheckpoint``), which only process 0 runs.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         print(epoch, logs["loss"])
    """

    main_rank_only = False

    def __init__(self) -> None:
        self.model = None

    def set_model(self, model) -> None:
        """Called by ``fit`` with ``model`` (the Sequential being trained) before training starts."""
        self.model = model

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        """Called once when ``fit`` starts; ``logs`` (dict) is empty."""

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        """Called once when ``fit`` ends (also after an early stop or Ctrl-C); ``logs`` (dict) is empty."""

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        """Called at the start of ``epoch`` (int, from 0, counting ``initial_epoch``); ``logs`` is empty."""

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        """Called at the end of ``epoch`` (int) with ``logs`` (dict): the epoch's ``loss`` and metrics,
        ``val_loss`` and ``val_<metric>`` when there is validation data, and ``lr``."""

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Called after each training step with ``batch`` (int, its index in the epoch) and ``logs``
        (dict): the batch's ``loss`` and ``size``."""


class CallbackList:
    def __init__(self, callbacks: Sequence[Callback], model) -> None:
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be cpucnn.callbacks.Callback instances, got {type(cb).__name__}")
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)

    def on_train_begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin({})

    def on_train_end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end({})

    def on_epoch_begin(self, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)


class History(Callback):
    """What ``fit`` returns: ``history`` (dict) maps each logged quantity (loss, accuracy, val_loss,
    val_accuracy, lr) to its per-epoch values; ``epoch`` lists the epochs; ``interrupted`` is True when
    Ctrl-C stopped training."""

    def __init__(self) -> None:
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []
        self.interrupted = False

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def plot(self, path: Optional[Union[str, "os.PathLike[str]"]] = None):
        """Draws loss and accuracy curves (validation too, when logged) and returns the matplotlib figure.

        Args:
            path (str or os.PathLike, optional): where to write the figure (format from the
                extension), without touching pyplot's global state or backend, so it works headless;
                without it the figure is a pyplot one, for notebooks and ``plt.show()``.

        Raises:
            ImportError: matplotlib is not installed (``pip install cpucnn[plot]``).
        """
        try:
            from matplotlib.ticker import MaxNLocator

            if path is not None:
                from matplotlib.figure import Figure

                plt = None
            else:
                import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install cpucnn[plot]") from None
        has_acc = "accuracy" in self.history
        ncols = 2 if has_acc else 1
        size = (10 if has_acc else 5, 4)
        if plt is None:
            fig = Figure(figsize=size)
            axes = fig.subplots(1, ncols, squeeze=False)
        else:
            fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, key in zip(axes[0], ["loss", "accuracy"] if has_acc else ["loss"]):
            if key in self.history:
                ax.plot(epochs, self.history[key], marker="o", label=f"train {key}")
            if "val_" + key in self.history:
                ax.plot(epochs, self.history["val_" + key], marker="o", label=f"validation {key}")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(key)
            ax.grid(True, alpha=0.3)
            if ax.get_lines():   # nothing to label before the first epoch
                ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(os.fspath(path), dpi=100)
        return fig


def _better(mode: str, min_delta: float):
    if mode == "min":
        return lambda cur, best: cur < best - min_delta
    return lambda cur, best: cur > best + min_delta


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if ("acc" in monitor or "top5" in monitor) else "min"


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs in a row (as Keras: patience=3 and a flat loss run 4 epochs).

    Args:
        monitor (str, default "val_loss"): the logged quantity to watch.
        patience (int, default 0): epochs without improvement before stopping.
        min_delta (float, default 0.0): the least change that counts as an improvement.
        restore_best_weights (bool, default False): end with the weights of the best epoch, when
            training stops early and when it runs to the end (as Keras 3).
        mode (str, default "auto"): ``"min"``, ``"max"``, or ``"auto"`` (max for accuracies, min
            otherwise).

    Raises:
        ValueError: an unknown mode; in fit, a monitor that is not logged.

    Example:
        >>> model.fit(x, y, validation_split=0.1, callbacks=[EarlyStopping(patience=3)])  # doctest: +SKIP
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 restore_best_weights: bool = False, mode: str = "auto") -> None:
        super().__init__()
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        self.restore_best_weights = bool(restore_best_weights)
        self.mode = _mode_for(monitor, mode)
        self._better = _better(self.mode, self.min_delta)
        self.stopped_epoch: Optional[int] = None

    def on_train_begin(self, logs=None) -> None:
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch: Optional[int] = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which is not logged "
                             f"(available: {', '.join(sorted(logs))})")
        cur = logs[self.monitor]
        if self._better(cur, self.best):
            self.best, self.wait, self.best_epoch = cur, 0, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        # Also after an interruption: the caller asked for the best epoch's weights.
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves the model at the end of each epoch (or only when ``monitor`` improves).

    Args:
        path (str or os.PathLike): the file; it may hold ``{epoch}`` (from 1) and log keys, e.g.
            ``"ckpt-{epoch:02d}-{val_loss:.3f}.cnn"``.
        monitor (str, default "val_loss"): the logged quantity ``save_best_only`` watches.
        save_best_only (bool, default False): save only when ``monitor`` improves.
        mode (str, default "auto"): ``"min"``, ``"max"``, or ``"auto"`` (max for accuracies).
        include_optimizer (bool, default True): save the optimizer's state too (to resume training).

    Raises:
        ValueError: an unknown mode; in fit, a monitor that is not logged.

    In ``fit(distributed=True)`` only process 0 saves (``main_rank_only``).
    """

    main_rank_only = True

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto",
                 include_optimizer: bool = True) -> None:
        super().__init__()
        self.path, self.monitor, self.save_best_only = os.fspath(path), monitor, bool(save_best_only)
        self.mode = _mode_for(monitor, mode)
        self._better = _better(self.mode, 0.0)
        self.include_optimizer = include_optimizer
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: List[str] = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise ValueError(f"ModelCheckpoint monitors {self.monitor!r}, which is not logged "
                                 f"(available: {', '.join(sorted(logs))})")
            if not self._better(logs[self.monitor], self.best):
                return
            self.best = logs[self.monitor]
        path = self.path.format(epoch=epoch + 1, **logs)
        self.model.save(path, include_optimizer=self.include_optimizer)
        self.saved.append(path)


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch's start to ``schedule(epoch, lr)`` (or ``schedule(epoch)``).

    Args:
        schedule (callable): (epoch: int, lr: float) -> float, or (epoch: int) -> float.

    Raises:
        TypeError: schedule is not callable. ValueError: it returns a negative or non-finite rate.

    Example:
        >>> LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch >= 5 else lr)  # doctest: +SKIP
    """

    def __init__(self, schedule: Callable[..., float]) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler needs a callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self._two_args = _accepts_two_args(schedule)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        lr = self.model.optimizer.lr
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        self.model.optimizer.lr = float(new)


def _accepts_two_args(fn: Callable[..., Any]) -> bool:
    """Whether fn can be called as fn(epoch, lr). Decided once from the
    signature, so a TypeError raised inside the schedule is not mistaken for
    a one-argument schedule."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: try the Keras form
        return True
    try:
        sig.bind(0, 0.0)
        return True
    except TypeError:
        return False


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not improved for ``patience``
    epochs.

    Args:
        monitor (str, default "val_loss"): the logged quantity to watch.
        factor (float, default 0.1): the multiplier, in (0, 1).
        patience (int, default 10): epochs without improvement before a cut.
        min_delta (float, default 1e-4): the least change that counts as an improvement.
        cooldown (int, default 0): epochs to wait after a cut before counting again.
        min_lr (float, default 0.0): the rate never goes below it.
        mode (str, default "auto"): ``"min"``, ``"max"``, or ``"auto"`` (max for accuracies).

    Raises:
        ValueError: factor outside (0, 1), an unknown mode; in fit, a monitor that is not logged.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, mode: str = "auto") -> None:
        super().__init__()
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.min_delta, self.cooldown, self.min_lr = abs(float(min_delta)), int(cooldown), float(min_lr)
        self.mode = _mode_for(monitor, mode)
        self._better = _better(self.mode, self.min_delta)

    def on_train_begin(self, logs=None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_left = 0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"ReduceLROnPlateau monitors {self.monitor!r}, which is not logged "
                             f"(available: {', '.join(sorted(logs))})")
        cur = logs[self.monitor]
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self._better(cur, self.best):
            self.best, self.wait = cur, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                opt = self.model.optimizer
                new = max(opt.lr * self.factor, self.min_lr)
                if new < opt.lr:
                    opt.lr = new
                self.cooldown_left, self.wait = self.cooldown, 0


# -- progress display ---------------------------------------------------------

def _fmt(logs: Dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in logs.items())


def _epoch_line(epoch: int, epochs: int, logs: Dict[str, float], seconds: float, samples: int) -> str:
    return (f"Epoch {epoch + 1}/{epochs} - {seconds:.1f}s - {samples / max(seconds, 1e-9):,.0f} img/s - "
            + _fmt(logs))


class _Bar:
    """A tqdm bar per epoch: steps, ETA, running loss/metrics, images/s."""

    def __init__(self, steps: int, epoch: int, epochs: int) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="step", file=sys.stderr,
                         dynamic_ncols=True, leave=True, mininterval=0.2)

    def update(self, logs: Dict[str, float], images_per_s: float) -> None:
        shown = {k: f"{v:.4f}" for k, v in logs.items()}
        shown["img/s"] = f"{images_per_s:,.0f}"
        self._bar.set_postfix(shown, refresh=False)
        self._bar.update(1)

    def finish(self, logs: Dict[str, float], images_per_s: float) -> None:
        """Shows the epoch's final logs (validation included) and closes the bar."""
        shown = {k: (f"{v:.4g}" if k == "lr" else f"{v:.4f}") for k, v in logs.items()}
        shown["img/s"] = f"{images_per_s:,.0f}"
        self._bar.set_postfix(shown, refresh=False)
        self._bar.close()

    def close(self) -> None:
        self._bar.close()


def _progress(verbose: int, steps: int, epoch: int, epochs: int) -> Optional[_Bar]:
    if verbose != 1:
        return None
    try:
        return _Bar(steps, epoch, epochs)
    except ImportError:  # tqdm is a dependency, but be robust: fall back to epoch lines
        return None
