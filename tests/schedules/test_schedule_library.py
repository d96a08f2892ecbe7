"""Each schedule of the library at its edges, composition, and the compiled-function cache."""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from optforge.errors import ConfigError
from optforge.schedules import SCHEDULE_BUILDERS, LearningRate, compute_lr, make_schedule

HALF_COS = 0.5 * (1 + math.cos(math.pi * 0.5))

# name -> (config, [(step, expected lr), ...]); every LearningRate field appears here.
EXAMPLES: dict[str, tuple[dict, list[tuple[float, float]]]] = {
    "constant": ({"constant": 0.5}, [(0, 0.5), (99, 0.5)]),
    "piecewise_constant": (
        {"piecewise_constant": {"learning_rate_boundaries": [5], "learning_rate_values": [1.0, 0.1]}},
        [(4, 1.0), (5, 0.1)],
    ),
    "linear_ramp_to_constant": (
        {"linear_ramp_to_constant": {"learning_rate": 1.0, "num_ramp_steps": 4}},
        [(0, 0.0), (2, 0.5), (4, 1.0), (9, 1.0)],
    ),
    "linear_ramp_to_cosine": (
        {
            "linear_ramp_to_cosine": {
                "learning_rate": 1.0,
                "final_learning_rate": 0.0,
                "num_ramp_steps": 2,
                "final_num_steps": 6,
            }
        },
        [(0, 0.0), (1, 0.5), (2, 1.0), (4, 0.5), (6, 0.0), (7, 0.0)],
    ),
    "linear_decay": (
        {
            "linear_decay": {
                "peak_value": 1.0,
                "end_value": 0.2,
                "warmup_steps": 2,
                "init_value": 0.4,
                "decay_steps": 10,
            }
        },
        [(0, 0.4), (1, 0.7), (2, 1.0), (6, 0.6), (10, 0.2), (50, 0.2)],
    ),
    "cosine_decay": (
        {"cosine_decay": {"peak_value": 1.0, "end_value": 0.1, "warmup_steps": 10, "decay_steps": 110}},
        [(0, 0.0), (5, 0.5), (10, 1.0), (60, 0.1 + 0.9 * HALF_COS), (110, 0.1), (10**6, 0.1)],
    ),
    "polynomial_decay": (
        {"polynomial_decay": {"peak_value": 1.0, "end_value": 0.0, "decay_steps": 10, "power": 2.0}},
        [(0, 1.0), (5, 0.25), (10, 0.0), (11, 0.0)],
    ),
    "exponential_decay": (
        {"exponential_decay": {"peak_value": 1.0, "decay_rate": 0.5, "transition_steps": 10, "end_value": 0.2}},
        [(0, 1.0), (5, 2**-0.5), (10, 0.5), (20, 0.25), (30, 0.2), (10**4, 0.2)],
    ),
    "step_decay": (
        {"step_decay": {"peak_value": 1.0, "decay_rate": 0.1, "transition_steps": 30, "warmup_steps": 5}},
        [(0, 0.0), (5, 1.0), (34, 1.0), (35, 0.1), (65, 0.01)],
    ),
    "multistep_decay": (
        {"multistep_decay": {"peak_value": 1.0, "decay_rate": 0.5, "milestones": [30, 80], "warmup_steps": 10}},
        [(0, 0.0), (10, 1.0), (29, 1.0), (30, 0.5), (79, 0.5), (80, 0.25), (999, 0.25)],
    ),
    "inverse_sqrt": (
        {"inverse_sqrt": {"peak_value": 1.0, "warmup_steps": 4}},
        [(0, 0.0), (2, 0.5), (4, 1.0), (16, 0.5), (64, 0.25)],
    ),
    "cosine_restarts": (
        {
            "cosine_restarts": {
                "peak_value": 1.0,
                "end_value": 0.0,
                "cycle_steps": 4,
                "cycle_mult": 2.0,
                "peak_decay": 0.5,
            }
        },
        [(0, 1.0), (2, 0.5), (4, 0.5), (8, 0.25), (12, 0.25), (28, 0.125)],
    ),
    "one_cycle": (
        # torch's OneCycleLR(total_steps=12, pct_start=4 / 12): the peak at step 3, the end at step 11, the last.
        {"one_cycle": {"init_value": 0.1, "peak_value": 1.0, "end_value": 0.0, "warmup_steps": 4, "decay_steps": 12}},
        [(0, 0.1), (1, 0.325), (3, 1.0), (7, 0.5), (11, 0.0), (12, 0.0)],
    ),
    "warmup_stable_decay": (
        {
            "warmup_stable_decay": {
                "peak_value": 1.0,
                "end_value": 0.0,
                "warmup_steps": 10,
                "decay_steps": 100,
                "cooldown_steps": 20,
                "shape": "1-sqrt",
            }
        },
        [(0, 0.0), (10, 1.0), (80, 1.0), (85, 0.5), (100, 0.0), (200, 0.0)],
    ),
    "warmup": (
        {
            "warmup": {
                "warmup_steps": 10,
                "init_value": 0.5,
                "schedule": {
                    "piecewise_constant": {"learning_rate_boundaries": [5], "learning_rate_values": [1.5, 0.1]}
                },
            }
        },
        [(0, 0.5), (5, 1.0), (10, 1.5), (14, 1.5), (15, 0.1)],
    ),
    "join": (
        {
            "join": {
                "phases": [
                    {"schedule": {"linear_decay": {"peak_value": 1.0, "decay_steps": 4}}},
                    {"steps": 3, "schedule": {"constant": 0.5}},
                    {"schedule": {"linear_ramp_to_constant": {"learning_rate": 0.2, "num_ramp_steps": 2}}},
                ]
            }
        },
        [(0, 1.0), (2, 0.5), (4, 0.5), (6, 0.5), (7, 0.0), (8, 0.1), (9, 0.2), (99, 0.2)],
    ),
    "cosine_cycles": (
        {"cosine_cycles": {"peak_value": 1.0, "decay_steps": 10}},
        [(0, 1.0), (5, 0.5), (10, 0.0), (15, 0.5), (20, 1.0)],
    ),
    "shift": (
        {"shift": {"steps": 1, "schedule": {"linear_decay": {"peak_value": 1.0, "decay_steps": 4}}}},
        [(0, 0.75), (3, 0.0), (10, 0.0)],
    ),
    "ramp": (
        {"ramp": {"peak_value": 1.0, "warmup_steps": 4, "shape": "log"}},
        [(0, 0.0), (1, 0.5), (3, 1.0), (4, 1.0), (50, 1.0)],
    ),
    "triangle": (
        {"triangle": {"init_value": 0.1, "peak_value": 1.0, "rise_steps": 4, "fall_steps": 4, "rise_stairs": 2}},
        [(0, 0.1), (1, 0.1), (2, 0.55), (4, 1.0), (5, 0.775), (6, 0.55), (8, 0.1), (12, 1.0)],
    ),
    "inverse_time_decay": (
        {"inverse_time_decay": {"peak_value": 1.0, "decay_rate": 1.0, "transition_steps": 10}},
        [(0, 1.0), (10, 0.5), (30, 0.25)],
    ),
    "linear_growth": (
        {"linear_growth": {"init_value": 0.5, "rate": 2.0, "transition_steps": 10, "staircase": True}},
        [(0, 0.5), (9, 0.5), (10, 1.5), (25, 2.5)],
    ),
}


