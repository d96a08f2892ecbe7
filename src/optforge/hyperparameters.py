"""Check an optimizer's hyperparameters against its signature, before it is built.

Unknown names are errors naming the valid ones; lists become tuples where the
optimizer expects tuples; values of the wrong type or out of range are errors
with their config path, raised now rather than at the first ``step()``.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from optforge.errors import ConfigError, format_path, suggest
from optforge.registry import OptimizerEntry

__all__ = ["RANGE_RULES", "check_hyperparameters"]


def _at_least(low: float) -> Callable[[float], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def _in_unit_interval(v: float) -> str | None:
    return None if 0.0 <= v < 1.0 else "must be in [0, 1)"


def _in_closed_unit_interval(v: float) -> str | None:
    return None if 0.0 <= v <= 1.0 else "must be in [0, 1]"


# Range checks by hyperparameter name, shared by every optimizer; for a tuple
# value the rule applies to each element (betas). Each returns why a value is bad.
RANGE_RULES: Mapping[str, Callable[[float], str | None]] = {
    "lr": _at_least(0.0),
    "eps": _at_least(0.0),
    "weight_decay": _at_least(0.0),
    "momentum": _at_least(0.0),
    "dampening": _at_least(0.0),
    "lr_decay": _at_least(0.0),
    "initial_accumulator_value": _at_least(0.0),
    "alpha": _at_least(0.0),
    "lambd": _at_least(0.0),
    "betas": _in_unit_interval,
    "rho": _in_closed_unit_interval,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _convert(value: Any, default: Any, path: str, annotation: str = "") -> Any:
    """``value`` shaped like ``default``: lists become tuples, types are checked.

    ``annotation`` is the parameter's annotation as text; an ``int`` default only
    demands a whole number when the annotation does not admit a float.
    """
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list of {len(default)} values, got {value!r}", path=path)
        if len(value) != len(default):
            raise ConfigError(f"expected {len(default)} values, got {len(value)}: {list(value)!r}", path=path)
        return tuple(_convert(v, d, format_path(path, i)) for i, (v, d) in enumerate(zip(value, default)))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", path=path)
        return value
    if _is_number(default):
        if not _is_number(value):
            raise ConfigError(f"expected a number, got {type(value).__name__} {value!r}", path=path)
        whole_only = annotation and "float" not in annotation and "Tensor" not in annotation
        if isinstance(default, int) and isinstance(value, float) and whole_only and not value.is_integer():
            raise ConfigError(f"expected a whole number, got {value!r}", path=path)
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError("must be a number, got nan", path=path)
        return value
    return value


def _check_range(name: str, value: Any, path: str) -> None:
    rule = RANGE_RULES.get(name)
    if rule is None:
        return
    items = list(enumerate(value)) if isinstance(value, tuple) else [(None, value)]
    for index, item in items:
        if not _is_number(item):
            continue
        problem = rule(float(item))
        if problem:
            where = path if index is None else format_path(path, index)
            raise ConfigError(f"{problem}, got {item!r}", path=where)


def check_hyperparameters(entry: OptimizerEntry, values: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Validate ``values`` for ``entry``'s optimizer and return them ready to pass.

    Args:
        entry: The registry entry of the optimizer.
        values: Hyperparameters from the config (without ``name``).
        path: The config path of the mapping holding them (``"optimizer"``).

    Raises:
        ConfigError: for an unknown name, a wrong type or an out-of-range value.

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
    for name, value in values.items():
        where = format_path(path, name)
        if not isinstance(name, str):
            raise ConfigError(f"hyperparameter names must be strings, got {name!r}", path=path)
        param = accepted.get(name)
        if param is None:
            if takes_any:
                checked[name] = value
                continue
            message = f"unknown hyperparameter for {entry.name}"
            close = suggest(name, accepted)
            message += f"; did you mean {close[0]!r}?" if close else "."
            message += " Valid hyperparameters: " + ", ".join(accepted)
            raise ConfigError(message, path=where)
        default = param.default
        if default is not inspect.Parameter.empty and default is not None:
            annotation = "" if param.annotation is inspect.Parameter.empty else str(param.annotation)
            value = _convert(value, default, where, annotation)
        elif isinstance(value, list):
            value = tuple(value) if "tuple" in str(param.annotation) else value
        _check_range(name, value, where)
        checked[name] = value
    return checked
