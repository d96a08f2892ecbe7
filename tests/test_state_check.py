"""A loaded optimizer state is checked against the parameters, and a mismatch changes nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from optforge.errors import ConfigError
from optforge.optimizers import AdamWScheduleFree, Lion, RAdamScheduleFree, SGDScheduleFree
from optforge.state_check import check_state_dict

# Our optimizers and the per-parameter tensors each keeps.
STATE_TENSORS: dict[type[torch.optim.Optimizer], tuple[str, ...]] = {
    Lion: ("exp_avg",),
    AdamWScheduleFree: ("z", "exp_avg_sq"),
    SGDScheduleFree: ("z",),
    RAdamScheduleFree: ("z", "exp_avg_sq"),
}


def _trained(cls: type[torch.optim.Optimizer], width: int = 4) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 1))
    optimizer = cls(model.parameters(), lr=0.01)
    if hasattr(optimizer, "train"):
        optimizer.train()
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
    return model, optimizer


def _problems(optimizer: torch.optim.Optimizer, state: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        check_state_dict(optimizer, state, STATE_TENSORS[type(optimizer)])
    return info.value.problems


@pytest.mark.parametrize("cls", list(STATE_TENSORS))
def test_own_state_passes(cls: type[torch.optim.Optimizer]) -> None:
    _, optimizer = _trained(cls)
    check_state_dict(optimizer, optimizer.state_dict(), STATE_TENSORS[cls])
    _, fresh = _trained(cls)
    check_state_dict(fresh, optimizer.state_dict(), STATE_TENSORS[cls])


@pytest.mark.parametrize("cls", list(STATE_TENSORS))
def test_state_of_another_shape_is_refused(cls: type[torch.optim.Optimizer]) -> None:
    _, small = _trained(cls, width=4)
    _, large = _trained(cls, width=5)
    problems = _problems(small, large.state_dict())
    paths = {path for path, _ in problems}
    assert f"state[0].{STATE_TENSORS[cls][0]}" in paths
    assert any("has shape [5, 3], but its parameter has shape [4, 3]" in message for _, message in problems)


@pytest.mark.parametrize("cls", list(STATE_TENSORS))
def test_state_of_another_optimizer_is_refused(cls: type[torch.optim.Optimizer]) -> None:
    model, optimizer = _trained(cls)
    adamw = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 3)).sum().backward()
    adamw.step()
    problems = _problems(optimizer, adamw.state_dict())
    assert problems[0][0] == "state[0]"
    assert "the state of another optimizer?" in problems[0][1]


def test_wrong_dtype_kind_and_non_tensor_are_refused() -> None:
    _, optimizer = _trained(Lion)
    state = optimizer.state_dict()
    state["state"][0]["exp_avg"] = state["state"][0]["exp_avg"].to(torch.int64)
    state["state"][1]["exp_avg"] = [0.0, 1.0]
    problems = dict(_problems(optimizer, state))
    assert problems["state[0].exp_avg"] == "has dtype torch.int64, but its parameter has dtype torch.float32"
    assert problems["state[1].exp_avg"].startswith("expected a tensor, got list")


def test_float64_state_is_accepted_as_torch_casts_it() -> None:
    _, optimizer = _trained(Lion)
    state = optimizer.state_dict()
    state["state"][0]["exp_avg"] = state["state"][0]["exp_avg"].double()
    check_state_dict(optimizer, state, ["exp_avg"])


@pytest.mark.parametrize(
    ("state", "path"),
    [
        ([1, 2], ""),
        ({"state": {}, "param_groups": "x"}, "param_groups"),
        ({"state": {}, "param_groups": []}, "param_groups"),
        ({"state": [], "param_groups": [{"params": [0, 1, 2, 3]}]}, "state"),
        ({"state": {}, "param_groups": [{"params": [0, 1]}]}, "param_groups[0].params"),
        ({"state": {}, "param_groups": [{"params": [[0], 1, 2, 3]}]}, "param_groups[0].params"),
        ({"state": {9: {"exp_avg": torch.zeros(1)}}, "param_groups": [{"params": [0, 1, 2, 3]}]}, "state[9]"),
        ({"state": {0: 5}, "param_groups": [{"params": [0, 1, 2, 3]}]}, "state[0]"),
    ],
)
def test_malformed_states_name_the_problem(state: Any, path: str) -> None:
    _, optimizer = _trained(Lion)
    assert path in {where for where, _ in _problems(optimizer, state)}


@pytest.mark.parametrize("cls", [Lion, AdamWScheduleFree, RAdamScheduleFree, SGDScheduleFree])
def test_a_refused_state_changes_nothing(cls: type[torch.optim.Optimizer]) -> None:
    _, optimizer = _trained(cls, width=4)
    _, other = _trained(cls, width=5)
    before = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ConfigError):
        optimizer.load_state_dict(other.state_dict())
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    torch.testing.assert_close(after["state"], before["state"], rtol=0, atol=0)
