"""Checks and tensor helpers shared by optforge's optimizers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim.optimizer import _default_to_fused_or_foreach

from optforge.errors import ConfigError
from optforge.optimizers import _fused
from optforge.optimizers._fused import StepPath
from optforge.ranges import OPEN_UNIT, RANGES, Range
from optforge.state_check import check_state_dict

__all__ = [
    "StepPathChoice",
    "as_real",
    "check_betas",
    "check_flags",
    "check_grad",
    "check_lr",
    "check_range",
    "check_steps",
    "choose_path",
    "default_foreach",
    "foreach_scale_",
    "in_pieces",
    "is_compiling",
    "piece_groups",
]


def check_range(value: Any, name: str, rng: Range | None = None) -> None:
    """Raise ``ConfigError`` unless ``value`` is a finite number in ``rng`` (by default ``name``'s, or ``>= 0``).

    Example:
        >>> check_range(-1.0, "weight_decay")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: weight_decay: must be in [0.0, inf), got -1.0
    """
    (RANGES.get(name, Range(0.0)) if rng is None else rng).require(value, name)


def check_lr(lr: Any) -> None:
    """Raise ``ConfigError`` unless ``lr`` is a finite number >= 0 or a 1-element tensor holding one.

    Example:
        >>> check_lr(torch.tensor([1e-3]))
        >>> check_lr(torch.tensor([1e-3, 1e-4]))
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: lr: must be a number or a 1-element tensor, got a tensor of 2 elements
    """
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            message = f"must be a number or a 1-element tensor, got a tensor of {lr.numel()} elements"
            raise ConfigError(message, path="lr")
        lr = lr.item()
    check_range(lr, "lr")


def check_betas(betas: Any, *, beta1_low_open: bool = False) -> tuple[float, float]:
    """Validate a ``(beta1, beta2)`` pair: each in [0, 1), beta1 > 0 when ``beta1_low_open``."""
    if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
        raise ConfigError(f"must be a pair (beta1, beta2), got {betas!r}", path="betas")
    (OPEN_UNIT if beta1_low_open else RANGES["betas"]).require(betas[0], "betas[0]")
    RANGES["betas"].require(betas[1], "betas[1]")
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


def foreach_scale_(tensors: list[Tensor], factor: float) -> None:
    """``torch._foreach_mul_(tensors, factor)``, rounded as ``Tensor.mul_`` rounds (one device and dtype).

    On CPU, the in-place foreach product rounds a Python scalar to a bfloat16 or
    float16 tensor's dtype first, unlike ``Tensor.mul_``; a 0-d float64 tensor
    factor is applied at full precision, as ``mul_`` does.

    Example:
        >>> t = [torch.tensor([1.0], dtype=torch.bfloat16)]
        >>> foreach_scale_(t, 0.9)
        >>> torch.equal(t[0], torch.tensor([1.0], dtype=torch.bfloat16).mul_(0.9))
        True
    """
    if tensors and tensors[0].device.type == "cpu" and tensors[0].dtype in (torch.bfloat16, torch.float16):
        torch._foreach_mul_(tensors, torch.tensor(factor, dtype=torch.float64))
    else:
        torch._foreach_mul_(tensors, factor)


def _piece_limit(tensors: list[Tensor]) -> int:
    """Elements per piece: 1/64 of the tensors' total (so temporaries stay near 1.5% of it), within [2^14, 2^20].

    A multiple of 1,024, so that every piece starts on a block of torch's vector
    loops: on one thread, each element is then computed by the same code as in
    one operation over the whole tensor (bfloat16 and float16 round differently
    in the scalar loop that finishes a range).
    """
    return min(1 << 20, max(1 << 14, sum(t.numel() for t in tensors) // (64 * 1024) * 1024))


def in_pieces(tensor_lists: list[list[Tensor]], limit: int | None = None) -> list[list[Tensor]]:
    """``tensor_lists`` with each contiguous tensor above ``limit`` elements cut into 1-D views of at most that many.

    Elementwise updates give the same results on the pieces, and their temporaries
    stay the size of a piece instead of the largest tensor's. CPU tensors only: on
    other devices the extra kernel launches would cost more than the memory.

    Example:
        >>> [t.shape for t in in_pieces([[torch.zeros(5, 4), torch.zeros(3)]], limit=8)[0]]
        [torch.Size([8]), torch.Size([8]), torch.Size([4]), torch.Size([3])]
    """
    if is_compiling() or not tensor_lists[0] or tensor_lists[0][0].device.type != "cpu":
        return tensor_lists
    limit = _piece_limit(tensor_lists[0]) if limit is None else limit
    if all(t.numel() <= limit for t in tensor_lists[0]):
        return tensor_lists
    out: list[list[Tensor]] = [[] for _ in tensor_lists]
    for i, first in enumerate(tensor_lists[0]):
        tensors = [tl[i] for tl in tensor_lists]
        split = first.numel() > limit and all(t.is_contiguous() for t in tensors)
        for pieces, t in zip(out, tensors):
            if split:
                pieces.extend(t.view(-1).split(limit))
            else:
                pieces.append(t)
    return out


def piece_groups(tensor_lists: list[list[Tensor]], limit: int | None = None) -> list[list[list[Tensor]]]:
    """:func:`in_pieces`, then consecutive groups of at most ``limit`` elements, for the multi-tensor kernels.

    Example:
        >>> groups = piece_groups([[torch.zeros(6), torch.zeros(6), torch.zeros(3)]], limit=8)
        >>> [[t.numel() for t in group[0]] for group in groups]
        [[6], [6], [3]]
    """
    if is_compiling() or not tensor_lists[0] or tensor_lists[0][0].device.type != "cpu":
        return [tensor_lists]
    limit = _piece_limit(tensor_lists[0]) if limit is None else limit
    lists = in_pieces(tensor_lists, limit)
    groups: list[list[list[Tensor]]] = []
    start, total = 0, 0
    for i, t in enumerate(lists[0]):
        if i > start and total + t.numel() > limit:
            groups.append([tl[start:i] for tl in lists])
            start, total = i, 0
        total += t.numel()
    groups.append([tl[start:] for tl in lists])
    return groups


def choose_path(
    params: list[Tensor],
    foreach: bool | None,
    fused: bool | None,
    *,
    single: Callable[..., None],
    multi: Callable[..., None],
    fused_path: Callable[..., None],
) -> Callable[..., None]:
    """The implementation :func:`optforge.optimizers._fused.select_path` picks for ``params``."""
    default = "foreach" if foreach is None and default_foreach(params) else "single"
    name = _fused.select_path(params, foreach, fused, default).name
    return fused_path if name == "fused" else multi if name == "foreach" else single


class StepPathChoice:
    """Mixin for optforge's optimizers: the implementation each step uses, chosen once per param group.

    ``optimizer.step_path`` is a :class:`~optforge.optimizers._fused.StepPath`
    ``(name, reason)``: ``"fused"``, ``"foreach"`` or ``"single"`` (``"mixed"``
    when param groups differ), for a step in which every parameter has a gradient.
    """

    param_groups: list[dict[str, Any]]

    @property
    def step_path(self) -> StepPath:
        """The implementation a step uses, and why (see :func:`~optforge.optimizers._fused.select_path`)."""
        return _fused.combine([self._group_path(group, list(group["params"])) for group in self.param_groups])

    def _group_path(self, group: dict[str, Any], params: list[Tensor]) -> StepPath:
        """The path for ``params`` of ``group``; cached until the tensors or flags change."""
        foreach, fused = group["foreach"], group["fused"]
        if is_compiling():
            return _fused.select_path(params, foreach, fused, "foreach")
        cache: dict[int, tuple[Any, ...]] = self.__dict__.setdefault("_step_paths", {})
        key = (foreach, fused, len(_fused._FAILED), tuple(map(id, params)))
        hit = cache.get(id(group))
        if hit is not None and hit[0] is group and hit[1] == key:
            return hit[2]
        default = "foreach" if foreach is None and default_foreach(params) else "single"
        path = _fused.select_path(params, foreach, fused, default)
        cache[id(group)] = (group, key, path)
        return path

    def _step_flags(self, group: dict[str, Any], params: list[Tensor]) -> dict[str, bool]:
        """``foreach`` / ``fused`` keyword arguments that run the chosen path in the functional API."""
        name = self._group_path(group, params).name
        return {"foreach": name == "foreach", "fused": name == "fused"}


class CheckedStateLoading:
    """``load_state_dict`` refuses a state of another shape, dtype kind or optimizer, and then changes nothing.

    A subclass names its per-parameter state tensors in ``STATE_TENSORS`` and
    the param-group entries a saved state must hold in ``GROUP_KEYS``: its
    hyperparameters, every entry of its defaults that ``__setstate__`` does not
    fill in for older checkpoints. torch's own check only compares the number
    of groups and parameters.
    """

    STATE_TENSORS: ClassVar[tuple[str, ...]] = ()
    GROUP_KEYS: ClassVar[tuple[str, ...]] = ("lr",)
    # per-parameter tensors that a wrapper keeps in this optimizer's state (ScheduleFreeWrapper's z)
    _wrapper_state: tuple[str, ...] = ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Check ``state_dict`` against this optimizer's parameters and hyperparameters, then load it.

        Raises:
            ConfigError: naming every mismatch, before anything is loaded.
        """
        check_state_dict(
            self,  # type: ignore[arg-type]
            state_dict,
            self.STATE_TENSORS,
            group_keys=self.GROUP_KEYS,
            optional=self._wrapper_state,
        )
        super().load_state_dict(state_dict)  # type: ignore[misc]
