"""Learning-rate schedules as pure functions of the step.

A schedule is a config (a :class:`LearningRate` one-of, or a mapping of the same
shape) compiled once into a plain function ``step -> lr``.

Example:
    >>> from optforge.schedules import make_schedule
    >>> f = make_schedule({"cosine_decay": {"peak_value": 1.0, "end_value": 0.1,
    ...                    "warmup_steps": 10, "decay_steps": 110}})
    >>> f(0), f(5), f(10), round(f(60), 6), f(110), f(500)
    (0.0, 0.5, 1.0, 0.55, 0.1, 0.1)
"""

from optforge.schedules._lengths import MAX_STEP, UNITS, Length, StepCount, StepIndex
from optforge.schedules.compute import SCHEDULE_BUILDERS, Schedule, compute_lr, make_schedule
from optforge.schedules.models import (
    CosineCycles,
    CosineDecay,
    CosineRestarts,
    ExponentialDecay,
    InverseSqrt,
    InverseTimeDecay,
    Join,
    LearningRate,
    LinearDecay,
    LinearGrowth,
    LinearRampToConstant,
    LinearRampToCosine,
    MultistepDecay,
    OneCycle,
    Phase,
    PiecewiseConstant,
    PolynomialDecay,
    Ramp,
    Shift,
    StepDecay,
    Triangle,
    Warmup,
    WarmupStableDecay,
)
from optforge.schedules.resolve import parse_schedule, resolve_schedule

__all__ = [
    "MAX_STEP",
    "SCHEDULE_BUILDERS",
    "UNITS",
    "CosineCycles",
    "CosineDecay",
    "CosineRestarts",
    "ExponentialDecay",
    "InverseSqrt",
    "InverseTimeDecay",
    "Join",
    "LearningRate",
    "Length",
    "LinearDecay",
    "LinearGrowth",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MultistepDecay",
    "OneCycle",
    "Phase",
    "PiecewiseConstant",
    "PolynomialDecay",
    "Ramp",
    "Schedule",
    "Shift",
    "StepCount",
    "StepDecay",
    "StepIndex",
    "Triangle",
    "Warmup",
    "WarmupStableDecay",
    "compute_lr",
    "make_schedule",
    "parse_schedule",
    "resolve_schedule",
]
