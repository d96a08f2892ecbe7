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
from optforge.optimizers.low_precision import (
    PIECE_NUMEL,
    bf16_stochastic,
    check_precision,
    draw_seed,
    noise,
    stream_key,
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
        state_precision: ``"fp32"`` (``z`` in the parameter's dtype) or ``"bf16"``
            (``z`` in bfloat16, rounded stochastically; complex parameters keep
            theirs); ``"8bit"`` is refused: ``z`` is the iterate itself.
        stochastic_rounding: Write bfloat16 parameters (``y``) with stochastic
            rounding, so that updates far below one bfloat16 ulp still add up
            without an fp32 master copy.
        seed: Seed of the stochastic rounding; ``None`` draws one from torch's
            default generator (``torch.manual_seed`` fixes it).
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
        state_precision: str = "fp32",
        stochastic_rounding: bool = False,
        seed: int | None = None,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        _check_sgd_precision(state_precision)
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
        self._rounding_seed = None if seed is None else int(seed)
        if state_precision != "fp32":
            defaults["state_precision"] = state_precision
        if stochastic_rounding:
            defaults["stochastic_rounding"] = True
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _check_sgd_precision(group.get("state_precision", "fp32"))
        rounds = group.get("state_precision", "fp32") != "fp32" or group.get("stochastic_rounding")
        if rounds and "seed" not in group:
            if self._rounding_seed is None:
                self._rounding_seed = draw_seed()
            group["seed"] = self._rounding_seed

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Check and load ``state_dict``; ``z`` comes back at this optimizer's ``state_precision``."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and "z" in state:
                    bf16 = group.get("state_precision", "fp32") == "bf16" and not p.is_complex()
                    dtype = torch.bfloat16 if bf16 else p.dtype
                    state["z"] = state["z"].to(dtype)

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
                if group.get("state_precision", "fp32") == "bf16" and not p.is_complex():
                    state["z"] = state["z"].to(torch.bfloat16)
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
        rounded = group.get("stochastic_rounding", False)
        first = 0
        for other in self.param_groups:
            if other is group:
                break
            first += len(other["params"])
        index = {id(p): first + i for i, p in enumerate(group["params"])}
        own = [
            i
            for i, (p, z) in enumerate(zip(params, zs))
            if z.dtype != p.dtype or (rounded and p.dtype == torch.bfloat16)
        ]
        for i in own:
            keys = [stream_key(group["seed"], group["k"] + 1, index[id(params[i])], stream) for stream in (0, 1)]
            _rounded_sgd_schedule_free(params[i], grads[i], zs[i], group, lr, ckp1, keys, rounded)
        if own:
            skip = set(own)
            params, grads, zs = ([t for i, t in enumerate(x) if i not in skip] for x in (params, grads, zs))
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


def _check_sgd_precision(value: Any) -> None:
    check_precision(
        value,
        allowed=("fp32", "bf16"),
        why=" (Schedule-Free SGD's only state is z, the iterate itself: it cannot be held in 8 bits)",
    )


def _rounded_sgd_schedule_free(
    y: Tensor,
    grad: Tensor,
    z: Tensor,
    group: dict[str, Any],
    lr: float,
    ckp1: float,
    keys: list[int],
    rounded: bool,
) -> None:
    """The update in float32, a piece at a time; bfloat16 ``z`` (and ``y`` where ``rounded``) rounded stochastically."""
    y_coef = lr * (group["momentum"] * (1 - ckp1) - 1)
    work_y = y.detach() if y.is_contiguous() else y.detach().contiguous()
    work_z = z if z.is_contiguous() else z.contiguous()
    flat_y, flat_g, flat_z = work_y.view(-1), grad.reshape(-1), work_z.view(-1)
    for start in range(0, flat_y.numel(), PIECE_NUMEL):
        end = min(flat_y.numel(), start + PIECE_NUMEL)
        y32, z32, g = flat_y[start:end].float(), flat_z[start:end].float(), flat_g[start:end].float()
        if group["maximize"]:
            g = g.neg()
        if group["weight_decay"] != 0:
            g = g + y32 * group["weight_decay"]
        y32 = y32.lerp(z32, ckp1).add_(g, alpha=y_coef)
        z32 = z32.sub(g, alpha=lr)
        for target, value, key in ((flat_z, z32, keys[0]), (flat_y, y32, keys[1])):
            if target.dtype == torch.bfloat16 and (rounded or target is flat_z):
                target[start:end] = bf16_stochastic(value, noise(key, start, end - start, value.device))
            else:
                target[start:end] = value
    if work_y.data_ptr() != y.data_ptr():
        y.detach().copy_(work_y)
    if work_z.data_ptr() != z.data_ptr():
        z.copy_(work_z)
    torch.autograd.graph.increment_version(y)


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
