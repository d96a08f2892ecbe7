"""``PolynomialLRDecay``: the training template's polynomial decay to an end lr."""

from __future__ import annotations

import torch

from optforge.lr_schedulers._closed_form import ClosedFormScheduler

__all__ = ["PolynomialLRDecay"]


class PolynomialLRDecay(ClosedFormScheduler):
    """Decay each group's lr polynomially to ``end_learning_rate`` over ``max_decay_steps``.

    .. math::
        \\mathrm{lr}_t = (\\mathrm{base} - \\mathrm{end}) (1 - t / T)^{p} + \\mathrm{end}
        \\quad (t \\le T), \\qquad \\mathrm{end} \\quad (t > T)

    ``t`` counts from 1: after construction and after the first ``step()`` the
    lr is that of ``t = 1`` (the template's scheduler counts a step to epoch 0 as 1).

    Args:
        optimizer: The optimizer; each group's initial lr is its ``base``.
        max_decay_steps: ``T``, the step at which the lr reaches ``end_learning_rate`` (> 1).
        end_learning_rate: The final lr.
        power: The polynomial's power.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = PolynomialLRDecay(opt, max_decay_steps=4, end_learning_rate=0.0)
        >>> lrs = [sched.get_last_lr()[0]]
        >>> for _ in range(5):
        ...     sched.step()
        ...     lrs.append(sched.get_last_lr()[0])
        >>> lrs
        [0.75, 0.75, 0.5, 0.25, 0.0, 0.0]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_decay_steps: int,
        end_learning_rate: float = 1e-4,
        power: float = 1.0,
    ) -> None:
        if max_decay_steps <= 1:
            raise ValueError(f"max_decay_steps must be > 1, got {max_decay_steps}")
        self.max_decay_steps = max_decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        super().__init__(optimizer)

    def lr_at(self, step: int) -> list[float]:
        """The lrs after ``step`` steps."""
        t, end = max(step, 1), self.end_learning_rate
        if t > self.max_decay_steps:
            return [end for _ in self.base_lrs]
        return [(float(base) - end) * (1 - t / self.max_decay_steps) ** self.power + end for base in self.base_lrs]
