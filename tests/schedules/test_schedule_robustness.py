"""Schedules refuse negative and non-finite values and steps; valid input behaves as before."""

from __future__ import annotations

import math
from typing import Any

import pytest

from optforge import compute_lr, make_schedule
from optforge.errors import ConfigError

RECOMMENDER = {
    "constant": lambda v: {"constant": v},
    "piecewise_constant": lambda v: {
        "piecewise_constant": {"learning_rate_boundaries": [10], "learning_rate_values": [0.1, v]}
    },
    "linear_ramp_to_constant": lambda v: {"linear_ramp_to_constant": {"learning_rate": v, "num_ramp_steps": 5}},
    "linear_ramp_to_cosine": lambda v: {
        "linear_ramp_to_cosine": {
            "learning_rate": 0.1,
            "final_learning_rate": v,
            "num_ramp_steps": 5,
            "final_num_steps": 20,
        }
    },
}


@pytest.mark.parametrize("shape", list(RECOMMENDER))
@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf, -math.inf, "0.1", True, 10**400])
def test_recommender_shapes_refuse_bad_values(shape: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make_schedule(RECOMMENDER[shape](value), path="lr")
    assert all(path.startswith(f"lr.{shape}") for path, _ in info.value.problems), info.value.problems


@pytest.mark.parametrize("shape", list(RECOMMENDER))
def test_recommender_shapes_keep_their_values(shape: str) -> None:
    schedule = make_schedule(RECOMMENDER[shape](0.01))
    assert all(math.isfinite(schedule(step)) and schedule(step) >= 0 for step in range(0, 40, 3))
    assert schedule(100) == 0.01


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (-1, "step: step must be >= 0, got -1"),
        (math.nan, "step: step must be a number >= 0, got nan"),
        (math.inf, "step: step must be at most 2**53, got inf"),
        (10**30, "step: step must be at most 2**53, got 1000000000000000000000000000000"),
        (10**400, "step: step must be at most 2**53, got "),
        ("3", "step: step must be a number >= 0, got str '3'"),
        (True, "step: step must be a number >= 0, got bool True"),
        (None, "step: step must be a number >= 0, got NoneType None"),
    ],
)
def test_bad_steps_are_config_errors(step: Any, message: str) -> None:
    config = {"cosine_decay": {"peak_value": 1.0, "decay_steps": 10}}
    for call in (lambda: compute_lr(config, step), lambda: make_schedule(config)(step)):
        with pytest.raises(ConfigError) as info:
            call()
        assert str(info.value).startswith(message), str(info.value)
        assert len(str(info.value)) < 200


def test_valid_steps_keep_their_values() -> None:
    config = {"cosine_decay": {"peak_value": 1.0, "end_value": 0.1, "decay_steps": 10}}
    assert compute_lr(config, 0) == 1.0
    assert compute_lr(config, 10) == 0.1
    assert compute_lr(config, 2**53) == 0.1
    assert compute_lr(config, 2.5) == make_schedule(config)(2.5)


@pytest.mark.parametrize(
    "length",
    [10**20, 2**53 + 1, {"epochs": math.inf}, {"epochs": 10**400}, {"fraction": math.nan}, {"steps": 10**30}],
    ids=repr,
)
def test_huge_or_non_finite_lengths_are_config_errors(length: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make_schedule({"linear_decay": {"peak_value": 1.0, "decay_steps": length}}, steps_per_epoch=10, total_steps=100)
    assert info.value.problems[0][0].startswith("learning_rate.linear_decay.decay_steps")


def test_epochs_that_overflow_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="more than 2"):
        make_schedule({"linear_decay": {"peak_value": 1.0, "decay_steps": {"epochs": 1e300}}}, steps_per_epoch=10**10)


def test_cosine_restarts_with_a_huge_cycle_mult_stays_finite() -> None:
    schedule = make_schedule({"cosine_restarts": {"peak_value": 1.0, "cycle_steps": 3, "cycle_mult": 1e300}})
    values = [schedule(step) for step in (0, 2, 3, 10, 10**6, 2**53)]
    assert all(math.isfinite(v) and 0 <= v <= 1.0 for v in values)
    assert values[0] == 1.0


@pytest.mark.parametrize("config", ["cosine", [1, 2], {"constant": {"a": 1}}])
def test_schedules_that_are_not_mappings_of_numbers_are_config_errors(config: Any) -> None:
    with pytest.raises(ConfigError):
        compute_lr(config, 0)


def test_deep_and_cyclic_schedules_are_config_errors() -> None:
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    cyclic: dict = {"constant": 0.1}
    cyclic["self"] = cyclic
    with pytest.raises(ConfigError, match="nested more than"):
        compute_lr({"constant": deep}, 0)
    with pytest.raises(ConfigError, match=r"learning_rate\.self: refers to itself"):
        compute_lr(cyclic, 0)
