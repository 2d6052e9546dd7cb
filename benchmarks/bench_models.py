"""cpucnn vs PyTorch and the inference engines, side by side in one process, on the benchmark models.

For each model, thread count and batch size: training images/s (forward +
cross-entropy + backward + SGD-momentum step), inference images/s at batch
256, batch-1 latency (median, p99), achieved GFLOP/s, and peak RSS of a
training run (measured in a fresh subprocess per framework). The frameworks
alternate in rounds so machine drift hits all of them; the best round is
kept. Every framework runs at the same thread count (cc.set_num_threads,
torch.set_num_threads, onnxruntime intra_op_num_threads=threads with
inter_op 1, OpenVINO INFERENCE_NUM_THREADS). Prints one table per measure
(each framework's figure and cpucnn's ratio to the best of the others) and
writes JSON.

Frameworks (--frameworks picks among them; any that is not installed, or
fails to set up, is skipped with a printed note):

    cpucnn         always
    torch          PyTorch eager, NCHW                           (train, infer)
    torch_cl       PyTorch eager, channels_last                  (train, infer)
    torch_compile  torch.compile of the eager model (needs a C++ compiler; train, infer;
                   compiling takes ~0.5-2 min a model and batch on a small machine)
    ort            onnxruntime running cpucnn's own ONNX export  (infer)
    openvino       OpenVINO (CPU, f32) on the same ONNX export   (infer)

The ONNX runtimes are checked first: their outputs must match cpucnn's
predict within 1e-4 (max abs) at batch 256 and batch 1, else they are skipped.

    python benchmarks/bench_models.py                      # all models, batches 64 and 256, 2 threads
    python benchmarks/bench_models.py --models lenet5 --quick
    python benchmarks/bench_models.py --frameworks cpucnn torch ort --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

# numpy's OpenBLAS threads spin after each BLAS call (calibration, quantize_static, reference
# checks) and took 2-5 % of the samples in perf profiles of the timed loops on 2 cores: numpy is
# not what is measured, so it gets one thread (before numpy is imported; an explicit setting wins).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cpucnn as cc  # noqa: E402
from models import SPECS, cpucnn_model, infer_flops_per_image, torch_model, train_flops_per_image  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the cpucnn half still runs
    torch = None

FRAMEWORKS = ["cpucnn", "torch", "torch_cl", "torch_compile", "ort", "openvino"]
INFER_BATCH = 256
CHECK_TOL = 1e-4


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


class Inputs:
    """The same random inputs for every framework."""

    def __init__(self, name, batch):
        shape = SPECS[name][0]
        rng = np.random.default_rng(0)
        self.x = rng.random((batch, *shape), dtype=np.float32)
        self.y = rng.integers(0, 10, batch).astype(np.int64)
        self.xi = rng.random((INFER_BATCH, *shape), dtype=np.float32)
        self.x1 = rng.random((1, *shape), dtype=np.float32)


class CpucnnRunner:
    def __init__(self, name, data, threads):
        self.model = cpucnn_model(name, seed=0)
        self.model.compile(cc.optimizers.SGD(lr=0.01, momentum=0.9), loss="cross_entropy")
        m, d = self.model._m, data
        self.train = lambda: m.train_step(d.x, d.y)
        self.infer = lambda: m.predict(d.xi, INFER_BATCH)
        self.one = lambda: m.predict(d.x1, 1)


class TorchRunner:
    """PyTorch eager (NCHW or channels_last) or torch.compile of it."""

    def __init__(self, name, data, threads, channels_last=False, compiled=False):
        torch.manual_seed(0)
        self.module = torch_model(name)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.model = torch.compile(self.module, dynamic=False) if compiled else self.module
        self.opt = torch.optim.SGD(self.module.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.from_numpy(data.x).contiguous(memory_format=fmt)
        self.y = torch.from_numpy(data.y)
        self.xi = torch.from_numpy(data.xi).contiguous(memory_format=fmt)
        self.x1 = torch.from_numpy(data.x1).contiguous(memory_format=fmt)

    def train(self):
        self.module.train()
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()

    def infer(self):
        with torch.inference_mode():
            self.module.eval()
            self.model(self.xi)

    def one(self):
        with torch.inference_mode():
            self.module.eval()
            self.model(self.x1)


def _check(fw, run, ref_model, data):
    """Raises when the runtime's outputs differ from cpucnn's predict by more than CHECK_TOL."""
    worst = 0.0
    for x in (data.xi, data.x1):
        want = ref_model.predict(x, batch_size=len(x))
        got = run(x)
        if got.shape != want.shape:
            raise RuntimeError(f"{fw} output shape {got.shape}, cpucnn's {want.shape}")
        diff = float(np.max(np.abs(got - want)))
        if not diff <= CHECK_TOL:
            raise RuntimeError(f"{fw} output differs from cpucnn's by {diff:.3g} (max abs) > {CHECK_TOL}")
        worst = max(worst, diff)
    return worst


class OrtRunner:
    """onnxruntime (CPU provider) on cpucnn's ONNX export."""

    train = None

    def __init__(self, onnx_path, ref_model, data, threads):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        run = lambda x: self.sess.run(None, {"input": x})[0]  # noqa: E731
        self.max_diff = _check("onnxruntime", run, ref_model, data)
        self.infer = lambda: run(data.xi)
        self.one = lambda: run(data.x1)


