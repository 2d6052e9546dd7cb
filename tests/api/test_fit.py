"""Sequential.fit end to end on small synthetic data: learning, History,
validation, seeded shuffling, batching, progress output, Ctrl-C, dtypes and
initial_epoch."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")

L = cc.layers


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def two_blobs(n=64, seed=0, hw=8):
    """Two separable classes of 1 x hw x hw images: class 0 bright on top, class 1 bright at the bottom."""
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    x = r.normal(0.0, 0.3, (n, 1, hw, hw)).astype(np.float32)
    x[y == 0, :, : hw // 2, :] += 1.0
    x[y == 1, :, hw // 2:, :] += 1.0
    return x, y


def small_model(seed=0, optimizer=None, dropout=False, hw=8):
    layers = [L.Conv2D(4, 3, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Flatten()]
    if dropout:
        layers.append(L.Dropout(0.25))
    layers.append(L.Dense(2))
    m = cc.Sequential(layers, input_shape=(1, hw, hw), seed=seed)
    m.compile(optimizer=optimizer or cc.optimizers.SGD(lr=0.1, momentum=0.5), loss="cross_entropy",
              metrics=["accuracy"])
    return m


def weights_equal(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


class Recorder(cc.callbacks.Callback):
    def __init__(self, action=None):
        super().__init__()
        self.action = action
        self.batches = []  # (epoch, batch, size)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        self.batches.append((self.epoch, batch, logs["size"]))
        if self.action is not None:
            self.action(self.epoch, batch)


# -- learning and History ---------------------------------------------------------------------

def test_fit_learns_and_fills_history():
    x, y = two_blobs(96)
    xv, yv = two_blobs(32, seed=1)
    m = small_model()
    h = m.fit(x, y, epochs=4, batch_size=16, validation_data=(xv, yv), seed=0, verbose=0)
    assert isinstance(h, cc.callbacks.History)
    assert m.history is h
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 4 for v in h.history.values()), {k: len(v) for k, v in h.history.items()}
    assert h.epoch == [0, 1, 2, 3]
    assert all(isinstance(v, float) for vals in h.history.values() for v in vals)
    loss = h.history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss
    assert h.history["accuracy"][-1] > 0.95
    assert h.history["val_accuracy"][-1] > 0.95
    assert h.history["lr"] == pytest.approx([0.1] * 4)
    assert not h.interrupted
    # The last epoch's validation numbers are those of the final weights.
    ev = m.evaluate(xv, yv)
    assert h.history["val_loss"][-1] == ev["loss"]
    assert h.history["val_accuracy"][-1] == ev["accuracy"]


def test_history_without_validation_or_metrics():
    x, y = two_blobs(32)
    m = cc.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 8, 8), seed=0)
    m.compile(cc.optimizers.SGD(lr=0.1))
    h = m.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    assert set(h.history) == {"loss", "lr"}
    assert len(h.history["loss"]) == 2


def test_training_loss_is_the_epoch_mean_of_batch_losses():
    x, y = two_blobs(10)
    m = small_model()
    sizes_losses = []

    class Batches(cc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            sizes_losses.append((logs["size"], logs["loss"]))

    h = m.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0, callbacks=[Batches()])
    assert [s for s, _ in sizes_losses] == [4, 4, 2]
    want = sum(s * l for s, l in sizes_losses) / 10
    assert h.history["loss"][0] == pytest.approx(want, rel=1e-12)


# -- validation_split ---------------------------------------------------------------------------

def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, y = two_blobs(40)
    # Make the held-out tail distinguishable: a different class balance and brightness.
    x[30:] *= 3.0
    y[30:] = 1
    a = small_model(seed=3)
    h = a.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, seed=7, verbose=0)
    # Validation is exactly the last 10 samples, evaluated with the final weights ...
    ev = a.evaluate(x[30:], y[30:])
    assert h.history["val_loss"][-1] == ev["loss"]
    assert h.history["val_accuracy"][-1] == ev["accuracy"]
    # ... and training saw exactly the first 30, shuffled the same way.
    b = small_model(seed=3)
    b.fit(x[:30], y[:30], epochs=2, batch_size=8, seed=7, verbose=0)
    assert weights_equal(a.get_weights(), b.get_weights())
    # Sanity: training on a different 30 samples gives different weights.
    c = small_model(seed=3)
    c.fit(x[10:], y[10:], epochs=2, batch_size=8, seed=7, verbose=0)
    assert not weights_equal(a.get_weights(), c.get_weights())


def test_validation_data_overrides_split_and_bad_splits_are_rejected():
    x, y = two_blobs(20)
    m = small_model()
    h = m.fit(x, y, epochs=1, batch_size=8, validation_data=(x[:4], y[:4]), validation_split=0.5,
              seed=0, verbose=0)
    assert m.optimizer.iterations == 3   # all 20 samples trained: the split was ignored
    assert h.history["val_loss"][0] == m.evaluate(x[:4], y[:4])["loss"]
    for bad in (1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="validation_split"):
            m.fit(x, y, validation_split=bad, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(x[:2], y[:2], validation_split=0.6, verbose=0)   # leaves no training sample
    h = m.fit(x[:2], y[:2], validation_split=0.1, verbose=0)   # one each, as Keras
    assert len(h.history["val_loss"]) == 1


# -- shuffling and batching -------------------------------------------------------------------

def test_seeded_shuffling_is_reproducible():
    x, y = two_blobs(48)

    def run(seed, shuffle=True):
        m = small_model(seed=1, dropout=True)
        m.fit(x, y, epochs=2, batch_size=8, seed=seed, shuffle=shuffle, verbose=0)
        return m.get_weights()

    w5 = run(5)
    assert weights_equal(w5, run(5))
    assert not weights_equal(w5, run(6))
    assert not weights_equal(w5, run(5, shuffle=False))
    assert weights_equal(run(5, shuffle=False), run(6, shuffle=False))   # no shuffling: seed only affects order


@pytest.mark.parametrize("nthreads", [1, 2])
def test_seed_reproducible_across_threads(nthreads):
    cc.set_num_threads(nthreads)
    x, y = two_blobs(24)
    runs = []
    for _ in range(2):
        m = small_model(seed=2)
        m.fit(x, y, epochs=1, batch_size=8, seed=11, verbose=0)
        runs.append(m.get_weights())
    assert weights_equal(*runs)


def test_last_partial_batch_is_trained():
    x, y = two_blobs(10)
    m = small_model(seed=4)
    rec = Recorder()
    m.fit(x, y, epochs=2, batch_size=4, shuffle=False, seed=0, verbose=0, callbacks=[rec])
    assert m.optimizer.iterations == 6
    assert m._m.step_count == 6
    assert rec.batches == [(0, 0, 4), (0, 1, 4), (0, 2, 2), (1, 0, 4), (1, 1, 4), (1, 2, 2)]
    # Same as three train_on_batch calls per epoch over slices [0:4], [4:8], [8:10].
    ref = small_model(seed=4)
    for _ in range(2):
        for lo, hi in ((0, 4), (4, 8), (8, 10)):
            ref.train_on_batch(x[lo:hi], y[lo:hi])
    assert weights_equal(m.get_weights(), ref.get_weights())


@contextlib.contextmanager
def spying_train_step(model, record):
    """Within the block, every batch fit hands the core goes through record(xb, yb) first."""
    real_m = model._m

    class Spy:
        def __getattr__(self, name):
            return getattr(real_m, name)

        def train_step(self, xb, yb):
            record(xb, yb)
            return real_m.train_step(xb, yb)

    model._m = Spy()
    try:
        yield
    finally:
        model._m = real_m


def test_shuffled_batches_cover_every_sample_once_per_epoch():
    n = 13
    x, y = two_blobs(n)
    x[:, 0, 0, 0] = np.arange(n)          # tag each sample in a pixel
    seen = []
    m = small_model()

    def record(xb, yb):
        assert isinstance(xb, np.ndarray) and xb.dtype == np.float32 and xb.flags.c_contiguous
        assert yb.dtype == np.int64
        seen.append(xb[:, 0, 0, 0].astype(int).tolist())

    with spying_train_step(m, record):
        m.fit(x, y, epochs=2, batch_size=5, seed=3, verbose=0)
    assert [len(b) for b in seen] == [5, 5, 3, 5, 5, 3]
    e0, e1 = sum(seen[:3], []), sum(seen[3:], [])
    assert sorted(e0) == list(range(n)) and sorted(e1) == list(range(n))
    assert e0 != list(range(n)) and e0 != e1   # shuffled, differently each epoch


# -- input conversion ---------------------------------------------------------------------------

def test_float64_and_list_inputs_match_float32():
    x, y = two_blobs(24)

    def run(xx, yy):
        m = small_model(seed=5)
        h = m.fit(xx, yy, epochs=2, batch_size=8, seed=1, verbose=0)
        return m.get_weights(), h.history["loss"]

    w32, l32 = run(x, y)
    w64, l64 = run(x.astype(np.float64), y.astype(np.int32))
    assert weights_equal(w32, w64) and l32 == l64
    wl, ll = run(x.tolist(), y.tolist())
    assert weights_equal(w32, wl) and l32 == ll


def test_inputs_converted_once_not_per_batch(monkeypatch):
    """x (float64 here) is converted to float32 once; every batch handed to the core is already
    a float32 C-contiguous array (so the binding converts nothing per batch)."""
    import cpucnn.model as model_mod

    x, y = two_blobs(30)
    x64 = np.asfortranarray(x.astype(np.float64))
    calls = []
    real_as_input = model_mod._as_input

    def counting_as_input(arr, what="x"):
        calls.append(what)
        return real_as_input(arr, what)

    monkeypatch.setattr(model_mod, "_as_input", counting_as_input)
    m = small_model()
    batches = []
    with spying_train_step(m, lambda xb, yb: batches.append((xb.dtype, xb.flags.c_contiguous))):
        m.fit(x64, y, epochs=3, batch_size=4, seed=0, verbose=0)
    assert calls == ["x"]
    assert len(batches) == 3 * 8 and set(batches) == {(np.dtype(np.float32), True)}


def test_fit_rejects_bad_arguments():
    x, y = two_blobs(8)
    m = small_model()
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        m.fit(x, y, epochs=-1, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        m.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="initial_epoch"):
        m.fit(x, y, initial_epoch=-1, verbose=0)
    x[3, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="sample 3"):
        m.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="compiled"):
        cc.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 8, 8)).fit(x, y, verbose=0)
    with pytest.raises(TypeError):
        m.fit(two_blobs(8)[0], y, callbacks=[object()], verbose=0)


# -- progress output ----------------------------------------------------------------------------

def test_verbose_0_prints_nothing(capsys):
    x, y = two_blobs(16)
    small_model().fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, seed=0)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = two_blobs(16)
    small_model().fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=2, seed=0)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3, out
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3"), line
        for key in ("loss:", "accuracy:", "val_loss:", "val_accuracy:", "img/s"):
            assert key in line, line
    assert err == ""


def test_verbose_1_shows_a_progress_bar(capsys):
    x, y = two_blobs(16)
    small_model().fit(x, y, epochs=2, batch_size=4, validation_split=0.25, verbose=1, seed=0)
    out, err = capsys.readouterr()
    assert "Epoch 1/2" in err and "Epoch 2/2" in err
    assert "3/3" in err                       # steps
    assert "loss=" in err and "img/s=" in err  # running metrics and throughput
    assert "val_loss=" in err                 # the epoch's validation result on the finished bar
    assert out == ""


# -- Ctrl-C -------------------------------------------------------------------------------------

def test_keyboard_interrupt_stops_cleanly_after_the_current_batch(capsys):
    x, y = two_blobs(40)
    m = small_model(seed=6)
    initial = m.get_weights()

    def interrupt(epoch, batch):
        if (epoch, batch) == (1, 2):
            raise KeyboardInterrupt

    ends = []

    class End(cc.callbacks.Callback):
        def on_train_end(self, logs=None):
            ends.append(True)

    rec = Recorder(interrupt)
    h = m.fit(x, y, epochs=5, batch_size=8, seed=0, verbose=1, callbacks=[rec, End()])   # must not raise
    out, _ = capsys.readouterr()
    assert "Interrupted in epoch 2" in out
    assert h.interrupted and m.history is h
    assert h.epoch == [0] and len(h.history["loss"]) == 1   # only completed epochs
    assert m.optimizer.iterations == 5 + 3                  # epoch 0, then batches 0..2 of epoch 1
    assert rec.batches[-1] == (1, 2, 8)
    assert ends == [True]
    assert not weights_equal(m.get_weights(), initial)
    # The kept weights are exactly those after 8 steps of uninterrupted training.
    ref = small_model(seed=6)
    stop_ref = Recorder(lambda e, b: setattr(ref, "stop_training", (e, b) == (1, 2)))
    ref.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0, callbacks=[stop_ref])
    assert ref.optimizer.iterations == 8
    assert weights_equal(m.get_weights(), ref.get_weights())
    # The model stays usable: training continues.
    m.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    assert m.optimizer.iterations == 13


def test_keyboard_interrupt_during_validation_is_also_clean():
    x, y = two_blobs(16)
    m = small_model()

    class InterruptAtEpochEnd(cc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    h = m.fit(x, y, epochs=4, batch_size=8, seed=0, verbose=0, callbacks=[InterruptAtEpochEnd()])
    assert h.interrupted and h.epoch == [0]
    assert m.optimizer.iterations == 4


# A Ctrl-C may land anywhere in fit: in a callback, in the progress bar, in validation, in the epoch's
# bookkeeping, while fit is already handling a first one, or after the last step. Wherever it lands, fit
# returns normally with history.interrupted set and the weights of every finished step kept.

@pytest.fixture
def default_sigint():
    """Python's own Ctrl-C handling during the test, whatever the runner left: a CI job started in the
    background inherits SIGINT ignored (or blocked), and then no Ctrl-C reaches fit at all."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    signal.signal(signal.SIGINT, before)


