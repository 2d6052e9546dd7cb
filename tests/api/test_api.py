"""The public Python API: shapes, summary, weights, initialisation, threads,
cpu_info, predict batching, train_on_batch."""

import re

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers


def lenet5(seed=0):
    return cc.Sequential([
        L.Conv2D(6, 5, padding=2), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(16, 5), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(120), L.ReLU(), L.Dense(84), L.ReLU(), L.Dense(10),
    ], input_shape=(1, 28, 28), seed=seed)


def small_bn_net(seed=0):
    return cc.Sequential([
        L.Conv2D(8, 3, stride=2, padding="same"), L.BatchNorm2D(), L.LeakyReLU(0.1),
        L.Conv2D(8, 3, groups=4, dilation=2, use_bias=False), L.AvgPool2D(3, stride=2, padding=1),
        L.Dropout(0.25), L.GlobalAvgPool2D(), L.Dense(5), L.Softmax(),
    ], input_shape=(3, 17, 15), seed=seed)


# ---------------------------------------------------------------------------
# Shape inference
# ---------------------------------------------------------------------------


def test_lenet5_shapes():
    m = lenet5()
    want = [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5), (400,), (120,), (120,),
            (84,), (84,), (10,)]
    assert [layer.output_shape for layer in m.layers] == want
    assert [layer.input_shape for layer in m.layers] == [(1, 28, 28)] + want[:-1]
    assert m.input_shape == (1, 28, 28) and m.output_shape == (10,)
    assert m.predict(np.zeros((3, 1, 28, 28))).shape == (3, 10)


@pytest.mark.parametrize("layer, in_shape, out_shape", [
    (lambda: L.Conv2D(4, 3), (2, 9, 8), (4, 7, 6)),
    (lambda: L.Conv2D(4, 3, padding=1), (2, 9, 8), (4, 9, 8)),
    (lambda: L.Conv2D(4, 3, padding="same"), (2, 9, 8), (4, 9, 8)),
    (lambda: L.Conv2D(4, 4, padding="same"), (2, 9, 8), (4, 9, 8)),
    (lambda: L.Conv2D(4, 3, stride=2, padding="same"), (2, 9, 8), (4, 5, 4)),     # ceil(in / stride)
    (lambda: L.Conv2D(4, 3, padding="valid"), (2, 9, 8), (4, 7, 6)),
    (lambda: L.Conv2D(4, 3, stride=2), (2, 9, 8), (4, 4, 3)),                      # floor((in - k) / s) + 1
    (lambda: L.Conv2D(4, 3, dilation=2), (2, 9, 8), (4, 5, 4)),
    (lambda: L.Conv2D(4, (3, 1), stride=(1, 2), padding=(0, 1)), (2, 9, 8), (4, 7, 5)),
    (lambda: L.Conv2D(6, 3, groups=2), (4, 5, 5), (6, 3, 3)),
    (lambda: L.MaxPool2D(2), (3, 9, 8), (3, 4, 4)),
    (lambda: L.MaxPool2D(3, stride=2, padding=1), (3, 9, 8), (3, 5, 4)),
    (lambda: L.AvgPool2D((2, 3), stride=1), (3, 9, 8), (3, 8, 6)),
    (lambda: L.GlobalAvgPool2D(), (3, 9, 8), (3,)),
    (lambda: L.Flatten(), (3, 9, 8), (216,)),
    (lambda: L.BatchNorm2D(), (3, 9, 8), (3, 9, 8)),
    (lambda: L.Softmax(), (3, 9, 8), (3, 9, 8)),
    (lambda: L.Dropout(0.3), (7,), (7,)),
    (lambda: L.Tanh(), (7,), (7,)),
    (lambda: L.Dense(11), (7,), (11,)),
])
def test_layer_shape_inference(layer, in_shape, out_shape):
    m = cc.Sequential([layer()], input_shape=in_shape, seed=0)
    assert m.output_shape == out_shape
    assert m.layers[0].output_shape == out_shape
    assert m.predict(np.zeros((2,) + in_shape)).shape == (2,) + out_shape


