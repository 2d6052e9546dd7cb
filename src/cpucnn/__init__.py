"""cpucnn: train and run small convolutional neural networks fast on CPUs.

A Keras-like API over a C++ core (OpenMP, SIMD kernels): `Sequential` models of the layers in
`cpucnn.layers`, trained with `cpucnn.optimizers` and `cpucnn.callbacks`, saved to one ``.cnn`` file
(`Sequential.save`, `load`), exchanged with PyTorch (`from_torch`, `Sequential.to_torch`) and ONNX
(`Sequential.export_onnx`). Inputs are channels-first, (N, C, H, W) float32, unless a model is
built with ``data_format="channels_last"``.

Example:

    import cpucnn as cc
    L = cc.layers
    (x, y), (x_test, y_test) = cc.datasets.load_fashion_mnist()
    model = cc.Sequential([L.Conv2D(16, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
                           L.Flatten(), L.Dense(10)], input_shape=(1, 28, 28), seed=0)
    model.compile(optimizer=cc.optimizers.Adam(lr=1e-3), loss="cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3, validation_split=0.1)
    print(model.evaluate(x_test, y_test, metrics=["accuracy", "confusion_matrix"]))
"""

__docformat__ = "google"

import numbers

try:
    from . import _core
except ImportError as e:  # pragma: no cover - only when the build is missing
    raise ImportError(
        "cpucnn's compiled core (cpucnn._core) could not be imported. Install the package with "
        "`pip install .` (or a wheel) rather than running from the source tree. Cause: " + str(e)
    ) from e

from . import callbacks, data, datasets, distributed, layers, optimizers
from .model import Sequential, SubModel, load
from . import quantization
from .quantization import quantize
from .torch_interop import from_torch

__version__ = _core.__version__



def get_num_threads() -> int:
    """The number of threads every op uses (see `set_num_threads`; all cores by default)."""
    return _core.get_num_threads()


def available_isas() -> list:
    """The kernel paths (ISAs) this CPU can run, best first, e.g. ``["avx2", "scalar"]``."""
    return list(_core.available_isas())


def set_num_threads(n: int) -> None:
    """Sets the number of threads every op uses.

    Args:
        n (int): the thread count; n <= 0 means all cores.
    """
    _core.set_num_threads(int(n))


def set_isa(name: str) -> None:
    """Forces a kernel path; mainly for tests. The CPUCNN_ISA environment variable does the same at
    start-up.

    Args:
        name (str): ``"scalar"``, ``"avx2"`` or ``"avx512"`` on x86-64, ``"scalar"`` or ``"neon"`` on aarch64 (one of `available_isas()`).

    Raises:
        ValueError: an unknown path, or one this CPU cannot run.
    """
    _core.set_isa(str(name))


def set_max_activation_bytes(n: int) -> None:
    """Sets the most bytes one sample's activations may take in one buffer: a layer's output, or
    a convolution's unfolded input (im2col). Building a model, or loading one from a file, checks
    every layer against it before allocating anything, and raises ValueError naming the layer
    that exceeds it.

    Args:
        n (int): the limit in bytes, positive (the default is 1 GiB; raise it for very large inputs).

    Raises:
        TypeError: n is not an integer. ValueError: n is not in (0, 2**63).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_max_activation_bytes expects an integer number of bytes, got {n!r}")
    if not 0 < n < 2**63:
        raise ValueError(f"the activation limit must be a positive number of bytes below 2**63, got {n!r}")
    _core.set_max_activation_bytes(int(n))


def get_max_activation_bytes() -> int:
    """The limit set by `set_max_activation_bytes` (default 1 GiB = 1073741824)."""
    return _core.get_max_activation_bytes()


def cpu_info() -> dict:
    """A dict describing the machine and the kernels: the path in use (``isa``), the kernel each op
    uses, the CPU's features and the thread count."""
    return dict(_core.cpu_info())


__all__ = [
    "Sequential",
    "SubModel",
    "load",
    "quantize",
    "quantization",
    "from_torch",
    "layers",
    "optimizers",
    "callbacks",
    "data",
    "datasets",
    "distributed",
    "set_num_threads",
    "get_num_threads",
    "set_isa",
    "available_isas",
    "cpu_info",
    "set_max_activation_bytes",
    "get_max_activation_bytes",
    "torch_interop",
    "__version__",
]