def ctrl_c(how):
    if how == "signal":
        signal.raise_signal(signal.SIGINT)   # a real Ctrl-C, handled wherever Python is
    else:
        raise KeyboardInterrupt              # what a callback may also raise itself


class Hooks(cc.callbacks.Callback):
    """Calls at(hook, epoch, batch) from every hook; counts on_train_end."""

    def __init__(self, at):
        super().__init__()
        self.at, self.epoch, self.train_ends = at, None, 0

    def on_train_begin(self, logs=None):
        self.at("on_train_begin", None, None)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.at("on_epoch_begin", epoch, None)

    def on_batch_end(self, batch, logs=None):
        self.at("on_batch_end", self.epoch, batch)

    def on_epoch_end(self, epoch, logs=None):
        self.at("on_epoch_end", epoch, None)

    def on_train_end(self, logs=None):
        self.train_ends += 1
        self.at("on_train_end", None, None)


def weights_after_each_step(x, y, steps, batch_size=8):
    """The weights of small_model(seed=6) after 0, 1, ... steps over x in order (fit with shuffle=False)."""
    ref = small_model(seed=6)
    out = [ref.get_weights()]
    n = x.shape[0]
    for s in range(steps):
        lo = (s * batch_size) % n
        ref.train_on_batch(x[lo:lo + batch_size], y[lo:lo + batch_size])
        out.append(ref.get_weights())
    return out


