"""Training-API details Keras and PyTorch users reach for: frozen layers
(``layer.trainable = False``), AdamW and RMSprop, ``learning_rate=``,
gradient clipping, and learning rates shown as typed.

Parity is against torch in float64 started from cpucnn's own (float32)
parameters; tolerances as in test_parity_torch.py (rtol 1e-4 plus 1e-5 of the
tensor's largest magnitude).
"""

import json

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers
O = cc.optimizers

RTOL = 1e-4
ATOL_REL = 1e-5


def close(actual, expected, what):
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, what
    atol = ATOL_REL * max(float(np.max(np.abs(e))), 1e-30)
    bad = np.abs(a - e) > RTOL * np.abs(e) + atol
    assert not bad.any(), f"{what}: worst |a-e| {np.max(np.abs(a - e)):.3g} (atol {atol:.3g})"


def net(seed=3):
    return cc.Sequential([
        # no bias before BatchNorm: its gradient would be 0 but for float noise, which optimizers that
        # normalise the step (Adam, RMSprop) blow up into steps torch and cpucnn take differently
        L.Conv2D(4, 3, padding=1, use_bias=False), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(6, 3, padding=1), L.ReLU(),
        L.Flatten(), L.Dense(16), L.ReLU(), L.Dense(3),
    ], input_shape=(2, 8, 8), seed=seed)


def data(n=24, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, n)
    x = r.normal(0, 1, (n, 2, 8, 8)).astype(np.float32)
    x[np.arange(n), y % 2, y, :] += 1.5
    return x, y


OPTS = {
    "sgd-momentum-wd": lambda: O.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "adam-wd": lambda: O.Adam(lr=1e-2, weight_decay=1e-2),
    "adamw": lambda: O.AdamW(lr=1e-2, weight_decay=0.1),
    "rmsprop-all": lambda: O.RMSprop(lr=1e-2, momentum=0.5, centered=True, weight_decay=1e-2, clipnorm=1.0),
}


# ---------------------------------------------------------------------------
# layer.trainable = False
# ---------------------------------------------------------------------------


def _param_slots(model):
    return [(layer, name) for layer in model.layers for name in layer.param_names]


@pytest.mark.parametrize("opt", sorted(OPTS))
def test_frozen_layers_are_unchanged_bit_for_bit_after_fit(opt):
    x, y = data()
    m = net()
    frozen = {0, 1, 7}   # the first conv, its BatchNorm, a Dense in the middle
    for i in frozen:
        m.layers[i].trainable = False
    m.compile(OPTS[opt]())
    before = dict(zip(_param_slots(m), m.get_weights()))
    m.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    after = dict(zip(_param_slots(m), m.get_weights()))
    for (layer, name), w in before.items():
        if name.startswith("running_"):
            # BatchNorm frozen as in PyTorch (requires_grad=False): its statistics still update.
            assert not np.array_equal(w, after[(layer, name)]), f"{layer.name}.{name} did not update"
        elif layer._index in frozen:
            assert np.array_equal(w, after[(layer, name)]), f"frozen {layer.name}.{name} changed"
        else:
            assert not np.array_equal(w, after[(layer, name)]), f"trainable {layer.name}.{name} did not train"


def test_frozen_everything_trains_nothing_and_unfreezing_resumes():
    x, y = data()
    m = net()
    for layer in m.layers:
        layer.trainable = False
    m.compile(O.SGD(lr=0.1, momentum=0.9, weight_decay=0.1))
    w0 = [w for (layer, name), w in zip(_param_slots(m), m.get_weights()) if not name.startswith("running_")]
    h = m.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    w1 = [w for (layer, name), w in zip(_param_slots(m), m.get_weights()) if not name.startswith("running_")]
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    assert h.history["loss"][0] == pytest.approx(h.history["loss"][1], rel=0.2)
    # no recompile needed: unfreezing takes effect at the next step
    m.layers[-1].trainable = True
    m.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1)
    w2 = m.layers[-1].weight
    assert not np.array_equal(w2, w1[-2])
    assert np.array_equal(m.layers[0].weight, w0[0])


