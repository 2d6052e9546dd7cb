"""The edge runtime end to end: plain-CMake build, ctest, install (headers, libraries, CMake package,
pkg-config), cpucnn-run on models saved from Python, and the C example in examples/edge."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cpucnn as cc

from runtime_util import ROOT, run  # tests/runtime is on sys.path under pytest


L = cc.layers
C_API = {
    "cpucnn_load", "cpucnn_last_error", "cpucnn_input_size", "cpucnn_output_size", "cpucnn_input_shape",
    "cpucnn_predict", "cpucnn_set_num_threads", "cpucnn_free", "cpucnn_version",
    "cpucnn_set_max_activation_bytes", "cpucnn_max_activation_bytes",   # API version 2
    "cpucnn_isa",                                                         # API version 3
}


def lenet():
    return cc.Sequential([
        L.Conv2D(6, 5, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Conv2D(16, 5), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(120), L.ReLU(), L.Dense(84), L.ReLU(), L.Dense(10),
    ], input_shape=(1, 28, 28), seed=0)


def every_layer():
    return cc.Sequential([
        L.Conv2D(8, 4, stride=2, padding="same", groups=2), L.BatchNorm2D(), L.LeakyReLU(0.1),
        L.Conv2D(6, 3, padding=1, dilation=2, use_bias=False), L.Tanh(), L.AvgPool2D(3, stride=2, padding=1),
        L.Sigmoid(), L.Dropout(0.4), L.MaxPool2D(2, stride=1, padding=1), L.Softmax(), L.GlobalAvgPool2D(),
        L.Dense(7), L.Softmax(),
    ], input_shape=(4, 15, 13), seed=1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Models trained a step in Python and saved, with inputs and Python's predictions."""
    d = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(5)
    out = {}
    for name, model in (("lenet", lenet()), ("every_layer", every_layer())):
        model.compile(optimizer=cc.optimizers.Adam(lr=1e-3), loss="cross_entropy")
        x = rng.normal(0.0, 1.0, (8, *model.input_shape)).astype(np.float32)
        model.train_on_batch(x, rng.integers(0, model.output_shape[0], 8))
        model.save(d / f"{name}.cnn")
        np.save(d / f"{name}_x.npy", x)
        out[name] = (d / f"{name}.cnn", d / f"{name}_x.npy", x, model.predict(x))
    return out


