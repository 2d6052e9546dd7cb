"""Concurrent use of one model, and a model used across fork().

The model holds a readers-writer lock: predict/evaluate/get_weights/save share
it, training and every parameter write take it alone, so a reader sees the
old weights or the new ones, never a mix; waiting for it never holds the GIL.
Prepared inference weights follow a version counter bumped by every write.
"""

import multiprocessing as mp
import threading
import time

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers


def conv_net(seed=0):
    return cc.Sequential([L.Conv2D(16, 3, padding=1), L.ReLU(), L.Conv2D(16, 3, padding=1), L.ReLU(),
                          L.MaxPool2D(2), L.Flatten(), L.Dense(10)], input_shape=(3, 16, 16), seed=seed)


def run_threads(targets, seconds):
    """Runs each target(stop) in its own thread until `seconds` pass; re-raises the first error."""
    stop = threading.Event()
    errors = []

    def wrap(f):
        def run():
            try:
                f(stop)
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                errors.append(e)
                stop.set()
        return run

    threads = [threading.Thread(target=wrap(f)) for f in targets]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]


@pytest.fixture
def two_states():
    """A model and two weight sets with their predictions on x."""
    model = conv_net()
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    a = model.get_weights()
    b = conv_net(seed=1).get_weights()
    model.set_weights(b)
    pred_b = {bs: model.predict(x, batch_size=bs) for bs in (8, 3)}
    model.set_weights(a)
    pred_a = {bs: model.predict(x, batch_size=bs) for bs in (8, 3)}
    assert not np.array_equal(pred_a[8], pred_b[8])
    return model, x, a, b, pred_a, pred_b


def test_predict_sees_old_or_new_weights_never_a_mix(two_states, threads):
    cc.set_num_threads(2)
    model, x, a, b, pred_a, pred_b = two_states
    seen = {"a": 0, "b": 0, "writes": 0}

    def writer(stop):
        while not stop.is_set():
            model.set_weights(b)
            model.set_weights(a)
            seen["writes"] += 2

    def reader(stop):
        while not stop.is_set():
            for bs in (8, 3):   # batch 8: Winograd with prepared weights; batch 3: im2col + GEMM
                out = model.predict(x, batch_size=bs)
                if np.array_equal(out, pred_a[bs]):
                    seen["a"] += 1
                elif np.array_equal(out, pred_b[bs]):
                    seen["b"] += 1
                else:
                    raise AssertionError("predict returned a mix of two weight sets")

    run_threads([writer, reader, reader], 1.5)
    assert seen["writes"] >= 4 and seen["a"] + seen["b"] >= 4, seen


def test_layer_weight_writes_and_get_weights_are_whole(two_states, threads):
    cc.set_num_threads(2)
    model, x, a, b, _, _ = two_states
    conv = model.layers[2]
    wa, wb = a[2], b[2]          # the second conv's weight

    def writer(stop):
        while not stop.is_set():
            conv.weight = wb
            conv.weight = wa

    def reader(stop):
        while not stop.is_set():
            w = model.get_weights()[2]
            assert np.array_equal(w, wa) or np.array_equal(w, wb), "get_weights returned a torn tensor"

    run_threads([writer, reader], 1.0)


def test_inference_during_training_leaves_training_unchanged(threads):
    """predict/evaluate in other threads while fit runs: no crash, finite results, and the trained
    weights are exactly those of the same run alone."""
    cc.set_num_threads(2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 64)

    def trained(readers):
        model = conv_net()
        model.compile(cc.optimizers.Adam(lr=1e-3), metrics=["accuracy"])

        def reader(stop):
            while not stop.is_set():
                assert np.all(np.isfinite(model.predict(x[:8])))
                assert np.isfinite(model.evaluate(x[:16], y[:16])["loss"])

        def trainer(stop):
            model.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=0)
            stop.set()

        run_threads([trainer] + [reader] * readers, 120)
        return model.get_weights()

    for w0, w1 in zip(trained(0), trained(2)):
        np.testing.assert_array_equal(w0, w1)