def _torch_twin(model, torch):
    """The same network in torch float64 with cpucnn's parameters (Conv2D with integer padding, BatchNorm2D,
    ReLU, MaxPool2D, Flatten, Dense)."""
    nn = torch.nn
    mods = []
    for layer in model.layers:
        if isinstance(layer, L.Conv2D):
            m = nn.Conv2d(layer.input_shape[0], layer.filters, layer.kernel_size, padding=layer.padding,
                          bias=layer.use_bias)
        elif isinstance(layer, L.Dense):
            m = nn.Linear(layer.input_shape[0], layer.units, bias=layer.use_bias)
        elif isinstance(layer, L.BatchNorm2D):
            m = nn.BatchNorm2d(layer.input_shape[0], momentum=layer.momentum, eps=layer.eps)
        elif isinstance(layer, L.ReLU):
            m = nn.ReLU()
        elif isinstance(layer, L.MaxPool2D):
            m = nn.MaxPool2d(layer.pool_size)
        elif isinstance(layer, L.Flatten):
            m = nn.Flatten()
        else:  # pragma: no cover
            raise AssertionError(layer)
        m = m.double()
        with torch.no_grad():
            for name in layer.param_names:
                getattr(m, name).copy_(torch.from_numpy(layer.get_param(name).astype(np.float64)))
        if not layer.trainable:
            for p in m.parameters():
                p.requires_grad_(False)
        mods.append(m)
    return nn.Sequential(*mods)


def _torch_fit_steps(tm, x, y, make_opt, steps, torch, clip=None):
    import torch.nn.functional as F

    params = [p for p in tm.parameters() if p.requires_grad]
    opt = make_opt(params)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(tm(torch.from_numpy(x.astype(np.float64))), torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        if clip is not None:
            clip(params)
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("frozen", [(4,), (0, 1), (7, 9), (1, 4, 7)], ids=lambda f: "frozen-" + "-".join(map(str, f)))
def test_frozen_layers_match_torch_requires_grad_false(frozen):
    """Gradients flow through a frozen layer to the layers below it; only its own parameters stay."""
    torch = pytest.importorskip("torch")
    x, y = data(8, seed=5)
    m = net(seed=11)
    for i in frozen:
        m.layers[i].trainable = False
    tm = _torch_twin(m, torch)
    m.compile(O.SGD(lr=0.05, momentum=0.9))
    losses = [m.train_on_batch(x, y) for _ in range(3)]
    ref = _torch_fit_steps(tm, x, y, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 3, torch)
    close(losses, ref, "losses")
    for layer, tmod in zip(m.layers, tm):
        for name in layer.param_names:
            close(layer.get_param(name), getattr(tmod, name).detach().numpy(), f"{layer.name}.{name}")


def test_summary_shows_trainable_and_frozen_counts():
    m = net()
    text = m.summary(print_fn=None)
    total = m.count_params()
    assert f"Trainable params: {total:,}" in text and "Non-trainable params: 0" in text
    m.layers[0].trainable = False
    m.layers[7].trainable = False
    frozen = m.layers[0].weight.size + m.layers[7].weight.size + m.layers[7].bias.size
    assert frozen == 4 * 2 * 9 + 16 * 6 * 4 * 4 + 16
    text = m.summary(print_fn=None)
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {total - frozen:,}" in text
    assert f"Non-trainable params: {frozen:,}" in text


def test_unknown_layer_attribute_raises():
    conv = L.Conv2D(4, 3)
    with pytest.raises(AttributeError, match=r"Conv2D has no attribute 'trainabel' \(did you mean 'trainable'\?\)"):
        conv.trainabel = False
    relu = L.ReLU()
    with pytest.raises(AttributeError, match="ReLU has no attribute 'alpha'"):
        relu.alpha = 0.1
    m = cc.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 2, 2), seed=0)
    with pytest.raises(AttributeError, match="did you mean 'weight'"):
        m.layers[1].weights = np.zeros((2, 4))
    # the layer's own settings and properties stay settable
    conv.trainable = False
    assert conv.trainable is False
    m.layers[1].weight = np.ones((2, 4))
    assert np.array_equal(m.layers[1].weight, np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="trainable must be True or False"):
        conv.trainable = "no"


