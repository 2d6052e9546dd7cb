"""Intermediate outputs (predict(outputs=...), submodel), channels-last inputs and PyTorch interop
(from_torch / to_torch).

Intermediate outputs are checked against the true output of each layer, computed by a model of
just the layers up to it (with the same weights): that model has no fused layer after the one asked
for, so a Conv2D followed by a ReLU must give its output before the ReLU, a ReLU run in place must
not change the output of the layer before it, and so on.

PyTorch interop: every layer type goes through from_torch and back through to_torch; the outputs
are compared in float32 against torch (in eval mode) with a tolerance of 1e-6 relative to the
largest magnitude of the output (cpucnn and torch sum in different orders, so elementwise relative
equality near zero is not expected).
"""

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# Intermediate outputs
# ---------------------------------------------------------------------------

def _fused_net():
    # ReLU after Conv2D (fused), ReLU before Conv2D and MaxPool2D (backward folded), Flatten (a
    # view), a ReLU in place after BatchNorm2D, Dense+ReLU, Softmax at the end.
    return [L.Conv2D(4, 3, padding=1), L.ReLU(), L.Conv2D(6, 3), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
            L.Flatten(), L.Dense(10), L.ReLU(), L.Dropout(0.5), L.Dense(5), L.Softmax()]


def _reference_outputs(model, x, batch_size):
    """Layer k's output from a fresh model of layers 0..k (the same weights): its last layer is its output."""
    weights = model.get_weights()
    outs = []
    for k in range(len(model.layers)):
        specs = [L.from_config(layer.get_config()) for layer in model.layers[:k + 1]]
        m = cc.Sequential(specs, model.input_shape, seed=1)
        m.set_weights(weights[:len(m.get_weights())])
        outs.append(m.predict(x, batch_size=batch_size))
    return outs


