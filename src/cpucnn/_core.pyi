"""Type stub of cpucnn._core, the pybind11 module built from cpp/bindings/*.cc.

Kept in step with the bindings by tests/api/test_stub.py (names, kinds,
parameter names, defaults and the keys of the returned dicts). Arguments the
bindings leave unnamed (pybind11's ``arg0``, ``arg1``) are positional-only.
"""

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

__version__: str

class _CpuFeatures(TypedDict):
    avx2: bool
    fma: bool
    avx512f: bool
    avx512bw: bool
    avx512dq: bool
    avx512vl: bool
    avx512_vnni: bool
    avx512_bf16: bool
    amx: bool
    asimd: bool  # aarch64: NEON
    asimddp: bool  # aarch64: dot product
    fphp: bool  # aarch64: FP16 scalar arithmetic
    asimdhp: bool  # aarch64: FP16 vector arithmetic

class _CpuInfo(TypedDict):
    isa: str
    available_isas: list[str]
    kernels: dict[str, str]
    brand: str
    features: _CpuFeatures
    num_threads: int
    openmp: bool
    version: str

class _LayerInfo(TypedDict):
    type: str
    label: str
    config: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: list[tuple[str, tuple[int, ...], bool]]
    trainable_count: int
    trainable: bool
    macs: int

def set_num_threads(n: int) -> None:
    """Threads used by every op (n <= 0: all cores)."""

def get_num_threads() -> int: ...
def available_isas() -> list[str]:
    """ISAs this CPU can run, best first."""

def set_isa(name: str) -> None:
    """Force a kernel path (scalar, avx2, avx512)."""

def cpu_info() -> _CpuInfo: ...
def set_max_activation_bytes(n: int) -> None:
    """The most bytes one sample's activations may take in one buffer (a layer's output or its unfolded input); models built or loaded afterwards are checked against it. n > 0."""

def get_max_activation_bytes() -> int: ...