def test_parameter_shapes_are_pytorch_layouts():
    m = small_bn_net()
    conv0, bn, conv1, dense = m.layers[0], m.layers[1], m.layers[3], m.layers[7]
    assert conv0.weight.shape == (8, 3, 3, 3) and conv0.bias.shape == (8,)
    assert conv1.weight.shape == (8, 2, 3, 3) and conv1.bias is None     # in/groups
    assert dense.weight.shape == (5, 8) and dense.bias.shape == (5,)     # (out, in)
    assert bn.param_names == ("weight", "bias", "running_mean", "running_var")
    np.testing.assert_array_equal(bn.weight, np.ones(8))
    np.testing.assert_array_equal(bn.bias, np.zeros(8))
    np.testing.assert_array_equal(bn.running_mean, np.zeros(8))
    np.testing.assert_array_equal(bn.running_var, np.ones(8))
    assert m.layers[2].param_names == ()
    assert all(w.dtype == np.float32 for w in m.get_weights())


def test_layer_names_and_repr():
    m = lenet5()
    assert [layer.name for layer in m.layers[:3]] == ["conv2d_0", "relu_1", "maxpool2d_2"]
    assert L.Dense(3).name == "Dense"
    assert repr(L.Dense(3, use_bias=False)) == "Dense(units=3, use_bias=False)"
    assert "input (1, 28, 28) -> output (10,)" in repr(m)


def test_config_round_trip():
    m = small_bn_net()
    rebuilt = [L.from_config(layer.get_config()) for layer in m.layers]
    assert [r.get_config() for r in rebuilt] == [layer.get_config() for layer in m.layers]
    m2 = cc.Sequential(rebuilt, input_shape=m.input_shape, seed=0)
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown layer type 'Conv3D'"):
        L.from_config({"type": "Conv3D"})


# ---------------------------------------------------------------------------
# summary()
# ---------------------------------------------------------------------------


def _summary_rows(text):
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+) \((\w+)\)\s+(\([\d, ]*\))\s+([\d,]+)\s+([\d,]+)$", line.strip())
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), int(m.group(4).replace(",", "")),
                                int(m.group(5).replace(",", "")))
    return rows


def test_summary_lenet5():
    m = lenet5()
    printed = []
    text = m.summary(print_fn=printed.append)
    assert printed == [text]
    assert "Total params: 61,706" in text
    assert "MACs per image: 416,520" in text
    assert "input (1, 28, 28)" in text
    rows = _summary_rows(text)
    assert len(rows) == 12
    assert rows["conv2d_0"] == ("Conv2D", "(6, 28, 28)", 156, 117_600)
    assert rows["maxpool2d_2"] == ("MaxPool2D", "(6, 14, 14)", 0, 0)
    assert rows["conv2d_3"] == ("Conv2D", "(16, 10, 10)", 2_416, 240_000)
    assert rows["flatten_6"] == ("Flatten", "(400,)", 0, 0)
    assert rows["dense_7"] == ("Dense", "(120,)", 48_120, 48_000)
    assert rows["dense_9"] == ("Dense", "(84,)", 10_164, 10_080)
    assert rows["dense_11"] == ("Dense", "(10,)", 850, 840)
    assert sum(r[2] for r in rows.values()) == 61_706 == m.count_params()
    assert sum(r[3] for r in rows.values()) == 416_520
    # the count matches the arrays
    assert sum(w.size for w in m.get_weights()) == 61_706


