r"""LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning") with a clamped trust ratio.

Per tensor, at step :math:`t`:

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    u_t &= m_t / (\sqrt{v_t} + \epsilon) + \lambda \theta_{t-1} \\
    r_t &= \mathrm{clip}(\lVert\theta_{t-1}\rVert / \lVert u_t\rVert,\ c_{min},\ c_{max})
           \quad (1 \text{ where either norm is } 0) \\
    \theta_t &= \theta_{t-1} - \eta \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}\, r_t\, u_t

The moments themselves are not bias-corrected: the correction scales the step size
(``bias_correction=False`` drops it), so the trust ratio is that of the uncorrected
update. ``eps_inside_sqrt`` puts :math:`\epsilon` under the root,
:math:`\sqrt{v_t + \epsilon}`. This is the update of DeepSpeed's ``FusedLamb``, with its
defaults (``min_coeff=0.01``, ``max_coeff=10``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from optforge.errors import ConfigError
from optforge.optimizers._common import as_real, check_betas, check_grad, check_lr, check_range

__all__ = ["Lamb"]


class Lamb(Optimizer):
    """LAMB: Adam's direction, each tensor's step scaled by its clamped trust ratio ``||p|| / ||update||``.

    State: ``step``, ``exp_avg``, ``exp_avg_sq`` (the latter two in the parameter's dtype).

    Args:
        params: Parameters or param-group dicts.
        lr: Learning rate, >= 0; a number or a 1-element tensor.
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: Added to the root of the second moment (under it with ``eps_inside_sqrt``), >= 0.
        weight_decay: Decay added to the update before the trust ratio (``update + weight_decay * p``), >= 0.
        bias_correction: Scale the step size by ``sqrt(1 - beta2**t) / (1 - beta1**t)``.
        eps_inside_sqrt: ``sqrt(v + eps)`` in place of ``sqrt(v) + eps``.
        min_coeff: Least trust ratio, >= 0.
        max_coeff: Greatest trust ratio, >= ``min_coeff``.
        maximize: Maximize the objective instead of minimizing.

    Example:
        >>> import torch
        >>> from optforge.optimizers import Lamb
        >>> p = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
        >>> opt = Lamb([p], lr=0.1, eps=0.0)
        >>> p.grad = torch.tensor([1.0, -1.0], dtype=torch.float64)
        >>> opt.step()   # update (3.16, -3.16), ratio 5 / 4.47, step size 0.1 * sqrt(0.001) / 0.1
        >>> p.detach()
        tensor([2.8882, 4.1118], dtype=torch.float64)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        bias_correction: bool = True,
        eps_inside_sqrt: bool = False,
        min_coeff: float = 0.01,
        max_coeff: float = 10.0,
        maximize: bool = False,
    ) -> None:
        check_lr(lr)
        betas = check_betas(betas)
        check_range(eps, "eps")
        check_range(weight_decay, "weight_decay")
        check_range(min_coeff, "min_coeff")
        check_range(max_coeff, "max_coeff")
        if max_coeff < min_coeff:
            raise ConfigError(f"must be >= min_coeff ({min_coeff}), got {max_coeff}", path="max_coeff")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "bias_correction": bias_correction,
            "eps_inside_sqrt": eps_inside_sqrt,
            "min_coeff": min_coeff,
            "max_coeff": max_coeff,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                check_grad("Lamb", p.grad)
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                param, grad, exp_avg, exp_avg_sq = as_real([p, p.grad, state["exp_avg"], state["exp_avg_sq"]])
                _lamb_update(param, grad, exp_avg, exp_avg_sq, int(state["step"]), group)
        return loss


def _lamb_update(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: int, group: dict) -> None:
    """One LAMB update of one tensor, in place (see the module's formula)."""
    beta1, beta2 = group["betas"]
    if group["maximize"]:
        grad = torch.neg(grad)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    eps = group["eps"]
    denom = exp_avg_sq.add(eps).sqrt_() if group["eps_inside_sqrt"] else exp_avg_sq.sqrt().add_(eps)
    update = torch.div(exp_avg, denom)
    if group["weight_decay"] != 0:
        update.add_(param, alpha=group["weight_decay"])
    weight_norm, update_norm = torch.linalg.vector_norm(param), torch.linalg.vector_norm(update)
    ratio = torch.where(
        (weight_norm != 0) & (update_norm != 0),
        (weight_norm / update_norm).clamp(group["min_coeff"], group["max_coeff"]),
        torch.ones_like(weight_norm),
    )
    # the lr in the parameter's precision: a float and a 1-element tensor of it step alike
    lr = torch.tensor(float(group["lr"]), dtype=param.dtype).item()
    if group["bias_correction"]:
        lr *= math.sqrt(1 - beta2**step) / (1 - beta1**step)
    param.add_(update.mul_(ratio), alpha=-lr)
