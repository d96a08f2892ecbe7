r"""optforge's AdamW: torch's update, with the moments optionally in bfloat16 or 8 bits.

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \theta_t &= \theta_{t-1} (1 - \eta\lambda)
        - \eta \, \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

With ``state_precision="fp32"`` every step is ``torch.optim.adamw.adamw``
(bit-identical to ``torch.optim.AdamW`` with the same flags). With ``"bf16"``
the moments are stored in bfloat16, with ``"8bit"`` as block-wise codes
(:mod:`optforge.optimizers.low_precision`; parameters under 4,096 elements or
of one dimension keep float32 moments and torch's update). In both the update
is computed in float32 from the decoded moments, which are then stored again
with stochastic rounding, so the first step from a zero state is the float32
step. Under ``8bit`` the normalized update is clamped to the largest magnitude
exact moments can reach (Cauchy-Schwarz: ``|m| <= (1 - beta1) / sqrt(1 - beta2)
* sqrt(sum_j (beta1^2 / beta2)^j) * sqrt(v)``, with bias corrections), a bound
full-precision moments never exceed: decoded moments can.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.adamw import adamw as torch_adamw

from optforge.optimizers._common import (
    StepPathChoice,
    check_betas,
    check_flags,
    check_grad,
    check_lr,
    check_range,
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

__all__ = ["AdamW", "adam_bound"]


def adam_bound(beta1: float, beta2: float, step: int) -> float:
    """The largest ``|m_hat| / sqrt(v_hat)`` exact Adam moments reach after ``step`` steps (``inf``: unbounded).

    Example:
        >>> adam_bound(0.9, 0.999, 1)
        1.0
    """
    if beta2 == 0.0:
        return math.inf
    rho = beta1 * beta1 / beta2
    try:
        total = float(step) if rho == 1.0 else (1.0 - rho**step) / (1.0 - rho)
    except OverflowError:
        return math.inf
    bound = (1 - beta1) * math.sqrt((1 - beta2**step) * total / (1 - beta2)) / (1 - beta1**step)
    return bound * (1 + 2**-20) if step > 1 else 1.0


class AdamW(LowPrecisionState, StepPathChoice, Optimizer):
    """AdamW whose moments can be stored in bfloat16 or 8 bits (``state_precision``).

    Args:
        params: Parameters or param-group dicts.
        lr: Learning rate, >= 0; a number or a 1-element tensor (kept as given).
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: Added to the denominator, >= 0.
        weight_decay: Decoupled weight decay, >= 0.
        state_precision: ``"fp32"`` (torch's state and update), ``"bf16"`` or ``"8bit"``.
        seed: Seed of the stochastic rounding; ``None`` draws one from torch's
            default generator (so ``torch.manual_seed`` fixes it).
        maximize: Maximize the objective instead of minimizing.
        foreach: Use torch's multi-tensor update for full-precision moments.
        fused: Use the single-pass implementation (torch's fused AdamW for
            full-precision moments; for low-precision ones the C kernels of
            :mod:`optforge.optimizers.block_kernels` on float32 CPU
            parameters, else the eager loop).

    Example:
        >>> import torch
        >>> from optforge.optimizers import AdamW
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> w = torch.nn.Parameter(torch.ones(64, 64))
        >>> opt = AdamW([w], lr=0.1, state_precision="8bit")
        >>> w.grad = torch.ones(64, 64)
        >>> opt.step()
        >>> round(w[0, 0].item(), 4), sorted(opt.state[w])
        (0.899, ['exp_avg_codes', 'exp_avg_scales', 'exp_avg_sq_codes', 'exp_avg_sq_scales', 'step'])
    """

    MOMENTS = MappingProxyType({"exp_avg": "signed", "exp_avg_sq": "sqrt"})
    GROUP_KEYS = ("lr", "betas", "eps", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        state_precision: str = "fp32",
        seed: int | None = None,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        betas = check_betas(betas)
        check_range(eps, "eps")
        check_range(weight_decay, "weight_decay")
        check_flags(foreach, fused)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
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

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = 0
        for group in self.param_groups:
            plain: list[tuple[Tensor, Tensor, dict[str, Any]]] = []
            coded: list[tuple[int, Tensor, Tensor, dict[str, Any]]] = []
            precision = group.get("state_precision", "fp32")
            for p in group["params"]:
                index += 1
                if p.grad is None:
                    continue
                check_grad("AdamW", p.grad)
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    for name, kind in self.MOMENTS.items():
                        init_moment(p, state, name, kind, precision)
                if keeps_full_precision(p, precision) and "exp_avg" in state:
                    plain.append((p, p.grad, state))
                else:
                    coded.append((index - 1, p, p.grad, state))
            flags = self._step_flags(group, [p for p, _, _ in plain] + [p for _, p, _, _ in coded])
            if plain:
                self._torch_step(group, plain, flags)
            if coded:
                self._low_precision_step(group, coded, fused=flags["fused"])
        return loss

    def _torch_step(self, group: dict[str, Any], items: list[tuple[Tensor, Tensor, dict[str, Any]]], flags) -> None:
        beta1, beta2 = group["betas"]
        has_complex = any(p.is_complex() for p, _, _ in items)
        torch_adamw(
            [p for p, _, _ in items],
            [g for _, g, _ in items],
            [s["exp_avg"] for _, _, s in items],
            [s["exp_avg_sq"] for _, _, s in items],
            [],
            [s["step"] for _, _, s in items],
            foreach=flags["foreach"],
            fused=flags["fused"] and not has_complex,  # torch's fused AdamW has no complex kernel
            has_complex=has_complex,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=_plain_lr(group["lr"]),
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )
        if flags["fused"] and not has_complex:  # torch's fused kernel leaves the version counters as they were
            for p, _, _ in items:
                torch.autograd.graph.increment_version(p)

    def _low_precision_step(self, group: dict[str, Any], items: list[Any], *, fused: bool) -> None:
        beta1, beta2 = group["betas"]
        lr, seed = float(group["lr"]), group["seed"]
        by_step: dict[int, list[Any]] = {}
        for item in items:
            item[3]["step"] += 1
            by_step.setdefault(int(item[3]["step"].item()), []).append(item)
        for step, same in by_step.items():
            bc1, bc2 = 1 - beta1**step, 1 - beta2**step
            bound = adam_bound(beta1, beta2, step) * bc1
            values = [
                1 - lr * group["weight_decay"],
                1 - beta1,
                beta2,
                1 - beta2,
                1 / math.sqrt(bc2),
                group["eps"],
                -lr / bc1,
                min(bound, 3.0e38),
                -1.0 if group["maximize"] else 1.0,
                1.0,
            ]
            eager = [local_item(item) for item in same]  # a DTensor's shards, at their place in the whole
            library = kernels() if fused else None
            if library is not None:
                eager = self._fused(library, eager, values, seed, step)
            for tensor, p, grad, state, first in eager:
                keys = (stream_key(seed, step, tensor, 0), stream_key(seed, step, tensor, 1))
                _eager_adamw(p, grad, state, values, keys, first)

    def _fused(self, library: Any, items: list[Any], values: list[float], seed: int, step: int) -> list[Any]:
        """Run the C kernels on the float32 CPU tensors of ``items``; the rest, for the eager update."""
        rest, blocks, bf16 = [], [], []
        for item in items:
            _, p, grad, state, _ = item
            ok = p.dtype == grad.dtype == torch.float32 and p.device.type == "cpu"
            ok = ok and p.is_contiguous() and grad.is_contiguous() and type(p) in (Tensor, torch.nn.Parameter)
            (blocks if ok and "exp_avg_codes" in state else bf16 if ok and "exp_avg" in state else rest).append(item)
        scalars = torch.tensor(values, dtype=torch.float32)
        for chosen, name in ((blocks, "adamw_8bit"), (bf16, "adamw_bf16")):
            if not chosen:
                continue
            meta: list[int] = []
            for tensor, p, _, _, first in chosen:
                keys = (stream_key(seed, step, tensor, 0), stream_key(seed, step, tensor, 1))
                meta += metadata(p, first, keys, blocked=name == "adamw_8bit")
            keys_of = (
                ("exp_avg_codes", "exp_avg_scales", "exp_avg_sq_codes", "exp_avg_sq_scales")
                if name == "adamw_8bit"
                else ("exp_avg", "exp_avg_sq")
            )
            lists = [[p for _, p, _, _, _ in chosen], [g for _, _, g, _, _ in chosen]]
            lists += [[s[key] for _, _, _, s, _ in chosen] for key in keys_of]
            library.run(name, lists, meta, scalars)
            for _, p, _, _, _ in chosen:
                torch.autograd.graph.increment_version(p)
        return rest


def _plain_lr(lr: float | Tensor) -> float | Tensor:
    """A 1-element CPU tensor lr as a float: torch's update then steps exactly as with the float."""
    return float(lr) if isinstance(lr, Tensor) and lr.device.type == "cpu" else lr


def _eager_adamw(
    p: Tensor, grad: Tensor, state: dict[str, Any], values: list[float], keys: tuple[int, int], first: int = 0
) -> None:
    """One low-precision AdamW update of ``p``, a few rows at a time, in the order of torch's single-tensor code.

    ``first``: the index of ``p``'s first element in the whole parameter (a shard's), for the random numbers.
    """
    values = torch.tensor(values, dtype=torch.float32).tolist()  # the kernels' float32 scalars
    decay, weight, beta2, one_minus_beta2, inv_bc2_sqrt, eps, neg_step, bound, sign, _ = values
    shape = p.shape
    work = p.detach() if p.is_contiguous() else p.detach().contiguous()
    grad = grad.contiguous()
    rows, cols, _ = block_layout(shape)
    flat_p, flat_g = work.view(rows, cols), grad.view(rows, cols)
    coded = "exp_avg_codes" in state
    for piece in row_pieces(p):
        lo, hi = piece
        g = flat_g[lo:hi].float()
        if sign < 0:
            g = g.neg()
        param = flat_p[lo:hi] if work.dtype == torch.float32 else flat_p[lo:hi].float()
        m = read_moment(state, "exp_avg", "signed", piece, shape).clone()
        v = read_moment(state, "exp_avg_sq", "sqrt", piece, shape).clone()
        # one rounding per operation, in the C kernels' order (no fused multiply-adds: alpha= and
        # addcmul may use them), so that both paths store the same codes
        param.mul_(decay)
        m = lerp_exact(m, g, weight)
        v.mul_(beta2).add_(torch.mul(g, one_minus_beta2).mul_(g))
        root = sqrt_exact(v)
        update = torch.div(m, (root * inv_bc2_sqrt).add_(eps))
        if coded:
            update.clamp_(-bound, bound)
        param.add_(update.mul_(neg_step))
        if param.data_ptr() != flat_p[lo:hi].data_ptr():
            flat_p[lo:hi].copy_(param)
        start, count = first + lo * cols, (hi - lo) * cols
        if coded:  # one number per element: its high 16 bits round m, its low 16 bits the root of v
            r = noise(keys[0], start, count, p.device)
            random = [r & 0xFFFF0000, (r & 0xFFFF) << 16]
        else:
            random = [noise(key, start, count, p.device) for key in keys]
        write_moment(state, "exp_avg", "signed", piece, shape, m, random[0])
        write_moment(state, "exp_avg_sq", "sqrt", piece, shape, v, random[1], root=root)
    if work.data_ptr() != p.data_ptr():
        p.detach().copy_(work)
