"""cpucnn.callbacks: hook order, EarlyStopping, ModelCheckpoint,
LearningRateScheduler, ReduceLROnPlateau and History.plot."""

import os
import pathlib
import sys

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")

L = cc.layers
C = cc.callbacks


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def two_blobs(n=32, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    x = r.normal(0.0, 0.3, (n, 1, 6, 6)).astype(np.float32)
    x[y == 0, :, :3, :] += 1.0
    x[y == 1, :, 3:, :] += 1.0
    return x, y


def small_model(seed=0, lr=0.1):
    m = cc.Sequential([L.Conv2D(3, 3, padding="same"), L.ReLU(), L.Flatten(), L.Dense(2)],
                      input_shape=(1, 6, 6), seed=seed)
    m.compile(cc.optimizers.SGD(lr=lr), metrics=["accuracy"])
    return m


def weights_equal(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


class Scripted(C.Callback):
    """Puts scripted values under ``key`` in the epoch logs, so monitors see exactly what a test wants.
    Must come before the callbacks that read it."""

    def __init__(self, values, key="score"):
        super().__init__()
        self.values, self.key = list(values), key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class WeightsAtEpochEnd(C.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


# -- order --------------------------------------------------------------------------------------

def test_callbacks_fire_in_order():
    calls = []

    class Rec(C.Callback):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_train_begin(self, logs=None):
            calls.append((self.name, "train_begin"))

        def on_epoch_begin(self, epoch, logs=None):
            calls.append((self.name, "epoch_begin", epoch))

        def on_batch_end(self, batch, logs=None):
            assert set(logs) >= {"loss", "size"}
            calls.append((self.name, "batch_end", batch))

        def on_epoch_end(self, epoch, logs=None):
            calls.append((self.name, "epoch_end", epoch, tuple(sorted(logs))))

        def on_train_end(self, logs=None):
            calls.append((self.name, "train_end"))

    x, y = two_blobs(10)
    m = small_model()
    a, b = Rec("a"), Rec("b")
    m.fit(x, y, epochs=2, batch_size=4, validation_data=(x, y), callbacks=[a, b], verbose=0, seed=0)
    assert a.model is m and b.model is m
    keys = ("accuracy", "loss", "lr", "val_accuracy", "val_loss")
    want = [("train_begin",)]
    for e in range(2):
        want.append(("epoch_begin", e))
        want += [("batch_end", i) for i in range(3)]
        want.append(("epoch_end", e, keys))
    want.append(("train_end",))
    expected = [(n,) + w for w in want for n in "ab"]
    assert calls == expected


def test_single_callback_and_bad_callbacks():
    x, y = two_blobs(8)
    m = small_model()
    rec = WeightsAtEpochEnd()
    m.fit(x, y, epochs=2, batch_size=4, callbacks=rec, verbose=0, seed=0)   # a bare callback is accepted
    assert len(rec.weights) == 2
    with pytest.raises(TypeError, match="Callback"):
        m.fit(x, y, callbacks=[lambda *a: None], verbose=0)


# -- EarlyStopping ------------------------------------------------------------------------------

@pytest.mark.parametrize("patience, values, stop_epoch", [
    (0, [5, 4, 4, 3, 2], 2),               # stops at the first epoch without improvement
    (2, [5, 4, 4.5, 4.2, 4.1, 3, 2], 3),   # two epochs without improvement after the best (epoch 1)
    (2, [5, 4, 4.5, 3, 4, 3.5, 3.9], 5),   # the counter resets at each improvement
    (3, [1, 1, 1, 1, 1, 1, 1], 3),         # Keras' example: a flat loss runs patience + 1 epochs
])
def test_early_stopping_patience(patience, values, stop_epoch):
    x, y = two_blobs(8)
    m = small_model()
    es = C.EarlyStopping(monitor="score", patience=patience, mode="min")
    h = m.fit(x, y, epochs=len(values), batch_size=8, callbacks=[Scripted(values), es], verbose=0, seed=0)
    assert es.stopped_epoch == stop_epoch
    assert h.epoch == list(range(stop_epoch + 1))
    assert m.optimizer.iterations == stop_epoch + 1


def test_early_stopping_runs_to_the_end_while_improving():
    x, y = two_blobs(8)
    m = small_model()
    es = C.EarlyStopping(monitor="score", patience=0)
    h = m.fit(x, y, epochs=4, batch_size=8, callbacks=[Scripted([4, 3, 2, 1]), es], verbose=0, seed=0)
    assert es.stopped_epoch is None and len(h.epoch) == 4


def test_early_stopping_min_delta_and_max_mode():
    x, y = two_blobs(8)
    # Improvements of 0.05 do not count with min_delta=0.1 ...
    es = C.EarlyStopping(monitor="score", patience=1, min_delta=0.1)
    h = small_model().fit(x, y, epochs=6, batch_size=8, verbose=0, seed=0,
                          callbacks=[Scripted([1.0, 0.95, 0.9, 0.85, 0.8, 0.75]), es])
    assert es.stopped_epoch == 1 and len(h.epoch) == 2
    # ... improvements of 0.2 do.
    es = C.EarlyStopping(monitor="score", patience=1, min_delta=0.1)
    h = small_model().fit(x, y, epochs=4, batch_size=8, verbose=0, seed=0,
                          callbacks=[Scripted([1.0, 0.8, 0.6, 0.4]), es])
    assert es.stopped_epoch is None and len(h.epoch) == 4
    # "acc" in the name: auto mode maximises.
    es = C.EarlyStopping(monitor="val_accuracy", patience=0)
    h = small_model().fit(x, y, epochs=4, batch_size=8, verbose=0, seed=0,
                          callbacks=[Scripted([0.5, 0.7, 0.6, 0.9], key="val_accuracy"), es])
    assert es.stopped_epoch == 2


def test_early_stopping_unknown_monitor_names_the_available_keys():
    x, y = two_blobs(8)
    with pytest.raises(ValueError, match="val_loss.*available: accuracy, loss, lr"):
        small_model().fit(x, y, epochs=2, callbacks=[C.EarlyStopping()], verbose=0)


@pytest.mark.parametrize("values, best, last", [
    ([5, 3, 4, 4, 4, 4], 1, 3),   # stops early at epoch 3
    ([5, 3, 4], 1, 2),            # runs to the end without stopping: still restored
])
def test_early_stopping_restores_the_best_epochs_weights(values, best, last):
    x, y = two_blobs(16)
    m = small_model()
    rec = WeightsAtEpochEnd()
    es = C.EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=len(values), batch_size=8, callbacks=[Scripted(values), rec, es], verbose=0, seed=0)
    assert h.epoch[-1] == last and es.best_epoch == best
    assert weights_equal(m.get_weights(), rec.weights[best])
    assert not weights_equal(m.get_weights(), rec.weights[last])


def test_early_stopping_without_restore_keeps_the_last_weights():
    x, y = two_blobs(16)
    m = small_model()
    rec = WeightsAtEpochEnd()
    es = C.EarlyStopping(monitor="score", patience=1)
    m.fit(x, y, epochs=5, batch_size=8, callbacks=[Scripted([5, 3, 4, 4, 4]), rec, es], verbose=0, seed=0)
    assert len(rec.weights) == 3 and weights_equal(m.get_weights(), rec.weights[-1])


def test_early_stopping_restores_batchnorm_running_stats():
    x, y = two_blobs(16)
    m = cc.Sequential([L.Conv2D(2, 3), L.BatchNorm2D(), L.ReLU(), L.Flatten(), L.Dense(2)], input_shape=(1, 6, 6),
                      seed=0)
    m.compile(cc.optimizers.SGD(lr=0.05), metrics=["accuracy"])
    rec = WeightsAtEpochEnd()
    es = C.EarlyStopping(monitor="score", patience=1, restore_best_weights=True)
    m.fit(x, y, epochs=4, batch_size=8, callbacks=[Scripted([2, 1, 3, 3]), rec, es], verbose=0, seed=0)
    assert weights_equal(m.get_weights(), rec.weights[1])
    bn = m.layers[1]
    names = [nm for layer in m.layers for nm in layer.param_names]
    assert np.array_equal(bn.running_mean, rec.weights[1][names.index("running_mean")])
    assert not np.array_equal(rec.weights[1][names.index("running_mean")],
                              rec.weights[2][names.index("running_mean")])


# -- ModelCheckpoint ----------------------------------------------------------------------------

def test_model_checkpoint_every_epoch(tmp_path):
    x, y = two_blobs(16)
    m = small_model()
    rec = WeightsAtEpochEnd()
    ck = C.ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}-{loss:.3f}.cnn"), monitor="loss")
    h = m.fit(x, y, epochs=3, batch_size=8, callbacks=[rec, ck], verbose=0, seed=0)
    names = sorted(os.listdir(tmp_path))
    want = sorted(f"ck-{e + 1:02d}-{h.history['loss'][e]:.3f}.cnn" for e in range(3))
    assert names == want
    assert ck.saved == [str(tmp_path / n) for n in want]
    for e, name in enumerate(want):
        loaded = cc.load(tmp_path / name)
        assert weights_equal(loaded.get_weights(), rec.weights[e])
        assert loaded.optimizer is not None and loaded.optimizer.iterations == 2 * (e + 1)


def test_model_checkpoint_save_best_only(tmp_path):
    x, y = two_blobs(16)
    m = small_model()
    rec = WeightsAtEpochEnd()
    values = [3, 2, 2.5, 1, 1.5]
    per_epoch = C.ModelCheckpoint(tmp_path / "best-{epoch}.cnn", monitor="score", save_best_only=True)
    one_file = C.ModelCheckpoint(tmp_path / "best.cnn", monitor="score", save_best_only=True,
                                 include_optimizer=False)
    m.fit(x, y, epochs=5, batch_size=8, callbacks=[Scripted(values), rec, per_epoch, one_file], verbose=0, seed=0)
    assert sorted(os.listdir(tmp_path)) == ["best-1.cnn", "best-2.cnn", "best-4.cnn", "best.cnn"]
    best = cc.load(tmp_path / "best.cnn")
    assert weights_equal(best.get_weights(), rec.weights[3])
    assert best.optimizer is None   # include_optimizer=False


def test_model_checkpoint_max_mode(tmp_path):
    x, y = two_blobs(16)
    ck = C.ModelCheckpoint(tmp_path / "m-{epoch}.cnn", monitor="val_accuracy", save_best_only=True)
    small_model().fit(x, y, epochs=4, batch_size=8, verbose=0, seed=0,
                      callbacks=[Scripted([0.5, 0.4, 0.6, 0.6], key="val_accuracy"), ck])
    assert sorted(os.listdir(tmp_path)) == ["m-1.cnn", "m-3.cnn"]


# -- learning rate ------------------------------------------------------------------------------

def test_learning_rate_scheduler_sets_lr_and_history():
    x, y = two_blobs(16)
    m = small_model(lr=0.1)
    seen = []
    h = m.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0,
              callbacks=[C.LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)])
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025], rel=1e-6)
    assert m.optimizer.lr == pytest.approx(0.025, rel=1e-6)
    # The two-argument form gets the current lr.
    sched = C.LearningRateScheduler(lambda epoch, lr: seen.append((epoch, lr)) or lr * 2)
    h = m.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0, callbacks=[sched])
    assert [e for e, _ in seen] == [0, 1]
    assert seen[0][1] == pytest.approx(0.025, rel=1e-6) and seen[1][1] == pytest.approx(0.05, rel=1e-6)
    assert h.history["lr"] == pytest.approx([0.05, 0.1], rel=1e-6)