def test_summary_counts_only_trainable_parameters():
    m = small_bn_net()
    text = m.summary(print_fn=None)
    rows = _summary_rows(text)
    assert rows["batchnorm2d_1"][2] == 16          # gamma and beta; running stats are buffers
    assert rows["conv2d_3"][2] == 8 * 2 * 3 * 3    # no bias, groups=4
    assert rows["conv2d_3"][3] == 8 * 5 * 4 * 2 * 3 * 3
    assert m.count_params() == 8 * 27 + 8 + 16 + 144 + 5 * 8 + 5
    assert f"Total params: {m.count_params():,}" in text


def test_summary_prints_by_default(capsys):
    text = lenet5().summary()
    assert capsys.readouterr().out.strip() == text.strip()


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------


def test_get_set_weights_round_trip(rng):
    src, dst = small_bn_net(seed=1), small_bn_net(seed=2)
    x = rng.standard_normal((4, 3, 17, 15)).astype(np.float32)
    assert not np.array_equal(src.predict(x), dst.predict(x))
    weights = src.get_weights()
    assert len(weights) == 2 + 4 + 1 + 2           # conv0 w,b; bn 4; conv1 w; dense w,b
    weights[3] = rng.standard_normal(8).astype(np.float32)     # bn bias: a non-default value
    weights[5] = rng.uniform(0.5, 2.0, 8).astype(np.float32)   # bn running_var
    dst.set_weights(weights)
    for a, b in zip(weights, dst.get_weights()):
        np.testing.assert_array_equal(a, b)
    src.set_weights(weights)
    np.testing.assert_array_equal(src.predict(x), dst.predict(x))
    # float64 and nested lists are accepted and converted
    dst.set_weights([w.astype(np.float64).tolist() for w in src.get_weights()])
    for a, b in zip(src.get_weights(), dst.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weight_is_a_copy():
    m = lenet5()
    conv = m.layers[0]
    w = conv.weight
    w[...] = 123.0
    b = conv.bias
    b[...] = 5.0
    assert not np.any(conv.weight == 123.0) and not np.any(conv.bias == 5.0)
    ws = m.get_weights()
    ws[0][...] = 7.0
    assert not np.any(m.get_weights()[0] == 7.0)
    # reading twice gives equal arrays that are not the same buffer
    assert conv.weight is not conv.weight
    np.testing.assert_array_equal(conv.weight, conv.weight)


def test_weight_assignment_copies_in(rng):
    m = lenet5()
    dense = m.layers[-1]
    new = rng.standard_normal((10, 84)).astype(np.float32)
    dense.weight = new
    np.testing.assert_array_equal(dense.weight, new)
    new[...] = 0.0                                   # the model keeps its own copy
    assert np.any(dense.weight != 0.0)
    dense.bias = np.arange(10)                       # ints are converted
    np.testing.assert_array_equal(dense.bias, np.arange(10, dtype=np.float32))
    # the model uses it: zero input through Dense gives its bias
    zero_w = cc.Sequential([L.Flatten(), L.Dense(3)], input_shape=(1, 2, 2), seed=0)
    zero_w.layers[1].weight = np.zeros((3, 4))
    zero_w.layers[1].bias = [1.0, -2.0, 0.5]
    np.testing.assert_array_equal(zero_w.predict(np.ones((2, 1, 2, 2))), [[1.0, -2.0, 0.5]] * 2)


@pytest.mark.parametrize("make, fan_in", [
    (lambda: L.Conv2D(16, 5), 3 * 5 * 5),
    (lambda: L.Conv2D(12, (3, 2), groups=3), 1 * 3 * 2),
    (lambda: L.Conv2D(8, 3, dilation=2), 3 * 3 * 3),
    (lambda: L.Dense(40), 3 * 12 * 12),
])
def test_kaiming_uniform_bounds(make, fan_in):
    layer = make()
    layers = [layer] if isinstance(layer, L.Conv2D) else [L.Flatten(), layer]
    cc.Sequential(layers, input_shape=(3, 12, 12), seed=11)
    bound = 1.0 / np.sqrt(fan_in)
    for arr in (layer.weight, layer.bias):
        assert np.all(np.abs(arr) <= bound * (1 + 1e-6)), (np.abs(arr).max(), bound)
    w = layer.weight
    # uniform over the whole interval: it reaches near both ends and is centred
    assert w.max() > 0.9 * bound and w.min() < -0.9 * bound
    assert abs(float(w.mean())) < 0.1 * bound
    assert 0.45 * bound < float(w.std()) < 0.7 * bound     # uniform: std = bound / sqrt(3) = 0.577 bound


def test_seed_reproducibility(rng):
    a, b, c = lenet5(seed=42), lenet5(seed=42), lenet5(seed=43)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    diffs = [not np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights())]
    assert all(diffs)
    assert a.seed == 42 and c.seed == 43
    # layers draw different numbers from one seed (not the same stream restarted per layer)
    m = cc.Sequential([L.Flatten(), L.Dense(4), L.Dense(4)], input_shape=(4,), seed=0)
    assert not np.array_equal(m.layers[1].weight, m.layers[2].weight)
    # no seed: random, and recorded so the model can be rebuilt
    r1, r2 = lenet5(seed=None), lenet5(seed=None)
    assert r1.seed != r2.seed
    assert not np.array_equal(r1.layers[0].weight, r2.layers[0].weight)
    np.testing.assert_array_equal(lenet5(seed=r1.seed).layers[0].weight, r1.layers[0].weight)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


