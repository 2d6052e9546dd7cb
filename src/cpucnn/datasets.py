"""Loaders for the MNIST and Fashion-MNIST image classification datasets.

The datasets are stored in the IDX format (see `load_idx`), as four
files per dataset, each of which may be gzip-compressed (``.gz`` suffix)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

Nothing is ever downloaded.  When no ``root`` folder is given, the loaders
look, in order, in

1. ``$CPUCNN_DATA/<name>``
2. ``~/.cpucnn/datasets/<name>``
3. ``/usr/share/datasets/<name>`` (where Debian's ``dataset-fashion-mnist``
   package installs the gzipped Fashion-MNIST files)

with ``<name>`` being ``fashion-mnist`` or ``mnist``; the first folder
holding all four files is used.

This module depends only on NumPy and the Python standard library.
"""

from __future__ import annotations

__docformat__ = "numpy"

import gzip
import os
import zlib

import numpy as np

__all__ = ["load_idx", "load_fashion_mnist", "load_mnist"]

# IDX type code -> big-endian numpy dtype of the stored data.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_MAX_DIMS = 8
_GZIP_MAGIC = b"\x1f\x8b"

_TRAIN_IMAGES = "train-images-idx3-ubyte"
_TRAIN_LABELS = "train-labels-idx1-ubyte"
_TEST_IMAGES = "t10k-images-idx3-ubyte"
_TEST_LABELS = "t10k-labels-idx1-ubyte"
_FILES = (_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS)

_SYSTEM_DIR = "/usr/share/datasets"
_IMAGE_SIZE = (28, 28)


