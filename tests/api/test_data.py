"""cpucnn.data: batches made in C++ worker threads, and fit/evaluate/predict fed by
pipelines, generators and other iterables of batches."""

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import cpucnn as cc
from cpucnn import datasets
from cpucnn.data import Dataset

M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def reference_sample(img, seed, epoch, index, crop, pad, flip, scale, mean, std):
    """The documented draw and transform of one sample, in numpy (float32 arithmetic)."""
    c, h, w = img.shape
    key = splitmix64(seed ^ splitmix64(epoch ^ splitmix64(index)))
    out = img
    if crop is not None:
        oh, ow = crop
        top = splitmix64((key + 1) & M64) % (h + 2 * pad - oh + 1)
        left = splitmix64((key + 2) & M64) % (w + 2 * pad - ow + 1)
        padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)))
        out = padded[:, top:top + oh, left:left + ow]
    if flip and splitmix64((key + 3) & M64) >> 63:
        out = out[:, :, ::-1]
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    return (out.astype(np.float32) * np.float32(scale) - m) / s


def threads_now():
    return len(os.listdir("/proc/self/task"))


def threads_settled(want, timeout=2.0):
    """The thread count once it equals `want`, or after `timeout` s. A joined thread can stay listed in
    /proc/self/task for a moment after pthread_join returns (the kernel reaps it just after clearing its
    tid; seen once under TSan), so counts that should drop are polled; one that never drops still fails."""
    deadline = time.monotonic() + timeout
    n = threads_now()
    while n != want and time.monotonic() < deadline:
        time.sleep(0.01)
        n = threads_now()
    return n


def threads_after_warm_up():
    """The thread count once OpenMP's pools exist (the first training step and evaluate start them)."""
    m = small_model()
    x, y = toy(300)
    m.fit(x.astype(np.float32), y, epochs=1, verbose=0)
    m.evaluate(x.astype(np.float32), y)
    m.predict(x.astype(np.float32))
    return threads_now()


@pytest.fixture
def u8():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 3, 9, 7), dtype=np.uint8)
    y = rng.integers(0, 10, size=50)
    return x, y


def collect(ds, epoch):
    return [(xb.copy(), yb.copy()) for xb, yb in ds.epoch(epoch)]


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------

def pipeline(x, y, workers=1, seed=3):
    return (Dataset.from_arrays(x, y).shuffle(seed=seed).map_float(scale=1 / 255, mean=[0.5, 0.4, 0.3],
                                                                   std=[0.2, 0.25, 0.3])
            .random_crop((8, 6), padding=2).flip_horizontal().batch(16).prefetch(2, workers=workers))


def test_same_seed_same_batches_bit_for_bit(u8):
    x, y = u8
    a, b = collect(pipeline(x, y), 0), collect(pipeline(x, y), 0)
    assert len(a) == 4 and [xb.shape[0] for xb, _ in a] == [16, 16, 16, 2]
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == np.float32 and xa.shape[1:] == (3, 8, 6)
        assert np.array_equal(xa.view(np.uint32), xb.view(np.uint32)) and np.array_equal(ya, yb)


def test_epochs_differ_and_seeds_differ(u8):
    x, y = u8
    e0, e1 = collect(pipeline(x, y), 0), collect(pipeline(x, y), 1)
    y0, y1 = np.concatenate([b[1] for b in e0]), np.concatenate([b[1] for b in e1])
    assert sorted(y0) == sorted(y1) == sorted(y)
    assert not np.array_equal(y0, y1), "a new permutation each epoch"
    other = collect(pipeline(x, y, seed=4), 0)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(e0, other))


