"""int8 inference: cpucnn's quantized models vs cpucnn float32 vs onnxruntime's statically quantized
model of the same network, side by side in one process, on the benchmark models.

For each model: inference images/s at batch 256, batch-1 latency (median), the model files' sizes,
and the test accuracy of float32 and int8 when --accuracy trains the model first (Fashion-MNIST for
the 1-channel models; skipped where the data is missing). The runs alternate in rounds so machine
drift hits every contender; the best round is kept. Every contender runs at the same thread count
(cc.set_num_threads; onnxruntime intra_op_num_threads=threads, inter_op 1, its idle threads not
spinning unless --ort-spin). Batch-1 latency is the median of many runs, so on a loaded machine
(thread wake-ups delayed) it shows the load: take final figures on a quiet one.

Contenders:

    cc_f32    cpucnn float32
    cc_int8   cpucnn.quantize(model, calibration) (minmax, 7-bit activations, per-channel int8 weights)
    ort_f32   onnxruntime on cpucnn's float32 ONNX export
    ort_int8  onnxruntime.quantization.quantize_static of that export: QDQ, per-channel int8 weights,
              uint8 activations, MinMax calibration on the same calibration images
    cc_int8_direct  (--int8-direct) the same int8 model with its Winograd path off
              (cc._core.int8.set_conv2d_winograd("never"): the direct kernels; same outputs)

Targets (issue 16): cc_int8 >= 2x cc_f32 at batch 256, >= 1.5x at batch 1, faster than ort_int8.

    python benchmarks/bench_quant.py                       # all models, 2 threads
    python benchmarks/bench_quant.py --models lenet5 --quick --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from models import SPECS, cpucnn_model  # noqa: E402

BATCH = 256


def _ort_sessions(model, calib, tmp, threads, spin):
    """onnxruntime float32 and statically quantized sessions of the model (None, reason if unavailable)."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                              quantize_static)
    except ImportError as e:
        return None, None, f"onnxruntime not installed ({e})"
    f32 = os.path.join(tmp, "f32.onnx")
    i8 = os.path.join(tmp, "int8.onnx")
    model.export_onnx(f32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calib[i:i + 64]} for i in range(0, len(calib), 64)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(f32, i8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spin:  # idle pool threads that spin would steal the cores from whoever runs next
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    mk = lambda p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])  # noqa: E731
    return (mk(f32), f32), (mk(i8), i8), None


def _time(fn, seconds, min_runs=3):
    """Median seconds per call of fn, over >= min_runs calls or `seconds`."""
    fn()
    ts = []
    t_end = time.perf_counter() + seconds
    while len(ts) < min_runs or time.perf_counter() < t_end:
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _train(model, name, quick):
    """A short training run on Fashion-MNIST (1-channel models); returns (x_test, y_test, x_calib) or None."""
    if model.input_shape[0] != 1:
        return None
    try:
        (x, y), (xt, yt) = cc.datasets.load_fashion_mnist()
    except FileNotFoundError:
        return None
    model.compile(cc.optimizers.Adam(lr=1e-3), loss="cross_entropy", metrics=["accuracy"])
    n = 6000 if quick else 60000
    model.fit(x[:n], y[:n], epochs=1, batch_size=64, seed=0, verbose=0)
    return xt, yt, x[-1000:]


def _direct(q):
    """q.predict with the int8 Winograd path off (the direct kernels), the mode restored after."""
    q8 = cc._core.int8

    def run(b):
        mode = q8.conv2d_winograd()
        q8.set_conv2d_winograd("never")
        try:
            return q.predict(b, batch_size=BATCH)
        finally:
            q8.set_conv2d_winograd(mode)
    return run


