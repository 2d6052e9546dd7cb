"""The .cnn model file: round trips, exact resume, the safetensors layout,
corrupt and truncated files, failed saves and paths."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")

L = cc.layers


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def weights_equal(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def every_layer_model(seed=0):
    """Every layer type, with non-default settings, trained a little so BatchNorm's running stats move."""
    m = cc.Sequential([
        L.Conv2D(6, 3, padding="same"),
        L.BatchNorm2D(momentum=0.2, eps=1e-4),
        L.ReLU(),
        L.MaxPool2D(2),                                             # 6 x 6 x 6
        L.Conv2D(6, (3, 1), padding=(1, 0), groups=3, use_bias=False),
        L.LeakyReLU(0.1),
        L.AvgPool2D(2, stride=2),                                   # 6 x 3 x 3
        L.Conv2D(8, 3, padding=2, dilation=2, stride=1),
        L.Tanh(),
        L.GlobalAvgPool2D(),                                        # 8
        L.Dense(8),
        L.Sigmoid(),
        L.Dropout(0.3),
        L.Dense(4),
    ], input_shape=(3, 12, 12), seed=seed)
    m.compile(cc.optimizers.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy", "top5"])
    r = np.random.default_rng(seed)
    m.fit(r.normal(size=(16, 3, 12, 12)), r.integers(0, 4, 16), epochs=2, batch_size=8, seed=0, verbose=0)
    return m


def softmax_mse_model(seed=0):
    m = cc.Sequential([L.Conv2D(4, 3, stride=2), L.Sigmoid(), L.Flatten(), L.Dense(5), L.Softmax()],
                      input_shape=(1, 9, 9), seed=seed)
    m.compile(cc.optimizers.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), loss="mse")
    r = np.random.default_rng(seed)
    m.fit(r.normal(size=(8, 1, 9, 9)), r.random((8, 5)), epochs=2, batch_size=4, seed=0, verbose=0)
    return m


def flat_input_model(seed=0):
    m = cc.Sequential([L.Dense(6, use_bias=False), L.ReLU(), L.Dense(3)], input_shape=(10,), seed=seed)
    m.compile("sgd", metrics=["accuracy"])
    return m


