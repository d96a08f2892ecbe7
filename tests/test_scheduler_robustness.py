"""LRShim validates what it loads and the values it schedules; a refused state changes nothing."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch

from optforge import LRShim, build_scheduler
from optforge.errors import ConfigError


def _shim(**hyperparameters: Any) -> tuple[torch.optim.Optimizer, LRShim]:
    w = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([w], lr=0.1)
    ramp = {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 4}}
    return optimizer, LRShim(optimizer, {"all": ramp}, hyperparameters or None)


def _stepped(n: int = 2) -> tuple[torch.optim.Optimizer, LRShim]:
    optimizer, shim = _shim()
    for _ in range(n):
        optimizer.step()
        shim.step()
    return optimizer, shim


@pytest.mark.parametrize(
    ("state", "path"),
    [
        (None, "scheduler"),
        ([1, 2], "scheduler"),
        ({}, "scheduler.step"),
        ({"step": -1}, "scheduler.step"),
        ({"step": 2.5}, "scheduler.step"),
        ({"step": True}, "scheduler.step"),
        ({"step": 2**60}, "scheduler.step"),
        ({"step": "3"}, "scheduler.step"),
        ({1: 2, "x": 3}, "scheduler.step"),
        ({"step": 3, "fingerprint": [1]}, "scheduler.fingerprint"),
        ({"step": 3, "fingerprint": {"all": 5}}, "scheduler.fingerprint"),
        ({"step": 3, "fingerprint": {1: "x"}}, "scheduler.fingerprint"),
    ],
    ids=repr,
)
def test_corrupt_states_are_refused_without_changing_anything(state: Any, path: str) -> None:
    optimizer, shim = _stepped()
    before = (shim.last_epoch, shim.get_last_lr(), optimizer.param_groups[0]["lr"], shim.state_dict())
    with pytest.raises(ConfigError) as info:
        shim.load_state_dict(state)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: not a scheduler state")
    assert (shim.last_epoch, shim.get_last_lr(), optimizer.param_groups[0]["lr"], shim.state_dict()) == before


def test_a_valid_state_still_loads() -> None:
    optimizer, shim = _stepped(3)
    fresh_optimizer, fresh = _shim()
    fresh.load_state_dict(shim.state_dict())
    assert fresh.last_epoch == 3
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("missing", [[0], [1], [0, 1]], ids=repr)
def test_an_optimizer_state_without_lr_is_refused_without_changing_anything(missing: list[int]) -> None:
    w, v = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([{"params": [w], "name": "a"}, {"params": [v], "name": "b"}], lr=0.1)
    ramp = {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 4}}
    shim = LRShim(optimizer, {"a": ramp, "b": {"constant": 0.2}})

    def train(steps: int) -> None:
        for _ in range(steps):
            (w.sum() + v.sum()).backward()
            optimizer.step()
            optimizer.zero_grad()
            shim.step()

    train(1)
    state = optimizer.state_dict()  # saved at step 1
    for index in missing:
        del state["param_groups"][index]["lr"]
    train(2)
    before = (copy.deepcopy(optimizer.state_dict()), shim.state_dict(), shim.get_last_lr())
    with pytest.raises(ConfigError) as info:
        optimizer.load_state_dict(state)
    assert [path for path, _ in info.value.problems] == [f"param_groups[{index}].lr" for index in missing]
    assert "no 'lr'" in str(info.value)
    after = (optimizer.state_dict(), shim.state_dict(), shim.get_last_lr())
    assert after[1:] == before[1:]
    assert after[0]["param_groups"] == before[0]["param_groups"]
    for key, entry in before[0]["state"].items():
        assert all(torch.equal(entry[name], after[0]["state"][key][name]) for name in entry)
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(0.075), 0.2]


def test_an_optimizer_state_without_the_betas_a_schedule_sets_is_refused() -> None:
    optimizer, _ = _shim(beta1={"all": {"constant": 0.8}})
    state = optimizer.state_dict()
    del state["param_groups"][0]["betas"]
    with pytest.raises(ConfigError, match=r"no 'betas' \(scheduled as beta1\)") as info:
        optimizer.load_state_dict(state)
    assert info.value.path == "param_groups[0].betas"
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.999)


def test_an_optimizer_state_with_lr_still_loads_and_gets_the_schedules_lr() -> None:
    optimizer, _ = _stepped(2)
    state = optimizer.state_dict()
    state["param_groups"][0]["lr"] = 5.0
    optimizer.load_state_dict(state)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("name", "schedule", "path"),
    [
        ("beta1", {"constant": 1.0}, "hyperparameters.beta1.all.constant"),
        (
            "beta2",
            {"linear_decay": {"peak_value": 1.5, "decay_steps": 5}},
            "hyperparameters.beta2.all.linear_decay.peak_value",
        ),
        ("weight_decay", {"constant": 1e300}, "hyperparameters.weight_decay.all.constant"),
        (
            "beta1",
            {"piecewise_constant": {"learning_rate_boundaries": [2], "learning_rate_values": [0.9, 1.0]}},
            "hyperparameters.beta1.all.piecewise_constant.learning_rate_values[1]",
        ),
    ],
)
def test_scheduled_hyperparameters_get_the_optimizer_section_ranges(name: str, schedule: Any, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        _shim(**{name: {"all": schedule}})
    assert info.value.path == path


def test_scheduled_momentum_out_of_range_through_build_scheduler() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1, momentum=0.9)
    with pytest.raises(ConfigError) as info:
        build_scheduler(optimizer, {"lr": 0.1, "momentum": {"constant": 1e39}})
    assert info.value.path == "schedule.momentum.group0.constant"
    assert "largest float32" in str(info.value)


def test_scheduled_betas_in_range_still_work() -> None:
    optimizer, _ = _shim(beta1={"all": {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": 4}}})
    assert optimizer.param_groups[0]["betas"] == (0.95, 0.999)


@pytest.mark.parametrize("scale", [math.inf, math.nan, -1.0, 1e39])
def test_lr_scale_must_be_finite_and_non_negative(scale: float) -> None:
    w = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([{"params": [w], "lr_scale": scale}], lr=0.1)
    with pytest.raises(ConfigError) as info:
        LRShim(optimizer, {"all": {"constant": 0.1}})
    assert info.value.path == "param_groups[0].lr_scale"


def test_a_number_too_large_for_a_float_is_a_config_error() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    with pytest.raises(ConfigError) as info:
        build_scheduler(optimizer, 10**400)
    assert info.value.path.startswith("schedule")
