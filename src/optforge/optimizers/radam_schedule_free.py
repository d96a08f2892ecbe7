r"""Schedule-Free RAdam: Schedule-Free AdamW with RAdam's rectified lr instead of a warmup.

With :math:`\rho_\infty = 2 / (1 - \beta_2) - 1` and
:math:`\rho_t = \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)`, the lr is scaled by

.. math::

    r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}

once :math:`\rho_t > 4`. Before that the step is an SGD step, or (the default
``silent_sgd_phase=True``) no step at all: the second moment is still updated
but the parameters do not move and the step carries no averaging weight.
Numerically identical to ``schedulefree.RAdamScheduleFree`` 1.4.1 on the
single-tensor and foreach paths in float32 and float64.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from torch import Tensor

from optforge.optimizers._common import check_betas, check_flags, check_lr, check_range
from optforge.optimizers.adamw_schedule_free import LowPrecisionAdamScheduleFree
from optforge.optimizers.schedule_free import ScheduleFreeOptimizer

__all__ = ["RAdamScheduleFree"]


class RAdamScheduleFree(LowPrecisionAdamScheduleFree):
    """RAdam without a learning-rate schedule and without warmup steps to tune.

    Same modes, state and arguments (``state_precision`` included) as :class:`AdamWScheduleFree`, minus
    ``warmup_steps``; ``silent_sgd_phase`` (default ``True``) skips the first
    steps (4 with ``beta2=0.999``) instead of taking SGD steps.

    Example:
        >>> import torch
        >>> from optforge.optimizers import RAdamScheduleFree
        >>> p = torch.nn.Parameter(torch.ones(3))
        >>> opt = RAdamScheduleFree([p], lr=1e-2)
        >>> _ = opt.train()
        >>> lrs = []
        >>> for _ in range(6):
        ...     p.grad = torch.ones(3)
        ...     opt.step()
        ...     lrs.append(opt.scheduled_lrs()[0])
        >>> [lr > 0 for lr in lrs]
        [False, False, False, False, True, True]
    """

    STATE_TENSORS = ("z", "exp_avg_sq")  # under fp32; see LowPrecisionState for the others
    GROUP_KEYS = ("lr", "betas", "eps", "weight_decay", "r", "weight_lr_power")

    FLAG_DEFAULTS = MappingProxyType({**ScheduleFreeOptimizer.FLAG_DEFAULTS, "silent_sgd_phase": True})

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        *,
        silent_sgd_phase: bool = True,
        state_precision: str = "fp32",
        seed: int | None = None,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        betas = check_betas(betas, beta1_low_open=True)
        check_range(eps, "eps")
        check_range(weight_decay, "weight_decay")
        check_range(r, "r")
        check_range(weight_lr_power, "weight_lr_power")
        check_flags(foreach, fused)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "r": r,
            "weight_lr_power": weight_lr_power,
            **self.COUNTERS,
            **self._precision_defaults(state_precision, seed),
            "silent_sgd_phase": silent_sgd_phase,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _step_group(self, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        step = group["k"] + 1
        beta2_t = beta2**step
        bias_correction2 = 1 - beta2_t
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2_t / bias_correction2
        adaptive = rho_t > 4.0
        if adaptive:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        else:
            rect = float(not group["silent_sgd_phase"])
        lr = float(group["lr"]) * rect
        ckp1 = self._advance(group, lr)
        self._adam_step(
            group,
            lr=lr,
            ckp1=ckp1,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            bias_correction2=bias_correction2,
            adaptive=adaptive,
            maximize=group["maximize"],
        )