def test_ctest_passes(runtime_build):
    proc = run(["ctest", "--test-dir", runtime_build, "--output-on-failure"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "100% tests passed" in proc.stdout


def test_install_layout(prefix):
    for rel in ("include/cpucnn/cpucnn.h", "include/cpucnn/cpucnn.hpp", "lib/libcpucnn.a", "lib/libcpucnn.so",
                "lib/cmake/cpucnn/cpucnnConfig.cmake", "lib/cmake/cpucnn/cpucnnConfigVersion.cmake",
                "lib/pkgconfig/cpucnn.pc", "bin/cpucnn-run"):
        assert (prefix / rel).exists(), rel
    pc = (prefix / "lib/pkgconfig/cpucnn.pc").read_text()
    assert re.search(r"^Libs\.private:.*-lstdc\+\+", pc, re.M), pc


def test_shared_library_exports_only_the_c_api(prefix):
    nm = shutil.which("nm")
    if not nm:
        pytest.skip("nm is not installed")
    proc = run([nm, "-D", "--defined-only", prefix / "lib/libcpucnn.so"])
    names = {line.split()[-1] for line in proc.stdout.splitlines() if line.strip()}
    assert names == C_API


def test_no_vector_instructions_run_at_load_time(prefix):
    """Static initialisers run when the library loads, on any CPU: one built in an avx2/avx512 file
    (a namespace-scope __m512i constant, say) must not use ymm/zmm registers, or loading the one
    x86-64 build would crash with SIGILL on a CPU without that ISA."""
    objdump = shutil.which("objdump")
    if not objdump:
        pytest.skip("objdump is not installed")
    asm = run([objdump, "-d", "--no-show-raw-insn", prefix / "lib/libcpucnn.a"]).stdout
    inits = re.findall(r"^[0-9a-f]+ <(_GLOBAL__sub_I[^>]*)>:\n(.*?)(?=\n\n|\Z)", asm, re.M | re.S)
    bad = [name for name, body in inits if re.search(r"%[yz]mm|%k[0-7]", body)]
    assert not bad, f"static initialisers using AVX registers: {bad}"


@pytest.mark.parametrize("name", ["lenet", "every_layer"])
def test_cpucnn_run_matches_predict(name, saved, cpucnn_run, tmp_path):
    model_path, x_path, x, want = saved[name]
    out = tmp_path / "out.npy"
    run([cpucnn_run, model_path, x_path, "--output", out])
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # (C, H, W): one image. --top prints the best classes, best first.
    np.save(tmp_path / "one.npy", x[3])
    proc = run([cpucnn_run, model_path, tmp_path / "one.npy", "--top", "3", "--threads", "1"])
    (line,) = proc.stdout.splitlines()
    classes = [int(c) for c in re.findall(r"[:,] (\d+) \(", line)]
    assert classes == list(np.argsort(-want[3], kind="stable")[:3]), line


def test_cpucnn_run_default_prints_top1(saved, cpucnn_run):
    model_path, x_path, _, want = saved["lenet"]
    proc = run([cpucnn_run, model_path, x_path])
    lines = proc.stdout.splitlines()
    assert len(lines) == len(want)
    for i, line in enumerate(lines):
        assert line.startswith(f"{i}: {int(np.argmax(want[i]))} ("), line


def test_cpucnn_run_bench(saved, cpucnn_run, tmp_path):
    model_path, _, x, _ = saved["lenet"]
    np.save(tmp_path / "b1.npy", x[:1])
    proc = run([cpucnn_run, model_path, tmp_path / "b1.npy", "--bench", "30", "--threads", "1"])
    # The report's shape only: how fast it ran is for benchmarks/, never asserted here.
    assert re.search(r"30 runs, batch 1: p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms", proc.stdout), proc.stdout


def test_cpucnn_run_errors(saved, cpucnn_run, tmp_path):
    model_path, _, x, _ = saved["lenet"]

    def fails(args, message, code=1):
        proc = run([cpucnn_run, *args], check=False)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)

    np.save(tmp_path / "f64.npy", x.astype(np.float64))
    fails([model_path, tmp_path / "f64.npy"], "needs float32")
    np.save(tmp_path / "big_endian.npy", x.astype(">f4"))
    fails([model_path, tmp_path / "big_endian.npy"], "big-endian")
    np.save(tmp_path / "fortran.npy", np.asfortranarray(x[0, 0]))
    fails([model_path, tmp_path / "fortran.npy"], "Fortran order")
    np.save(tmp_path / "shape.npy", x[:, :, :27, :])
    fails([model_path, tmp_path / "shape.npy"], "the model expects (N, 1, 28, 28)")
    data = (tmp_path / "f64.npy").read_bytes()
    np.save(tmp_path / "ok.npy", x)
    ok = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(ok[:-10])
    fails([model_path, tmp_path / "truncated.npy"], "truncated")
    (tmp_path / "garbage.npy").write_bytes(data[:5])
    fails([model_path, tmp_path / "garbage.npy"], "not a .npy file")
    fails([tmp_path / "missing.cnn", tmp_path / "ok.npy"], "no such file")
    (tmp_path / "corrupt.cnn").write_bytes(model_path.read_bytes()[:1000])
    fails([tmp_path / "corrupt.cnn", tmp_path / "ok.npy"], "corrupt.cnn")
    fails([model_path], "expected MODEL and INPUT.npy", code=2)
    fails([model_path, tmp_path / "ok.npy", "--top", "0"], "--top needs an integer", code=2)
    fails([model_path, tmp_path / "ok.npy", "--frobnicate"], "unknown option", code=2)


def _classify_lines(stdout):
    return [int(m) for m in re.findall(r"^image \d+: class (\d+)", stdout, re.M)]


def _check_example(binary, saved, tmp_path, env=None):
    model_path, x_path, x, want = saved["lenet"]
    expected = [int(i) for i in np.argmax(want, axis=1)]
    assert _classify_lines(run([binary, model_path, x_path], env=env).stdout) == expected
    raw = tmp_path / "images.f32"
    x.astype("<f4").tofile(raw)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"label{i}" for i in range(10)) + "\n")
    proc = run([binary, model_path, raw, "--labels", labels], env=env)
    assert _classify_lines(proc.stdout) == expected
    assert f"(label{expected[0]})" in proc.stdout


