"""A quantized (int8) model through the edge runtime: cpucnn-run on a file saved from Python gives
Python's predictions bit for bit (the same kernels, the same dispatch)."""

import numpy as np
import pytest

import cpucnn as cc

from runtime_util import run  # tests/runtime is on sys.path under pytest

L = cc.layers


@pytest.fixture(scope="module")
def saved_int8(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    rng = np.random.default_rng(3)
    model = cc.Sequential([
        L.Conv2D(6, 5, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Conv2D(16, 3), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(32), L.ReLU(), L.Dense(10), L.Softmax(),
    ], input_shape=(1, 28, 28), seed=0)
    x = rng.random((20, 1, 28, 28), dtype=np.float32)
    q = cc.quantize(model, x[:10])
    q.save(d / "q.cnn")
    np.save(d / "x.npy", x)
    return d / "q.cnn", d / "x.npy", q.predict(x)


def test_cpucnn_run_on_an_int8_model_matches_predict(saved_int8, cpucnn_run, tmp_path):
    model_path, x_path, want = saved_int8
    out = tmp_path / "out.npy"
    run([cpucnn_run, model_path, x_path, "--output", out])
    got = np.load(out)
    assert got.shape == want.shape == (20, 10)
    np.testing.assert_array_equal(got, want, err_msg="cpucnn-run vs predict on the int8 model")
    proc = run([cpucnn_run, model_path, x_path, "--threads", "1"])
    lines = proc.stdout.splitlines()
    assert len(lines) == 20 and all(line.startswith(f"{i}: {int(np.argmax(want[i]))} (") for i, line in
                                    enumerate(lines)), proc.stdout


def test_cpucnn_run_rejects_a_corrupted_int8_file(saved_int8, cpucnn_run, tmp_path):
    model_path, x_path, _ = saved_int8
    raw = bytearray(model_path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    import json
    header = json.loads(raw[8:8 + n])
    key = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "I8")
    begin = 8 + n + header[key]["data_offsets"][0]
    raw[begin] = 0x80  # -128: outside the symmetric int8 range
    bad = tmp_path / "bad.cnn"
    bad.write_bytes(bytes(raw))
    proc = run([cpucnn_run, bad, x_path], check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "[-127, 127]" in proc.stderr, proc.stderr
