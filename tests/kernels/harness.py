"""Helpers shared by the kernel tests: building small models, reading the
gradients a training step computes, losses for finite differences, and the
float64 reference model for a cpucnn model.

Gradients: there is no backward binding, so a training step with plain SGD
(momentum 0, weight decay 0) and a power-of-two learning rate ``lr`` is run
and the gradient read back as ``(w_before - w_after) / lr``. With lr = 1024
the update dominates the weight, so this loses only ~1 ulp of the gradient.
Every helper restores the parameters (and BatchNorm's running statistics)
and the step counter it changed.
"""

from __future__ import annotations

import threading
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

import cpucnn as cc
import reference as ref

GRAD_LR = 1024.0


def seeded_rng(*key) -> np.random.Generator:
    """A generator seeded from the test parameters, so every ISA / thread
    count of one case sees the same data."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def build(layers, input_shape, loss: Optional[str] = "mse", seed: int = 0) -> cc.Sequential:
    model = cc.Sequential(list(layers), input_shape=tuple(input_shape), seed=seed)
    if loss is not None:
        model.compile(optimizer=cc.optimizers.SGD(lr=0.0), loss=loss)
    return model


def slots(model) -> List[Tuple[int, str, bool]]:
    """(layer index, parameter name, trainable) for every parameter, in order."""
    out = []
    for i in range(len(model.layers)):
        for name, _, trainable in model._m.layer_info(i)["params"]:
            out.append((i, name, bool(trainable)))
    return out


def get_params(model) -> Dict[Tuple[int, str], np.ndarray]:
    return {(i, n): model._m.get_param(i, n) for i, n, _ in slots(model)}


def set_params(model, params: Dict[Tuple[int, str], np.ndarray]) -> None:
    for (i, n), v in params.items():
        model._m.set_param(i, n, np.ascontiguousarray(v, dtype=np.float32))


def randomize(model, rng, scale: float = 1.0) -> None:
    """Random weights ~ U(-1, 1) / sqrt(fan_in); BatchNorm gets gamma around 1,
    random beta and plausible running statistics."""
    for layer in model.layers:
        names = layer.param_names
        if not names:
            continue
        if layer._type == "BatchNorm2D":
            c = layer.weight.shape[0]
            layer.weight = rng.uniform(0.5, 1.5, c)
            layer.bias = rng.uniform(-0.5, 0.5, c)
            layer.running_mean = rng.uniform(-0.5, 0.5, c)
            layer.running_var = rng.uniform(0.5, 2.0, c)
            continue
        w = layer.weight
        fan_in = int(np.prod(w.shape[1:]))
        layer.weight = rng.uniform(-1.0, 1.0, w.shape) * scale / np.sqrt(fan_in)
        if "bias" in names:
            layer.bias = rng.uniform(-0.5, 0.5, w.shape[0]) * scale


def analytic_grads(model, x, y, step: int = 0) -> Dict[Tuple[int, str], np.ndarray]:
    """The gradient of the mean loss w.r.t. every trainable parameter, as the
    C++ training step computes it (float64 copies)."""
    m = model._m
    before = get_params(model)
    saved_lr, saved_step = m.lr, m.step_count
    m.lr = GRAD_LR
    m.step_count = step
    try:
        m.train_step(x, y)
        after = get_params(model)
    finally:
        set_params(model, before)
        m.lr = saved_lr
        m.step_count = saved_step
    return {k: (before[k].astype(np.float64) - after[k].astype(np.float64)) / GRAD_LR
            for i, n, t in slots(model) if t for k in [(i, n)]}


def eval_loss(model, x, y) -> float:
    """Mean loss in inference mode."""
    loss_sum, _, _, count = model._m.evaluate(x, y, 1 << 20)
    return loss_sum / count


def train_loss(model, x, y, step: int = 0) -> float:
    """Mean loss of a training-mode forward (BatchNorm batch statistics, the
    dropout mask of `step`), leaving the parameters as they were."""
    m = model._m
    saved = {k: v for k, v in get_params(model).items() if k[1].startswith("running_")}
    saved_lr, saved_step = m.lr, m.step_count
    m.lr = 0.0
    m.step_count = step
    try:
        loss, _ = m.train_step(x, y)
    finally:
        set_params(model, saved)
        m.lr = saved_lr
        m.step_count = saved_step
    return float(loss)


def numeric_grad(model, key, index, loss_fn, h: float) -> Tuple[float, float]:
    """Central difference of loss_fn() w.r.t. parameter `key` element `index`,
    and the gap between the one-sided differences (large near a kink, where
    the central difference means nothing)."""
    i, name = key
    w = model._m.get_param(i, name)
    base = loss_fn()
    vals = []
    for sign in (+1, -1):
        wp = w.copy()
        wp[index] += sign * h
        model._m.set_param(i, name, wp)
        actual_h = float(np.float64(wp[index]) - np.float64(w[index]))  # the step float32 really took
        vals.append((loss_fn(), actual_h))
    model._m.set_param(i, name, w)
    (lp, hp), (lm, hm) = vals
    central = (lp - lm) / (hp - hm)
    gap = abs((lp - base) / hp - (base - lm) / (-hm))
    return central, gap


def check_fd(model, grads, loss_fn, rng, what: str, h: float = 1e-2, per_param: int = 6, rtol: float = 1e-2,
             atol_frac: float = 2e-3, kinks: bool = False, max_kinks: float = 0.34) -> None:
    """Compares the analytic gradient with central differences at `per_param`
    random elements of every trainable parameter (all when fewer).
    With `kinks` (a non-smooth model: ReLU, max pooling), elements whose
    one-sided differences disagree (a kink within h) are skipped, but at most
    a fraction `max_kinks` of them."""
    failures, skipped, checked = [], 0, 0
    overall = max(float(np.abs(g).max()) for g in grads.values())
    for key, g in grads.items():
        flat = np.arange(g.size)
        pick = flat if g.size <= per_param else rng.choice(flat, per_param, replace=False)
        gmax = max(float(np.abs(g).max()), 0.1 * overall)  # rounding noise scales with the loss
        for f in pick:
            idx = np.unravel_index(int(f), g.shape)
            num, gap = numeric_grad(model, key, idx, loss_fn, h)
            ana = float(g[idx])
            tol = rtol * abs(ana) + atol_frac * max(gmax, 1e-3)
            checked += 1
            if kinks and gap > 4 * tol + 1e-3 * abs(ana):  # a kink inside [w - h, w + h]
                skipped += 1
                continue
            if abs(num - ana) > tol:
                failures.append(f"{key}{tuple(int(v) for v in idx)}: numeric {num:.6g} analytic {ana:.6g}")
    assert not failures, f"{what}: finite differences disagree:\n  " + "\n  ".join(failures)
    assert skipped <= max_kinks * checked, f"{what}: {skipped} of {checked} elements sit on kinks; pick other data"


def ref_model(model) -> ref.RefModel:
    configs = [layer.get_config() for layer in model.layers]
    params = [{n: model._m.get_param(i, n) for n, _, _ in model._m.layer_info(i)["params"]}
              for i in range(len(model.layers))]
    return ref.RefModel(configs, params)


def ref_loss_grads(model, x, y, loss: str, training: bool = True, dropout_masks=None):
    """(loss, {key: grad}) of the float64 reference for the model's current parameters."""
    r = ref_model(model)
    out = r.forward(x, training=training, dropout_masks=dropout_masks)
    if loss == "mse":
        value, d = ref.mse(out, y)
    else:
        value, d = ref.cross_entropy(out, y)
    g = r.backward(d)
    return value, {(i, n): g[i][n] for i, n, t in slots(model) if t}