@pytest.fixture
def trained_model():
    model = cc.Sequential(_fused_net(), input_shape=(2, 10, 10), seed=3)
    model.compile("adam", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    model.fit(_x((40, 2, 10, 10)), rng.integers(0, 5, 40), epochs=1, batch_size=8, verbose=0)  # BN statistics
    return model


def test_predict_outputs_are_each_layers_true_output(trained_model):
    model = trained_model
    x = _x((7, 2, 10, 10), seed=5)
    want = _reference_outputs(model, x, batch_size=3)
    got = model.predict(x, outputs=list(range(len(model.layers))), batch_size=3)
    assert len(got) == len(model.layers)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, k
        np.testing.assert_array_equal(g, w, err_msg=f"layer {k} {model.layers[k]!r}")
    # The fused convolution's own output has negative values; the ReLU after it has none.
    assert got[0].min() < 0 and got[1].min() >= 0
    np.testing.assert_array_equal(got[1], np.maximum(got[0], 0))
    # Asked alone (the run stops at the fused convolution) and with the ReLU after it.
    np.testing.assert_array_equal(model.predict(x, outputs=[0], batch_size=3)[0], got[0])
    conv, relu = model.predict(x, outputs=[0, 1], batch_size=3)
    np.testing.assert_array_equal(conv, got[0])
    np.testing.assert_array_equal(relu, got[1])
    np.testing.assert_array_equal(model.predict(x, outputs=[2], batch_size=3)[0], got[2])
    np.testing.assert_array_equal(got[-1], model.predict(x, batch_size=3))


def test_predict_outputs_order_negative_indices_and_layer_objects(trained_model):
    model = trained_model
    x = _x((4, 2, 10, 10), seed=6)
    a, b, c, d = model.predict(x, outputs=[-1, 0, model.layers[2], 0])
    np.testing.assert_array_equal(a, model.predict(x))
    np.testing.assert_array_equal(b, d)
    assert b is not d
    assert c.shape == (4, *model.layers[2].output_shape)
    one = model.predict(x, outputs=[3])
    assert isinstance(one, list) and len(one) == 1


def test_predict_outputs_errors(trained_model):
    model = trained_model
    x = _x((2, 2, 10, 10))
    with pytest.raises(ValueError, match="out of range"):
        model.predict(x, outputs=[len(model.layers)])
    with pytest.raises(ValueError, match="not a layer of this model"):
        model.predict(x, outputs=[L.ReLU()])
    with pytest.raises(TypeError, match="index or as the layer object"):
        model.predict(x, outputs=["conv"])
    with pytest.raises(ValueError, match="at least one layer"):
        model.predict(x, outputs=[])


def test_submodel_shares_weights(trained_model):
    model = trained_model
    x = _x((5, 2, 10, 10), seed=7)
    head = model.submodel(0, 2)          # Conv2D + ReLU (fused in the full model)
    tail = model.submodel(2)              # the rest, from the first convolution's activations
    assert head.output_shape == tail.input_shape == (4, 10, 10)
    h = head.predict(x)
    np.testing.assert_array_equal(h, model.predict(x, outputs=[1])[0])
    np.testing.assert_array_equal(tail.predict(h), model.predict(x))
    # A weight change in the model is seen by the sub-model, and the other way round.
    conv = model.layers[0]
    conv.bias = conv.bias + 1.0
    np.testing.assert_array_equal(head.predict(x), model.predict(x, outputs=[1])[0])
    assert not np.array_equal(head.predict(x), h)
    tail.layers[-2].bias = np.zeros(5, np.float32)
    assert np.array_equal(model.layers[-2].bias, np.zeros(5, np.float32))
    assert len(tail.get_weights()) == len(model.get_weights()) - 2
    # Starting at a ReLU whose Conv2D is not part of the sub-model: the ReLU runs.
    relu_only = model.submodel(1, 2)
    np.testing.assert_array_equal(relu_only.predict(model.predict(x, outputs=[0])[0]), head.predict(x))
    assert "SubModel" in repr(tail)


def test_submodel_errors(trained_model):
    with pytest.raises(ValueError, match="selects no layers"):
        trained_model.submodel(3, 3)
    with pytest.raises(TypeError, match="integer"):
        trained_model.submodel(1.5)
    with pytest.raises(ValueError, match=r"layer 2 Conv2D.*expects input \(N, 4, 10, 10\)"):
        trained_model.submodel(2).predict(_x((1, 2, 10, 10)))


def test_same_layer_twice_is_an_error():
    relu = L.ReLU()
    with pytest.raises(ValueError, match=r"layer 3 \(ReLU\(\)\) is the same object as layer 1"):
        cc.Sequential([L.Conv2D(2, 3), relu, L.Conv2D(2, 3), relu], input_shape=(1, 8, 8))
    # Not claimed by the failed model: usable in a new one.
    cc.Sequential([L.Flatten(), relu], input_shape=(1, 4, 4))


# ---------------------------------------------------------------------------
# Channels-last
# ---------------------------------------------------------------------------

def _tiny(data_format=None, shape=(1, 12, 12)):
    return cc.Sequential([L.Conv2D(3, 3), L.ReLU(), L.Flatten(), L.Dense(4)], input_shape=shape, seed=0,
                         data_format=data_format)


def test_channels_last_input_shape_without_data_format_says_to_transpose():
    with pytest.raises(ValueError, match=r"looks channels-last.*input_shape=\(1, 28, 28\).*transpose.*"
                                         r"data_format='channels_last'"):
        cc.Sequential([L.Conv2D(8, 3), L.Flatten(), L.Dense(10)], input_shape=(28, 28, 1))
    # A small shape is taken as (C, H, W) unless it does not build; then the message says to transpose.
    cc.Sequential([L.Flatten(), L.Dense(2)], input_shape=(5, 7, 3))
    with pytest.raises(ValueError, match=r"larger than the padded input.*if input_shape \(6, 6, 1\) is "
                                         r"\(height, width, channels\).*input_shape=\(1, 6, 6\).*transpose"):
        cc.Sequential([L.Conv2D(8, 3), L.Flatten(), L.Dense(10)], input_shape=(6, 6, 1))
    # Said explicitly, it is taken as (C, H, W).
    m = cc.Sequential([L.Conv2D(2, 1), L.Flatten(), L.Dense(3)], input_shape=(28, 28, 1),
                      data_format="channels_first")
    assert m.input_shape == (28, 28, 1)


def test_channels_last_batch_into_channels_first_model_says_to_transpose():
    m = _tiny()
    with pytest.raises(ValueError, match=r"looks channels-last.*x.transpose\(0, 3, 1, 2\)"):
        m.predict(_x((2, 12, 12, 1)))
    m.compile("sgd")
    with pytest.raises(ValueError, match=r"looks channels-last"):
        m.fit(_x((2, 12, 12, 1)), [0, 1], verbose=0)


def test_channels_last_model_matches_channels_first():
    first, last = _tiny(), _tiny("channels_last", (12, 12, 1))
    assert last.input_shape == (12, 12, 1) and last.data_format == "channels_last"
    last.set_weights(first.get_weights())
    x = _x((6, 1, 12, 12))
    x_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(last.predict(x_last), first.predict(x))
    # Image outputs come back channels-last.
    conv_first, conv_last = first.predict(x, outputs=[0])[0], last.predict(x_last, outputs=[0])[0]
    np.testing.assert_array_equal(conv_last, conv_first.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"looks channels-first.*transpose\(0, 2, 3, 1\)"):
        last.predict(x)
    # Training sees the same data.
    y = np.arange(6) % 4
    for m, xx in ((first, x), (last, x_last)):
        m.compile(cc.optimizers.SGD(lr=0.1))
        m.fit(xx, y, epochs=2, batch_size=3, seed=4, verbose=0)
    for a, b in zip(first.get_weights(), last.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first.evaluate(x, y) == last.evaluate(x_last, y)


def test_channels_last_survives_save_and_load(tmp_path):
    m = _tiny("channels_last", (12, 12, 1))
    m.save(tmp_path / "m.cnn")
    back = cc.load(tmp_path / "m.cnn")
    assert back.data_format == "channels_last" and back.input_shape == (12, 12, 1)
    x = _x((2, 12, 12, 1))
    np.testing.assert_array_equal(back.predict(x), m.predict(x))


def test_data_format_errors(tmp_path):
    with pytest.raises(ValueError, match="channels_last"):
        _tiny("channels_last", (12, 12, 1)).export_onnx(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="data_format must be"):
        _tiny("NHWC")
    with pytest.raises(ValueError, match=r"needs input_shape \(height, width, channels\)"):
        cc.Sequential([L.Dense(2)], input_shape=(5,), data_format="channels_last")


# ---------------------------------------------------------------------------
# PyTorch interop
# ---------------------------------------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="torch is not installed (pip install torch): interop tests skipped")


TOL = 1e-6  # relative to the largest magnitude of the output


def _close(got, want, what):
    scale = max(float(np.abs(want).max()), 1e-30)
    err = float(np.abs(got - want).max()) / scale
    assert err <= TOL, f"{what}: max error {err:.3g} of the output's magnitude (tolerance {TOL})"


def _randomise(net, torch, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                if mod.affine:
                    mod.weight.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                    mod.bias.copy_(torch.randn(mod.num_features, generator=g))
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g))
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return net.eval()


def _cases(nn):
    """(name, torch net, input shape): every layer type cpucnn has, and the settings that map."""
    return [
        ("conv", nn.Sequential(nn.Conv2d(3, 5, 3), nn.Flatten()), (3, 9, 9)),
        ("conv_full", nn.Sequential(nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                              groups=2, bias=False)), (4, 11, 10)),
        ("conv_same", nn.Sequential(nn.Conv2d(2, 4, 4, padding="same")), (2, 7, 8)),
        ("conv_valid_relu", nn.Sequential(nn.Conv2d(2, 4, 3, padding="valid"), nn.ReLU()), (2, 8, 8)),
        ("maxpool", nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1)), (2, 9, 9)),
        ("avgpool", nn.Sequential(nn.AvgPool2d(2, padding=1)), (2, 7, 7)),
        ("gap", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)), (3, 5, 6)),
        ("linear", nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Linear(7, 3, bias=False)), (3, 2, 2)),
        ("leaky", nn.Sequential(nn.LeakyReLU(0.2)), (2, 4, 4)),
        ("sigmoid_tanh", nn.Sequential(nn.Sigmoid(), nn.Tanh()), (2, 4, 4)),
        ("softmax", nn.Sequential(nn.Softmax(dim=1)), (5, 3, 3)),
        ("softmax_flat", nn.Sequential(nn.Flatten(), nn.Softmax(dim=-1)), (2, 3, 3)),
        ("batchnorm", nn.Sequential(nn.BatchNorm2d(3, eps=1e-3, momentum=0.2)), (3, 5, 5)),
        ("batchnorm_noaffine", nn.Sequential(nn.BatchNorm2d(3, affine=False)), (3, 4, 4)),
        ("dropout", nn.Sequential(nn.Dropout(0.3), nn.Flatten()), (2, 3, 3)),
        ("convnet", nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(0.25), nn.Linear(16, 10), nn.Softmax(dim=1)), (1, 12, 12)),
    ]


