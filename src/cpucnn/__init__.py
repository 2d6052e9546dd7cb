"""cpucnn: train and run small convolutional neural networks fast on CPUs.

    import cpucnn as cc
    model = cc.Sequential([...layers...], input_shape=(1, 28, 28))
    model.compile(optimizer=cc.optimizers.Adam(lr=1e-3), loss="cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3)
"""

import numbers

try:
    from . import _core
except ImportError as e:  # pragma: no cover - only when the build is missing
    raise ImportError(
        "cpucnn's compiled core (cpucnn._core) could not be imported. Install the package with "
        "`pip install .` (or a wheel) rather than running from the source tree. Cause: " + str(e)
    ) from e

from . import callbacks, data, datasets, layers, optimizers
from .model import Sequential, load

__version__ = _core.__version__

get_num_threads = _core.get_num_threads
available_isas = _core.available_isas


def set_num_threads(n: int) -> None:
    """Sets the number of threads every op uses (n <= 0: all cores)."""
    _core.set_num_threads(int(n))


def set_isa(name: str) -> None:
    """Forces a kernel path ("scalar", "avx2", "avx512"); mainly for tests.
    The CPUCNN_ISA environment variable does the same at start-up."""
    _core.set_isa(str(name))


def set_max_activation_bytes(n: int) -> None:
    """Sets the most bytes one sample's activations may take in one buffer: a layer's output, or
    a convolution's unfolded input (im2col). Building a model, or loading one from a file, checks
    every layer against it before allocating anything, and raises ValueError naming the layer
    that exceeds it. The default is 1 GiB; raise it for very large inputs. ``n`` must be positive."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_max_activation_bytes expects an integer number of bytes, got {n!r}")
    if not 0 < n < 2**63:
        raise ValueError(f"the activation limit must be a positive number of bytes below 2**63, got {n!r}")
    _core.set_max_activation_bytes(int(n))


def get_max_activation_bytes() -> int:
    """The limit set by :func:`set_max_activation_bytes` (default 1 GiB = 1073741824)."""
    return _core.get_max_activation_bytes()


def cpu_info() -> dict:
    """The kernel path in use (``isa``), per-op kernels, CPU features, threads."""
    return dict(_core.cpu_info())


__all__ = [
    "Sequential",
    "load",
    "layers",
    "optimizers",
    "callbacks",
    "data",
    "datasets",
    "set_num_threads",
    "get_num_threads",
    "set_isa",
    "available_isas",
    "cpu_info",
    "set_max_activation_bytes",
    "get_max_activation_bytes",
    "__version__",
]