class OpenvinoRunner:
    """OpenVINO (CPU plugin, f32) on cpucnn's ONNX export, one model compiled per batch size."""

    train = None

    def __init__(self, onnx_path, ref_model, data, threads):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        self.requests = {}
        for x in (data.xi, data.x1):
            model = core.read_model(onnx_path)
            model.reshape({model.inputs[0].get_any_name(): list(x.shape)})
            self.requests[len(x)] = core.compile_model(model, "CPU", config).create_infer_request()

        def run(x):
            r = self.requests[len(x)]
            r.infer({0: x})
            return r.get_output_tensor(0).data.copy()

        self.max_diff = _check("OpenVINO", run, ref_model, data)
        # Timed without the copy out, like the other runtimes' own buffers.
        self.infer = lambda: self.requests[INFER_BATCH].infer({0: data.xi})
        self.one = lambda: self.requests[1].infer({0: data.x1})


def available_frameworks(wanted):
    """(frameworks to run, notes on those skipped)."""
    out, notes = [], []
    for fw in wanted:
        if fw == "cpucnn":
            out.append(fw)
            continue
        mod = {"ort": "onnxruntime", "openvino": "openvino"}.get(fw, "torch")
        if fw in ("ort", "openvino"):
            try:
                __import__("onnx")
            except ImportError:
                notes.append(f"{fw}: skipped, needs the 'onnx' package for cpucnn's ONNX export (pip install onnx)")
                continue
        if mod == "torch":
            ok = torch is not None
        else:
            try:
                __import__(mod)
                ok = True
            except ImportError:
                ok = False
        if ok:
            out.append(fw)
        else:
            notes.append(f"{fw}: skipped, '{mod}' is not installed (pip install {mod})")
    return out, notes


