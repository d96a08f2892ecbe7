"""Helpers shared by the scheduler-by-name tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def make_optimizer(lr: float = 0.1, groups: int = 2) -> torch.optim.Optimizer:
    """SGD with momentum over ``groups`` one-parameter groups at lrs ``lr``, ``lr / 2``, ..."""
    torch.manual_seed(0)
    params = [{"params": [nn.Parameter(torch.ones(2))], "lr": lr / (i + 1)} for i in range(groups)]
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def lrs_of(optimizer: torch.optim.Optimizer) -> list[float]:
    return [float(group["lr"]) for group in optimizer.param_groups]


def run(
    optimizer: torch.optim.Optimizer, step: Callable[[int], Any], steps: int, *, start: int = 0
) -> list[list[float]]:
    """The lrs each of ``steps`` optimizer steps uses, calling ``step(k)`` after step ``k``."""
    out = []
    for k in range(start, start + steps):
        out.append(lrs_of(optimizer))
        optimizer.zero_grad()
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.full_like(p, 0.01)
        optimizer.step()
        step(k)
    return out


def metric_at(k: int) -> float:
    """A validation loss that improves, then plateaus, then improves again: plateaus trigger."""
    if k < 30:
        return 1.0 / (k + 1)
    if k < 90:
        return 1.0 / 31 + 0.001 * (k % 3)
    return 1.0 / (k - 58)