MODELS = {"every_layer": every_layer_model, "softmax_mse": softmax_mse_model, "flat_input": flat_input_model}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained every-layer model saved with its optimizer; tests must not modify the file."""
    path = tmp_path_factory.mktemp("saved") / "model.cnn"
    m = every_layer_model()
    m.save(path)
    return m, path


# -- round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_predicts_bit_identically(tmp_path, name):
    m = MODELS[name]()
    path = tmp_path / "m.cnn"
    m.save(path)
    m2 = cc.load(path)
    x = np.random.default_rng(1).normal(size=(20,) + m.input_shape).astype(np.float32)
    assert np.array_equal(m.predict(x), m2.predict(x))
    assert weights_equal(m.get_weights(), m2.get_weights())
    assert [layer.get_config() for layer in m2.layers] == [layer.get_config() for layer in m.layers]
    assert m2.input_shape == m.input_shape and m2.output_shape == m.output_shape
    assert m2.summary(print_fn=None) == m.summary(print_fn=None)
    assert m2.loss == m.loss and m2.metrics == m.metrics and m2.seed == m.seed
    assert m2.optimizer.get_config() == m.optimizer.get_config()
    assert m2.optimizer.iterations == m.optimizer.iterations
    assert m2._m.step_count == m._m.step_count


def test_batchnorm_running_stats_survive(saved):
    m, path = saved
    m2 = cc.load(path)
    for name in ("running_mean", "running_var", "weight", "bias"):
        a, b = m.layers[1].get_param(name), m2.layers[1].get_param(name)
        assert np.array_equal(a, b), name
    assert not np.array_equal(m2.layers[1].running_mean, np.zeros(6, np.float32))
    assert not np.array_equal(m2.layers[1].running_var, np.ones(6, np.float32))


def test_evaluate_after_load_matches(saved):
    m, path = saved
    m2 = cc.load(path)
    r = np.random.default_rng(3)
    x, y = r.normal(size=(12, 3, 12, 12)), r.integers(0, 4, 12)
    assert m2.evaluate(x, y) == m.evaluate(x, y)
    assert set(m2.evaluate(x, y)) == {"loss", "accuracy", "top5"}


def _resume_data():
    r = np.random.default_rng(7)
    y = r.integers(0, 3, 40)
    x = r.normal(0, 1, (40, 2, 8, 8)).astype(np.float32)
    x[np.arange(40), y % 2, y, :] += 2.0
    return x, y


def _resume_model(optimizer):
    m = cc.Sequential([
        L.Conv2D(4, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dropout(0.3), L.Dense(3),
    ], input_shape=(2, 8, 8), seed=123)
    m.compile(optimizer, metrics=["accuracy"])
    return m


OPTIMIZERS = {
    "sgd_momentum": lambda: cc.optimizers.SGD(lr=0.05, momentum=0.9),
    "sgd_nesterov_wd": lambda: cc.optimizers.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
    "adam": lambda: cc.optimizers.Adam(lr=3e-3, betas=(0.8, 0.99), weight_decay=1e-4),
    "adamw_clipnorm": lambda: cc.optimizers.AdamW(lr=3e-3, weight_decay=0.05, clipnorm=0.5),
    "rmsprop_centered_momentum_clipvalue": lambda: cc.optimizers.RMSprop(lr=1e-3, momentum=0.5, centered=True,
                                                                         clipvalue=0.01),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_resume_from_checkpoint_equals_uninterrupted_training(tmp_path, opt):
    x, y = _resume_data()
    a = _resume_model(OPTIMIZERS[opt]())
    ha = a.fit(x, y, epochs=3, batch_size=8, seed=42, verbose=0)

    b = _resume_model(OPTIMIZERS[opt]())
    b.fit(x, y, epochs=1, batch_size=8, seed=42, verbose=0)
    path = tmp_path / "ckpt.cnn"
    b.save(path)
    c = cc.load(path)
    assert c.optimizer.iterations == 5
    hc = c.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, seed=42, verbose=0)
    assert weights_equal(a.get_weights(), c.get_weights())
    assert hc.history["loss"] == ha.history["loss"][1:]
    assert c.optimizer.iterations == a.optimizer.iterations == 15


def test_resume_needs_the_optimizer_state(tmp_path):
    """The control for the test above: without the optimizer state (momentum), resuming diverges."""
    x, y = _resume_data()
    a = _resume_model(OPTIMIZERS["sgd_momentum"]())
    a.fit(x, y, epochs=2, batch_size=8, seed=42, verbose=0)
    b = _resume_model(OPTIMIZERS["sgd_momentum"]())
    b.fit(x, y, epochs=1, batch_size=8, seed=42, verbose=0)
    b.save(tmp_path / "w.cnn", include_optimizer=False)
    c = cc.load(tmp_path / "w.cnn")
    c.compile(OPTIMIZERS["sgd_momentum"](), metrics=["accuracy"])
    c.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, seed=42, verbose=0)
    assert not weights_equal(a.get_weights(), c.get_weights())


def test_changed_learning_rate_is_saved(tmp_path):
    m = _resume_model(cc.optimizers.SGD(lr=0.05, momentum=0.9))
    m.optimizer.lr = 0.0125
    m.save(tmp_path / "lr.cnn")
    assert cc.load(tmp_path / "lr.cnn").optimizer.lr == pytest.approx(0.0125, rel=1e-7)


def test_include_optimizer_false_loads_uncompiled(tmp_path, saved):
    m, _ = saved
    path = tmp_path / "weights-only.cnn"
    m.save(path, include_optimizer=False)
    m2 = cc.load(path)
    assert m2.optimizer is None and m2.loss is None and not m2._m.compiled
    x = np.random.default_rng(0).normal(size=(4, 3, 12, 12)).astype(np.float32)
    assert np.array_equal(m.predict(x), m2.predict(x))
    with pytest.raises(ValueError, match="compile"):
        m2.evaluate(x, np.zeros(4, np.int64))
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        assert not any(k.startswith("optimizer.") for k in f.keys())
        assert "optimizer" not in f.metadata()
    m2.compile(cc.optimizers.SGD(lr=0.01))   # and it can be compiled and trained
    m2.train_on_batch(x, np.zeros(4, np.int64))


def test_uncompiled_model_saves_and_loads(tmp_path):
    m = cc.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 3, 3), seed=4)
    m.save(tmp_path / "u.cnn")
    m2 = cc.load(tmp_path / "u.cnn")
    assert m2.optimizer is None and weights_equal(m.get_weights(), m2.get_weights())


# -- the safetensors layout ---------------------------------------------------------------------

def test_file_is_valid_safetensors(saved):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    m, path = saved
    tensors = safetensors_numpy.load_file(str(path))
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert meta["format"] == "cpucnn" and meta["version"] == "1"
    arch = json.loads(meta["architecture"])
    assert arch["input_shape"] == [3, 12, 12]
    assert [layer["type"] for layer in arch["layers"]] == [layer.get_config()["type"] for layer in m.layers]
    assert json.loads(meta["optimizer"])["type"] == "Adam"
    # Parameters under "<index>.<layer>.<param>" in PyTorch layouts, float32.
    for i, layer in enumerate(m.layers):
        for name in layer.param_names:
            key = f"{i}.{layer.get_config()['type'].lower()}.{name}"
            assert tensors[key].dtype == np.float32
            assert np.array_equal(tensors[key], layer.get_param(name)), key
    assert tensors["0.conv2d.weight"].shape == (6, 3, 3, 3)
    assert tensors["4.conv2d.weight"].shape == (6, 2, 3, 1)     # groups=3: (out, in/groups, kh, kw)
    assert tensors["10.dense.weight"].shape == (8, 8)           # (out, in)
    opt_keys = {k for k in tensors if k.startswith("optimizer.")}
    trainable = [f"{i}.{layer.get_config()['type'].lower()}.{n}" for i, layer in enumerate(m.layers)
                 for n in layer.param_names if not n.startswith("running_")]
    assert opt_keys == {f"optimizer.{s}.{k}" for s in ("exp_avg", "exp_avg_sq") for k in trainable}


def test_file_rewritten_by_the_safetensors_package_still_loads(tmp_path, saved):
    """Interop: the package reorders tensors and offsets; our reader must not depend on our order."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    m, path = saved
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    out = tmp_path / "rewritten.cnn"
    safetensors_numpy.save_file(safetensors_numpy.load_file(str(path)), str(out), metadata=meta)
    m2 = cc.load(out)
    x = np.random.default_rng(2).normal(size=(5, 3, 12, 12)).astype(np.float32)
    assert np.array_equal(m.predict(x), m2.predict(x))


