"""Float64 NumPy reference implementations of every cpucnn layer and loss.

Plain, readable and slow enough only to be obviously right: the kernels are
tested against these. Layouts are the public ones (NCHW, PyTorch's weight
layouts). Forward functions return the output (and what backward needs);
backward functions take the upstream gradient ``dy`` and return ``dx`` (and
the parameter gradients).

``RefModel`` chains them for a list of layer configs (``layer.get_config()``)
and parameters, so a whole training step can be checked layer by layer.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "pair",
    "conv2d_padding",
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "global_avgpool2d_forward",
    "global_avgpool2d_backward",
    "dense_forward",
    "dense_backward",
    "activation_forward",
    "activation_backward",
    "softmax_forward",
    "softmax_backward",
    "batchnorm2d_forward",
    "batchnorm2d_backward",
    "batchnorm2d_running_update",
    "cross_entropy",
    "mse",
    "RefModel",
]


def pair(v) -> Tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


# --------------------------------------------------------------------------
# Conv2D
# --------------------------------------------------------------------------


def conv2d_padding(h: int, w: int, kernel_size, stride=1, padding=0, dilation=1) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) padding. "same" is TensorFlow's rule: output
    ceil(in / stride), total padding split with the odd pixel at the bottom/right."""
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        ho, wo = -(-h // sh), -(-w // sw)
        th = max(0, (ho - 1) * sh + ekh - h)
        tw = max(0, (wo - 1) * sw + ekw - w)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = pair(padding)
    return ph, ph, pw, pw


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    _, _, h, w = x_shape
    _, _, kh, kw = w_shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pt, pb, pl, pr = conv2d_padding(h, w, (kh, kw), stride, padding, dilation)
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return (kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, ho, wo)


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """y[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * xpad[n, g*cg + c, oh*sh + i*dh, ow*sw + j*dw]."""
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    n, cin, h, w = x.shape
    cout, cg = weight.shape[:2]
    assert cin == cg * groups and cout % groups == 0, (x.shape, weight.shape, groups)
    kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, ho, wo = _conv_geometry(x.shape, weight.shape, stride, padding, dilation)
    assert ho > 0 and wo > 0, "kernel larger than the padded input"
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    mg = cout // groups
    xg = xp.reshape(n, groups, cg, xp.shape[2], xp.shape[3])
    wg = weight.reshape(groups, mg, cg, kh, kw)
    y = np.zeros((n, groups, mg, ho, wo))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            patch = xg[:, :, :, r0:r0 + (ho - 1) * sh + 1:sh, c0:c0 + (wo - 1) * sw + 1:sw]  # n g c ho wo
            y += np.einsum("gfc,ngchw->ngfhw", wg[:, :, :, i, j], patch)
    y = y.reshape(n, cout, ho, wo)
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y


def conv2d_backward(x, weight, dy, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dweight, dbias) of conv2d_forward for upstream gradient dy."""
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    dy = np.asarray(dy, np.float64)
    n, cin, h, w = x.shape
    cout, cg = weight.shape[:2]
    kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, ho, wo = _conv_geometry(x.shape, weight.shape, stride, padding, dilation)
    assert dy.shape == (n, cout, ho, wo), (dy.shape, (n, cout, ho, wo))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    mg = cout // groups
    xg = xp.reshape(n, groups, cg, xp.shape[2], xp.shape[3])
    wg = weight.reshape(groups, mg, cg, kh, kw)
    dyg = dy.reshape(n, groups, mg, ho, wo)
    dxg = np.zeros_like(xg)
    dwg = np.zeros_like(wg)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            rs = slice(r0, r0 + (ho - 1) * sh + 1, sh)
            cs = slice(c0, c0 + (wo - 1) * sw + 1, sw)
            dwg[:, :, :, i, j] = np.einsum("ngfhw,ngchw->gfc", dyg, xg[:, :, :, rs, cs])
            dxg[:, :, :, rs, cs] += np.einsum("gfc,ngfhw->ngchw", wg[:, :, :, i, j], dyg)
    dxp = dxg.reshape(xp.shape)
    dx = dxp[:, :, pt:pt + h, pl:pl + w]
    return dx, dwg.reshape(weight.shape), dy.sum(axis=(0, 2, 3))


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------


def _pool_geometry(h, w, pool_size, stride, padding):
    kh, kw = pair(pool_size)
    sh, sw = (kh, kw) if stride is None else pair(stride)
    ph, pw = pair(padding)
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    return kh, kw, sh, sw, ph, pw, ho, wo


def maxpool2d_forward(x, pool_size, stride=None, padding=0):
    """(y, argmax): padding never wins (it is -inf); ties go to the first
    element in row-major window order, as PyTorch. argmax indexes the
    unpadded (H*W) plane."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, ho, wo = _pool_geometry(h, w, pool_size, stride, padding)
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    # windows: (n, c, ho, wo, kh*kw) in row-major window order
    wins = np.empty((n, c, ho, wo, kh * kw))
    for i in range(kh):
        for j in range(kw):
            wins[..., i * kw + j] = xp[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
    k = wins.argmax(axis=-1)  # first maximum
    y = np.take_along_axis(wins, k[..., None], axis=-1)[..., 0]
    oh = np.arange(ho)[:, None]
    ow = np.arange(wo)[None, :]
    ih = oh * sh - ph + k // kw
    iw = ow * sw - pw + k % kw
    return y, ih * w + iw


def maxpool2d_backward(x, dy, pool_size, stride=None, padding=0):
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    _, arg = maxpool2d_forward(x, pool_size, stride, padding)
    dx = np.zeros((n * c, h * w))
    flat_arg = arg.reshape(n * c, -1)
    flat_dy = np.asarray(dy, np.float64).reshape(n * c, -1)
    for r in range(n * c):
        np.add.at(dx[r], flat_arg[r], flat_dy[r])
    return dx.reshape(x.shape)


def avgpool2d_forward(x, pool_size, stride=None, padding=0):
    """Padding counts in the divisor (PyTorch's count_include_pad=True)."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, ho, wo = _pool_geometry(h, w, pool_size, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, c, ho, wo))
    for i in range(kh):
        for j in range(kw):
            y += xp[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
    return y / (kh * kw)


def avgpool2d_backward(x, dy, pool_size, stride=None, padding=0):
    n, c, h, w = np.shape(x)
    kh, kw, sh, sw, ph, pw, ho, wo = _pool_geometry(h, w, pool_size, stride, padding)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    g = np.asarray(dy, np.float64) / (kh * kw)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw] += g
    return dxp[:, :, ph:ph + h, pw:pw + w]


def global_avgpool2d_forward(x):
    return np.asarray(x, np.float64).mean(axis=(2, 3))


def global_avgpool2d_backward(x, dy):
    n, c, h, w = np.shape(x)
    return np.broadcast_to(np.asarray(dy, np.float64)[:, :, None, None] / (h * w), (n, c, h, w)).copy()


# --------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------


def dense_forward(x, weight, bias=None):
    y = np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y


def dense_backward(x, weight, dy):
    """(dx, dweight, dbias)."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    return dy @ np.asarray(weight, np.float64), dy.T @ x, dy.sum(axis=0)


# --------------------------------------------------------------------------
# Activations and softmax
# --------------------------------------------------------------------------


def activation_forward(kind: str, x, alpha: float = 0.01):
    x = np.asarray(x, np.float64)
    if kind == "ReLU":
        return np.maximum(x, 0.0)
    if kind == "LeakyReLU":
        return np.where(x > 0, x, alpha * x)
    if kind == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if kind == "Tanh":
        return np.tanh(x)
    raise ValueError(kind)


def activation_backward(kind: str, x, dy, alpha: float = 0.01):
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    if kind == "ReLU":
        return np.where(x > 0, dy, 0.0)
    if kind == "LeakyReLU":
        return np.where(x > 0, dy, alpha * dy)
    if kind == "Sigmoid":
        s = 1.0 / (1.0 + np.exp(-x))
        return dy * s * (1.0 - s)
    if kind == "Tanh":
        return dy * (1.0 - np.tanh(x) ** 2)
    raise ValueError(kind)


def softmax_forward(x):
    """Softmax over axis 1 (features of (N, F), channels at each pixel of (N, C, H, W))."""
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(x, dy):
    y = softmax_forward(x)
    dy = np.asarray(dy, np.float64)
    return y * (dy - (dy * y).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------
# BatchNorm2D (torch.nn.BatchNorm2d semantics)
# --------------------------------------------------------------------------


def batchnorm2d_forward(x, gamma, beta, eps=1e-5, training=True, running_mean=None, running_var=None):
    """Training: batch mean and biased variance per channel. Inference: the
    running statistics. Returns y."""
    x = np.asarray(x, np.float64)
    if training:
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
    else:
        mean = np.asarray(running_mean, np.float64)
        var = np.asarray(running_var, np.float64)
    xhat = (x - mean[None, :, None, None]) / np.sqrt(var + eps)[None, :, None, None]
    return xhat * np.asarray(gamma, np.float64)[None, :, None, None] + np.asarray(beta, np.float64)[None, :, None, None]


def batchnorm2d_backward(x, gamma, dy, eps=1e-5):
    """Training-mode backward: (dx, dgamma, dbeta)."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=(0, 2, 3))[None, :, None, None]
    invstd = 1.0 / np.sqrt(x.var(axis=(0, 2, 3)) + eps)[None, :, None, None]
    xhat = (x - mean) * invstd
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))
    dbeta = dy.sum(axis=(0, 2, 3))
    g = np.asarray(gamma, np.float64)[None, :, None, None]
    dx = g * invstd / m * (m * dy - dbeta[None, :, None, None] - xhat * dgamma[None, :, None, None])
    return dx, dgamma, dbeta


def batchnorm2d_running_update(x, running_mean, running_var, momentum=0.1):
    """PyTorch: new = (1 - momentum) * old + momentum * batch stat (unbiased variance)."""
    x = np.asarray(x, np.float64)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=(0, 2, 3))
    var_unbiased = x.var(axis=(0, 2, 3)) * m / (m - 1)
    return ((1 - momentum) * np.asarray(running_mean, np.float64) + momentum * mean,
            (1 - momentum) * np.asarray(running_var, np.float64) + momentum * var_unbiased)


# --------------------------------------------------------------------------
# Losses (mean over the batch, as PyTorch)
# --------------------------------------------------------------------------


def cross_entropy(logits, labels):
    """(mean loss, dlogits) of softmax cross-entropy from logits (N, K)."""
    z = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    n = z.shape[0]
    zmax = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)) + zmax
    loss = float((lse[:, 0] - z[np.arange(n), labels]).mean())
    d = np.exp(z - lse)
    d[np.arange(n), labels] -= 1.0
    return loss, d / n


def mse(out, target):
    """(mean loss over all N*K elements, dout)."""
    d = np.asarray(out, np.float64) - np.asarray(target, np.float64)
    return float((d * d).mean()), 2.0 * d / d.size


# --------------------------------------------------------------------------
# A reference Sequential
# --------------------------------------------------------------------------


class RefModel:
    """Float64 forward/backward of a layer stack.

    configs: the layers' ``get_config()`` dicts; params: per layer a dict
    name -> array (weight, bias, running_mean, running_var). Dropout needs
    its keep-mask (a 0/1 array of the layer's batch output shape) in
    ``dropout_masks[layer_index]`` for training mode.
    """

    def __init__(self, configs: Sequence[dict], params: Sequence[Dict[str, np.ndarray]]) -> None:
        self.configs = [dict(c) for c in configs]
        self.params = [{k: np.asarray(v, np.float64) for k, v in p.items()} for p in params]
        self.inputs: List[np.ndarray] = []

    def forward(self, x, training: bool = False, dropout_masks: Optional[Dict[int, np.ndarray]] = None):
        a = np.asarray(x, np.float64)
        self.inputs = []
        self.training = training
        self.dropout_masks = dropout_masks or {}
        for i, (cfg, p) in enumerate(zip(self.configs, self.params)):
            self.inputs.append(a)
            a = self._layer_forward(i, cfg, p, a)
        return a

    def _layer_forward(self, i, cfg, p, a):
        t = cfg["type"]
        if t == "Conv2D":
            return conv2d_forward(a, p["weight"], p.get("bias"), cfg["stride"], cfg["padding"], cfg["dilation"],
                                  cfg["groups"])
        if t == "Dense":
            return dense_forward(a, p["weight"], p.get("bias"))
        if t == "MaxPool2D":
            return maxpool2d_forward(a, cfg["pool_size"], cfg["stride"], cfg["padding"])[0]
        if t == "AvgPool2D":
            return avgpool2d_forward(a, cfg["pool_size"], cfg["stride"], cfg["padding"])
        if t == "GlobalAvgPool2D":
            return global_avgpool2d_forward(a)
        if t == "Flatten":
            return a.reshape(a.shape[0], -1)
        if t in ("ReLU", "Sigmoid", "Tanh"):
            return activation_forward(t, a)
        if t == "LeakyReLU":
            return activation_forward(t, a, cfg["alpha"])
        if t == "Softmax":
            return softmax_forward(a)
        if t == "Dropout":
            if not self.training or cfg["rate"] == 0:
                return a
            return a * self.dropout_masks[i] / (1.0 - cfg["rate"])
        if t == "BatchNorm2D":
            return batchnorm2d_forward(a, p["weight"], p["bias"], cfg["eps"], self.training, p["running_mean"],
                                       p["running_var"])
        raise ValueError(f"no reference for {t}")

    def backward(self, dy) -> List[Dict[str, np.ndarray]]:
        """Gradients of every layer's trainable parameters (and ``"x"``: dx of the layer)."""
        grads: List[Dict[str, np.ndarray]] = [dict() for _ in self.configs]
        g = np.asarray(dy, np.float64)
        for i in reversed(range(len(self.configs))):
            cfg, p, a = self.configs[i], self.params[i], self.inputs[i]
            t = cfg["type"]
            if t == "Conv2D":
                g, dw, db = conv2d_backward(a, p["weight"], g, cfg["stride"], cfg["padding"], cfg["dilation"],
                                            cfg["groups"])
                grads[i]["weight"] = dw
                if "bias" in p:
                    grads[i]["bias"] = db
            elif t == "Dense":
                g, dw, db = dense_backward(a, p["weight"], g)
                grads[i]["weight"] = dw
                if "bias" in p:
                    grads[i]["bias"] = db
            elif t == "MaxPool2D":
                g = maxpool2d_backward(a, g, cfg["pool_size"], cfg["stride"], cfg["padding"])
            elif t == "AvgPool2D":
                g = avgpool2d_backward(a, g, cfg["pool_size"], cfg["stride"], cfg["padding"])
            elif t == "GlobalAvgPool2D":
                g = global_avgpool2d_backward(a, g)
            elif t == "Flatten":
                g = g.reshape(a.shape)
            elif t in ("ReLU", "Sigmoid", "Tanh"):
                g = activation_backward(t, a, g)
            elif t == "LeakyReLU":
                g = activation_backward(t, a, g, cfg["alpha"])
            elif t == "Softmax":
                g = softmax_backward(a, g)
            elif t == "Dropout":
                if self.training and cfg["rate"] != 0:
                    g = g * self.dropout_masks[i] / (1.0 - cfg["rate"])
            elif t == "BatchNorm2D":
                if not self.training:
                    raise ValueError("BatchNorm2D reference backward is for training mode")
                g, dgamma, dbeta = batchnorm2d_backward(a, p["weight"], g, cfg["eps"])
                grads[i]["weight"] = dgamma
                grads[i]["bias"] = dbeta
            else:
                raise ValueError(f"no reference for {t}")
            grads[i]["x"] = g
        return grads
