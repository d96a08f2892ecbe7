"""pytorch-optimizer's optimizers (``pip install -e '.[pytorch-optimizer]'``), loaded on first use.

Every name of ``pytorch_optimizer.get_supported_optimizers()`` is registered as
``pytorch_optimizer.<name>`` (``pytorch_optimizer.ranger``). The Muon family
(``muon``, ``adamuon``, ``adago``, ``normuon``, ``muonclip``, ``distributedmuon``)
wants groups flagged ``use_muon``; given plain parameters, matrices (``ndim >= 2``)
get the Muon update and the rest the AdamW fallback.

``lomo``, ``adalomo`` and ``adammini`` take the model itself, so they build when
``build_optimizer`` is given an ``nn.Module``. ``lomo`` and ``adalomo`` update the
parameters inside backward: train with ``optimizer.fused_backward(loss, lr)`` in
place of ``loss.backward()`` and ``optimizer.step()``. ``demo`` and
``distributedmuon`` need an initialized ``torch.distributed``. ``spectralsphere``
takes 2-D parameters only (put the others on a second part of a composite).

Example:
    >>> import torch
    >>> w, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))
    >>> [(len(g["params"]), g["use_muon"]) for g in muon_groups([w, b])]
    [(1, True), (1, False)]
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from optforge.registry import register_optimizer

__all__ = ["muon_groups", "register", "requirements_reason"]

PREFIX = "pytorch_optimizer."

# Names whose constructor takes the model itself rather than its parameters (OptimizerEntry.takes).
_TAKES_MODULE = frozenset({"lomo", "adalomo", "adammini"})

# Names that update parameters inside backward (optimizer.fused_backward(loss, lr)), not in step().
_UPDATES_IN_BACKWARD = frozenset({"lomo", "adalomo"})

# Names that need more than a parameter list: (packages, needs torch.distributed).
_REQUIREMENTS: Mapping[str, tuple[tuple[str, ...], bool]] = {
    "demo": (("einops",), True),
    "distributedmuon": ((), True),
}

# Names whose step() must be given a closure (it re-evaluates the loss).
_NEEDS_CLOSURE = frozenset({"alig", "bsam"})

# Names whose step() reads second-order information: backward(create_graph=True).
_NEEDS_CREATE_GRAPH = frozenset({"adahessian", "sophiah"})

# Names that only take 2-D parameters.
_MATRIX_PARAMS_ONLY = frozenset({"spectralsphere"})

# Names with Schedule-Free train()/eval() modes.
_TRAIN_EVAL_MODES = frozenset({"schedulefreeadamw", "schedulefreeradam", "schedulefreesgd", "splus"})

# Names whose parameter groups carry a ``use_muon`` flag.
_MUON_FAMILY = frozenset({"muon", "adamuon", "adago", "normuon", "muonclip", "distributedmuon"})

# Hyperparameters that switch a class to decoupled (AdamW-style) weight decay.
_DECOUPLING_SWITCHES = ("weight_decouple", "decoupled_weight_decay")

# Names whose weight decay is always decoupled (read from their sources).
_ALWAYS_DECOUPLED = frozenset(
    {"adamw", "flashadamw", "galore", "fira", "soap", "spam", "stablespam", "adammini", "conda", "dash", "sara"}
)


def requirements_reason(packages: Iterable[str] = (), *, distributed: bool = False) -> str | None:
    """Why an optimizer needing ``packages`` (and ``torch.distributed``) cannot be built here, or ``None``.

    Example:
        >>> requirements_reason(["no_such_package"])
        "needs the 'no_such_package' package (not installed)"
        >>> requirements_reason([]) is None
        True
    """
    missing = [
        f"the {package!r} package (not installed)" for package in packages if not importlib.util.find_spec(package)
    ]
    if distributed and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        missing.append("an initialized torch.distributed process group")
    return "needs " + " and ".join(missing) if missing else None


def muon_groups(params: Iterable[Any]) -> list[dict[str, Any]]:
    """Parameter groups for the Muon family: matrices get Muon, other tensors the AdamW fallback.

    Groups that already say ``use_muon`` are kept as they are; other groups are
    split in two, keeping their settings.
    """
    items = list(params)
    groups = items if items and isinstance(items[0], Mapping) else [{"params": items}]
    split: list[dict[str, Any]] = []
    for group in groups:
        if "use_muon" in group:
            split.append(dict(group))
            continue
        tensors = [group["params"]] if isinstance(group["params"], torch.Tensor) else list(group["params"])
        for use_muon in (True, False):
            chosen = [p for p in tensors if (p.ndim >= 2) == use_muon]
            if chosen:
                split.append({**group, "params": chosen, "use_muon": use_muon})
    return split


def _with_muon_groups(cls: type, params: Any, **hyperparameters: Any) -> torch.optim.Optimizer:
    return cls(muon_groups(params), **hyperparameters)


def _decoupled(name: str, cls: type) -> bool:
    parameters = inspect.signature(cls.__init__).parameters
    switched = any(parameters[s].default is True for s in _DECOUPLING_SWITCHES if s in parameters)
    return name in _ALWAYS_DECOUPLED or switched


def _needs_closure(name: str, cls: type) -> bool:
    closure = inspect.signature(cls.step).parameters.get("closure")
    return name in _NEEDS_CLOSURE or (closure is not None and closure.default is inspect.Parameter.empty)


def _capabilities(name: str, cls: type) -> dict[str, Any]:
    capabilities: dict[str, Any] = {
        "needs_closure": _needs_closure(name, cls),
        "needs_create_graph": name in _NEEDS_CREATE_GRAPH,
        "decoupled_weight_decay": _decoupled(name, cls),
        "matrix_params_only": name in _MATRIX_PARAMS_ONLY,
        "has_train_eval_modes": name in _TRAIN_EVAL_MODES,
    }
    if name in _TAKES_MODULE:
        capabilities["takes"] = "module"
    if name in _UPDATES_IN_BACKWARD:
        capabilities["updates_in_backward"] = True
    if name in _REQUIREMENTS:
        packages, distributed = _REQUIREMENTS[name]
        capabilities["unavailable"] = functools.partial(requirements_reason, packages, distributed=distributed)
    if name in _MUON_FAMILY:
        capabilities["factory"] = functools.partial(_with_muon_groups, cls)
    return capabilities


def register() -> None:
    """Register every optimizer of ``pytorch_optimizer.get_supported_optimizers()``."""
    import pytorch_optimizer

    for name in pytorch_optimizer.get_supported_optimizers():
        cls = pytorch_optimizer.load_optimizer(name)
        register_optimizer(cls, name=PREFIX + name, provider="pytorch_optimizer", **_capabilities(name, cls))
