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
    """A linear warmup over the first ``warmup_steps`` steps, then a metric-driven scheduler.

    The lr of each group rises from ``warmup_start_factor`` times its initial lr
    to its initial lr at ``warmup_steps``. What counts as a step of the warmup is
    ``warmup_per``:

    - ``"metric"`` (the default): every call of ``step()``, with or without a
      metric; metrics given during the warmup are not judged. After it, each
      ``step(metric)`` goes to ``plateau``, and ``step()`` without a metric
      raises :class:`MetricMissingError`.
    - ``"step"``: each ``step()`` without a metric, called after every
      ``optimizer.step()``; ``step(metric)``, called as often as the metric is
      measured (once an epoch), is not judged during the warmup and goes to
      ``plateau`` after it. Once the warmup is over, ``step()`` without a metric
      does nothing. A ``step(metric)`` before any ``step()`` raises ``RuntimeError``:
      the warmup would never advance.

    Args:
        optimizer: The optimizer ``plateau`` was built on.
        plateau: A metric-driven scheduler (``ReduceLROnPlateau``, timm's plateau).
        warmup_steps: The length of the warmup, in steps as ``warmup_per`` counts them.
        warmup_start_factor: The fraction of the initial lr the warmup starts from, in ``[0, 1]``.
        warmup_per: ``"metric"`` or ``"step"``, as above.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = WarmupPlateau(opt, ReduceLROnPlateau(opt, patience=0), warmup_steps=4, warmup_per="step")
        >>> for epoch in range(3):
        ...     for batch in range(2):
        ...         opt.step()
        ...         sched.step()          # every optimizer step: the warmup
        ...     sched.step(1.0)           # every epoch: the plateau, once the warmup is over
        ...     print(sched.get_last_lr())
        [0.5]
        [1.0]
        [0.1]
    """

    metric_driven = True
    # Keys of the state that states saved before them lack (loading one reads it as the default warmup).
    added_state: tuple[str, ...] = ("warmup_per",)

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        plateau: Any,
        warmup_steps: int,
        warmup_start_factor: float = 0.0,
        *,
        warmup_per: str = "metric",
    ) -> None:
        if warmup_steps < 1 or not 0.0 <= warmup_start_factor <= 1.0:
            raise ValueError(f"bad warmup: {warmup_steps} steps from factor {warmup_start_factor}")
        if warmup_per not in ("metric", "step"):
            raise ValueError(f"warmup_per must be 'metric' or 'step', got {warmup_per!r}")
        self.optimizer = optimizer
        self.plateau = plateau
        self.warmup_steps = warmup_steps
        self.warmup_start_factor = warmup_start_factor
        self.warmup_per = warmup_per
        self.base_lrs = [float(group.setdefault("initial_lr", group["lr"])) for group in optimizer.param_groups]
        self.last_epoch = 0  # the steps of the warmup's count taken so far
        self._step_count = 0
        self._warm(0)

    def _warm(self, step: int) -> None:
        f = self.warmup_start_factor
        _set_lrs(self.optimizer, [base * (f + (1.0 - f) * step / self.warmup_steps) for base in self.base_lrs])
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def step(self, metric: Any = None, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance the warmup, or judge ``metric`` once it is over (see the class docstring)."""
        self._step_count += 1
        if self.warmup_per == "step" and metric is not None:
            if self.last_epoch == 0:
                raise RuntimeError(
                    "warmup_per: step advances the warmup on step() without a metric: call scheduler.step() "
                    "after each optimizer.step(), and step(metric) when the metric is measured"
                )
            if self.last_epoch >= self.warmup_steps:
                self._judge(metric)
            return
        self.last_epoch += 1
        if self.last_epoch <= self.warmup_steps:
            self._warm(self.last_epoch)
            return
        if self.warmup_per == "step":
            return  # an optimizer step after the warmup: the plateau steps on the metric only
        if metric is None:
            raise missing_metric(f"{type(self.plateau).__name__} (after its {self.warmup_steps}-step warmup)")
        self._judge(metric)

    def _judge(self, metric: Any) -> None:
        self.plateau.step(metric)
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The warmup's count and kind, the lrs and the plateau's own state."""
        return {
            "last_epoch": self.last_epoch,
            "_last_lr": list(self._last_lr),
            "plateau": self.plateau.state_dict(),
            "warmup_per": self.warmup_per,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue where the state was saved, lrs included.

        Raises:
            ValueError: for the state of a warmup counted the other way (``warmup_per``).
        """
        saved = state_dict.get("warmup_per", "metric")
        if saved != self.warmup_per:
            raise ValueError(
                f"the state was saved with warmup_per: {saved}; this scheduler warms up per {self.warmup_per}"
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self.plateau.load_state_dict(state_dict["plateau"])
        self._last_lr = [float(lr) for lr in state_dict["_last_lr"]]
        _set_lrs(self.optimizer, self._last_lr)
