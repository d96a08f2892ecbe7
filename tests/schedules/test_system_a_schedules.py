"""The four schedules of the recommender design: pinned values and the design's exact floats."""

from __future__ import annotations

import bisect
import math

import pytest

from optforge.schedules import (
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    PiecewiseConstant,
    compute_lr,
)

PIECEWISE = {"piecewise_constant": {"learning_rate_boundaries": [10, 20], "learning_rate_values": [1.0, 0.5, 0.25]}}
RAMP_CONSTANT = {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}}
RAMP_COSINE = {
    "linear_ramp_to_cosine": {
        "learning_rate": 1.0,
        "final_learning_rate": 0.1,
        "num_ramp_steps": 10,
        "final_num_steps": 110,
    }
}


@pytest.mark.parametrize(
    ("config", "step", "expected"),
    [
        ({"constant": 0.1}, 0, 0.1),
        ({"constant": 0.1}, 10**6, 0.1),
        (PIECEWISE, 0, 1.0),
        (PIECEWISE, 9, 1.0),
        (PIECEWISE, 10, 0.5),  # a boundary belongs to the next value
        (PIECEWISE, 19, 0.5),
        (PIECEWISE, 20, 0.25),
        (PIECEWISE, 10**6, 0.25),
        (RAMP_CONSTANT, 0, 0.0),
        (RAMP_CONSTANT, 5, 0.05),
        (RAMP_CONSTANT, 10, 0.1),  # end of ramp
        (RAMP_CONSTANT, 11, 0.1),
        (RAMP_CONSTANT, 10**6, 0.1),
        (RAMP_COSINE, 0, 0.0),
        (RAMP_COSINE, 5, 0.5),
        (RAMP_COSINE, 9, 0.9),  # last ramp step
        (RAMP_COSINE, 10, 1.0),  # end of ramp: the cosine starts at the peak
        (RAMP_COSINE, 60, 0.55),  # half-way through the decay
        (RAMP_COSINE, 109, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 100))),
        (RAMP_COSINE, 110, 0.1),  # last decay step
        (RAMP_COSINE, 111, 0.1),  # after the end
        (RAMP_COSINE, 10**6, 0.1),
    ],
)
def test_pinned_values(config: dict, step: int, expected: float) -> None:
    assert compute_lr(config, step) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def _design_compute_lr(config: LearningRate, step: int) -> float:
    """The recommender design's compute_lr, as its documentation states it."""
    if config.constant is not None:
        return config.constant
    if config.piecewise_constant is not None:
        pc = config.piecewise_constant
        return pc.learning_rate_values[bisect.bisect_right(pc.learning_rate_boundaries, step)]
    if config.linear_ramp_to_constant is not None:
        rc = config.linear_ramp_to_constant
        return min(rc.learning_rate, rc.learning_rate / rc.num_ramp_steps * step)
    rc = config.linear_ramp_to_cosine
    if step < rc.num_ramp_steps:
        return rc.learning_rate / rc.num_ramp_steps * step
    if step <= rc.final_num_steps:
        return rc.final_learning_rate + (rc.learning_rate - rc.final_learning_rate) * 0.5 * (
            1 + math.cos(math.pi * (step - rc.num_ramp_steps) / (rc.final_num_steps - rc.num_ramp_steps))
        )
    return rc.final_learning_rate


@pytest.mark.parametrize(
    "config",
    [
        LearningRate(constant=3e-4),
        LearningRate(
            piecewise_constant=PiecewiseConstant(
                learning_rate_boundaries=[0, 7, 31], learning_rate_values=[0.3, 0.1, 0.03, 0.003]
            )
        ),
        LearningRate(linear_ramp_to_constant=LinearRampToConstant(learning_rate=3e-4, num_ramp_steps=7)),
        LearningRate(
            linear_ramp_to_cosine=LinearRampToCosine(
                learning_rate=3e-4, final_learning_rate=1e-5, num_ramp_steps=13, final_num_steps=97
            )
        ),
    ],
    ids=lambda c: c.chosen()[0],
)
def test_same_floats_as_the_design_at_every_step(config: LearningRate) -> None:
    for step in range(150):
        assert compute_lr(config, step) == _design_compute_lr(config, step), step


def test_typed_and_mapping_forms_agree() -> None:
    typed = LearningRate.model_validate(RAMP_COSINE)
    assert [compute_lr(typed, s) for s in range(0, 130, 7)] == [compute_lr(RAMP_COSINE, s) for s in range(0, 130, 7)]
