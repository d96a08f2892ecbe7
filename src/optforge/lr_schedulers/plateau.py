"""Metric-driven schedulers: ``ReduceLROnPlateau`` that says so when stepped without a metric, and a warmup before it.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = WarmupPlateau(opt, ReduceLROnPlateau(opt, patience=0), warmup_steps=2)
    >>> sched.get_last_lr(), sched.metric_driven
    ([0.0], True)
    >>> sched.step(); sched.step(); sched.get_last_lr()
    [1.0]
    >>> sched.step(5.0); sched.step(6.0); sched.get_last_lr()
    [0.1]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.optim import lr_scheduler

__all__ = ["MetricMissingError", "ReduceLROnPlateau", "WarmupPlateau"]


class MetricMissingError(TypeError):
    """A metric-driven scheduler was stepped without the metric it decides on."""


def missing_metric(name: str) -> MetricMissingError:
    return MetricMissingError(
        f"{name} decides on a metric: call scheduler.step(metric) with the monitored value (e.g. the "
        "validation loss); with Lightning, give the schedule section a monitor: key"
    )


def _set_lrs(optimizer: torch.optim.Optimizer, lrs: list[float]) -> None:
    for group, lr in zip(optimizer.param_groups, lrs):
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


class ReduceLROnPlateau(lr_scheduler.ReduceLROnPlateau):
    """torch's ``ReduceLROnPlateau``; stepping it without a metric raises :class:`MetricMissingError`.

    ``step(metric=...)``, the training template's keyword, is accepted too, and
    loading a state also sets the lrs saved with it.
    """

    metric_driven = True

    def step(self, metrics: Any = None, epoch: int | None = None, *, metric: Any = None) -> None:  # type: ignore[override]
        """Judge the metric and reduce the lrs after ``patience`` steps without improvement."""
        value = metrics if metrics is not None else metric
        if value is None:
            raise missing_metric("ReduceLROnPlateau")
        super().step(value)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load the state and set the lrs it was at."""
        super().load_state_dict(dict(state_dict))
        if "_last_lr" in state_dict:
            _set_lrs(self.optimizer, [float(lr) for lr in state_dict["_last_lr"]])


class WarmupPlateau(lr_scheduler.LRScheduler):
    """A linear warmup over the first ``warmup_steps`` calls of ``step()``, then a metric-driven scheduler.

    The lr of each group rises from ``warmup_start_factor`` times its initial lr
    to its initial lr at ``warmup_steps``; metrics given during the warmup are not
    judged. After it, each ``step(metric)`` goes to ``plateau``, and ``step()``
    without a metric raises :class:`MetricMissingError`.

    Args:
        optimizer: The optimizer ``plateau`` was built on.
        plateau: A metric-driven scheduler (``ReduceLROnPlateau``, timm's plateau).
        warmup_steps: The length of the warmup, in calls of ``step()``.
        warmup_start_factor: The fraction of the initial lr the warmup starts from, in ``[0, 1]``.
    """

    metric_driven = True

    def __init__(
        self, optimizer: torch.optim.Optimizer, plateau: Any, warmup_steps: int, warmup_start_factor: float = 0.0
    ) -> None:
        if warmup_steps < 1 or not 0.0 <= warmup_start_factor <= 1.0:
            raise ValueError(f"bad warmup: {warmup_steps} steps from factor {warmup_start_factor}")
        self.optimizer = optimizer
        self.plateau = plateau
        self.warmup_steps = warmup_steps
        self.warmup_start_factor = warmup_start_factor
        self.base_lrs = [float(group.setdefault("initial_lr", group["lr"])) for group in optimizer.param_groups]
        self.last_epoch = 0
        self._step_count = 0
        self._warm(0)

    def _warm(self, step: int) -> None:
        f = self.warmup_start_factor
        _set_lrs(self.optimizer, [base * (f + (1.0 - f) * step / self.warmup_steps) for base in self.base_lrs])
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def step(self, metric: Any = None, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance the warmup, or judge ``metric`` once it is over."""
        self._step_count += 1
        self.last_epoch += 1
        if self.last_epoch <= self.warmup_steps:
            self._warm(self.last_epoch)
            return
        if metric is None:
            raise missing_metric(f"{type(self.plateau).__name__} (after its {self.warmup_steps}-step warmup)")
        self.plateau.step(metric)
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The step count, the lrs and the plateau's own state."""
        return {"last_epoch": self.last_epoch, "_last_lr": list(self._last_lr), "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue where the state was saved, lrs included."""
        self.last_epoch = int(state_dict["last_epoch"])
        self.plateau.load_state_dict(state_dict["plateau"])
        self._last_lr = [float(lr) for lr in state_dict["_last_lr"]]
        _set_lrs(self.optimizer, self._last_lr)