def cancelled_grad_scales(model, x, y, loss: str, dropout_masks=None) -> Dict[Tuple[int, str], np.ndarray]:
    """For the parameters whose gradient cancels in exact arithmetic, the
    scale of its float32 rounding: {key: elementwise sum of the magnitudes of
    the terms the gradient adds up}.

    These are the parameters of a Conv2D feeding a training-mode BatchNorm2D:
    BatchNorm subtracts the batch mean, so the conv bias's gradient (the sum of
    dL/dz over the batch and pixels, z the conv output) is exactly zero, and it
    normalises each channel's scale, so the weight gradient has no component
    along the channel's weights (up to eps): all of it with one tap per output
    channel. What float32 makes of such a sum is rounding of its terms, which
    the gradient's own size (~0) and the model's largest gradient say nothing
    about: the scale is the same backward pass over magnitudes,
    conv2d_backward(|x|, |w|, |dz|) (db = sum |dz|, dw = sum |dz| |x|), from the
    float64 reference."""
    r = ref_model(model)
    out = r.forward(x, training=True, dropout_masks=dropout_masks)
    g = r.backward(ref.mse(out, y)[1] if loss == "mse" else ref.cross_entropy(out, y)[1])
    scales = {}
    for i, cfg in enumerate(r.configs[:-1]):
        if cfg["type"] != "Conv2D" or r.configs[i + 1]["type"] != "BatchNorm2D":
            continue
        p = r.params[i]
        _, dw, db = ref.conv2d_backward(np.abs(r.inputs[i]), np.abs(p["weight"]), np.abs(g[i + 1]["x"]),
                                        cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
        scales[(i, "weight")] = dw
        if "bias" in p:
            scales[(i, "bias")] = db
    return scales


def assert_grads_close(ana, expected, what: str, rtol: float = 1e-4, atol_frac: float = 1e-5,
                       cancelled: Optional[Dict[Tuple[int, str], np.ndarray]] = None,
                       cancelled_frac: float = 1e-5) -> None:
    """Every gradient within rtol of the reference, plus atol_frac of that
    parameter's own largest gradient (float32 sums of many terms): a
    parameter is judged by its own scale, never by the model's largest
    gradient, so a small error in a small gradient shows.

    `cancelled` ({key: scale}, from cancelled_grad_scales) names the
    gradients that cancel in exact arithmetic (a conv bias right before
    BatchNorm: zero); each element may also be off by cancelled_frac of its
    scale (float32 rounds each term by ~6e-8 of it; seen: <= 2e-7)."""
    assert set(ana) == set(expected), f"{what}: parameters {sorted(ana)} vs reference {sorted(expected)}"
    cancelled = cancelled or {}
    assert set(cancelled) <= set(expected), f"{what}: cancelled {sorted(cancelled)} are not parameters"
    for key in expected:
        a, e = ana[key], expected[key]
        assert a.shape == e.shape, f"{what} {key}: shape {a.shape} vs reference {e.shape}"
        scale = float(np.abs(e).max()) if e.size else 0.0
        atol = np.full(e.shape, atol_frac * scale)
        if key in cancelled:
            atol = np.maximum(atol, cancelled_frac * cancelled[key])
        err = np.abs(np.asarray(a, np.float64) - e)
        bad = ~(err <= rtol * np.abs(e) + atol)  # NaN fails
        if bad.any():
            j = np.unravel_index(int(np.argmax(np.where(bad, err - atol - rtol * np.abs(e), -np.inf))), e.shape)
            raise AssertionError(
                f"{what}: gradient of {key} {e.shape}: {int(bad.sum())} of {e.size} elements off; worst at "
                f"{tuple(int(v) for v in j)}: {float(a[j]):.9g} vs reference {float(e[j]):.9g} (allowed "
                f"{rtol:g} * |ref| + {float(atol[j]):.3g}; the parameter's largest gradient {scale:.3g}"
                + (", cancelling" if key in cancelled else "") + ")")


def assert_close(actual, expected, what: str, rtol: float = 1e-4, atol_frac: float = 1e-5) -> None:
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, reference {expected.shape}"
    atol = atol_frac * max(float(np.abs(expected).max()) if expected.size else 0.0, 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def probe_outputs(layers: Sequence, input_shape, x, seed: int = 0, params=None, step: int = 0) -> np.ndarray:
    """The training-mode output of `layers` for batch x, read through a probe:
    the layers are followed by Flatten and Dense(N, no bias) with zero
    weights, trained one step on mse targets -N*N/2 * I, so that dL/dout is
    the identity and the Dense weight gradient's row m is sample m's
    flattened training-mode output. N must be a power of two (exact scale).
    `params` ({(i, name): value}) sets the probed layers' parameters."""
    n = x.shape[0]
    assert n & (n - 1) == 0, "probe batch must be a power of two"
    model = build(list(layers) + [cc.layers.Flatten(), cc.layers.Dense(n, use_bias=False)], input_shape, "mse", seed)
    if params:
        set_params(model, params)
    last = len(model.layers) - 1
    model._m.set_param(last, "weight", np.zeros_like(model._m.get_param(last, "weight")))
    target = (-(n * n) / 2.0 * np.eye(n)).astype(np.float32)
    model._m.lr = 1.0
    model._m.step_count = step
    model._m.train_step(np.ascontiguousarray(x, dtype=np.float32), target)
    return -model._m.get_param(last, "weight").astype(np.float64)


def conv_case(tag: str, shape):
    """Data for one conv layer case, shape = (n, cin, cout, h, w, (kh, kw),
    stride, padding, dilation): x, weights (scaled to unit output variance),
    bias, a random dy and the float64 reference output."""
    n, cin, cout, h, w, ks, st, pad, dil = shape
    rng = seeded_rng(tag, shape)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = (rng.standard_normal((cout, cin) + ks) / np.sqrt(cin * ks[0] * ks[1])).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y = ref.conv2d_forward(x, wt, b, stride=st, padding=pad, dilation=dil)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return x, wt, b, dy, y


def conv_case_id(shape) -> str:
    return "x".join(map(str, shape[:5])) + f"-k{shape[5]}-s{shape[6]}-d{shape[8]}"


def listed_kernel(op: str) -> Optional[str]:
    """What cpu_info lists for `op` on the current ISA (None: the ISA has no such kernel)."""
    return dict(cc.cpu_info()["kernels"]).get(op)


def skip_unless_kernel(isa: str, op: str, would: str = "") -> None:
    """Skips, with the reason, a test of kernel `op` on an ISA that has none:
    there the test `would` (by default: check the GEMM path instead of `op`)."""
    if listed_kernel(op) is None:
        pytest.skip(f"{op} has no {isa} kernel: the test would {would or f'check the GEMM path, not {op}'}")


def skip_scalar_vs_scalar(isa: str) -> None:
    """Skips, with the reason, a test comparing the current ISA with scalar when it is scalar."""
    if isa == "scalar":
        pytest.skip("scalar vs scalar: the test would compare the scalar path with itself")


def assert_avx512_only_kernel(isa: str, op: str) -> None:
    """cpu_info lists `op` as an AVX-512 kernel on that ISA and not at all on the others."""
    impl = listed_kernel(op)
    if isa == "avx512":
        assert impl is not None and impl.startswith("avx512"), f"{op}: {impl!r}"
    else:
        assert impl is None, f"{op} listed on {isa}: {impl!r}"


def assert_kernel_on_isas(isa: str, op: str, isas: Sequence[str]) -> None:
    """cpu_info lists `op` on the ISAs `isas` (as a kernel of that ISA) and not at all on the others."""
    impl = listed_kernel(op)
    if isa in isas:
        assert impl is not None and impl.startswith(isa), f"{op} on {isa}: {impl!r}"
    else:
        assert impl is None, f"{op} listed on {isa}: {impl!r}"


def check_conv_layer(isa: str, tag: str, shape) -> None:
    """Every pass of one conv layer case (see conv_case) through the conv
    operator against the float64 reference: forward with bias, with bias and
    ReLU, without bias with ReLU; dx, dw and db; dw and db without dx; dx
    without dw and db (a frozen layer)."""
    x, wt, b, dy, want_y = conv_case(tag, shape)
    _, _, _, _, _, _, st, pad, dil = shape
    kw = dict(stride=st, padding=pad, dilation=dil)
    K = cc._core.kernels
    assert_close(K.conv2d_forward(x, wt, b, **kw), want_y, f"{isa} forward {shape}")
    assert_close(K.conv2d_forward(x, wt, b, relu=True, **kw), np.maximum(want_y, 0), f"{isa} forward+relu {shape}")
    assert_close(K.conv2d_forward(x, wt, None, relu=True, **kw), np.maximum(want_y - b[:, None, None], 0),
                 f"{isa} forward+relu without bias {shape}")
    want_dx, want_dw, want_db = ref.conv2d_backward(x, wt, dy, **kw)
    dx, dw, db = K.conv2d_backward(x, wt, dy, **kw)
    assert_close(dx, want_dx, f"{isa} dx {shape}")
    assert_close(dw, want_dw, f"{isa} dw {shape}")
    assert_close(db, want_db, f"{isa} db {shape}")
    none, dw2, db2 = K.conv2d_backward(x, wt, dy, need_dx=False, **kw)
    assert none is None
    assert_close(dw2, want_dw, f"{isa} dw without dx {shape}")
    assert_close(db2, want_db, f"{isa} db without dx {shape}")
    dx3, none_w, none_b = K.conv2d_backward(x, wt, dy, need_dw=False, **kw)
    assert none_w is None and none_b is None
    assert_close(dx3, want_dx, f"{isa} dx without dw {shape}")


def predict_concurrently(model, xs, reps: int) -> List[List[np.ndarray]]:
    """model.predict(xs[i]) `reps` times on thread i, all threads released at once (a cache the
    model fills on first use is filled by whichever comes first); the outputs per thread."""
    got: List[List[np.ndarray]] = [[] for _ in xs]
    start = threading.Barrier(len(xs))

    def run(i):
        start.wait()
        for _ in range(reps):
            got[i].append(model.predict(xs[i]))

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return got