class Model:
    """A built Sequential model; owns parameters, gradients, optimizer state and buffers."""

    def __init__(self, architecture: str, seed: int) -> None: ...
    def architecture(self) -> str:
        """The architecture as JSON text: input_shape and the layer configs."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...
    @property
    def output_shape(self) -> tuple[int, ...]: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def step_count(self) -> int: ...
    @step_count.setter
    def step_count(self, value: int, /) -> None: ...
    def layer_info(self, index: int, /) -> _LayerInfo: ...
    def set_trainable(self, index: int, trainable: bool) -> None:
        """layer.trainable: False freezes the layer's parameters."""
    def get_param(self, index: int, name: str, /) -> NDArray[np.float32]: ...
    def set_param(self, index: int, name: str, value: ArrayLike, /) -> None: ...
    def get_params(self, which: Sequence[tuple[int, str]]) -> list[NDArray[np.float32]]: ...
    def set_params(self, items: Sequence[tuple[int, str, ArrayLike]]) -> None: ...
    def compile(self, loss: str, optimizer: str, /) -> None:
        """loss: "cross_entropy" or "mse"; optimizer: its config as JSON text."""

    @property
    def compiled(self) -> bool: ...
    @property
    def loss(self) -> str: ...
    def optimizer_config(self) -> str: ...
    @property
    def lr(self) -> float: ...
    @lr.setter
    def lr(self, value: float, /) -> None: ...
    @property
    def optimizer_steps(self) -> int: ...
    @property
    def label_smoothing(self) -> float: ...
    @label_smoothing.setter
    def label_smoothing(self, value: float, /) -> None: ...
    def train_step(self, x: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> tuple[float, int]:
        """One training step; returns (mean loss, top-1 hits). y: labels (N,), or (N, outputs) targets (mse's, or cross_entropy's probabilities); sample_weight: (N,) or None."""

    def compute_gradients(self, x: ArrayLike, y: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> tuple[float, int]:
        """train_step's first half: forward, loss, backward; returns (mean loss, top-1 hits) and leaves the gradients of the batch's mean loss in the parameters (apply_gradients updates them)."""

    def compute_gradients_overlapped(self, x: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None,
                                     pack_scale: float, on_ready: Callable[[int, int], None],
                                     bucket_floats: int) -> tuple[float, int]:
        """compute_gradients that packs the gradients (times pack_scale) into gradient_buffer() during the backward pass and calls on_ready(offset, count) for each bucket as soon as it is final."""

    def gradient_buckets(self, bucket_floats: int) -> list[tuple[int, int]]:
        """The (offset, count) ranges compute_gradients_overlapped hands over, in order."""

    def idle_gradients(self) -> None:
        """A data-parallel step without samples: zero gradients, the same collective calls as a step."""

    def gradient_buffer(self) -> NDArray[np.float32]:
        """The gradients as one contiguous float32 array (a view, no copy), in parameter order, then 2 slots for the caller."""

    def pack_gradients(self, scale: float) -> None:
        """gradient_buffer() = gradients * scale."""

    def apply_gradients(self, unpack_scale: float | None = None) -> None:
        """train_step's second half: clip and update. With unpack_scale, the gradients are first read back from gradient_buffer() times unpack_scale."""

    @property
    def dropout_stream(self) -> int:
        """Dropout's random stream in training (0: the model's seed; data-parallel training sets the rank)."""
    @dropout_stream.setter
    def dropout_stream(self, value: int, /) -> None: ...
    def set_collective(self, fn: Callable[[NDArray[np.float64]], None] | None) -> None:
        """fn(values: float64 array) sums values over the processes in place (synced BatchNorm statistics); None: per-process statistics."""

    def predict(self, x: ArrayLike, batch_size: int = 256) -> NDArray[np.float32]: ...
    def predict_outputs(
        self, x: ArrayLike, begin: int, capture: Sequence[int], batch_size: int = 256
    ) -> list[NDArray[np.float32]]:
        """Runs layers from `begin` and returns the outputs of the layers in `capture` (ascending)."""

    def evaluate(self, x: ArrayLike, y: ArrayLike, batch_size: int = 256,
                 sample_weight: ArrayLike | None = None) -> tuple[float, int, int, int]:
        """Returns (loss sum, top-1 hits, top-5 hits, count)."""

    def save(self, path: str, include_optimizer: bool = True, metadata: Sequence[tuple[str, str]] = ...) -> None: ...
    @staticmethod
    def load(path: str, /) -> tuple[Model, dict[str, Any]]:
        """(model, metadata) from a .cnn file."""

class BatchLoader:
    """One epoch of a cpucnn.data pipeline: batches made by C++ worker threads."""

    def __init__(
        self,
        x: NDArray[Any],
        y: NDArray[Any] | None,
        order: ArrayLike,
        batch_size: int,
        drop_remainder: bool,
        out_hw: tuple[int, int],
        pad: int,
        crop: bool,
        flip: bool,
        scale: float,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int,
        epoch: int,
        index_offset: int,
        workers: int,
        prefetch: int,
    ) -> None: ...
    @property
    def num_batches(self) -> int: ...
    @property
    def live_workers(self) -> int: ...
    def next(self) -> tuple[NDArray[np.float32], NDArray[Any] | None] | None:
        """The next batch (x, y) in order, or None after the last; waits without the GIL."""
    def close(self) -> None:
        """Stops and joins the worker threads (also done when the loader is destroyed)."""

class _Kernels:
    """cpucnn._core.kernels: the operators, for kernel tests and benchmarks."""

    @staticmethod
    def gemm(
        a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False, threads: int = 1
    ) -> NDArray[np.float32]:
        """C = op(A) op(B) through the packed GEMM."""

    @staticmethod
    def fma_peak_gflops(isa: str, threads: int = 1, seconds: float = 0.5) -> float:
        """The measured FMA peak (GFLOP/s) of `threads` threads running FMA chains of `isa` ('avx2'/'avx512')."""

    @staticmethod
    def conv2d_forward(
        x: ArrayLike,
        w: ArrayLike,
        bias: ArrayLike | None = None,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
        relu: bool = False,
    ) -> NDArray[np.float32]: ...
    @staticmethod
    def conv2d_backward(
        x: ArrayLike,
        w: ArrayLike,
        dy: ArrayLike,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
        need_dx: bool = True,
        need_dw: bool = True,
    ) -> tuple[NDArray[np.float32] | None, NDArray[np.float32] | None, NDArray[np.float32] | None]:
        """(dx, dw, db) of the convolution; need_dw=False computes dx alone (a frozen layer), None for dw
        and db."""
    @staticmethod
    def set_conv2d_winograd(mode: str) -> None:
        """Winograd (F(2x2) or F(4x4), 3x3) for eligible 3x3 stride-1 convolutions: 'auto' (where it pays; the
        default), 'always' (wherever it applies) or 'never' (im2col + GEMM)."""
    @staticmethod
    def conv2d_winograd() -> str:
        """The Winograd mode: 'auto', 'always' or 'never'."""
    @staticmethod
    def set_conv2d_winograd_tile(tile: str) -> None:
        """Which Winograd variant runs where Winograd does: 'auto' (F(4x4, 3x3) where the ISA has it,
        on maps of at least 8x8 outputs with at least 16 of its 4x4 tiles per thread, else F(2x2, 3x3);
        the default), '2x2' or '4x4' (F(4x4) wherever Winograd runs, on ISAs that have it; F(2x2) on
        the others)."""
    @staticmethod
    def fail_allocation_after(n: int) -> None:
        """Testing: the n-th allocation of the core from now (0: the next) fails with MemoryError, once; -1: off."""
    @staticmethod
    def release_scratch() -> None:
        """Testing: frees the calling thread's scratch arena, so the next operations reserve it again."""
    @staticmethod
    def allocations_in_parallel_regions() -> int:
        """Testing: how many allocations of the core have run inside an OpenMP parallel region
        (process-wide); operators plan their scratch before their regions, so this stays 0."""
    @staticmethod
    def winograd_prepared_count() -> int:
        """How many times inference has transformed and packed a layer's Winograd weights (process-wide)."""
    @staticmethod
    def conv2d_packed_count() -> int:
        """How many times inference has packed the weights of a layer on the im2col + GEMM or
        output-channels-in-lanes paths (process-wide)."""
    @staticmethod
    def maxpool2d_forward(
        x: ArrayLike, pool: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int] = (0, 0)
    ) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """(y, argmax): the current ISA's max-pooling kernel over the last two axes, one thread."""
    @staticmethod
    def maxpool2d_backward(
        dy: ArrayLike,
        argmax: ArrayLike,
        in_hw: tuple[int, int],
        pool: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int] = (0, 0),
    ) -> NDArray[np.float32]:
        """dx: the current ISA's max-pooling backward kernel (argmax from maxpool2d_forward), one thread."""
    @staticmethod
    def sgd_update(
        w: ArrayLike,
        g: ArrayLike,
        buf: ArrayLike,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        first_step: bool = False,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(w, buf) after one step of the current ISA's SGD kernel (inputs unchanged), one thread."""
    @staticmethod
    def adam_update(
        w: ArrayLike,
        g: ArrayLike,
        m: ArrayLike,
        v: ArrayLike,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        step: int = 1,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """(w, m, v) after step `step` (from 1) of the current ISA's Adam kernel (inputs unchanged), one thread."""
    @staticmethod
    def conv2d_winograd_tile() -> str:
        """The Winograd variant setting: 'auto', '2x2' or '4x4'."""

kernels: _Kernels

class _Int8:
    """cpucnn._core.int8: the int8 kernels by ISA, for tests and benchmarks."""

    @staticmethod
    def isas() -> list[str]:
        """The int8 GEMM variants this CPU runs, best first."""

    @staticmethod
    def qgemm(
        isa: str,
        w: ArrayLike,
        x: ArrayLike,
        ibias: ArrayLike,
        mult: ArrayLike,
        add: ArrayLike,
        lo: float,
        hi: float,
        relu: bool,
        out_u8: bool,
    ) -> NDArray[Any]:
        """y (m, n) = requantise(w (m, k) int8 x x (n, k) u8 transposed) with the GEMM variant `isa`."""

    @staticmethod
    def qgemv(
        isa: str,
        w: ArrayLike,
        x: ArrayLike,
        ibias: ArrayLike,
        mult: ArrayLike,
        add: ArrayLike,
        lo: float,
        hi: float,
        relu: bool,
        out_u8: bool,
    ) -> NDArray[Any]:
        """y (n, m): each row of x (n, k) u8 through the one-column kernel of `isa` ('scalar' or 'avx2')."""

    @staticmethod
    def set_conv2d_winograd(mode: str) -> None:
        """The int8 Winograd F(2x2, 3x3) path of quantized 3x3 stride-1 convolutions (exact: the same outputs
        as the direct path): 'auto' (where it pays; the default), 'always' (wherever it applies: int32 sums
        cannot overflow) or 'never' (the direct paths). Process-wide."""
    @staticmethod
    def conv2d_winograd() -> str:
        """The int8 Winograd mode: 'auto', 'always' or 'never'."""
    @staticmethod
    def winograd_runs() -> int:
        """How many quantized convolutions have run on the int8 Winograd path (process-wide)."""
    @staticmethod
    def quantize(isa: str, x: ArrayLike, scale: float, zero_point: float) -> NDArray[np.uint8]: ...
    @staticmethod
    def dequantize(isa: str, q: ArrayLike, scale: float, zero_point: float) -> NDArray[np.float32]: ...
    @staticmethod
    def maxpool2d(isa: str, x: ArrayLike, pool: int, stride: int, padding: int) -> NDArray[np.uint8]: ...

int8: _Int8
