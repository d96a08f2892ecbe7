"""``CosineAnnealingWarmupReduceRestarts``: the training template's warm cosine cycles with a shrinking peak."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from optforge.lr_schedulers._closed_form import ClosedFormScheduler

__all__ = ["CYCLE_LENGTHS", "CosineAnnealingWarmupReduceRestarts"]

CYCLE_LENGTHS: tuple[str, ...] = ("by_call", "epoch", "step")


class CosineAnnealingWarmupReduceRestarts(ClosedFormScheduler):
    """Cycles of a linear warmup from ``min_lr`` to the cycle's peak, then a cosine back to ``min_lr``.

    Every group starts at ``min_lr`` (the groups' own lrs are not used). Cycle
    ``n`` (from 0) peaks at ``max_lr * gamma ** n``. As in the template's class,
    how long the cycles last depends on how it is stepped:

    - ``step(epoch=k)``, the template trainer's call, goes to step ``k``; cycle
      ``n`` lasts ``first_cycle_steps * cycle_mult ** n`` steps (10, 20, 40... for
      10 and 2).
    - ``step()`` advances one step; each next cycle lasts
      ``int((length - warmup_steps) * cycle_mult) + warmup_steps`` (10, 15, 25...
      for 10 and 2 with a warmup of 5).

    ``cycle_lengths`` chooses: ``"by_call"`` follows the last call, ``"epoch"``
    and ``"step"`` keep one rule whichever the call. Template-form sections build
    it with ``"epoch"``, so ``step()`` once per epoch gives the lrs of the
    template's trainer. A ``metric`` passed to ``step()`` is ignored.

    Args:
        optimizer: The optimizer.
        first_cycle_steps: The length of the first cycle (> ``warmup_steps``).
        cycle_mult: How the cycles grow from one to the next (see above).
        max_lr: The first cycle's peak.
        min_lr: Where every cycle starts and ends.
        warmup_steps: The linear warmup at the start of every cycle.
        gamma: The peak's factor from one cycle to the next.
        cycle_lengths: ``"by_call"``, ``"epoch"`` or ``"step"``: which cycle lengths apply.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = CosineAnnealingWarmupReduceRestarts(opt, 4, 2.0, max_lr=1.0, min_lr=0.0, warmup_steps=2, gamma=0.5)
        >>> lrs = []
        >>> for _ in range(9):
        ...     sched.step()
        ...     lrs.append(round(sched.get_last_lr()[0], 3))
        >>> lrs  # cycles of 4 and 6 steps
        [0.5, 1.0, 0.5, 0.0, 0.25, 0.5, 0.427, 0.25, 0.073]
        >>> lrs = []
        >>> for k in range(1, 10):
        ...     sched.step(epoch=k, metric=0.3)
        ...     lrs.append(round(sched.get_last_lr()[0], 3))
        >>> lrs  # cycles of 4 and 8 steps
        [0.5, 1.0, 0.5, 0.0, 0.25, 0.5, 0.467, 0.375, 0.25]
    """

    # State keys that states saved before cycle_lengths existed lack; loading such a state keeps them.
    added_state: tuple[str, ...] = ("cycle_lengths", "by_epoch")

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        first_cycle_steps: int,
        cycle_mult: float = 1.0,
        max_lr: float = 0.1,
        min_lr: float = 1e-4,
        warmup_steps: int = 0,
        gamma: float = 1.0,
        cycle_lengths: Literal["by_call", "epoch", "step"] = "by_call",
    ) -> None:
        if not warmup_steps < first_cycle_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) must be less than first_cycle_steps ({first_cycle_steps})")
        if cycle_lengths not in CYCLE_LENGTHS:
            raise ValueError(f"cycle_lengths must be one of {', '.join(CYCLE_LENGTHS)}, got {cycle_lengths!r}")
        self.first_cycle_steps = first_cycle_steps
        self.cycle_mult = cycle_mult
        self.max_lr = max_lr
        self.min_lr = min_lr
        self.warmup_steps = warmup_steps
        self.gamma = gamma
        self.cycle_lengths = cycle_lengths
        self.by_epoch = cycle_lengths == "epoch"  # whether the epoch rule applies now (saved with the state)
        super().__init__(optimizer)

    def step(self, epoch: int | None = None, metric: Any = None) -> None:  # type: ignore[override]
        """Advance one step, or go to step ``epoch``, with the cycle lengths of that call (see the class)."""
        if self.cycle_lengths == "by_call":
            self.by_epoch = epoch is not None
        super().step(epoch, metric)

    def _step_cycle(self, step: int) -> tuple[int, int, float]:
        """The cycle holding ``step``, the step within it and the cycle's length, for ``step()``."""
        length = self.first_cycle_steps
        if self.cycle_mult == 1.0:
            return step // length, step % length, length
        cycle, start = 0, 0
        while step >= start + length:
            start += length
            cycle += 1
            length = int((length - self.warmup_steps) * self.cycle_mult) + self.warmup_steps
            if length <= self.warmup_steps:
                raise ValueError(f"cycle_mult {self.cycle_mult} shrinks cycle {cycle} to its warmup ({length} steps)")
        return cycle, step - start, length

    def _epoch_cycle(self, step: int) -> tuple[int, int, float]:
        """The cycle holding ``step``, the step within it and the cycle's length, for ``step(epoch=k)``."""
        first, mult = self.first_cycle_steps, self.cycle_mult
        if step < first:
            return 0, step, first
        if mult == 1.0:
            return step // first, step % first, first
        position = step / first * (mult - 1) + 1
        if position <= 0:
            raise ValueError(f"cycle_mult {mult} ends the cycles before step {step}")
        n = int(math.log(position, mult))
        length = first * mult**n
        if length <= self.warmup_steps:
            raise ValueError(f"cycle_mult {mult} shrinks cycle {n} to its warmup ({length:g} steps)")
        return n, step - int(first * (mult**n - 1) / (mult - 1)), length

    def lr_at(self, step: int) -> list[float]:
        """The lrs at ``step`` (``min_lr`` before the first step)."""
        groups = len(self.optimizer.param_groups)
        if step == 0:
            return [self.min_lr] * groups
        cycle, within, length = (self._epoch_cycle if self.by_epoch else self._step_cycle)(step)
        peak, low, warmup = self.max_lr * self.gamma**cycle, self.min_lr, self.warmup_steps
        if within < warmup:
            lr = (peak - low) * within / warmup + low
        else:
            lr = low + (peak - low) * (1 + math.cos(math.pi * (within - warmup) / (length - warmup))) / 2
        return [lr] * groups