# -- bad files ----------------------------------------------------------------------------------

def _rewrite(src, dst, edit_tensors=None, edit_meta=None):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(src))
    with safe_open(str(src), "np") as f:
        meta = dict(f.metadata())
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _set(d, key, value):
    d[key] = value


def _del(d, key):
    del d[key]


def _arch_edit(fn):
    def edit(meta):
        arch = json.loads(meta["architecture"])
        fn(arch)
        meta["architecture"] = json.dumps(arch)
    return edit


def _opt_edit(fn):
    def edit(meta):
        cfg = json.loads(meta["optimizer"])
        fn(cfg)
        meta["optimizer"] = json.dumps(cfg)
    return edit


BAD_CONTENTS = {
    "version 2": (None, lambda m: _set(m, "version", "2"), "version '2'"),
    "no version": (None, lambda m: _del(m, "version"), "version"),
    "other format": (None, lambda m: _set(m, "format", "pt"), "not a cpucnn model file"),
    "no format": (None, lambda m: _del(m, "format"), "not a cpucnn model file"),
    "no architecture": (None, lambda m: _del(m, "architecture"), "architecture"),
    "architecture not json": (None, lambda m: _set(m, "architecture", "{oops"), "architecture"),
    "unknown layer": (None, _arch_edit(lambda a: a["layers"][2].update(type="Swish")), "architecture"),
    "bad layer setting": (None, _arch_edit(lambda a: a["layers"][12].update(rate=2.0)), "architecture"),
    "architecture changes shapes": (None, _arch_edit(lambda a: a["layers"][10].update(units=9)), "shape"),
    "wrong shape": (lambda t: _set(t, "0.conv2d.weight", np.zeros((6, 3, 3, 2), np.float32)), None, "shape"),
    "dense wrong in-features": (lambda t: _set(t, "10.dense.weight", np.zeros((8, 4), np.float32)), None, "shape"),
    "same size, other shape": (lambda t: _set(t, "0.conv2d.weight", t["0.conv2d.weight"].reshape(3, 6, 3, 3)),
                               None, "shape"),
    "scalar tensor": (lambda t: _set(t, "13.dense.bias", np.array(1.0, np.float32)), None, "shape"),
    "wrong dtype": (lambda t: _set(t, "13.dense.bias", t["13.dense.bias"].astype(np.float64)), None, "dtype"),
    "missing tensor": (lambda t: _del(t, "1.batchnorm2d.running_var"), None, "running_var"),
    "missing optimizer state": (lambda t: _del(t, "optimizer.exp_avg.0.conv2d.weight"), None, "exp_avg"),
    "extra tensor": (lambda t: _set(t, "99.dense.weight", np.zeros(3, np.float32)), None, "tensors"),
    "bad optimizer": (None, lambda m: _set(m, "optimizer", "[1, 2"), "optimizer"),
    "unknown optimizer": (None, _opt_edit(lambda c: c.update(type="RMSprop")), "optimizer"),
    "optimizer mismatch": (None, _opt_edit(lambda c: c.update(type="SGD", momentum=0.0)), "tensors"),
    "negative steps": (None, _opt_edit(lambda c: c.update(steps=-1)), "steps"),
    "fractional steps": (None, _opt_edit(lambda c: c.update(steps=1.5)), "steps"),
    "unknown loss": (None, lambda m: _set(m, "loss", "hinge"), "loss"),
    "negative seed": (None, lambda m: _set(m, "seed", "-1"), "seed"),
    "huge seed": (None, lambda m: _set(m, "seed", "99999999999999999999"), "seed"),
    "huge step": (None, lambda m: _set(m, "step", "18446744073709551616"), "step"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENTS))
