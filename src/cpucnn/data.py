"""Input pipelines whose hot loop runs in C++ worker threads.

A `Dataset` describes where samples come from and what happens to them on
the way to a batch; iterating it runs one epoch::

    import cpucnn as cc
    ds = (cc.data.Dataset.from_arrays(x_u8, y)          # (N, C, H, W) or (N, H, W) uint8/float32
          .shuffle(seed=0)                               # a new permutation every epoch
          .map_float(scale=1 / 255, mean=[0.286], std=[0.353])
          .random_crop(28, padding=2)
          .flip_horizontal()
          .batch(64)
          .prefetch(2, workers=1))
    model.fit(ds, epochs=5)                              # or: for xb, yb in ds: ...

Every method returns a new Dataset (the original is unchanged). Whatever the
order of the calls, a sample goes through: gather, random crop (from the image
padded with zeros, in source units), horizontal flip, then the map to float
``(x * scale - mean[c]) / std[c]``; so a padded pixel becomes ``-mean[c] / std[c]``,
as with torchvision's ``RandomCrop(padding)`` followed by ``Normalize``. These
steps, and the gather of the batch, run in C++: in ``workers`` threads started
by ``prefetch`` that make batches ahead of the training step (at most
``buffer_size`` ahead), or in the consumer's thread without ``prefetch``; the
GIL is released either way.

Sources:

- `Dataset.from_arrays`: numpy arrays. uint8 stays uint8 until the batch is
  made (no float32 copy of the whole set); a memmap is read where it lies.
- `Dataset.from_npy`: ``.npy`` files, opened with ``np.load(mmap_mode="r")``.
- `Dataset.from_idx`: IDX files (the MNIST / Fashion-MNIST format); an
  uncompressed file is memory-mapped, a ``.gz`` one is decompressed once (uint8).
- `Dataset.from_generator`: any iterable of ``(x, y)`` batches, or a
  callable returning one (called once per epoch). The batches come from Python;
  ``map_float``, ``random_crop`` and ``flip_horizontal`` still run in C++ on
  each batch; ``shuffle`` and ``batch`` do not apply.

Determinism: the permutation of epoch ``e`` is drawn from ``(seed, e)`` and a
sample's crop and flip from ``(seed, e, sample index)``, so the same seed gives
the same batches bit for bit, whatever the number of workers. The seed is the
one given to ``shuffle`` (or `Dataset.with_seed`; 0 by default).
Iterating a Dataset with ``for`` runs epochs 0, 1, 2, ... in turn;
`Dataset.epoch` runs a given one (``fit`` uses it, so ``initial_epoch``
resumes with the same batches).

Worker threads stop when the epoch ends, when its iterator is closed or
garbage-collected (a ``break`` out of the loop), and at interpreter exit. An
error in a worker is raised in the consumer when it reaches that batch.
"""

from __future__ import annotations

import atexit
import numbers
import os
import weakref
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import datasets as datasets_mod

__all__ = ["Dataset"]

Batch = Tuple[np.ndarray, Optional[np.ndarray]]


def _nonneg_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return int(v)


def _pos_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _as_source_x(x: Any) -> np.ndarray:
    """x as a C-contiguous (N, C, H, W) uint8 or float32 array, without a copy when it already is
    one (memmaps included); (N, H, W) gets a channel axis (a view)."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"x must be a numeric array: {e}") from None
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x must be a numeric array, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W) or (N, H, W), got {x.shape}")
    if x.dtype == np.uint8 and x.flags.c_contiguous:
        return x
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)   # other dtypes: one float32 copy
    return x


def _as_source_y(y: Any, n: int) -> Optional[np.ndarray]:
    if y is None:
        return None
    y = np.asarray(y)
    if y.dtype.kind not in "biuf" or y.dtype.kind == "b":
        raise TypeError(f"y must be integer labels or float targets, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has shape {y.shape}")
    return np.ascontiguousarray(y, dtype=np.int64 if y.dtype.kind in "iu" else np.float32)


# Loaders alive now, closed at interpreter exit (their threads must not outlive the interpreter).
_LIVE: "weakref.WeakSet[_EpochIterator]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for it in list(_LIVE):
        it.close()


# Loaders inherited through fork(): their worker threads do not exist in the child, so they are
# never closed (joined) there, only kept.
_ORPHANS: List[Any] = []


class _EpochIterator:
    """The batches of one epoch of an array-backed Dataset (from the C++ loader)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._pid = os.getpid()
        _LIVE.add(self)

    def __iter__(self) -> "_EpochIterator":
        return self

    def _forked(self) -> bool:
        if self._loader is not None and os.getpid() != self._pid:
            _ORPHANS.append(self._loader)
            self._loader = None
            return True
        return False

    def __next__(self) -> Batch:
        if self._forked():
            raise RuntimeError("this epoch was started in the parent process, before fork(); its worker "
                               "threads do not exist here: start a new epoch (iterate the Dataset again)")
        if self._loader is None:
            raise StopIteration
        try:
            b = self._loader.next()
        except BaseException:
            self.close()
            raise
        if b is None:
            self.close()
            raise StopIteration
        return b

    def __len__(self) -> int:
        return 0 if self._loader is None else int(self._loader.num_batches)

    def close(self) -> None:
        """Stops and joins the worker threads (also when garbage-collected)."""
        if self._forked():
            return
        loader, self._loader = self._loader, None
        if loader is not None:
            loader.close()

    def __del__(self) -> None:
        self.close()


