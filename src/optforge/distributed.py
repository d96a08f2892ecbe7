"""Distributed training: ZeRO sharding of optimizer state and sharded checkpoints.

``zero: true`` in a flat optimizer config wraps the optimizer in
:class:`torch.distributed.optim.ZeroRedundancyOptimizer`, so each rank keeps the
state of its share of the parameters only (it needs an initialized process
group). :func:`save_checkpoint` and :func:`load_checkpoint` write and read the
model, optimizer and scheduler state with :mod:`torch.distributed.checkpoint`,
for plain, DDP and FSDP2 (``fully_shard``) models alike; without a process
group they work in a single process.

Schedule-Free optimizers hold the gradient point ``y`` in their parameters while
training and the average ``x`` in eval mode. :func:`save_checkpoint` saves them
in eval mode, so the saved model weights are the ones to evaluate, and
:func:`load_checkpoint` puts the optimizer back in the mode it had when saved.

Example:
    >>> import tempfile, torch, optforge
    >>> from optforge.distributed import load_checkpoint, save_checkpoint
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = optforge.build_optimizer(model, {"name": "AdamW", "lr": 0.01})
    >>> model(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> with tempfile.TemporaryDirectory() as ckpt:
    ...     save_checkpoint(ckpt, model, opt)
    ...     model2 = torch.nn.Linear(2, 1)
    ...     opt2 = optforge.build_optimizer(model2, {"name": "AdamW", "lr": 0.01})
    ...     load_checkpoint(ckpt, model2, opt2)
    >>> torch.equal(model2.weight, model.weight)
    True
    >>> torch.equal(opt2.state[model2.weight]["exp_avg"], opt.state[model.weight]["exp_avg"])
    True
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim import Optimizer

from optforge.errors import ConfigError, format_path

if TYPE_CHECKING:
    from torch.optim.lr_scheduler import LRScheduler

    from optforge.spec import OptimizerSpec

__all__ = [
    "is_schedule_free",
    "load_checkpoint",
    "save_checkpoint",
    "schedule_free_training",
    "set_schedule_free_mode",
    "zero_factory",
]

# Key under which the checkpoint records what it needs besides the state dicts.
_META = "optforge"


def zero_factory(spec: OptimizerSpec) -> Callable[..., Optimizer]:
    """The function that creates the optimizer of ``spec``, honouring its ``zero`` option.

    With ``zero: true`` it builds a :class:`~torch.distributed.optim.ZeroRedundancyOptimizer`
    whose local optimizer is the spec's entry, over the default process group.

    Raises:
        ConfigError: when ``zero`` is not a boolean, when no process group is
            initialized, or for a Schedule-Free optimizer (its train/eval mode
            switch moves parameters that ZeRO would not broadcast).
    """
    value = spec.options.get("zero", False)
    path = format_path(spec.path, "zero")
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}", path=path)
    if not value:
        return spec.entry.create
    if _has_modes(spec.entry.resolve_class()):
        raise ConfigError(
            f"{spec.entry.name} is a Schedule-Free optimizer: its train()/eval() switch changes the "
            "parameters on the rank that owns their state only, so it cannot be wrapped in "
            "ZeroRedundancyOptimizer; shard it with FSDP2 (fully_shard) instead",
            path=path,
        )
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise ConfigError(
            "zero: true shards the optimizer state across ranks and needs an initialized process group; "
            "call torch.distributed.init_process_group() first (or set zero: false)",
            path=path,
        )
    from torch.distributed.optim import ZeroRedundancyOptimizer

    def create(params: Any, **hyperparameters: Any) -> Optimizer:
        return ZeroRedundancyOptimizer(params, optimizer_class=spec.entry.create, **hyperparameters)

    return create


def _has_modes(optimizer: Any) -> bool:
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def is_schedule_free(optimizer: Any) -> bool:
    """Whether ``optimizer`` has Schedule-Free train/eval modes (ours or the ``schedulefree`` package's).

    Example:
        >>> import torch
        >>> is_schedule_free(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
        False
    """
    groups = getattr(optimizer, "param_groups", [])
    return _has_modes(optimizer) and any("train_mode" in group for group in groups)


def schedule_free_training(optimizer: Any) -> bool:
    """Whether a Schedule-Free optimizer is in train mode (every group); ``False`` for others."""
    return is_schedule_free(optimizer) and all(group.get("train_mode", False) for group in optimizer.param_groups)


def set_schedule_free_mode(optimizer: Any, train: bool) -> bool:
    """Put a Schedule-Free optimizer in train (``True``) or eval mode; other optimizers are left alone.

    Returns:
        Whether the optimizer was in train mode before.

    Example:
        >>> import torch
        >>> from optforge.optimizers import SGDScheduleFree
        >>> opt = SGDScheduleFree([torch.zeros(2, requires_grad=True)])
        >>> set_schedule_free_mode(opt, True), schedule_free_training(opt)
        (False, True)
    """
    was_training = schedule_free_training(optimizer)
    if is_schedule_free(optimizer) and was_training != train:
        optimizer.train() if train else optimizer.eval()
    return was_training


@contextlib.contextmanager
def _single_process_quietly() -> Iterator[None]:
    """Without a process group, checkpoints are single-process by design: no warning about it."""
    with warnings.catch_warnings():
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            warnings.filterwarnings("ignore", "torch.distributed is disabled, unavailable or uninitialized")
        yield


@contextlib.contextmanager
def _steppable(optimizer: Optimizer, *, restore: bool) -> Iterator[list[dict[str, Any]] | None]:
    """Ready an optimizer without state for the zero-gradient step that
    ``torch.distributed.checkpoint.state_dict`` takes to create its state.

    That step runs only when ``optimizer.state`` is empty, so entries left empty
    by lookups (``state`` is a defaultdict) are dropped; and a Schedule-Free
    optimizer must be in train mode to step (with no ``z`` yet, switching modes
    moves no parameter). Yields the group settings before that step (``None``
    when the optimizer had state); with ``restore``, the optimizer gets them
    back, and no state, afterwards.
    """
    stepped = any(optimizer.state.values())
    settings = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    switch = not stepped and is_schedule_free(optimizer) and not schedule_free_training(optimizer)
    if switch:
        optimizer.train()
    if not stepped:
        optimizer.state.clear()
    try:
        yield None if stepped else settings
    finally:
        if switch:
            # The zero-gradient step made z equal to the parameters, so y == x and
            # eval mode needs the flag only.
            for group in optimizer.param_groups:
                group["train_mode"] = False
        if restore and not stepped:
            optimizer.state.clear()
            for group, before in zip(optimizer.param_groups, settings):
                group.update(before)


def _check_optimizer(optimizer: Optimizer) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    if isinstance(optimizer, ZeroRedundancyOptimizer):
        raise TypeError(
            "ZeroRedundancyOptimizer state is not sharded by parameter name; call "
            "optimizer.consolidate_state_dict(to=0) on every rank and save optimizer.state_dict() on rank 0"
        )


def save_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler | None = None,
    *,
    eval_mode: bool = True,
) -> None:
    """Save model, optimizer and scheduler state with :mod:`torch.distributed.checkpoint`.

    Call it on every rank. Sharded (DTensor) parameters and their optimizer
    state are saved shard by shard; a checkpoint can be loaded on another number
    of ranks.

    Args:
        checkpoint_dir: The directory to write (one per checkpoint).
        model: The model: plain, ``DistributedDataParallel`` or ``fully_shard``-ed.
        optimizer: Its optimizer.
        scheduler: Its learning-rate scheduler, if any.
        eval_mode: Save a Schedule-Free optimizer in eval mode, so the saved model
            weights are the averaged ones to evaluate; it returns to train mode
            afterwards, and :func:`load_checkpoint` restores that mode.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    _check_optimizer(optimizer)
    switch = eval_mode and schedule_free_training(optimizer) and any(optimizer.state.values())
    was_training = set_schedule_free_mode(optimizer, False) if switch else schedule_free_training(optimizer)
    try:
        with _steppable(optimizer, restore=True) as pristine:
            model_state, optimizer_state = get_state_dict(model, optimizer)
            if pristine is not None:
                # Save the step counts and settings of before the zero-gradient step.
                for saved, before in zip(optimizer_state["param_groups"], pristine):
                    saved.update(before)
            state: dict[str, Any] = {
                "model": model_state,
                "optimizer": optimizer_state,
                _META: {"schedule_free_train_mode": was_training, "stepped": pristine is None},
            }
            if scheduler is not None:
                state["scheduler"] = scheduler.state_dict()
            with _single_process_quietly():
                dcp.save(state, checkpoint_id=os.fspath(checkpoint_dir))
    finally:
        if switch:
            set_schedule_free_mode(optimizer, True)


def load_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler | None = None,
) -> None:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model``, ``optimizer`` and ``scheduler``.

    Call it on every rank, after wrapping the model (DDP, ``fully_shard``) and
    building the optimizer and scheduler as for training. A Schedule-Free
    optimizer comes back in the mode it had when saved.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    _check_optimizer(optimizer)
    with _steppable(optimizer, restore=False):
        model_state, optimizer_state = get_state_dict(model, optimizer)
    state: dict[str, Any] = {
        "model": model_state,
        "optimizer": optimizer_state,
        _META: {"schedule_free_train_mode": False, "stepped": True},
    }
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    with _single_process_quietly():
        dcp.load(state, checkpoint_id=os.fspath(checkpoint_dir))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    if not state[_META]["stepped"]:
        optimizer.state.clear()  # saved before its first step: no state yet
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if state[_META]["schedule_free_train_mode"]:
        set_schedule_free_mode(optimizer, True)
