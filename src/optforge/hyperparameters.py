"""Check an optimizer's hyperparameters against its signature, before it is built.

Unknown names are errors naming the valid ones; lists become tuples where the
optimizer expects tuples; values of the wrong type or out of range are errors
with their config path, raised now rather than at the first ``step()``.

The ranges are :data:`optforge.ranges.RANGES` (re-exported here), shared with
param groups, ``lr_scale`` and the scheduled values of :class:`~optforge.ClosedFormScheduler`.
:data:`FIRST_STEP_RULES` holds the values that an optimizer's constructor accepts
but its first step (or the constructor itself, with another exception type) rejects.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
import torch

from optforge.config import Problems
from optforge.errors import ConfigError, format_path, suggest, truncate
from optforge.ranges import RANGES, Range, is_finite, is_number, value_problems
from optforge.registry import OptimizerEntry, has_train_eval_modes

__all__ = [
    "FIRST_STEP_RULES",
    "RANGES",
    "FirstStepRule",
    "Range",
    "check_hyperparameters",
    "value_problems",
]

# The largest whole number a hyperparameter that takes integers may be (a C ``int64``).
INT_MAX = 2**63 - 1


@dataclass(frozen=True)
class FirstStepRule:
    """A value that the optimizer's constructor accepts but its first step rejects.

    Attributes:
        applies: Whether the rule concerns an optimizer, given its registry entry.
        check: Why a value is bad, or ``None``.
    """

    applies: Callable[[OptimizerEntry], bool]
    check: Callable[[Any], str | None]


def _is_lbfgs(entry: OptimizerEntry) -> bool:
    cls = entry.resolve_class()
    return isinstance(cls, type) and issubclass(cls, torch.optim.LBFGS)


def _line_search(value: Any) -> str | None:
    return None if value in (None, "strong_wolfe") else f"must be null or 'strong_wolfe', got {truncate(value)}"


def _history_size(value: Any) -> str | None:
    return None if not is_number(value) or value >= 1 else f"must be >= 1, got {truncate(value)}"


# The largest Schedule-Free ``r``: the averaging weight (k + 1) ** r must stay a float for 10**15 steps.
MAX_SCHEDULE_FREE_R = 20.0


def _schedule_free_r(value: Any) -> str | None:
    if not is_number(value) or (is_finite(value) and 0 <= value <= MAX_SCHEDULE_FREE_R):
        return None
    return (
        f"must be in [0, {MAX_SCHEDULE_FREE_R:g}], got {truncate(value)}: the averaging weight (step + 1) ** r "
        "overflows a float otherwise"
    )


# Values accepted at construction but rejected at the first step, by hyperparameter name.
FIRST_STEP_RULES: Mapping[str, FirstStepRule] = {
    "line_search_fn": FirstStepRule(_is_lbfgs, _line_search),
    "history_size": FirstStepRule(_is_lbfgs, _history_size),
    "r": FirstStepRule(has_train_eval_modes, _schedule_free_r),
}


def _number(value: Any, default: Any, path: str, annotation: str) -> Any:
    """A number for a hyperparameter whose default is a number (or a 1-element tensor where it takes one)."""
    if isinstance(value, torch.Tensor) and "Tensor" in annotation:
        if value.numel() != 1 or not value.is_floating_point():
            raise ConfigError(
                f"expected a number or a 1-element floating-point tensor, got a tensor of shape "
                f"{list(value.shape)} and dtype {value.dtype}",
                path=path,
            )
        _number(value.item(), default, path, annotation)
        return value  # used as given, as torch's constructors take it
    if not is_number(value):
        raise ConfigError(f"expected a number, got {type(value).__name__} {truncate(value)}", path=path)
    whole_only = annotation and "float" not in annotation and "Tensor" not in annotation
    if isinstance(default, int) and whole_only:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"expected a whole number, got {value!r}", path=path)
        if not is_finite(value) or abs(value) > INT_MAX:
            raise ConfigError(f"expected a whole number of at most 2**63 - 1, got {truncate(value)}", path=path)
        return value
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError("must be a number, got nan", path=path)
    if not is_finite(value) and is_finite(default):
        raise ConfigError(f"must be a finite number, got {truncate(value)}", path=path)
    if isinstance(value, int) and abs(value) > INT_MAX:
        return float(value)  # torch takes Python ints as int64: a larger whole number goes as the float it is
    return value


def _convert(value: Any, default: Any, path: str, annotation: str = "") -> Any:
    """``value`` shaped like ``default``: lists become tuples, types are checked.

    ``annotation`` is the parameter's annotation as text; an ``int`` default only
    demands a whole number when the annotation does not admit a float.
    """
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list of {len(default)} values, got {truncate(value)}", path=path)
        if len(value) != len(default):
            raise ConfigError(f"expected {len(default)} values, got {len(value)}: {truncate(list(value))}", path=path)
        return tuple(_convert(v, d, format_path(path, i)) for i, (v, d) in enumerate(zip(value, default)))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {truncate(value)}", path=path)
        return value
    if is_number(default):
        return _number(value, default, path, annotation)
    return value


def _new_validator(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    """A strict checker of values against a signature's annotation (``None`` where pydantic cannot read it)."""
    try:
        return pydantic.TypeAdapter(annotation, config=pydantic.ConfigDict(strict=True, arbitrary_types_allowed=True))
    except Exception:  # an annotation pydantic cannot build a schema for (a string, a private type)
        return None


