"""GFLOP/s of every conv layer of the benchmark models, per ISA: forward,
backward-data and backward-weight, beside the machine's measured FMA peak
per ISA and our sgemm's share of it on large sizes (numpy's BLAS for
reference). Speed is measured here, never asserted in tests.

The FMA peak is measured (independent FMA chains, kernels/peak/<isa>.cc,
each thread's rate over its own CPU time, best of ~1 ms runs), never derived
from a clock frequency. With one thread the sgemm is timed in the thread's
CPU time too (best call), so time a shared machine gives to other processes
is not counted; with more, in wall time (then a busy machine lowers the %).

GFLOP/s are nominal: 2 * N * Cout * Ho * Wo * Cin * Kh * Kw per pass,
whatever the algorithm, so a Winograd layer can exceed the FMA peak.
--winograd picks how eligible 3x3 stride-1 layers run: auto (the library's
default), never (im2col + GEMM), always, or both (auto and never side by
side); --tile which Winograd variant: auto (the library's choice), 2x2,
4x4 (F(4x4) where the ISA has it) or both (2x2 and 4x4 side by side).
backward-data is timed as (backward with dx) - (backward without).

    python benchmarks/bench_kernels.py [--threads 1] [--batch 64] [--isa avx512 ...] [--winograd both] [--tile both]
    python benchmarks/bench_kernels.py --gemm-only        # the FMA peak and sgemm % of it, no conv layers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cpucnn as cc  # noqa: E402
from cpucnn import _core  # noqa: E402
from models import SPECS  # noqa: E402

K = _core.kernels


def conv_layers(name):
    """(label, cin, h, w, cout, k, pad) of each conv layer of a model."""
    (c, h, w), spec = SPECS[name]
    out = []
    for s in spec:
        if s[0] == "conv":
            out.append((f"{name}.conv{len(out) + 1}", c, h, w, s[1], s[2], s[3]))
            c, h, w = s[1], h + 2 * s[3] - s[2] + 1, w + 2 * s[3] - s[2] + 1
        elif s[0] == "pool":
            h, w = h // 2, w // 2
    return out


def timed(fn, seconds):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds and n >= 3:
            return el / n


GEMM_SIZES = [(1024, 1024, 1024), (512, 4096, 512)]  # (m, k, n)


def best_call(fn, seconds, cpu_clock):
    """Seconds of the fastest call of fn over about `seconds` (thread CPU time if cpu_clock)."""
    clock = time.thread_time if cpu_clock else time.perf_counter
    fn()
    best, n, end = float("inf"), 0, time.perf_counter() + seconds
    while n < 3 or time.perf_counter() < end:
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
        n += 1
    return best


def gemm_vs_peak(isas, threads, seconds, rng):
    """The measured FMA peak per ISA, and sgemm GFLOP/s (and % of that peak) on GEMM_SIZES."""
    cpu_clock = threads == 1
    peaks = {}
    for isa in isas:
        if isa in ("avx2", "avx512"):
            peaks[isa] = K.fma_peak_gflops(isa, threads=threads, seconds=max(0.2, seconds))
    print(f"FMA peak, measured ({threads} thread(s)): "
          + (", ".join(f"{isa} {v:.1f} GF/s" for isa, v in peaks.items()) or "no FMA ISA selected"))
    clock = "thread CPU time" if cpu_clock else "wall time"
    print(f"sgemm, {threads} thread(s), best call in {clock}: GF/s (% of that ISA's FMA peak); "
          "*numpy's BLAS: wall time, its own thread count")
    print(f"  {'m x k x n':16s} {'numpy*':>7s} " + " ".join(f"{isa:>14s}" for isa in isas))
    rows = []
    for m, k, n in GEMM_SIZES:
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        flops = 2.0 * m * n * k
        row = {"m": m, "k": k, "n": n, "threads": threads, "clock": clock,
               "numpy_gflops": flops / best_call(lambda: a @ b, seconds, False) / 1e9}
        line = f"  {f'{m}x{k}x{n}':16s} {row['numpy_gflops']:7.1f} "
        for isa in isas:
            cc.set_isa(isa)
            g = flops / best_call(lambda: K.gemm(a, b, threads=threads), seconds, cpu_clock) / 1e9
            row[f"{isa}_gflops"] = g
            cell = f"{g:.1f}"
            if isa in peaks:
                row[f"{isa}_pct_peak"] = 100.0 * g / peaks[isa]
                cell += f" ({row[f'{isa}_pct_peak']:.0f}%)"
            line += f" {cell:>14s}"
        rows.append(row)
        print(line, flush=True)
    return peaks, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--isa", nargs="+", default=cc.available_isas())
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--winograd", choices=["auto", "never", "always", "both"], default="auto")
    ap.add_argument("--tile", choices=["auto", "2x2", "4x4", "both"], default="auto")
    ap.add_argument("--gemm-only", action="store_true", help="only the FMA peak and the sgemm lines")
    ap.add_argument("--json", default="bench_out/kernels.json")
    args = ap.parse_args()
    tiles = ["2x2", "4x4"] if args.tile == "both" else [args.tile]
    algos = [(a, t) for a in (["auto", "never"] if args.winograd == "both" else [args.winograd])
             for t in (["auto"] if a == "never" else tiles)]
    cc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    default_isa = cc.cpu_info()["isa"]
    rows = []

    n = 1024
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    peak = {"numpy_blas_1024": flops / timed(lambda: a @ b, args.seconds) / 1e9}
    for isa in args.isa:
        cc.set_isa(isa)
        peak[f"cpucnn_gemm_{isa}_1024"] = flops / timed(lambda: K.gemm(a, b, threads=args.threads), args.seconds) / 1e9
    print(f"sgemm 1024^3 ({args.threads} thread(s)): " + ", ".join(f"{k} {v:.1f} GF/s" for k, v in peak.items()))
    fma_peak, gemm_rows = gemm_vs_peak(args.isa, args.threads, max(args.seconds, 0.5), rng)
    if args.gemm_only:
        cc.set_isa(default_isa)
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"peak": peak, "fma_peak_gflops": fma_peak, "gemm": gemm_rows}, f, indent=2)
        print(f"\nwrote {args.json}")
        return

    print(f"\n{'layer':18s} {'shape':>22s} {'isa':>7s} {'winograd':>11s} | {'fwd GF/s':>8s} {'bwd-data':>8s} "
          f"{'bwd-w':>8s}")
    for name in SPECS:
        for label, cin, h, w, cout, k, pad in conv_layers(name):
            x = rng.random((args.batch, cin, h, w), dtype=np.float32)
            wt = rng.random((cout, cin, k, k), dtype=np.float32) - 0.5
            bias = rng.random(cout, dtype=np.float32)
            ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            dy = rng.random((args.batch, cout, ho, wo), dtype=np.float32)
            fl = 2.0 * args.batch * cout * ho * wo * cin * k * k
            for isa, (algo, tile) in [(i, a) for i in args.isa for a in algos]:
                cc.set_isa(isa)
                K.set_conv2d_winograd(algo)
                K.set_conv2d_winograd_tile(tile)
                tf = timed(lambda: K.conv2d_forward(x, wt, bias, padding=(pad, pad)), args.seconds)
                tw = timed(lambda: K.conv2d_backward(x, wt, dy, padding=(pad, pad), need_dx=False), args.seconds)
                tb = timed(lambda: K.conv2d_backward(x, wt, dy, padding=(pad, pad), need_dx=True), args.seconds)
                td = max(tb - tw, 1e-9)
                r = {"layer": label, "cin": cin, "h": h, "w": w, "cout": cout, "k": k, "pad": pad, "isa": isa,
                     "winograd": algo, "tile": tile,
                     "batch": args.batch, "threads": args.threads, "fwd_gflops": fl / tf / 1e9,
                     "bwd_data_gflops": fl / td / 1e9, "bwd_weight_gflops": fl / tw / 1e9}
                rows.append(r)
                shape = f"{cin}x{h}x{w}->{cout}@{k}x{k}"
                name = algo if tile == "auto" else f"{algo}/{tile}"
                print(f"{label:18s} {shape:>22s} {isa:>7s} {name:>11s} | {r['fwd_gflops']:8.1f} "
                      f"{r['bwd_data_gflops']:8.1f} "
                      f"{r['bwd_weight_gflops']:8.1f}", flush=True)
    cc.set_isa(default_isa)
    K.set_conv2d_winograd("auto")
    K.set_conv2d_winograd_tile("auto")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"peak": peak, "fma_peak_gflops": fma_peak, "gemm": gemm_rows, "layers": rows}, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
