"""A base for schedulers whose lrs are a function of the step count alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["ClosedFormScheduler"]


class ClosedFormScheduler(LRScheduler):
    """Sets every group's lr to :meth:`lr_at` of the step count; resuming needs only the count.

    ``step()`` advances one step; ``step(epoch=k)`` (the call of the training
    template's trainer) jumps to step ``k``. A ``metric`` is accepted and ignored.
    """

    takes_epoch = True

    def lr_at(self, step: int) -> list[float]:
        """The lr of each group after ``step`` calls of ``step()``."""
        raise NotImplementedError

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The lr of each group at the current step ``last_epoch``."""
        return self.lr_at(self.last_epoch)

    def step(self, epoch: int | None = None, metric: Any = None) -> None:  # type: ignore[override]
        """Advance one step, or go to step ``epoch``."""
        self._step_count = getattr(self, "_step_count", 0) + 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        self._apply()

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.lr_at(self.last_epoch)):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue at the saved step: its lrs are set now."""
        super().load_state_dict(dict(state_dict))
        self._apply()