@pytest.mark.parametrize("case", range(16))
def test_from_torch_and_back_match(case):
    torch = _torch()
    name, net, shape = _cases(torch.nn)[case]
    torch.manual_seed(case)
    net = _randomise(net, torch, seed=case)
    x = _x((5, *shape), seed=case)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    model = cc.from_torch(net, input_shape=shape, seed=0)
    got = model.predict(x)
    assert got.shape == want.shape, name
    _close(got, want, f"{name}: from_torch")
    back = model.to_torch()
    assert not back.training
    with torch.no_grad():
        again = back(torch.from_numpy(x)).numpy()
    assert again.shape == want.shape
    _close(again, want, f"{name}: to_torch")
    # The weights were copied, not shared.
    for a, b in zip(model.get_weights(), cc.from_torch(back, input_shape=shape).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_cases_cover_every_layer_type():
    torch = _torch()
    types = set()
    for _, net, shape in _cases(torch.nn):
        types |= {type(layer).__name__ for layer in cc.from_torch(net, input_shape=shape).layers}
    assert types == set(L._TYPES), set(L._TYPES) - types


@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
def test_to_torch_of_a_cpucnn_model(fmt):
    torch = _torch()
    shape = (1, 10, 10) if fmt == "channels_first" else (10, 10, 1)
    model = cc.Sequential([L.Conv2D(4, 3, stride=2, padding="same"), L.BatchNorm2D(), L.ReLU(),
                           L.Conv2D(4, 2, padding="same"), L.LeakyReLU(0.1), L.AvgPool2D(2), L.GlobalAvgPool2D(),
                           L.Dense(3), L.Sigmoid()], input_shape=shape, seed=2, data_format=fmt)
    x = _x((4, 1, 10, 10))
    xin = x if fmt == "channels_first" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    net = model.to_torch()
    assert any(isinstance(m, torch.nn.ZeroPad2d) for m in net)  # the uneven "same" padding
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    _close(model.predict(xin), want, "to_torch")


def test_from_torch_errors():
    torch = _torch()
    nn = torch.nn
    with pytest.raises(ValueError, match=r"module 1 GELU.*no equivalent of GELU"):
        cc.from_torch(nn.Sequential(nn.Flatten(), nn.GELU()), input_shape=(4,))
    with pytest.raises(ValueError, match=r"module 0 Conv2d.*padding_mode='reflect'"):
        cc.from_torch(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="ceil_mode"):
        cc.from_torch(nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="output_size=1"):
        cc.from_torch(nn.Sequential(nn.AdaptiveAvgPool2d(2)), input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="followed by Flatten"):
        cc.from_torch(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.ReLU()), input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="track_running_stats"):
        cc.from_torch(nn.Sequential(nn.BatchNorm2d(1, track_running_stats=False)), input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="dim=1"):
        cc.from_torch(nn.Sequential(nn.Softmax(dim=2)), input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match=r"Softmax\(dim=-1\).*channel axis"):
        cc.from_torch(nn.Sequential(nn.Softmax(dim=-1)), input_shape=(2, 5, 5))
    with pytest.raises(ValueError, match=r"from_torch: dense_1: weight of shape \(3, 8\)"):
        cc.from_torch(nn.Sequential(nn.Flatten(), nn.Linear(8, 3)), input_shape=(1, 3, 3))
    with pytest.raises(TypeError, match="torch.nn.Sequential"):
        cc.from_torch(nn.Linear(2, 2), input_shape=(2,))
    with pytest.raises(TypeError, match="cpucnn Sequential"):
        cc.torch_interop.to_torch(nn.Sequential())