def test_inconsistent_files_raise_value_error(tmp_path, saved, case):
    pytest.importorskip("safetensors")
    edit_tensors, edit_meta, match = BAD_CONTENTS[case]
    bad = _rewrite(saved[1], tmp_path / "bad.cnn", edit_tensors, edit_meta)
    with pytest.raises(ValueError, match=match):
        cc.load(bad)


def _framed(header, data=b"", length=None):
    """A safetensors-style blob: an 8-byte little-endian length, the header, the data."""
    return (len(header) if length is None else length).to_bytes(8, "little") + header + data


def _onnx_like():
    """The start of an ONNX ModelProto (protobuf): ir_version, producer name and version, a graph."""
    return (b"\x08\x08\x12\x07pytorch\x1a\x052.1.0:\x9c\x02\n\x0c\n\x05input\x12\x03out\x1a\x04Conv"
            + bytes(range(256)))


NOT_MODEL_FILES = {
    "empty file": (b"", "the file is empty"),
    "7 bytes": (b"\x00" * 7, "too short"),
    "8 zero bytes": (b"\x00" * 8, "does not start with a safetensors header"),
    "random bytes": (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
                     "does not start with a safetensors header"),
    "zip (PyTorch .pt)": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00archive/data.pkl" + bytes(200), "zip archive"),
    "ONNX-like protobuf": (_onnx_like(), "does not start with a safetensors header"),
    "text file": (b"hello, this is not a model file at all\n" * 4, "text file"),
    "JSON text": (b'{"format": "cpucnn", "layers": []}', "text file"),
    "length 2^64-1": ((2**64 - 1).to_bytes(8, "little") + b"{}", "does not start with a safetensors header"),
    "cut short, no marker": (_framed(b"{}", length=100), "truncated safetensors file"),
    "array header": (_framed(b"[]"), "does not start with a safetensors header"),
    "not JSON": (_framed(b"nope"), "does not start with a safetensors header"),
    "framed, invalid JSON": (_framed(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'[:40]),
                             "its header could not be read: JSON: unterminated string"),
    "safetensors, no metadata": (_framed(b"{}      "), 'metadata has no "format"'),
    "safetensors, other format": (_framed(b'{"__metadata__":{"format":"pt"}}'), 'metadata has "format": "pt"'),
}


@pytest.mark.parametrize("case", sorted(NOT_MODEL_FILES))
def test_files_that_are_not_model_files_say_so(tmp_path, case):
    """Not a .cnn file at all: the message says so (and names the file) instead of quoting what its
    first 8 bytes would mean as a header length."""
    content, detail = NOT_MODEL_FILES[case]
    path = tmp_path / "g.cnn"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        cc.load(path)
    msg = str(info.value)
    assert f"'{path}' is not a cpucnn model file" in msg and detail in msg, msg
    assert "header length" not in msg and "header says" not in msg, msg


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}, {"note": "cpucnn"}])
def test_safetensors_files_of_other_programs_are_not_model_files(tmp_path, metadata):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "plain.safetensors"
    safetensors_numpy.save_file({"weight": np.ones((2, 2), np.float32)}, str(path), metadata=metadata)
    with pytest.raises(ValueError) as info:
        cc.load(path)
    msg = str(info.value)
    assert f"'{path}' is not a cpucnn model file (it is a safetensors file whose metadata has" in msg, msg


