"""Training from uint8 through cpucnn.data (crop + flip in C++ worker threads) vs training
on pre-made float32 arrays: images/s and peak RSS.

convnet_s (benchmarks/models.py) on Fashion-MNIST (synthetic uint8 images of the same shape
when the dataset is not installed). Two routes:

- ``float32``: the images converted once to a normalised float32 array, then ``fit(x, y)``
  (batches gathered from it in numpy; no augmentation).
- ``pipeline``: ``Dataset.from_arrays(x_uint8, y).shuffle().map_float(1/255, mean, std)
  .random_crop(28, padding=2).flip_horizontal().batch(B).prefetch(2, workers)``, ``fit(ds)``.
- ``pipeline_sync``: the same without ``prefetch`` (each batch made in C++ when fit asks for it).

Throughput: one fit epoch over ``--samples`` images per route, routes alternating for
``--rounds`` rounds (the median is reported, so drift on a shared machine hits both). Peak
RSS: each route in a fresh subprocess, on the full set, training ``--rss-steps`` batches
(VmHWM, reset after the uint8 images are loaded, so both routes start from the same point;
"growth" is the peak minus the RSS at that point). Prints a table and writes JSON.

    python benchmarks/bench_data.py                    # defaults: 6000 samples, 3 rounds
    python benchmarks/bench_data.py --samples 2000 --rounds 1 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cpucnn as cc  # noqa: E402
from models import cpucnn_model  # noqa: E402

MEAN, STD = 0.2860, 0.3530   # Fashion-MNIST's training-set pixel mean/std (of x / 255)


def load_u8(samples: int | None):
    """(x uint8 (N, 1, 28, 28), y int64, source name)."""
    try:
        ds = cc.data.Dataset.fashion_mnist("train")
        x, y, src = np.asarray(ds._x), ds._y, "fashion-mnist"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(60000, 1, 28, 28), dtype=np.uint8)
        y, src = rng.integers(0, 10, size=60000).astype(np.int64), "synthetic"
    if samples:
        x, y = x[:samples], y[:samples]
    return np.ascontiguousarray(x), y, src


def make_model(seed: int = 0) -> cc.Sequential:
    m = cpucnn_model("convnet_s", seed=seed)
    m.compile(optimizer=cc.optimizers.SGD(lr=0.01, momentum=0.9), loss="cross_entropy", metrics=["accuracy"])
    return m


def float_arrays(x_u8: np.ndarray) -> np.ndarray:
    x = x_u8.astype(np.float32)
    x *= np.float32(1 / 255)
    x -= np.float32(MEAN)
    x /= np.float32(STD)
    return x


def pipeline(x_u8, y, batch: int, workers: int, seed: int = 0):
    ds = (cc.data.Dataset.from_arrays(x_u8, y).shuffle(seed=seed)
          .map_float(scale=1 / 255, mean=MEAN, std=STD)
          .random_crop(28, padding=2).flip_horizontal().batch(batch))
    return ds.prefetch(2, workers=workers) if workers else ds


class StopAfter(cc.callbacks.Callback):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def on_batch_end(self, batch, logs=None):
        if batch + 1 >= self.steps:
            self.model.stop_training = True


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rss_child(route: str, batch: int, workers: int, steps: int) -> None:
    x, y, _ = load_u8(None)
    try:   # forget the peak of loading (decompressing) the files: both routes start from uint8 in memory
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = _status_kb("VmRSS")
    m = make_model()
    cb = [StopAfter(steps)]
    if route == "float32":
        xf = float_arrays(x)
        m.fit(xf, y, epochs=1, batch_size=batch, verbose=0, callbacks=cb, seed=0)
    else:
        m.fit(pipeline(x, y, batch, workers), epochs=1, verbose=0, callbacks=cb)
    peak = _status_kb("VmHWM")
    print(json.dumps({"peak_rss_mb": peak / 1024, "growth_mb": (peak - base) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="compute threads (0: all cores)")
    ap.add_argument("--workers", type=int, default=1, help="pipeline worker threads")
    ap.add_argument("--rss-steps", type=int, default=50)
    ap.add_argument("--json", default="bench_data.json")
    ap.add_argument("--_rss", choices=["float32", "pipeline"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.threads:
        cc.set_num_threads(a.threads)
    if a._rss:
        rss_child(a._rss, a.batch, a.workers, a.rss_steps)
        return

    x_u8, y, src = load_u8(a.samples)
    xf = float_arrays(x_u8)
    routes = ("float32", "pipeline", "pipeline_sync")
    rates = {k: [] for k in routes}
    cpu = {k: [] for k in routes}   # process CPU seconds per 1000 images (less sensitive to a loaded machine)
    make_model().fit(xf[:512], y[:512], epochs=1, batch_size=a.batch, verbose=0)   # warm-up (plans, pages)
    for r in range(a.rounds):
        for route in (routes if r % 2 == 0 else routes[::-1]):
            m = make_model()
            c0, t0 = time.process_time(), time.perf_counter()
            if route == "float32":
                m.fit(xf, y, epochs=1, batch_size=a.batch, verbose=0, seed=r)
            else:
                m.fit(pipeline(x_u8, y, a.batch, a.workers if route == "pipeline" else 0, seed=r), epochs=1,
                      verbose=0)
            rates[route].append(len(x_u8) / (time.perf_counter() - t0))
            cpu[route].append((time.process_time() - c0) * 1000 / len(x_u8))
    rss = {}
    for route in ("float32", "pipeline"):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--_rss", route, "--batch", str(a.batch),
                              "--workers", str(a.workers), "--rss-steps", str(a.rss_steps),
                              "--threads", str(a.threads)], check=True, capture_output=True, text=True)
        rss[route] = json.loads(out.stdout.strip().splitlines()[-1])
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "data": src, "samples": len(x_u8), "batch": a.batch, "threads": cc.get_num_threads(), "workers": a.workers,
        "rounds": a.rounds, "images_per_s": rates, "median_images_per_s": med,
        "pipeline_vs_float32": med["pipeline"] / med["float32"], "rss": rss,
        "cpu_s_per_1000_images": cpu, "median_cpu_s_per_1000_images": med_cpu,
        "pipeline_sync_vs_float32": med["pipeline_sync"] / med["float32"],
        "load_average": os.getloadavg(),
        "cpu": cc.cpu_info()["brand"], "isa": cc.cpu_info()["isa"], "machine": platform.machine(),
    }
    print(f"convnet_s on {src} ({len(x_u8)} images/epoch, batch {a.batch}, {cc.get_num_threads()} threads, "
          f"{a.workers} pipeline worker(s))")
    print(f"{'route':<14} {'train img/s (median)':>21} {'all rounds':>26} {'CPU s/1000 img':>15} "
          f"{'peak RSS MB':>12} {'growth MB':>10}")
    for route in routes:
        rr = ", ".join(f"{v:,.0f}" for v in rates[route])
        mem = rss.get(route)
        memtxt = f"{mem['peak_rss_mb']:>12,.0f} {mem['growth_mb']:>10,.0f}" if mem else f"{'':>12} {'':>10}"
        print(f"{route:<14} {med[route]:>21,.0f} {rr:>26} {med_cpu[route]:>15.2f} {memtxt}")
    print(f"pipeline / float32 images/s: {result['pipeline_vs_float32']:.3f} (pipeline without prefetch: "
          f"{result['pipeline_sync_vs_float32']:.3f}); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
