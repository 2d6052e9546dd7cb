"""cpucnn vs PyTorch, side by side in one process, on the benchmark models.

For each model, thread count and batch size: training images/s (forward +
cross-entropy + backward + SGD-momentum step), inference images/s at batch
256, batch-1 latency (median, p99), achieved GFLOP/s, and peak RSS of a
training run (measured in a fresh subprocess per framework). The two
frameworks alternate in rounds so machine drift hits both. Prints a table
with the ratios and writes JSON.

    python benchmarks/bench_models.py                      # everything
    python benchmarks/bench_models.py --models lenet5 --threads 2 --quick
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
from models import SPECS, cpucnn_model, infer_flops_per_image, torch_model, train_flops_per_image  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the cpucnn half still runs
    torch = None


def _rate(fn, images_per_call: int, seconds: float, min_calls: int = 3) -> float:
    """Images/s of fn over about `seconds`."""
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        el = time.perf_counter() - t0
        if el >= seconds and calls >= min_calls:
            return calls * images_per_call / el


def _latencies(fn, seconds: float, max_calls: int = 20000):
    out, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end and len(out) < max_calls:
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    out.sort()
    return out[len(out) // 2], out[min(len(out) - 1, int(len(out) * 0.99))]


class CpucnnRunner:
    def __init__(self, name, batch):
        self.model = cpucnn_model(name, seed=0)
        self.model.compile(cc.optimizers.SGD(lr=0.01, momentum=0.9), loss="cross_entropy")
        shape = SPECS[name][0]
        rng = np.random.default_rng(0)
        self.x = rng.random((batch, *shape), dtype=np.float32)
        self.y = rng.integers(0, 10, batch).astype(np.int64)
        self.xi = rng.random((256, *shape), dtype=np.float32)
        self.x1 = rng.random((1, *shape), dtype=np.float32)
        m = self.model._m
        self.train = lambda: m.train_step(self.x, self.y)
        self.infer = lambda: m.predict(self.xi, 256)
        self.one = lambda: m.predict(self.x1, 1)


class TorchRunner:
    def __init__(self, name, batch):
        torch.manual_seed(0)
        self.model = torch_model(name)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        shape = SPECS[name][0]
        self.x = torch.rand(batch, *shape)
        self.y = torch.randint(0, 10, (batch,))
        self.xi = torch.rand(256, *shape)
        self.x1 = torch.rand(1, *shape)

    def train(self):
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()

    def infer(self):
        with torch.inference_mode():
            self.model.eval()
            self.model(self.xi)

    def one(self):
        with torch.inference_mode():
            self.model(self.x1)


def set_threads(n):
    cc.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def bench(name, threads, batch, seconds, rounds, do_infer):
    set_threads(threads)
    runners = {"cpucnn": CpucnnRunner(name, batch)}
    if torch is not None:
        runners["torch"] = TorchRunner(name, batch)
    for r in runners.values():  # warm up (first-use allocations, oneDNN primitive caches)
        for _ in range(3):
            r.train()
        if do_infer:
            r.infer()
            r.one()
    res = {k: {"train": [], "infer": [], "lat": []} for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            res[k]["train"].append(_rate(r.train, batch, seconds))
            if do_infer:
                res[k]["infer"].append(_rate(r.infer, 256, seconds))
                res[k]["lat"].append(_latencies(r.one, seconds / 2))
    cm = runners["cpucnn"].model
    tf, inf = train_flops_per_image(cm), infer_flops_per_image(cm)
    out = {}
    for k, v in res.items():
        train = max(v["train"])
        d = {"train_img_s": train, "train_gflops": train * tf / 1e9}
        if do_infer:
            infer = max(v["infer"])
            d.update(infer_img_s=infer, infer_gflops=infer * inf / 1e9,
                     latency_p50_us=min(p50 for p50, _ in v["lat"]) * 1e6,
                     latency_p99_us=min(p99 for _, p99 in v["lat"]) * 1e6)
        out[k] = d
    return out


_RSS_CHILD = r"""
import sys, os
sys.path.insert(0, {bench_dir!r})
import numpy as np

def status_kib(key):
    # VmRSS (now) or VmHWM (peak) of this process, in KiB; unlike ru_maxrss
    # the peak is not inherited from the parent across fork + exec.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0

fw, name, batch, threads, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if fw == "cpucnn":
    import cpucnn as cc
    from models import cpucnn_model, SPECS
    cc.set_num_threads(threads)
    m = cpucnn_model(name); m.compile(cc.optimizers.SGD(lr=0.01, momentum=0.9))
    x = np.random.rand(batch, *SPECS[name][0]).astype(np.float32); y = np.random.randint(0, 10, batch)
    base = status_kib("VmRSS")
    for _ in range(steps): m._m.train_step(x, y)