MARKED = b'{"__metadata__":{"format":"cpucnn","version":"1"}'   # the start of every model file's header


def _tensor(shape):
    return b',"a":{"dtype":"F32","shape":%s,"data_offsets":[0,4]}}' % json.dumps(shape).encode()


DAMAGED_MODEL_FILES = {
    # A header that carries the cpucnn marker is a model file: its problems get their own messages.
    "length over the limit": (_framed(MARKED + b"}", length=2**40), "over the limit of 100000000"),
    "cut short": (_framed(MARKED + b"}", length=4096), "is truncated: header says 4096 bytes"),
    "invalid JSON": (_framed(MARKED + b',"a":}'), "has an invalid header: JSON"),
    "rank 9": (_framed(MARKED + _tensor([1] * 9), b"\0" * 4), "has 9 dimensions, exceeding the limit of 8"),
    "2000-long shape": (_framed(MARKED + _tensor([1] * 2000), b"\0" * 4),
                        "length of an array exceeds the limit of 1024 elements"),
    "nesting 100 deep": (_framed(MARKED + b',"a":' + b"[" * 100 + b"]" * 100 + b"}"),
                         "nesting depth exceeds the limit of 64 levels"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_MODEL_FILES))
def test_damaged_model_files_keep_their_messages(tmp_path, case):
    content, detail = DAMAGED_MODEL_FILES[case]
    path = tmp_path / "d.cnn"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        cc.load(path)
    msg = str(info.value)
    assert msg.startswith(f"model file '{path}' ") and detail in msg, msg


