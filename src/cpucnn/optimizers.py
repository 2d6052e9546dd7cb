"""Optimizers (PyTorch's update rules, run in C++).

An optimizer is a spec until ``model.compile`` binds it; after that its
``lr`` reads and writes the live learning rate (for schedulers).
"""

from __future__ import annotations

__docformat__ = "google"

import json
import numbers
from typing import Any, Dict, Optional, Sequence

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get"]


def _num(name: str, v: Any, owner: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {v!r}")
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{owner}: {name} must be finite, got {v}")
    return v


def _lr_arg(owner: str, lr: Optional[float], learning_rate: Optional[float], default: float) -> float:
    """``lr`` or its Keras spelling ``learning_rate`` (not both)."""
    if lr is not None and learning_rate is not None:
        raise TypeError(f"{owner}: give lr or learning_rate, not both")
    if lr is None:
        lr = default if learning_rate is None else learning_rate
    return lr


class Optimizer:
    """Base class of the optimizers: the learning rate, gradient clipping and the settings, bound to
    one model by ``model.compile``.

    Args:
        lr (float): the learning rate, >= 0 (or ``learning_rate``, its Keras spelling; giving both is
            a TypeError).
        clipnorm (float, optional): scales all gradients together so their global 2-norm is at most
            clipnorm, as ``torch.nn.utils.clip_grad_norm_`` (Keras's ``global_clipnorm``; Keras's
            ``clipnorm`` clips each tensor separately).
        clipvalue (float, optional): clamps each gradient element to [-clipvalue, clipvalue], as
            ``torch.nn.utils.clip_grad_value_``. With both, the norm is clipped first. Clipping applies
            before the update, to the gradients of the trainable (not frozen) parameters.

    Raises:
        TypeError: lr is not a number, or both lr and learning_rate are given. ValueError: lr is
            negative or not finite.
    """

    _type = "Optimizer"

    def __init__(self, lr: float, clipnorm: Optional[float] = None, clipvalue: Optional[float] = None) -> None:
        self._lr = _num("lr", lr, self._type)
        if self._lr < 0:
            raise ValueError(f"{self._type}: lr must not be negative, got {lr}")
        self.clipnorm = self._clip("clipnorm", clipnorm)
        self.clipvalue = self._clip("clipvalue", clipvalue)
        self._model = None  # the C++ model once compiled

    def _clip(self, name: str, v: Optional[float]) -> Optional[float]:
        if v is None:
            return None
        v = _num(name, v, self._type)
        if v <= 0:
            raise ValueError(f"{self._type}: {name} must be positive, got {v}")
        return v

    def _clip_config(self, cfg: Dict[str, Any]) -> Dict[str, Any]:
        if self.clipnorm is not None:
            cfg["clipnorm"] = self.clipnorm
        if self.clipvalue is not None:
            cfg["clipvalue"] = self.clipvalue
        return cfg

    @property
    def lr(self) -> float:
        """The learning rate; settable at any time (takes effect at the next step).

        Reads back as written (0.001), not as the float32 the core keeps
        (0.0010000000474974513)."""
        if self._model is not None:
            live = float(self._model.lr)
            if np.float32(self._lr) == np.float32(live):
                return self._lr
            return float(str(np.float32(live)))   # changed in the core: its shortest decimal
        return self._lr

    @property
    def learning_rate(self) -> float:
        """The same as ``lr`` (Keras's name)."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.lr = value

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
        learning_rate (float, optional): ``lr``'s Keras spelling (not both).
        clipnorm (float, optional), clipvalue (float, optional): gradient clipping, see Optimizer.

    Raises:
        TypeError: a setting that is not a number. ValueError: a negative or non-finite one, or
            nesterov without momentum.

    Example:
        >>> SGD(lr=0.1, momentum=0.9)
        SGD(lr=0.1, momentum=0.9, ...)
    """

    _type = "SGD"

    def __init__(self, lr: Optional[float] = None, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, *, learning_rate: Optional[float] = None, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None) -> None:
        super().__init__(_lr_arg("SGD", lr, learning_rate, 0.01), clipnorm, clipvalue)
        self.momentum = _num("momentum", momentum, "SGD")
        self.nesterov = bool(nesterov)
        self.weight_decay = _num("weight_decay", weight_decay, "SGD")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("SGD: momentum and weight_decay must not be negative")
        if self.nesterov and self.momentum <= 0:
            raise ValueError("SGD: nesterov needs a positive momentum")

    def get_config(self) -> Dict[str, Any]:
        return self._clip_config({"type": "SGD", "lr": self.lr, "momentum": self.momentum,
                                  "nesterov": self.nesterov, "weight_decay": self.weight_decay})


class Adam(Optimizer):
    """Adam, ``torch.optim.Adam``'s update rule (L2 weight decay added to the gradient).

    Args:
        lr (float, default 1e-3): the learning rate.
        betas ((float, float), default (0.9, 0.999)): the decay rates of the first and second
            moment estimates, each in [0, 1).
        eps (float, default 1e-8): added to the denominator.
        weight_decay (float, default 0.0): L2 penalty added to the gradient.
        learning_rate (float, optional): ``lr``'s Keras spelling (not both).
        clipnorm (float, optional), clipvalue (float, optional): gradient clipping, see Optimizer.

    Raises:
        TypeError: a setting that is not a number (or betas not a pair). ValueError: a negative or
            non-finite one, or betas outside [0, 1).
    """

    _type = "Adam"
    _default_decay = 0.0

    def __init__(self, lr: Optional[float] = None, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: Optional[float] = None, *, learning_rate: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None) -> None:
        me = self._type
        super().__init__(_lr_arg(me, lr, learning_rate, 1e-3), clipnorm, clipvalue)
        if not hasattr(betas, "__len__"):
            raise TypeError(f"{me}: betas must be a pair of numbers, got {betas!r}")
        if len(betas) != 2:
            raise ValueError(f"{me}: betas must be a pair")
        self.betas = (_num("beta1", betas[0], me), _num("beta2", betas[1], me))
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"{me}: betas must be in [0, 1), got {tuple(betas)}")
        self.eps = _num("eps", eps, me)
        self.weight_decay = _num("weight_decay", self._default_decay if weight_decay is None else weight_decay, me)
        if self.eps < 0 or self.weight_decay < 0:
            raise ValueError(f"{me}: eps and weight_decay must not be negative")

    def get_config(self) -> Dict[str, Any]:
        return self._clip_config({"type": self._type, "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                                  "weight_decay": self.weight_decay})


class AdamW(Adam):
    """AdamW, as torch.optim.AdamW: decoupled weight decay (``w *= 1 - lr*weight_decay``
    before Adam's update, which then has no L2 term).

    Args:
        lr (float, default 1e-3): the learning rate.
        betas ((float, float), default (0.9, 0.999)): the moment estimates' decay rates.
        eps (float, default 1e-8): added to the denominator.
        weight_decay (float, default 0.01): the decoupled decay factor.
        learning_rate (float, optional): ``lr``'s Keras spelling (not both).
        clipnorm (float, optional), clipvalue (float, optional): gradient clipping, see Optimizer.

    Raises:
        TypeError: a setting that is not a number. ValueError: a negative or non-finite one.
    """

    _type = "AdamW"
    _default_decay = 0.01


class RMSprop(Optimizer):
    """RMSprop with torch.optim.RMSprop's update rule (note PyTorch's defaults: lr=0.01,
    alpha=0.99; Keras's are 0.001 and rho=0.9).

    Args:
        lr (float, default 0.01): the learning rate.
        alpha (float, default 0.99): the squared-gradient average's decay rate.
        eps (float, default 1e-8): added to the denominator.
        weight_decay (float, default 0.0): L2 penalty added to the gradient.
        momentum (float, default 0.0): > 0 keeps a momentum buffer.
        centered (bool, default False): normalise by the variance estimate (the mean gradient
            subtracted).
        learning_rate (float, optional): ``lr``'s Keras spelling (not both).
        clipnorm (float, optional), clipvalue (float, optional): gradient clipping, see Optimizer.

    Raises:
        TypeError: a setting that is not a number. ValueError: a negative or non-finite one.
    """

    _type = "RMSprop"

    def __init__(self, lr: Optional[float] = None, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, *, learning_rate: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None) -> None:
        super().__init__(_lr_arg("RMSprop", lr, learning_rate, 0.01), clipnorm, clipvalue)
        self.alpha = _num("alpha", alpha, "RMSprop")
        self.eps = _num("eps", eps, "RMSprop")
        self.weight_decay = _num("weight_decay", weight_decay, "RMSprop")
        self.momentum = _num("momentum", momentum, "RMSprop")
        if not isinstance(centered, (bool, np.bool_)):
            raise TypeError(f"RMSprop: centered must be True or False, got {centered!r}")
        self.centered = bool(centered)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"RMSprop: alpha must be in [0, 1], got {alpha}")
        if self.eps < 0 or self.weight_decay < 0 or self.momentum < 0:
            raise ValueError("RMSprop: eps, weight_decay and momentum must not be negative")

    def get_config(self) -> Dict[str, Any]:
        return self._clip_config({"type": "RMSprop", "lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                                  "weight_decay": self.weight_decay, "momentum": self.momentum,
                                  "centered": self.centered})


def get(spec: Any) -> Optimizer:
    """An Optimizer from ``spec``: an Optimizer (returned as is), a name (``"sgd"``, ``"adam"``,
    ``"adamw"``, ``"rmsprop"``, with their defaults) or a config dict (``get_config()``'s output).

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
        if name in _BY_NAME:
            return _BY_NAME[name]()
        raise ValueError(f"unknown optimizer {spec!r} (expected one of {', '.join(repr(k) for k in _BY_NAME)})")
    if isinstance(spec, dict):
        cfg = dict(spec)
        kind = cfg.pop("type", None)
        cfg.pop("steps", None)
        if kind == "SGD":
            return SGD(**cfg)
        if kind in ("Adam", "AdamW"):
            cfg["betas"] = tuple(cfg.get("betas", (0.9, 0.999)))
            return (Adam if kind == "Adam" else AdamW)(**cfg)
        if kind == "RMSprop":
            return RMSprop(**cfg)
        raise ValueError(f"unknown optimizer type {kind!r}")
    raise TypeError(f"optimizer must be an Optimizer, a name or a config dict, got {type(spec).__name__}")


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
