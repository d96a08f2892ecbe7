"""Learning-rate schedules as pure functions of the step."""

from optforge.schedules.compute import compute_lr, parse_schedule
from optforge.schedules.models import (
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    PiecewiseConstant,
)

__all__ = [
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "PiecewiseConstant",
    "compute_lr",
    "parse_schedule",
]
