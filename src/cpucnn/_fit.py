"""The loop behind ``Sequential.fit``: epochs of batches, their logs, the
callbacks and Ctrl-C. model.py checks the arguments and prepares the arrays;
the steps themselves run in C++."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np

from . import callbacks as callbacks_mod
from .callbacks import Logs


class CtrlC:
    """Turns a Ctrl-C during training into a request to stop.

    Python raises KeyboardInterrupt wherever the main thread is when SIGINT
    arrives: in a callback, in the progress bar, in the epoch's bookkeeping,
    in the handler of an earlier one. No try/except covers every such point,
    so while training runs SIGINT only calls ``request`` and the loop stops at
    its next check; a callback interrupted this way runs to its end.
    ``hook`` also turns a KeyboardInterrupt a callback raises into a request.

    Installed only in the main thread (the one signals reach) over Python's
    default handler. Under a handler of the caller's, the KeyboardInterrupt it
    raises is caught by ``hook`` and by the loop as well as they can.
    """

    def __init__(self, on_request: Callable[[], None]) -> None:
        self.requested = False
        self._on_request = on_request
        self._handler: Optional[Callable[[int, Any], None]] = None

    def request(self) -> None:
        self.requested = True
        self._on_request()

    def install(self) -> None:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._handler = lambda signum, frame: self.request()
            signal.signal(signal.SIGINT, self._handler)

    def uninstall(self) -> None:
        """Puts Python's handler back (unless a callback installed its own meanwhile). The last
        thing fit runs: a Ctrl-C from then on is the caller's."""
        handler, self._handler = self._handler, None
        if handler is not None and signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def hook(self, fn: Callable[..., None], *args: Any) -> bool:
        """Calls a callback hook; True when it ran to its end, False when it raised
        KeyboardInterrupt (which requests the stop)."""
        try:
            fn(*args)
        except KeyboardInterrupt:
            self.request()
            return False
        return True


class RunningLogs:
    """An epoch's mean loss (and accuracy) so far, weighted by batch size."""

    def __init__(self, accuracy: bool) -> None:
        self.accuracy = accuracy
        self.loss_sum, self.hits, self.seen = 0.0, 0, 0

    def add(self, loss: float, correct: int, size: int) -> None:
        self.loss_sum += loss * size
        self.hits += correct
        self.seen += size

    def logs(self) -> Logs:
        out = {"loss": self.loss_sum / self.seen}
        if self.accuracy:
            out["accuracy"] = self.hits / self.seen
        return out


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, order: Optional[np.ndarray],
            w: Optional[np.ndarray] = None) -> Iterator[Tuple[int, np.ndarray, np.ndarray, Optional[np.ndarray]]]:
    """(index, x batch, y batch, sample weights or None) over the samples in ``order`` (None: as
    stored); the last batch may be partial."""
    n = x.shape[0]
    for b, lo in enumerate(range(0, n, batch_size)):
        hi = min(lo + batch_size, n)
        if order is None:
            yield b, x[lo:hi], y[lo:hi], None if w is None else w[lo:hi]   # contiguous views, no copy
        else:
            idx = order[lo:hi]
            yield b, x[idx], y[idx], None if w is None else w[idx]         # one gather per batch, in numpy


