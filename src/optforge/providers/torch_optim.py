"""Every optimizer of the installed ``torch.optim``, plus SGD momentum presets.

Optimizers that only some torch versions have (``Adafactor``, ``Muon``) are
registered when present, found by scanning ``torch.optim`` rather than by a
fixed list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from optforge.registry import register_optimizer

__all__ = ["register"]

# Capabilities that the class alone does not tell; keyed by class name.
_CAPABILITIES: Mapping[str, Mapping[str, Any]] = {
    "AdamW": {"decoupled_weight_decay": True},
    "Adafactor": {"decoupled_weight_decay": True},
    "Muon": {"decoupled_weight_decay": True, "matrix_params_only": True},
    "LBFGS": {"needs_closure": True},
    "SparseAdam": {"needs_sparse_grad": True},
}

# Presets: (name, base class name, bound defaults, description).
_PRESETS = (
    ("Momentum", "SGD", {"momentum": 0.9}, "SGD with momentum 0.9"),
    ("NesterovMomentum", "SGD", {"momentum": 0.9, "nesterov": True}, "SGD with Nesterov momentum 0.9"),
)


def torch_optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    """Every public optimizer class of the installed ``torch.optim``, by name."""
    found = {}
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
            and not name.startswith("_")
        ):
            found[name] = obj
    return found


def register() -> None:
    """Register torch's optimizers under their class names, and the presets."""
    classes = torch_optimizer_classes()
    for name, cls in classes.items():
        register_optimizer(cls, name=name, provider="torch", **_CAPABILITIES.get(name, {}))
    for name, base, defaults, description in _PRESETS:
        register_optimizer(classes[base], name=name, defaults=defaults, provider="torch", description=description)