def test_truncated_and_length_damaged_model_files(tmp_path, saved):
    data = saved[1].read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    path = tmp_path / "t.cnn"
    marker_end = data.index(b'"format":"cpucnn"') + len(b'"format":"cpucnn"')
    assert marker_end < 64                            # our writer puts the marker first
    for cut in (marker_end, 8 + header_len // 2, 8 + header_len - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"model file '.*t.cnn' is truncated: header says {header_len} bytes"):
            cc.load(path)
    for cut in (9, marker_end - 1):                   # cut before the marker: nothing says it is ours
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="is not a cpucnn model file .*looks like a truncated safetensors file"):
            cc.load(path)
    path.write_bytes(data[:8 + header_len + 10])     # the header intact, the tensors cut short
    with pytest.raises(ValueError, match="outside the data buffer"):
        cc.load(path)
    damaged = bytearray(data)
    damaged[6] ^= 0x40                                # the length field says 2^54 + ...
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="model file '.*' has a header length of .* over the limit"):
        cc.load(path)


# -- sizes a model states: the activation limit ---------------------------------------------------

GiB = 2**30


@pytest.fixture
def activation_limit():
    """Restores the process-wide activation limit after the test."""
    before = cc.get_max_activation_bytes()
    yield
    cc.set_max_activation_bytes(before)


def test_activation_limit_setting(activation_limit):
    assert cc.get_max_activation_bytes() == GiB                       # the default
    assert "set_max_activation_bytes" in cc.__all__ and "get_max_activation_bytes" in cc.__all__
    cc.set_max_activation_bytes(3 * GiB)
    assert cc.get_max_activation_bytes() == 3 * GiB
    for bad in (0, -1, 2**63):
        with pytest.raises(ValueError, match="positive number of bytes"):
            cc.set_max_activation_bytes(bad)
    for bad in (1.5, "1", True, None):
        with pytest.raises(TypeError, match="integer number of bytes"):
            cc.set_max_activation_bytes(bad)
    assert cc.get_max_activation_bytes() == 3 * GiB
    with pytest.raises(ValueError, match="positive"):
        cc._core.set_max_activation_bytes(0)


def _hostile_model_file(path):
    """A valid model file whose only layer, 65536 1x1 filters on a 128x128 input, has 512 KiB of
    weights and 4 GiB of output per sample."""
    from safetensors.numpy import save_file

    arch = {"input_shape": [1, 128, 128], "layers": [{"type": "Conv2D", "filters": 65536, "kernel_size": 1}]}
    save_file({"0.conv2d.weight": np.zeros((65536, 1, 1, 1), np.float32), "0.conv2d.bias": np.zeros(65536, np.float32)},
              str(path), metadata={"format": "cpucnn", "version": "1", "architecture": json.dumps(arch)})
    return path


def test_model_file_over_the_activation_limit_is_refused(tmp_path, activation_limit):
    pytest.importorskip("safetensors")
    path = _hostile_model_file(tmp_path / "huge.cnn")
    with pytest.raises(ValueError) as info:
        cc.load(path)
    msg = str(info.value)
    assert msg.startswith(f"model file '{path}': layer 0 Conv2D(65536, 1x1): activations of one sample "
                          "(output (65536, 128, 128)) need 4.0 GiB, over the limit of 1.0 GiB; "
                          "raise it with cpucnn.set_max_activation_bytes()"), msg
    # The check is what refused it: raised, the limit lets the same file load (running it would
    # then need the 4 GiB).
    cc.set_max_activation_bytes(8 * GiB)
    m = cc.load(path)
    assert m.output_shape == (65536, 128, 128)