def test_thread_count_does_not_change_batches(u8):
    x, y = u8
    ref = collect(pipeline(x, y, workers=1), 2)
    sync = (Dataset.from_arrays(x, y).shuffle(seed=3).map_float(scale=1 / 255, mean=[0.5, 0.4, 0.3],
                                                                std=[0.2, 0.25, 0.3])
            .random_crop((8, 6), padding=2).flip_horizontal().batch(16))   # no prefetch: made when asked
    for other in (collect(pipeline(x, y, workers=2), 2), collect(pipeline(x, y, workers=3), 2), collect(sync, 2)):
        assert len(other) == len(ref)
        for (xa, ya), (xb, yb) in zip(ref, other):
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_for_loop_runs_successive_epochs(u8):
    x, y = u8
    ds = pipeline(x, y)
    first = [yb.copy() for _, yb in ds]
    second = [yb.copy() for _, yb in ds]
    assert all(np.array_equal(a, b) for a, b in zip(first, [b for _, b in collect(pipeline(x, y), 0)]))
    assert all(np.array_equal(a, b) for a, b in zip(second, [b for _, b in collect(pipeline(x, y), 1)]))


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("pad", [0, 3])
def test_crop_and_flip_match_numpy_reference(u8, pad, flip):
    x, y = u8
    mean, std, scale = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3], 1 / 255
    ds = Dataset.from_arrays(x, y).shuffle(seed=11).map_float(scale=scale, mean=mean, std=std) \
        .random_crop((7, 5), padding=pad)
    if flip:
        ds = ds.flip_horizontal()
    ds = ds.batch(8).prefetch(3, workers=2)
    order = np.random.default_rng([11, 1]).permutation(len(x))
    got = np.concatenate([xb for xb, _ in ds.epoch(1)])
    flips, offsets = 0, set()
    for i, k in enumerate(order):
        want = reference_sample(x[k], 11, 1, int(k), (7, 5), pad, flip, scale, mean, std)
        assert np.array_equal(got[i], want), f"sample {i} (index {k}), pad={pad} flip={flip}"
        key = splitmix64(11 ^ splitmix64(1 ^ splitmix64(int(k))))
        flips += splitmix64(key + 3) >> 63
        offsets.add((splitmix64(key + 1) % (9 + 2 * pad - 7 + 1), splitmix64(key + 2) % (7 + 2 * pad - 5 + 1)))
    assert len(offsets) > 1   # the crops do move
    assert 0 < flips < len(x)  # some samples are flipped, some not


def test_padding_value_is_zero_in_source_units():
    x = np.full((1, 1, 2, 2), 200, np.uint8)
    ds = Dataset.from_arrays(x).map_float(scale=1 / 255, mean=0.5, std=0.25).random_crop(2, padding=2)
    seen = set()
    for e in range(40):
        (xb, yb), = list(ds.epoch(e))
        assert yb is None
        seen.update(np.unique(xb).tolist())
    assert seen == {np.float32((np.float32(200) * np.float32(1 / 255) - np.float32(0.5)) / np.float32(0.25)),
                    np.float32(-0.5 / 0.25)}


def test_map_float_normalises_per_channel(u8):
    x, y = u8
    got = np.concatenate([xb for xb, _ in Dataset.from_arrays(x, y).map_float(
        scale=0.5, mean=[1, 2, 3], std=[2, 4, 8]).batch(7)])
    m = np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1)
    s = np.array([2, 4, 8], np.float32).reshape(1, 3, 1, 1)
    assert np.array_equal(got, (x.astype(np.float32) * np.float32(0.5) - m) / s)
    plain = np.concatenate([xb for xb, _ in Dataset.from_arrays(x, y).batch(64)])
    assert np.array_equal(plain, x.astype(np.float32))   # no map_float: the values as they are


def test_float32_source_and_labels_order():
    x = np.arange(6 * 1 * 2 * 2, dtype=np.float32).reshape(6, 1, 2, 2)
    y = np.arange(6) * 10
    batches = list(Dataset.from_arrays(x, y).batch(4))
    assert np.array_equal(batches[0][0], x[:4]) and np.array_equal(batches[1][0], x[4:])
    assert batches[0][1].dtype == np.int64 and list(batches[1][1]) == [40, 50]
    assert len(list(Dataset.from_arrays(x, y).batch(4, drop_remainder=True))) == 1
    targets = np.arange(12, dtype=np.float64).reshape(6, 2)
    (_, tb), = list(Dataset.from_arrays(x, targets).batch(6))
    assert tb.dtype == np.float32 and np.array_equal(tb, targets)