def make_runners(name, batch, threads, frameworks, do_infer, onnx_dir, notes):
    """The runners, each already warmed up; a framework that fails to set up is dropped with a note."""
    data = Inputs(name, batch)
    onnx_path, ref_model = None, None
    if do_infer and any(fw in frameworks for fw in ("ort", "openvino")):
        ref_model = cpucnn_model(name, seed=0)
        onnx_path = os.path.join(onnx_dir, f"{name}.onnx")
        if not os.path.exists(onnx_path):
            ref_model.export_onnx(onnx_path)
    if torch is not None and "torch_compile" in frameworks:
        torch._dynamo.reset()  # fresh caches per configuration: no recompile limit across models
    makers = {
        "cpucnn": lambda: CpucnnRunner(name, data, threads),
        "torch": lambda: TorchRunner(name, data, threads),
        "torch_cl": lambda: TorchRunner(name, data, threads, channels_last=True),
        "torch_compile": lambda: TorchRunner(name, data, threads, compiled=True),
        "ort": lambda: OrtRunner(onnx_path, ref_model, data, threads),
        "openvino": lambda: OpenvinoRunner(onnx_path, ref_model, data, threads),
    }
    runners = {}
    for fw in frameworks:
        if fw in ("ort", "openvino") and not do_infer:
            continue
        try:
            t0 = time.perf_counter()
            r = makers[fw]()
            if r.train is not None:  # warm up (first-use allocations, primitive caches, compilation)
                for _ in range(3):
                    r.train()
            if do_infer:
                for _ in range(2):
                    r.infer()
                    r.one()
            setup = time.perf_counter() - t0
            if hasattr(r, "max_diff"):
                print(f"  ({fw} matches cpucnn's predict: max abs diff {r.max_diff:.2g} <= {CHECK_TOL})", flush=True)
            if setup > 5:
                print(f"  ({fw} set up in {setup:.0f} s)", flush=True)
            runners[fw] = r
        except Exception as e:  # noqa: BLE001 - any failure (no compiler, export mismatch) skips the framework
            if fw == "cpucnn":
                raise
            msg = f"{fw}: skipped for {name} b={batch}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
            print("note: " + msg, flush=True)
            notes.append(msg)
    return runners