# ---------------------------------------------------------------------------
# evaluate: confusion matrix, per-class report, progress bar
# ---------------------------------------------------------------------------

def _classifier():
    m = cc.Sequential([L.Flatten(), L.Dense(4)], input_shape=(1, 3, 3), seed=0)
    m.compile("sgd", metrics=["accuracy"])
    return m


def test_evaluate_confusion_matrix_and_per_class():
    m = _classifier()
    x = _x((50, 1, 3, 3), seed=2)
    y = np.random.default_rng(3).integers(0, 4, 50)
    y[:3] = 3
    pred = np.argmax(m.predict(x), axis=1)
    r = m.evaluate(x, y, batch_size=7, metrics=["acc", "confusion_matrix", "per_class"])
    cm = r["confusion_matrix"]
    assert cm.shape == (4, 4) and cm.dtype == np.int64 and cm.sum() == 50
    for t in range(4):
        for p in range(4):
            assert cm[t, p] == np.sum((y == t) & (pred == p))
    assert r["accuracy"] == pytest.approx(np.trace(cm) / 50) == pytest.approx(np.mean(pred == y))
    pc = r["per_class"]
    for c in range(4):
        tp = np.sum((y == c) & (pred == c))
        assert pc["support"][c] == np.sum(y == c)
        assert pc["recall"][c] == pytest.approx(tp / max(np.sum(y == c), 1))
        assert pc["precision"][c] == pytest.approx(tp / max(np.sum(pred == c), 1))
        p_, r_ = pc["precision"][c], pc["recall"][c]
        assert pc["f1"][c] == pytest.approx(0 if p_ + r_ == 0 else 2 * p_ * r_ / (p_ + r_))
    assert r["loss"] == m.evaluate(x, y, batch_size=7)["loss"]
    # Without metrics=, the compiled ones.
    assert set(m.evaluate(x, y)) == {"loss", "accuracy"}