# moment: (where the Ctrl-C lands, verbose, steps done, epochs in history for a real Ctrl-C (SIGINT), for
# a KeyboardInterrupt raised right there, as a callback or a SIGINT handler of the caller's may).
# 3 epochs of 3 steps; the Ctrl-C lands in epoch 1 unless said.
CTRL_C_MOMENTS = {
    "on_train_begin": ("on_train_begin", 0, 0, [], []),
    "on_epoch_begin": ("on_epoch_begin", 0, 3, [0], [0]),
    "on_batch_end": ("on_batch_end", 0, 5, [0], [0]),
    "progress_bar": ("bar_update", 1, 5, [0], [0]),
    "validation": ("validation", 0, 6, [0], [0]),
    # A callback cut short leaves its epoch out; a Ctrl-C lets the epoch's callbacks finish first.
    "on_epoch_end": ("on_epoch_end", 0, 6, [0, 1], [0]),
    "epoch_line": ("epoch_line", 2, 6, [0, 1], [0, 1]),
    "while_handling_a_first": ("bar_close", 1, 5, [0], [0]),
    "after_the_last_step": ("last_batch", 0, 9, [0, 1], [0, 1]),
    "last_on_epoch_end": ("last_epoch_end", 0, 9, [0, 1, 2], [0, 1]),
    "on_train_end": ("on_train_end", 0, 9, [0, 1, 2], [0, 1, 2]),
}