class FitLoop:
    """One call of ``Sequential.fit`` over arrays it has checked and converted.

    Training stops after the current batch when a callback sets
    ``model.stop_training`` (the epoch still ends: validation, on_epoch_end)
    and at the next check after a Ctrl-C (the epoch in progress is left out of
    the history). An epoch is in the history once its on_epoch_end hooks have
    all run.
    """

    def __init__(self, model: Any, x: np.ndarray, y: np.ndarray, val: Optional[Tuple[np.ndarray, ...]],
                 callbacks: List[callbacks_mod.Callback], *, epochs: int, initial_epoch: int, batch_size: int,
                 shuffle: bool, seed: int, verbose: int, w: Optional[np.ndarray] = None) -> None:
        self.model, self.x, self.y, self.val, self.w = model, x, y, val, w
        self.epochs, self.initial_epoch, self.batch_size = epochs, initial_epoch, batch_size
        self.shuffle, self.seed, self.verbose = shuffle, seed, verbose
        self.steps = (x.shape[0] + batch_size - 1) // batch_size
        self.cbs = callbacks_mod.CallbackList(callbacks, model=model)
        self.history = callbacks_mod.History()   # called by the loop itself, never cut short
        self.history.set_model(model)
        self.ctrl_c = CtrlC(on_request=self._interrupted)
        self.epoch: Optional[int] = None         # the epoch in progress or last run
        self.epoch_done = False                  # ... and whether it is in the history
        self.running = RunningLogs(False)

    def run(self) -> callbacks_mod.History:
        self.model.history = self.history
        self.model.stop_training = False
        self.ctrl_c.install()
        try:
            try:
                self._train()
            except KeyboardInterrupt:   # outside a hook: only where CtrlC could not be installed
                self.ctrl_c.request()
            finally:
                self._end()
            return self.history
        finally:
            self.ctrl_c.uninstall()

    def _train(self) -> None:
        model, ctrl_c = self.model, self.ctrl_c
        self._hooks("on_train_begin")
        for epoch in range(self.initial_epoch, self.epochs):
            if ctrl_c.requested:
                break
            self._epoch(epoch)
            if model.stop_training or ctrl_c.requested:
                break

    def _interrupted(self) -> None:
        self.history.interrupted = True
        self.model.stop_training = True

    def _hooks(self, name: str, *args: Any) -> bool:
        return self.ctrl_c.hook(getattr(self.cbs, name), *args)

    def _epoch(self, epoch: int) -> None:
        self.epoch, self.epoch_done = epoch, False
        self.running = RunningLogs("accuracy" in self.model.metrics)
        self._hooks("on_epoch_begin", epoch)
        if self.ctrl_c.requested:
            return
        bar = callbacks_mod._progress(self.verbose, self.steps, epoch, self.epochs)
        line = self.verbose == 2 or (self.verbose == 1 and bar is None)   # no tqdm: epoch lines
        try:
            elapsed = self._train_batches(epoch, bar)
            if self.ctrl_c.requested:
                return
            logs = self._epoch_logs()
            if self.ctrl_c.requested:
                return
            if bar is not None:
                bar.finish(logs, self.running.seen / max(elapsed, 1e-9))   # final numbers, validation included
                bar = None
            if self._hooks("on_epoch_end", epoch, logs):
                self.history.on_epoch_end(epoch, logs)
                self.epoch_done = True
                if line:
                    print(callbacks_mod._epoch_line(epoch, self.epochs, logs, elapsed, self.running.seen))
        finally:
            if bar is not None:
                bar.close()

    def _train_batches(self, epoch: int, bar: Optional[callbacks_mod._Bar]) -> float:
        """Trains the epoch's batches, or those up to a stop; returns the seconds taken."""
        model, running = self.model, self.running
        order = np.random.default_rng([int(self.seed), epoch]).permutation(self.x.shape[0]) if self.shuffle else None
        t0 = time.perf_counter()
        for b, xb, yb, wb in batches(self.x, self.y, self.batch_size, order, self.w):
            loss, correct = model._m.train_step(xb, yb) if wb is None else model._m.train_step(xb, yb, wb)
            running.add(loss, correct, xb.shape[0])
            if bar is not None:
                bar.update(running.logs(), running.seen / max(time.perf_counter() - t0, 1e-9))
            self._hooks("on_batch_end", b, {"loss": float(loss), "size": xb.shape[0]})
            if model.stop_training or self.ctrl_c.requested:
                break
        return time.perf_counter() - t0

    def _epoch_logs(self) -> Logs:
        """The epoch's training logs, validation (with the epoch's final weights) and lr."""
        logs = self.running.logs()
        if self.val is not None:
            for k, v in self.model._evaluate_arrays(*self.val[:2], 256, *self.val[2:]).items():
                logs["val_" + k] = v
        logs["lr"] = float(self.model.optimizer.lr)
        return logs

    def _end(self) -> None:
        """on_train_end for every callback, even after one is interrupted."""
        for cb in self.cbs.callbacks:
            self.ctrl_c.hook(cb.on_train_end, {})
        if self.ctrl_c.requested and self.verbose:
            print(f"Interrupted {self._where()}; weights and history kept.")

    def _where(self) -> str:
        if self.epoch is None:
            return f"before epoch {self.initial_epoch + 1}"
        if self.epoch_done:
            return f"after epoch {self.epoch + 1}"
        return f"in epoch {self.epoch + 1} after {self.running.seen} samples"
