"""Kernel paths: every ISA gives the scalar path's results (forward and a
training step of a small CNN with ragged sizes; scalar itself is skipped
there, it would be compared with itself); CPUCNN_ISA forces a path, and a
bad value or an ISA the CPU lacks is a clear error; training is bit-for-bit
reproducible for a fixed seed and thread count.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cpucnn as cc
from harness import seeded_rng, skip_scalar_vs_scalar

L = cc.layers


def _cnn(dropout=0.3):
    """Every layer type, ragged channel and spatial sizes."""
    return [
        L.Conv2D(5, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2, padding=1),
        L.Conv2D(7, (2, 3), stride=(1, 2), dilation=(2, 1)), L.LeakyReLU(0.1),
        L.Conv2D(14, 3, padding=1, groups=7), L.AvgPool2D(2, stride=1), L.Sigmoid(),
        L.Conv2D(9, 1), L.Dropout(dropout), L.Flatten(), L.Dense(17), L.Tanh(), L.Dense(10),
    ]


INPUT = (3, 13, 11)


def _data(n=67):
    rng = seeded_rng("isa-cnn", n)
    x = rng.standard_normal((n,) + INPUT).astype(np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def _model(optimizer, seed=3, dropout=0.3):
    model = cc.Sequential(_cnn(dropout), input_shape=INPUT, seed=seed)
    model.compile(optimizer=optimizer, loss="cross_entropy")
    return model


def _on(isa_name, fn):
    """fn() run with the kernel path `isa_name`, restoring the current one."""
    before = cc.cpu_info()["isa"]
    cc.set_isa(isa_name)
    try:
        return fn()
    finally:
        cc.set_isa(before)


def _allclose_list(got, want, what, rtol, atol_frac):
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        atol = atol_frac * max(float(np.abs(w).max()), 1e-6)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{what}: array {i} of shape {w.shape}")


# ---------------------------------------------------------------------------
# Every ISA vs scalar
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("n", [1, 67])
def test_forward_matches_scalar(isa, threads, n, nt):
    skip_scalar_vs_scalar(isa)
    cc.set_num_threads(nt)
    x, _ = _data(n)
    model = _model(cc.optimizers.SGD(lr=0.0))
    want = _on("scalar", lambda: model.predict(x))
    got = model.predict(x)
    _allclose_list([got], [want], f"predict isa={isa} vs scalar N={n} threads={nt} input={INPUT}", 1e-5, 1e-5)


OPTIMIZERS = {
    "sgd-nesterov-wd": lambda: cc.optimizers.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: cc.optimizers.Adam(lr=1e-3, weight_decay=1e-4),
}


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_training_steps_match_scalar(isa, threads, opt):
    """Two training steps (forward, backward, optimizer with its state) on
    this ISA and on scalar, from the same weights."""
    skip_scalar_vs_scalar(isa)
    cc.set_num_threads(2)
    x, y = _data(67)

    def train():
        model = _model(OPTIMIZERS[opt]())
        losses = [model.train_on_batch(x, y) for _ in range(2)]
        return losses, model.get_weights()

    # Adam's first steps move every weight by about lr * sign(grad): a
    # gradient that is rounding noise on one path may flip sign on another
    _trains_like_scalar(train, f"isa={isa} vs scalar, optimizer {opt}, 2 steps, N=67",
                        1e-5 if opt != "adam" else 1e-4)


def _trains_like_scalar(train, what, atol_frac):
    """train() -> (losses, weights) on the current ISA and on scalar, compared."""
    want_losses, want_w = _on("scalar", train)
    got_losses, got_w = train()
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-5, err_msg=what + " losses")
    _allclose_list(got_w, want_w, what + " weights", 1e-5, atol_frac)


def _fast_paths():
    """The layers the vector ISAs specialise: Winograd 3x3 convs (one padded,
    one not; enough tiles for 'auto' to pick it), 2x2 max pooling over odd
    sizes and rows wider than a register, conv+ReLU fused."""
    return [
        L.Conv2D(12, 3, padding=1), L.ReLU(), L.Conv2D(16, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(9, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(10),
    ]


def _two_sgd_steps_like_scalar(layers, shape, n, key, what):
    """Two SGD-momentum steps of a model of `layers` on n samples: the same
    losses and weights as on the scalar path."""
    rng = seeded_rng(key, n)
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    y = rng.integers(0, 10, n)

    def train():
        model = cc.Sequential(layers(), input_shape=shape, seed=5)
        model.compile(optimizer=cc.optimizers.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
        losses = [model.train_on_batch(x, y) for _ in range(2)]
        return losses, model.get_weights()

    _trains_like_scalar(train, what, 1e-5)


@pytest.mark.parametrize("nt", [1, 2])
def test_fast_paths_train_like_scalar(isa, threads, nt):
    skip_scalar_vs_scalar(isa)
    cc.set_num_threads(nt)
    _two_sgd_steps_like_scalar(_fast_paths, (3, 34, 71), 8, "isa-fast",
                               f"fast paths isa={isa} vs scalar, threads={nt}, 2 SGD steps, input=(3, 34, 71)")


def _thin_paths():
    """The thin-layer kernels of avx512 at 16+ images per thread: 16 images
    a register (conv1's forward and dw, conv2's dx), 16 and 32 output
    channels a register (conv2 and conv3: forward and dw)."""
    return [
        L.Conv2D(6, 5, padding=2), L.ReLU(), L.MaxPool2D(2), L.Conv2D(16, 5), L.ReLU(),
        L.Conv2D(32, (2, 3)), L.ReLU(), L.Flatten(), L.Dense(10),
    ]


@pytest.mark.parametrize("nt", [1, 2])
def test_thin_paths_train_like_scalar(isa, threads, nt):
    skip_scalar_vs_scalar(isa)
    cc.set_num_threads(nt)
    _two_sgd_steps_like_scalar(_thin_paths, (1, 28, 28), 40, "isa-thin",
                               f"thin paths isa={isa} vs scalar, threads={nt}, 2 SGD steps, N=40")


# ---------------------------------------------------------------------------
# CPUCNN_ISA
# ---------------------------------------------------------------------------


def _python(code, isa_env):
    env = dict(os.environ)
    env.pop("CPUCNN_ISA", None)
    if isa_env is not None:
        env["CPUCNN_ISA"] = isa_env
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)


def _cpu_info_error(isa_env):
    """A fresh process with CPUCNN_ISA=isa_env calls cpu_info() and prints the ValueError it raises."""
    return _python("""
        import cpucnn
        try:
            cpucnn.cpu_info()
        except ValueError as e:
            print("ValueError:", e)
        """, isa_env)


def _forced(isa_env):
    """(isa, {op: kernel}) a fresh process reports with CPUCNN_ISA=isa_env."""
    r = _python("""
        import json, cpucnn
        info = cpucnn.cpu_info()
        print(json.dumps([info["isa"], info["kernels"]]))
        """, isa_env)
    assert r.returncode == 0, f"CPUCNN_ISA={isa_env!r}: rc={r.returncode} {r.stderr}"
    return json.loads(r.stdout)


def test_cpucnn_isa_env_forces_the_path(isa):
    ran, impls = _forced(isa)
    assert ran == isa, f"CPUCNN_ISA={isa!r} ran {ran}"
    # per-op kernels are the forced ISA's own (possibly with a note on the
    # shapes it covers) or the scalar reference, never another ISA
    for op, impl in impls.items():
        assert impl.split()[0] in (isa, "scalar"), f"CPUCNN_ISA={isa!r}: {op} runs {impl!r}"


@pytest.mark.parametrize("isa_env", [None, ""])
def test_cpucnn_isa_env_unset_or_empty_runs_the_best_path(isa_env):
    ran, _ = _forced(isa_env)
    assert ran == cc.available_isas()[0], f"CPUCNN_ISA={isa_env!r} ran {ran}"


def test_an_isa_the_cpu_lacks_is_a_clear_error(lacked_isas):
    before = cc.cpu_info()["isa"]
    for name in lacked_isas:
        with pytest.raises(ValueError, match="not supported by this CPU"):
            cc.set_isa(name)
        assert cc.cpu_info()["isa"] == before, f"a rejected set_isa({name!r}) must keep the current path"
        r = _cpu_info_error(name)
        assert r.returncode == 0, f"CPUCNN_ISA={name!r}: crashed, rc={r.returncode}: {r.stderr[-2000:]}"
        assert "ValueError:" in r.stdout and "not supported by this CPU" in r.stdout, \
            f"CPUCNN_ISA={name!r}: no clear error, got {r.stdout!r}"


@pytest.mark.parametrize("bad", ["bogus", "AVX2", "neon"])
def test_cpucnn_isa_env_invalid_is_a_clear_error(bad):
    r = _cpu_info_error(bad)
    assert r.returncode == 0, f"CPUCNN_ISA={bad!r}: import or cpu_info() crashed, rc={r.returncode}: {r.stderr[-2000:]}"
    assert "ValueError:" in r.stdout, f"CPUCNN_ISA={bad!r}: no ValueError, got {r.stdout!r}"
    assert bad in r.stdout and "CPUCNN_ISA" in r.stdout, f"CPUCNN_ISA={bad!r}: unclear message {r.stdout!r}"


def test_cpucnn_isa_env_invalid_does_not_abort_threaded_conv():
    r = _python("""
        import numpy as np, cpucnn as cc
        cc.set_num_threads(2)
        try:  # the model (or, failing that, the first op) reports the bad ISA, outside any parallel region
            m = cc.Sequential([cc.layers.Conv2D(4, 3)], input_shape=(3, 8, 8), seed=0)
            m.predict(np.ones((4, 3, 8, 8), np.float32))
        except ValueError as e:
            print("ValueError:", e)
        try:  # and keeps reporting it: no silent fallback to another path
            cc.cpu_info()
        except ValueError as e:
            print("again ValueError:", e)
        """, "bogus")
    assert r.returncode == 0, f"aborted: rc={r.returncode} {r.stderr[-500:]}"
    assert "ValueError:" in r.stdout and "bogus" in r.stdout, r.stdout
    assert "again ValueError:" in r.stdout, r.stdout


def test_set_isa_rejects_unknown_names(isa):
    with pytest.raises(ValueError, match="bogus"):
        cc.set_isa("bogus")
    assert cc.cpu_info()["isa"] == isa, "a rejected set_isa must keep the current path"


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("nt", [1, 2])
def test_training_is_bit_reproducible(isa, threads, nt):
    """Same seed and thread count: identical weights after a few steps with
    Dropout and BatchNorm (batch-parallel conv backward at N=67 on 2 threads)."""
    cc.set_num_threads(nt)
    x, y = _data(67)

    def run():
        model = _model(cc.optimizers.Adam(lr=1e-2), seed=11, dropout=0.5)
        for i in range(3):
            model.train_on_batch(x[i * 16:], y[i * 16:])
        model.fit(x, y, epochs=1, batch_size=32, seed=5, verbose=0)
        return model.get_weights()

    first, second = run(), run()
    for i, (a, b) in enumerate(zip(first, second)):
        assert np.array_equal(a, b), f"isa={isa} threads={nt}: array {i} {a.shape} differs between identical runs"


def test_dropout_seed_changes_training(isa):
    """The model seed drives the dropout masks: same weights, other seed,
    other result (guards the test above against a dropout that does nothing)."""
    x, y = _data(16)
    a = _model(cc.optimizers.SGD(lr=0.1), seed=1, dropout=0.5)
    b = _model(cc.optimizers.SGD(lr=0.1), seed=2, dropout=0.5)
    b.set_weights(a.get_weights())
    a.train_on_batch(x, y)
    b.train_on_batch(x, y)
    assert any(not np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights())), \
        f"isa={isa}: dropout ignored the seed"