def test_trainable_survives_save_load_and_config(tmp_path):
    x, y = data()
    m = net()
    m.layers[4].trainable = False
    assert "trainable=False" in repr(m.layers[4])
    assert L.from_config(m.layers[4]._full_config()).trainable is False
    m.compile(O.Adam(lr=1e-2))
    m.save(tmp_path / "f.cnn")
    m2 = cc.load(tmp_path / "f.cnn")
    assert [layer.trainable for layer in m2.layers] == [i != 4 for i in range(len(m2.layers))]
    w = m2.layers[4].weight
    m2.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    assert np.array_equal(m2.layers[4].weight, w)
    assert not np.array_equal(m2.layers[0].weight, m.layers[0].weight)
    arch = json.loads(m2._m.architecture())
    assert arch["layers"][4]["trainable"] is False and "trainable" not in arch["layers"][0]


# ---------------------------------------------------------------------------
# Optimizers: AdamW, RMSprop, learning_rate=, clipping, the LR as typed
# ---------------------------------------------------------------------------


def test_learning_rate_alias():
    for cls, default in ((O.SGD, 0.01), (O.Adam, 1e-3), (O.AdamW, 1e-3), (O.RMSprop, 0.01)):
        assert cls().lr == default
        assert cls(learning_rate=0.25).lr == 0.25 == cls(lr=0.25).learning_rate
        with pytest.raises(TypeError, match="lr or learning_rate, not both"):
            cls(lr=0.1, learning_rate=0.1)
    assert O.AdamW().weight_decay == 0.01 and O.Adam().weight_decay == 0.0
    o = O.SGD()
    o.learning_rate = 0.5
    assert o.lr == 0.5


def test_lr_shows_as_typed():
    x, y = data()
    m = net()
    opt = O.Adam(lr=0.001, betas=(0.9, 0.999))
    m.compile(opt)
    assert opt.lr == 0.001 and "lr=0.001," in repr(opt)
    h = m.fit(x, y, epochs=1, verbose=0, seed=0)
    assert h.history["lr"] == [0.001]
    opt.lr = 0.0003
    assert m.optimizer.lr == 0.0003 and "lr=0.0003," in repr(m.optimizer)
    cfg = json.loads(m._m.optimizer_config())   # the core's own record (saved in files)
    assert cfg["lr"] == 0.0003 and cfg["betas"] == [0.9, 0.999]


def test_lr_shows_as_typed_after_load(tmp_path):
    m = net()
    m.compile(O.RMSprop(lr=0.001, alpha=0.9, clipnorm=0.1))
    m.save(tmp_path / "r.cnn")
    opt = cc.load(tmp_path / "r.cnn").optimizer
    assert isinstance(opt, O.RMSprop)
    assert repr(opt) == ("RMSprop(lr=0.001, alpha=0.9, eps=1e-08, weight_decay=0.0, momentum=0.0, centered=False, "
                         "clipnorm=0.1)")


def test_optimizer_names_and_configs():
    assert isinstance(O.get("adamw"), O.AdamW) and isinstance(O.get("RMSprop"), O.RMSprop)
    for make in OPTS.values():
        o = make()
        again = O.get(o.get_config())
        assert type(again) is type(o) and again.get_config() == o.get_config()
    with pytest.raises(ValueError, match="unknown optimizer"):
        O.get("adagrad")


@pytest.mark.parametrize("bad, err", [
    (lambda: O.SGD(clipnorm=0), ValueError),
    (lambda: O.Adam(clipvalue=-1.0), ValueError),
    (lambda: O.SGD(clipnorm="1"), TypeError),
    (lambda: O.RMSprop(alpha=1.5), ValueError),
    (lambda: O.RMSprop(momentum=-0.1), ValueError),
    (lambda: O.RMSprop(centered=1), TypeError),
    (lambda: O.AdamW(weight_decay=-0.1), ValueError),
])
def test_bad_optimizer_settings(bad, err):
    with pytest.raises(err):
        bad()


