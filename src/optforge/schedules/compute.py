"""``compute_lr``: the learning rate of a schedule at a step, as a pure function."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from typing import Any

from optforge._validation import parse_model
from optforge.schedules.models import (
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    PiecewiseConstant,
)

__all__ = ["compute_lr", "parse_schedule"]


def _piecewise_constant(cfg: PiecewiseConstant, step: int) -> float:
    return cfg.learning_rate_values[bisect.bisect_right(cfg.learning_rate_boundaries, step)]


def _linear_ramp_to_constant(cfg: LinearRampToConstant, step: int) -> float:
    return min(cfg.learning_rate, cfg.learning_rate / cfg.num_ramp_steps * step)


def _linear_ramp_to_cosine(cfg: LinearRampToCosine, step: int) -> float:
    if step < cfg.num_ramp_steps:
        return cfg.learning_rate / cfg.num_ramp_steps * step
    if step <= cfg.final_num_steps:
        progress = (step - cfg.num_ramp_steps) / (cfg.final_num_steps - cfg.num_ramp_steps)
        return cfg.final_learning_rate + (cfg.learning_rate - cfg.final_learning_rate) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
    return cfg.final_learning_rate


# One entry per field of LearningRate: adding a schedule is a model field and an entry here.
SCHEDULE_FUNCTIONS: Mapping[str, Callable[[Any, int], float]] = {
    "constant": lambda value, step: float(value),
    "piecewise_constant": _piecewise_constant,
    "linear_ramp_to_constant": _linear_ramp_to_constant,
    "linear_ramp_to_cosine": _linear_ramp_to_cosine,
}


def parse_schedule(lr_config: Any, path: str = "learning_rate") -> LearningRate:
    """Validate a typed :class:`LearningRate` or a mapping of the same shape."""
    return parse_model(LearningRate, lr_config, path)


def compute_lr(lr_config: LearningRate | Mapping[str, Any], step: int) -> float:
    """The learning rate of ``lr_config`` at ``step`` (0-based).

    Args:
        lr_config: A :class:`LearningRate` or a mapping of the same shape.
        step: The optimizer step, counted from 0.

    Returns:
        The learning rate, a float.

    Example:
        >>> compute_lr({"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}}, 5)
        0.05
    """
    name, cfg = parse_schedule(lr_config).chosen()
    return SCHEDULE_FUNCTIONS[name](cfg, step)
