"""Check a scheduler's arguments against its signature, before it is built.

Every problem is collected, so one :class:`~optforge.errors.ConfigError` lists
them all: unknown names (with the valid ones), missing required arguments,
values of the wrong type (read from the annotations), values out of range, and
``{epochs: x}`` / ``{fraction: x}`` lengths, turned into steps here.

Example:
    >>> from optforge.lr_schedulers import get_scheduler_entry
    >>> check_arguments(get_scheduler_entry("StepLR"), {"step_size": {"fraction": 0.25}}, "schedule",
    ...                 {"total_steps": 200, "steps_per_epoch": None})
    {'step_size': 50}
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

import pydantic

from optforge.config import Problems
from optforge.errors import ConfigError, format_path, suggest
from optforge.ranges import SCHEDULER_RANGES as RANGES
from optforge.ranges import Range, is_number
from optforge.schedules import UNITS, Length, StepIndex

__all__ = ["RANGES", "Range", "check_arguments", "import_object", "is_length", "resolve_lengths"]


# The scalar types a config value may be, by annotation.
_SCALARS: Mapping[Any, tuple[str, Callable[[Any], bool]]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: is_number(v) and float(v).is_integer()),
    float: ("a number", lambda v: is_number(v) and not math.isnan(v)),
    str: ("a string", lambda v: isinstance(v, str)),
    type(None): ("null", lambda v: v is None),
}
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)


def is_length(value: Any) -> bool:
    """True for an ``{epochs: x}``, ``{fraction: x}`` or ``{steps: n}`` mapping."""
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in {"steps", *UNITS}


def import_object(spec: str, path: str) -> Any:
    """The object named by ``"pkg.mod:attr"`` or ``"pkg.mod.attr"``.

    Raises:
        ConfigError: when the module or the attribute cannot be had.

    Example:
        >>> import_object("math:sqrt", "lr_lambda")(4.0)
        2.0
    """
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"expected an import path such as 'pkg.mod:function', got {spec!r}", path=path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} of {spec!r}: {exc}", path=path) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}", path=path)
        obj = getattr(obj, part)
    return obj


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _SCALARS:
        return _SCALARS[hint][0]
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in _SEQUENCES:
        if args and args[-1] is not Ellipsis and origin is tuple:
            return f"a list of {len(args)} values"
        return f"a list of {_describe(args[0]) if args else 'values'}".replace("a whole number", "whole numbers")
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return "a function or its import path ('pkg.mod:function')"
    return getattr(hint, "__name__", str(hint))


def _conform(value: Any, hint: Any, path: str) -> Any:
    """``value`` as ``hint`` wants it (whole floats become ints, lists stay lists); ConfigError if it cannot be."""
    if hint is Any or hint is inspect.Parameter.empty or hint is None:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _SCALARS:
        if not _SCALARS[hint][1](value):
            raise ConfigError(f"expected {_SCALARS[hint][0]}, got {_show(value)}", path=path)
        return int(value) if hint is int else value
    if origin in (Union, types.UnionType):
        ordered = sorted(args, key=lambda arg: arg is not type(None))  # null first, then in order
        specific: list[ConfigError] = []
        for arg in ordered:
            try:
                return _conform(value, arg, path)
            except ConfigError as error:
                if not str(error).startswith(f"{path}: expected"):
                    specific.append(error)  # the value had this shape but is wrong inside (an import failed)
        if specific:
            raise specific[0]
        raise ConfigError(f"expected {_describe(hint)}, got {_show(value)}", path=path)
    if origin is Literal:
        if value not in args:
            close = suggest(str(value), [str(arg) for arg in args])
            hint_text = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"expected {_describe(hint)}, got {_show(value)}{hint_text}", path=path)
        return value
    if origin in _SEQUENCES:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected {_describe(hint)}, got {_show(value)}", path=path)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"expected {len(args)} values, got {len(value)}: {list(value)!r}", path=path)
            return tuple(_conform(v, a, format_path(path, i)) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_conform(v, item, format_path(path, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        if isinstance(value, str):
            value = import_object(value, path)
        if not callable(value):
            raise ConfigError(f"expected {_describe(hint)}, got {_show(value)}", path=path)
        return value
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _check_range(rule: Range | None, value: Any, path: str) -> str | None:
    if rule is None:
        return None
    items = list(enumerate(value)) if isinstance(value, list | tuple) else [(None, value)]
    for index, item in items:
        if is_number(item) and rule.outside(float(item)):
            return f"must be {rule.text()}, got {item!r}" + ("" if index is None else f" (at index {index})")
    return None


def resolve_lengths(value: Any, context: Mapping[str, int | None], path: str) -> Any:
    """``value`` with every length mapping (also inside a list) turned into steps."""
    if isinstance(value, list | tuple):
        return [resolve_lengths(item, context, format_path(path, i)) for i, item in enumerate(value)]
    if not is_length(value):
        return value
    try:
        parsed = pydantic.TypeAdapter(StepIndex).validate_python(dict(value))
    except pydantic.ValidationError as exc:
        raise ConfigError(exc.errors()[0]["msg"].removeprefix("Value error, "), path=path) from None
    if not isinstance(parsed, Length):
        return parsed
    needed = UNITS[parsed.unit]
    if context.get(needed) is None:  # where the run's length goes differs from optforge's own schedules
        raise ConfigError(
            f"{{{parsed.unit}: {parsed.value}}} needs {needed}: pass it from code, optforge.build(model, config, "
            f"{needed}=N), or write it in the scheduler's section, beside its name, schedule: {{name: ..., "
            f"{needed}: N}}",
            path=path,
        )
    return parsed.to_steps(context, path)


def check_arguments(
    entry: Any,
    values: Mapping[str, Any],
    path: str,
    context: Mapping[str, int | None],
    *,
    problems: Problems | None = None,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Validate ``values`` for ``entry``'s scheduler and return them ready to pass.

    Args:
        entry: The :class:`~optforge.lr_schedulers.SchedulerEntry`.
        values: Arguments from the config (nested scheduler sections excluded).
        path: The config path of the mapping holding them.
        context: ``{"steps_per_epoch": ..., "total_steps": ...}`` for lengths.
        problems: Where to note problems instead of raising.
        skip: Arguments checked elsewhere (nested scheduler sections); only their presence counts.

    Raises:
        ConfigError: with every problem, when ``problems`` is not given.
    """
    collected = Problems() if problems is None else problems
    parameters = entry.parameters()
    lengths = entry.lengths()
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name in skip:
            continue
        where = format_path(path, str(name))
        param = parameters.get(name)
        if param is None:
            reason = entry.excluded_reason(str(name))
            if reason:
                collected.add(where, reason)
                continue
            close = suggest(str(name), parameters)
            message = f"unknown argument for {entry.name}"
            message += f"; did you mean {close[0]!r}?" if close else "."
            message += " Valid arguments: " + (", ".join(parameters) or "none")
            collected.add(where, message)
            continue
        try:
            if name in lengths:
                value = resolve_lengths(value, context, where)
            elif is_length(value) or (isinstance(value, list) and any(is_length(item) for item in value)):
                valid = ", ".join(lengths) or "none"
                raise ConfigError(
                    f"{name} is not a length: {{epochs: x}} and {{fraction: x}} apply to {valid}", path=where
                )
            value = _conform(value, param.hint, where)
        except ConfigError as error:
            collected.extend(error)
            continue
        problem = _check_range(entry.ranges.get(name, RANGES.get(name)), value, where)
        if problem:
            collected.add(where, problem)
            continue
        checked[name] = value
    for name, param in parameters.items():
        if param.required and name not in values:
            collected.add(format_path(path, name), f"required argument of {entry.name} is missing")
    if problems is None:
        collected.raise_if_any()
    return checked