def test_evaluate_metric_errors():
    m = _classifier()
    x, y = _x((4, 1, 3, 3)), np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match="unknown metric 'f2'"):
        m.evaluate(x, y, metrics=["f2"])
    with pytest.raises(ValueError, match="verbose must be"):
        m.evaluate(x, y, verbose=3)
    m.compile("sgd", loss="mse")
    with pytest.raises(ValueError, match="need the cross_entropy loss"):
        m.evaluate(x, np.zeros((4, 4), np.float32), metrics=["confusion_matrix"])


def test_evaluate_verbose_shows_a_bar_with_the_same_result(capsys):
    m = _classifier()
    x = _x((30, 1, 3, 3), seed=4)
    y = np.arange(30) % 4
    quiet = m.evaluate(x, y, batch_size=4)
    capsys.readouterr()
    loud = m.evaluate(x, y, batch_size=4, verbose=1)
    err = capsys.readouterr().err
    assert "Evaluate" in err and "8/8" in err
    assert loud == quiet


def test_predict_outputs_from_several_threads(trained_model):
    import threading

    model = trained_model
    x = _x((9, 2, 10, 10), seed=8)
    want = model.predict(x, outputs=[0, 4, -1], batch_size=4)
    results, errors = [], []

    def run():
        try:
            for _ in range(5):
                results.append(model.predict(x, outputs=[0, 4, -1], batch_size=4))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 20
    for r in results:
        for a, b in zip(r, want):
            np.testing.assert_array_equal(a, b)
