"""The training template's groups: lr divided by name substring, in its order, nothing merged.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    >>> groups = template_groups(model, [TemplateGroup(name="1.", divide=10)], 0.1)
    >>> [(len(g["params"]), g["lr"]) for g in groups]
    [(2, 0.1), (2, 0.01)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from optforge.config.sections import TemplateGroup

__all__ = ["template_groups"]


def template_groups(model: nn.Module, entries: Sequence[TemplateGroup], base_lr: float) -> list[dict[str, Any]]:
    """A first group ``{lr: base_lr}`` of the parameters no entry matches, then one ``{lr: base_lr / divide}``
    per entry, in order, of the trainable parameters whose name contains the entry's ``name`` (first entry wins).

    Every group is kept, an empty one too, so the group count and order are those of the
    template and its saved optimizer states load.
    """
    groups: list[dict[str, Any]] = [{"params": [], "lr": base_lr}]
    groups += [{"params": [], "lr": base_lr / entry.divide} for entry in entries]
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        index = next((i for i, entry in enumerate(entries) if entry.name in name), None)
        groups[0 if index is None else index + 1]["params"].append(param)
    return groups
