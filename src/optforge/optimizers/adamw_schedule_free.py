r"""Schedule-Free AdamW, and the Adam-style update it shares with Schedule-Free RAdam.

Per step, with ``c`` the averaging weight (see :mod:`optforge.optimizers.schedule_free`):

.. math::

    v &\leftarrow \beta_2 v + (1 - \beta_2) g^2, \qquad
    d = \frac{g}{\sqrt{v / (1 - \beta_2^{k+1})} + \epsilon} + \lambda y \\
    y &\leftarrow \mathrm{lerp}(y, z, c) + \eta (\beta_1 (1 - c) - 1) d, \qquad
    z \leftarrow z - \eta d

Numerically identical to ``schedulefree.AdamWScheduleFree`` 1.4.1 on the
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
    check_betas,
    check_flags,
    check_grad,
    check_lr,
    check_range,
    check_steps,
    choose_path,
    foreach_scale_,
    in_pieces,
    piece_groups,
)
from optforge.optimizers.schedule_free import ScheduleFreeOptimizer

__all__ = ["AdamWScheduleFree", "adamw_schedule_free"]


class AdamWScheduleFree(ScheduleFreeOptimizer):
    """AdamW without a learning-rate schedule: iterate averaging replaces the decay.

    Call ``optimizer.train()`` before training steps and ``optimizer.eval()``
    before evaluating or saving (or use ``with optimizer.eval_mode():``).
    State: ``z`` and ``exp_avg_sq``, same dtype as the parameter.

    Args:
        params: Parameters or param-group dicts.
        lr: Peak learning rate, >= 0; a number or a 1-element tensor.
        betas: ``(beta1, beta2)``: beta1 in (0, 1) interpolates ``y`` between
            ``z`` and ``x``; beta2 in [0, 1) decays the second moment.
        eps: Added to the denominator, >= 0.
        weight_decay: Decay computed at ``y`` and multiplied by lr, >= 0.
        warmup_steps: Linear warmup of the lr over this many steps.
        r: Polynomial weighting of the average, ``(k + 1) ** r``, >= 0.
        weight_lr_power: Average weights proportional to ``lr_max ** weight_lr_power``, >= 0.
        maximize: Maximize the objective instead of minimizing.
        foreach: Use the multi-tensor implementation (``False``: the per-tensor loop).
        fused: Use the single-pass compiled implementation. With neither flag
            set, the fused path is used where it is safe and pays off (see
            :class:`~optforge.optimizers.Lion`); ``optimizer.step_path`` says which.

    Example:
        >>> import torch
        >>> from optforge.optimizers import AdamWScheduleFree
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = AdamWScheduleFree(model.parameters(), lr=1e-2, warmup_steps=10)
        >>> _ = opt.train()
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     model(torch.ones(2, 3)).pow(2).mean().backward()
        ...     opt.step()
        >>> round(opt.param_groups[0]["scheduled_lr"], 6)
        0.003
        >>> with opt.eval_mode():  # parameters hold the average x here
        ...     _ = model(torch.ones(1, 3))
    """

    STATE_TENSORS = ("z", "exp_avg_sq")
    GROUP_KEYS = ("lr", "betas", "eps", "weight_decay", "warmup_steps", "r", "weight_lr_power")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
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
        betas = check_betas(betas, beta1_low_open=True)
        check_range(eps, "eps")
        check_range(weight_decay, "weight_decay")
        check_steps(warmup_steps, "warmup_steps")
        check_range(r, "r")
        check_range(weight_lr_power, "weight_lr_power")
        check_flags(foreach, fused)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
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

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        zs: list[Tensor],
        exp_avg_sqs: list[Tensor],
    ) -> None:
        init_adam_group(self, group, params, grads, zs, exp_avg_sqs)

    def _step_group(self, group: dict[str, Any]) -> None:
        params: list[Tensor] = []
        grads: list[Tensor] = []
        zs: list[Tensor] = []
        exp_avg_sqs: list[Tensor] = []
        self._init_group(group, params, grads, zs, exp_avg_sqs)
        k, warmup_steps = group["k"], group["warmup_steps"]
        sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
        lr = float(group["lr"]) * sched
        ckp1 = self._advance(group, lr)
        if not params:
            return
        beta1, beta2 = group["betas"]
        adamw_schedule_free(
            params,
            grads,
            zs,
            exp_avg_sqs,
            lr=lr,
            ckp1=ckp1,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            bias_correction2=1 - beta2 ** (k + 1),
            maximize=group["maximize"],
            **self._step_flags(group, params),
        )


def init_adam_group(
    optimizer: Optimizer,
    group: dict[str, Any],
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    exp_avg_sqs: list[Tensor],
) -> None:
    """Collect params with a gradient, their gradients, ``z`` and ``exp_avg_sq`` (created lazily)."""
    name, state_of = type(optimizer).__name__, optimizer.state
    for p in group["params"]:
        grad = p.grad
        if grad is None:
            continue
        check_grad(name, grad)
        state = state_of[p]
        if "z" not in state:
            state["z"] = torch.clone(p, memory_format=torch.preserve_format).detach()
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        params.append(p)
        grads.append(grad)
        zs.append(state["z"])
        exp_avg_sqs.append(state["exp_avg_sq"])


def adamw_schedule_free(
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    *,
    lr: float,
    ckp1: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction2: float,
    adaptive: bool = True,
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> None:
    """Functional Schedule-Free Adam update, in place (``params`` hold ``y``).

    ``lr`` is the scheduled lr and ``ckp1`` the averaging weight of this step;
    ``adaptive=False`` skips the division by the second moment (RAdam's early
    steps) while still updating it.
    """
    func = choose_path(
        params,
        foreach,
        fused,
        single=_single_tensor_adamw_schedule_free,
        multi=_multi_tensor_adamw_schedule_free,
        fused_path=_fused_adamw_schedule_free,
    )
    func(
        as_real(params),
        as_real(grads),
        as_real(zs),
        as_real(exp_avg_sqs),
        lr=lr,
        ckp1=ckp1,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        bias_correction2=bias_correction2,
        adaptive=adaptive,
        maximize=maximize,
    )


def _single_tensor_adamw_schedule_free(
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    *,
    lr: float,
    ckp1: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction2: float,
    adaptive: bool,
    maximize: bool,
) -> None:
    y_coef = lr * (beta1 * (1 - ckp1) - 1)
    for y, grad, z, exp_avg_sq in zip(*in_pieces([params, grads, zs, exp_avg_sqs])):
        if maximize:
            grad = torch.neg(grad)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if adaptive:
            denom = exp_avg_sq.div(bias_correction2).sqrt_().add_(eps)
            direction = torch.div(grad, denom, out=denom)
        else:
            direction = grad
        if weight_decay != 0:
            direction = torch.add(direction, y, alpha=weight_decay, out=None if direction is grad else direction)
        y.lerp_(z, ckp1)
        y.add_(direction, alpha=y_coef)
        z.sub_(direction, alpha=lr)


def _multi_tensor_adamw_schedule_free(
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    *,
    lr: float,
    ckp1: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction2: float,
    adaptive: bool,
    maximize: bool,
) -> None:
    y_coef = lr * (beta1 * (1 - ckp1) - 1)
    grouped = Optimizer._group_tensors_by_device_and_dtype([params, grads, zs, exp_avg_sqs])  # type: ignore[list-item]
    for device_lists, _ in grouped.values():
        for ys, device_grads, device_zs, device_exp_avg_sqs in piece_groups(device_lists):
            if maximize:
                device_grads = torch._foreach_neg(device_grads)
            foreach_scale_(device_exp_avg_sqs, beta2)
            torch._foreach_addcmul_(device_exp_avg_sqs, device_grads, device_grads, value=1 - beta2)
            if adaptive:
                denom = torch._foreach_div(device_exp_avg_sqs, bias_correction2)
                torch._foreach_sqrt_(denom)
                torch._foreach_add_(denom, eps)
                directions = torch._foreach_div(device_grads, denom)
                del denom
                if weight_decay != 0:
                    torch._foreach_add_(directions, ys, alpha=weight_decay)
            elif weight_decay != 0:
                directions = torch._foreach_add(device_grads, ys, alpha=weight_decay)
            else:
                directions = device_grads
            torch._foreach_lerp_(ys, device_zs, ckp1)
            torch._foreach_add_(ys, directions, alpha=y_coef)
            torch._foreach_sub_(device_zs, directions, alpha=lr)


def _adam_schedule_free_kernel(y: Tensor, grad: Tensor, z: Tensor, exp_avg_sq: Tensor, s: Tensor) -> None:
    # s = [lr, ckp1, beta2, 1 - beta2, 1 / sqrt(bias_correction2), eps, weight_decay, y_coef, +-1, adaptive,
    #      decay on (1) or off (0)]
    # (one division per element instead of two: CPUs divide and take roots slowly)
    grad = grad * s[8]
    v = exp_avg_sq * s[2] + s[3] * grad * grad
    normalized = grad / (v.sqrt() * s[4] + s[5])
    direction = torch.where(s[9] > 0, normalized, grad)
    # as in the eager update, y joins the direction only with decay (0 * inf is NaN)
    direction = torch.where(s[10] > 0, direction + y * s[6], direction)
    y.copy_(_fused.lerp(y, z, s[1]) + direction * s[7])
    z.copy_(z - direction * s[0])
    exp_avg_sq.copy_(v)


def _fused_adamw_schedule_free(
    params: list[Tensor],
    grads: list[Tensor],
    zs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    **kwargs: Any,
) -> None:
    lr, ckp1, beta1, beta2 = kwargs["lr"], kwargs["ckp1"], kwargs["beta1"], kwargs["beta2"]
    values = (
        lr,
        ckp1,
        beta2,
        1 - beta2,
        kwargs["bias_correction2"] ** -0.5,
        kwargs["eps"],
        kwargs["weight_decay"],
        lr * (beta1 * (1 - ckp1) - 1),
        -1.0 if kwargs["maximize"] else 1.0,
        1.0 if kwargs["adaptive"] else 0.0,
        1.0 if kwargs["weight_decay"] != 0 else 0.0,
    )
    _fused.apply_fused(
        _adam_schedule_free_kernel,
        [params, grads, zs, exp_avg_sqs],
        written=(0, 2, 3),
        make_scalars=lambda like: _fused.scalar_tensor(values, like),
        fallback=lambda lists: _single_tensor_adamw_schedule_free(*lists, **kwargs),
        owned=(2, 3),
    )
