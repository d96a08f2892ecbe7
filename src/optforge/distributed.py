"""Distributed training: ZeRO sharding of optimizer state and sharded checkpoints.

``zero: true`` in a flat optimizer config wraps the optimizer in
:class:`torch.distributed.optim.ZeroRedundancyOptimizer`, so each rank keeps the
state of its share of the parameters only (it needs an initialized process
group). :func:`save_checkpoint` and :func:`load_checkpoint` write and read the
model, optimizer and scheduler state with :mod:`torch.distributed.checkpoint`,
for plain, DDP and FSDP2 (``fully_shard``) models alike; without a process
group they work in a single process.

Loading is all-or-nothing: the checkpoint is read into fresh copies of the
state, then committed; when anything fails (a missing, truncated or mismatched
file, a state the optimizer or scheduler refuses) the model, the optimizer and
the scheduler are left exactly as they were, and :class:`~optforge.CheckpointError`
says why in its first line.

With ``clip_grad:``, ``ema:`` or ``skip_nonfinite:``, the step counts and the
EMA weights are saved and loaded with the rest (the ``around_step`` entry).

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
import pickle
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim import Optimizer

from optforge.around_step import paused, restore_saved_state, saved_state, seen_steps
from optforge.errors import CheckpointError, ConfigError, format_path
from optforge.registry import has_train_eval_modes

if TYPE_CHECKING:
    from torch.optim.lr_scheduler import LRScheduler

    from optforge.resolution import OptimizerSpec

__all__ = [
    "CheckpointError",
    "is_schedule_free",
    "load_checkpoint",
    "save_checkpoint",
    "schedule_free_training",
    "set_schedule_free_mode",
    "zero_factory",
]

# Key under which the checkpoint records what it needs besides the state dicts.
_META = "optforge"
# Key of what runs around the step: the step counts and the EMA weights.
_AROUND = "around_step"


def zero_factory(spec: OptimizerSpec) -> Callable[..., Optimizer]:
    """The function that creates the optimizer of ``spec``, honouring its ``zero`` option.

    With ``zero: true`` it builds a :class:`~torch.distributed.optim.ZeroRedundancyOptimizer`
    whose local optimizer is the spec's entry, over the default process group.

    Raises:
        ConfigError: when ``zero`` is not a boolean, when no process group is
            initialized, or for a Schedule-Free optimizer (its train/eval mode
            switch moves parameters that ZeRO would not broadcast).
    """
    value = spec.options.get("zero")
    value = False if value is None else value  # null, as for every build option, is the default
    path = format_path(spec.path, "zero")
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}", path=path)
    if not value:
        return spec.entry.create
    if has_train_eval_modes(spec.entry):
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


def is_schedule_free(optimizer: Any) -> bool:
    """Whether ``optimizer`` has Schedule-Free train/eval modes (ours or the ``schedulefree`` package's).

    Example:
        >>> import torch
        >>> is_schedule_free(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
        False
    """
    groups = getattr(optimizer, "param_groups", [])
    return has_train_eval_modes(optimizer) and any("train_mode" in group for group in groups)


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
        with paused(optimizer):  # that step counts for nothing around the step
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

    Raises:
        CheckpointError: when the checkpoint cannot be written.
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
                _META: {
                    "schedule_free_train_mode": was_training,
                    "stepped": pristine is None,
                    "optimizer": type(optimizer).__name__,
                    _AROUND: _around_kind(optimizer),
                },
            }
            around = saved_state(optimizer)
            if around is not None:
                state[_AROUND] = around
            if scheduler is not None:
                state["scheduler"] = scheduler.state_dict()
            with _single_process_quietly(), _as_checkpoint_error("save", checkpoint_dir):
                dcp.save(state, checkpoint_id=os.fspath(checkpoint_dir))
    finally:
        if switch:
            set_schedule_free_mode(optimizer, True)


def _around_kind(optimizer: Optimizer) -> str:
    """What the optimizer keeps around the step: ``"ema"`` (EMA weights and step counts), ``"counts"`` or ``""``."""
    around = saved_state(optimizer)
    if around is None:
        return ""
    return "ema" if around["ema"] else "counts"


def _check_around(saved: str, live: str) -> None:
    if live == "ema" and saved != "ema":
        raise ValueError(
            "the checkpoint holds no EMA weights, but this optimizer has ema: in its config; "
            "build it without ema: to load this checkpoint (the EMA can start afresh after the load)"
        )
    if saved == "ema" and live != "ema":
        raise ValueError(
            "the checkpoint holds EMA weights, but this optimizer was built without ema:; "
            "build it with the ema: of the run that saved it"
        )


def _cause(exc: BaseException) -> BaseException:
    """The exception behind a torch DCP ``CheckpointException`` (the first failing rank's), or ``exc``."""
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict) and failures:
        rank = min(failures)
        inner = failures[rank]
        inner = inner[0] if isinstance(inner, tuple) else inner
        if isinstance(inner, BaseException):
            return inner
    return exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, EOFError | pickle.UnpicklingError):
        first = f"{first} (a file of the checkpoint is truncated or damaged)".strip()
    return f"{type(exc).__name__}: {first}"


@contextlib.contextmanager
def _as_checkpoint_error(action: str, checkpoint_dir: str | os.PathLike[str], note: str = "") -> Iterator[None]:
    """Turn any failure (torch DCP's ``CheckpointException`` is a ``BaseException``) into ``CheckpointError``."""
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        yield
    except CheckpointError:
        raise
    except (Exception, CheckpointException) as exc:
        cause = _cause(exc)
        lines = [f"cannot {action} checkpoint {os.fspath(checkpoint_dir)!r}: {_describe(cause)}"]
        if note:
            lines.append(note)
        if cause is not exc:
            lines.append(f"(reported by torch.distributed.checkpoint: {type(exc).__name__})")
        raise CheckpointError("\n".join(lines)) from cause


def _fresh(value: Any) -> Any:
    """A copy of a state dict with new containers and cloned tensors, to load into without touching the live state."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_fresh(item) for item in value)
    return value


def _group_settings(group: dict[str, Any]) -> dict[str, Any]:
    """A group's settings, tensors cloned so that in-place changes can be undone."""
    return {key: (value.detach().clone() if isinstance(value, torch.Tensor) else value) for key, value in group.items()}


@dataclass
class _OptimizerSnapshot:
    """Everything ``load_state_dict`` and the zero-gradient step may change in one optimizer."""

    optimizer: Optimizer
    state: Any
    entries: dict[Any, dict[str, Any]]
    groups: list[dict[str, Any]]
    settings: list[dict[str, Any]]

    @classmethod
    def take(cls, optimizer: Optimizer) -> _OptimizerSnapshot:
        state = optimizer.state
        return cls(
            optimizer,
            state,
            {param: dict(entry) for param, entry in state.items()},
            optimizer.param_groups,
            [_group_settings(group) for group in optimizer.param_groups],
        )

    def restore(self) -> None:
        self.optimizer.state = self.state
        self.state.clear()
        self.state.update(self.entries)
        self.optimizer.param_groups = self.groups
        for group, before in zip(self.groups, self.settings):
            for key, value in before.items():
                current = group.get(key)
                same_tensor = isinstance(current, torch.Tensor) and getattr(current, "shape", None) == value.shape
                if isinstance(value, torch.Tensor) and same_tensor:
                    current.copy_(value)  # the same tensor object, its value back
                else:
                    group[key] = value
            for key in [key for key in group if key not in before]:
                del group[key]


@dataclass
class _Snapshot:
    """The live model, optimizer and scheduler state before a load, to put back if the load fails."""

    model: list[tuple[torch.Tensor, torch.Tensor]]
    optimizers: list[_OptimizerSnapshot]
    scheduler: tuple[Any, dict[str, Any]] | None
    around: tuple[Optimizer, dict[str, Any], tuple[int, int]] | None = None

    @classmethod
    def take(cls, model: nn.Module, optimizer: Optimizer, scheduler: Any) -> _Snapshot:
        with torch.no_grad():
            tensors = [(t, t.detach().clone()) for t in model.state_dict().values() if isinstance(t, torch.Tensor)]
        optimizers = [optimizer]
        base = getattr(optimizer, "base", None)  # a wrapper (ScheduleFreeWrapper) shares its base's state
        if isinstance(base, Optimizer):
            optimizers.append(base)
        sched = None if scheduler is None else (scheduler, dict(scheduler.__dict__))
        around, seen = saved_state(optimizer), seen_steps(optimizer)
        kept = None if around is None or seen is None else (optimizer, _fresh(around), seen)
        return cls(tensors, [_OptimizerSnapshot.take(opt) for opt in optimizers], sched, kept)

    @torch.no_grad()
    def restore(self) -> None:
        for live, saved in self.model:
            live.copy_(saved)
        for snapshot in reversed(self.optimizers):
            snapshot.restore()
        if self.scheduler is not None:
            scheduler, attributes = self.scheduler
            scheduler.__dict__.clear()
            scheduler.__dict__.update(attributes)
        if self.around is not None:
            restore_saved_state(*self.around)


def _read(
    checkpoint_dir: str | os.PathLike[str], model: nn.Module, optimizer: Optimizer, scheduler: Any
) -> dict[str, Any]:
    """The checkpoint's state, read into fresh copies shaped like the live state (which is left unchanged)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
    from torch.distributed.checkpoint.state_dict import get_state_dict

    # What the checkpoint holds, before reading it all (checkpoints of older versions lack the optimizer's name).
    meta = {_META: {"schedule_free_train_mode": False, "stepped": True, "optimizer": "", _AROUND: ""}}
    with _single_process_quietly():
        dcp.load(meta, checkpoint_id=os.fspath(checkpoint_dir), planner=DefaultLoadPlanner(allow_partial_load=True))
    saved, live = meta[_META]["optimizer"], type(optimizer).__name__
    if saved and saved != live:
        raise ValueError(f"the checkpoint holds the state of optimizer {saved}, not {live}")
    saved_around = meta[_META][_AROUND]
    _check_around(saved_around, _around_kind(optimizer))
    with _steppable(optimizer, restore=True):
        model_state, optimizer_state = get_state_dict(model, optimizer)
        state: dict[str, Any] = {
            "model": _fresh(model_state),
            "optimizer": _fresh(optimizer_state),
            _META: {key: meta[_META][key] for key in ("schedule_free_train_mode", "stepped")},
        }
    if scheduler is not None:
        state["scheduler"] = _fresh(scheduler.state_dict())
    around = saved_state(optimizer)
    if saved_around and around is not None:
        state[_AROUND] = _fresh(around)
    with _single_process_quietly():
        dcp.load(state, checkpoint_id=os.fspath(checkpoint_dir))
    return state


def _commit(state: dict[str, Any], model: nn.Module, optimizer: Optimizer, scheduler: Any) -> None:
    """Put a checkpoint's state into the live objects (the caller undoes it all on failure)."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    if not any(optimizer.state.values()):
        # Loading first takes a zero-gradient step to create the state, which a
        # Schedule-Free optimizer takes in train mode only (with no z yet, the flag is all that moves).
        optimizer.state.clear()
        if is_schedule_free(optimizer):
            for group in optimizer.param_groups:
                group["train_mode"] = True
    with paused(optimizer):
        set_optimizer_state_dict(model, optimizer, optim_state_dict=state["optimizer"])
    if not state[_META]["stepped"]:
        optimizer.state.clear()  # saved before its first step: no state yet
    if _AROUND in state:
        restore_saved_state(optimizer, state[_AROUND])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_model_state_dict(model, state["model"])
    if state[_META]["schedule_free_train_mode"]:
        set_schedule_free_mode(optimizer, True)


def _everyone(ok: bool) -> bool:
    """Whether every rank succeeded (just ``ok`` without a process group)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return ok
    results: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(results, ok)
    return all(results)


_UNCHANGED = "the model, the optimizer and the scheduler are unchanged"


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

    The load is all-or-nothing: the checkpoint is read into fresh copies of
    the state, then committed; if reading or committing fails on any rank,
    every rank puts back the state it had. While loading, each rank holds one
    extra copy of its share of the model and optimizer state (what is read)
    and one of the model's current weights (to put back).

    Raises:
        CheckpointError: with the cause in its first line, for a missing,
            truncated or mismatched checkpoint or a state that the optimizer or
            the scheduler refuses; nothing has changed then.
    """
    _check_optimizer(optimizer)
    with _as_checkpoint_error("load", checkpoint_dir, _UNCHANGED):
        location = os.fspath(checkpoint_dir)
        if "://" not in str(location) and not os.path.isdir(location):
            raise FileNotFoundError(f"no checkpoint directory {location!r}")
        state = _read(checkpoint_dir, model, optimizer, scheduler)
    snapshot = _Snapshot.take(model, optimizer, scheduler)
    failure: BaseException | None = None
    try:
        _commit(state, model, optimizer, scheduler)
    except Exception as exc:
        failure = exc
    except BaseException:
        snapshot.restore()  # interrupted: put everything back and let the interruption through
        raise
    if not _everyone(failure is None):
        snapshot.restore()
        with _as_checkpoint_error("load", checkpoint_dir, _UNCHANGED):
            if failure is not None:
                raise failure
            raise RuntimeError("another rank failed to load its share of the checkpoint")
