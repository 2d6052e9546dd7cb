"""PyTorch interop: `from_torch` builds a cpucnn model from a ``torch.nn.Sequential`` with its
weights, and `to_torch` (also ``model.to_torch()``) the reverse. ``torch`` is imported only
when one of them is called.

=====================================================  ===============================================
PyTorch module                                         cpucnn layer
=====================================================  ===============================================
Conv2d (padding_mode="zeros"; padding an int, a pair,  Conv2D
"same" or "valid")
MaxPool2d (dilation 1, no ceil_mode/return_indices)    MaxPool2D
AvgPool2d (count_include_pad, no ceil_mode/divisor)    AvgPool2D
AdaptiveAvgPool2d(1) followed by Flatten               GlobalAvgPool2D (its output is already flat)
Linear                                                 Dense
Flatten (start_dim=1, end_dim=-1)                      Flatten
ReLU, LeakyReLU, Sigmoid, Tanh                         ReLU, LeakyReLU(alpha=negative_slope), Sigmoid, Tanh
Softmax (over the channel axis: dim=1)                 Softmax
BatchNorm2d (with running statistics)                  BatchNorm2D (the running statistics are copied)
Dropout                                                Dropout
=====================================================  ===============================================

Any other module raises ``ValueError`` naming it. `to_torch` writes GlobalAvgPool2D as
``AdaptiveAvgPool2d(1), Flatten()``, and a strided "same" convolution with uneven padding (cpucnn puts
the odd pixel bottom/right; PyTorch's ``padding="same"`` takes stride 1 only) as ``ZeroPad2d`` followed
by the convolution.
"""

from __future__ import annotations

__docformat__ = "google"

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

import numpy as np

from . import layers as L

if TYPE_CHECKING:  # pragma: no cover
    from .model import Sequential

__all__ = ["from_torch", "to_torch"]


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"PyTorch interop needs the 'torch' package, which is not installed (pip install torch). "
                          f"Cause: {e}") from e
    return torch