_cached_validator = functools.cache(_new_validator)


def _validator(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    """:func:`_new_validator`, made once per annotation (an unhashable annotation is read each time)."""
    try:
        return _cached_validator(annotation)
    except TypeError:  # Annotated[...] with unhashable metadata
        return _new_validator(annotation)


def _annotated(value: Any, annotation: Any, path: str) -> None:
    """Check ``value`` against ``annotation``, for hyperparameters whose default (``None``) says nothing of their type.

    Strict: no string is taken for a number, no number for a boolean. A whole float
    passes for an int (YAML writes ``1.0e3`` as a float).

    Example:
        >>> _annotated("abc", int | None, "optimizer.max_eval")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: optimizer.max_eval: expected int | None, got str 'abc'
    """
    validator = None if annotation is inspect.Parameter.empty or isinstance(annotation, str) else _validator(annotation)
    if validator is None or isinstance(value, torch.Tensor):
        return
    candidates = [value]
    if isinstance(value, float) and value.is_integer():
        candidates.append(int(value))
    for candidate in candidates:
        try:
            validator.validate_python(candidate)
            return
        except pydantic.ValidationError:
            continue
    shown = str(annotation).replace("typing.", "").replace("NoneType", "None")
    raise ConfigError(f"expected {shown}, got {type(value).__name__} {truncate(value)}", path=path)


def _check_one(entry: OptimizerEntry, param: inspect.Parameter | None, name: str, value: Any, where: str) -> Any:
    if param is not None:
        default = param.default
        if default is not inspect.Parameter.empty and default is not None:
            annotation = "" if param.annotation is inspect.Parameter.empty else str(param.annotation)
            value = _convert(value, default, where, annotation)
        else:
            if isinstance(value, list) and "tuple" in str(param.annotation).lower():
                value = tuple(value)
            if default is None and value is not None:
                _annotated(value, param.annotation, where)
    problems = value_problems(name, value, where)
    rule = FIRST_STEP_RULES.get(name)
    if rule is not None and rule.applies(entry):
        problem = rule.check(value)
        if problem:
            problems.append((where, problem))
    if problems:
        raise ConfigError.from_problems(problems)
    return value


def check_hyperparameters(entry: OptimizerEntry, values: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Validate ``values`` for ``entry``'s optimizer and return them ready to pass.

    Every problem of the section is reported in one error.

    Args:
        entry: The registry entry of the optimizer.
        values: Hyperparameters from the config (without ``name``).
        path: The config path of the mapping holding them (``"optimizer"``).

    Raises:
        ConfigError: for each unknown name, wrong type, out-of-range value, or
            value that the optimizer would reject only at its first step.

    Example:
        >>> from optforge.registry import get_optimizer_entry
        >>> check_hyperparameters(get_optimizer_entry("AdamW"), {"betas": [0.9, 0.95]}, "optimizer")
        {'betas': (0.9, 0.95)}
        >>> check_hyperparameters(get_optimizer_entry("AdamW"), {"betas": [0.9, 1.5]}, "optimizer")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: optimizer.betas[1]: must be in [0, 1), got 1.5
    """
    accepted, takes_any = entry.hyperparameters()
    checked: dict[str, Any] = {}
    problems = Problems()
    for name, value in values.items():
        if not isinstance(name, str):
            where = format_path(path, truncate(name, 40))
            message = f"hyperparameter names must be strings, got {type(name).__name__} {truncate(name)}"
            problems.add(where, message)
            continue
        where = format_path(path, name)
        param = accepted.get(name)
        if param is None and not takes_any:
            message = f"unknown hyperparameter for {entry.name}"
            close = suggest(name, accepted)
            message += f"; did you mean {close[0]!r}?" if close else "."
            message += " Valid hyperparameters: " + ", ".join(accepted)
            problems.add(where, message)
            continue
        with problems.collect():
            checked[name] = _check_one(entry, param, name, value, where)
    problems.raise_if_any()
    return checked