def test_learning_rate_scheduler_reaches_the_optimizer():
    """lr = 0 from epoch 1 on: the weights stop changing, so the C++ optimizer really uses it."""
    x, y = two_blobs(16)
    m = small_model(lr=0.1)
    rec = WeightsAtEpochEnd()
    m.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0,
          callbacks=[C.LearningRateScheduler(lambda epoch: 0.1 if epoch == 0 else 0.0), rec])
    assert weights_equal(rec.weights[0], rec.weights[1]) and weights_equal(rec.weights[1], rec.weights[2])
    assert m.optimizer.iterations == 6


def test_learning_rate_scheduler_errors_propagate():
    x, y = two_blobs(8)

    def broken(epoch, lr):
        raise TypeError("bug inside the schedule")

    with pytest.raises(TypeError, match="bug inside the schedule"):
        small_model().fit(x, y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(broken)])


def test_reduce_lr_on_plateau():
    x, y = two_blobs(8)
    m = small_model(lr=0.1)
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=2)
    h = m.fit(x, y, epochs=6, batch_size=8, verbose=0, seed=0, callbacks=[Scripted([1] * 6), cb])
    # Epoch 0 sets the best; epochs 1-2 wait, cut after epoch 2; epochs 3-4 wait, cut after epoch 4.
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-6)
    assert m.optimizer.lr == pytest.approx(0.025, rel=1e-6)


