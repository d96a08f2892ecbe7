"""Step a built scheduler and record what it sets at each step, for plots and checks."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["is_metric_driven", "trace_steps"]


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
