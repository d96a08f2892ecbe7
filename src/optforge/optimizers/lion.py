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
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from optforge.optimizers import _fused
from optforge.optimizers._common import (
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
from optforge.optimizers.block_kernels import kernels, metadata
from optforge.optimizers.low_precision import (
    LowPrecisionState,
    block_layout,
    init_moment,
    keeps_full_precision,
    local_item,
    noise,
    read_moment,
    row_pieces,
    stream_key,
    write_moment,
)

__all__ = ["Lion", "lion"]


class Lion(LowPrecisionState, StepPathChoice, Optimizer):
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
        state_precision: ``"fp32"`` (momentum in the parameter's dtype),
            ``"bf16"`` or ``"8bit"`` (see :class:`~optforge.optimizers.AdamW`):
            the update is computed in float32 from the decoded momentum, which
            is stored again with stochastic rounding. Low-precision state adds
            a ``step`` count to each parameter's state (it seeds the rounding).
        seed: Seed of the stochastic rounding; ``None`` draws one from torch's
            default generator.

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

    STATE_TENSORS = ("exp_avg",)  # under fp32; see LowPrecisionState for the others
    MOMENTS = MappingProxyType({"exp_avg": "signed"})
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
        state_precision: str = "fp32",
        seed: int | None = None,
    ) -> None:
        check_lr(lr)
        betas = check_betas(betas)
        check_range(weight_decay, "weight_decay")
        check_flags(foreach, fused)
        defaults = {
            "lr": lr,
            "betas": betas,
            "weight_decay": weight_decay,
            **self._precision_defaults(state_precision, seed),
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
        for index, group in enumerate(self.param_groups):
            if group.get("state_precision", "fp32") != "fp32":
                self._low_precision_step(index, group)
                continue
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            self._init_group(group, params, grads, exp_avgs)
            if params:
                self._plain_step(group, params, exp_avgs)
        return loss

    def _plain_step(self, group: dict[str, Any], params: list[Tensor], exp_avgs: list[Tensor]) -> None:
        beta1, beta2 = group["betas"]
        lion(
            params,
            [p.grad for p in params],  # type: ignore[misc]
            exp_avgs,
            lr=float(group["lr"]),
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
            **self._step_flags(group, params),
        )

    def _low_precision_step(self, group_index: int, group: dict[str, Any]) -> None:
        first = sum(len(g["params"]) for g in self.param_groups[:group_index])
        items = []
        for tensor, p in enumerate(group["params"], start=first):
            if p.grad is None:
                continue
            check_grad("Lion", p.grad)
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                init_moment(p, state, "exp_avg", "signed", group.get("state_precision", "fp32"))
            state["step"] += 1
            items.append((tensor, p, p.grad, state))
        # parameters too small to quantize keep a momentum in their own dtype: the full-precision update
        precision = group["state_precision"]
        plain = [item for item in items if keeps_full_precision(item[1], precision) and "exp_avg" in item[3]]
        if plain:
            items = [item for item in items if not (keeps_full_precision(item[1], precision) and "exp_avg" in item[3])]
            self._plain_step(group, [p for _, p, _, _ in plain], [s["exp_avg"] for _, _, _, s in plain])
        if not items:
            return
        lr, (beta1, beta2), seed = float(group["lr"]), group["betas"], group["seed"]
        values = [lr, 1 - lr * group["weight_decay"], beta1, 1 - beta1, beta2, 1 - beta2]
        values += [-1.0 if group["maximize"] else 1.0, 1.0]
        library = kernels() if self._step_flags(group, [p for _, p, _, _ in items])["fused"] else None
        local = [local_item(item) for item in items]  # a DTensor's shards, at their place in the whole
        if library is not None:
            local = _fused_low_precision_lion(library, local, values, seed)
        for tensor, p, grad, state, first in local:
            key = stream_key(seed, int(state["step"]), tensor, 0)
            _eager_low_precision_lion(p, grad, state, values, key, first)


def _fused_low_precision_lion(library: Any, items: list[Any], values: list[float], seed: int) -> list[Any]:
    """Run the C kernels on the float32 CPU tensors of ``items``; the rest, for the eager update."""
    rest, blocks, bf16 = [], [], []
    for item in items:
        _, p, grad, state, _ = item
        ok = p.dtype == grad.dtype == torch.float32 and p.device.type == "cpu"
        ok = ok and p.is_contiguous() and grad.is_contiguous() and type(p) in (Tensor, torch.nn.Parameter)
        if ok and "exp_avg_codes" in state:
            blocks.append(item)
        elif ok and state["exp_avg"].dtype == torch.bfloat16:
            bf16.append(item)
        else:
            rest.append(item)
    scalars = torch.tensor(values, dtype=torch.float32)
    for chosen, name, keys in (
        (blocks, "lion_8bit", ("exp_avg_codes", "exp_avg_scales")),
        (bf16, "lion_bf16", ("exp_avg",)),
    ):
        if not chosen:
            continue
        meta: list[int] = []
        for tensor, p, _, state, first in chosen:
            key = stream_key(seed, int(state["step"]), tensor, 0)
            meta += metadata(p, first, (key,), blocked=name == "lion_8bit")
        lists = [[p for _, p, _, _, _ in chosen], [g for _, _, g, _, _ in chosen]]
        lists += [[s[key] for _, _, _, s, _ in chosen] for key in keys]
        library.run(name, lists, meta, scalars)
        for _, p, _, _, _ in chosen:
            torch.autograd.graph.increment_version(p)
    return rest


def _eager_low_precision_lion(
    p: Tensor, grad: Tensor, state: dict[str, Any], values: list[float], key: int, first: int = 0
) -> None:
    """One Lion update of ``p`` with a low-precision momentum, a few rows at a time.

    ``first``: the index of ``p``'s first element in the whole parameter (a shard's), for the random numbers.
    """
    values = torch.tensor(values, dtype=torch.float32).tolist()  # the kernels' float32 scalars
    lr, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, sign, _ = values
    shape = p.shape
    rows, cols, _ = block_layout(shape)
    work = p.detach() if p.is_contiguous() else p.detach().contiguous()
    flat_p, flat_g = work.view(rows, cols), grad.contiguous().view(rows, cols)
    for piece in row_pieces(p):
        lo, hi = piece
        g = flat_g[lo:hi].float()
        if sign < 0:
            g = g.neg()
        param = flat_p[lo:hi] if work.dtype == torch.float32 else flat_p[lo:hi].float()
        m = read_moment(state, "exp_avg", "signed", piece, shape).clone()
        param.mul_(decay)
        update = torch.mul(m, beta1).add_(torch.mul(g, one_minus_beta1)).sign_()  # the C kernels' roundings
        param.add_(update, alpha=-lr)  # exact: the update is -1, 0 or 1
        m.mul_(beta2).add_(torch.mul(g, one_minus_beta2))
        if param.data_ptr() != flat_p[lo:hi].data_ptr():
            flat_p[lo:hi].copy_(param)
        random = noise(key, first + lo * cols, (hi - lo) * cols, p.device)
        write_moment(state, "exp_avg", "signed", piece, shape, m, random)
    if work.data_ptr() != p.data_ptr():
        p.detach().copy_(work)


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
