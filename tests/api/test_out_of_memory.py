"""Out of memory anywhere, inside OpenMP regions included, is a MemoryError, never an abort.

A fault-injection hook makes the n-th allocation of the core fail; each test
sweeps n over every allocation a training step and a predict make (with the
scratch arena released first, so the operators' scratch reservations are among
them), in a subprocess so that an abort would show as its exit code.
Operators plan their scratch and reserve it before their parallel regions, so
no allocation happens inside one: a second test counts them over nets that
run every convolution algorithm the ISA has.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers

SWEEP = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    import cpucnn as cc
    L = cc.layers
    nets = {
        "im2col-gemm": ([L.Conv2D(8, 5, padding=2), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(10)], (3, 12, 12)),
        "winograd": ([L.Conv2D(16, 3, padding=1), L.ReLU(), L.Conv2D(16, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
                      L.Flatten(), L.Dense(10)], (16, 16, 16)),
        "bn-dense": ([L.Conv2D(8, 3), L.BatchNorm2D(), L.ReLU(), L.Flatten(), L.Dense(32), L.Dense(10)], (3, 10, 10)),
    }
    layers, shape = nets[sys.argv[1]]
    cc.set_num_threads(2)
    k = cc._core.kernels
    model = cc.Sequential(layers, input_shape=shape, seed=0)
    model.compile(cc.optimizers.Adam(lr=1e-3))
    r = np.random.default_rng(0)
    x = r.standard_normal((32,) + shape).astype(np.float32)
    y = r.integers(0, 10, 32)
    errors, points = 0, 0
    for n in range(2000):
        k.release_scratch()
        k.fail_allocation_after(n)
        try:
            model.train_on_batch(x, y)
            model.predict(x[:1])
            model.predict(x)
        except MemoryError:
            errors += 1
            continue
        finally:
            k.fail_allocation_after(-1)
        points = n          # every allocation of a step and two predicts passed: swept them all
        break
    out = model.predict(x)
    loss = model.train_on_batch(x, y)
    print(json.dumps({"errors": errors, "points": points, "finite": bool(np.isfinite(out).all() and np.isfinite(loss)),
                      "in_regions": k.allocations_in_parallel_regions()}))
""")


@pytest.mark.parametrize("net", ["im2col-gemm", "winograd", "bn-dense"])
def test_every_allocation_failure_is_a_memory_error(net):
    proc = subprocess.run([sys.executable, "-c", SWEEP, net], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    # each failure point until the first clean run raised MemoryError, and the model works after
    assert res["errors"] == res["points"] >= 3, res
    assert res["finite"], res
    assert res["in_regions"] == 0, res


# Every convolution algorithm a plan can pick, forward and backward (with and
# without dx), training and inference, batch 1 and 64, and the Dense GEMMs.
NETS = {
    "gemm": (lambda: [L.Conv2D(40, 5, stride=2, padding=2), L.ReLU(), L.Conv2D(48, 1), L.Flatten(), L.Dense(10)],
             (3, 12, 12)),
    "winograd": (lambda: [L.Conv2D(16, 3, padding=1), L.ReLU(), L.Conv2D(24, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
                  L.Flatten(), L.Dense(10)], (16, 16, 16)),
    "thin": (lambda: [L.Conv2D(6, 5, padding=2), L.ReLU(), L.MaxPool2D(2), L.Conv2D(16, 5), L.ReLU(), L.Conv2D(32, 3),
              L.Flatten(), L.Dense(10)], (1, 28, 28)),
}


@pytest.mark.parametrize("net", sorted(NETS))
def test_no_allocation_inside_parallel_regions(isa, threads, net):
    layers, shape = NETS[net]
    k = cc._core.kernels
    cc.set_num_threads(2)
    model = cc.Sequential(layers(), input_shape=shape, seed=0)
    model.compile(cc.optimizers.Adam(lr=1e-3))
    r = np.random.default_rng(0)
    before = k.allocations_in_parallel_regions()
    for bs in (64, 1, 33):
        x = r.standard_normal((bs,) + shape).astype(np.float32)
        y = r.integers(0, 10, bs)
        k.release_scratch()
        model.train_on_batch(x, y)
        model.predict(x)
    assert k.allocations_in_parallel_regions() == before