def test_building_over_the_activation_limit_names_the_layer(activation_limit):
    with pytest.raises(ValueError, match=r"^input_shape \(3, 100000, 100000\): the values of one sample need "
                                         r"111\.8 GiB, over the limit of 1\.0 GiB"):
        cc.Sequential([L.Flatten(), L.Dense(2)], input_shape=(3, 100000, 100000))
    with pytest.raises(ValueError, match=r"^layer 1 Conv2D\(65536, 1x1\): activations of one sample "
                                         r"\(output \(65536, 128, 128\)\) need 4\.0 GiB, over the limit"):
        cc.Sequential([L.ReLU(), L.Conv2D(65536, 1), L.Flatten(), L.Dense(2)], input_shape=(1, 128, 128))
    with pytest.raises(ValueError, match=r"^layer 0 Conv2D\(4, 3x3\): the unfolded input \(im2col columns\) of "
                                         r"one sample need 1\.6 GiB, over the limit of 1\.0 GiB"):
        cc.Sequential([L.Conv2D(4, 3, padding="same")], input_shape=(3, 4000, 4000))
    with pytest.raises(ValueError, match=r"^layer 2 Dense\(4\): activations of one sample \(output \(4,\)\) need "
                                         r"16 bytes, over the limit of 8 bytes"):
        cc.set_max_activation_bytes(8)
        cc.Sequential([L.Dense(2), L.ReLU(), L.Dense(4)], input_shape=(1,))


def test_impossible_sizes_are_value_errors(activation_limit):
    cc.set_max_activation_bytes(2**62)
    with pytest.raises(ValueError, match=r"input_shape \(3, 10000000, 10000000\) is too large"):
        cc.Sequential([L.Flatten()], input_shape=(3, 10**7, 10**7))
    with pytest.raises(ValueError, match=r"^layer 0 Conv2D\(1, 1x1\): Conv2D output .* is too large"):
        cc.Sequential([L.Conv2D(1, 1, padding=2**24)], input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"^layer 1 Conv2D\(1048576, 1x1\): Conv2D output .* is too large"):
        cc.Sequential([L.ReLU(), L.Conv2D(2**20, 1)], input_shape=(1, 2**10, 2**11))


def test_maxpool_argmax_planes_stay_below_2_to_31(activation_limit):
    cc.set_max_activation_bytes(2**40)
    with pytest.raises(ValueError, match=r"^layer 0 MaxPool2D\(2x2\): input planes of 65536x32768 = 2147483648 "
                                         r"elements are too large: its argmax indices are int32"):
        cc.Sequential([L.MaxPool2D(2)], input_shape=(1, 65536, 32768))
    m = cc.Sequential([L.MaxPool2D(2)], input_shape=(1, 65536, 32767))   # 2^31 - 65536: fine (nothing runs)
    assert m.output_shape == (1, 32768, 16383)


FUZZ = textwrap.dedent(r"""
    import json, os, sys
    import numpy as np
    import cpucnn as cc

    src, work = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    header_end = 8 + int.from_bytes(data[:8], "little")
    x = np.random.default_rng(0).normal(size=(2, 3, 12, 12)).astype(np.float32)
    results = {"ok": 0, "value_error": 0, "other": [], "truncated_ok": []}

    def attempt(blob, label):
        path = os.path.join(work, "f.cnn")
        with open(path, "wb") as f:
            f.write(blob)
        try:
            m = cc.load(path)
            m.predict(x)        # whatever loads must also run
            results["ok"] += 1
            return True
        except ValueError:
            results["value_error"] += 1
        except Exception as e:  # anything else is a bug
            results["other"].append(f"{label}: {type(e).__name__}: {e}"[:300])
        return False

    # Truncation anywhere must be a ValueError: the first 64 offsets, a stride through the header,
    # around the header's end, a stride through the data.
    cuts = sorted(set(list(range(0, 64)) + list(range(64, header_end, 5)) +
                      list(range(header_end - 8, header_end + 16)) +
                      list(range(header_end + 16, len(data), 97)) + [len(data) - 1]))
    for n in cuts:
        if attempt(data[:n], f"truncated at {n}"):
            results["truncated_ok"].append(n)
    # Byte flips in the length field (every bit pattern) and at every header byte (patterns in
    # turn): a ValueError or a model that works, never a crash.
    masks = (0x01, 0x20, 0x80, 0xFF, 0x02, 0x10)
    flips = [(pos, bits) for pos in range(8) for bits in masks]
    flips += [(pos, masks[pos % len(masks)]) for pos in range(8, header_end)]
    for pos, bits in flips:
        blob = bytearray(data)
        blob[pos] ^= bits
        attempt(bytes(blob), f"flip {bits:#x} at {pos}")
    # Random multi-byte damage anywhere.
    rng = np.random.default_rng(1)
    for i in range(300):
        blob = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 8)):
            blob[pos] = int(rng.integers(0, 256))
        attempt(bytes(blob), f"random damage {i}")
    print(json.dumps(results))
""")