def set_threads(n):
    cc.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def bench(name, threads, batch, seconds, rounds, do_infer, frameworks, onnx_dir, notes):
    set_threads(threads)
    runners = make_runners(name, batch, threads, frameworks, do_infer, onnx_dir, notes)
    res = {k: {"train": [], "infer": [], "lat": []} for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            if r.train is not None:
                res[k]["train"].append(_rate(r.train, batch, seconds))
            if do_infer:
                res[k]["infer"].append(_rate(r.infer, INFER_BATCH, seconds))
                res[k]["lat"].append(_latencies(r.one, seconds / 2))
    cm = runners["cpucnn"].model
    tf, inf = train_flops_per_image(cm), infer_flops_per_image(cm)
    out = {}
    for k, v in res.items():
        d = {}
        if v["train"]:
            train = max(v["train"])
            d.update(train_img_s=train, train_gflops=train * tf / 1e9)
        if do_infer:
            infer = max(v["infer"])
            d.update(infer_img_s=infer, infer_gflops=infer * inf / 1e9,
                     latency_p50_us=min(p50 for p50, _ in v["lat"]) * 1e6,
                     latency_p99_us=min(p99 for _, p99 in v["lat"]) * 1e6)
        if hasattr(runners[k], "max_diff"):
            d["check_max_abs_diff"] = runners[k].max_diff
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


def _table(title, results, key, frameworks, fmt, higher_better=True, width=9, batch=None):
    """One measure across frameworks, plus cpucnn's ratio to the best of the others (> 1: cpucnn ahead)."""
    rows = [r for r in results if key in r["cpucnn"]]
    cols = [fw for fw in frameworks if any(key in r.get(fw, {}) for r in rows)]
    if not rows:
        return
    print(f"\n{title}")
    hdr = f"{'model':10s} {'thr':>3s} {'batch':>5s} | " + " ".join(f"{fw:>{width}s}" for fw in cols)
    hdr += f" | {'vs best':>7s} {'best':>13s}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        s = f"{r['model']:10s} {r['threads']:3d} {batch or r['batch']:5d} | "
        s += " ".join(f"{r[fw][key]:{width}{fmt}}" if key in r.get(fw, {}) else f"{'-':>{width}s}" for fw in cols)
        others = {fw: r[fw][key] for fw in cols if fw != "cpucnn" and key in r.get(fw, {})}
        if others:
            best = (max if higher_better else min)(others, key=others.get)
            c, b = r["cpucnn"][key], others[best]
            s += f" | {(c / b if higher_better else b / c):7.2f} {best:>13s}"
        else:
            s += f" | {'-':>7s} {'':>13s}"
        print(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(SPECS), choices=list(SPECS))
    ap.add_argument("--threads", nargs="+", type=int, default=[2])
    ap.add_argument("--batches", nargs="+", type=int, default=[64, 256],
                    help="training batch sizes; inference (batch 256) and batch-1 latency run with the first")
    ap.add_argument("--frameworks", nargs="+", default=FRAMEWORKS, choices=FRAMEWORKS,
                    help="cpucnn always runs; the others run when installed")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best is kept")
    ap.add_argument("--quick", action="store_true", help="shorter measurements (0.4 s, 2 rounds)")
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--json", default="bench_out/models.json")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.4, 2
    wanted = ["cpucnn"] + [fw for fw in args.frameworks if fw != "cpucnn"]
    frameworks, notes = available_frameworks(wanted)
    for n in notes:
        print("note: " + n)

    info = cc.cpu_info()
    meta = {"cpucnn": cc.__version__, "isa": info["isa"], "cpu": info["brand"], "machine": platform.machine(),
            "torch": torch.__version__ if torch is not None else None, "python": platform.python_version()}
    for fw, mod in (("ort", "onnxruntime"), ("openvino", "openvino")):
        if fw in frameworks:
            meta[mod] = __import__(mod).__version__
    print(f"cpucnn {meta['cpucnn']} isa={meta['isa']}  torch {meta['torch']}  onnxruntime "
          f"{meta.get('onnxruntime')}  openvino {meta.get('openvino')}  cpu: {meta['cpu']}")
    print(f"frameworks: {', '.join(frameworks)}; best of {args.rounds} alternating rounds of {args.seconds} s")
    results = []
    with tempfile.TemporaryDirectory(prefix="cpucnn_bench_") as onnx_dir:
        for name in args.models:
            for threads in args.threads:
                for batch in args.batches:
                    r = bench(name, threads, batch, args.seconds, args.rounds, batch == args.batches[0],
                              frameworks, onnx_dir, notes)
                    results.append({"model": name, "threads": threads, "batch": batch, **r})
                    line = f"{name:10s} t={threads} b={batch:3d}  train img/s " + "  ".join(
                        f"{fw} {v['train_img_s']:,.0f}" for fw, v in r.items() if "train_img_s" in v)
                    if "infer_img_s" in r["cpucnn"]:
                        line += f"  | infer@{INFER_BATCH} " + "  ".join(
                            f"{fw} {v['infer_img_s']:,.0f}" for fw, v in r.items() if "infer_img_s" in v)
                    print(line, flush=True)
    rss = []
    if not args.no_rss:
        for name in args.models:
            for fw in ["cpucnn"] + (["torch"] if "torch" in frameworks else []):
                r = peak_rss(fw, name, 256, max(args.threads))
                if r:
                    rss.append({"model": name, "framework": fw, "batch": 256, **r})

    _table("training images/s (vs best: cpucnn / the best other framework)", results, "train_img_s",
           frameworks, ",.0f")
    _table(f"inference images/s at batch {INFER_BATCH} (vs best: cpucnn / the best other)", results,
           "infer_img_s", frameworks, ",.0f", batch=INFER_BATCH)
    _table("batch-1 latency p50, us (vs best: the best other's / cpucnn's; > 1: cpucnn faster)", results,
           "latency_p50_us", frameworks, ".1f", higher_better=False, batch=1)
    _table("batch-1 latency p99, us", results, "latency_p99_us", frameworks, ".1f", higher_better=False, batch=1)
    print("\ncpucnn GFLOP/s: " + ", ".join(
        f"{r['model']} t={r['threads']} b={r['batch']} train {r['cpucnn']['train_gflops']:.1f}"
        + (f" infer {r['cpucnn']['infer_gflops']:.1f}" if "infer_gflops" in r["cpucnn"] else "") for r in results))
    if rss:
        print()
        for r in rss:
            print(f"peak RSS training {r['model']} b=256: {r['framework']:7s} {r['peak_mib']:8.1f} MiB "
                  f"(+{r['training_growth_mib']:.1f} MiB during training)")
    if notes:
        print("\nskipped: " + "; ".join(notes))
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "frameworks": frameworks, "notes": notes, "results": results, "peak_rss": rss},
                  f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
