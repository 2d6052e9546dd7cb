"""Optimizers (PyTorch's update rules, run in C++).

An optimizer is a spec until ``model.compile`` binds it; after that its
``lr`` reads and writes the live learning rate (for schedulers).
"""

from __future__ import annotations

__docformat__ = "google"

import json
import numbers
from typing import Any, Dict, Sequence

__all__ = ["Optimizer", "SGD", "Adam", "get"]


def _num(name: str, v: Any, owner: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {v!r}")
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{owner}: {name} must be finite, got {v}")
    return v


class Optimizer:
    """Base class of the optimizers: the learning rate and the settings, bound to one model by
    ``model.compile``.

    Args:
        lr (float): the learning rate, >= 0.

    Raises:
        TypeError: lr is not a number. ValueError: lr is negative or not finite.
    """

    _type = "Optimizer"

    def __init__(self, lr: float) -> None:
        self._lr = _num("lr", lr, self._type)
        if self._lr < 0:
            raise ValueError(f"{self._type}: lr must not be negative, got {lr}")
        self._model = None  # the C++ model once compiled

    @property
    def lr(self) -> float:
        """The learning rate; settable at any time (takes effect at the next step)."""
        if self._model is not None:
            return float(self._model.lr)
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        v = _num("lr", value, self._type)
        if v < 0:
            raise ValueError(f"{self._type}: lr must not be negative, got {value}")
        self._lr = v
        if self._model is not None:
            self._model.lr = v

    @property
    def iterations(self) -> int:
        """The optimizer steps taken so far by the model it is bound to (0 before compile)."""
        return int(self._model.optimizer_steps) if self._model is not None else 0

    def get_config(self) -> Dict[str, Any]:
        """The settings as a dict with ``type`` (what model files store; ``get`` reads it back)."""
        raise NotImplementedError

    def _json(self) -> str:
        return json.dumps(self.get_config())

    def __repr__(self) -> str:
        cfg = self.get_config()
        return f"{self._type}(" + ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k != "type") + ")"


class SGD(Optimizer):
    """Stochastic gradient descent, ``torch.optim.SGD``'s update rule.

    Args:
        lr (float, default 0.01): the learning rate.
        momentum (float, default 0.0): the momentum factor (0: none).
        nesterov (bool, default False): Nesterov momentum (needs momentum > 0).
        weight_decay (float, default 0.0): L2 penalty added to the gradient.

    Raises:
        TypeError: a setting that is not a number. ValueError: a negative or non-finite one, or
            nesterov without momentum.

    Example:
        >>> SGD(lr=0.1, momentum=0.9)
        SGD(lr=0.1, momentum=0.9, ...)
    """

    _type = "SGD"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = _num("momentum", momentum, "SGD")
        self.nesterov = bool(nesterov)
        self.weight_decay = _num("weight_decay", weight_decay, "SGD")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("SGD: momentum and weight_decay must not be negative")
        if self.nesterov and self.momentum <= 0:
            raise ValueError("SGD: nesterov needs a positive momentum")

    def get_config(self) -> Dict[str, Any]:
        return {"type": "SGD", "lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam, ``torch.optim.Adam``'s update rule (L2 weight decay added to the gradient).

    Args:
        lr (float, default 1e-3): the learning rate.
        betas ((float, float), default (0.9, 0.999)): the decay rates of the first and second
            moment estimates, each in [0, 1).
        eps (float, default 1e-8): added to the denominator.
        weight_decay (float, default 0.0): L2 penalty added to the gradient.

    Raises:
        TypeError: a setting that is not a number (or betas not a pair). ValueError: a negative or
            non-finite one, or betas outside [0, 1).
    """

    _type = "Adam"

    def __init__(self, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        if not hasattr(betas, "__len__"):
            raise TypeError(f"Adam: betas must be a pair of numbers, got {betas!r}")
        if len(betas) != 2:
            raise ValueError("Adam: betas must be a pair")
        self.betas = (_num("beta1", betas[0], "Adam"), _num("beta2", betas[1], "Adam"))
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Adam: betas must be in [0, 1), got {tuple(betas)}")
        self.eps = _num("eps", eps, "Adam")
        self.weight_decay = _num("weight_decay", weight_decay, "Adam")
        if self.eps < 0 or self.weight_decay < 0:
            raise ValueError("Adam: eps and weight_decay must not be negative")

    def get_config(self) -> Dict[str, Any]:
        return {"type": "Adam", "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}


def get(spec: Any) -> Optimizer:
    """An Optimizer from ``spec``: an Optimizer (returned as is), a name (``"sgd"``, ``"adam"``, with
    their defaults) or a config dict (``get_config()``'s output).

    Raises:
        ValueError: an unknown name or type. TypeError: any other kind of spec.

    Example:
        >>> get("adam")
        Adam(lr=0.001, ...)
    """
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str):
        name = spec.lower()
        if name == "sgd":
            return SGD()
        if name == "adam":
            return Adam()
        raise ValueError(f"unknown optimizer {spec!r} (expected 'sgd' or 'adam')")
    if isinstance(spec, dict):
        cfg = dict(spec)
        kind = cfg.pop("type", None)
        cfg.pop("steps", None)
        if kind == "SGD":
            return SGD(**cfg)
        if kind == "Adam":
            cfg["betas"] = tuple(cfg.get("betas", (0.9, 0.999)))
            return Adam(**cfg)
        raise ValueError(f"unknown optimizer type {kind!r}")
    raise TypeError(f"optimizer must be an Optimizer, a name or a config dict, got {type(spec).__name__}")
