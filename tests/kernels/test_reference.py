"""The NumPy reference itself against PyTorch (float64), so that the kernel
tests measure cpucnn against PyTorch's semantics: "same" padding, pooling
padding and ties, BatchNorm statistics, losses. Skipped without torch."""

import warnings

import numpy as np
import pytest

import reference as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional


def t(a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


@pytest.mark.parametrize("case", [
    (3, 6, 3, 1, 1, 1, 1, (7, 9)),
    (4, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, (13, 7)),
    (5, 5, 3, 2, "same", 1, 5, (13, 13)),
    (2, 4, 4, 1, "same", 1, 1, (7, 8)),
    (3, 3, 3, 1, "valid", 2, 1, (9, 9)),
    (2, 3, 4, 3, "same", 1, 1, (13, 13)),
], ids=str)
def test_conv2d_reference(case):
    cin, cout, k, s, p, d, g, (h, w) = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, cin, h, w))
    wt = rng.standard_normal((cout, cin // g) + ref.pair(k))
    b = rng.standard_normal(cout)
    y = ref.conv2d_forward(x, wt, b, s, p, d, g)
    pt, pb, pl, pr = ref.conv2d_padding(h, w, k, s, p, d)
    xt, wtt, bt = t(x, True), t(wt, True), t(b, True)
    yt = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wtt, bt, stride=s, dilation=d, groups=g)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=str(case))
    if p == "same" and s == 1:  # PyTorch's own "same" (stride 1 only) agrees
        with warnings.catch_warnings():  # even kernels: "may require a zero-padded copy"
            warnings.simplefilter("ignore", UserWarning)
            ys = F.conv2d(xt, wtt, bt, padding="same", dilation=d, groups=g)
        np.testing.assert_allclose(y, ys.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=str(case))
    dy = rng.standard_normal(y.shape)
    yt.backward(t(dy))
    dx, dw, db = ref.conv2d_backward(x, wt, dy, s, p, d, g)
    for mine, theirs, name in [(dx, xt.grad, "dx"), (dw, wtt.grad, "dw"), (db, bt.grad, "db")]:
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-10, err_msg=f"{name} {case}")


@pytest.mark.parametrize("case", [(2, None, 0, 7, 7), (3, 2, 1, 13, 7), ((3, 2), (1, 2), (1, 1), 5, 6),
                                  (2, 1, 1, 4, 4)], ids=str)
def test_pool2d_reference(case):
    k, s, p, h, w = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, h, w))
    x[x > 1.0] = 1.0  # ties
    dy = None
    for kind in ("max", "avg"):
        xt = t(x, True)
        if kind == "max":
            yt = F.max_pool2d(xt, k, s, p)
            y = ref.maxpool2d_forward(x, k, s, p)[0]
        else:
            yt = F.avg_pool2d(xt, k, s, p)  # count_include_pad=True
            y = ref.avgpool2d_forward(x, k, s, p)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, err_msg=f"{kind} {case}")
        dy = rng.standard_normal(y.shape) if dy is None else dy
        yt.backward(t(dy))
        dx = (ref.maxpool2d_backward if kind == "max" else ref.avgpool2d_backward)(x, dy, k, s, p)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{kind} dx {case}")


def test_batchnorm2d_reference():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 5, 6)) * 2 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    yt = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=0.1, eps=1e-5)
    np.testing.assert_allclose(ref.batchnorm2d_forward(x, gamma, beta), yt.detach().numpy(), rtol=1e-10)
    dy = rng.standard_normal(x.shape)
    yt.backward(t(dy))
    dx, dg, db = ref.batchnorm2d_backward(x, gamma, dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dg, gt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10)
    m, v = ref.batchnorm2d_running_update(x, np.zeros(3), np.ones(3), 0.1)
    np.testing.assert_allclose(m, rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(v, rv.numpy(), rtol=1e-12)
    y_inf = F.batch_norm(t(x), rm, rv, t(gamma), t(beta), training=False, eps=1e-5)
    np.testing.assert_allclose(ref.batchnorm2d_forward(x, gamma, beta, 1e-5, False, m, v), y_inf.numpy(), rtol=1e-10)


def test_losses_softmax_activations_reference():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 4)) * 3
    labels = rng.integers(0, 4, 5)
    zt = t(z, True)
    loss = F.cross_entropy(zt, torch.tensor(labels))
    loss.backward()
    value, d = ref.cross_entropy(z, labels)
    np.testing.assert_allclose(value, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(d, zt.grad.numpy(), rtol=1e-10, atol=1e-14)
    target = rng.standard_normal((5, 4))
    zt = t(z, True)
    loss = F.mse_loss(zt, t(target))
    loss.backward()
    value, d = ref.mse(z, target)
    np.testing.assert_allclose(value, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(d, zt.grad.numpy(), rtol=1e-12)
    x = rng.standard_normal((3, 4, 2, 2))
    xt = t(x, True)
    yt = torch.softmax(xt, 1)
    np.testing.assert_allclose(ref.softmax_forward(x), yt.detach().numpy(), rtol=1e-12)
    dy = rng.standard_normal(x.shape)
    yt.backward(t(dy))
    np.testing.assert_allclose(ref.softmax_backward(x, dy), xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    for kind, fn in [("ReLU", F.relu), ("LeakyReLU", lambda a: F.leaky_relu(a, 0.2)), ("Sigmoid", torch.sigmoid),
                     ("Tanh", torch.tanh)]:
        xt = t(x, True)
        yt = fn(xt)
        np.testing.assert_allclose(ref.activation_forward(kind, x, 0.2), yt.detach().numpy(), rtol=1e-12)
        yt.backward(t(dy))
        np.testing.assert_allclose(ref.activation_backward(kind, x, dy, 0.2), xt.grad.numpy(), rtol=1e-12,
                                   err_msg=kind)