def test_waiting_for_the_lock_does_not_hold_the_gil(threads):
    """A predict waiting while another thread trains leaves the interpreter free."""
    cc.set_num_threads(1)
    model = conv_net()
    model.compile("sgd")
    xb = np.random.default_rng(0).standard_normal((512, 3, 16, 16)).astype(np.float32)
    yb = np.zeros(512, np.int64)
    t0 = time.perf_counter()
    model.train_on_batch(xb, yb)
    step = time.perf_counter() - t0           # one long step: the window in which predict waits
    started = threading.Event()

    def trainer():
        started.set()
        for _ in range(3):
            model.train_on_batch(xb, yb)

    def predictor():
        started.wait()
        for _ in range(20):
            model.predict(xb[:1])

    ticks = 0
    ts = [threading.Thread(target=trainer), threading.Thread(target=predictor)]
    for t in ts:
        t.start()
    end = time.perf_counter() + 2 * step
    while time.perf_counter() < end:   # pure Python: runs only while no thread holds the GIL
        ticks += 1
        time.sleep(0.001)
    for t in ts:
        t.join(120)
    # With the GIL held by a waiting predict, this loop would stall for whole training steps.
    assert ticks >= 0.2 * (2 * step) / 0.0015, (ticks, step)


def test_prepared_weights_follow_the_version(threads):
    """Winograd weights are prepared once per parameter version and variant: alternating batch
    sizes do not prepare them again; set_weights, a layer write and a training step do."""
    cc.set_num_threads(2)
    k = cc._core.kernels
    model = cc.Sequential([L.Conv2D(16, 3, padding=1), L.Flatten(), L.Dense(4)], input_shape=(16, 16, 16), seed=0)
    x = np.random.default_rng(1).standard_normal((64, 16, 16, 16)).astype(np.float32)
    model.predict(x[:1])
    model.predict(x)
    before = k.winograd_prepared_count()
    assert before >= 1, "the layer does not run Winograd with prepared weights"
    for _ in range(5):
        model.predict(x[:1])
        model.predict(x)
    assert k.winograd_prepared_count() == before, "alternating batch sizes prepared the weights again"

    other = cc.Sequential([L.Conv2D(16, 3, padding=1), L.Flatten(), L.Dense(4)], input_shape=(16, 16, 16), seed=5)
    model.set_weights(other.get_weights())
    np.testing.assert_array_equal(model.predict(x[:1]), other.predict(x[:1]))
    assert k.winograd_prepared_count() > before
    model.layers[0].weight = model.layers[0].weight * 2
    np.testing.assert_array_equal(model.predict(x[:1]), _predict_with(model.get_weights(), x[:1]))
    model.compile(cc.optimizers.SGD(lr=0.1), loss="mse")
    model.train_on_batch(x[:4], np.ones((4, 4), np.float32))
    np.testing.assert_array_equal(model.predict(x[:1]), _predict_with(model.get_weights(), x[:1]))


def _predict_with(weights, x):
    fresh = cc.Sequential([L.Conv2D(16, 3, padding=1), L.Flatten(), L.Dense(4)], input_shape=(16, 16, 16), seed=9)
    fresh.set_weights(weights)
    return fresh.predict(x)


# -- fork ---------------------------------------------------------------------------------------

_FORKED = {}


def _child_predict(q):
    m, x = _FORKED["model"], _FORKED["x"]
    q.put((cc.get_num_threads(), m.predict(x)))


def test_model_used_before_fork_works_in_the_child(threads):
    """libgomp's thread pool does not survive fork(): the child runs on one thread instead of
    hanging in its first parallel region."""
    cc.set_num_threads(2)
    parent_threads = cc.get_num_threads()   # 1 in a build without OpenMP
    model = conv_net()
    x = np.random.default_rng(2).standard_normal((32, 3, 16, 16)).astype(np.float32)
    expected = model.predict(x)         # the parent's OpenMP pool is up
    _FORKED.update(model=model, x=x)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_predict, args=(q,))
    p.start()
    try:
        nthreads, out = q.get(timeout=60)
    finally:
        p.join(60)
        if p.is_alive():
            p.kill()
    assert p.exitcode == 0
    assert nthreads == 1
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert cc.get_num_threads() == parent_threads     # the parent keeps its threads