# ---------------------------------------------------------------------------
# Threads and cpu_info
# ---------------------------------------------------------------------------


def test_num_threads(threads):
    cc.set_num_threads(1)
    assert cc.get_num_threads() == 1
    assert cc.cpu_info()["num_threads"] == 1
    cc.set_num_threads(2)
    assert cc.get_num_threads() == 2
    cc.set_num_threads(0)                             # all cores
    assert cc.get_num_threads() >= 1
    cc.set_num_threads(np.int64(1))
    assert cc.get_num_threads() == 1


def test_training_is_reproducible_for_a_thread_count(threads, rng):
    """DESIGN: with a fixed seed and thread count, training is bit-for-bit reproducible."""
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)

    def run(n):
        cc.set_num_threads(n)
        m = lenet5(seed=4)
        m.compile(optimizer=cc.optimizers.Adam(lr=1e-3), loss="cross_entropy")
        losses = [m.train_on_batch(x, y) for _ in range(2)]
        return losses, m.get_weights(), m.predict(x)

    runs = {n: (run(n), run(n)) for n in (1, 2)}
    for n, (first, second) in runs.items():
        assert first[0] == second[0], n
        for a, b in zip(first[1] + [first[2]], second[1] + [second[2]]):
            np.testing.assert_array_equal(a, b, err_msg=f"{n} threads")
    # across thread counts only the summation order may differ
    one, two = runs[1][0], runs[2][0]
    np.testing.assert_allclose(one[0], two[0], rtol=1e-5)
    for a, b in zip(one[1], two[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_cpu_info():
    info = cc.cpu_info()
    assert {"isa", "kernels", "available_isas", "num_threads"} <= set(info)
    assert info["available_isas"] == cc.available_isas()
    assert info["available_isas"][-1] == "scalar"      # always present, always last
    assert set(info["available_isas"]) <= {"scalar", "avx2", "avx512", "neon"}
    assert info["isa"] in info["available_isas"]
    assert isinstance(info["kernels"], dict) and "gemm" in info["kernels"]
    # each op names the ISA it runs ("avx512", or "avx512 (2x2 stride 2; scalar otherwise)")
    assert all(v.split()[0] in info["available_isas"] for v in info["kernels"].values()), info["kernels"]
    assert info["num_threads"] == cc.get_num_threads()
    assert info["version"] == cc.__version__
    info["isa"] = "changed"                            # a copy
    assert cc.cpu_info()["isa"] != "changed"


def test_set_isa(isa):
    info = cc.cpu_info()
    assert info["isa"] == isa
    assert info["kernels"]["gemm"] == isa             # the table follows: nothing silently falls back
    with pytest.raises(ValueError):
        cc.set_isa("sse9")
    assert cc.cpu_info()["isa"] == isa                 # a bad name changes nothing


# ---------------------------------------------------------------------------
# predict batching, train_on_batch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lenet5, small_bn_net], ids=["lenet5", "bn-net"])
def test_predict_batch_size_does_not_change_results(rng, make):
    m = make(seed=3)
    x = rng.standard_normal((30,) + m.input_shape).astype(np.float32)
    full = m.predict(x, batch_size=256)
    assert full.shape == (30,) + m.output_shape and full.dtype == np.float32
    for bs in (1, 7, 30, 31, 2**40):
        np.testing.assert_allclose(m.predict(x, batch_size=bs), full, rtol=1e-6, atol=1e-7, err_msg=f"bs={bs}")
    # each row depends on its own sample only
    np.testing.assert_allclose(m.predict(x[5:6], batch_size=1)[0], full[5], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.predict(x[::-1])[::-1], full, rtol=1e-6, atol=1e-7)


def test_predict_default_batch_size_is_exact(rng):
    m = lenet5(seed=3)
    x = rng.standard_normal((300, 1, 28, 28)).astype(np.float32)
    full = m.predict(x)                        # 256 + 44
    np.testing.assert_array_equal(full, m.predict(x, batch_size=256))
    np.testing.assert_allclose(full[256:], m.predict(x[256:]), rtol=1e-6, atol=1e-7)


def test_train_on_batch_returns_float_and_learns(rng):
    m = lenet5(seed=0)
    m.compile(optimizer=cc.optimizers.Adam(lr=2e-3), loss="cross_entropy", metrics=["accuracy"])
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = np.arange(16) % 10
    before = m.evaluate(x, y)
    losses = []
    for _ in range(20):
        loss = m.train_on_batch(x, y)
        assert type(loss) is float
        losses.append(loss)
    assert np.all(np.isfinite(losses))
    assert abs(losses[0] - before["loss"]) < 1e-4      # the first step's loss is the starting loss
    assert losses[-1] < 0.5 * losses[0], losses
    assert np.all(np.diff(losses[:5]) < 0), losses[:5]
    after = m.evaluate(x, y)
    assert after["loss"] < before["loss"] and after["accuracy"] > before["accuracy"]
    assert m.optimizer.iterations == 20


def test_train_on_batch_mse(rng):
    m = cc.Sequential([L.Flatten(), L.Dense(8), L.Tanh(), L.Dense(2)], input_shape=(1, 2, 2), seed=0)
    m.compile(optimizer=cc.optimizers.SGD(lr=0.1, momentum=0.9), loss="mse")
    x = rng.standard_normal((10, 1, 2, 2)).astype(np.float32)
    t = np.stack([x.sum(axis=(1, 2, 3)), x[:, 0, 0, 0]], axis=1) * 0.5
    pred = m.predict(x)
    first = m.train_on_batch(x, t)
    assert abs(first - float(np.mean((pred - t) ** 2))) < 1e-5
    for _ in range(30):
        last = m.train_on_batch(x, t)
    assert last < 0.3 * first


def test_lr_is_live(rng):
    m = lenet5(seed=0)
    opt = cc.optimizers.SGD(lr=0.1)
    m.compile(optimizer=opt, loss="cross_entropy")
    assert opt.lr == pytest.approx(0.1)
    opt.lr = 0.0
    w0 = m.get_weights()
    m.train_on_batch(rng.standard_normal((2, 1, 28, 28)), [1, 2])
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)             # lr 0: nothing moves
    assert opt.iterations == 1


def test_public_names():
    for name in cc.__all__:
        assert hasattr(cc, name), name
    for name in L.__all__:
        assert hasattr(L, name), name
    for name in ("SGD", "Adam"):
        assert name in cc.optimizers.__all__
