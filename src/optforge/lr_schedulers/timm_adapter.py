"""``TimmScheduler``: a timm scheduler that behaves as a torch ``LRScheduler``.

timm's schedulers are told the epoch (``step(epoch)``) or the update count
(``step_update(n)``) by the training loop. The adapter counts for them: each
``step()`` advances one unit of whatever the scheduler counts (epochs when its
``t_in_epochs`` is true, updates otherwise), so trainers that call
``scheduler.step()`` (Lightning, plain loops) drive them as they drive torch's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from optforge.lr_schedulers.plateau import missing_metric

__all__ = ["TimmScheduler", "unscale_initial_lrs"]


def unscale_initial_lrs(optimizer: torch.optim.Optimizer) -> None:
    """Give each group with an ``lr_scale`` the initial lr before that scale, for a timm scheduler to build on.

    A group's lr already holds its ``lr_scale``, and timm's schedulers multiply every
    value they set by ``lr_scale`` again; from ``lr / lr_scale`` they give the group
    ``value * lr_scale``, as timm does with its own layer-decay groups.

    Example:
        >>> opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.25, "lr_scale": 0.5}])
        >>> unscale_initial_lrs(opt); opt.param_groups[0]["initial_lr"]
        0.5
    """
    for group in optimizer.param_groups:
        scale = group.get("lr_scale")
        if scale and "initial_lr" not in group:
            group["initial_lr"] = group["lr"] / scale


class TimmScheduler(LRScheduler):
    """Wrap a ``timm.scheduler.Scheduler`` as a torch ``LRScheduler``.

    ``step()`` advances by one; ``step(metric)`` also passes a metric (timm's
    plateau needs one after its warmup); ``step(epoch=k)`` goes to ``k``.
    ``state_dict()`` holds the count and timm's state (for the plateau, the full
    state of the torch ``ReduceLROnPlateau`` inside it, which timm's own leaves out).

    Example:
        >>> import torch
        >>> from timm.scheduler import StepLRScheduler
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = TimmScheduler(StepLRScheduler(opt, decay_t=2, decay_rate=0.5))
        >>> for _ in range(4):
        ...     sched.step()
        >>> sched.get_last_lr(), sched.last_epoch
        ([0.25], 4)
    """

    takes_epoch = True

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer
        self.base_lrs = [float(value) for value in scheduler.base_values]
        self.last_epoch = 0
        self._step_count = 0
        self._last_lr = self._lrs()

    @property
    def metric_driven(self) -> bool:
        """Whether ``step()`` needs a metric (timm's plateau)."""
        return isinstance(getattr(self.scheduler, "lr_scheduler", None), torch.optim.lr_scheduler.ReduceLROnPlateau)

    def _lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def _apply(self, metric: Any = None) -> None:
        if getattr(self.scheduler, "t_in_epochs", True):
            self.scheduler.step(self.last_epoch, metric)
        else:
            self.scheduler.step_update(self.last_epoch, metric)
        self._last_lr = self._lrs()

    def step(self, metric: Any = None, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one epoch or update (or go to ``epoch``), passing ``metric`` along."""
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        if self.metric_driven and metric is None and self.last_epoch > getattr(self.scheduler, "warmup_t", 0):
            raise missing_metric(f"timm's {type(self.scheduler).__name__}")
        self._apply(metric)

    def state_dict(self) -> dict[str, Any]:
        """The count, the lrs and the timm scheduler's state."""
        state: dict[str, Any] = {"last_epoch": self.last_epoch, "_last_lr": list(self._last_lr)}
        if self.metric_driven:
            state["plateau"] = self.scheduler.lr_scheduler.state_dict()
            state["restore_lr"] = self.scheduler.restore_lr
        else:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue at the saved count, with the lrs of that count."""
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = [float(lr) for lr in state_dict["_last_lr"]]
        if "plateau" in state_dict:
            self.scheduler.lr_scheduler.load_state_dict(state_dict["plateau"])
            self.scheduler.restore_lr = state_dict.get("restore_lr")
        else:
            self.scheduler.load_state_dict(dict(state_dict["scheduler"]))
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr
