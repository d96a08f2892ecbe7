"""A small, seeded training task for trying configs: ``optforge demo`` runs it.

The task is a two-output regression on synthetic data; the model has a stem,
residual blocks and one linear head per output under ``towers``, so configs with
layer decay, per-tower schedules or no-decay rules for norms work on it too.
A 300-step run takes about a second on a CPU.

Example:
    >>> result = train({"optimizer": {"name": "AdamW", "lr": 0.01}}, steps=50)
    >>> result.final_loss < result.losses[0]
    True
"""

from __future__ import annotations

import importlib.resources
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optforge.builder import build, resolve_optimizer_spec
from optforge.config_source import load_config
from optforge.errors import unknown_choice
from optforge.registry import get_optimizer_entry, has_train_eval_modes

__all__ = [
    "DEFAULT_EXAMPLE",
    "Block",
    "DemoNet",
    "RunResult",
    "Task",
    "example_names",
    "example_path",
    "make_model",
    "make_task",
    "resolve_run",
    "train",
]

# The packaged example the demo trains with when no config is given.
DEFAULT_EXAMPLE = "adamw-warmup-cosine"

TOWERS: tuple[str, ...] = ("price", "demand")


def example_names() -> list[str]:
    """Names of the example configs shipped with optforge.

    Example:
        >>> "adamw-warmup-cosine" in example_names()
        True
    """
    folder = importlib.resources.files("optforge") / "examples"
    return sorted(item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml"))


def example_path(name: str) -> Path:
    """The path of the shipped example config ``name`` (see :func:`example_names`).

    Raises:
        ConfigError: for an unknown name, with the closest names.
    """
    if name not in example_names():
        raise unknown_choice("config", name, example_names(), what="example", hint="Or give the path of a config file")
    return Path(str(importlib.resources.files("optforge") / "examples" / f"{name}.yaml"))


@dataclass(frozen=True)
class Task:
    """Inputs and targets of the synthetic regression."""

    inputs: torch.Tensor
    targets: torch.Tensor


def make_task(seed: int = 0, samples: int = 1024, features: int = 8) -> Task:
    """A fixed nonlinear regression with one target per tower, plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, features, generator=generator)
    directions = torch.randn(features, len(TOWERS), generator=generator) / features**0.5
    projected = inputs @ directions
    targets = torch.stack([torch.sin(2 * projected[:, 0]), projected[:, 1] ** 2], dim=1)
    targets += 0.05 * torch.randn(targets.shape, generator=generator)
    return Task(inputs, targets)


class Block(nn.Module):
    """A residual MLP block: ``x + GELU(Linear(LayerNorm(x)))``."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs + self.mlp(self.norm(inputs))


class DemoNet(nn.Module):
    """A ``stem``, numbered ``blocks`` and one linear head per task under ``towers``.

    The names fit the param-group rules: ``blocks.<i>.`` for layer decay,
    ``towers.<task>.`` for per-tower schedules, LayerNorms and biases for no-decay.
    """

    def __init__(self, features: int = 8, hidden: int = 64, depth: int = 2, towers: tuple[str, ...] = TOWERS):
        super().__init__()
        self.stem = nn.Linear(features, hidden)
        self.blocks = nn.ModuleList(Block(hidden) for _ in range(depth))
        self.towers = nn.ModuleDict({name: nn.Linear(hidden, 1) for name in towers})

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.stem(inputs)
        for block in self.blocks:
            hidden = block(hidden)
        return torch.cat([tower(hidden) for tower in self.towers.values()], dim=1)


def make_model(seed: int = 0) -> DemoNet:
    """The demo model, initialised from ``seed``; also a ``--model optforge.demo:make_model`` factory.

    Example:
        >>> [name for name, _ in make_model().named_parameters()][-2:]
        ['towers.demand.weight', 'towers.demand.bias']
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DemoNet()


@dataclass(frozen=True)
class RunResult:
    """One training run of the demo task.

    Attributes:
        name: What the run is called in tables and plots.
        optimizer: The optimizer's registry name.
        losses: The training (mini-batch) loss at each step.
        lrs: The first param group's learning rate at each step.
        final_loss: The loss on the whole data set after training.
        seconds_per_step: Mean wall time of a step (forward, backward, optimizer and scheduler).
    """

    name: str
    optimizer: str
    losses: list[float]
    lrs: list[float]
    final_loss: float
    seconds_per_step: float


def train(
    config: Any,
    steps: int = 300,
    *,
    seed: int = 0,
    batch_size: int = 64,
    name: str = "",
    on_step: Callable[[int, float, float], None] | None = None,
) -> RunResult:
    """Train the demo model with ``config`` for ``steps`` steps.

    Args:
        config: Any config :func:`optforge.build` takes.
        steps: Optimizer steps to take.
        seed: Seeds the data, the initial weights and the batch order.
        batch_size: Samples per step.
        name: The run's name in results; defaults to the optimizer's name.
        on_step: Called after each step with ``(step, loss, lr)``.

    Raises:
        ConfigError: for a config that cannot be built.
    """
    threads = torch.get_num_threads()
    # The model is tiny: one thread beats opening a parallel region per small op.
    torch.set_num_threads(1)
    try:
        return _train(config, steps, seed, batch_size, name, on_step)
    finally:
        torch.set_num_threads(threads)


def _train(
    config: Any,
    steps: int,
    seed: int,
    batch_size: int,
    name: str,
    on_step: Callable[[int, float, float], None] | None,
) -> RunResult:
    config = load_config(config)
    entry = resolve_optimizer_spec(config).entry
    task = make_task(seed)
    model = make_model(seed)
    optimizer, scheduler = build(model, config)
    batches = torch.Generator().manual_seed(seed + 1)
    # Schedule-Free optimizers hold the training point in train mode and the average in eval mode.
    if has_train_eval_modes(optimizer):
        optimizer.train()
    losses: list[float] = []
    lrs: list[float] = []
    elapsed = 0.0
    for step in range(steps):
        index = torch.randint(len(task.inputs), (batch_size,), generator=batches)
        inputs, targets = task.inputs[index], task.targets[index]

        def closure(inputs: torch.Tensor = inputs, targets: torch.Tensor = targets) -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward(create_graph=entry.needs_create_graph)
            return loss

        lr = float(scheduler.get_last_lr()[0])
        start = time.perf_counter()
        loss = closure()
        if entry.needs_closure:
            optimizer.step(closure)
        else:
            optimizer.step()
        scheduler.step()
        elapsed += time.perf_counter() - start
        losses.append(loss.item())
        lrs.append(lr)
        if on_step is not None:
            on_step(step, losses[-1], lr)
    if callable(getattr(optimizer, "eval", None)):
        optimizer.eval()
    with torch.no_grad():
        final_loss = nn.functional.mse_loss(model(task.inputs), task.targets).item()
    return RunResult(name or entry.name, entry.name, losses, lrs, final_loss, elapsed / max(steps, 1))


def resolve_run(name: str, base_config: Any) -> tuple[str, Any]:
    """The config a ``--compare`` name stands for, with its display name.

    ``name`` is a shipped example (``lion``), a config file, or an optimizer name;
    an optimizer name takes the base config's ``lr`` and schedule.

    Example:
        >>> label, cfg = resolve_run("sgd", {"optimizer": {"name": "AdamW", "lr": 0.01}})
        >>> label, cfg["optimizer"]
        ('SGD', {'name': 'SGD', 'lr': 0.01})
    """
    if name in example_names():
        return name, example_path(name)
    if Path(name).is_file():
        return Path(name).stem, Path(name)
    entry = get_optimizer_entry(name, path="compare")
    base = load_config(base_config)
    lr = resolve_optimizer_spec(base).hyperparameters.get("lr")
    optimizer: dict[str, Any] = {"name": entry.name} if lr is None else {"name": entry.name, "lr": lr}
    doc: dict[str, Any] = {"optimizer": optimizer}
    if base.get("schedule") is not None:
        doc["schedule"] = base["schedule"]
    return entry.name, doc
