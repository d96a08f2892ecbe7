"""Step a scheduler section on a throwaway optimizer and record its lrs, for plots and checks."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from optforge.errors import ConfigError

__all__ = ["is_metric_driven", "scheduler_trace", "trace_steps"]


def is_metric_driven(scheduler: Any) -> bool:
    """Whether ``scheduler.step()`` needs a metric."""
    return bool(getattr(scheduler, "metric_driven", False)) or isinstance(
        scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
    )


def trace_steps(
    scheduler: Any, steps: int, record: Callable[[int], None], metric: Callable[[int], float] | None = None
) -> None:
    """Call ``record(step)`` at each step, stepping ``scheduler`` between (with ``metric(step)`` if it takes one).

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> lrs, sched = [], torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        >>> trace_steps(sched, 3, lambda step: lrs.append(opt.param_groups[0]["lr"])); lrs
        [1.0, 0.5, 0.25]
    """
    metric_driven = is_metric_driven(scheduler)
    with warnings.catch_warnings():
        # Only the schedule moves: no gradient exists, so the optimizer is never stepped.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        for step in range(steps):
            if step and metric_driven:
                scheduler.step(metric(step - 1))  # type: ignore[misc]
            elif step:
                scheduler.step()
            record(step)


def scheduler_trace(
    section: Any,
    steps: int,
    *,
    metric: Sequence[float] | Callable[[int], float] | None = None,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
    lr: float = 1.0,
    path: str = "schedule",
) -> dict[str, list[float]]:
    """The lr of each step of ``section``, built over a one-parameter SGD optimizer at ``lr``.

    Args:
        section: Any ``schedule:`` section: by name, or an optforge schedule.
        steps: How many steps to record.
        metric: For a metric-driven scheduler: one value per step, or a function of the step.
        total_steps: Steps of the run, for ``{fraction: x}`` lengths (default ``steps``).
        steps_per_epoch: Steps per epoch, for ``{epochs: x}`` lengths.
        lr: The optimizer's lr (the lr a torch scheduler scales).
        path: The section's config path, for messages.

    Returns:
        ``{"lr": [lr of step 0, lr of step 1, ...]}``: the lr each optimizer step uses.

    Raises:
        ConfigError: for a bad section, or a metric-driven one without metric values.

    Example:
        >>> scheduler_trace({"name": "StepLR", "step_size": 2, "gamma": 0.5}, 5)
        {'lr': [1.0, 1.0, 0.5, 0.5, 0.25]}
        >>> scheduler_trace({"name": "ReduceLROnPlateau", "patience": 0}, 4, metric=[3.0, 3.0, 3.0, 3.0])["lr"]
        [1.0, 1.0, 0.1, 0.010000000000000002]
    """
    from optforge.scheduler import build_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(
        optimizer, section, path=path, steps_per_epoch=steps_per_epoch, total_steps=total_steps or steps
    )
    needs_metric = is_metric_driven(scheduler)
    if needs_metric and metric is None:
        raise ConfigError(
            f"{type(scheduler).__name__} decides on a metric: give one metric value per step to trace it", path=path
        )
    if needs_metric and not callable(metric) and len(metric) < steps:  # type: ignore[arg-type]
        raise ConfigError(f"{len(metric)} metric values for {steps} steps: give one per step", path="metric")  # type: ignore[arg-type]
    lrs: list[float] = []
    values = metric if callable(metric) or metric is None else metric.__getitem__
    trace_steps(scheduler, steps, lambda step: lrs.append(float(optimizer.param_groups[0]["lr"])), values)
    return {"lr": lrs}