@pytest.mark.parametrize("static", [False, True], ids=["shared", "static"])
def test_edge_example_with_find_package(static, prefix, saved, tmp_path):
    build = tmp_path / "build"
    run(["cmake", "-S", ROOT / "examples/edge", "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}",
         f"-DCPUCNN_USE_STATIC={'ON' if static else 'OFF'}"])
    run(["cmake", "--build", build])
    binary = build / "classify"
    if shutil.which("ldd"):
        linked = run(["ldd", binary]).stdout
        assert ("libcpucnn" in linked) != static, linked
    _check_example(binary, saved, tmp_path)


def _pkg_config(prefix, *args):
    exe = shutil.which("pkg-config") or shutil.which("pkgconf")
    if not exe:
        pytest.skip("pkg-config is not installed")
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib/pkgconfig"))
    return run([exe, *args, "cpucnn"], env=env).stdout.split()


def test_edge_example_with_pkg_config_shared(prefix, saved, c_compiler, tmp_path):
    flags = _pkg_config(prefix, "--cflags", "--libs")
    binary = tmp_path / "classify"
    run([c_compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", ROOT / "examples/edge/classify.c", *flags, "-lm",
         "-o", binary])
    _check_example(binary, saved, tmp_path, env=dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib")))


def test_edge_example_with_pkg_config_static(prefix, saved, c_compiler, tmp_path):
    # A prefix with only the static library, as a -DCPUCNN_RUNTIME_SHARED=OFF install has:
    # `pkg-config --static` must then bring the C++ runtime and OpenMP.
    static_prefix = tmp_path / "static-prefix"
    shutil.copytree(prefix, static_prefix, symlinks=True)
    for so in (static_prefix / "lib").glob("libcpucnn.so*"):
        so.unlink()
    flags = _pkg_config(static_prefix, "--cflags", "--libs", "--static")
    binary = tmp_path / "classify"
    run([c_compiler, "-std=c99", "-Wall", ROOT / "examples/edge/classify.c", *flags, "-o", binary])
    if shutil.which("ldd"):
        assert "libcpucnn" not in run(["ldd", binary]).stdout
    _check_example(binary, saved, tmp_path)


def test_python_reads_what_the_runtime_tests_write(runtime_build):
    """The C++ test models (written by the core without Python) load in Python and agree."""
    models = runtime_build / "test_models"
    if not (models / "lenet.cnn").exists():
        run(["ctest", "--test-dir", runtime_build, "-R", "make_test_models"])
    m = cc.load(models / "lenet.cnn")
    x = np.fromfile(models / "lenet_input.f32", dtype="<f4").reshape(-1, *m.input_shape)
    want = np.fromfile(models / "lenet_expected.f32", dtype="<f4").reshape(len(x), -1)
    np.testing.assert_allclose(m.predict(x), want, rtol=1e-5, atol=1e-5)


def test_fuzz_with_libfuzzer_when_clang_is_present(tmp_path):
    """The libFuzzer target under ASan for a bounded time (CPUCNN_FUZZ_SECONDS, default 30; 0 skips).
    Needs clang (apt-get install clang); without it the plain driver in ctest covers the loader."""
    seconds = int(os.environ.get("CPUCNN_FUZZ_SECONDS", "30"))
    if seconds <= 0:
        pytest.skip("CPUCNN_FUZZ_SECONDS=0")
    if not shutil.which("clang++") or not shutil.which("clang"):
        pytest.skip("clang is not installed (apt-get install clang): the libFuzzer run needs it")
    proc = subprocess.run(["bash", str(ROOT / "cpp/tests/run_fuzz.sh"), str(seconds), str(tmp_path / "fuzz")],
                          capture_output=True, text=True, timeout=1800)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert "fuzz_load: done" in proc.stdout, tail