CLIP_CASES = {
    "clipnorm-sgd": (lambda: O.SGD(lr=0.1, momentum=0.9, clipnorm=0.05),
                     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9), (0.05, None)),
    "clipnorm-adamw": (lambda: O.AdamW(lr=1e-2, clipnorm=0.05),
                       lambda t, p: t.optim.AdamW(p, lr=1e-2), (0.05, None)),
    "clipvalue-sgd": (lambda: O.SGD(lr=0.1, clipvalue=0.002),
                      lambda t, p: t.optim.SGD(p, lr=0.1), (None, 0.002)),
    # (Adam-like updates are ill-conditioned where a gradient is near 0: AdamW's parity is tested in
    # test_parity_torch.py with the slack that allows for it.)
    "both-sgd": (lambda: O.SGD(lr=0.5, momentum=0.5, weight_decay=1e-3, clipnorm=0.05, clipvalue=0.001),
                 lambda t, p: t.optim.SGD(p, lr=0.5, momentum=0.5, weight_decay=1e-3), (0.05, 0.001)),
    "clipnorm-rmsprop": (lambda: O.RMSprop(lr=1e-3, momentum=0.5, clipnorm=0.05),
                         lambda t, p: t.optim.RMSprop(p, lr=1e-3, momentum=0.5), (0.05, None)),
}


@pytest.mark.parametrize("case", sorted(CLIP_CASES))
def test_gradient_clipping_matches_torch(case):
    torch = pytest.importorskip("torch")
    make_cc, make_torch, (norm, value) = CLIP_CASES[case]
    x, y = data(8, seed=2)
    m = net(seed=5)
    m.layers[4].trainable = False      # frozen parameters take no part in the norm
    tm = _torch_twin(m, torch)
    seen = []

    def clip(params):
        total = torch.nn.utils.clip_grad_norm_(params, norm) if norm else None
        seen.append(None if total is None else float(total))
        if value:
            seen.append(max(float(p.grad.abs().max()) for p in params))
            torch.nn.utils.clip_grad_value_(params, value)

    m.compile(make_cc())
    losses = [m.train_on_batch(x, y) for _ in range(3)]
    ref = _torch_fit_steps(tm, x, y, lambda p: make_torch(torch, p), 3, torch, clip=clip)
    # the clipping really acted (else this test could not tell clipped from unclipped)
    if norm:
        assert all(s > 2 * norm for s in seen[::2 if value else 1])
    if value:
        assert all(s > 2 * value for s in seen[1::2])
    close(losses, ref, f"{case}: losses")
    for layer, tmod in zip(m.layers, tm):
        for name in layer.param_names:
            close(layer.get_param(name), getattr(tmod, name).detach().numpy(), f"{case}: {layer.name}.{name}")


NEW_OPTS = {
    "adamw": (lambda: O.AdamW(learning_rate=2e-3, betas=(0.85, 0.99), weight_decay=0.1),
              lambda t, p: t.optim.AdamW(p, lr=2e-3, betas=(0.85, 0.99), weight_decay=0.1)),
    "adamw-default": (lambda: O.AdamW(), lambda t, p: t.optim.AdamW(p)),
    "rmsprop": (lambda: O.RMSprop(lr=1e-3), lambda t, p: t.optim.RMSprop(p, lr=1e-3)),
    "rmsprop-momentum": (lambda: O.RMSprop(lr=1e-3, momentum=0.9),
                         lambda t, p: t.optim.RMSprop(p, lr=1e-3, momentum=0.9)),
    "rmsprop-centered-momentum-wd": (
        lambda: O.RMSprop(lr=1e-3, alpha=0.9, momentum=0.8, centered=True, weight_decay=1e-2),
        lambda t, p: t.optim.RMSprop(p, lr=1e-3, alpha=0.9, momentum=0.8, centered=True, weight_decay=1e-2)),
}


@pytest.mark.parametrize("opt", sorted(NEW_OPTS))
def test_adamw_rmsprop_match_torch_on_a_batchnorm_net(opt):
    """Five steps on a net with BatchNorm (test_parity_torch.py covers LeNet-5 and every ISA)."""
    torch = pytest.importorskip("torch")
    make_cc, make_torch = NEW_OPTS[opt]
    x, y = data(8, seed=4)
    m = net(seed=8)
    tm = _torch_twin(m, torch)
    m.compile(make_cc())
    losses = [m.train_on_batch(x, y) for _ in range(5)]
    ref = _torch_fit_steps(tm, x, y, lambda p: make_torch(torch, p), 5, torch)
    close(losses, ref, f"{opt}: losses")
    assert losses[-1] < losses[0]
    for layer, tmod in zip(m.layers, tm):
        for name in layer.param_names:
            close(layer.get_param(name), getattr(tmod, name).detach().numpy(), f"{opt}: {layer.name}.{name}")
    assert m.optimizer.iterations == 5


# ---------------------------------------------------------------------------
# sample_weight, class_weight, probability targets, label_smoothing
# ---------------------------------------------------------------------------


