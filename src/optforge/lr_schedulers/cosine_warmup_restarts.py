"""``CosineAnnealingWarmupReduceRestarts``: the training template's warm cosine cycles with a shrinking peak."""

from __future__ import annotations

import math

import torch

from optforge.lr_schedulers._closed_form import ClosedFormScheduler

__all__ = ["CosineAnnealingWarmupReduceRestarts"]


class CosineAnnealingWarmupReduceRestarts(ClosedFormScheduler):
    """Cycles of a linear warmup from ``min_lr`` to the cycle's peak, then a cosine back to ``min_lr``.

    Every group starts at ``min_lr`` (the groups' own lrs are not used). Cycle
    ``i`` peaks at ``max_lr * gamma ** i``; the first lasts ``first_cycle_steps``
    and each next one ``int((length - warmup_steps) * cycle_mult) + warmup_steps``.

    Args:
        optimizer: The optimizer.
        first_cycle_steps: The length of the first cycle (> ``warmup_steps``).
        cycle_mult: How the part of a cycle after its warmup grows from one cycle to the next.
        max_lr: The first cycle's peak.
        min_lr: Where every cycle starts and ends.
        warmup_steps: The linear warmup at the start of every cycle.
        gamma: The peak's factor from one cycle to the next.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = CosineAnnealingWarmupReduceRestarts(opt, 4, max_lr=1.0, min_lr=0.0, warmup_steps=2, gamma=0.5)
        >>> lrs = [sched.get_last_lr()[0]]
        >>> for _ in range(6):
        ...     sched.step()
        ...     lrs.append(round(sched.get_last_lr()[0], 3))
        >>> lrs
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.25, 0.5]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        first_cycle_steps: int,
        cycle_mult: float = 1.0,
        max_lr: float = 0.1,
        min_lr: float = 1e-4,
        warmup_steps: int = 0,
        gamma: float = 1.0,
    ) -> None:
        if not warmup_steps < first_cycle_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) must be less than first_cycle_steps ({first_cycle_steps})")
        self.first_cycle_steps = first_cycle_steps
        self.cycle_mult = cycle_mult
        self.max_lr = max_lr
        self.min_lr = min_lr
        self.warmup_steps = warmup_steps
        self.gamma = gamma
        super().__init__(optimizer)

    def _cycle(self, step: int) -> tuple[int, int, int]:
        """The cycle holding ``step``, the step within it and the cycle's length."""
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

    def lr_at(self, step: int) -> list[float]:
        """The lrs after ``step`` steps (``min_lr`` before the first)."""
        groups = len(self.optimizer.param_groups)
        if step == 0:
            return [self.min_lr] * groups
        cycle, within, length = self._cycle(step)
        peak, low, warmup = self.max_lr * self.gamma**cycle, self.min_lr, self.warmup_steps
        if within < warmup:
            lr = (peak - low) * within / warmup + low
        else:
            lr = low + (peak - low) * (1 + math.cos(math.pi * (within - warmup) / (length - warmup))) / 2
        return [lr] * groups