def _pair(v: Any) -> Tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def from_torch(module: Any, input_shape: Sequence[int], seed: Optional[int] = None) -> "Sequential":
    """Builds the cpucnn model equivalent to a ``torch.nn.Sequential``, with its weights.

    Args:
        module (torch.nn.Sequential): the network, made of the modules in the table above (nested
            ``nn.Sequential`` containers are flattened).
        input_shape (tuple of int): one sample's shape, (C, H, W) or (F,) (PyTorch does not record it).
        seed (int, optional): the new model's seed (dropout masks); random when None.

    Returns:
        Sequential: an uncompiled model whose ``predict`` matches ``module.eval()(x)``.

    Raises:
        ImportError: torch is not installed.
        TypeError: module is not a ``torch.nn.Sequential``.
        ValueError: a module cpucnn has no equivalent for, or settings it does not support (the message
            names the module and its index), or shapes that do not fit ``input_shape``.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        ...                           torch.nn.Linear(8 * 26 * 26, 10))  # doctest: +SKIP
        >>> model = cpucnn.from_torch(net, input_shape=(1, 28, 28))  # doctest: +SKIP
    """
    torch = _import_torch()
    nn = torch.nn
    from .model import Sequential

    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch expects a torch.nn.Sequential, got {type(module).__name__}")

    def flat(seq: Any) -> List[Any]:
        out = []
        for m in seq:
            out.extend(flat(m) if isinstance(m, nn.Sequential) else [m])
        return out

    mods = flat(module)
    specs: List[L.Layer] = []
    weights: List[Tuple[int, dict]] = []  # (cpucnn layer index, {param: array})

    def bad(i: int, m: Any, why: str) -> ValueError:
        return ValueError(f"from_torch: module {i} {m!r}: {why}")

    skip_next_flatten = False
    for i, m in enumerate(mods):
        if skip_next_flatten:
            skip_next_flatten = False
            if isinstance(m, nn.Flatten):
                continue
        if isinstance(m, nn.Conv2d) and type(m) is nn.Conv2d:
            if m.padding_mode != "zeros":
                raise bad(i, m, f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
            pad = m.padding if isinstance(m.padding, str) else _pair(m.padding)
            specs.append(L.Conv2D(m.out_channels, _pair(m.kernel_size), stride=_pair(m.stride), padding=pad,
                                  dilation=_pair(m.dilation), groups=m.groups, use_bias=m.bias is not None))
            w = {"weight": _np(m.weight)}
            if m.bias is not None:
                w["bias"] = _np(m.bias)
            weights.append((len(specs) - 1, w))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and type(m) in (nn.MaxPool2d, nn.AvgPool2d):
            if m.ceil_mode:
                raise bad(i, m, "ceil_mode=True is not supported")
            if isinstance(m, nn.MaxPool2d):
                if _pair(m.dilation) != (1, 1) or m.return_indices:
                    raise bad(i, m, "dilation and return_indices are not supported")
                cls = L.MaxPool2D
            else:
                if not m.count_include_pad or m.divisor_override is not None:
                    raise bad(i, m, "only count_include_pad=True without divisor_override is supported")
                cls = L.AvgPool2D
            stride = m.stride if m.stride is not None else m.kernel_size
            specs.append(cls(_pair(m.kernel_size), stride=_pair(stride), padding=_pair(m.padding)))
        elif type(m) is nn.AdaptiveAvgPool2d:
            if m.output_size not in (1, (1, 1), [1, 1]):
                raise bad(i, m, "only output_size=1 (global average pooling) is supported")
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if nxt is not None and not isinstance(nxt, nn.Flatten):
                raise bad(i, m, "must be followed by Flatten (cpucnn's GlobalAvgPool2D outputs (N, C))")
            specs.append(L.GlobalAvgPool2D())
            skip_next_flatten = True
        elif type(m) is nn.Linear:
            specs.append(L.Dense(m.out_features, use_bias=m.bias is not None))
            w = {"weight": _np(m.weight)}
            if m.bias is not None:
                w["bias"] = _np(m.bias)
            weights.append((len(specs) - 1, w))
        elif type(m) is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise bad(i, m, "only Flatten(start_dim=1, end_dim=-1) is supported")
            specs.append(L.Flatten())
        elif type(m) is nn.ReLU:
            specs.append(L.ReLU())
        elif type(m) is nn.LeakyReLU:
            specs.append(L.LeakyReLU(alpha=float(m.negative_slope)))
        elif type(m) is nn.Sigmoid:
            specs.append(L.Sigmoid())
        elif type(m) is nn.Tanh:
            specs.append(L.Tanh())
        elif type(m) is nn.Softmax:
            if m.dim not in (1, -1):
                raise bad(i, m, "only dim=1 (the channel axis) is supported")
            specs.append(L.Softmax())
            if m.dim == -1:
                weights.append((len(specs) - 1, {"_softmax_last": i}))
        elif type(m) is nn.BatchNorm2d:
            if m.momentum is None:
                raise bad(i, m, "momentum=None (a cumulative average) is not supported")
            if not m.track_running_stats or m.running_mean is None:
                raise bad(i, m, "track_running_stats=False is not supported (cpucnn uses running statistics)")
            specs.append(L.BatchNorm2D(momentum=float(m.momentum), eps=float(m.eps)))
            c = m.num_features
            w = {"weight": _np(m.weight) if m.affine else np.ones(c, np.float32),
                 "bias": _np(m.bias) if m.affine else np.zeros(c, np.float32),
                 "running_mean": _np(m.running_mean), "running_var": _np(m.running_var)}
            weights.append((len(specs) - 1, w))
        elif type(m) is nn.Dropout:
            specs.append(L.Dropout(rate=float(m.p)))
        else:
            raise bad(i, m, f"cpucnn has no equivalent of {type(m).__name__} (supported: Conv2d, MaxPool2d, "
                            "AvgPool2d, AdaptiveAvgPool2d(1), Linear, Flatten, ReLU, LeakyReLU, Sigmoid, Tanh, "
                            "Softmax, BatchNorm2d, Dropout)")
    if not specs:
        raise ValueError("from_torch: the Sequential holds no modules")
    model = Sequential(specs, input_shape, seed=seed, data_format="channels_first")
    for index, w in weights:
        layer = specs[index]
        if "_softmax_last" in w:
            if len(layer.input_shape) != 1:
                raise ValueError(f"from_torch: module {w['_softmax_last']} Softmax(dim=-1) runs over the last axis "
                                 f"of a {layer.input_shape} input; cpucnn's Softmax is over the channel axis (dim=1)")
            continue
        for name, arr in w.items():
            want = tuple(model._m.layer_info(index)["params"][layer.param_names.index(name)][1])
            if arr.shape != want:
                raise ValueError(f"from_torch: {layer.name}: {name} of shape {arr.shape} does not fit input_shape "
                                 f"{tuple(input_shape)} (cpucnn expects {want})")
            layer.set_param(name, arr)
    return model


def to_torch(model: "Sequential") -> Any:
    """The ``torch.nn.Sequential`` equivalent to a cpucnn model, with a copy of its weights.

    The returned network is in eval mode and takes (N, C, H, W) inputs (channels-first, whatever the
    model's ``data_format``); ``net(torch.from_numpy(x))`` matches ``model.predict(x)``.

    Args:
        model (Sequential): the cpucnn model.

    Returns:
        torch.nn.Sequential

    Raises:
        ImportError: torch is not installed.
        TypeError: model is not a cpucnn Sequential.

    Example:
        >>> net = model.to_torch()  # doctest: +SKIP
    """
    torch = _import_torch()
    nn = torch.nn
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"to_torch expects a cpucnn Sequential, got {type(model).__name__}")
    mods: List[Any] = []

    def param(layer: L.Layer, name: str) -> Any:
        return nn.Parameter(torch.from_numpy(np.ascontiguousarray(layer.get_param(name))))

    for layer in model.layers:
        cfg = layer.get_config()
        kind = cfg["type"]
        in_shape = tuple(model._m.layer_info(layer._index)["input_shape"])
        if kind == "Conv2D":
            kh, kw = cfg["kernel_size"]
            sh, sw = cfg["stride"]
            dh, dw = cfg["dilation"]
            pad = cfg["padding"]
            zero_pad = None
            if pad == "valid":
                padding: Any = 0
            elif pad == "same":
                tots = []
                for size, k, s, d in ((in_shape[1], kh, sh, dh), (in_shape[2], kw, sw, dw)):
                    out = (size + s - 1) // s
                    tots.append(max(0, (out - 1) * s + d * (k - 1) + 1 - size))
                th, tw = tots
                if (sh, sw) == (1, 1):
                    padding = "same"  # PyTorch's "same" also puts the odd pixel bottom/right
                elif th % 2 == 0 and tw % 2 == 0:
                    padding = (th // 2, tw // 2)
                else:  # the odd pixel goes bottom/right, as cpucnn does
                    zero_pad = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
                    padding = 0
            else:
                padding = tuple(pad)
            conv = nn.Conv2d(in_shape[0], cfg["filters"], (kh, kw), stride=(sh, sw), padding=padding,
                             dilation=(dh, dw), groups=cfg["groups"], bias=cfg["use_bias"])
            with torch.no_grad():
                conv.weight = param(layer, "weight")
                if cfg["use_bias"]:
                    conv.bias = param(layer, "bias")
            if zero_pad is not None:
                mods.append(nn.ZeroPad2d(zero_pad))
            mods.append(conv)
        elif kind in ("MaxPool2D", "AvgPool2D"):
            cls = nn.MaxPool2d if kind == "MaxPool2D" else nn.AvgPool2d
            mods.append(cls(tuple(cfg["pool_size"]), stride=tuple(cfg["stride"]), padding=tuple(cfg["padding"])))
        elif kind == "GlobalAvgPool2D":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif kind == "Dense":
            lin = nn.Linear(in_shape[0], cfg["units"], bias=cfg["use_bias"])
            with torch.no_grad():
                lin.weight = param(layer, "weight")
                if cfg["use_bias"]:
                    lin.bias = param(layer, "bias")
            mods.append(lin)
        elif kind == "Flatten":
            mods.append(nn.Flatten())
        elif kind == "ReLU":
            mods.append(nn.ReLU())
        elif kind == "LeakyReLU":
            mods.append(nn.LeakyReLU(negative_slope=float(np.float32(cfg["alpha"]))))
        elif kind == "Sigmoid":
            mods.append(nn.Sigmoid())
        elif kind == "Tanh":
            mods.append(nn.Tanh())
        elif kind == "Softmax":
            mods.append(nn.Softmax(dim=1))
        elif kind == "Dropout":
            mods.append(nn.Dropout(p=cfg["rate"]))
        elif kind == "BatchNorm2D":
            bn = nn.BatchNorm2d(in_shape[0], eps=cfg["eps"], momentum=cfg["momentum"])
            with torch.no_grad():
                bn.weight = param(layer, "weight")
                bn.bias = param(layer, "bias")
                bn.running_mean.copy_(torch.from_numpy(layer.get_param("running_mean")))
                bn.running_var.copy_(torch.from_numpy(layer.get_param("running_var")))
            mods.append(bn)
        else:  # pragma: no cover - every cpucnn layer type is handled above
            raise ValueError(f"to_torch: {layer.name}: no PyTorch equivalent for {kind}")
    return nn.Sequential(*mods).eval()
