"""cpucnn.distributed under a real MPI launcher: each test starts ``mpirun -np K python worker.py ...``
as a subprocess with a timeout (a hang fails the test instead of stalling CI) and checks what the
processes wrote. Skipped, with the reason, when mpi4py or an MPI launcher is missing
(``pip install "cpucnn[mpi]"`` provides both)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

import cpucnn as cc

WORKER = Path(__file__).with_name("worker.py")
TIMEOUT = 120


def _launcher():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install \"cpucnn[mpi]\")"
    # The launcher pip installed with this Python (the [mpi] extra's), then the one on PATH.
    for here in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        for name in ("mpiexec", "mpirun"):
            if (here / name).exists():
                return str(here / name), None
    for name in ("mpiexec", "mpirun"):
        if shutil.which(name):
            return shutil.which(name), None
    return None, "no mpiexec/mpirun on PATH (pip install \"cpucnn[mpi]\" brings MPICH's)"


MPIRUN, WHY = _launcher()
pytestmark = pytest.mark.skipif(MPIRUN is None, reason=WHY or "")


def _extra_flags():
    """Open MPI's mpirun needs --oversubscribe for more processes than cores (MPICH's needs nothing)."""
    if MPIRUN is None:
        return []
    try:
        v = subprocess.run([MPIRUN, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--oversubscribe"] if "open mpi" in (v.stdout + v.stderr).lower() else []


FLAGS = _extra_flags()


def mpirun(k, *args, timeout=TIMEOUT, check=True, bucket_mb=1.0):
    """Runs worker.py on k processes; returns (CompletedProcess, seconds). bucket_mb: the gradient
    buckets (cpucnn.distributed.init's; 0: one blocking allreduce per step)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", BUCKET_MB=str(bucket_mb),
               # Open MPI, if that is the MPI here: allow root and more processes than cores.
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    src = Path(cc.__file__).resolve().parents[1]        # the cpucnn being tested, installed or from src/
    env["PYTHONPATH"] = os.pathsep.join([str(src)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [MPIRUN, *FLAGS, "-np", str(k), sys.executable, str(WORKER), *map(str, args)]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not end within {timeout} s:\n{e.stdout}\n{e.stderr}")
    took = time.perf_counter() - t0
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r, took


def read(path):
    return json.loads(Path(path).read_text())


def read_all(out, k):
    return [read(f"{out}.{r}.json") for r in range(k)]


# -- equivalence --------------------------------------------------------------------------------

# Small models: 1e-4 MB buckets (25 floats) cut their gradients into a bucket per layer or so.
@pytest.mark.parametrize("opt,bucket_mb", [("sgd", 0.0), ("sgd", 1e-4), ("adam", 0.0), ("adam", 1e-4)])
def test_two_processes_of_32_equal_one_of_64(tmp_path, opt, bucket_mb):
    """10 steps (640 samples, global batch 64) of SGD-momentum / Adam with synced BatchNorm, with one
    blocking allreduce per step or buckets overlapping the backward pass: every weight within 1e-6
    of one process's (relative to the tensor's largest value)."""
    out = tmp_path / "eq.json"
    mpirun(2, "equivalence", out, opt, 640, 64, 1, bucket_mb=bucket_mb)
    r = read(out)
    assert r["steps"] == r["ref_steps"] == 10, r
    assert max(r["errors"]) < 1e-6, f"{opt}: relative errors per weight {r['errors']}"
    assert np.allclose(r["loss"], r["ref_loss"], rtol=1e-6), (r["loss"], r["ref_loss"])
    assert np.allclose(r["val_loss"], r["ref_val_loss"], rtol=1e-6), (r["val_loss"], r["ref_val_loss"])


@pytest.mark.parametrize("bucket_mb", [0.0, 1e-4])
def test_one_process_is_bit_identical_to_plain_fit(tmp_path, bucket_mb):
    """fit(distributed=True) on 1 process (256 samples, batch 64, 2 epochs, Adam, synced BatchNorm)
    gives exactly the weights of fit."""
    out = tmp_path / "eq1.json"
    mpirun(1, "equivalence", out, "adam", 256, 64, 2, bucket_mb=bucket_mb)
    r = read(out)
    assert r["steps"] == r["ref_steps"] == 8 and max(r["errors"]) == 0.0, r


@pytest.mark.parametrize("bucket_mb", [0.0, 1e-4])
def test_three_processes_with_uneven_last_batches(tmp_path, bucket_mb):
    """194 samples, 3 processes x 16 (global 48): each epoch ends with a global batch of 2 (1, 1 and 0
    samples: process 2 has none and still takes part), 2 epochs of SGD-momentum with synced
    BatchNorm equal one process with batch 48."""
    out = tmp_path / "eq3.json"
    mpirun(3, "equivalence", out, "sgd", 194, 48, 2, bucket_mb=bucket_mb)
    r = read(out)
    assert r["steps"] == r["ref_steps"] == 10, r
    assert max(r["errors"]) < 1e-6, f"relative errors per weight {r['errors']}"


# -- sharding -----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 3])
def test_each_sample_once_per_epoch(tmp_path, k):
    """What fit actually trains on (recorded per process): disjoint slices covering all 101 samples
    once per epoch, the slices of cpucnn.distributed.shard, a different order each epoch."""
    out = tmp_path / "shard"
    n, batch, epochs = 101, 8, 2
    mpirun(k, "sharding", out, n, batch, epochs)
    res = read_all(out, k)
    orders = []
    for e in range(epochs):
        seen = [s for r in res for s in r["samples"][e]]
        assert sorted(seen) == list(range(n)), f"epoch {e} on {k} processes: {len(seen)} samples trained"
        for r in res:
            assert r["samples"][e] == [i for step in r["shard"][e] for i in step]
        steps = {len(r["shard"][e]) for r in res}
        assert steps == {-(-n // (batch * k))}, f"steps per process {steps}"
        orders.append([i for step in zip(*[r["shard"][e] for r in res]) for part in step for i in part])
    assert orders[0] != orders[1]


def test_shard_function_without_mpi():
    """The same slices computed for any rank and size, no MPI needed."""
    n, b = 50, 4
    for p in (1, 2, 3, 5):
        for e in (0, 3):
            parts = [cc.distributed.shard(n, b, e, seed=1, rank=r, size=p) for r in range(p)]
            assert len({len(s) for s in parts}) == 1
            flat = np.concatenate([np.concatenate(s) for s in parts])
            assert sorted(flat.tolist()) == list(range(n)), (p, e)
            for step in zip(*parts):
                assert sum(len(s) for s in step) <= b * p
    with pytest.raises(ValueError, match="rank"):
        cc.distributed.shard(10, 2, rank=3, size=3)


# -- resume -------------------------------------------------------------------------------------

def test_checkpoint_from_two_processes_resumes_on_one_and_on_three(tmp_path):
    """2 epochs (SGD-momentum, synced BatchNorm) on 2 processes x 32, checkpointed by process 0; 2 more
    epochs from the file on 1 process x 64 equal one process's 4 epochs; on 3 processes they run with
    identical weights everywhere."""
    ckpt = tmp_path / "ckpt.cnn"
    mpirun(2, "resume", tmp_path / "save", "save", ckpt, 32)
    saved = read_all(tmp_path / "save", 2)
    assert saved[0]["saved"] == [str(ckpt)] * 2 and saved[1]["saved"] == [], saved   # process 0 saves
    assert saved[0]["hash"] == saved[1]["hash"]
    # One process with the same global batch continues exactly where the two left off.
    mpirun(1, "resume", tmp_path / "one", "load", ckpt, 64)
    one = read(tmp_path / "one.0.json")
    assert max(one["start_errors"]) == 0.0
    assert one["steps"] == 16
    assert max(one["errors"]) < 1e-6, one["errors"]
    # Three processes (global batch 48) resume from it too, with identical weights everywhere.
    mpirun(3, "resume", tmp_path / "three", "load", ckpt, 16)
    three = read_all(tmp_path / "three", 3)
    assert len({r["hash"] for r in three}) == 1
    assert three[0]["steps"] == 8 + 2 * 6, three[0]


# -- failure ------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_process_ends_the_job(tmp_path, how):
    """Process 1 raises an exception (or is killed with SIGKILL) in its 3rd step while process 0 waits
    in the allreduce: the whole job ends, with an error, within 30 s."""
    out = tmp_path / "fail.json"
    r, took = mpirun(2, "fail", out, how, timeout=30, check=False)
    assert r.returncode != 0
    assert not out.exists()
    assert took < 30
    text = r.stdout + r.stderr
    if how == "raise":
        assert "boom on process 1" in text and "MPI_Abort" in text, text[-2000:]


# -- output -------------------------------------------------------------------------------------

def test_process_zero_prints_and_saves_and_early_stopping_agrees(tmp_path):
    """verbose=2 under 2 processes: the epoch lines once (process 0), ModelCheckpoint's file from
    process 0 only, EarlyStopping stops both after the same epoch, and predict/evaluate(distributed)
    match one process's."""
    ckpt = tmp_path / "out.cnn"
    r, _ = mpirun(2, "output", tmp_path / "out", ckpt)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("Epoch ")]
    assert [ln.split(" - ")[0] for ln in lines] == ["Epoch 1/5", "Epoch 2/5"], r.stdout
    res = read_all(tmp_path / "out", 2)
    assert res[0]["saved"] == [str(ckpt)] * 2 and res[1]["saved"] == []
    assert res[0]["epochs"] == res[1]["epochs"] == [0, 1]
    assert res[0]["logs"] == res[1]["logs"]          # the same logs (over both processes) on each
    # Per-process BatchNorm statistics (the default), running statistics averaged: identical weights.
    assert res[0]["hash"] == res[1]["hash"]
    # predict(distributed=True): 41 samples over 2 processes, gathered on process 0 only.
    # (Chunks of other sizes than one process's: the kernels may differ by rounding.)
    assert res[0]["predict_none"] is False and res[0]["predict_error"] < 1e-5 and res[1]["predict_none"] is True, res
    # evaluate(distributed=True): the same loss, accuracy and confusion matrix as one process, on both.
    for r in res:
        loss, acc, cm = r["eval"]
        want_loss, want_acc, want_cm = r["eval_local"]
        assert abs(loss - want_loss) <= 1e-6 * abs(want_loss) and acc == want_acc and cm == want_cm, r


# -- a short real run ---------------------------------------------------------------------------

@pytest.mark.slow
def test_fashion_mnist_two_processes_match_one(tmp_path):
    """10,000 Fashion-MNIST images, 1 epoch: 2 processes x 32 reach the test accuracy of 1 process x 64
    within 1%."""
    try:
        (x, y), (xt, yt) = cc.datasets.load_fashion_mnist()
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    sys.path.insert(0, str(WORKER.parent))
    try:
        import worker
    finally:
        sys.path.pop(0)
    out = tmp_path / "fm.json"
    mpirun(2, "fashion", out, 10000, 64, 1)
    dist = read(out)
    threads = cc.get_num_threads()
    cc.set_num_threads(1)
    try:
        m = worker.fashion_model()
        m.fit(x[:10000], y[:10000], batch_size=64, epochs=1, seed=0, verbose=0)
        one = m.evaluate(xt, yt)
    finally:
        cc.set_num_threads(threads)
    assert one["accuracy"] > 0.7, one
    assert abs(dist["accuracy"] - one["accuracy"]) <= 0.01, (dist, one)
