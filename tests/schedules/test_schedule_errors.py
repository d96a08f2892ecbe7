"""Bad schedule configs fail at build time with the path, the bad value and the valid choices."""

from __future__ import annotations

import pytest

from optforge.errors import ConfigError
from optforge.schedules import make_schedule, resolve_schedule


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        (
            {"cosine_decy": {"peak_value": 1.0}},
            ["learning_rate.cosine_decy", "did you mean 'cosine_decay'?", "warmup_stable_decay", "one_cycle"],
        ),
        ({}, ["learning_rate:", "exactly one of", "got none"]),
        (
            {"constant": 0.1, "cosine_decay": {"peak_value": 1.0, "decay_steps": 5}},
            ["got constant and cosine_decay"],
        ),
        (
            {"piecewise_constant": {"learning_rate_boundaries": [10, 5], "learning_rate_values": [1, 2, 3]}},
            ["learning_rate.piecewise_constant", "strictly increasing", "[10, 5]"],
        ),
        (
            {"piecewise_constant": {"learning_rate_boundaries": [10], "learning_rate_values": [1]}},
            ["one more entry", "got 1 values for 1 boundaries"],
        ),
        (
            {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 0}},
            ["learning_rate.linear_ramp_to_constant.num_ramp_steps", "> 0", "got 0"],
        ),
        (
            {
                "linear_ramp_to_cosine": {
                    "learning_rate": 1,
                    "final_learning_rate": 0,
                    "num_ramp_steps": 10,
                    "final_num_steps": 10,
                }
            },
            ["final_num_steps (10) must be greater than num_ramp_steps (10)"],
        ),
        (
            {"cosine_decay": {"peak_value": 1.0, "warmup_steps": 100, "decay_steps": 50}},
            ["learning_rate.cosine_decay", "warmup_steps (100) must be less than decay_steps (50)"],
        ),
        (
            {"cosine_decay": {"peak_value": 1.0, "end_value": 2.0, "decay_steps": 50}},
            ["end_value (2.0) must not exceed peak_value (1.0)"],
        ),
        (
            {"linear_decay": {"peak_value": 1.0, "init_value": 0.1, "decay_steps": 50}},
            ["init_value (0.1) is where the warmup starts", "warmup_steps"],
        ),
        (
            {"cosine_decay": {"peak_value": -1.0, "decay_steps": 50}},
            ["learning_rate.cosine_decay.peak_value", "greater than or equal to 0", "-1.0"],
        ),
        (
            {"cosine_decay": {"peak_value": 1.0, "decay_steps": "1000"}},
            ["learning_rate.cosine_decay.decay_steps", "{epochs: x}", "{fraction: x}", "'1000'"],
        ),
        (
            {"cosine_decay": {"peak_value": 1.0, "decay_steps": {"fraction": 1.5}}},
            ["learning_rate.cosine_decay.decay_steps", "fraction must be > 0 and <= 1, got 1.5"],
        ),
        (
            {"multistep_decay": {"peak_value": 1.0, "decay_rate": 0.1, "milestones": [30, 20]}},
            ["milestones must be strictly increasing, got [30, 20]"],
        ),
        (
            {"multistep_decay": {"peak_value": 1.0, "decay_rate": 0.1, "milestones": [5], "warmup_steps": 5}},
            ["milestones must come after warmup_steps (5)"],
        ),
        (
            {"exponential_decay": {"peak_value": 1.0, "decay_rate": 1.5, "transition_steps": 10}},
            ["learning_rate.exponential_decay.decay_rate", "less than 1", "1.5"],
        ),
        ({"inverse_sqrt": {"peak_value": 1.0}}, ["needs a timescale, or warmup_steps > 0"]),
        (
            {"warmup_stable_decay": {"peak_value": 1.0, "warmup_steps": 10, "decay_steps": 100, "cooldown_steps": 95}},
            ["warmup_steps (10) + cooldown_steps (95) must not exceed decay_steps (100)"],
        ),
        (
            {"warmup_stable_decay": {"peak_value": 1.0, "decay_steps": 100, "cooldown_steps": 9, "shape": "sqrt"}},
            ["learning_rate.warmup_stable_decay.shape", "'linear', 'cosine' or '1-sqrt'", "'sqrt'"],
        ),
        (
            {"join": {"phases": [{"schedule": {"constant": 1.0}}, {"schedule": {"constant": 0.5}}]}},
            ["learning_rate.join", "phases[0] needs steps"],
        ),
        (
            {
                "join": {
                    "phases": [
                        {"steps": 5, "schedule": {"cosine_decay": {"peak_value": 1.0, "decay_steps": 10}}},
                        {"schedule": {"constant": 0.5}},
                    ]
                }
            },
            ["phases[0]: steps (5) differs from the length of its schedule (10)"],
        ),
        (
            {"join": {"phases": [{"steps": 5, "schedule": {"constant": 1.0, "linear_decay": {}}}]}},
            ["learning_rate.join.phases[0].schedule.linear_decay.peak_value", "required field is missing"],
        ),
    ],
)
def test_messages(config: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        make_schedule(config)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_lengths_in_epochs_need_steps_per_epoch() -> None:
    config = {"cosine_decay": {"peak_value": 1.0, "warmup_steps": {"epochs": 2}, "decay_steps": 100}}
    with pytest.raises(ConfigError) as info:
        make_schedule(config, path="schedule.lr")
    assert info.value.path == "schedule.lr.cosine_decay.warmup_steps"
    assert "needs steps_per_epoch" in str(info.value)


def test_steps_beyond_total_steps_are_errors() -> None:
    config = {"multistep_decay": {"peak_value": 1.0, "decay_rate": 0.5, "milestones": [100, 2000]}}
    with pytest.raises(ConfigError) as info:
        resolve_schedule(config, total_steps=1000)
    assert info.value.path == "learning_rate.multistep_decay.milestones[1]"
    assert "step 2000 is beyond total_steps (1000)" in str(info.value)


def test_join_phases_beyond_total_steps() -> None:
    phases = [{"steps": 600, "schedule": {"constant": 1.0}}, {"steps": 600, "schedule": {"constant": 0.5}}]
    with pytest.raises(ConfigError, match=r"join\.phases\[1\]\.steps: step 1200 is beyond total_steps \(1000\)"):
        resolve_schedule({"join": {"phases": phases}}, total_steps=1000)


@pytest.mark.parametrize(("name", "value"), [("steps_per_epoch", 0), ("total_steps", 2.5)])
def test_context_must_be_positive_integers(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a positive integer, got {value}"):
        resolve_schedule({"constant": 1.0}, **{name: value})