@pytest.mark.usefixtures("default_sigint")
@pytest.mark.parametrize("how", ["signal", "raise"])
@pytest.mark.parametrize("moment", list(CTRL_C_MOMENTS))
def test_ctrl_c_at_any_moment_stops_cleanly(monkeypatch, capsys, moment, how):
    where, verbose, steps, epochs_signal, epochs_raise = CTRL_C_MOMENTS[moment]
    x, y = two_blobs(24)
    xv, yv = two_blobs(8, seed=1)
    m = small_model(seed=6)
    calls = {}

    def once(spot):
        """True the first time spot is reached where the Ctrl-C is due."""
        calls[spot] = calls.get(spot, 0) + 1
        return spot == where and calls[spot] == 1

    def at(hook, epoch, batch):
        spot = {("on_train_begin", None, None): "on_train_begin", ("on_epoch_begin", 1, None): "on_epoch_begin",
                ("on_batch_end", 1, 1): "on_batch_end", ("on_batch_end", 2, 2): "last_batch",
                ("on_epoch_end", 1, None): "on_epoch_end", ("on_epoch_end", 2, None): "last_epoch_end",
                ("on_train_end", None, None): "on_train_end"}.get((hook, epoch, batch))
        if where == "bar_close" and (hook, epoch, batch) == ("on_batch_end", 1, 1):
            raise KeyboardInterrupt          # the first Ctrl-C; the second lands while fit handles it
        if spot is not None and once(spot):
            ctrl_c(how)

    def after(spot, real, nth):
        def wrapped(*args, **kwargs):
            out = real(*args, **kwargs)
            calls[spot] = calls.get(spot, 0) + 1
            if spot == where and calls[spot] == nth:
                ctrl_c(how)
            return out
        return wrapped

    Bar = cc.callbacks._Bar
    monkeypatch.setattr(Bar, "update", after("bar_update", Bar.update, 5))      # epoch 1, batch 1
    monkeypatch.setattr(Bar, "close", after("bar_close", Bar.close, 1))
    monkeypatch.setattr(m, "_evaluate_arrays", after("validation", m._evaluate_arrays, 2))
    monkeypatch.setattr(cc.callbacks, "_epoch_line", after("epoch_line", cc.callbacks._epoch_line, 2))
    hooks = Hooks(at)

    try:
        h = m.fit(x, y, epochs=3, batch_size=8, shuffle=False, validation_data=(xv, yv), verbose=verbose,
                  callbacks=[hooks])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped fit")   # (else pytest would stop the whole session)

    assert h.interrupted and m.history is h
    assert m.optimizer.iterations == steps
    assert weights_equal(m.get_weights(), weights_after_each_step(x, y, steps)[steps])
    want = epochs_signal if how == "signal" else epochs_raise
    assert h.epoch == want and all(len(v) == len(want) for v in h.history.values()), h.history
    assert hooks.train_ends == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if verbose:
        assert "Interrupted" in capsys.readouterr().out
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)   # still usable
    assert m.optimizer.iterations == steps + 3


