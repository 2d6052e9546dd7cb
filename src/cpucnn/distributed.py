"""Data-parallel training over MPI, through mpi4py (Horovod-like).

The same script runs on one process, on N processes of one machine and on N machines::

    import cpucnn as cc
    from cpucnn import distributed as dist

    dist.init()                                  # once, before training
    model.fit(x, y, batch_size=32, epochs=5, distributed=True)   # 32 per process
    if dist.is_main():
        model.save("model.cnn")

launched with ``mpirun -np 4 python train.py`` (see the README for several machines). Every
process holds the whole model and the whole dataset; each epoch's shuffled order (the same seed on
every process) is cut into global batches of ``batch_size * size()`` samples, each process trains on
its own slice of every global batch, and the gradients are averaged over the processes with one
allreduce per step, weighted by each process's sample count: ``size()`` processes with batch
``b`` take exactly the steps of one process with batch ``b * size()``. The weights stay identical on
every process (the same update everywhere; checked by a hash at each epoch's end).

Needs ``pip install "cpucnn[mpi]"`` (mpi4py and the MPICH wheel), or mpi4py built against the MPI
of a cluster. Without it, everything else in cpucnn works; asking for distributed training says
what to install.
"""

from __future__ import annotations

__docformat__ = "google"

import hashlib
import os
import sys
import time
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

__all__ = [
    "init",
    "initialized",
    "rank",
    "size",
    "local_rank",
    "local_size",
    "is_main",
    "barrier",
    "allreduce",
    "broadcast_weights",
    "weights_hash",
    "check_weights",
    "shard",
]

INSTALL_HINT = ('pip install "cpucnn[mpi]" (installs mpi4py and the MPICH wheel; launch with '
                "mpirun -np N python script.py), or install mpi4py built against your cluster's MPI")

_comm: Any = None
_local: Any = None
_prev_excepthook: Any = None
_bucket_mb = 1.0


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"cpucnn.distributed needs mpi4py and an MPI library: {INSTALL_HINT}") from e
    return MPI


