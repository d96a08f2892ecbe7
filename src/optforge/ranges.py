"""The valid range of every numeric setting, by name: one :class:`Range` type and its tables.

:data:`RANGES` serves optimizer hyperparameters wherever they are set or
scheduled, and optforge's optimizers' constructors; :data:`SCHEDULER_RANGES`
serves scheduler arguments (a scheduler's ``gamma`` is no optimizer's).

Example:
    >>> RANGES["betas"].text(), SCHEDULER_RANGES["step_size"].text()
    ('in [0, 1)', '>= 1')
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from optforge.errors import ConfigError, format_path, truncate

__all__ = [
    "OPEN_UNIT",
    "RANGES",
    "SCHEDULER_RANGES",
    "Range",
    "is_finite",
    "is_number",
    "value_problems",
]


def is_number(value: Any) -> bool:
    """A real number that is not a boolean."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """Whether the number ``value`` is finite (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class Range:
    """An interval a number must lie in; an infinite bound bounds nothing.

    Bounds print as written: ``Range(0.0)`` is ``>= 0.0``, ``Range(1)`` is ``>= 1``.

    Example:
        >>> Range(0.0, 1.0).problem(1.5)
        'must be in [0, 1), got 1.5'
        >>> Range(0.0).problem(float("inf"))
        'must be a finite number, got inf'
        >>> Range(0.0, 1.0, low_open=True).require(0.0, "momentum")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: momentum: must be in (0.0, 1.0), got 0.0
    """

    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True
    cap: float = math.inf  # beyond it the value cannot act on float32 tensors

    def interval(self, *, exact: bool = False) -> str:
        """``[0, 1)``; with ``exact``, the bounds as written (``[0.0, inf)``)."""
        left = "(" if self.low_open else "["
        right = ")" if self.high_open or self.high == math.inf else "]"
        low, high = (repr(self.low), repr(self.high)) if exact else (f"{self.low:g}", f"{self.high:g}")
        return f"{left}{low}, {high}{right}"

    def text(self) -> str:
        """The range as the messages write it: ``>= 0.0``, ``< 1`` or ``in [0, 1)``."""
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low!r}"
        if self.low == -math.inf:
            return f"{'<' if self.high_open else '<='} {self.high!r}"
        return f"in {self.interval()}"

    def outside(self, value: float) -> bool:
        """Whether the number ``value`` lies outside the interval (``nan`` lies outside a finite bound)."""
        above = self.low == -math.inf or (value > self.low if self.low_open else value >= self.low)
        below = self.high == math.inf or (value < self.high if self.high_open else value <= self.high)
        return not (above and below)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a finite number in range, or ``None``; values that are not numbers are not judged."""
        if not is_number(value):
            return None
        if not is_finite(value):
            return f"must be a finite number, got {truncate(value)}"
        if value > self.cap:
            return f"must be at most {self.cap:.6g} (the largest float32), got {truncate(value)}"
        return f"must be {self.text()}, got {truncate(value)}" if self.outside(value) else None

    def require(self, value: Any, path: str) -> None:
        """Raise ``ConfigError`` (a ``ValueError``) unless ``value`` is a finite number in the interval."""
        if not (is_number(value) and is_finite(value)):
            raise ConfigError(f"must be a finite number in {self.interval(exact=True)}, got {value!r}", path=path)
        if self.outside(value):
            raise ConfigError(f"must be in {self.interval(exact=True)}, got {value!r}", path=path)


OPEN_UNIT = Range(0.0, 1.0, low_open=True)

# A value >= 0 that multiplies tensors: torch refuses a scalar beyond the largest float32 for float32 tensors.
_SCALE = Range(0.0, cap=float(torch.finfo(torch.float32).max))

# Optimizer hyperparameters by name, shared by every optimizer and by schedules of these
# values; for a tuple value (betas) the range applies to each element.
RANGES: Mapping[str, Range] = {
    **dict.fromkeys(
        ("lr", "eps", "weight_decay", "momentum", "dampening", "lr_decay", "initial_accumulator_value", "alpha"),
        _SCALE,
    ),
    **dict.fromkeys(("lambd", "lr_scale"), _SCALE),
    **dict.fromkeys(("betas", "beta1", "beta2"), Range(0.0, 1.0)),
    "rho": Range(0.0, 1.0, high_open=False),
    "layer_decay": Range(0.0, 1.0, low_open=True, high_open=False),
}

# Scheduler arguments by name, for every scheduler; an entry's own ``ranges`` take precedence.
# A list value (milestones) is checked element by element; infinite values are not refused.
SCHEDULER_RANGES: Mapping[str, Range] = {
    **dict.fromkeys(
        ("T_max", "T_0", "T_mult", "step_size", "step_size_up", "step_size_down", "total_steps", "epochs"),
        Range(1),
    ),
    **dict.fromkeys(("steps_per_epoch", "t_initial", "cycle_limit", "first_cycle_steps"), Range(1)),
    **dict.fromkeys(("eta_min", "milestones", "total_iters", "patience", "cooldown", "min_lr", "threshold"), Range(0)),
    **dict.fromkeys(("eps", "base_lr", "max_lr", "power", "warmup_t", "warmup_lr_init", "lr_min"), Range(0)),
    **dict.fromkeys(("cycle_decay", "decay_t", "decay_rate", "patience_t", "cooldown_t", "noise_pct"), Range(0)),
    **dict.fromkeys(("noise_std", "warmup_steps", "end_learning_rate"), Range(0)),
    **dict.fromkeys(("gamma", "div_factor", "final_div_factor", "cycle_mul", "cycle_mult"), Range(0, low_open=True)),
    **dict.fromkeys(("end_factor", "pct_start"), Range(0, 1, high_open=False)),
    "start_factor": Range(0, 1, low_open=True, high_open=False),
    "max_decay_steps": Range(1, low_open=True),
}


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