else:
    import torch, torch.nn.functional as F
    from models import torch_model, SPECS
    torch.set_num_threads(threads)
    m = torch_model(name); opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *SPECS[name][0]); y = torch.randint(0, 10, (batch,))
    base = status_kib("VmRSS")
    for _ in range(steps):
        opt.zero_grad(); F.cross_entropy(m(x), y).backward(); opt.step()
peak = status_kib("VmHWM")
print(peak, peak - base)
"""


def peak_rss(fw, name, batch, threads, steps=5):
    """(peak RSS of the process, its growth over the RSS before training) in MiB, from a fresh process."""
    code = _RSS_CHILD.format(bench_dir=os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-c", code, fw, name, str(batch), str(threads), str(steps)],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return None
    peak, growth = (int(v) / 1024 for v in p.stdout.split())
    return {"peak_mib": peak, "training_growth_mib": growth}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(SPECS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best is kept")
    ap.add_argument("--quick", action="store_true", help="shorter measurements")
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--json", default="bench_out/models.json")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.4, 2

    info = cc.cpu_info()
    meta = {"cpucnn": cc.__version__, "isa": info["isa"], "cpu": info["brand"], "machine": platform.machine(),
            "torch": torch.__version__ if torch is not None else None, "python": platform.python_version()}
    print(f"cpucnn {meta['cpucnn']} isa={meta['isa']}  torch {meta['torch']}  cpu: {meta['cpu']}")
    results = []
    for name in args.models:
        for threads in args.threads:
            for batch in args.batches:
                r = bench(name, threads, batch, args.seconds, args.rounds, do_infer=(batch == args.batches[0]))
                results.append({"model": name, "threads": threads, "batch": batch, **r})
                c, t = r["cpucnn"], r.get("torch")
                line = (f"{name:10s} t={threads} b={batch:3d}  train cpucnn {c['train_img_s']:9,.0f} img/s "
                        f"({c['train_gflops']:5.1f} GF/s)")
                if t:
                    line += f"  torch {t['train_img_s']:9,.0f}  x{c['train_img_s'] / t['train_img_s']:.2f}"
                print(line, flush=True)
    rss = []
    if not args.no_rss:
        for name in args.models:
            for fw in ["cpucnn"] + (["torch"] if torch is not None else []):
                r = peak_rss(fw, name, 256, max(args.threads))
                if r:
                    rss.append({"model": name, "framework": fw, "batch": 256, **r})

    # The table.
    print()
    hdr = (f"{'model':10s} {'thr':>3s} {'batch':>5s} | {'train img/s cpucnn':>18s} {'torch':>9s} {'ratio':>6s} | "
           f"{'infer@256 cpucnn':>16s} {'torch':>9s} {'ratio':>6s} | {'b=1 p50 us':>10s} {'torch':>7s} "
           f"{'ratio':>6s} | {'p99 us':>7s} | {'GF/s':>6s}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        c, t = r["cpucnn"], r.get("torch", {})
        def ratio(a, b, inv=False):
            if not b:
                return "-"
            return f"{(b / a if inv else a / b):.2f}"
        s = f"{r['model']:10s} {r['threads']:3d} {r['batch']:5d} | {c['train_img_s']:18,.0f} "
        s += f"{t.get('train_img_s', 0):9,.0f} {ratio(c['train_img_s'], t.get('train_img_s')):>6s} | "
        if "infer_img_s" in c:
            s += (f"{c['infer_img_s']:16,.0f} {t.get('infer_img_s', 0):9,.0f} "
                  f"{ratio(c['infer_img_s'], t.get('infer_img_s')):>6s} | {c['latency_p50_us']:10.1f} "
                  f"{t.get('latency_p50_us', 0):7.1f} {ratio(c['latency_p50_us'], t.get('latency_p50_us'), True):>6s} | "
                  f"{c['latency_p99_us']:7.1f} | ")
        else:
            s += f"{'':16s} {'':9s} {'':6s} | {'':10s} {'':7s} {'':6s} | {'':7s} | "
        s += f"{c['train_gflops']:6.1f}"
        print(s)
    if rss:
        print()
        for r in rss:
            print(f"peak RSS training {r['model']} b=256: {r['framework']:7s} {r['peak_mib']:8.1f} MiB "
                  f"(+{r['training_growth_mib']:.1f} MiB during training)")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": results, "peak_rss": rss}, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
