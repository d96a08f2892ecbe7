"""``RangedChainedScheduler``: the training template's ``ChainedScheduler`` with ``step_ranges``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch.optim import lr_scheduler

__all__ = ["RangedChainedScheduler", "advance"]

# Schedulers the template's trainer steps with the absolute step count rather than with step().
_ABSOLUTE = (lr_scheduler.CosineAnnealingWarmRestarts,)


def advance(scheduler: Any, step: int, metric: Any) -> None:
    """Step ``scheduler`` to ``step`` as the training template does.

    A metric-driven scheduler gets the metric; one that takes the absolute step
    (the template's own schedulers, timm's, ``CosineAnnealingWarmRestarts``)
    goes to ``step``; any other advances by one.
    """
    if getattr(scheduler, "metric_driven", False) or isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric)
    elif isinstance(scheduler, _ABSOLUTE):
        scheduler.step(step)
    elif getattr(scheduler, "takes_epoch", False):
        scheduler.step(epoch=step)
    else:
        scheduler.step()


class RangedChainedScheduler(lr_scheduler.LRScheduler):
    """Nested schedulers, each stepped only while the step count lies in its ``[start, end)`` range.

    The ``k``-th call of ``step()`` (``k`` from 1) steps every scheduler whose
    range holds ``k``, as the template's trainer does with ``step(epoch=k)``:
    schedulers that count their own steps advance by one, those that take the
    absolute step (timm's, the template's own, ``CosineAnnealingWarmRestarts``)
    go to step ``k``.

    Args:
        schedulers: Schedulers built, in order, on one optimizer.
        step_ranges: One ``[start, end)`` pair per scheduler.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> warm = lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=3)
        >>> decay = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        >>> sched = RangedChainedScheduler([warm, decay], [[0, 4], [4, 100]])
        >>> lrs = [sched.get_last_lr()[0]]
        >>> for _ in range(5):
        ...     opt.step()
        ...     sched.step()
        ...     lrs.append(sched.get_last_lr()[0])
        >>> lrs
        [0.25, 0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(self, schedulers: Sequence[Any], step_ranges: Sequence[Sequence[int]]) -> None:
        if len(step_ranges) != len(schedulers):
            raise ValueError(f"{len(step_ranges)} step_ranges for {len(schedulers)} schedulers: give one per scheduler")
        self._schedulers = list(schedulers)
        self.step_ranges = [tuple(pair) for pair in step_ranges]
        self.optimizer = self._schedulers[0].optimizer
        self.last_epoch = 0
        self._step_count = 0
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    takes_epoch = True

    def step(self, epoch: int | None = None, metric: Any = None) -> None:  # type: ignore[override]
        """Step the schedulers whose range holds the next step count (or ``epoch``)."""
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        for scheduler, (start, end) in zip(self._schedulers, self.step_ranges):
            if start <= self.last_epoch < end:
                advance(scheduler, self.last_epoch, metric)
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The step count, the lrs and every nested scheduler's state."""
        return {
            "last_epoch": self.last_epoch,
            "_last_lr": list(self._last_lr),
            "schedulers": [scheduler.state_dict() for scheduler in self._schedulers],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue where the state was saved."""
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = [float(lr) for lr in state_dict["_last_lr"]]
        for scheduler, state in zip(self._schedulers, state_dict["schedulers"]):
            scheduler.load_state_dict(state)
