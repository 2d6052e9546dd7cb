"""The loop behind ``Sequential.fit``: epochs of batches, their logs, the
callbacks and Ctrl-C. model.py checks the arguments and prepares the arrays;
the steps themselves run in C++."""

from __future__ import annotations

import collections.abc
import numbers
import signal
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

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

    def __init__(self, on_request: Callable[[], None], enabled: bool = True) -> None:
        self.requested = False
        self._on_request = on_request
        self._handler: Optional[Callable[[int, Any], None]] = None
        # Off in data-parallel training: a Ctrl-C seen by one process only would make the processes
        # take different paths (and wait for each other forever); it raises KeyboardInterrupt, which
        # cpucnn.distributed.init()'s hook turns into MPI_Abort of the whole job.
        self.enabled = enabled

    def request(self) -> None:
        self.requested = True
        self._on_request()

    def install(self) -> None:
        if (self.enabled and threading.current_thread() is threading.main_thread()
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
            if not self.enabled:
                raise
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


class Stream:
    """Batches for fit/evaluate/predict from a ``cpucnn.data.Dataset`` or a Python iterable of
    ``(x, y)`` batches (a generator, a list, a Keras ``Sequence``-like object with ``__len__`` and
    ``__getitem__``, a PyTorch ``DataLoader``), ``steps`` batches per epoch (None: one pass).

    Re-iterable sources start over every epoch; a one-shot iterator (a generator) continues
    where the last epoch stopped, as in Keras, and needs ``steps`` when more than one pass
    is asked for (``one_pass=False``).
    """

    def __init__(self, data: Any, steps: Optional[int], what: str, one_pass: bool) -> None:
        from . import data as data_mod

        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps <= 0):
            raise ValueError(f"steps must be a positive integer or None, got {steps!r}")
        self.data, self.steps, self.what = data, (None if steps is None else int(steps)), what
        self.exhausted = False
        if isinstance(data, data_mod.Dataset):
            self.kind = "dataset"
            if self.steps is None and data.num_samples is not None:
                self.steps = len(data)
        elif isinstance(data, (str, bytes, bytearray, collections.abc.Mapping, collections.abc.Set)) \
                or isinstance(data, np.ndarray):
            raise TypeError(self._bad(data))
        elif isinstance(data, collections.abc.Iterator):
            self.kind = "oneshot"
            self._it: Optional[Iterator[Any]] = data
            if self.steps is None and not one_pass:
                raise TypeError(f"{what} is a one-shot iterator (a generator): pass steps_per_epoch "
                                "(batches per epoch), or a re-iterable (a list, a cpucnn.data.Dataset, a "
                                "callable via cpucnn.data.Dataset.from_generator)")
        elif hasattr(data, "__iter__"):
            self.kind = "iterable"
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
            self.kind = "sequence"
            if self.steps is None:
                self.steps = len(data)
        else:
            raise TypeError(self._bad(data))

    def _bad(self, data: Any) -> str:
        return (f"{self.what} must be a numpy array (with y), a cpucnn.data.Dataset, or an iterable of (x, y) "
                f"batches (a generator, a list, a Sequence with __len__ and __getitem__); got "
                f"{type(data).__name__}")

    def epoch(self, epoch: int) -> Iterator[Tuple[Any, Any]]:
        """The epoch's batches (x, y) as given (y None when absent); close it to stop early."""
        from .data import _split_batch

        if self.kind == "dataset":
            inner: Iterator[Any] = self.data.epoch(epoch)
        elif self.kind == "oneshot":
            inner = self._it
        elif self.kind == "sequence":
            inner = (self.data[i] for i in range(len(self.data)))
        else:
            inner = iter(self.data)
        try:
            b = 0
            while self.steps is None or b < self.steps:
                try:
                    item = next(inner)
                except StopIteration:
                    self.exhausted = self.kind == "oneshot"
                    return
                if self.kind == "dataset":
                    yield item
                else:
                    yield _split_batch(item)
                b += 1
        finally:
            if inner is not self._oneshot_it():
                close = getattr(inner, "close", None)
                if close is not None:
                    close()

    def _oneshot_it(self) -> Optional[Iterator[Any]]:
        return self._it if self.kind == "oneshot" else None


def looks_like_array(x: Any) -> bool:
    """Whether x is meant as an array (numpy turns it into one, or fails with its own message)
    rather than a source of batches: arrays, tensors, scalars, None, strings, nested lists of
    numbers. A dict or an object with __getitem__ alone is neither: Stream rejects them."""
    from . import data as data_mod

    if isinstance(x, data_mod.Dataset):
        return False
    if x is None or isinstance(x, (np.ndarray, str, bytes, bytearray, numbers.Number)) \
            or hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return True
    if isinstance(x, (list, tuple)):
        first = x[0] if len(x) else None
        return first is None or isinstance(first, (numbers.Number, list, np.ndarray, str, bytes)) \
            or hasattr(first, "__array__")
    if isinstance(x, collections.abc.Mapping) or hasattr(x, "__iter__") or hasattr(x, "__getitem__"):
        return False
    return True


def as_stream(data: Any, y: Any, steps: Optional[int], what: str, one_pass: bool) -> Optional[Stream]:
    """A Stream when ``data`` is a dataset or an iterable of batches (then y must be None); None
    when (data, y) are arrays."""
    from . import data as data_mod

    if isinstance(data, data_mod.Dataset):
        if y is not None:
            raise TypeError(f"{what} is a cpucnn.data.Dataset, which holds its labels: y must be None")
        return Stream(data, steps, what, one_pass)
    if y is not None:
        return None
    if looks_like_array(data):
        raise TypeError("labels y must be integers, got None: with arrays pass x and y (or pass a "
                        "cpucnn.data.Dataset or an iterable of (x, y) batches as x)")
    return Stream(data, steps, what, one_pass)


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
                 shuffle: bool, seed: int, verbose: int, w: Optional[np.ndarray] = None,
                 source: Optional[Stream] = None, val_source: Optional[Stream] = None,
                 dist: Any = None) -> None:
        self.model, self.x, self.y, self.val, self.w = model, x, y, val, w
        # cpucnn.distributed.DataParallel for fit(distributed=True): this process's slice of each
        # global batch, averaged gradients, logs summed over the processes; None: one process.
        self.dist = dist
        if dist is not None:
            if dist.rank != 0:
                verbose = 0   # process 0 prints
                callbacks = [cb for cb in callbacks if not getattr(cb, "main_rank_only", False)]
            seed = dist.begin(seed)
        self.epochs, self.initial_epoch, self.batch_size = epochs, initial_epoch, batch_size
        self.shuffle, self.seed, self.verbose = shuffle, seed, verbose
        self.source, self.val_source = source, val_source   # streamed data instead of x, y / val
        self.steps = source.steps if source is not None else (x.shape[0] + batch_size - 1) // batch_size
        if dist is not None:
            self.steps = dist.steps_per_epoch(x.shape[0], batch_size)
        self.cbs = callbacks_mod.CallbackList(callbacks, model=model)
        self.history = callbacks_mod.History()   # called by the loop itself, never cut short
        self.history.set_model(model)
        self.ctrl_c = CtrlC(on_request=self._interrupted, enabled=dist is None)
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
                if self.dist is not None:
                    self.dist.end()
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
            if self.dist is not None:   # a callback's stop on one process stops them all
                model.stop_training = self.dist.any(model.stop_training)[0]
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
            if self.ctrl_c.requested or self.running.seen == 0:   # nothing trained (a stream ran out)
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
        t0 = time.perf_counter()
        dist = self.dist
        if self.source is not None:
            it: Iterator[Tuple[int, np.ndarray, np.ndarray, Optional[np.ndarray]]] = self._streamed(epoch)
        elif dist is not None:
            it = dist.batches(self.x, self.y, self.w, self.batch_size, epoch, self.seed, self.shuffle)
        else:
            order = np.random.default_rng([int(self.seed), epoch]).permutation(self.x.shape[0]) if self.shuffle else None
            it = batches(self.x, self.y, self.batch_size, order, self.w)
        try:
            for b, xb, yb, wb in it:
                if dist is not None:
                    loss, correct = dist.step(xb, yb, wb)
                else:
                    loss, correct = model._m.train_step(xb, yb) if wb is None else model._m.train_step(xb, yb, wb)
                running.add(loss, correct, xb.shape[0])
                if bar is not None:
                    seen = running.seen if dist is None else dist.epoch_seen   # images/s over every process
                    bar.update(running.logs() if running.seen else {}, seen / max(time.perf_counter() - t0, 1e-9))
                self._hooks("on_batch_end", b, {"loss": float(loss), "size": xb.shape[0]})
                if dist is not None:   # every process stops after the same step
                    model.stop_training = dist.any(model.stop_training)[0]
                if model.stop_training or self.ctrl_c.requested:
                    break
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()       # stops a pipeline's worker threads on an early exit
        if self.source is not None and self.source.exhausted and not self.ctrl_c.requested:
            model.stop_training = True     # Keras: the input ran out of data
            if self.verbose:
                print(f"The training data ran out after {running.seen} samples in epoch {epoch + 1}; "
                      "training stops (give steps_per_epoch * epochs batches).")
        if dist is not None:   # the epoch's logs are over every process's samples
            running.loss_sum, running.hits, running.seen = dist.totals(running.loss_sum, running.hits, running.seen)
            dist.end_epoch()
        if running.seen == 0 and not (model.stop_training or self.ctrl_c.requested):
            raise ValueError("the training data yielded no batches")
        return time.perf_counter() - t0

    def _streamed(self, epoch: int) -> Iterator[Tuple[int, np.ndarray, np.ndarray, None]]:
        it = self.source.epoch(epoch)
        try:
            for b, (xb, yb) in enumerate(it):
                if yb is None:
                    raise ValueError("fit needs (x, y) batches; a batch came without labels")
                xb, yb = self.model._prepare(xb, yb)
                if xb.shape[0] == 0:
                    continue
                yield b, xb, yb, None
        finally:
            it.close()

    def _epoch_logs(self) -> Logs:
        """The epoch's training logs, validation (with the epoch's final weights) and lr."""
        logs = self.running.logs()
        if self.val is not None or self.val_source is not None:
            if self.val_source is not None:
                res = self.model._evaluate_stream(self.val_source)
            else:
                res = self.model._evaluate_arrays(*self.val[:2], 256, *self.val[2:], distributed=self.dist is not None)
            for k, v in res.items():
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