def lines_run_by_fit(fit, interrupt_at=None, armed=lambda: True):
    """Runs fit() tracing the lines it executes in cpucnn's own files; sends SIGINT at the
    interrupt_at-th line counted once armed() holds. Returns (fit's result or the exception, lines counted,
    "file:line" where the SIGINT was sent)."""
    package = os.path.dirname(cc.__file__) + os.sep
    count, where = 0, None

    def local(frame, event, arg):
        nonlocal count, where
        if event == "line" and armed():
            count += 1
            if count == interrupt_at:
                where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
                signal.raise_signal(signal.SIGINT)
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(package) else None

    before = sys.gettrace()
    sys.settrace(calls)
    try:
        result = fit()
    except KeyboardInterrupt as e:
        result = e
    finally:
        sys.settrace(before)
    return result, count, where


@pytest.mark.usefixtures("default_sigint")
@pytest.mark.parametrize("first", ["none", "raised_by_a_callback"])
@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_ctrl_c_at_every_line_of_fit(capsys, verbose, first):
    """A Ctrl-C at each line fit runs in cpucnn's files (2 epochs of 2 steps with validation), alone or
    as a second Ctrl-C after a callback raised KeyboardInterrupt in epoch 1."""
    x, y = two_blobs(16)
    xv, yv = two_blobs(4, seed=1)
    ref = weights_after_each_step(x, y, 4)
    state = {"armed": first == "none"}

    def raise_once(epoch, batch):
        if first != "none" and (epoch, batch) == (1, 0) and not state["armed"]:
            state["armed"] = True
            raise KeyboardInterrupt

    def run(k):
        m = small_model(seed=6)
        state["armed"] = first == "none"
        hooks = []
        seen = Hooks(lambda hook, e, b: hooks.append(hook))
        h, count, where = lines_run_by_fit(lambda: m.fit(x, y, epochs=2, batch_size=8, shuffle=False,
                                                  validation_data=(xv, yv), verbose=verbose,
                                                  callbacks=[seen, Recorder(raise_once)]),
                                    k, lambda: state["armed"])
        return m, h, count, where, hooks

    _, _, total, _, _ = run(None)
    assert total > 10
    failures = []
    for k in range(1, total + 1):
        m, h, _, where, hooks = run(k)
        steps = m.optimizer.iterations
        if isinstance(h, KeyboardInterrupt):
            if hooks:   # a Ctrl-C may only escape before training begins: no callback called yet
                failures.append((where, "KeyboardInterrupt escaped fit"))
            continue
        problems = [what for what, bad in [
            ("not interrupted", not h.interrupted),
            ("weights not those of the steps done", not weights_equal(m.get_weights(), ref[steps])),
            ("history not whole epochs", h.epoch != list(range(len(h.epoch))) or 2 * len(h.epoch) > steps
             or any(len(v) != len(h.epoch) for v in h.history.values())),
            ("on_train_end not called once", hooks.count("on_train_end") != 1),
            ("Ctrl-C handler not restored", signal.getsignal(signal.SIGINT) is not signal.default_int_handler),
        ] if bad]
        if problems:
            failures.append((where, ", ".join(problems)))
    capsys.readouterr()
    assert not failures, f"{len(failures)} of {total} lines:\n" + "\n".join(map(str, failures))


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_under_a_handler_of_the_callers():
    """fit puts its own SIGINT handler only over Python's default one: a caller's handler stays in place
    (one that raises KeyboardInterrupt still stops training cleanly; an ignored SIGINT stays ignored)."""
    x, y = two_blobs(24)
    seen = []

    def raising(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    for handler, interrupted, steps in [(raising, True, 5), (signal.SIG_IGN, False, 9)]:
        before = signal.signal(signal.SIGINT, handler)
        try:
            m = small_model(seed=6)
            rec = Recorder(lambda e, b: signal.raise_signal(signal.SIGINT) if (e, b) == (1, 1) else None)
            h = m.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[rec])
            assert signal.getsignal(signal.SIGINT) is handler
        finally:
            signal.signal(signal.SIGINT, before)
        assert h.interrupted == interrupted and m.optimizer.iterations == steps
        assert weights_equal(m.get_weights(), weights_after_each_step(x, y, steps)[steps])
    assert seen == [signal.SIGINT]


