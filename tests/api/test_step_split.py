"""The pieces of a data-parallel step, in one process without MPI: train_step equals
compute_gradients + apply_gradients bit for bit, the contiguous gradient buffer is a view that
round-trips the gradients, and asking for distributed training without mpi4py says what to install."""

import subprocess
import threading
import sys
import textwrap

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers


def model(opt, seed=3):
    m = cc.Sequential([L.Conv2D(6, 3, padding="same", use_bias=False), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
                       L.Flatten(), L.Dense(16), L.ReLU(), L.Dropout(0.2), L.Dense(3)], input_shape=(2, 6, 6), seed=seed)
    m.compile(optimizer=opt, loss="cross_entropy")
    return m


def data(n=24):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 2, 6, 6)).astype(np.float32), rng.integers(0, 3, n)


@pytest.mark.parametrize("opt", [lambda: cc.optimizers.SGD(lr=0.1, momentum=0.9, nesterov=True),
                                 lambda: cc.optimizers.Adam(lr=1e-2, clipnorm=0.5)], ids=["sgd", "adam"])
@pytest.mark.parametrize("via_buffer", [False, True])
def test_train_step_is_compute_then_apply(opt, via_buffer):
    x, y = data()
    a, b = model(opt()), model(opt())
    for s in range(4):
        xb, yb = x[6 * s:6 * s + 6], y[6 * s:6 * s + 6]
        la, ca = a._m.train_step(xb, yb)
        lb, cb = b._m.compute_gradients(xb, yb)
        if via_buffer:   # packed and unpacked with scales that are exact in float
            b._m.pack_gradients(4.0)
            b._m.apply_gradients(0.25)
        else:
            b._m.apply_gradients()
        assert (la, ca) == (lb, cb)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb), wa.shape
    assert a._m.optimizer_steps == b._m.optimizer_steps == 4


def test_gradient_buffer_is_a_view_of_every_gradient():
    x, y = data()
    m = model(cc.optimizers.SGD(lr=0.1))
    buf = m._m.gradient_buffer()
    assert buf.dtype == np.float32 and buf.flags.c_contiguous and not buf.flags.owndata
    assert buf.size == m.count_params() + 2, (buf.size, m.count_params())
    m._m.compute_gradients(x, y)
    m._m.pack_gradients(1.0)
    g = buf[:-2].copy()
    assert np.count_nonzero(g) > g.size // 2
    m._m.pack_gradients(0.5)
    assert np.array_equal(buf[:-2], g * np.float32(0.5))
    m._m.pack_gradients(0.0)
    assert not buf[:-2].any()
    # idle_gradients (a process without samples) zeroes the gradients: the update is weight decay only.
    before = m.get_weights()
    m._m.idle_gradients()
    m._m.apply_gradients()
    for w0, w1 in zip(before, m.get_weights()):
        assert np.array_equal(w0, w1)


def test_dropout_stream_changes_masks_only_when_set():
    x, y = data()
    a, b, c = (model(cc.optimizers.SGD(lr=0.1)) for _ in range(3))
    b._m.dropout_stream = 0
    c._m.dropout_stream = 1
    a._m.train_step(x, y)
    b._m.train_step(x, y)
    c._m.train_step(x, y)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert all(np.array_equal(p, q) for p, q in zip(wa, wb))
    assert not all(np.array_equal(p, q) for p, q in zip(wa, wc))


def test_settings_that_need_distributed():
    x, y = data()
    m = model(cc.optimizers.SGD(lr=0.1))
    with pytest.raises(ValueError, match="sync_batchnorm=True needs distributed=True"):
        m.fit(x, y, sync_batchnorm=True, verbose=0)
    ds = cc.data.Dataset.from_arrays(x, y).batch(4)
    with pytest.raises(ValueError, match="distributed=True. needs arrays"):
        m.fit(ds, distributed=True, verbose=0)


def test_without_mpi4py_the_error_says_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["mpi4py"] = None          # as if it were not installed
        import numpy as np, cpucnn as cc
        m = cc.Sequential([cc.layers.Flatten(), cc.layers.Dense(2)], input_shape=(3,))
        m.compile(optimizer="sgd")
        for call in (lambda: cc.distributed.init(),
                     lambda: m.fit(np.zeros((4, 3), np.float32), np.zeros(4, int), distributed=True, verbose=0)):
            try:
                call()
            except ImportError as e:
                print("ImportError:", e)
        print(cc.distributed.rank(), cc.distributed.size(), cc.distributed.is_main())
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith("ImportError:") and 'pip install "cpucnn[mpi]"' in ln]) == 2, r.stdout
    assert lines[-1] == "0 1 True"


