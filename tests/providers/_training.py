"""Build a provider's entry from a flat config and train it on a tiny regression problem."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import optforge

# Config beyond ``lr`` that some entries need on this problem: arguments without
# a default, another name for the learning rate, a shorter warm-up, fewer solver iterations.
EXTRA_CONFIG: Mapping[str, Mapping[str, Any]] = {
    "pytorch_optimizer.alig": {"max_lr": 0.01},
    "pytorch_optimizer.bsam": {"num_data": 64},
    "pytorch_optimizer.ranger21": {"num_iterations": 100},
    "pytorch_optimizer.adashift": {"keep_num": 1},  # first update after keep_num gradients
    "pytorch_optimizer.sara": {"threshold": 1.0},  # only weights below threshold are trained
    "pytorch_optimizer.spectralsphere": {"solver_max_iterations": 10},
}

MIN_STEPS = 3
MAX_STEPS = 8  # rectified optimizers (RAdam) skip their first updates


@dataclass
class Run:
    """What training an entry for a few steps gave."""

    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    losses: list[float]
    changed: bool


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=gen)
    return x, torch.tanh(x[:, :1] - 0.5 * x[:, 1:2])


def run(entry: optforge.OptimizerEntry, *, lr: float = 0.01, steps: int = MIN_STEPS, **config: Any) -> Run:
    """Build ``entry`` from ``{"name": ..., "lr": lr, **config}`` and step it as its flags say.

    Steps at least ``steps`` times and, while no parameter has moved, up to ``MAX_STEPS``.
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    params = [p for p in model.parameters() if p.ndim == 2 or not entry.matrix_params_only]
    extra = {**EXTRA_CONFIG.get(entry.name, {}), **config}
    flat = {"name": entry.name, **({} if "max_lr" in extra else {"lr": lr}), **extra}
    optimizer = optforge.build_optimizer(model if entry.takes != "params" else params, flat)
    x, y = _batch()
    before = [p.detach().clone() for p in params]

    def closure() -> torch.Tensor:
        with torch.enable_grad():  # closures are called inside step(), under no_grad
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            if entry.updates_in_backward:  # LOMO: the update happens here, there is no step()
                optimizer.fused_backward(loss, lr)
            else:
                loss.backward(create_graph=entry.needs_create_graph)
        return loss

    losses: list[float] = []
    changed = False
    for step in range(max(steps, MAX_STEPS)):
        losses.append(closure().item())  # SAM-like optimizers want the gradient before step(closure)
        if entry.needs_closure:
            optimizer.step(closure)
        elif not entry.updates_in_backward:
            optimizer.step()
        changed = any(not torch.equal(b, p) for b, p in zip(before, params))
        if step + 1 >= steps and changed:
            break
    with torch.no_grad():
        losses.append(nn.functional.mse_loss(model(x), y).item())
    return Run(optimizer, params, losses, changed)


def assert_stepped(entry: optforge.OptimizerEntry, result: Run) -> None:
    """The entry moved the parameters, kept them finite, and applied its bound defaults."""
    assert result.changed, f"{entry.name} changed no parameter in {MAX_STEPS} steps"
    assert all(torch.isfinite(p).all() for p in result.params)
    defaults = result.optimizer.defaults
    for key, value in entry.defaults.items():
        if key in defaults:  # some classes store a setting under another key (Adafactor: betas -> beta1)
            assert defaults[key] == value, (key, defaults[key], value)
