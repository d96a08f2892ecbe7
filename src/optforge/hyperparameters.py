"""Check an optimizer's hyperparameters against its signature, before it is built.

Unknown names are errors naming the valid ones; lists become tuples where the
optimizer expects tuples; values of the wrong type or out of range are errors
with their config path, raised now rather than at the first ``step()``.

One range table, :data:`RANGES`, serves every place a hyperparameter is set:
the optimizer section, explicit param groups, param-group rules, ``lr_scale``
and the scheduled values of :class:`~optforge.LRShim`. A second table,
:data:`FIRST_STEP_RULES`, holds the values that an optimizer's constructor
accepts but its first step (or the constructor itself, with another exception
type) rejects.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
import torch

from optforge.errors import ConfigError, format_path, suggest, truncate
from optforge.registry import OptimizerEntry

__all__ = [
    "FIRST_STEP_RULES",
    "RANGES",
    "FirstStepRule",
    "Range",
    "check_hyperparameters",
    "value_problems",
]

# The largest float32: accumulators created in the parameters' dtype overflow beyond it.
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
# The largest whole number a hyperparameter that takes integers may be (a C ``int64``).
INT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Range:
    """A closed or half-open interval that a finite hyperparameter value must lie in.

    Example:
        >>> Range(0.0, 1.0).problem(1.5)
        'must be in [0, 1), got 1.5'
        >>> Range(0.0).problem(float("inf"))
        'must be a finite number, got inf'
    """

    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True
    cap: float = math.inf  # beyond it the value cannot act on float32 tensors

    def text(self) -> str:
        """The interval as the messages write it: ``>= 0.0`` or ``in [0, 1)``."""
        if self.high == math.inf:
            return f"> {self.low!r}" if self.low_open else f">= {self.low!r}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range, or ``None``; values that are not numbers are not judged here."""
        if not _is_number(value):
            return None
        if not _finite(value):
            return f"must be a finite number, got {truncate(value)}"
        if value > self.cap:
            return f"must be at most {self.cap:.6g} (the largest float32), got {truncate(value)}"
        too_low = value <= self.low if self.low_open else value < self.low
        too_high = value >= self.high if self.high_open else value > self.high
        if too_low or too_high:
            return f"must be {self.text()}, got {truncate(value)}"
        return None


# Ranges by hyperparameter name, shared by every optimizer and by schedules of these
# values; for a tuple value (betas) the range applies to each element.
# A value >= 0 that multiplies tensors: torch refuses a scalar beyond the largest float32 for float32 tensors.
_SCALE = Range(0.0, cap=FLOAT32_MAX)

RANGES: Mapping[str, Range] = {
    "lr": _SCALE,
    "eps": _SCALE,
    "weight_decay": _SCALE,
    "momentum": _SCALE,
    "dampening": _SCALE,
    "lr_decay": _SCALE,
    "initial_accumulator_value": _SCALE,
    "alpha": _SCALE,
    "lambd": _SCALE,
    "betas": Range(0.0, 1.0),
    "beta1": Range(0.0, 1.0),
    "beta2": Range(0.0, 1.0),
    "rho": Range(0.0, 1.0, high_open=False),
    "lr_scale": _SCALE,
    "layer_decay": Range(0.0, 1.0, low_open=True, high_open=False),
}


@dataclass(frozen=True)
class FirstStepRule:
    """A value that the optimizer's constructor accepts but its first step rejects.

    Attributes:
        applies: Whether the rule concerns an optimizer class.
        check: Why a value is bad, or ``None``.
    """

    applies: Callable[[type], bool]
    check: Callable[[Any], str | None]


def _is_lbfgs(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, torch.optim.LBFGS)


def _is_schedule_free(cls: type) -> bool:
    return "schedulefree" in getattr(cls, "__name__", "").lower()


def _line_search(value: Any) -> str | None:
    return None if value in (None, "strong_wolfe") else f"must be null or 'strong_wolfe', got {truncate(value)}"


def _history_size(value: Any) -> str | None:
    return None if not _is_number(value) or value >= 1 else f"must be >= 1, got {truncate(value)}"


# The largest Schedule-Free ``r``: the averaging weight (k + 1) ** r must stay a float for 10**15 steps.
MAX_SCHEDULE_FREE_R = 20.0


def _schedule_free_r(value: Any) -> str | None:
    if not _is_number(value) or (_finite(value) and 0 <= value <= MAX_SCHEDULE_FREE_R):
        return None
    return (
        f"must be in [0, {MAX_SCHEDULE_FREE_R:g}], got {truncate(value)}: the averaging weight (step + 1) ** r "
        "overflows a float otherwise"
    )


# Values accepted at construction but rejected at the first step, by hyperparameter name.
FIRST_STEP_RULES: Mapping[str, FirstStepRule] = {
    "line_search_fn": FirstStepRule(_is_lbfgs, _line_search),
    "history_size": FirstStepRule(_is_lbfgs, _history_size),
    "r": FirstStepRule(_is_schedule_free, _schedule_free_r),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


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
    if not _is_number(value):
        raise ConfigError(f"expected a number, got {type(value).__name__} {truncate(value)}", path=path)
    whole_only = annotation and "float" not in annotation and "Tensor" not in annotation
    if isinstance(default, int) and whole_only:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"expected a whole number, got {value!r}", path=path)
        if not _finite(value) or abs(value) > INT_MAX:
            raise ConfigError(f"expected a whole number of at most 2**63 - 1, got {truncate(value)}", path=path)
        return value
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError("must be a number, got nan", path=path)
    if not _finite(value) and _finite(default):
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
    if _is_number(default):
        return _number(value, default, path, annotation)
    return value


def value_problems(name: str, value: Any, path: str) -> list[tuple[str, str]]:
    """``(path, message)`` for each element of ``value`` outside the range :data:`RANGES` gives ``name``.

    Example:
        >>> value_problems("betas", (0.9, 1.0), "optimizer.betas")
        [('optimizer.betas[1]', 'must be in [0, 1), got 1.0')]
        >>> value_problems("lr", float("inf"), "lr")
        [('lr', 'must be a finite number, got inf')]
    """
    rng = RANGES.get(name)
    if rng is None:
        return []
    items = list(enumerate(value)) if isinstance(value, tuple | list) else [(None, value)]
    problems = []
    for index, item in items:
        if isinstance(item, torch.Tensor) and item.numel() == 1:
            item = item.item()  # a tensor lr is judged by its value
        problem = rng.problem(item)
        if problem:
            problems.append((path if index is None else format_path(path, index), problem))
    return problems


@functools.cache
def _validator(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    """A strict checker of values against a signature's annotation (``None`` where pydantic cannot read it)."""
    try:
        return pydantic.TypeAdapter(annotation, config=pydantic.ConfigDict(strict=True, arbitrary_types_allowed=True))
    except Exception:  # an annotation pydantic cannot build a schema for (a string, a private type)
        return None


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
    if rule is not None and rule.applies(entry.resolve_class()):
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
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        if not isinstance(name, str):
            where = format_path(path, truncate(name, 40))
            message = f"hyperparameter names must be strings, got {type(name).__name__} {truncate(name)}"
            problems.append((where, message))
            continue
        where = format_path(path, name)
        param = accepted.get(name)
        if param is None and not takes_any:
            message = f"unknown hyperparameter for {entry.name}"
            close = suggest(name, accepted)
            message += f"; did you mean {close[0]!r}?" if close else "."
            message += " Valid hyperparameters: " + ", ".join(accepted)
            problems.append((where, message))
            continue
        try:
            checked[name] = _check_one(entry, param, name, value, where)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError.from_problems(problems)
    return checked
