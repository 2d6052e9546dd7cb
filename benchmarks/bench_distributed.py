#!/usr/bin/env python3
"""Data-parallel training speed: 1 process x 1 thread vs 2 processes x 1 thread at the same global
batch (one blocking allreduce per step, and buckets overlapping the backward pass), images/s and the
fraction of each step spent in (waiting for) the gradient allreduce; then a
ring-allreduce model of 8 and 64 machines on 10 and 25 Gbit/s Ethernet from the measured step time
and the gradient bytes.

    python benchmarks/bench_distributed.py                       # convnet_s and vgg_s, global batch 128
    python benchmarks/bench_distributed.py --steps 3 --models convnet_s --json out.json   # a smoke run

Each configuration runs under ``mpirun -np K`` (MPICH's from ``pip install "cpucnn[mpi]"``, or the
one on PATH); the driver needs no MPI itself. Steps are timed after warm-up steps; the
communication fraction is the time in ``Allreduce`` (which includes waiting for the slower
process) over the step time, on process 0. Numbers are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(args) -> None:
    """Runs under mpirun: times data-parallel steps and prints one JSON line on process 0."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    import cpucnn as cc
    from cpucnn import distributed as dist
    from models import cpucnn_model

    dist.init(threads=args.threads, bucket_mb=args.bucket_mb)
    p = dist.size()
    model = cpucnn_model(args.model)
    model.compile(optimizer=cc.optimizers.SGD(lr=0.01, momentum=0.9), loss="cross_entropy")
    per = args.batch // p
    rng = np.random.default_rng(dist.rank())
    x = rng.standard_normal((per,) + tuple(model.input_shape)).astype(np.float32)
    y = rng.integers(0, model.output_shape[0], per)
    dp = dist.DataParallel(model)
    dp.begin(0)
    for _ in range(args.warmup):
        dp.step(x, y, None)
    dist.barrier()
    dp.comm_seconds = 0.0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        dp.step(x, y, None)
    elapsed = time.perf_counter() - t0
    dp.end()
    dist.check_weights(model)
    # The allreduce alone (after a barrier, so no waiting for a slower process): its transfer cost.
    buf = model._m.gradient_buffer().copy()
    dist.barrier()
    t1 = time.perf_counter()
    for _ in range(args.steps):
        dp.comm.Allreduce(dp.MPI.IN_PLACE, buf, op=dp.MPI.SUM)
    allreduce_s = (time.perf_counter() - t1) / args.steps
    if dist.is_main():
        grad_floats = model._m.gradient_buffer().size - 2
        print("RESULT " + json.dumps({
            "model": args.model, "processes": p, "threads": cc.get_num_threads(), "global_batch": per * p,
            "bucket_mb": args.bucket_mb,
            "steps": args.steps, "step_s": elapsed / args.steps, "images_per_s": per * p * args.steps / elapsed,
            "comm_fraction": dp.comm_seconds / elapsed, "allreduce_s": allreduce_s,
            "allreduce_fraction": allreduce_s * args.steps / elapsed, "gradient_bytes": 4 * grad_floats}))