def test_a_log_ramp_needs_two_steps() -> None:
    with pytest.raises(ConfigError, match="a log ramp needs warmup_steps >= 2"):
        make_schedule({"ramp": {"peak_value": 1.0, "warmup_steps": 1, "shape": "log"}})


def test_every_schedule_has_an_example_and_a_builder() -> None:
    assert set(EXAMPLES) == set(LearningRate.model_fields) == set(SCHEDULE_BUILDERS)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_values_at_the_edges(name: str) -> None:
    config, points = EXAMPLES[name]
    schedule = make_schedule(config)
    for step, expected in points:
        assert schedule(step) == pytest.approx(expected, rel=1e-12, abs=1e-12), (name, step)
        assert compute_lr(config, step) == schedule(step)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
def test_wsd_shapes_share_the_ends_and_differ_inside(shape: str) -> None:
    wsd = make_schedule(
        {
            "warmup_stable_decay": {
                "peak_value": 2.0,
                "end_value": 0.5,
                "decay_steps": 40,
                "cooldown_steps": 10,
                "shape": shape,
            }
        }
    )
    assert (wsd(0), wsd(30), wsd(40)) == (2.0, 2.0, 0.5)
    middle = {"linear": 1.25, "cosine": 1.25, "1-sqrt": 2.0 - 1.5 * math.sqrt(0.3)}[shape]
    assert wsd(33 if shape == "1-sqrt" else 35) == pytest.approx(middle)


