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
    "RISE_WEIGHTS",
    "Schedule",
    "anneal",
    "constant",
    "cosine_cycles",
    "cosine_restarts",
    "exponential",
    "inverse_sqrt",
    "inverse_time",
    "join",
    "linear_growth",
    "log_ramp",
    "multistep",
    "triangle",
    "with_warmup",
]

Schedule = Callable[[int], float]

# The weight of the end value at progress p in [0, 1] of an anneal: 0 at p=0, 1 at p=1.
ANNEAL_WEIGHTS: Mapping[str, Callable[[float], float]] = {
    "linear": lambda p: p,
    "cosine": lambda p: 0.5 * (1.0 - math.cos(math.pi * p)),
    "1-sqrt": math.sqrt,
}


# The weight of a warmup's end value at progress p: ANNEAL_WEIGHTS, with ``1-sqrt`` mirrored (fast at first).
RISE_WEIGHTS: Mapping[str, Callable[[float], float]] = {
    **ANNEAL_WEIGHTS,
    "1-sqrt": lambda p: 1.0 - math.sqrt(1.0 - p),
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


def cosine_cycles(peak: float, end: float, steps: int, cycles: float, hard_restarts: bool) -> Schedule:
    """``cycles`` cosine waves over ``steps`` from ``peak`` to ``end`` (restarting half waves if ``hard_restarts``)."""
    height = peak - end

    def wave(step: int) -> float:
        progress = step / steps
        return end + height * max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))

    def restarts(step: int) -> float:
        progress = step / steps
        if progress >= 1.0:
            return end
        return end + height * max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((cycles * progress) % 1.0))))

    return restarts if hard_restarts else wave


def log_ramp(start: float, end: float, steps: int) -> Schedule:
    """From ``start`` at step 0 to ``end`` at ``steps - 1`` as ``log(1 + step) / log(steps)``, then ``end``."""
    span, inverse = end - start, 1.0 / math.log(steps)
    return lambda step: start + span * min(1.0, inverse * math.log(step + 1)) if step < steps else end


def triangle(start: float, apex: float, rise: int, fall: int, rise_stairs: int, fall_stairs: int) -> Schedule:
    """From ``start`` to ``apex`` over ``rise`` steps and back over ``fall``, repeated; optionally in stairs."""
    total = float(rise + fall)
    ratio, span = rise / total, apex - start

    def schedule(step: int) -> float:
        x = 1.0 + step / total - math.floor(1.0 + step / total)
        scale, stairs = (x / ratio, rise_stairs) if x <= ratio else ((x - 1) / (ratio - 1), fall_stairs)
        if stairs > 0:
            at = step % total
            position = at * stairs / rise if at <= rise else (total - at) * stairs / fall
            scale = math.floor(position) / stairs
        return start + span * scale

    return schedule


def inverse_time(start: float, rate: float, steps: int, staircase: bool) -> Schedule:
    """``start / (1 + rate * step / steps)`` (whole periods only if ``staircase``)."""
    if staircase:
        return lambda step: start / (1 + rate * (step // steps))
    return lambda step: start / (1 + rate * (step / steps))


def linear_growth(start: float, rate: float, steps: int, staircase: bool) -> Schedule:
    """``start * (1 + rate * step / steps)`` (whole periods only if ``staircase``)."""
    if staircase:
        return lambda step: start * (1 + rate * math.floor(step / steps))
    return lambda step: start * (1 + rate * (step / steps))


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
