r"""Schedule-Free SGD.

Per step, with ``c`` the averaging weight (see :mod:`optforge.optimizers.schedule_free`):

.. math::

    d = g + \lambda y, \qquad
    y \leftarrow \mathrm{lerp}(y, z, c) + \eta (\mu (1 - c) - 1) d, \qquad
    z \leftarrow z - \eta d

Numerically identical to ``schedulefree.SGDScheduleFree`` 1.4.1 on the
single-tensor and foreach paths in float32 and float64 (the gradients are left
untouched here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from optforge.optimizers import _fused
from optforge.optimizers._common import (
    as_real,
    check_flags,
    check_grad,
    check_lr,
    check_range,
    check_steps,
    choose_path,
    in_pieces,
    piece_groups,
)
from optforge.optimizers.schedule_free import ScheduleFreeOptimizer
from optforge.ranges import OPEN_UNIT

__all__ = ["SGDScheduleFree", "sgd_schedule_free"]


class SGDScheduleFree(ScheduleFreeOptimizer):
    """SGD with momentum and without a learning-rate schedule.

    Same modes as :class:`AdamWScheduleFree`. State: ``z``, same dtype as the parameter.

    Args:
        params: Parameters or param-group dicts.
        lr: Peak learning rate, >= 0 (default 1.0, as in the paper); a number or a 1-element tensor.
        momentum: Interpolation ``y = (1 - momentum) z + momentum x``, in (0, 1).
        weight_decay: L2 penalty added to the gradient at ``y``, >= 0.
        warmup_steps: Linear warmup of the lr over this many steps.
        r: Polynomial weighting of the average, >= 0.
        weight_lr_power: Average weights proportional to ``lr_max ** weight_lr_power``, >= 0.
        maximize: Maximize the objective instead of minimizing.
        foreach: Use the multi-tensor implementation (``False``: the per-tensor loop).
        fused: Use the single-pass compiled implementation. With neither flag
            set, the fused path is used where it is safe and pays off (see
            :class:`~optforge.optimizers.Lion`); ``optimizer.step_path`` says which.

    Example:
        >>> import torch
        >>> from optforge.optimizers import SGDScheduleFree
        >>> p = torch.nn.Parameter(torch.zeros(2))
        >>> opt = SGDScheduleFree([p], lr=0.5)
        >>> _ = opt.train()
        >>> p.grad = torch.tensor([1.0, -1.0])
        >>> opt.step()
        >>> p.detach(), opt.state[p]["z"]
        (tensor([-0.5000,  0.5000]), tensor([-0.5000,  0.5000]))
    """

    STATE_TENSORS = ("z",)
    GROUP_KEYS = ("lr", "momentum", "weight_decay", "warmup_steps", "r", "weight_lr_power")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_range(momentum, "momentum", OPEN_UNIT)
        check_range(weight_decay, "weight_decay")
        check_steps(warmup_steps, "warmup_steps")
        check_range(r, "r")
        check_range(weight_lr_power, "weight_lr_power")
        check_flags(foreach, fused)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "warmup_steps": warmup_steps,
            "r": r,
            "weight_lr_power": weight_lr_power,
            **self.COUNTERS,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["momentum"]

    def _init_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], zs: list[Tensor]) -> None:
        name, state_of = type(self).__name__, self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            check_grad(name, grad)
            state = state_of[p]
            if "z" not in state:
                state["z"] = torch.clone(p, memory_format=torch.preserve_format).detach()
            params.append(p)
            grads.append(grad)
            zs.append(state["z"])

    def _step_group(self, group: dict[str, Any]) -> None:
        params: list[Tensor] = []
        grads: list[Tensor] = []
        zs: list[Tensor] = []
        self._init_group(group, params, grads, zs)
        k, warmup_steps = group["k"], group["warmup_steps"]
        sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
        lr = float(group["lr"]) * sched
        ckp1 = self._advance(group, lr)
        if not params:
            return
        sgd_schedule_free(
            params,
            grads,
            zs,
            lr=lr,
            ckp1=ckp1,
            momentum=group["momentum"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
            **self._step_flags(group, params),
        )


def sgd_schedule_free(
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    *,
    lr: float,
    ckp1: float,
    momentum: float,
    weight_decay: float,
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> None:
    """Functional Schedule-Free SGD update, in place (``params`` hold ``y``)."""
    func = choose_path(
        params,
        foreach,
        fused,
        single=_single_tensor_sgd_schedule_free,
        multi=_multi_tensor_sgd_schedule_free,
        fused_path=_fused_sgd_schedule_free,
    )
    func(
        as_real(params),
        as_real(grads),
        as_real(zs),
        lr=lr,
        ckp1=ckp1,
        momentum=momentum,
        weight_decay=weight_decay,
        maximize=maximize,
    )


def _makes_temporaries(weight_decay: float, maximize: bool) -> bool:
    """Whether the eager update allocates gradient-sized tensors.

    Without weight decay or ``maximize`` it is three in-place operations, which run
    faster on whole tensors than on pieces.
    """
    return maximize or weight_decay != 0


def _single_tensor_sgd_schedule_free(
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    *,
    lr: float,
    ckp1: float,
    momentum: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    y_coef = lr * (momentum * (1 - ckp1) - 1)
    tensor_lists = [params, grads, zs]
    if _makes_temporaries(weight_decay, maximize):
        tensor_lists = in_pieces(tensor_lists)  # temporaries the size of a piece, not of the largest tensor
    for y, grad, z in zip(*tensor_lists):
        if maximize:
            grad = torch.neg(grad)
            if weight_decay != 0:
                grad.add_(y, alpha=weight_decay)
        elif weight_decay != 0:
            grad = torch.add(grad, y, alpha=weight_decay)
        y.lerp_(z, ckp1)
        y.add_(grad, alpha=y_coef)
        z.sub_(grad, alpha=lr)


def _multi_tensor_sgd_schedule_free(
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    *,
    lr: float,
    ckp1: float,
    momentum: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    y_coef = lr * (momentum * (1 - ckp1) - 1)
    grouped = Optimizer._group_tensors_by_device_and_dtype([params, grads, zs])  # type: ignore[list-item]
    for device_lists, _ in grouped.values():
        groups = piece_groups(device_lists) if _makes_temporaries(weight_decay, maximize) else [device_lists]
        for ys, device_grads, device_zs in groups:
            if maximize:
                device_grads = torch._foreach_neg(device_grads)
                if weight_decay != 0:
                    torch._foreach_add_(device_grads, ys, alpha=weight_decay)
            elif weight_decay != 0:
                device_grads = torch._foreach_add(device_grads, ys, alpha=weight_decay)
            torch._foreach_lerp_(ys, device_zs, ckp1)
            torch._foreach_add_(ys, device_grads, alpha=y_coef)
            torch._foreach_sub_(device_zs, device_grads, alpha=lr)


def _sgd_schedule_free_kernel(y: Tensor, grad: Tensor, z: Tensor, s: Tensor) -> None:
    # s = [lr, ckp1, weight_decay, y_coef, +-1 (maximize), decay on (1) or off (0)]
    grad = grad * s[4]
    # as in the eager update, y joins the direction only with decay (0 * inf is NaN)
    direction = torch.where(s[5] > 0, grad + y * s[2], grad)
    y.copy_(_fused.lerp(y, z, s[1]) + direction * s[3])
    z.copy_(z - direction * s[0])


def _fused_sgd_schedule_free(params: list[Tensor], grads: list[Tensor], zs: list[Tensor], **kwargs: Any) -> None:
    lr, ckp1 = kwargs["lr"], kwargs["ckp1"]
    values = (
        lr,
        ckp1,
        kwargs["weight_decay"],
        lr * (kwargs["momentum"] * (1 - ckp1) - 1),
        -1.0 if kwargs["maximize"] else 1.0,
        1.0 if kwargs["weight_decay"] != 0 else 0.0,
    )
    _fused.apply_fused(
        _sgd_schedule_free_kernel,
        [params, grads, zs],
        written=(0, 2),
        make_scalars=lambda like: _fused.scalar_tensor(values, like),
        fallback=lambda lists: _single_tensor_sgd_schedule_free(*lists, **kwargs),
        owned=(2,),
    )