def test_exponential_staircase_holds_within_a_period() -> None:
    f = make_schedule(
        {"exponential_decay": {"peak_value": 1.0, "decay_rate": 0.5, "transition_steps": 10, "staircase": True}}
    )
    assert [f(s) for s in (0, 9, 10, 19, 20)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_inverse_sqrt_with_an_explicit_timescale_and_no_warmup() -> None:
    f = make_schedule({"inverse_sqrt": {"peak_value": 1.0, "timescale": 100}})
    assert f(0) == 1.0
    assert f(300) == pytest.approx(0.5)


def test_cosine_restarts_integer_boundaries_are_exact() -> None:
    # Cycles of 3, 6, 12, 24... start at 0, 3, 9, 21, 45: each restart returns to the (decayed) peak.
    f = make_schedule({"cosine_restarts": {"peak_value": 1.0, "cycle_steps": 3, "cycle_mult": 2.0, "peak_decay": 0.9}})
    assert [f(s) for s in (0, 3, 9, 21, 45)] == pytest.approx([1.0, 0.9, 0.81, 0.729, 0.6561])
    assert f(44) < 0.01


def test_join_phases_see_their_own_step_count() -> None:
    cosine = {"cosine_decay": {"peak_value": 1.0, "decay_steps": 10}}
    joined = make_schedule({"join": {"phases": [{"schedule": cosine}, {"schedule": cosine}]}})
    alone = make_schedule(cosine)
    assert [joined(s) for s in range(10, 25)] == [alone(s) for s in range(15)]


def test_mapping_cache_sees_edits() -> None:
    config = {"constant": 0.5}
    assert compute_lr(config, 0) == 0.5
    config["constant"] = 0.25
    assert compute_lr(config, 0) == 0.25


def test_negative_step_is_an_error() -> None:
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        compute_lr({"constant": 0.5}, -1)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_a_compiled_schedule_pickles_and_deep_copies(name: str) -> None:
    config, points = EXAMPLES[name]
    schedule = make_schedule(config)
    for clone in (pickle.loads(pickle.dumps(schedule)), copy.deepcopy(schedule)):
        assert [clone(step) for step, _ in points] == [schedule(step) for step, _ in points]
        with pytest.raises(ValueError, match="step must be >= 0"):
            clone(-1)


@pytest.mark.parametrize(
    ("total_steps", "pct_start", "div_factor", "final_div_factor", "shape"),
    [
        (100, 0.3, 25.0, 1e4, "cosine"),
        (100, 0.3, 25.0, 1e4, "linear"),
        (1000, 0.25, 10.0, 100.0, "cosine"),
        (64, 0.5, 5.0, 1e3, "linear"),
        (50, 0.1, 25.0, 1e4, "cosine"),
        (10, 0.2, 4.0, 10.0, "cosine"),
        (2000, 0.05, 100.0, 1.0, "linear"),
    ],
)
def test_one_cycle_matches_torch_one_cycle_lr_over_the_whole_run(
    total_steps: int, pct_start: float, div_factor: float, final_div_factor: float, shape: str
) -> None:
    import torch

    max_lr = 0.01
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    torch_scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr,
        total_steps=total_steps,
        pct_start=pct_start,
        anneal_strategy="cos" if shape == "cosine" else "linear",
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        cycle_momentum=False,
    )
    expected = []
    for _ in range(total_steps):
        expected.append(torch_scheduler.get_last_lr()[0])
        optimizer.step()
        torch_scheduler.step()
    config = {
        "one_cycle": {
            "init_value": max_lr / div_factor,
            "peak_value": max_lr,
            "end_value": max_lr / div_factor / final_div_factor,
            "warmup_steps": {"fraction": pct_start},
            "decay_steps": {"fraction": 1.0},
            "shape": shape,
        }
    }
    schedule = make_schedule(config, total_steps=total_steps)
    got = [schedule(step) for step in range(total_steps)]
    # torch's linear end, (end - start) * 1.0 + start, is itself a few ulps of the peak off the end value.
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15 * max_lr)
    assert max(got) == max_lr
    assert got[-1] == config["one_cycle"]["end_value"]
