r"""Lion: sign of an interpolated momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

.. math::

    c_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    \theta_t &= \theta_{t-1} (1 - \eta\lambda) - \eta\,\mathrm{sign}(c_t) \\
    m_t &= \beta_2 m_{t-1} + (1 - \beta_2) g_t

Bit-identical to ``lion_pytorch.Lion`` (same defaults, same operations) on the
single-tensor and foreach paths on CPU: always in float32 and float64; in
bfloat16 and float16 on one thread, or while no tensor has more than 32,768
elements. torch splits a larger tensor among threads and finishes each share
in a scalar loop that rounds these dtypes differently from its vector loop;
optforge updates large tensors in pieces whose shares end elsewhere, so a few
elements can differ in the last bit. The fused path computes the same formula
in one pass and agrees within float rounding. On every path a NaN in
``c_t`` has sign 0, as ``torch.sign`` has it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from optforge.optimizers import _fused
from optforge.optimizers._common import (
    CheckedStateLoading,
    StepPathChoice,
    as_real,
    check_betas,
    check_flags,
    check_grad,
    check_lr,
    check_range,
    choose_path,
    foreach_scale_,
    in_pieces,
    piece_groups,
)

__all__ = ["Lion", "lion"]


class Lion(CheckedStateLoading, StepPathChoice, Optimizer):
    """Lion: updates of size ``lr`` in the sign of interpolated momentum.

    Use an lr 3-10x smaller than AdamW's and a weight decay 3-10x larger
    (decay is multiplied by lr, as in AdamW). State: ``exp_avg``, same dtype
    as the parameter.

    Args:
        params: Parameters or param-group dicts.
        lr: Learning rate (step size per element), >= 0; a number or a 1-element tensor.
        betas: ``(beta1, beta2)``, each in [0, 1): interpolation for the sign,
            and momentum decay.
        weight_decay: Decoupled weight decay, >= 0 (``p *= 1 - lr * weight_decay``).
        maximize: Maximize the objective instead of minimizing.
        foreach: Use the multi-tensor (``torch._foreach_*``) implementation
            (``False``: the per-tensor loop).
        fused: Use the single-pass compiled implementation (on CPU a C loop built
            by the system compiler, about 0.1 s once per machine; on CUDA
            ``torch.compile``, seconds on the first step). With neither flag
            set, the fused path is used where it is safe and pays off (a
            working compiler; 65,536+ elements per group on CPU, 4M+ on CUDA),
            else foreach on CUDA and the loop on CPU; ``optimizer.step_path``
            says which and why.

    Example:
        >>> import torch
        >>> from optforge.optimizers import Lion
        >>> p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = Lion([p], lr=0.1)
        >>> p.grad = torch.tensor([0.5, -0.5])
        >>> opt.step()
        >>> p.detach()
        tensor([ 0.9000, -1.9000])
    """

    STATE_TENSORS = ("exp_avg",)
    GROUP_KEYS = ("lr", "betas", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        betas = check_betas(betas)
        check_range(weight_decay, "weight_decay")
        check_flags(foreach, fused)
        defaults = {
            "lr": lr,
            "betas": betas,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)

    def _init_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]
    ) -> None:
        state_of = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            check_grad("Lion", grad)
            state = state_of[p]
            if not state:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(grad)
            exp_avgs.append(state["exp_avg"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            self._init_group(group, params, grads, exp_avgs)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            lion(
                params,
                grads,
                exp_avgs,
                lr=float(group["lr"]),
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                maximize=group["maximize"],
                **self._step_flags(group, params),
            )
        return loss


def lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> None:
    """Functional Lion update, in place, over lists of tensors (see :class:`Lion`)."""
    func = choose_path(
        params,
        foreach,
        fused,
        single=_single_tensor_lion,
        multi=_multi_tensor_lion,
        fused_path=_fused_lion,
    )
    func(
        as_real(params),
        as_real(grads),
        as_real(exp_avgs),
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        weight_decay=weight_decay,
        maximize=maximize,
    )


def _single_tensor_lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    for param, grad, exp_avg in zip(*in_pieces([params, grads, exp_avgs])):
        if maximize:
            grad = torch.neg(grad)
        if weight_decay != 0:
            param.mul_(1 - lr * weight_decay)
        update = torch.mul(exp_avg, beta1).add_(grad, alpha=1 - beta1).sign_()
        param.add_(update, alpha=-lr)
        exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)


def _multi_tensor_lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    grouped = Optimizer._group_tensors_by_device_and_dtype([params, grads, exp_avgs])  # type: ignore[list-item]
    for (all_params, all_grads, all_exp_avgs), _ in grouped.values():
        for device_params, device_grads, device_exp_avgs in piece_groups([all_params, all_grads, all_exp_avgs]):
            _multi_tensor_lion_group(
                device_params, device_grads, device_exp_avgs, lr, beta1, beta2, weight_decay, maximize
            )


def _multi_tensor_lion_group(
    device_params: list[Tensor],
    device_grads: list[Tensor],
    device_exp_avgs: list[Tensor],
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One multi-tensor Lion update over tensors of one device and dtype."""
    if maximize:
        device_grads = torch._foreach_neg(device_grads)
    if weight_decay != 0:
        foreach_scale_(device_params, 1 - lr * weight_decay)
    updates = torch._foreach_mul(device_exp_avgs, beta1)
    torch._foreach_add_(updates, device_grads, alpha=1 - beta1)
    torch._foreach_sign_(updates)
    torch._foreach_add_(device_params, updates, alpha=-lr)
    foreach_scale_(device_exp_avgs, beta2)
    torch._foreach_add_(device_exp_avgs, device_grads, alpha=1 - beta2)


def _lion_kernel(param: Tensor, grad: Tensor, exp_avg: Tensor, s: Tensor) -> None:
    # s = [lr, 1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, +1 or -1 (maximize)]
    grad = grad * s[6]
    update = torch.sign(exp_avg * s[2] + grad * s[3])
    param.copy_(param * s[1] - update * s[0])
    exp_avg.copy_(exp_avg * s[4] + grad * s[5])


def _fused_lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    values = (lr, 1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, -1.0 if maximize else 1.0)
    kwargs = {"lr": lr, "beta1": beta1, "beta2": beta2, "weight_decay": weight_decay, "maximize": maximize}
    _fused.apply_fused(
        _lion_kernel,
        [params, grads, exp_avgs],
        written=(0, 2),
        make_scalars=lambda like: _fused.scalar_tensor(values, like),
        fallback=lambda lists: _single_tensor_lion(*lists, **kwargs),
        owned=(2,),
    )