def init(comm: Any = None, threads: Optional[int] = None, abort_on_error: bool = True,
         bucket_mb: float = 1.0) -> None:
    """Starts (or joins) the MPI job. Call once, before training; calling again does nothing.

    Args:
        comm (mpi4py communicator, optional): the processes that train together (default
            ``MPI.COMM_WORLD``).
        threads (int, optional): OpenMP threads per process. None: when ``OMP_NUM_THREADS`` is
            not set and several processes share this machine, the machine's cores divided evenly
            among them (at least 1), so they do not oversubscribe the cores.
        abort_on_error (bool, default True): install a ``sys.excepthook`` that, after printing the
            traceback, calls ``MPI_Abort`` so that an uncaught exception (or Ctrl-C) on one
            process ends every process of the job within moments instead of leaving the others
            waiting in a collective forever.
        bucket_mb (float, default 1.0): the gradients' allreduce starts in buckets of about this
            many megabytes as soon as the backward pass has finished their layers (the last layers
            first), overlapping the rest of the backward pass; 0: one blocking allreduce of all the
            gradients after the backward pass.

    Raises:
        ImportError: mpi4py (or its MPI library) is not installed; the message says what to install.
    """
    global _comm, _local, _prev_excepthook, _bucket_mb
    if _comm is not None:
        return
    if not bucket_mb >= 0:
        raise ValueError(f"bucket_mb must be >= 0, got {bucket_mb!r}")
    _bucket_mb = float(bucket_mb)
    MPI = _mpi()
    _comm = comm if comm is not None else MPI.COMM_WORLD
    _local = _comm.Split_type(MPI.COMM_TYPE_SHARED, key=_comm.Get_rank())
    if threads is not None:
        from . import set_num_threads
        set_num_threads(int(threads))
    elif "OMP_NUM_THREADS" not in os.environ and _local.Get_size() > 1:
        from . import set_num_threads
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:   # not Linux
            cores = os.cpu_count() or 1
        set_num_threads(max(1, cores // _local.Get_size()))
    if abort_on_error and _prev_excepthook is None:
        _prev_excepthook = sys.excepthook
        sys.excepthook = _abort_hook


def _abort_hook(etype: Any, value: Any, tb: Any) -> None:
    """sys.excepthook under init(): the traceback, then MPI_Abort for the whole job."""
    several = _comm is not None and _comm.Get_size() > 1
    try:
        (_prev_excepthook or sys.__excepthook__)(etype, value, tb)
        if several:
            sys.stderr.write(f"cpucnn.distributed: process {rank()} of {size()} failed ({etype.__name__}); "
                             "aborting every process of the job (MPI_Abort)\n")
            sys.stderr.flush()
    finally:
        if several:
            _comm.Abort(1)


def initialized() -> bool:
    """Whether ``init()`` has run in this process."""
    return _comm is not None


def _world() -> Any:
    """The communicator, initializing on first use."""
    if _comm is None:
        init()
    return _comm


def rank() -> int:
    """This process's index in the job, from 0 (0 without ``init()``)."""
    return 0 if _comm is None else _comm.Get_rank()


def size() -> int:
    """The number of processes in the job (1 without ``init()``)."""
    return 1 if _comm is None else _comm.Get_size()


def local_rank() -> int:
    """This process's index among the job's processes on this machine (0 without ``init()``)."""
    return 0 if _local is None else _local.Get_rank()


def local_size() -> int:
    """The number of the job's processes on this machine (1 without ``init()``)."""
    return 1 if _local is None else _local.Get_size()


def is_main() -> bool:
    """True on process 0, the one that prints, logs and saves."""
    return rank() == 0


def barrier() -> None:
    """Waits until every process of the job gets here."""
    _world().Barrier()


def allreduce(values: Any, op: str = "sum") -> np.ndarray:
    """``values`` combined over every process, as a new float64 array (every process gets it).

    Args:
        values (array-like of numbers): the same shape on every process.
        op (str, default "sum"): ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.

    Raises:
        ValueError: an unknown op.
    """
    MPI = _mpi()
    ops = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
    if op not in ops:
        raise ValueError(f"op must be one of {', '.join(ops)}, got {op!r}")
    a = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty_like(a)
    _world().Allreduce(a, out, op=ops[op])
    return out / size() if op == "mean" else out


def broadcast_weights(model: Any, root: int = 0) -> None:
    """Copies process ``root``'s weights (BatchNorm statistics included) to every process.

    Args:
        model (Sequential): the model, built the same way on every process.
        root (int, default 0): the process whose weights win.
    """
    comm = _world()
    ws = model.get_weights()
    if not ws:
        return
    flat = np.concatenate([w.ravel() for w in ws]) if comm.Get_rank() == root else \
        np.empty(sum(w.size for w in ws), np.float32)
    comm.Bcast(flat, root=root)
    if comm.Get_rank() != root:
        out, at = [], 0
        for w in ws:
            out.append(flat[at:at + w.size].reshape(w.shape))
            at += w.size
        model.set_weights(out)


def weights_hash(model: Any) -> str:
    """SHA-256 (hex) of the model's weights, BatchNorm statistics included, in order.

    Args:
        model (Sequential): the model.
    """
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return h.hexdigest()


def check_weights(model: Any) -> None:
    """Checks that every process holds the same weights (compares ``weights_hash`` over the job).

    Args:
        model (Sequential): the model.

    Raises:
        RuntimeError: the weights differ; the message lists which processes agree with process 0.
    """
    hashes = _world().allgather(weights_hash(model))
    if len(set(hashes)) > 1:
        differ = [r for r, h in enumerate(hashes) if h != hashes[0]]
        raise RuntimeError(f"cpucnn.distributed: the weights differ across processes: processes {differ} "
                           f"do not match process 0 (of {len(hashes)}); data-parallel training keeps them "
                           "identical, so something updated one process's model on its own")


def _split(m: int, p: int) -> np.ndarray:
    """Offsets (p + 1) cutting m samples into p nearly equal slices, the larger ones first."""
    sizes = np.full(p, m // p, np.int64)
    sizes[: m % p] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def shard(n: int, batch_size: int, epoch: int = 0, seed: int = 0, shuffle: bool = True,
          rank: Optional[int] = None, size: Optional[int] = None) -> List[np.ndarray]:
    """The sample indices one process trains on at each step of an epoch of ``fit(distributed=True)``.

    The epoch's order is the one ``fit`` draws from ``(seed, epoch)`` (the same on every process); it
    is cut into global batches of ``batch_size * size`` samples, and process ``r`` takes slice ``r``
    of each. The last global batch, when shorter, is split as evenly as it goes (some processes may
    get no sample: they still take part in the step). Every process has the same number of steps,
    the slices are disjoint and together hold every sample exactly once.

    Args:
        n (int): samples in the training set.
        batch_size (int): samples per process per step.
        epoch (int, default 0): the epoch (the shuffle depends on it).
        seed (int, default 0): the shuffling seed (fit's ``seed``).
        shuffle (bool, default True): shuffle; False keeps the stored order.
        rank (int, optional): the process (default: this one).
        size (int, optional): the number of processes (default: the job's).

    Returns:
        list of int64 arrays: the indices of each step, in order.
    """
    r = globals()["rank"]() if rank is None else int(rank)
    p = globals()["size"]() if size is None else int(size)
    if not 0 <= r < p:
        raise ValueError(f"rank must be in [0, {p}), got {r}")
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n) if shuffle else np.arange(n)
    g = batch_size * p
    out = []
    for lo in range(0, n, g):
        m = min(g, n - lo)
        cut = _split(m, p) if m < g else np.arange(0, g + 1, batch_size)
        out.append(order[lo + cut[r]: lo + cut[r + 1]])
    return out


class DataParallel:
    """What ``fit(distributed=True)`` adds to the training loop (used by cpucnn's fit loop).

    A step: forward and backward on this process's slice (GIL released), the gradients packed
    into the model's one contiguous buffer multiplied by the slice's sample count, an in-place
    allreduce of that buffer (plus the count), then the optimizer update from the sum divided by the
    global count (GIL released). With buckets (``bucket_mb`` > 0) the backward pass packs each
    layer's gradients as it finishes it and starts a non-blocking allreduce of each bucket as soon
    as its layers are done, so it overlaps the rest of the backward pass; without, one blocking
    allreduce follows the backward pass. ``comm_seconds`` accumulates the time spent starting,
    progressing and waiting for the allreduces.
    """

    def __init__(self, model: Any, sync_batchnorm: bool = False, bucket_mb: Optional[float] = None) -> None:
        self.MPI = _mpi()
        self.comm = _world()
        mb = _bucket_mb if bucket_mb is None else float(bucket_mb)
        self.bucket_floats = int(mb * 1e6 / 4)          # 0: one blocking allreduce after the backward pass
        self.buckets = model._m.gradient_buckets(self.bucket_floats) if self.bucket_floats else []
        self._pending: List[Any] = []
        self._bn_comm: Any = None
        self.model, self.sync_batchnorm = model, bool(sync_batchnorm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.buf = model._m.gradient_buffer()     # a view of the model's contiguous gradients
        self.comm_seconds = 0.0
        self.steps = 0
        self.epoch_seen = 0   # samples over every process in the epoch so far
        self._stats = [(layer._index, name) for layer in model.layers for name in layer.param_names
                       if name in ("running_mean", "running_var")]

    # -- around training --------------------------------------------------------
    def begin(self, seed: int) -> int:
        """Starts training: the same weights and shuffling seed on every process; returns the seed."""
        broadcast_weights(self.model)
        self.model._m.dropout_stream = self.rank     # independent Dropout masks on each process
        if self.sync_batchnorm:
            # Its own communicator: its blocking allreduces run while gradient buckets are in flight,
            # and a process without samples makes them before its buckets, not between them.
            self._bn_comm = _side_comm()
            self.model._m.set_collective(self._allreduce_inplace)
        return int(self.comm.bcast(int(seed), root=0))

    def end(self) -> None:
        """Ends training (also on an error)."""
        self.model._m.set_collective(None)
        self.model._m.dropout_stream = 0

    def _allreduce_inplace(self, values: np.ndarray) -> None:
        t = time.perf_counter()
        self._bn_comm.Allreduce(self.MPI.IN_PLACE, values, op=self.MPI.SUM)
        self.comm_seconds += time.perf_counter() - t

    def _ready(self, offset: int, count: int) -> None:
        """A bucket of packed gradients is final: start its allreduce, and progress the earlier ones."""
        t = time.perf_counter()
        self._pending.append(self.comm.Iallreduce(self.MPI.IN_PLACE, self.buf[offset:offset + count],
                                                  op=self.MPI.SUM))
        self.MPI.Request.Testall(self._pending)
        self.comm_seconds += time.perf_counter() - t

    # -- an epoch ---------------------------------------------------------------
    def batches(self, x: np.ndarray, y: np.ndarray, w: Optional[np.ndarray], batch_size: int, epoch: int,
                seed: int, shuffle: bool) -> Iterator[Tuple[int, np.ndarray, np.ndarray, Optional[np.ndarray]]]:
        """(index, x, y, weights) of this process's slice at each step of the epoch (see ``shard``)."""
        self.epoch_seen = 0
        for b, idx in enumerate(shard(x.shape[0], batch_size, epoch, seed, shuffle, self.rank, self.size)):
            yield b, x[idx], y[idx], None if w is None else w[idx]

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        """Steps in an epoch of n samples."""
        g = batch_size * self.size
        return (n + g - 1) // g

    def step(self, xb: np.ndarray, yb: np.ndarray, wb: Optional[np.ndarray]) -> Tuple[float, int]:
        """One data-parallel step on this process's slice; returns its (mean loss, top-1 hits)."""
        m = self.model._m
        n = xb.shape[0]
        buf = self.buf
        if self.bucket_floats:     # buckets start their allreduce during the backward pass
            buf[-2:] = (n, 0.0)
            if n:
                loss, correct = m.compute_gradients_overlapped(xb, yb, wb, float(n), self._ready, self.bucket_floats)
            else:
                m.idle_gradients()
                m.pack_gradients(0.0)
                loss, correct = 0.0, 0
                for off, cnt in self.buckets:
                    self._ready(off, cnt)
            t = time.perf_counter()
            self.MPI.Request.Waitall(self._pending)
            self._pending.clear()
            self.comm_seconds += time.perf_counter() - t
        else:                      # one allreduce of everything after the backward pass
            if n:
                loss, correct = m.compute_gradients(xb, yb) if wb is None else m.compute_gradients(xb, yb, wb)
            else:
                m.idle_gradients()
                loss, correct = 0.0, 0
            m.pack_gradients(float(n))
            buf[-2:] = (n, 0.0)
            t = time.perf_counter()
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
            self.comm_seconds += time.perf_counter() - t
        total = float(buf[-2])
        self.epoch_seen += int(total)
        m.apply_gradients(1.0 / total)
        self.steps += 1
        return float(loss), int(correct)

    def any(self, *flags: bool) -> List[bool]:
        """Each flag OR-ed over every process (decisions every process must take alike)."""
        local = np.array([int(bool(f)) for f in flags], np.int32)
        got = np.empty_like(local)
        self.comm.Allreduce(local, got, op=self.MPI.MAX)
        return [bool(v) for v in got]

    def totals(self, loss_sum: float, hits: int, seen: int) -> Tuple[float, int, int]:
        """An epoch's running totals summed over every process."""
        t = allreduce([loss_sum, hits, seen])
        return float(t[0]), int(round(t[1])), int(round(t[2]))

    def end_epoch(self) -> None:
        """At an epoch's end: BatchNorm running statistics averaged over the processes (they follow
        each process's own batches unless sync_batchnorm), then the weights checked to be identical."""
        if self._stats and not self.sync_batchnorm:
            vals = self.model._m.get_params(self._stats)
            flat = np.concatenate([v.ravel() for v in vals]).astype(np.float64)
            flat = allreduce(flat) / self.size
            items, at = [], 0
            for (i, name), v in zip(self._stats, vals):
                items.append((i, name, flat[at:at + v.size].reshape(v.shape).astype(np.float32)))
                at += v.size
            self.model._m.set_params(items)
        check_weights(self.model)


_side: Any = None


def _side_comm() -> Any:
    """A duplicate of the job's communicator for synced BatchNorm, made once (a collective call, which
    every process makes at the same point) and kept: freeing it is collective too, which a process
    leaving fit through an exception must not wait for."""
    global _side
    if _side is None:
        _side = _world().Dup()
    return _side


def _slice(n: int) -> Tuple[int, int]:
    """This process's contiguous slice [lo, hi) of n samples for evaluate/predict."""
    cut = _split(n, size())
    return int(cut[rank()]), int(cut[rank() + 1])


def evaluate_sums(core: Any, x: np.ndarray, y: np.ndarray, batch_size: int,
                  w: Optional[np.ndarray] = None) -> Tuple[float, int, int, int]:
    """(loss sum, top-1 hits, top-5 hits, count) over the whole data, each process evaluating its slice."""
    _world()
    lo, hi = _slice(x.shape[0])
    local = [0.0, 0, 0, 0]
    if hi > lo:
        local = list(core.evaluate(x[lo:hi], y[lo:hi], batch_size, None if w is None else w[lo:hi]))
    t = allreduce(local)
    return float(t[0]), int(round(t[1])), int(round(t[2])), int(round(t[3]))


def confusion_sum(cm: np.ndarray) -> np.ndarray:
    """A confusion matrix summed over every process."""
    return np.rint(allreduce(cm)).astype(np.int64)


def gather_predictions(core: Any, x: np.ndarray, batch_size: int) -> Optional[np.ndarray]:
    """predict over the whole data, each process running its slice; the result on process 0, None
    elsewhere."""
    comm = _world()
    n = x.shape[0]
    lo, hi = _slice(n)
    out_shape = tuple(core.output_shape)
    per = int(np.prod(out_shape))
    local = core.predict(x[lo:hi], batch_size) if hi > lo else np.zeros((0,) + out_shape, np.float32)
    cut = _split(n, comm.Get_size())
    counts = [int(cut[r + 1] - cut[r]) * per for r in range(comm.Get_size())]
    displs = [int(cut[r]) * per for r in range(comm.Get_size())]
    full = np.empty((n,) + out_shape, np.float32) if comm.Get_rank() == 0 else None
    comm.Gatherv(np.ascontiguousarray(local, np.float32),
                 [full, counts, displs, _mpi().FLOAT] if full is not None else None, root=0)
    return full

