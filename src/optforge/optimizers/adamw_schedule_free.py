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

``state_precision: 8bit`` stores ``v`` as block-wise codes of its root and
``bf16`` in bfloat16 (:mod:`optforge.optimizers.low_precision`); ``z``, the
iterate itself, stays in the parameter's dtype (4 B/param for float32), so the
state is 5.03 B/param in 8 bits against 8. The update is computed in float32
from the decoded ``v``, which is stored again with stochastic rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from types import MappingProxyType
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
from optforge.optimizers.block_kernels import kernels, metadata
from optforge.optimizers.low_precision import (
    LowPrecisionState,
    block_layout,
    init_moment,
    keeps_full_precision,
    lerp_exact,
    local_item,
    noise,
    read_moment,
    row_pieces,
    sqrt_exact,
    stream_key,
    write_moment,
)
from optforge.optimizers.schedule_free import ScheduleFreeOptimizer

__all__ = ["AdamWScheduleFree", "LowPrecisionAdamScheduleFree", "adamw_schedule_free"]


class LowPrecisionAdamScheduleFree(LowPrecisionState, ScheduleFreeOptimizer):
    """Base of Schedule-Free AdamW and RAdam: ``z`` and a second moment that may be in bf16 or 8 bits."""

    MOMENTS = MappingProxyType({"exp_avg_sq": "sqrt"})
    EXTRA_STATE = ("z",)
    REQUIRED_STATE = ("z",)

    def _adam_step(self, group: dict[str, Any], **kwargs: Any) -> None:
        """One update of ``group`` (the arguments of :func:`adamw_schedule_free` but the tensors)."""
        precision = group.get("state_precision", "fp32")
        first = 0
        for other in self.param_groups:
            if other is group:
                break
            first += len(other["params"])
        params, grads, zs, exp_avg_sqs, coded = [], [], [], [], []
        for tensor, p in enumerate(group["params"], start=first):
            if p.grad is None:
                continue
            check_grad(type(self).__name__, p.grad)
            state = self.state[p]
            if "z" not in state:
                state["z"] = torch.clone(p, memory_format=torch.preserve_format).detach()
                init_moment(p, state, "exp_avg_sq", "sqrt", precision)
            if keeps_full_precision(p, precision) and "exp_avg_sq" in state:
                params.append(p)
                grads.append(p.grad)
                zs.append(state["z"])
                exp_avg_sqs.append(state["exp_avg_sq"])
            else:
                coded.append((tensor, p, p.grad, state))
        if params:
            adamw_schedule_free(params, grads, zs, exp_avg_sqs, **kwargs, **self._step_flags(group, params))
        if coded:
            fused = self._step_flags(group, [p for _, p, _, _ in coded])["fused"]
            _low_precision_adam_schedule_free(coded, group["seed"], group["k"] + 1, fused=fused, **kwargs)


def _low_precision_adam_schedule_free(items: list[Any], seed: int, step: int, *, fused: bool, **kwargs: Any) -> None:
    lr, ckp1, beta1, beta2 = kwargs["lr"], kwargs["ckp1"], kwargs["beta1"], kwargs["beta2"]
    bc2 = kwargs["bias_correction2"]
    # exact second moments keep |g| / sqrt(v / bc2) <= sqrt(bc2 / (1 - beta2)); decoded ones do too
    bound = math.sqrt(bc2 / (1 - beta2)) * (1 + 2**-20) if beta2 < 1 else 3.0e38
    values = [
        lr,
        ckp1,
        beta2,
        1 - beta2,
        bc2**-0.5,
        kwargs["eps"],
        kwargs["weight_decay"],
        lr * (beta1 * (1 - ckp1) - 1),
        -1.0 if kwargs.get("maximize") else 1.0,
        1.0 if kwargs.get("adaptive", True) else 0.0,
        1.0 if kwargs["weight_decay"] != 0 else 0.0,
        min(bound, 3.0e38),
        1.0,
    ]
    items = [local_item(item) for item in items]  # a DTensor's shards, at their place in the whole
    library = kernels() if fused else None
    if library is not None:
        chosen, rest = [], []
        for item in items:
            _, p, grad, state, _ = item
            ok = p.dtype == grad.dtype == torch.float32 and p.device.type == "cpu" and "exp_avg_sq_codes" in state
            ok = ok and p.is_contiguous() and grad.is_contiguous() and state["z"].is_contiguous()
            (chosen if ok and type(p) in (Tensor, torch.nn.Parameter) else rest).append(item)
        if chosen:
            meta: list[int] = []
            for tensor, p, _, _, first in chosen:
                meta += metadata(p, first, (stream_key(seed, step, tensor, 0),), blocked=True)
            lists = [[p for _, p, _, _, _ in chosen], [g for _, _, g, _, _ in chosen]]
            lists += [[s[key] for _, _, _, s, _ in chosen] for key in ("z", "exp_avg_sq_codes", "exp_avg_sq_scales")]
            library.run("sf_adamw_8bit", lists, meta, torch.tensor(values, dtype=torch.float32))
            for _, p, _, _, _ in chosen:
                torch.autograd.graph.increment_version(p)
        items = rest
    for tensor, p, grad, state, first in items:
        _eager_adam_schedule_free(p, grad, state, values, stream_key(seed, step, tensor, 0), first)