def launcher() -> str:
    for here in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        for name in ("mpiexec", "mpirun"):
            if (here / name).exists():
                return str(here / name)
    for name in ("mpiexec", "mpirun"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit('no mpiexec/mpirun: pip install "cpucnn[mpi]"')


def run(model: str, procs: int, args, bucket_mb: float = 0.0) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    cmd = [launcher(), "-np", str(procs), sys.executable, __file__, "--worker", "--model", model,
           "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", "1",
           "--bucket-mb", str(bucket_mb)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def ring_allreduce_s(nbytes: float, p: int, gbit: float, latency_s: float) -> float:
    """Ring allreduce: 2(p-1) messages of nbytes/p each (reduce-scatter then allgather)."""
    if p <= 1:
        return 0.0
    return 2 * (p - 1) / p * nbytes / (gbit * 1e9 / 8) + 2 * (p - 1) * latency_s


def scaling(one: dict, cores: int, per_machine_batch: int, latency_s: float) -> list:
    """Weak scaling: each machine (``cores`` cores, compute scaling linearly from the 1-thread step)
    trains ``per_machine_batch`` images per step; blocking allreduce after the backward pass."""
    per_image = one["step_s"] / one["global_batch"]
    compute = per_image * per_machine_batch / cores
    rows = []
    for gbit in (10, 25):
        for p in (8, 64):
            comm = ring_allreduce_s(one["gradient_bytes"], p, gbit, latency_s)
            step = compute + comm
            rows.append({"model": one["model"], "machines": p, "gbit": gbit, "compute_s": compute, "allreduce_s": comm,
                         "efficiency": compute / step, "speedup": p * compute / step})
    return rows


def strong_scaling(one: dict, cores: int, global_batch: int, latency_s: float) -> list:
    """A fixed global batch split over p machines: speed-up over one machine (where it peaks, adding
    machines stops paying)."""
    t1 = one["step_s"] / one["global_batch"] * global_batch / cores
    rows = []
    for gbit in (10, 25):
        for p in (1, 2, 4, 8, 16, 32, 64):
            step = t1 / p + ring_allreduce_s(one["gradient_bytes"], p, gbit, latency_s)
            rows.append({"model": one["model"], "machines": p, "gbit": gbit, "global_batch": global_batch,
                         "step_s": step, "speedup": t1 / step})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["convnet_s", "vgg_s"])
    ap.add_argument("--batch", type=int, default=128, help="global batch (default 128)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cores", type=int, default=16, help="cores per machine in the scaling model (default 16)")
    ap.add_argument("--machine-batch", type=int, default=128, help="images per machine per step in the model")
    ap.add_argument("--strong-batch", type=int, default=1024,
                    help="the fixed global batch of the strong-scaling model (default 1024)")
    ap.add_argument("--latency-us", type=float, default=50.0, help="per-message latency in the model (µs)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--overlap-mb", type=float, default=1.0,
                    help="bucket size of the overlapped 2-process run (the other is blocking; default 1.0)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bucket-mb", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="convnet_s", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    results, model_rows, strong_rows = [], [], []
    for model in args.models:
        one = run(model, 1, args)
        results += [one, run(model, 2, args, 0.0), run(model, 2, args, args.overlap_mb)]
        model_rows += scaling(one, args.cores, args.machine_batch, args.latency_us * 1e-6)
        strong_rows += strong_scaling(one, args.cores, args.strong_batch, args.latency_us * 1e-6)
        print(f"{model}: gradients {one['gradient_bytes'] / 1e6:.2f} MB")
    print("\ncomm %: time in the step's allreduce calls (starting, progressing and waiting, for the slower "
          "process too); allreduce %: one blocking allreduce of all the gradients alone (after a barrier)")
    print(f"{'model':10} {'procs':>5} {'threads':>7} {'allreduce':>14} {'step ms':>8} {'img/s':>8} {'comm %':>7} "
          f"{'allreduce %':>11} {'speed-up':>8}")
    base = {r["model"]: r["images_per_s"] for r in results if r["processes"] == 1}
    for r in results:
        how = "-" if r["processes"] == 1 else ("blocking" if not r["bucket_mb"] else f"{r['bucket_mb']:g} MB buckets")
        print(f"{r['model']:10} {r['processes']:>5} {r['threads']:>7} {how:>14} {r['step_s'] * 1e3:>8.1f} "
              f"{r['images_per_s']:>8.0f} {100 * r['comm_fraction']:>6.1f}% {100 * r['allreduce_fraction']:>10.1f}% "
              f"{r['images_per_s'] / base[r['model']]:>7.2f}x")
    print(f"\nscaling model: {args.cores} cores/machine, {args.machine_batch} images/machine/step, ring allreduce, "
          f"{args.latency_us:g} µs/message, no overlap")
    print(f"{'model':10} {'machines':>8} {'Gbit/s':>6} {'compute ms':>10} {'allreduce ms':>12} {'efficiency':>10} "
          f"{'speed-up':>8}")
    for r in model_rows:
        print(f"{r['model']:10} {r['machines']:>8} {r['gbit']:>6} {r['compute_s'] * 1e3:>10.2f} "
              f"{r['allreduce_s'] * 1e3:>12.2f} {100 * r['efficiency']:>9.0f}% {r['speedup']:>7.1f}x")
    print(f"\nstrong scaling: global batch {args.strong_batch} split over the machines; speed-up over one machine")
    ps = sorted({r["machines"] for r in strong_rows})
    print(f"{'model':10} {'Gbit/s':>6} " + " ".join(f"{p:>6}" for p in ps))
    for model in args.models:
        for gbit in (10, 25):
            sp = {r["machines"]: r["speedup"] for r in strong_rows if r["model"] == model and r["gbit"] == gbit}
            print(f"{model:10} {gbit:>6} " + " ".join(f"{sp[p]:>5.1f}x" for p in ps))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "scaling": model_rows, "strong_scaling": strong_rows},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
