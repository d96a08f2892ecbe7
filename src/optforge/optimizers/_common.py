"""Checks and tensor helpers shared by optforge's optimizers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import _default_to_fused_or_foreach

from optforge.errors import ConfigError

__all__ = [
    "as_real",
    "check_betas",
    "check_flags",
    "check_grad",
    "check_range",
    "check_steps",
    "default_foreach",
    "is_compiling",
]


def _is_real_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def check_range(
    value: Any, path: str, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True
) -> None:
    """Raise ``ConfigError`` unless ``value`` is a finite number in the given interval."""
    left = "(" if low_open else "["
    right = ")" if high_open or high == math.inf else "]"
    interval = f"{left}{low}, {'inf' if high == math.inf else high}{right}"
    if not _is_real_number(value):
        raise ConfigError(f"must be a finite number in {interval}, got {value!r}", path=path)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise ConfigError(f"must be in {interval}, got {value!r}", path=path)


def check_betas(betas: Any, *, beta1_low_open: bool = False) -> tuple[float, float]:
    """Validate a ``(beta1, beta2)`` pair: each in [0, 1), beta1 > 0 when ``beta1_low_open``."""
    if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
        raise ConfigError(f"must be a pair (beta1, beta2), got {betas!r}", path="betas")
    check_range(betas[0], "betas[0]", 0.0, 1.0, low_open=beta1_low_open)
    check_range(betas[1], "betas[1]", 0.0, 1.0)
    return float(betas[0]), float(betas[1])


def check_steps(value: Any, path: str) -> None:
    """Raise ``ConfigError`` unless ``value`` is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"must be a non-negative integer, got {value!r}", path=path)


def check_flags(foreach: bool | None, fused: bool | None) -> None:
    """``foreach`` and ``fused`` select one implementation each; both at once is ambiguous."""
    if foreach and fused:
        raise ConfigError("foreach=True and fused=True are mutually exclusive; choose one", path="fused")


def default_foreach(params: list[Tensor]) -> bool:
    """torch.optim's default: foreach on CUDA-like devices, the per-tensor loop on CPU."""
    if is_compiling():
        return True
    _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return bool(foreach)


def is_compiling() -> bool:
    """Whether the code runs under ``torch.compile`` tracing."""
    return bool(torch.compiler.is_compiling())


def as_real(tensors: list[Tensor]) -> list[Tensor]:
    """Complex tensors as real views (..., 2), so updates act on each real component."""
    if not any(map(Tensor.is_complex, tensors)):
        return tensors
    return [torch.view_as_real(t) if t.is_complex() else t for t in tensors]


def check_grad(optimizer_name: str, grad: Tensor) -> None:
    """Reject gradients no update rule here is defined for."""
    if grad.is_sparse:
        raise RuntimeError(
            f"{optimizer_name} does not support sparse gradients; use dense gradients "
            "(e.g. nn.Embedding(sparse=False)) or torch.optim.SparseAdam"
        )


def choose_path(
    params: list[Tensor],
    foreach: bool | None,
    fused: bool | None,
    *,
    single: Callable[..., None],
    multi: Callable[..., None],
    fused_path: Callable[..., None],
) -> Callable[..., None]:
    """The implementation to run, torch.optim's way.

    ``fused`` wins (except inside a compiled graph, where the multi-tensor code
    is traced instead); then ``foreach``; with neither set, foreach where torch
    would default to it.
    """
    if fused is None and foreach is None:
        foreach = default_foreach(params)
    if fused and not is_compiling():
        return fused_path
    if foreach or fused:
        return multi
    return single
