"""The parts of torch's private API that optforge relies on, in one place.

Each helper names what it reads; ``tests/test_torch_internals.py`` checks every one of
them against the installed torch, so a torch release that changes one fails there,
loudly, rather than somewhere inside a training run.

- :func:`set_up_without_groups`: what ``Optimizer.__init__`` sets up (hook tables,
  state, counters) for an optimizer whose groups live elsewhere (the composite's parts).
- :func:`restore_state`: ``Optimizer.__setstate__``, for a subclass that unpickles
  extra attributes of its own.
- :func:`optimizer_hooks`: the hook tables that ``Optimizer.state_dict`` and
  ``load_state_dict`` run, for an optimizer that overrides both (the composite).
- :func:`unguarded_add_param_group`: ``Optimizer.add_param_group`` without torch.compile's
  ``_disable_dynamo`` guard, whose first call imports ``torch._dynamo``.
- :data:`CLOSED_FORM_METHOD`: the method torch's ``LRScheduler.step(epoch)`` calls when a
  scheduler has a closed form.
- :func:`pending_grad_scale` and :func:`clear_pending_grad_scale`: the scale a ``GradScaler``
  leaves on an optimizer that unscales inside its step (``fused=True``), instead of unscaling.
- :func:`shard_offset`: where a DTensor's local shard starts in the whole tensor
  (``compute_local_shape_and_global_offset`` of ``torch.distributed.tensor._utils``).

Example:
    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> len(list(optimizer_hooks(optimizer, "load_state_dict_pre")))
    0
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor
from torch.optim import Optimizer

__all__ = [
    "CLOSED_FORM_METHOD",
    "HOOK_TABLES",
    "clear_pending_grad_scale",
    "optimizer_hooks",
    "pending_grad_scale",
    "restore_state",
    "set_up_without_groups",
    "shard_offset",
    "unguarded_add_param_group",
]

# The name of the method LRScheduler.step(epoch) uses for a closed-form lr (torch/optim/lr_scheduler.py).
CLOSED_FORM_METHOD = "_get_closed_form_lr"

# The hook tables Optimizer.state_dict and load_state_dict run, by the kind of hook.
HOOK_TABLES = {
    "state_dict_pre": "_optimizer_state_dict_pre_hooks",
    "state_dict_post": "_optimizer_state_dict_post_hooks",
    "load_state_dict_pre": "_optimizer_load_state_dict_pre_hooks",
    "load_state_dict_post": "_optimizer_load_state_dict_post_hooks",
}


def set_up_without_groups(optimizer: Optimizer) -> None:
    """Give ``optimizer`` what ``Optimizer.__init__`` sets up, with no defaults, state or groups of its own.

    Its step runs other optimizers' steps, which make their own capturable checks: its own is off.
    """
    Optimizer.__setstate__(optimizer, {"defaults": {}, "state": {}, "param_groups": []})
    optimizer._warned_capturable_if_run_uncaptured = True


def restore_state(optimizer: Optimizer, state: dict[str, Any]) -> None:
    """``Optimizer.__setstate__``: restore a pickled optimizer's own attributes and torch's bookkeeping."""
    Optimizer.__setstate__(optimizer, state)


def optimizer_hooks(optimizer: Optimizer, kind: str) -> Iterable[Callable[..., Any]]:
    """The hooks registered on ``optimizer`` of ``kind`` (a key of :data:`HOOK_TABLES`), in order."""
    return getattr(optimizer, HOOK_TABLES[kind]).values()


def unguarded_add_param_group() -> Callable[..., Any] | None:
    """``Optimizer.add_param_group`` without its torch.compile guard, or ``None`` where torch has no guard."""
    return getattr(Optimizer.add_param_group, "__wrapped__", None)


# The attribute GradScaler.step sets on an optimizer with ``_step_supports_amp_scaling`` (None once unscaled).
GRAD_SCALE_ATTRIBUTE = "grad_scale"


def pending_grad_scale(optimizer: Optimizer) -> Any:
    """The scale of gradients that ``GradScaler.step`` left scaled for ``optimizer``'s step, or ``None``."""
    return getattr(optimizer, GRAD_SCALE_ATTRIBUTE, None)


def clear_pending_grad_scale(optimizer: Optimizer) -> None:
    """Tell ``optimizer``'s step that its gradients are unscaled, as ``GradScaler`` does after ``unscale_``."""
    setattr(optimizer, GRAD_SCALE_ATTRIBUTE, None)


def shard_offset(tensor: Tensor) -> tuple[int, ...] | None:
    """The index in the whole tensor of the first element of a DTensor's local shard, per dimension.

    ``None`` for a tensor that is no DTensor. No DTensor exists before ``torch.distributed.tensor``
    is imported, so a plain tensor costs no import of it (seconds).
    """
    module = sys.modules.get("torch.distributed.tensor")
    if module is None or not isinstance(tensor, module.DTensor):
        return None
    # torch.distributed.tensor is loaded already (it made ``tensor``): this import only binds the name
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(tensor.shape, tensor.device_mesh, tensor.placements)
    return tuple(int(i) for i in offset)