class Dataset:
    """A description of an input pipeline; see the module docstring. Build one with a ``from_*``
    class method, then chain stages; each method returns a new Dataset."""

    def __init__(self, *, _x: Optional[np.ndarray] = None, _y: Optional[np.ndarray] = None,
                 _gen: Any = None, **stages: Any) -> None:
        self._x, self._y, self._gen = _x, _y, _gen
        self._st = dict(shuffled=False, seed=0, scale=1.0, mean=None, std=None, crop=None, pad=0, flip=False,
                        batch_size=None, drop_remainder=False, prefetch=None, workers=0)
        self._st.update(stages)
        self._epochs_run = 0

    def _with(self, **changes: Any) -> "Dataset":
        st = dict(self._st)
        st.update(changes)
        return Dataset(_x=self._x, _y=self._y, _gen=self._gen, **st)

    # -- sources ----------------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, x: Any, y: Any = None) -> "Dataset":
        """Samples ``x`` (N, C, H, W) or (N, H, W), uint8 or float32 (other dtypes are converted to
        float32 once), and optional labels/targets ``y`` with one row per sample. A C-contiguous
        uint8 or float32 array (a memmap too) is used in place, never copied."""
        x = _as_source_x(x)
        return cls(_x=x, _y=_as_source_y(y, x.shape[0]))

    @classmethod
    def from_npy(cls, x_path: Union[str, os.PathLike], y_path: Union[str, os.PathLike, None] = None) -> "Dataset":
        """``.npy`` files, memory-mapped (``np.load(mmap_mode="r")``): the samples are read from
        the file as batches are made.

        Args:
            x_path (str or os.PathLike): the samples' ``.npy`` file, (N, C, H, W) uint8 or float32.
            y_path (str or os.PathLike, optional): the labels' ``.npy`` file (loaded whole).
        """
        x = np.load(os.fspath(x_path), mmap_mode="r")
        y = None if y_path is None else np.load(os.fspath(y_path))
        return cls.from_arrays(x, y)

    @classmethod
    def from_idx(cls, images: Union[str, os.PathLike], labels: Union[str, os.PathLike, None] = None) -> "Dataset":
        """IDX files (MNIST, Fashion-MNIST). An uncompressed images file is memory-mapped; a
        gzipped one is decompressed into memory once (as uint8).

        Args:
            images (str or os.PathLike): the images' IDX file (``.gz`` or not).
            labels (str or os.PathLike, optional): the labels' IDX file.
        """
        x = _idx_array(os.fspath(images))
        y = None if labels is None else datasets_mod.load_idx(labels)
        return cls.from_arrays(x, y)

    @classmethod
    def fashion_mnist(cls, split: str = "train", root: Union[str, os.PathLike, None] = None) -> "Dataset":
        """Fashion-MNIST's ``"train"`` or ``"test"`` split as uint8 (N, 1, 28, 28) with int64 labels,
        from the files `cpucnn.datasets.load_fashion_mnist` finds (nothing is downloaded).

        Args:
            split (str, default "train"): ``"train"`` or ``"test"``.
            root (str or os.PathLike, optional): the folder holding the IDX files (None: where
                `cpucnn.datasets.load_fashion_mnist` looks).

        Raises:
            ValueError: an unknown split. FileNotFoundError: the files are not there.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        paths = datasets_mod._locate("fashion-mnist", "Fashion-MNIST", root, datasets_mod._FASHION_HOWTO)
        stem = "train" if split == "train" else "t10k"
        return cls.from_idx(paths[f"{stem}-images-idx3-ubyte"], paths[f"{stem}-labels-idx1-ubyte"])

    @classmethod
    def from_generator(cls, source: Union[Iterable[Any], Callable[[], Iterable[Any]]]) -> "Dataset":
        """Batches ``(x, y)`` (or bare ``x``) from Python.

        Args:
            source (iterable or callable): an iterable of batches (iterated once per epoch; a one-shot
                generator runs only one epoch) or a callable that returns a fresh one.

        Raises:
            TypeError: source is neither.
        """
        if not callable(source) and not hasattr(source, "__iter__"):
            raise TypeError(f"from_generator needs an iterable or a callable, got {type(source).__name__}")
        return cls(_gen=source)

    # -- stages -----------------------------------------------------------------------------------
    def shuffle(self, seed: Optional[int] = 0) -> "Dataset":
        """Shuffles the samples, with a new permutation every epoch drawn from ``(seed, epoch)``;
        ``seed`` also keys the crops and flips. None draws a seed now."""
        self._arrays_only("shuffle")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        return self._with(shuffled=True, seed=_nonneg_int("seed", seed))

    def with_seed(self, seed: int) -> "Dataset":
        """Sets the seed of the crops and flips (and of shuffle) without shuffling."""
        return self._with(seed=_nonneg_int("seed", seed))

    def map_float(self, scale: float = 1.0, mean: Union[float, Sequence[float], None] = None,
                  std: Union[float, Sequence[float], None] = None) -> "Dataset":
        """Maps samples to float32 as ``(x * scale - mean[c]) / std[c]`` (computed in float32; one
        value or one per channel). Without it, samples are converted to float32 as they are."""
        def per_channel(name: str, v: Any) -> Optional[List[float]]:
            if v is None:
                return None
            vals = [float(u) for u in np.atleast_1d(np.asarray(v, dtype=np.float64))]
            if not all(np.isfinite(vals)):
                raise ValueError(f"{name} must be finite, got {v!r}")
            return vals
        scale = float(scale)
        if not np.isfinite(scale):
            raise ValueError(f"scale must be finite, got {scale}")
        std_v = per_channel("std", std)
        if std_v is not None and not all(s > 0 for s in std_v):
            raise ValueError(f"std must be positive, got {std!r}")
        return self._with(scale=scale, mean=per_channel("mean", mean), std=std_v)

    def random_crop(self, size: Union[int, Tuple[int, int]], padding: int = 0) -> "Dataset":
        """Crops ``size`` (an int or (height, width)) at a random place of the image padded with
        ``padding`` zeros (source units) on every side."""
        hw = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        if len(hw) != 2:
            raise ValueError(f"random_crop size must be an int or (height, width), got {size!r}")
        hw = (_pos_int("random_crop size", hw[0]), _pos_int("random_crop size", hw[1]))
        return self._with(crop=hw, pad=_nonneg_int("padding", padding))

    def flip_horizontal(self) -> "Dataset":
        """Mirrors each sample left-right with probability 1/2."""
        return self._with(flip=True)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        """Groups samples into batches; without this stage, a batch is one sample.

        Args:
            batch_size (int): samples per batch, > 0.
            drop_remainder (bool, default False): drop the last partial batch.
        """
        self._arrays_only("batch")
        return self._with(batch_size=_pos_int("batch_size", batch_size), drop_remainder=bool(drop_remainder))

    def prefetch(self, buffer_size: int = 2, workers: int = 1) -> "Dataset":
        """Makes batches in ``workers`` C++ threads, up to ``buffer_size`` ahead of the consumer
        (overlapping the training step). Without it, each batch is made when asked for."""
        return self._with(prefetch=_pos_int("buffer_size", buffer_size), workers=_pos_int("workers", workers))

    def _arrays_only(self, what: str) -> None:
        if self._gen is not None:
            raise ValueError(f"{what}() does not apply to from_generator: the generator yields batches already")

    # -- inspection -------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The seed of the shuffling and of the crops and flips (0 unless set)."""
        return int(self._st["seed"])

    @property
    def num_samples(self) -> Optional[int]:
        """Samples per epoch (None for a generator)."""
        return None if self._x is None else int(self._x.shape[0])

    @property
    def element_shape(self) -> Optional[Tuple[int, int, int]]:
        """The (C, H, W) of a sample as it comes out (None for a generator)."""
        if self._x is None:
            return None
        c, h, w = self._x.shape[1:]
        crop = self._st["crop"]
        return (c, crop[0], crop[1]) if crop else (c, h, w)

    def __len__(self) -> int:
        """Batches per epoch (array sources only)."""
        if self._x is None:
            raise TypeError("a from_generator Dataset has no length")
        n, bs = self._x.shape[0], self._st["batch_size"] or 1
        return n // bs if self._st["drop_remainder"] else (n + bs - 1) // bs

    def __repr__(self) -> str:
        if self._x is None:
            src = "from_generator"
        else:
            src = f"from_arrays({self._x.dtype} {tuple(self._x.shape)})"
        st = self._st
        parts = [src]
        if st["shuffled"]:
            parts.append(f"shuffle(seed={st['seed']})")
        if st["scale"] != 1.0 or st["mean"] or st["std"]:
            parts.append(f"map_float(scale={st['scale']:g}, mean={st['mean']}, std={st['std']})")
        if st["crop"]:
            parts.append(f"random_crop({st['crop']}, padding={st['pad']})")
        if st["flip"]:
            parts.append("flip_horizontal()")
        if st["batch_size"]:
            parts.append(f"batch({st['batch_size']})")
        if st["prefetch"]:
            parts.append(f"prefetch({st['prefetch']}, workers={st['workers']})")
        return "Dataset." + ".".join(parts)

    # -- iteration --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch]:
        e = self._epochs_run
        self._epochs_run += 1
        return self.epoch(e)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches ``(x, y)`` of epoch ``epoch`` (x float32 (B, C, H, W); y None without labels).
        Close the iterator (or drop it) to stop the workers early."""
        epoch = _nonneg_int("epoch", epoch)
        if self._gen is not None:
            return self._generator_epoch(epoch)
        return _EpochIterator(self._loader(self._x, self._y, epoch, self._order(epoch)))

    def _order(self, epoch: int) -> np.ndarray:
        n = self._x.shape[0]
        if self._st["shuffled"]:
            return np.random.default_rng([self.seed, epoch]).permutation(n).astype(np.int64)
        return np.arange(n, dtype=np.int64)

    def _loader(self, x: np.ndarray, y: Optional[np.ndarray], epoch: int, order: np.ndarray,
                batch_size: Optional[int] = None, index_offset: int = 0, sync: bool = False) -> Any:
        st = self._st
        crop = st["crop"]
        c = x.shape[1]

        def channels(name: str, v: Optional[List[float]]) -> List[float]:
            if v is None:
                return []
            if len(v) == 1:
                return v * c
            if len(v) != c:
                raise ValueError(f"{name} has {len(v)} values for {c} channels")
            return v

        workers = 0 if sync else st["workers"]
        return _core.BatchLoader(
            x, y, order, batch_size or st["batch_size"] or 1, bool(st["drop_remainder"]),
            crop if crop else (x.shape[2], x.shape[3]), st["pad"], crop is not None, st["flip"], st["scale"],
            channels("mean", st["mean"]), channels("std", st["std"]), self.seed, epoch, index_offset,
            workers, st["prefetch"] or 1)

    def _generator_epoch(self, epoch: int) -> Iterator[Batch]:
        src = self._gen
        it = iter(src() if callable(src) and not hasattr(src, "__iter__") else src)
        seen = 0
        for item in it:
            xb, yb = _split_batch(item)
            x = _as_source_x(xb)
            y = None if yb is None else np.asarray(yb)
            if y is not None and (y.ndim == 0 or y.shape[0] != x.shape[0]):
                raise ValueError(f"a batch has {x.shape[0]} samples but {y.shape} labels")
            n = x.shape[0]
            if n == 0:
                continue
            loader = self._loader(x, None, epoch, np.arange(n, dtype=np.int64), batch_size=n,
                                  index_offset=seen, sync=True)
            out, _ = loader.next()
            loader.close()
            seen += n
            yield out, y


def _split_batch(item: Any) -> Tuple[Any, Any]:
    """(x, y) from a batch: a pair (x, y), a 1-tuple (x,) or a bare x."""
    if isinstance(item, (tuple, list)):
        if len(item) == 2:
            return item[0], item[1]
        if len(item) == 1:
            return item[0], None
        raise ValueError(f"a batch must be (x, y) or (x,), got a sequence of {len(item)} items")
    return item, None


def _idx_array(path: str) -> np.ndarray:
    """An IDX file as an array: memory-mapped when uncompressed, else decompressed once."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return datasets_mod.load_idx(path)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
        return datasets_mod.load_idx(path)   # not uint8 IDX: its own checks and messages
    ndim = head[3]
    with open(path, "rb") as f:
        f.seek(4)
        dims = np.frombuffer(f.read(4 * ndim), dtype=">u4")
    shape = tuple(int(d) for d in dims)
    size = os.path.getsize(path) - 4 - 4 * ndim
    if len(shape) != ndim or size != int(np.prod(shape, dtype=np.int64)):
        return datasets_mod.load_idx(path)   # truncated or trailing data: the loader's message
    return np.memmap(path, dtype=np.uint8, mode="r", offset=4 + 4 * ndim, shape=shape)
