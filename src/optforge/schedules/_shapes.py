"""Primitive schedules: small closures ``step -> value`` that the config schedules are built from.

Each primitive sees its own step count from 0. Composites (a warmup before a
decay, warmup-stable-decay, one-cycle) are joins of primitives, never re-derived.

Example:
    >>> f = join([anneal(0.0, 1.0, 4, "linear"), anneal(1.0, 0.0, 10, "cosine")], [4])
    >>> [round(f(s), 3) for s in (0, 2, 4, 9, 14, 99)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "ANNEAL_WEIGHTS",
    "Schedule",
    "anneal",
    "constant",
    "cosine_restarts",
    "exponential",
    "inverse_sqrt",
    "join",
    "multistep",
    "with_warmup",
]

Schedule = Callable[[int], float]

# The weight of the end value at progress p in [0, 1] of an anneal: 0 at p=0, 1 at p=1.
ANNEAL_WEIGHTS: Mapping[str, Callable[[float], float]] = {
    "linear": lambda p: p,
    "cosine": lambda p: 0.5 * (1.0 - math.cos(math.pi * p)),
    "1-sqrt": math.sqrt,
}


def constant(value: float) -> Schedule:
    """``value`` at every step."""
    value = float(value)
    return lambda step: value


def anneal(start: float, end: float, steps: int, shape: str | Callable[[float], float]) -> Schedule:
    """From ``start`` at step 0 to ``end`` at ``steps`` along ``shape``, then ``end``."""
    weight = ANNEAL_WEIGHTS[shape] if isinstance(shape, str) else shape
    span = end - start

    def schedule(step: int) -> float:
        return start + span * weight(step / steps) if step < steps else end

    return schedule


def exponential(start: float, rate: float, steps: int, staircase: bool, floor: float) -> Schedule:
    """``start * rate ** (step / steps)`` (whole periods only if ``staircase``), never below ``floor``."""
    if staircase:
        return lambda step: max(floor, start * rate ** (step // steps))
    return lambda step: max(floor, start * rate ** (step / steps))


def multistep(start: float, milestones: Sequence[int], rate: float) -> Schedule:
    """``start`` times ``rate`` once per milestone passed (milestones sorted)."""
    milestones = list(milestones)
    return lambda step: start * rate ** bisect.bisect_right(milestones, step)


def inverse_sqrt(start: float, timescale: int) -> Schedule:
    """``start * sqrt(timescale / (timescale + step))``."""
    return lambda step: start * math.sqrt(timescale / (timescale + step))


def cosine_restarts(peak: float, end: float, cycle_steps: int, cycle_mult: float, peak_decay: float) -> Schedule:
    """Cosine cycles from a peak to ``end``; cycle ``i`` lasts ``cycle_steps * cycle_mult**i`` steps.

    The height above ``end`` is multiplied by ``peak_decay`` at each restart.
    """
    height = peak - end

    def start_of(cycle: int) -> float:
        if cycle_mult == 1.0:
            return cycle * cycle_steps
        try:
            return cycle_steps * (cycle_mult**cycle - 1.0) / (cycle_mult - 1.0)
        except OverflowError:  # a cycle that starts later than any float: it never starts
            return math.inf

    def schedule(step: int) -> float:
        if cycle_mult == 1.0:
            cycle = int(step // cycle_steps)
        else:
            ratio = step * (cycle_mult - 1.0) / cycle_steps
            if math.isfinite(ratio):
                cycle = int(math.log1p(ratio) / math.log(cycle_mult))
            else:  # the same in logarithms, where the ratio overflows
                log_ratio = math.log(step) + math.log(cycle_mult - 1.0) - math.log(cycle_steps)
                cycle = int(log_ratio / math.log(cycle_mult))
            # The logarithm can land one cycle off at an exact boundary: settle it exactly.
            while start_of(cycle + 1) <= step:
                cycle += 1
            while cycle > 0 and start_of(cycle) > step:
                cycle -= 1
        start = start_of(cycle)
        length = start_of(cycle + 1) - start
        progress = (step - start) / length if length != math.inf else 0.0
        return end + height * peak_decay**cycle * 0.5 * (1.0 + math.cos(math.pi * progress))

    return schedule


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``schedules[i]`` from ``boundaries[i-1]`` on, each seeing its own step count from 0."""
    schedules, boundaries = list(schedules), list(boundaries)
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(f"join needs one more schedule than boundaries, got {len(schedules)} and {len(boundaries)}")
    if not boundaries:
        return schedules[0]
    if len(boundaries) == 1:
        first, second, boundary = schedules[0], schedules[1], boundaries[0]
        return lambda step: first(step) if step < boundary else second(step - boundary)
    starts = [0, *boundaries]

    def schedule(step: int) -> float:
        index = bisect.bisect_right(boundaries, step)
        return schedules[index](step - starts[index])

    return schedule


def with_warmup(schedule: Schedule, warmup_steps: int, init_value: float) -> Schedule:
    """A linear ramp from ``init_value`` that reaches ``schedule(0)`` exactly at ``warmup_steps``."""
    if warmup_steps == 0:
        return schedule
    return join([anneal(init_value, schedule(0), warmup_steps, "linear"), schedule], [warmup_steps])
