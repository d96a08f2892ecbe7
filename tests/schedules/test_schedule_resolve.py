"""Lengths in epochs and fractions become steps once, at build time."""

from __future__ import annotations

import pytest

from optforge.schedules import LearningRate, compute_lr, make_schedule, resolve_schedule


def test_epochs_and_fractions_become_steps() -> None:
    config = {
        "warmup_stable_decay": {
            "peak_value": 1.0,
            "warmup_steps": {"epochs": 1.5},
            "decay_steps": {"fraction": 1.0},
            "cooldown_steps": {"fraction": 0.2},
        }
    }
    resolved = resolve_schedule(config, steps_per_epoch=100, total_steps=1000).warmup_stable_decay
    assert (resolved.warmup_steps, resolved.decay_steps, resolved.cooldown_steps) == (150, 1000, 200)


def test_resolved_config_computes_like_the_one_written_in_steps() -> None:
    in_epochs = {
        "multistep_decay": {"peak_value": 0.1, "decay_rate": 0.1, "milestones": [{"epochs": 30}, {"epochs": 60}]}
    }
    in_steps = {"multistep_decay": {"peak_value": 0.1, "decay_rate": 0.1, "milestones": [300, 600]}}
    from_epochs = make_schedule(in_epochs, steps_per_epoch=10)
    assert [from_epochs(s) for s in range(0, 900, 50)] == [compute_lr(in_steps, s) for s in range(0, 900, 50)]


def test_nested_lengths_resolve_with_their_paths() -> None:
    config = {
        "join": {
            "phases": [
                {
                    "steps": {"fraction": 0.1},
                    "schedule": {
                        "linear_ramp_to_constant": {"learning_rate": 1.0, "num_ramp_steps": {"fraction": 0.1}}
                    },
                },
                {"schedule": {"cosine_decay": {"peak_value": 1.0, "decay_steps": {"fraction": 0.9}}}},
            ]
        }
    }
    resolved = resolve_schedule(config, total_steps=200)
    assert resolved.join.boundaries() == [20]
    assert resolved.length() == 200
    f = make_schedule(resolved)
    assert (f(0), f(20), f(200)) == (0.0, 1.0, 0.0)


def test_compute_lr_refuses_unresolved_lengths() -> None:
    with pytest.raises(ValueError, match="needs total_steps"):
        compute_lr({"cosine_decay": {"peak_value": 1.0, "decay_steps": {"fraction": 1.0}}}, 3)


def test_steps_form_and_integer_floats_are_steps() -> None:
    a = LearningRate.model_validate({"cosine_decay": {"peak_value": 1.0, "decay_steps": {"steps": 10}}})
    b = LearningRate.model_validate({"cosine_decay": {"peak_value": 1.0, "decay_steps": 10.0}})
    assert a.cosine_decay.decay_steps == b.cosine_decay.decay_steps == 10


def test_resolving_a_config_in_steps_returns_it_unchanged() -> None:
    config = LearningRate.model_validate({"cosine_decay": {"peak_value": 1.0, "decay_steps": 10}})
    assert resolve_schedule(config) is config


def test_round_trip_through_model_dump() -> None:
    config = resolve_schedule(
        {"one_cycle": {"peak_value": 1.0, "warmup_steps": {"epochs": 1}, "decay_steps": {"epochs": 4}}},
        steps_per_epoch=7,
    )
    again = LearningRate.model_validate(config.model_dump(exclude_none=True))
    assert again == config
