"""Check an optimizer state dict against the optimizer's parameters before loading it.

torch's ``Optimizer.load_state_dict`` checks the number of groups and of
parameters in each, then takes whatever the state holds: the state of another
model or another optimizer, or a group without its ``lr``, loads silently and
fails at the next step.
:func:`check_state_dict` refuses it first, naming every problem, so that an
optimizer calls it at the top of its ``load_state_dict`` and changes nothing
when it raises.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> state = {"state": {0: {"momentum_buffer": torch.zeros(4)}}, "param_groups": [{"params": [0]}]}
    >>> check_state_dict(opt, state, ["momentum_buffer"])
    Traceback (most recent call last):
    ...
    optforge.errors.ConfigError: state[0].momentum_buffer: has shape [4], but its parameter has shape [3]
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from optforge.errors import ConfigError, format_path, truncate

__all__ = ["check_state_dict", "read_state_file"]


def _sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _structure(optimizer: torch.optim.Optimizer, state_dict: Any) -> list[tuple[str, str]]:
    """Problems with the outer shape of ``state_dict`` (groups and their sizes)."""
    if not isinstance(state_dict, Mapping):
        return [("", f"an optimizer state must be a mapping, got {type(state_dict).__name__} {truncate(state_dict)}")]
    problems = []
    if not isinstance(state_dict.get("state"), Mapping):
        problems.append(
            ("state", f"expected a mapping of parameter ids to states, got {truncate(state_dict.get('state'))}")
        )
    groups = state_dict.get("param_groups")
    if not _sequence(groups):
        return [*problems, ("param_groups", f"expected a list of param groups, got {truncate(groups)}")]
    if len(groups) != len(optimizer.param_groups):
        return [
            *problems,
            ("param_groups", f"{len(groups)} param groups saved, but the optimizer has {len(optimizer.param_groups)}"),
        ]
    for index, (saved, live) in enumerate(zip(groups, optimizer.param_groups)):
        where = format_path("param_groups", index)
        params = saved.get("params") if isinstance(saved, Mapping) else None
        if not _sequence(params):
            problems.append((where, "expected a param group with a list of parameter ids under 'params'"))
        elif not all(isinstance(pid, int | str) and not isinstance(pid, bool) for pid in params):
            problems.append((format_path(where, "params"), f"parameter ids must be integers, got {truncate(params)}"))
        elif len(params) != len(live["params"]):
            problems.append(
                (
                    format_path(where, "params"),
                    f"{len(params)} parameters saved, but the group has {len(live['params'])}",
                )
            )
    return problems


def _tensor_problem(value: Any, param: torch.Tensor) -> str | None:
    if not isinstance(value, torch.Tensor):
        return f"expected a tensor, got {type(value).__name__} {truncate(value)}"
    if value.shape != param.shape:
        return f"has shape {list(value.shape)}, but its parameter has shape {list(param.shape)}"
    # torch casts floating-point state to the parameter's dtype on load; anything else must match exactly.
    if value.dtype != param.dtype and not (value.is_floating_point() and param.is_floating_point()):
        return f"has dtype {value.dtype}, but its parameter has dtype {param.dtype}"
    return None


def _group_problems(
    optimizer: torch.optim.Optimizer, groups: Sequence[Any], keys: Sequence[str]
) -> list[tuple[str, str]]:
    """Saved param groups that lack one of ``keys``."""
    problems = []
    for index, group in enumerate(groups):
        missing = [key for key in keys if key not in group]
        if missing:
            holds = f"{type(optimizer).__name__}'s param groups hold {', '.join(keys)}"
            message = f"missing {', '.join(missing)} ({holds}): the state of another optimizer?"
            problems.append((format_path("param_groups", index), message))
    return problems


def check_state_dict(
    optimizer: torch.optim.Optimizer,
    state_dict: Any,
    tensors: Collection[str],
    *,
    exact: bool = True,
    group_keys: Sequence[str] = (),
    optional: Collection[str] = (),
) -> None:
    """Raise ``ConfigError`` unless ``state_dict`` fits ``optimizer`` and its parameters.

    Call it first thing in an optimizer's ``load_state_dict``, so that a refused
    state changes nothing.

    Args:
        optimizer: The optimizer that would load the state.
        state_dict: The state, as ``optimizer.state_dict()`` makes it.
        tensors: The per-parameter state entries that are tensors shaped like
            the parameter (``("exp_avg",)`` for Lion); a non-empty saved state
            of a parameter must hold each of them.
        exact: Also refuse entries other than ``tensors`` and ``optional`` (the
            state of another optimizer). ``False`` for wrappers whose base
            optimizer adds its own.
        group_keys: Entries every saved param group must hold: the
            hyperparameters the optimizer reads that its ``__setstate__`` does
            not fill in for older checkpoints (a state without them is another
            optimizer's).
        optional: Per-parameter tensors a state may hold besides ``tensors``,
            checked like them where present.

    Raises:
        ConfigError: naming each problem: the group structure, a group without
            one of ``group_keys``, a state for a parameter id the groups do not
            name, a missing or unexpected entry, a tensor of another shape, or
            of another kind of dtype.
    """
    problems = _structure(optimizer, state_dict)
    if problems:
        raise ConfigError.from_problems(problems)
    problems = _group_problems(optimizer, state_dict["param_groups"], group_keys)
    ids = [pid for group in state_dict["param_groups"] for pid in group["params"]]
    params = [param for group in optimizer.param_groups for param in group["params"]]
    by_id = dict(zip(ids, params))
    wanted = set(tensors)
    checked = wanted | set(optional)
    for pid, entry in state_dict["state"].items():
        where = f"state[{truncate(pid, 40)}]"
        param = by_id.get(pid)
        if param is None:
            problems.append((where, "state of a parameter id that no param group lists"))
            continue
        if not isinstance(entry, Mapping):
            problems.append((where, f"expected a mapping of state entries, got {truncate(entry)}"))
            continue
        if not entry:
            continue
        keys = set(entry)
        missing = sorted(wanted - keys)
        extra = sorted((str(key) for key in keys - checked), key=str) if exact else []
        if missing or extra:
            parts = [f"missing {', '.join(missing)}"] * bool(missing) + [f"unexpected {', '.join(extra)}"] * bool(extra)
            expected = ", ".join(sorted(wanted))
            message = (
                f"{'; '.join(parts)} ({type(optimizer).__name__} keeps {expected}): the state of another optimizer?"
            )
            problems.append((where, message))
        for key in sorted(checked & keys):
            problem = _tensor_problem(entry[key], param)
            if problem:
                problems.append((format_path(where, key), problem))
    if problems:
        raise ConfigError.from_problems(problems)


def read_state_file(file: str | os.PathLike[str], path: str, what: str) -> Mapping[str, Any]:
    """The state saved in ``file`` (tensors and plain data only), for a config's ``checkpoint:`` key.

    Args:
        file: The file ``torch.save`` wrote.
        path: The config path that names the file, for messages.
        what: What the file should hold (``"optimizer"``, ``"scheduler"``), for messages.

    Raises:
        ConfigError: when the file is missing, cannot be read, or holds something other than a mapping.

    Example:
        >>> read_state_file("missing.pt", "optimizer.checkpoint", "optimizer")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: optimizer.checkpoint: optimizer checkpoint 'missing.pt' does not exist
    """
    if not Path(file).is_file():
        raise ConfigError(f"{what} checkpoint {str(file)!r} does not exist", path=path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: pickle, zip and torch errors alike
        raise ConfigError(f"cannot read {what} checkpoint {str(file)!r}: {exc}", path=path) from None
    if not isinstance(state, Mapping):
        raise ConfigError(f"{str(file)!r} holds a {type(state).__name__}, not a {what} state", path=path)
    return state
