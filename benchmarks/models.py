"""The benchmark models, defined once for cpucnn and once for PyTorch.

NCHW float32, bias on, ReLU after every conv/dense but the last, MaxPool 2x2.
"""

from __future__ import annotations

import cpucnn as cc

L = cc.layers

# (name, input shape, spec). Spec items: ("conv", filters, k, pad), ("pool",), ("flatten",), ("dense", units)
SPECS = {
    "lenet5": ((1, 28, 28), [("conv", 6, 5, 2), ("pool",), ("conv", 16, 5, 0), ("pool",), ("flatten",),
                             ("dense", 120), ("dense", 84), ("dense", 10)]),
    "convnet_s": ((1, 28, 28), [("conv", 32, 3, 0), ("conv", 64, 3, 0), ("pool",), ("flatten",), ("dense", 128),
                                ("dense", 10)]),
    "vgg_s": ((3, 32, 32), [("conv", 32, 3, 1), ("conv", 32, 3, 1), ("pool",), ("conv", 64, 3, 1),
                            ("conv", 64, 3, 1), ("pool",), ("conv", 128, 3, 1), ("pool",), ("flatten",),
                            ("dense", 256), ("dense", 10)]),
}


def _is_last_compute(spec, i):
    return all(s[0] not in ("conv", "dense") for s in spec[i + 1:])


def cpucnn_model(name: str, seed: int = 0) -> cc.Sequential:
    shape, spec = SPECS[name]
    layers = []
    for i, s in enumerate(spec):
        if s[0] == "conv":
            layers.append(L.Conv2D(s[1], s[2], padding=s[3]))
        elif s[0] == "dense":
            layers.append(L.Dense(s[1]))
        elif s[0] == "pool":
            layers.append(L.MaxPool2D(2))
        elif s[0] == "flatten":
            layers.append(L.Flatten())
        if s[0] in ("conv", "dense") and not _is_last_compute(spec, i):
            layers.append(L.ReLU())
    return cc.Sequential(layers, input_shape=shape, seed=seed)


def torch_model(name: str):
    import torch.nn as nn

    shape, spec = SPECS[name]
    mods = []
    c, h, w = shape
    feat = None
    for i, s in enumerate(spec):
        if s[0] == "conv":
            mods.append(nn.Conv2d(c, s[1], s[2], padding=s[3]))
            c, h, w = s[1], h + 2 * s[3] - s[2] + 1, w + 2 * s[3] - s[2] + 1
        elif s[0] == "pool":
            mods.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        elif s[0] == "flatten":
            mods.append(nn.Flatten())
            feat = c * h * w
        elif s[0] == "dense":
            mods.append(nn.Linear(feat, s[1]))
            feat = s[1]
        if s[0] in ("conv", "dense") and not _is_last_compute(spec, i):
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def train_flops_per_image(model: cc.Sequential) -> float:
    """FLOPs of forward + backward (data and weight) per image; the first layer needs no data gradient."""
    total = 0.0
    for i in range(len(model.layers)):
        info = model._m.layer_info(i)
        if info["type"] in ("Conv2D", "Dense"):
            passes = 2 if i == 0 else 3
            total += 2.0 * info["macs"] * passes
    return total


def infer_flops_per_image(model: cc.Sequential) -> float:
    return sum(2.0 * model._m.layer_info(i)["macs"] for i in range(len(model.layers))
               if model._m.layer_info(i)["type"] in ("Conv2D", "Dense"))