def _eager_adam_schedule_free(
    p: Tensor, grad: Tensor, state: dict[str, Any], values: list[float], key: int, first: int = 0
) -> None:
    """One Schedule-Free Adam update of ``p`` with a low-precision ``v``, a few rows at a time (the kernel's order).

    ``first``: the index of ``p``'s first element in the whole parameter (a shard's), for the random numbers.
    """
    values = torch.tensor(values, dtype=torch.float32).tolist()  # the kernels' float32 scalars
    lr, ckp1, beta2, one_minus_beta2, inv_bc2_sqrt, eps, weight_decay, y_coef, sign, adaptive = values[:10]
    bound = values[11]
    shape = p.shape
    rows, cols, _ = block_layout(shape)
    work = p.detach() if p.is_contiguous() else p.detach().contiguous()
    z_full = state["z"] if state["z"].is_contiguous() else state["z"].contiguous()
    flat_p, flat_g, flat_z = work.view(rows, cols), grad.contiguous().view(rows, cols), z_full.view(rows, cols)
    for piece in row_pieces(p):
        lo, hi = piece
        g = flat_g[lo:hi].float()
        if sign < 0:
            g = g.neg()
        y = flat_p[lo:hi] if work.dtype == torch.float32 else flat_p[lo:hi].float()
        z = flat_z[lo:hi] if z_full.dtype == torch.float32 else flat_z[lo:hi].float()
        v = read_moment(state, "exp_avg_sq", "sqrt", piece, shape).clone()
        v.mul_(beta2).add_(torch.mul(g, one_minus_beta2).mul_(g))  # one rounding per operation, as in C
        root = sqrt_exact(v)
        if adaptive > 0:
            direction = torch.div(g, (root * inv_bc2_sqrt).add_(eps)).clamp_(-bound, bound)
        else:
            direction = g
        if weight_decay != 0:
            direction = direction + y * weight_decay
        y.copy_(lerp_exact(y, z, ckp1).add_(direction * y_coef))
        z.sub_(direction * lr)
        if y.data_ptr() != flat_p[lo:hi].data_ptr():
            flat_p[lo:hi].copy_(y)
        if z.data_ptr() != flat_z[lo:hi].data_ptr():
            flat_z[lo:hi].copy_(z)
        random = noise(key, first + lo * cols, (hi - lo) * cols, p.device)
        write_moment(state, "exp_avg_sq", "sqrt", piece, shape, v, random, root=root)
    if work.data_ptr() != p.data_ptr():
        p.detach().copy_(work)
    if z_full.data_ptr() != state["z"].data_ptr():
        state["z"].copy_(z_full)


class AdamWScheduleFree(LowPrecisionAdamScheduleFree):
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
        state_precision: ``"fp32"`` (``v`` in the parameter's dtype), ``"bf16"`` or
            ``"8bit"`` (``v`` only; ``z`` keeps the parameter's dtype).
        seed: Seed of the stochastic rounding; ``None`` draws one from torch's
            default generator.

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

    STATE_TENSORS = ("z", "exp_avg_sq")  # under fp32; see LowPrecisionState for the others
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
            **self._precision_defaults(state_precision, seed),
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _step_group(self, group: dict[str, Any]) -> None:
        k, warmup_steps = group["k"], group["warmup_steps"]
        sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
        lr = float(group["lr"]) * sched
        ckp1 = self._advance(group, lr)
        beta1, beta2 = group["betas"]
        self._adam_step(
            group,
            lr=lr,
            ckp1=ckp1,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            bias_correction2=1 - beta2 ** (k + 1),
            maximize=group["maximize"],
        )


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
