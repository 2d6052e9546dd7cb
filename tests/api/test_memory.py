"""Long runs hold their memory: thousands of training steps and predictions on one model leave
the resident set where it was after a warm-up.

A leak of a few KiB per call (a batch of activations, a gradient, a prepared-weights entry per
parameter version, an array kept by the bindings) grows RSS past the bound over 2,000 calls;
allocator noise and caches filled once stay well under it (here: +0.00 to +0.01 MiB).
"""

import os
import sys

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers

STEPS = 2000
WARMUP = 200
BOUND_MIB = 5.0

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # see tests/conftest.py
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RSS from /proc/self/statm (Linux)"),
]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(autouse=True)
def not_under_a_sanitizer():
    """ASan/TSan keep freed memory in quarantine and shadow: RSS is theirs, not the library's."""
    with open("/proc/self/maps") as f:
        maps = f.read()
    for runtime in ("libasan", "libtsan"):
        if runtime in maps:
            pytest.skip(f"{runtime} is loaded: RSS measures its quarantine, not cpucnn")


def lenet_like():
    """LeNet-5 on 28x28 with a 3x3 conv (Winograd-eligible), BatchNorm and Dropout, so every kind
    of layer state and the prepared-weights cache are exercised."""
    model = cc.Sequential([L.Conv2D(8, 5, padding=2), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
                           L.Conv2D(16, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                           L.Dense(64), L.ReLU(), L.Dropout(0.25), L.Dense(10)],
                          input_shape=(1, 28, 28), seed=0)
    model.compile(cc.optimizers.Adam(lr=1e-3), "cross_entropy", metrics=["accuracy"])
    return model


def growth_over(calls, step):
    """RSS growth (MiB) from after WARMUP calls of step(i) to after `calls`, and the two readings."""
    for i in range(WARMUP):
        step(i)
    before = rss_mib()
    for i in range(WARMUP, calls):
        step(i)
    after = rss_mib()
    return after - before, before, after


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    return x, y


def test_training_steps_do_not_grow_memory(data):
    x, y = data
    model = lenet_like()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]

    def step(i):
        model.train_on_batch(*batches[i % len(batches)])

    grown, before, after = growth_over(STEPS, step)
    assert grown < BOUND_MIB, (f"{STEPS} training steps grew RSS by {grown:.1f} MiB after {WARMUP} "
                               f"({before:.1f} -> {after:.1f} MiB)")


def test_predictions_do_not_grow_memory(data):
    x, y = data
    model = lenet_like()
    model.train_on_batch(x[:16], y[:16])

    def step(i):
        # Three batch sizes: prepared (Winograd) weights and the plain paths, full and partial batches.
        model.predict(x[:(8, 16, 3)[i % 3]], batch_size=8)

    grown, before, after = growth_over(STEPS, step)
    assert grown < BOUND_MIB, (f"{STEPS} predictions grew RSS by {grown:.1f} MiB after {WARMUP} "
                               f"({before:.1f} -> {after:.1f} MiB)")


def test_training_between_predictions_does_not_grow_memory(data):
    """Every step bumps the parameter version, so every predict prepares its weights again: the
    cache must replace its entry, not add one per version."""
    x, y = data
    model = lenet_like()

    def step(i):
        j = 16 * (i % 4)
        model.train_on_batch(x[j:j + 16], y[j:j + 16])
        model.predict(x[:8])
        if i % 50 == 0:
            model.evaluate(x, y, batch_size=32)
            model.set_weights(model.get_weights())

    grown, before, after = growth_over(STEPS // 2, step)
    assert grown < BOUND_MIB, (f"{STEPS // 2} train+predict rounds grew RSS by {grown:.1f} MiB after "
                               f"{WARMUP} ({before:.1f} -> {after:.1f} MiB)")