def test_bad_settings_are_value_errors(u8):
    x, y = u8
    with pytest.raises(ValueError, match="does not fit"):
        list(Dataset.from_arrays(x, y).random_crop(20).batch(4))
    with pytest.raises(ValueError, match="std must be positive"):
        Dataset.from_arrays(x, y).map_float(std=[1, 0, 1])
    with pytest.raises(ValueError, match="3 channels"):
        list(Dataset.from_arrays(x, y).map_float(mean=[1, 2]).batch(4))
    with pytest.raises(ValueError, match="samples"):
        Dataset.from_arrays(x, y[:3])
    with pytest.raises(ValueError, match="shape"):
        Dataset.from_arrays(np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        Dataset.from_arrays(x, y).batch(0)
    with pytest.raises(ValueError, match="generator"):
        Dataset.from_generator([(x, y)]).shuffle()


# ---------------------------------------------------------------------------
# uint8 stays uint8; memmaps, .npy and IDX files are read in place
# ---------------------------------------------------------------------------

def test_uint8_memmap_is_used_in_place(tmp_path, u8):
    x, y = u8
    path = tmp_path / "x.npy"
    np.save(path, x)
    ds = Dataset.from_npy(path)
    assert isinstance(ds._x, np.memmap) and ds._x.dtype == np.uint8    # no float copy, no copy at all
    assert os.path.samefile(ds._x.filename, path)
    mm = np.load(path, mmap_mode="r")
    ds2 = Dataset.from_arrays(mm, y)
    assert np.shares_memory(ds2._x, mm)
    a = np.concatenate([b for b, _ in ds.batch(8)])
    assert np.array_equal(a, x.astype(np.float32))


RSS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import cpucnn as cc

    def status(key):   # kB
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    x = np.load(sys.argv[1], mmap_mode="r")
    base = status("VmRSS")
    if sys.argv[2] == "float32":
        x = np.asarray(x, dtype=np.float32)       # what fit(x, y) used to do
    ds = cc.data.Dataset.from_arrays(x).map_float(scale=1 / 255).random_crop(28, padding=2).batch(64).prefetch(2)
    for xb, _ in ds:
        pass
    print(status("VmHWM") - base)
""")


def test_uint8_route_peak_memory_is_below_a_float_copy(tmp_path):
    with open("/proc/self/maps") as f:
        maps = f.read()
    for runtime in ("libasan", "libtsan"):
        if runtime in maps:
            pytest.skip(f"{runtime} is loaded: RSS measures its shadow memory, not cpucnn")
    n = 20000
    x = np.random.default_rng(0).integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    float_bytes = n * 28 * 28 * 4
    del x
    grow = {}
    for route in ("uint8", "float32"):
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(tmp_path / "x.npy"), route], check=True,
                             capture_output=True, text=True, timeout=300)
        grow[route] = int(out.stdout.strip().splitlines()[-1])
    assert grow["float32"] >= float_bytes            # the test can fail: a float copy shows
    assert grow["uint8"] < float_bytes / 2, grow     # the file's pages (n * 784 bytes) and a few batches


def test_idx_files(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(12, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12).astype(np.uint8)
    ip, lp = tmp_path / "imgs-idx3-ubyte", tmp_path / "labels-idx1-ubyte"
    ip.write_bytes(bytes([0, 0, 8, 3]) + np.array(imgs.shape, ">u4").tobytes() + imgs.tobytes())
    lp.write_bytes(bytes([0, 0, 8, 1]) + np.array([12], ">u4").tobytes() + labels.tobytes())
    ds = Dataset.from_idx(ip, lp)
    assert isinstance(ds._x.base, np.memmap) or isinstance(ds._x, np.memmap)
    assert ds.element_shape == (1, 5, 4)
    (xb, yb), = list(ds.batch(12))
    assert np.array_equal(xb[:, 0], imgs.astype(np.float32)) and np.array_equal(yb, labels)
    assert np.array_equal(datasets.load_idx(ip), imgs)
    import gzip
    gp = tmp_path / "imgs.gz"
    gp.write_bytes(gzip.compress(ip.read_bytes()))
    (xg, _), = list(Dataset.from_idx(gp).batch(12))
    assert np.array_equal(xg, xb)
    bad = tmp_path / "bad"
    bad.write_bytes(ip.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        Dataset.from_idx(bad)


# ---------------------------------------------------------------------------
# Worker threads
# ---------------------------------------------------------------------------

def test_workers_stop_at_epoch_end_break_and_gc(u8):
    x, y = u8
    base, py_base = threads_now(), threading.active_count()
    ds = pipeline(x, y, workers=3)
    it = ds.epoch(0)
    next(it)
    assert threads_now() == base + 3
    for _ in it:
        pass
    assert threads_settled(base) == base  # the epoch ended
    it = ds.epoch(1)
    next(it)
    assert threads_now() == base + 3
    it.close()
    assert threads_settled(base) == base  # closed early
    for _ in ds:
        break
    gc.collect()
    assert threads_settled(base) == base  # dropped after a break
    assert threading.active_count() == py_base  # the workers are the loader's own threads, not Python's


def test_an_error_in_a_worker_reaches_the_consumer_and_stops_the_workers():
    with open("/proc/self/maps") as f:
        maps = f.read()
    if "libasan" in maps or "libtsan" in maps:
        pytest.skip("ASan and TSan abort on a petabyte allocation instead of failing it (TSan even with "
                    "allocator_may_return_null=1); the job without sanitizers runs this test")
    x = np.zeros((4, 1, 2, 2), np.uint8)
    base = threads_now()
    # A 2e7 x 2e7 crop: making the batch needs 1.6 PB, which fails in the worker (std::bad_alloc).
    ds = Dataset.from_arrays(x).random_crop(20_000_000, padding=10_000_000).batch(1).prefetch(2, workers=2)
    it = ds.epoch(0)
    with pytest.raises(MemoryError):
        next(it)
    assert threads_settled(base) == base
    with pytest.raises(StopIteration):
        next(it)


def test_interpreter_exit_with_live_workers_does_not_hang():
    code = textwrap.dedent("""
        import numpy as np, cpucnn as cc
        x = np.zeros((10000, 1, 28, 28), np.uint8)
        ds = cc.data.Dataset.from_arrays(x).batch(16).prefetch(4, workers=2)
        it = iter(ds)
        next(it)
        keep = [it]                    # alive at exit, workers mid-epoch
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------
# fit / evaluate / predict
# ---------------------------------------------------------------------------

def toy(n=256, seed=0):
    """Two classes a small convnet separates easily: bright left half or bright right half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.integers(0, 60, size=(n, 1, 8, 8)).astype(np.uint8)
    for i in range(n):
        if y[i]:
            x[i, 0, :, 4:] += 150
        else:
            x[i, 0, :, :4] += 150
    return x, y


def small_model(seed=0):
    m = cc.Sequential([cc.layers.Conv2D(4, 3, padding="same"), cc.layers.ReLU(), cc.layers.Flatten(),
                       cc.layers.Dense(2)], input_shape=(1, 8, 8), seed=seed)
    m.compile(optimizer=cc.optimizers.Adam(lr=1e-2), loss="cross_entropy", metrics=["accuracy"])
    return m


def test_fit_on_a_pipeline_trains_and_matches_evaluate_on_arrays():
    x, y = toy()
    m = small_model()
    ds = Dataset.from_arrays(x, y).shuffle(seed=1).map_float(scale=1 / 255).random_crop(8, padding=1) \
        .batch(32).prefetch(2, workers=2)
    base = threads_after_warm_up()
    h = m.fit(ds, epochs=4, verbose=0, validation_data=Dataset.from_arrays(x, y).map_float(scale=1 / 255).batch(64))
    assert threads_settled(base) == base
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["val_accuracy"][-1] > 0.9
    xf = x.astype(np.float32) / np.float32(255)
    plain = Dataset.from_arrays(x, y).map_float(scale=1 / 255).batch(50)
    ev_ds, ev_arr = m.evaluate(plain), m.evaluate(xf * 1.0, y)
    assert ev_ds["accuracy"] == ev_arr["accuracy"] and ev_ds["loss"] == pytest.approx(ev_arr["loss"], rel=1e-5)
    assert ev_ds["accuracy"] == h.history["val_accuracy"][-1]
    assert np.allclose(m.predict(plain), m.predict(xf), atol=1e-5)


def test_fit_on_a_pipeline_is_reproducible_and_resumable():
    x, y = toy(128)

    def ds():
        return Dataset.from_arrays(x, y).shuffle(seed=5).map_float(scale=1 / 255).random_crop(8, padding=1) \
            .flip_horizontal().batch(32).prefetch(2, workers=2)

    a, b = small_model(), small_model()
    a.fit(ds(), epochs=3, verbose=0)
    b.fit(ds(), epochs=2, verbose=0)
    b.fit(ds(), epochs=3, initial_epoch=2, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)


def test_fit_on_a_generator_with_steps_per_epoch():
    x, y = toy()
    xf = x.astype(np.float32) / 255

    def gen():
        rng = np.random.default_rng(0)
        while True:
            idx = rng.integers(0, len(x), size=32)
            yield xf[idx], y[idx]

    m = small_model()
    h = m.fit(gen(), steps_per_epoch=8, epochs=3, verbose=0)
    assert len(h.history["loss"]) == 3 and h.history["accuracy"][-1] > 0.85
    assert m.evaluate(gen(), steps=4)["accuracy"] > 0.85
    assert m.predict(gen(), steps=2).shape == (64, 2)


def test_fit_on_lists_sequences_and_generator_pipelines():
    x, y = toy(128)
    xf = x.astype(np.float32) / 255
    batches = [(xf[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]

    class Seq:   # Keras Sequence-like: __len__ and __getitem__, no __iter__
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return batches[i]

    for data in (batches, Seq(), Dataset.from_generator(batches), Dataset.from_generator(lambda: iter(batches))):
        m = small_model()
        h = m.fit(data, epochs=3, verbose=0)
        assert len(h.history["loss"]) == 3, type(data)
    u8batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]
    aug = Dataset.from_generator(u8batches).map_float(scale=1 / 255)
    got = np.concatenate([xb for xb, _ in aug])
    assert np.array_equal(got, x.astype(np.float32) * np.float32(1 / 255))


def test_one_shot_generator_continues_across_epochs_and_stops_when_exhausted():
    x, y = toy(96)
    xf = x.astype(np.float32) / 255
    calls = []

    def gen():
        for i in range(0, 96, 32):
            calls.append(i)
            yield xf[i:i + 32], y[i:i + 32]

    m = small_model()
    h = m.fit(gen(), steps_per_epoch=2, epochs=5, verbose=0)
    # epoch 1: 2 batches; epoch 2: the last batch, then the data runs out: training stops (Keras)
    assert calls == [0, 32, 64] and len(h.history["loss"]) == 2


def test_generator_without_steps_per_epoch_is_a_clear_error():
    x, y = toy(32)
    with pytest.raises(TypeError, match="steps_per_epoch"):
        small_model().fit((b for b in [(x, y)]), epochs=2, verbose=0)


class NeverIndexError:
    def __getitem__(self, i):
        return np.zeros((1, 1, 8, 8), np.float32), np.zeros(1, np.int64)


@pytest.mark.parametrize("bad", [{"x": 1}, "data", NeverIndexError(), 42, None])
def test_unsupported_data_fails_at_once_with_type_error(bad):
    m = small_model()
    with pytest.raises(TypeError, match="Dataset|iterable|labels"):
        m.fit(bad, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="Dataset|iterable|labels"):
        m.evaluate(bad)
    if not isinstance(bad, int):   # predict(42): a 0-d array, a ValueError about its shape as before
        with pytest.raises(TypeError, match="numeric|Dataset"):
            m.predict(bad)


def test_dataset_with_y_and_arrays_without_y_are_type_errors():
    x, y = toy(32)
    m = small_model()
    with pytest.raises(TypeError, match="y must be None"):
        m.fit(Dataset.from_arrays(x, y), y, verbose=0)
    with pytest.raises(TypeError, match="labels y"):
        m.fit(x.astype(np.float32), verbose=0)
    with pytest.raises(TypeError, match="labels y"):
        m.evaluate(x.astype(np.float32).tolist())


def test_exception_in_a_generator_propagates_and_stops_workers():
    x, y = toy(64)
    xf = x.astype(np.float32)

    def gen():
        yield xf[:32], y[:32]
        raise RuntimeError("broken generator")

    with pytest.raises(RuntimeError, match="broken generator"):
        small_model().fit(gen(), steps_per_epoch=4, epochs=1, verbose=0)
    base = threads_after_warm_up()
    ds = Dataset.from_arrays(x, y).batch(8).prefetch(2, workers=2)

    class Boom(cc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            raise ValueError("callback failed")

    with pytest.raises(ValueError, match="callback failed"):
        small_model().fit(ds, epochs=1, verbose=0, callbacks=[Boom()])
    gc.collect()
    assert threads_settled(base) == base


def test_bad_batches_from_a_generator_name_the_problem():
    m = small_model()
    with pytest.raises(ValueError, match="expects input"):
        m.fit([(np.zeros((4, 1, 7, 7), np.float32), np.zeros(4, np.int64))], verbose=0)
    with pytest.raises(ValueError, match="labels"):
        m.fit([(np.zeros((4, 1, 8, 8), np.float32), np.full(4, 5))], verbose=0)
    with pytest.raises(ValueError, match="without labels"):
        m.fit([(np.zeros((4, 1, 8, 8), np.float32),)], verbose=0)


def test_stop_training_closes_the_pipeline():
    x, y = toy(256)
    base = threads_after_warm_up()

    class Stop(cc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    m = small_model()
    h = m.fit(Dataset.from_arrays(x, y).batch(8).prefetch(4, workers=2), epochs=3, verbose=0, callbacks=[Stop()])
    assert len(h.history["loss"]) == 1
    gc.collect()
    assert threads_settled(base) == base


def test_an_epoch_inherited_through_fork_fails_clearly_in_the_child(u8):
    x, y = u8
    it = pipeline(x, y, workers=2).epoch(0)
    next(it)
    with warnings.catch_warnings():   # Python 3.12+ warns about fork() with threads: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:   # the child: workers are gone; next() must raise, not wait forever
        code = 1
        try:
            next(it)
        except RuntimeError as e:
            code = 0 if "fork" in str(e) else 2
        try:
            n = sum(1 for _ in pipeline(x, y, workers=2).epoch(0))   # a new epoch works
            code = code if n == 4 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert sum(1 for _ in it) == 3   # the parent's epoch goes on



def test_array_only_options_with_a_stream_are_clear_errors():
    """sample_weight / class_weight, evaluate's confusion_matrix and predict(outputs=) need arrays:
    with a pipeline they are a ValueError at once, not silently ignored."""
    x, y = toy()
    m = small_model()
    ds = Dataset.from_arrays(x, y).map_float(scale=1 / 255).batch(32)
    with pytest.raises(ValueError, match="sample_weight and class_weight need arrays"):
        m.fit(ds, epochs=1, verbose=0, sample_weight=np.ones(len(x), np.float32))
    with pytest.raises(ValueError, match="sample_weight and class_weight need arrays"):
        m.evaluate(ds, class_weight={0: 2.0})
    with pytest.raises(ValueError, match="confusion_matrix and per_class need arrays"):
        m.evaluate(ds, metrics=["confusion_matrix"])
    with pytest.raises(ValueError, match="outputs"):
        m.predict(ds, outputs=[0])
    assert m.evaluate(ds, metrics=["accuracy"]).keys() == {"loss", "accuracy"}