class ThreadComm:
    """An allreduce between threads of this process (a stand-in for MPI in the tests): each thread
    passes its rank and an array; every thread gets the sum, added in rank order."""

    def __init__(self, k):
        self.k, self.slots = k, [None] * k
        self.barrier = threading.Barrier(k, timeout=60)

    def allreduce(self, rank, arr):
        self.slots[rank] = arr.copy()
        self.barrier.wait()
        total = self.slots[0].copy()
        for s in self.slots[1:]:
            total += s
        self.barrier.wait()
        arr[...] = total


def bn_model(opt):
    m = cc.Sequential([L.Conv2D(6, 3, padding="same", use_bias=False), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
                       L.Conv2D(4, 3, use_bias=False), L.BatchNorm2D(), L.ReLU(), L.Flatten(), L.Dense(3)],
                      input_shape=(2, 6, 6), seed=4)
    m.compile(optimizer=opt(), loss="cross_entropy")
    return m


@pytest.mark.parametrize("sizes", [[8, 8], [5, 3, 0]], ids=["2x8", "5+3+0"])
def test_synced_batchnorm_over_threads_equals_one_batch(sizes):
    """k "processes" (threads sharing an allreduce) with synced BatchNorm, each its slice of every
    batch (a process with none takes part through idle_gradients), equal one model on the whole
    batch: the sums of the statistics and the count-weighted gradient average in C++, without MPI."""
    opt = lambda: cc.optimizers.SGD(lr=0.1, momentum=0.9)
    k, total = len(sizes), sum(sizes)
    rng = np.random.default_rng(2)
    steps = 4
    x = rng.standard_normal((steps * total, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, steps * total)
    ref = bn_model(opt)
    for s in range(steps):
        ref._m.train_step(x[s * total:(s + 1) * total], y[s * total:(s + 1) * total])
    comm = ThreadComm(k)
    models = [bn_model(opt) for _ in range(k)]
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    errors = []

    def run(r):
        try:
            m = models[r]._m
            m.set_collective(lambda v: comm.allreduce(r, v))
            buf = m.gradient_buffer()
            for s in range(steps):
                lo, hi = s * total + cuts[r], s * total + cuts[r + 1]
                if hi > lo:
                    m.compute_gradients(x[lo:hi], y[lo:hi])
                else:
                    m.idle_gradients()
                m.pack_gradients(float(hi - lo))
                buf[-2] = hi - lo
                comm.allreduce(r, buf)
                m.apply_gradients(1.0 / float(buf[-2]))
            m.set_collective(None)
        except BaseException as e:  # reported by the main thread
            errors.append(e)
            comm.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    want = ref.get_weights()
    for r, m in enumerate(models):
        for w, v in zip(m.get_weights(), want):
            err = np.abs(w - v).max() / max(np.abs(v).max(), 1e-30)
            assert err < 1e-6, f"thread {r} of {sizes}: weight {v.shape} differs by {err:.2e} (relative)"
    for w0, w1 in zip(models[0].get_weights(), models[-1].get_weights()):
        assert np.array_equal(w0, w1)


@pytest.mark.parametrize("bucket_floats", [1, 100, 10 ** 9])
def test_overlapped_packing_hands_over_every_bucket_once_in_order(bucket_floats):
    """compute_gradients_overlapped leaves the buffer pack_gradients would, hands over the ranges
    of gradient_buckets (in that order, covering the buffer once, the extra slots in the first),
    each only once its values are final; the update that follows is bit-identical."""
    x, y = data()
    a, b = model(cc.optimizers.Adam(lr=1e-2)), model(cc.optimizers.Adam(lr=1e-2))
    for s in range(2):
        xb, yb = x[12 * s:12 * s + 12], y[12 * s:12 * s + 12]
        la = a._m.compute_gradients(xb, yb)
        a._m.pack_gradients(12.0)
        want = a._m.gradient_buffer()[:-2].copy()
        buf = b._m.gradient_buffer()
        buf[:] = np.nan
        buf[-2:] = (12, 0)
        got, snapshots = [], []

        def ready(off, cnt):
            got.append((off, cnt))
            snapshots.append(buf[off:off + cnt].copy())

        lb = b._m.compute_gradients_overlapped(xb, yb, None, 12.0, ready, bucket_floats)
        assert la == lb
        assert got == [tuple(r) for r in b._m.gradient_buckets(bucket_floats)]
        assert sorted(got)[0][0] == 0 and sum(c for _, c in got) == buf.size
        assert got[0][0] + got[0][1] == buf.size
        for (off, cnt), snap in zip(got, snapshots):   # final when handed over
            assert np.array_equal(snap, buf[off:off + cnt]), (off, cnt)
        assert np.array_equal(buf[:-2], want)
        a._m.apply_gradients(1 / 12)
        b._m.apply_gradients(1 / 12)
    if bucket_floats == 1:
        assert len(got) > 3
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)