def load_idx(path) -> np.ndarray:
    """Read an IDX file (the format of the MNIST dataset files).

    The layout is: two zero bytes, a type code byte (``0x08`` uint8,
    ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
    ``0x0E`` float64), a byte with the number of dimensions, one big-endian
    uint32 per dimension, then the data in big-endian order.  Gzip-compressed
    files are detected by their magic bytes (``1f 8b``), whatever their name,
    and decompressed transparently.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order whose shape is the stored
        dimensions.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a valid IDX file: bad magic, unknown type code,
        zero or more than 8 dimensions, truncated header or data, trailing
        extra data, or a corrupt gzip stream.  The message names the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()

    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path!r}: corrupt gzip data ({exc})") from exc

    if len(raw) < 4:
        raise ValueError(
            f"{path!r}: not an IDX file: truncated header "
            f"({len(raw)} bytes, need at least 4)"
        )
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path!r}: not an IDX file: bad magic bytes "
            f"{raw[0]:#04x} {raw[1]:#04x} (expected 0x00 0x00)"
        )
    code, ndim = raw[2], raw[3]
    dtype = _IDX_DTYPES.get(code)
    if dtype is None:
        raise ValueError(f"{path!r}: not an IDX file: unknown type code {code:#04x}")
    if ndim == 0 or ndim > _IDX_MAX_DIMS:
        raise ValueError(
            f"{path!r}: not an IDX file: bad number of dimensions {ndim} "
            f"(expected 1 to {_IDX_MAX_DIMS})"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{path!r}: truncated IDX header: expected {header_size} bytes, "
            f"got {len(raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))

    count = 1
    for d in shape:  # Python ints: no overflow on absurd headers
        count *= d
    expected = count * dtype.itemsize
    actual = len(raw) - header_size
    if actual < expected:
        raise ValueError(
            f"{path!r}: truncated IDX data for shape {shape}: expected "
            f"{expected} bytes of data, got {actual}"
        )
    if actual > expected:
        raise ValueError(
            f"{path!r}: trailing data after IDX contents for shape {shape}: "
            f"expected {expected} bytes of data, got {actual}"
        )

    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header_size)
    # astype copies: the result is writable, native-endian and does not keep
    # the whole file's bytes alive.
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _find_file(folder: str, stem: str) -> str | None:
    """Return the path of ``stem`` or ``stem.gz`` in ``folder``, if any."""
    for name in (stem, stem + ".gz"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _search_dirs(name: str, root) -> list[tuple[str, str]]:
    """Folders to search, in order, as ``(folder, description)`` pairs."""
    if root is not None:
        root = os.fspath(root)
        return [(root, "root"), (os.path.join(root, name), "root/" + name)]
    dirs = []
    env = os.environ.get("CPUCNN_DATA")
    if env:
        dirs.append((os.path.join(env, name), "$CPUCNN_DATA/" + name))
    dirs.append((os.path.join(os.path.expanduser("~"), ".cpucnn", "datasets", name),
                 "~/.cpucnn/datasets/" + name))
    dirs.append((os.path.join(_SYSTEM_DIR, name), "system datasets folder"))
    return dirs


def _locate(name: str, title: str, root, how_to_get: str) -> dict[str, str]:
    """Find the first folder holding all four files; map stem -> path."""
    searched = []
    for folder, desc in _search_dirs(name, root):
        found = {stem: _find_file(folder, stem) for stem in _FILES}
        missing = [stem for stem, p in found.items() if p is None]
        if not missing:
            return found
        if len(missing) == len(_FILES):
            searched.append(f"  - {folder} ({desc}): not found")
        else:
            searched.append(
                f"  - {folder} ({desc}): incomplete, missing {', '.join(missing)}"
            )
    if root is None and not os.environ.get("CPUCNN_DATA"):
        searched.insert(0, "  - $CPUCNN_DATA/" + name + ": skipped, CPUCNN_DATA is not set")
    files = "\n".join(f"  {stem}" for stem in _FILES)
    raise FileNotFoundError(
        f"{title} dataset not found. It needs these four files in one folder "
        f"(each may also be gzipped, with a .gz suffix):\n{files}\n"
        f"Places searched:\n" + "\n".join(searched) + "\n" + how_to_get
    )


def _load_split(images_path: str, labels_path: str):
    x = load_idx(images_path)
    y = load_idx(labels_path)
    if x.ndim != 3 or x.shape[1:] != _IMAGE_SIZE:
        raise ValueError(
            f"{images_path!r}: expected images of shape (N, 28, 28), got {x.shape}"
        )
    if x.dtype != np.uint8:
        raise ValueError(f"{images_path!r}: expected uint8 images, got {x.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{labels_path!r}: expected 1-D labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{labels_path!r}: expected integer labels, got {y.dtype}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"image/label count mismatch: {images_path!r} has {x.shape[0]} images "
            f"but {labels_path!r} has {y.shape[0]} labels"
        )
    images = x.astype(np.float32).reshape(x.shape[0], 1, *_IMAGE_SIZE)
    images /= np.float32(255.0)
    return images, y.astype(np.int64)


def _load(name: str, title: str, root, how_to_get: str):
    paths = _locate(name, title, root, how_to_get)
    train = _load_split(paths[_TRAIN_IMAGES], paths[_TRAIN_LABELS])
    test = _load_split(paths[_TEST_IMAGES], paths[_TEST_LABELS])
    return train, test


_FASHION_HOWTO = (
    "To get them: on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist` "
    "(installs them into /usr/share/datasets/fashion-mnist/), or download the four "
    "files from https://github.com/zalandoresearch/fashion-mnist into "
    "~/.cpucnn/datasets/fashion-mnist/ (or $CPUCNN_DATA/fashion-mnist/), "
    "or pass root=<folder>. cpucnn never downloads anything itself."
)

_MNIST_HOWTO = (
    "To get them: download the four files of the MNIST database "
    "(http://yann.lecun.com/exdb/mnist/ or one of its mirrors) into "
    "~/.cpucnn/datasets/mnist/, or into $CPUCNN_DATA/mnist/ with the "
    "environment variable CPUCNN_DATA set to a data folder, or into "
    "/usr/share/datasets/mnist/, or pass root=<folder>. "
    "cpucnn never downloads anything itself."
)


def load_fashion_mnist(root=None):
    """Load Fashion-MNIST (Zalando's 28x28 grayscale clothing images).

    Parameters
    ----------
    root : str or os.PathLike, optional
        Folder holding the four IDX files (plain or ``.gz``); a
        ``fashion-mnist`` subfolder of it is also tried.  If None, search
        ``$CPUCNN_DATA/fashion-mnist``, ``~/.cpucnn/datasets/fashion-mnist``
        and ``/usr/share/datasets/fashion-mnist`` (Debian package
        ``dataset-fashion-mnist``), in that order.

    Returns
    -------
    ((x_train, y_train), (x_test, y_test))
        ``x`` float32 arrays of shape (N, 1, 28, 28) scaled to [0, 1];
        ``y`` int64 arrays of shape (N,) with class indices 0..9.
        Normally 60000 training and 10000 test samples.

    Raises
    ------
    FileNotFoundError
        If no searched folder holds all four files; the message lists the
        files, the places searched and how to obtain the data.
    ValueError
        If a file is corrupt, image and label counts differ, or the images
        are not 28x28.
    """
    return _load("fashion-mnist", "Fashion-MNIST", root, _FASHION_HOWTO)


def load_mnist(root=None):
    """Load MNIST (LeCun et al.'s 28x28 grayscale handwritten digits).

    Parameters
    ----------
    root : str or os.PathLike, optional
        Folder holding the four IDX files (plain or ``.gz``); an ``mnist``
        subfolder of it is also tried.  If None, search
        ``$CPUCNN_DATA/mnist``, ``~/.cpucnn/datasets/mnist`` and
        ``/usr/share/datasets/mnist``, in that order.

    Returns
    -------
    ((x_train, y_train), (x_test, y_test))
        ``x`` float32 arrays of shape (N, 1, 28, 28) scaled to [0, 1];
        ``y`` int64 arrays of shape (N,) with digit labels 0..9.

    Raises
    ------
    FileNotFoundError
        If no searched folder holds all four files; the message lists the
        files, the places searched and how to obtain the data.
    ValueError
        If a file is corrupt, image and label counts differ, or the images
        are not 28x28.
    """
    return _load("mnist", "MNIST", root, _MNIST_HOWTO)