def _flat_net(seed=2):
    return cc.Sequential([L.Flatten(), L.Dense(8), L.ReLU(), L.Dense(4)], input_shape=(1, 3, 3), seed=seed)


def _flat_data(n=10, seed=0):
    r = np.random.default_rng(seed)
    return r.normal(0, 1, (n, 1, 3, 3)).astype(np.float32), r.integers(0, 4, n)


def _torch_loss(torch, out, y, w, smoothing):
    """Keras's weighted mean of torch's per-sample CrossEntropyLoss (reduction='none')."""
    import torch.nn.functional as F

    target = torch.from_numpy(np.asarray(y, dtype=np.int64 if np.ndim(y) == 1 else np.float64))
    per = F.cross_entropy(out, target, reduction="none", label_smoothing=smoothing)
    if w is not None:
        per = per * torch.from_numpy(np.asarray(w, dtype=np.float64))
    return per.sum() / per.shape[0]


def _targets(kind, y, classes=4, seed=0):
    if kind == "labels":
        return y
    if kind == "one-hot":
        return np.eye(classes, dtype=np.float32)[y]
    p = np.random.default_rng(seed).random((len(y), classes)).astype(np.float32)
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weights", ["none", "sample", "class", "both"])
@pytest.mark.parametrize("kind", ["labels", "one-hot", "probs"])
def test_weighted_smoothed_cross_entropy_matches_torch(kind, weights, smoothing):
    torch = pytest.importorskip("torch")
    x, y = _flat_data()
    t = _targets(kind, y)
    sw = np.linspace(0.0, 2.0, len(y)).astype(np.float32) if weights in ("sample", "both") else None
    cw = {0: 3.0, 2: 0.5} if weights in ("class", "both") else None
    w = np.ones(len(y)) if sw is None else sw.astype(np.float64)
    if cw is not None:   # the class of a probability target is its argmax
        w = w * np.array([cw.get(int(c), 1.0) for c in (y if kind == "labels" else np.argmax(t, axis=1))])
    w_ref = None if weights == "none" else w

    m = _flat_net()
    tm = _torch_twin(m, torch)
    m.compile(O.SGD(lr=0.5), label_smoothing=smoothing)
    ev = m.evaluate(x, t, sample_weight=sw, class_weight=cw)["loss"]
    with torch.no_grad():
        ref_ev = float(_torch_loss(torch, tm(torch.from_numpy(x.astype(np.float64))), t, w_ref, smoothing))
    close(ev, ref_ev, "evaluate loss")
    losses = [m.train_on_batch(x, t, sample_weight=sw, class_weight=cw) for _ in range(2)]
    opt = torch.optim.SGD(tm.parameters(), lr=0.5)
    ref = []
    for _ in range(2):
        opt.zero_grad()
        loss = _torch_loss(torch, tm(torch.from_numpy(x.astype(np.float64))), t, w_ref, smoothing)
        loss.backward()
        opt.step()
        ref.append(loss.item())
    close(losses, ref, "training losses")
    for layer, tmod in zip(m.layers, tm):
        for name in layer.param_names:
            close(layer.get_param(name), getattr(tmod, name).detach().numpy(), f"{layer.name}.{name}")


def test_one_hot_targets_train_exactly_as_labels():
    x, y = _flat_data(16)
    a, b = _flat_net(), _flat_net()
    a.compile(O.SGD(lr=0.1), metrics=["accuracy", "top5"])
    b.compile(O.SGD(lr=0.1), metrics=["accuracy", "top5"])
    ha = a.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=3)
    hb = b.fit(x, np.eye(4)[y], epochs=2, batch_size=4, verbose=0, seed=3)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    assert ha.history["accuracy"] == hb.history["accuracy"]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)
    assert a.evaluate(x, y)["accuracy"] == b.evaluate(x, np.eye(4)[y])["accuracy"]


