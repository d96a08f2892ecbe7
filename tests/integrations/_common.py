"""Tiny models, data and training loops shared by the distributed tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import optforge
from optforge.distributed import set_schedule_free_mode

# Each optimizer under test, as an optforge config (foreach off and on for our own).
CONFIGS: dict[str, dict[str, Any]] = {
    "AdamW": {"name": "AdamW", "lr": 0.01, "weight_decay": 0.1},
    "SGD": {"name": "NesterovMomentum", "lr": 0.05},
}
for _foreach in (False, True):
    _suffix = "-foreach" if _foreach else ""
    CONFIGS[f"Lion{_suffix}"] = {"name": "Lion", "lr": 3e-3, "weight_decay": 0.1, "foreach": _foreach}
    CONFIGS[f"AdamWScheduleFree{_suffix}"] = {
        "name": "AdamWScheduleFree",
        "lr": 0.01,
        "warmup_steps": 2,
        "weight_decay": 0.01,
        "foreach": _foreach,
    }
    CONFIGS[f"SGDScheduleFree{_suffix}"] = {
        "name": "SGDScheduleFree",
        "lr": 0.1,
        "warmup_steps": 2,
        "weight_decay": 0.01,
        "foreach": _foreach,
    }
    CONFIGS[f"RAdamScheduleFree{_suffix}"] = {
        "name": "RAdamScheduleFree",
        "lr": 0.01,
        "weight_decay": 0.01,
        "foreach": _foreach,
    }

# Each optimizer under test, built over a list of parameters (or param groups).
OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    name: lambda params, config=config: optforge.build_optimizer(params, config) for name, config in CONFIGS.items()
}


def tiny_model() -> nn.Module:
    """Three linear layers; the last has a single output row, so a 2-way shard of it is empty on rank 1."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))


def data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed regression batch of ``n`` rows."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=gen)
    return x, torch.sin(x[:, :1]) - 0.5 * x[:, 1:2]


def rank_share(tensor: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's equal share of a batch: the mean of the ranks' mean losses is the full-batch mean."""
    return tensor.chunk(world_size)[rank]


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    scheduler: Any = None,
) -> None:
    """``steps`` full-batch MSE steps; Schedule-Free optimizers train in train mode and end in eval mode."""
    set_schedule_free_mode(optimizer, True)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    set_schedule_free_mode(optimizer, False)


def train_for_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> None:
    """``steps`` MSE steps on :func:`data`, stepping the scheduler; ends in train mode with no gradients,
    as a run does just before it saves a checkpoint."""
    x, y = data()
    set_schedule_free_mode(optimizer, True)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def full_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter, gathered whole when sharded (DTensor), detached and cloned."""
    out = {}
    for name, param in model.named_parameters():
        tensor = param.full_tensor() if hasattr(param, "full_tensor") else param
        out[name.removeprefix("module.")] = tensor.detach().clone()
    return out


def reference(name: str, steps: int) -> dict[str, torch.Tensor]:
    """The single-process, full-batch run the distributed runs must reproduce."""
    model = tiny_model()
    x, y = data()
    train(model, OPTIMIZERS[name](list(model.parameters())), x, y, steps)
    return full_params(model)


def assert_same_params(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], **tolerance: float) -> None:
    """``got`` equals ``want`` within tolerance, and ``want`` is not the untrained model (training did something)."""
    initial = full_params(tiny_model())
    assert got.keys() == want.keys() == initial.keys()
    assert all(not torch.allclose(want[key], initial[key]) for key in want), "the reference run did not train"
    for key in want:
        torch.testing.assert_close(got[key], want[key], msg=lambda m, k=key: f"{k}: {m}", **tolerance)
