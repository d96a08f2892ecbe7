"""Property tests of the template and recap forms: valid sections build, broken ones raise ConfigError only."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import optforge
from optforge.errors import ConfigError

CLASS_NAMES = ["Adam", "AdamW", "SGD", "Momentum", "NesterovMomentum", "Lion", "adamw", "RAdam"]
BAD_VALUES = [None, "x", True, -1.0, math.inf, math.nan, 10**400, [], {}, {"a": 1}, [1, 2, 3], 2**70]


def _model() -> nn.Module:
    model = nn.Sequential()
    model.add_module("body", nn.Linear(4, 4))
    model.add_module("head", nn.Linear(4, 2))
    return model


def _outcome(build: Any) -> ConfigError | None:
    """``None`` when ``build()`` builds, its ConfigError when it refuses; any other exception fails the test."""
    try:
        build()
    except ConfigError as error:
        return error
    return None


template_sections = st.fixed_dictionaries(
    {
        "name": st.text(max_size=5),
        "class_name": st.sampled_from(CLASS_NAMES),
        "lr": st.floats(min_value=0, max_value=1, allow_nan=False),
        "args": st.none() | st.fixed_dictionaries({}, optional={"weight_decay": st.floats(0, 0.5)}),
        "group": st.none()
        | st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["head", "body", "0", "weight", "zzz"]), "divide": st.floats(0.5, 100)}
            ),
            max_size=3,
        ),
        "checkpoint": st.none(),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template_sections)
def test_valid_template_sections_build_the_template_groups(section: dict[str, Any]) -> None:
    model = _model()
    optimizer = optforge.build_optimizer(model, section)
    groups = section["group"] or []
    assert len(optimizer.param_groups) == 1 + len(groups)
    placed = [p for g in optimizer.param_groups for p in g["params"]]
    assert sorted(map(id, placed)) == sorted(id(p) for p in model.parameters())
    for group, entry in zip(optimizer.param_groups[1:], groups):
        assert group["lr"] == section["lr"] / entry["divide"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template_sections,
    st.sampled_from(["name", "class_name", "lr", "args", "group", "checkpoint", "extra"]),
    st.sampled_from(BAD_VALUES),
)
def test_broken_template_sections_raise_config_error_with_a_path(section: dict, key: str, value: Any) -> None:
    broken = {**section, key: value}
    error = _outcome(lambda: optforge.build_optimizer(_model(), broken))
    if error is not None:
        assert error.problems
        assert all(isinstance(path, str) for path, _ in error.problems)
        assert any(path.startswith("optimizer") for path, _ in error.problems) or key in str(error)


recap_schedules = st.one_of(
    st.builds(lambda v: {"constant": v}, st.floats(0, 1)),
    st.builds(
        lambda lr, n: {"linear_ramp_to_constant": {"learning_rate": lr, "num_ramp_steps": n}},
        st.floats(0, 1),
        st.integers(1, 100),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(["a.b", "c", "d.e.f"]), recap_schedules, min_size=1),
    recap_schedules,
    st.integers(0, 200),
)
def test_recap_towers_follow_their_schedules(towers: dict[str, Any], backbone: Any, step: int) -> None:
    model = nn.Module()
    model.towers = nn.ModuleDict({task.replace(".", "__"): nn.Linear(2, 1) for task in ["a.b", "c", "d.e.f"]})
    model.backbone = nn.Linear(2, 2)
    section = {
        "adam": {},
        "multi_task_learning_rates": {"tower_learning_rates": towers, "backbone_learning_rate": backbone},
    }
    optimizer, scheduler = optforge.build(model, section)
    names = [g["name"] for g in optimizer.param_groups]
    assert names[: len(towers)] == list(towers)
    for _ in range(step):
        optimizer.step()
        scheduler.step()
    schedules = {**towers, "backbone": backbone}
    assert [g["lr"] for g in optimizer.param_groups] == [optforge.compute_lr(schedules[n], step) for n in names]


def test_bad_recap_values_are_config_errors_naming_the_field() -> None:
    for value in BAD_VALUES:
        for key in ("beta_1", "beta_2", "epsilon"):
            if key == "epsilon" and value == 2**70:
                continue  # a huge epsilon is still a valid one
            section = {"adam": {key: value}, "single_task_learning_rate": {"constant": 0.1}}
            error = _outcome(lambda section=section: optforge.build(_model(), section))
            assert error is not None, (key, value)
            assert [path for path, _ in error.problems] == [f"optimizer.adam.{key}"], (key, value)
