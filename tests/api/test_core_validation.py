"""cpucnn._core called directly validates what it is given, like the Python layer does."""

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers


@pytest.fixture
def core():
    m = cc.Sequential([L.Flatten(), L.Dense(3)], input_shape=(1, 2, 2), seed=0)
    m.compile("sgd")
    return m._m


BAD_LABELS = [np.array(["a", "b"]), np.array([None, object()], dtype=object), np.array([b"x", b"y"])]


@pytest.mark.parametrize("y", BAD_LABELS, ids=["str", "object", "bytes"])
def test_labels_that_do_not_convert_raise_type_error(core, y):
    x = np.zeros((2, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match="labels y must be convertible to int64"):
        core.train_step(x, y)
    with pytest.raises(TypeError, match="labels y must be convertible to int64"):
        core.evaluate(x, y, 2)


def test_mse_targets_that_do_not_convert_raise_type_error():
    m = cc.Sequential([L.Flatten(), L.Dense(3)], input_shape=(1, 2, 2), seed=0)
    m.compile("sgd", loss="mse")
    y = np.array([["a"] * 3] * 2)
    with pytest.raises(TypeError, match="targets y must be convertible to float32"):
        m._m.train_step(np.zeros((2, 1, 2, 2), np.float32), y)


def test_kernel_hooks_validate_shapes():
    k = cc._core.kernels
    x = np.zeros((1, 2, 5, 5), np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        k.conv2d_forward(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        k.conv2d_forward(x, w, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="empty weight"):
        k.conv2d_forward(x, np.zeros((4, 2, 0, 3), np.float32))
    with pytest.raises(ValueError, match="at most 2"):
        k.conv2d_forward(x, w, padding=(1 << 30, 0))
    with pytest.raises(ValueError, match="threads"):
        k.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), threads=0)
    with pytest.raises(ValueError, match="threads"):
        k.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), threads=1 << 20)
    assert k.conv2d_forward(x, w, np.zeros(4, np.float32)).shape == (1, 4, 3, 3)