def test_corrupted_and_truncated_files_never_crash(tmp_path, saved):
    """Runs in a subprocess so a segfault or abort fails the test instead of killing pytest."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", FUZZ, str(saved[1]), str(tmp_path)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"the loader crashed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["other"] == [], "\n".join(res["other"][:20])
    assert res["truncated_ok"] == [], f"truncated files loaded: {res['truncated_ok'][:10]}"
    assert res["value_error"] > 3000


# -- missing files, failed saves, paths ---------------------------------------------------------

def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.cnn"):
        cc.load(tmp_path / "nope.cnn")


def test_loading_a_directory_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        cc.load(tmp_path)


def _leftovers(directory):
    return [n for n in os.listdir(directory) if ".tmp" in n]


def test_failed_save_into_missing_directory(tmp_path):
    m = flat_input_model()
    with pytest.raises(OSError, match="cannot save"):
        m.save(tmp_path / "no" / "such" / "dir" / "m.cnn")
    assert os.listdir(tmp_path) == []


def test_failed_save_onto_a_directory_leaves_it_untouched(tmp_path):
    m = flat_input_model()
    target = tmp_path / "a_dir"
    target.mkdir()
    (target / "inside.txt").write_text("keep")
    with pytest.raises(OSError):
        m.save(target)
    assert target.is_dir() and os.listdir(target) == ["inside.txt"]
    assert _leftovers(tmp_path) == []


SAVE_FAILS = textwrap.dedent(r"""
    import resource, signal, sys
    import numpy as np
    import cpucnn as cc

    path = sys.argv[1]
    m = cc.Sequential([cc.layers.Dense(512), cc.layers.Dense(4)], input_shape=(64,), seed=0)
    m.compile("adam")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))   # the model needs ~400 KB
    try:
        m.save(path)
    except OSError as e:
        print("OSError:", e)
    else:
        print("saved?!")
""")


def test_failed_save_leaves_the_previous_file_untouched(tmp_path, saved):
    """A save that fails half-way (file size limit hit mid-write) raises OSError, keeps the old file
    byte for byte and leaves no temporary file behind."""
    target = tmp_path / "model.cnn"
    target.write_bytes(saved[1].read_bytes())
    before = target.read_bytes()
    proc = subprocess.run([sys.executable, "-c", SAVE_FAILS, str(target)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OSError: cannot save"), proc.stdout + proc.stderr
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []
    cc.load(target)   # still a good file


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.cnn"
    a, b = flat_input_model(seed=1), flat_input_model(seed=2)
    a.save(path)
    b.save(path)
    assert weights_equal(cc.load(path).get_weights(), b.get_weights())
    assert os.listdir(tmp_path) == ["m.cnn"]


def test_path_types(tmp_path):
    class MyPath(os.PathLike):
        def __init__(self, p):
            self.p = p

        def __fspath__(self):
            return self.p

    m = flat_input_model()
    for path in (tmp_path / "p1.cnn", str(tmp_path / "p2.cnn"), MyPath(str(tmp_path / "p3.cnn")),
                 pathlib.PurePosixPath(tmp_path / "p4.model")):
        m.save(path)
        assert weights_equal(cc.load(path).get_weights(), m.get_weights())
    assert sorted(os.listdir(tmp_path)) == ["p1.cnn", "p2.cnn", "p3.cnn", "p4.model"]