def test_reduce_lr_on_plateau_improvement_resets_and_min_lr():
    x, y = two_blobs(8)
    m = small_model(lr=0.1)
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=1, min_lr=0.04)
    h = m.fit(x, y, epochs=6, batch_size=8, verbose=0, seed=0,
              callbacks=[Scripted([3, 2, 1, 1, 1, 1]), cb])
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.04], rel=1e-6)
    assert m.optimizer.lr == pytest.approx(0.04, rel=1e-6)
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.5)


# -- History.plot -------------------------------------------------------------------------------

def _history():
    x, y = two_blobs(16)
    return small_model().fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, seed=0)


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    h = _history()
    for path in (tmp_path / "h.png", str(tmp_path / "h2.png")):   # PathLike and str
        fig = h.plot(path)
        data = pathlib.Path(path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
        labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
        assert labels == ["train loss", "validation loss", "train accuracy", "validation accuracy"]


def test_history_plot_without_matplotlib_names_the_extra(monkeypatch):
    h = _history()
    for mod in ("matplotlib", "matplotlib.pyplot", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError, match=r"pip install cpucnn\[plot\]"):
        h.plot("never-written.png")
    with pytest.raises(ImportError, match=r"pip install cpucnn\[plot\]"):
        h.plot()
    assert not os.path.exists("never-written.png")
