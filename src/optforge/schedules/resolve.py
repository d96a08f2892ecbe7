"""Parse a schedule config and turn its epochs and fractions into steps, once, at build time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from optforge._validation import parse_model
from optforge.errors import ConfigError, format_path
from optforge.schedules._lengths import Length
from optforge.schedules.models import LearningRate

__all__ = ["parse_schedule", "resolve_schedule"]


def parse_schedule(lr_config: Any, path: str = "learning_rate") -> LearningRate:
    """Validate a typed :class:`LearningRate` or a mapping of the same shape.

    Raises:
        ConfigError: naming the path of each bad field.

    Example:
        >>> parse_schedule({"cosine_decay": {"peak_value": 0.1, "decay_step": 10}}, "schedule")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: 2 problems in the config:
          - schedule.cosine_decay.decay_steps: required field is missing
          - schedule.cosine_decay.decay_step: unknown key; did you mean 'decay_steps'? Valid keys: ...
    """
    if not isinstance(lr_config, pydantic.BaseModel):
        lr_config = _checked_data(lr_config, path)
    return parse_model(LearningRate, lr_config, path)


def _checked_data(data: Any, path: str) -> Any:
    """Plain data with string keys, no cycles and bounded nesting, its problems placed under ``path``."""
    from optforge.config_source import to_plain

    try:
        return to_plain(data)
    except ConfigError as err:
        placed = [
            (f"{path}{where}" if where.startswith("[") else format_path(path, where), m) for where, m in err.problems
        ]
        raise ConfigError.from_problems(placed) from None


def _has_length(value: Any) -> bool:
    if isinstance(value, Length):
        return True
    if isinstance(value, pydantic.BaseModel):
        return any(_has_length(getattr(value, name)) for name in value.model_fields_set)
    if isinstance(value, list):
        return any(_has_length(item) for item in value)
    return False


def _in_steps(value: Any, context: Mapping[str, int | None], path: str) -> Any:
    """Plain data of ``value`` with every :class:`Length` turned into steps (set fields only)."""
    if isinstance(value, Length):
        return value.to_steps(context, path)
    if isinstance(value, pydantic.BaseModel):
        return {
            name: _in_steps(getattr(value, name), context, format_path(path, name)) for name in value.model_fields_set
        }
    if isinstance(value, list):
        return [_in_steps(item, context, format_path(path, index)) for index, item in enumerate(value)]
    return value


def _check_context(name: str, value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}", path=format_path(path, name))
    return value


def resolve_schedule(
    lr_config: Any,
    *,
    steps_per_epoch: int | None = None,
    total_steps: int | None = None,
    path: str = "learning_rate",
) -> LearningRate:
    """Validate a schedule and express every length in steps.

    ``{epochs: x}`` becomes ``round(x * steps_per_epoch)`` steps and
    ``{fraction: x}`` becomes ``round(x * total_steps)``. With ``total_steps``,
    every step the schedule names (ends of decays, milestones, boundaries,
    phases) must lie within it.

    Args:
        lr_config: A :class:`LearningRate` or a mapping of the same shape.
        steps_per_epoch: Optimizer steps per epoch, for lengths in epochs.
        total_steps: Optimizer steps of the whole run, for fractions and checks.
        path: The config path of ``lr_config``, for messages.

    Returns:
        A :class:`LearningRate` whose lengths are all integers.

    Raises:
        ConfigError: for a bad config, a missing context value or a step beyond ``total_steps``.

    Example:
        >>> cfg = {"cosine_decay": {"peak_value": 0.1, "warmup_steps": {"epochs": 1},
        ...                         "decay_steps": {"fraction": 1.0}}}
        >>> resolve_schedule(cfg, steps_per_epoch=100, total_steps=1000).cosine_decay.warmup_steps
        100
    """
    steps_per_epoch = _check_context("steps_per_epoch", steps_per_epoch, path)
    total_steps = _check_context("total_steps", total_steps, path)
    model = parse_schedule(lr_config, path)
    if _has_length(model):
        context = {"steps_per_epoch": steps_per_epoch, "total_steps": total_steps}
        model = parse_model(LearningRate, _in_steps(model, context, path), path)
    if total_steps is not None:
        for parts, step in model.positions():
            if step > total_steps:
                raise ConfigError(
                    f"step {step} is beyond total_steps ({total_steps}): the run ends before the schedule gets there",
                    path=format_path(path, *parts),
                )
    return model