def bench_model(name, threads, seconds, rounds, accuracy, quick, spin=False, direct=False):
    cc.set_num_threads(threads)
    rng = np.random.default_rng(0)
    model = cpucnn_model(name, seed=0)
    shape = model.input_shape
    row = {"model": name, "threads": threads}
    data = _train(model, name, quick) if accuracy else None
    calib = data[2] if data else rng.random((1000,) + shape, dtype=np.float32)
    t = time.perf_counter()
    q = cc.quantize(model, calib)
    row["quantize_s"] = time.perf_counter() - t
    if data:
        xt, yt, _ = data
        model.compile(loss="cross_entropy", metrics=["accuracy"]) if model.optimizer is None else None
        row["acc_f32"] = model.evaluate(xt, yt)["accuracy"]
        row["acc_int8"] = q.evaluate(xt, yt)["accuracy"]
    x = rng.random((BATCH,) + shape, dtype=np.float32)
    x1 = x[:1]
    with tempfile.TemporaryDirectory() as tmp:
        model.save(os.path.join(tmp, "f.cnn"), include_optimizer=False)
        q.save(os.path.join(tmp, "q.cnn"))
        row["size_cc_f32"] = os.path.getsize(os.path.join(tmp, "f.cnn"))
        row["size_cc_int8"] = os.path.getsize(os.path.join(tmp, "q.cnn"))
        runs = {"cc_f32": (lambda b: model.predict(b, batch_size=BATCH)),
                "cc_int8": (lambda b: q.predict(b, batch_size=BATCH))}
        if direct:
            runs["cc_int8_direct"] = _direct(q)
        f32, i8, why = _ort_sessions(model, calib, tmp, threads, spin)
        if why:
            row["ort_note"] = why
        else:
            row["size_ort_f32"] = os.path.getsize(f32[1])
            row["size_ort_int8"] = os.path.getsize(i8[1])
            runs["ort_f32"] = lambda b, s=f32[0]: s.run(None, {"input": b})[0]
            runs["ort_int8"] = lambda b, s=i8[0]: s.run(None, {"input": b})[0]
            yq, yo = q.predict(x), runs["ort_int8"](x)
            row["ort_int8_argmax_agree"] = float((yq.argmax(1) == yo.argmax(1)).mean())
        best = {k: [np.inf, np.inf] for k in runs}
        for _ in range(rounds):  # interleaved rounds: drift hits every contender
            for k, fn in runs.items():
                best[k][0] = min(best[k][0], _time(lambda: fn(x), seconds))
                best[k][1] = min(best[k][1], _time(lambda: fn(x1), seconds / 2, min_runs=20))
    for k, (t256, t1) in best.items():
        row[f"{k}_img_s"] = BATCH / t256
        row[f"{k}_b1_ms"] = t1 * 1e3
    row["int8_vs_f32_b256"] = row["cc_int8_img_s"] / row["cc_f32_img_s"]
    row["int8_vs_f32_b1"] = row["cc_f32_b1_ms"] / row["cc_int8_b1_ms"]
    if direct:
        row["int8_vs_int8_direct_b256"] = row["cc_int8_img_s"] / row["cc_int8_direct_img_s"]
        row["int8_vs_int8_direct_b1"] = row["cc_int8_direct_b1_ms"] / row["cc_int8_b1_ms"]
    if "ort_int8_img_s" in row:
        row["int8_vs_ort_int8_b256"] = row["cc_int8_img_s"] / row["ort_int8_img_s"]
        row["int8_vs_ort_int8_b1"] = row["ort_int8_b1_ms"] / row["cc_int8_b1_ms"]
    return row


def _table(rows):
    keys = ["cc_f32", "cc_int8", "ort_f32", "ort_int8"]
    out = ["images/s at batch 256 (higher is better); batch-1 latency in ms (lower is better)",
           f"{'model':10s} " + " ".join(f"{k:>9s}" for k in keys) + "  int8/f32  int8/ort8 | " +
           " ".join(f"{k:>8s}" for k in keys) + "  f32/int8  ort8/int8"]
    for r in rows:
        ips = " ".join(f"{r.get(k + '_img_s', float('nan')):9.0f}" for k in keys)
        lat = " ".join(f"{r.get(k + '_b1_ms', float('nan')):8.3f}" for k in keys)
        out.append(f"{r['model']:10s} {ips}  {r['int8_vs_f32_b256']:8.2f}  {r.get('int8_vs_ort_int8_b256', float('nan')):9.2f}"
                   f" | {lat}  {r['int8_vs_f32_b1']:8.2f}  {r.get('int8_vs_ort_int8_b1', float('nan')):9.2f}")
    for r in rows:
        if "cc_int8_direct_img_s" in r:
            out.append(f"{r['model']:10s} int8 direct (Winograd off): {r['cc_int8_direct_img_s']:9.0f} img/s, "
                       f"{r['cc_int8_direct_b1_ms']:8.3f} ms; int8 / int8 direct: {r['int8_vs_int8_direct_b256']:.2f} "
                       f"(batch 256), {r['int8_vs_int8_direct_b1']:.2f} (batch 1)")
    out.append("")
    out.append(f"{'model':10s} {'cc f32 KB':>10s} {'cc int8 KB':>10s} {'ort f32 KB':>10s} {'ort int8 KB':>11s}"
               f"  {'acc f32':>8s} {'acc int8':>8s}")
    for r in rows:
        kb = lambda k: f"{r[k] / 1024:.1f}" if k in r else "-"  # noqa: E731
        acc = lambda k: f"{r[k]:.4f}" if k in r else "-"  # noqa: E731
        out.append(f"{r['model']:10s} {kb('size_cc_f32'):>10s} {kb('size_cc_int8'):>10s} {kb('size_ort_f32'):>10s} "
                   f"{kb('size_ort_int8'):>11s}  {acc('acc_f32'):>8s} {acc('acc_int8'):>8s}")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(SPECS), choices=list(SPECS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best is kept")
    ap.add_argument("--accuracy", action="store_true", help="train on Fashion-MNIST first (1-channel models)")
    ap.add_argument("--quick", action="store_true", help="short measurements (0.2 s, 2 rounds; 6k training images)")
    ap.add_argument("--ort-spin", action="store_true",
                    help="let onnxruntime's idle threads spin (its default; off here because in one process "
                         "they take the cores from the contender measured next)")
    ap.add_argument("--int8-direct", action="store_true",
                    help="also run the int8 model with its Winograd path off (before/after of that path)")
    ap.add_argument("--json", default="bench_quant.json", help="where to write the results")
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.rounds = 0.2, 2
    rows = []
    for name in a.models:
        rows.append(bench_model(name, a.threads, a.seconds, a.rounds, a.accuracy, a.quick, a.ort_spin, a.int8_direct))
        print(f"{name}: done", file=sys.stderr)
    text = _table(rows)
    print(text)
    meta = {"cpu": cc.cpu_info(), "ort_spin": a.ort_spin, "platform": platform.platform(), "load_avg": os.getloadavg(),
            "cpucnn": cc.__version__, "threads": a.threads}
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