@pytest.mark.usefixtures("default_sigint")
def test_fit_in_another_thread_leaves_ctrl_c_to_the_main_thread():
    import threading

    x, y = two_blobs(16)
    m = small_model()
    out = []
    t = threading.Thread(target=lambda: out.append(m.fit(x, y, epochs=2, batch_size=8, verbose=0)))
    t.start()
    t.join()
    assert len(out) == 1 and not out[0].interrupted and out[0].epoch == [0, 1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


REAL_CTRL_C = textwrap.dedent(r"""
    import json, os, signal
    import numpy as np
    import cpucnn as cc

    # Python's own Ctrl-C handling, whatever this process inherited (a CI job started in the background
    # ignores SIGINT; a blocked SIGINT would stay pending): as in an interactive session.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    cc.set_num_threads(1)
    r = np.random.default_rng(0)
    x, y = r.normal(size=(64, 1, 8, 8)), r.integers(0, 2, 64)
    m = cc.Sequential([cc.layers.Conv2D(4, 3), cc.layers.ReLU(), cc.layers.Flatten(), cc.layers.Dense(2)],
                      input_shape=(1, 8, 8), seed=0)
    m.compile("sgd")
    before = m.get_weights()
    epoch = None

    class CtrlC(cc.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            global epoch
            epoch = e

        def on_batch_end(self, batch, logs=None):
            if (epoch, batch) == (1, 2):
                os.kill(os.getpid(), signal.SIGINT)   # the kernel delivers a real SIGINT before kill returns

    h = m.fit(x, y, epochs=5, batch_size=8, verbose=1, callbacks=[CtrlC()], seed=0)
    changed = any(not np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    print(json.dumps({"interrupted": h.interrupted, "epochs": len(h.epoch), "steps": m.optimizer.iterations,
                      "changed": changed}), flush=True)
""")


def test_real_sigint_during_training_stops_cleanly():
    """A real SIGINT, in a fresh interpreter with Python's default handler, ends fit normally."""
    proc = subprocess.run([sys.executable, "-c", REAL_CTRL_C], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res == {"interrupted": True, "epochs": 1, "steps": 8 + 3, "changed": True}, proc.stdout
    assert "Interrupted in epoch 2" in proc.stdout


# -- initial_epoch ------------------------------------------------------------------------------

def test_initial_epoch(capsys):
    x, y = two_blobs(16)
    m = small_model()
    h = m.fit(x, y, epochs=3, batch_size=8, initial_epoch=1, seed=0, verbose=2)
    out, _ = capsys.readouterr()
    assert h.epoch == [1, 2] and len(h.history["loss"]) == 2
    assert m.optimizer.iterations == 4
    assert [line.split(" - ")[0] for line in out.splitlines()] == ["Epoch 2/3", "Epoch 3/3"]
    h = m.fit(x, y, epochs=3, initial_epoch=3, seed=0, verbose=0)   # nothing left to do
    assert h.epoch == [] and h.history == {} and m.optimizer.iterations == 4


def test_split_fit_equals_one_fit():
    """fit(epochs=1) then fit(initial_epoch=1, epochs=3) equals fit(epochs=3), dropout included."""
    x, y = two_blobs(24)
    a = small_model(seed=8, dropout=True, optimizer=cc.optimizers.Adam(lr=0.01))
    a.fit(x, y, epochs=3, batch_size=8, seed=9, verbose=0)
    b = small_model(seed=8, dropout=True, optimizer=cc.optimizers.Adam(lr=0.01))
    b.fit(x, y, epochs=1, batch_size=8, seed=9, verbose=0)
    b.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, seed=9, verbose=0)
    assert weights_equal(a.get_weights(), b.get_weights())