def test_fit_sample_and_class_weight():
    x, y = _flat_data(12)
    # zero weight on a sample == leaving it out (one full batch, no shuffling needed)
    sw = np.ones(12, np.float32)
    sw[[1, 5]] = 0.0
    a, b = _flat_net(), _flat_net()
    a.compile(O.SGD(lr=0.1))
    b.compile(O.SGD(lr=0.1))
    a.fit(x, y, epochs=3, batch_size=12, verbose=0, sample_weight=sw)
    keep = sw > 0
    b.fit(x[keep], y[keep], epochs=3, batch_size=10, verbose=0, sample_weight=np.full(10, 10 / 12, np.float32))
    # a's loss is the sum over 10 samples / 12, b's (10/12) * sum / 10: the same gradient
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    # class_weight is the same as the sample weights it implies
    cw = {0: 2.0, 1: 0.5, 3: 0.0}
    c, d = _flat_net(), _flat_net()
    c.compile(O.Adam(lr=1e-2))
    d.compile(O.Adam(lr=1e-2))
    hc = c.fit(x, y, epochs=2, batch_size=5, verbose=0, seed=4, class_weight=cw, validation_split=0.25)
    implied = np.array([cw.get(int(k), 1.0) for k in y], np.float32)
    hd = d.fit(x, y, epochs=2, batch_size=5, verbose=0, seed=4, sample_weight=implied, validation_split=0.25)
    assert hc.history == hd.history
    # and it changes the result
    e = _flat_net()
    e.compile(O.Adam(lr=1e-2))
    he = e.fit(x, y, epochs=2, batch_size=5, verbose=0, seed=4, validation_split=0.25)
    assert he.history["loss"] != hc.history["loss"]


def test_weighted_validation_data():
    x, y = _flat_data(12)
    m = _flat_net()
    m.compile(O.SGD(lr=0.0))
    sw = np.arange(12, dtype=np.float32) / 6
    h = m.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, sw))
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(x, y, sample_weight=sw)["loss"], rel=1e-6)
    assert h.history["val_loss"][0] != pytest.approx(m.evaluate(x, y)["loss"], rel=1e-3)


@pytest.mark.parametrize("call, err, pattern", [
    (lambda m, x, y: m.fit(x, y, sample_weight=np.ones(3), verbose=0), ValueError, r"sample_weight must have shape"),
    (lambda m, x, y: m.fit(x, y, sample_weight=-np.ones(10), verbose=0), ValueError, "non-negative"),
    (lambda m, x, y: m.evaluate(x, y, sample_weight=np.full(10, np.nan)), ValueError, "finite"),
    (lambda m, x, y: m.fit(x, y, class_weight={7: 1.0}, verbose=0), ValueError, r"labels in \[0, 4\)"),
    (lambda m, x, y: m.fit(x, y, class_weight={0: -1.0}, verbose=0), ValueError, "non-negative"),
    (lambda m, x, y: m.fit(x, y, class_weight=[1.0, 2.0], verbose=0), TypeError, "dict"),
    (lambda m, x, y: m.train_on_batch(x, np.ones((10, 3))), ValueError, r"probability targets of shape \(10, 4\)"),
    (lambda m, x, y: m.train_on_batch(x, np.full((10, 4), np.inf)), ValueError, "NaN or Inf"),
    (lambda m, x, y: m.compile("sgd", label_smoothing=1.5), ValueError, r"label_smoothing must be a number in \[0, 1\]"),
    (lambda m, x, y: m.compile("sgd", loss="mse", label_smoothing=0.1), ValueError, "cross_entropy loss only"),
])
def test_weight_and_target_errors(call, err, pattern):
    x, y = _flat_data()
    m = _flat_net()
    m.compile("sgd")
    with pytest.raises(err, match=pattern):
        call(m, x, y)


def test_mse_sample_weight():
    x, _ = _flat_data()
    t = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    m = _flat_net()
    m.compile("sgd", loss="mse")
    out = m.predict(x)
    sw = np.linspace(0, 1, 10).astype(np.float32)
    want = float(np.sum(sw[:, None] * (out.astype(np.float64) - t) ** 2) / out.size)
    assert m.evaluate(x, t, sample_weight=sw)["loss"] == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="class_weight needs the cross_entropy loss"):
        m.evaluate(x, t, class_weight={0: 1.0})


def test_label_smoothing_is_saved(tmp_path):
    x, y = _flat_data()
    m = _flat_net()
    m.compile("adam", label_smoothing=0.1)
    m.save(tmp_path / "s.cnn")
    m2 = cc.load(tmp_path / "s.cnn")
    assert m2.label_smoothing == 0.1
    assert m2.evaluate(x, y) == m.evaluate(x, y)
