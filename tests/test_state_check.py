"""A loaded optimizer state is checked against the parameters, and a mismatch changes nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from optforge.errors import ConfigError
from optforge.optimizers import (
    AdamWScheduleFree,
    CompositeOptimizer,
    Lion,
    RAdamScheduleFree,
    ScheduleFreeWrapper,
    SGDScheduleFree,
)
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


# Each optforge optimizer that checks what it loads, over a small model: two Linear layers.
def _lion(model: nn.Module) -> torch.optim.Optimizer:
    return Lion(model.parameters(), lr=0.01)


def _composite(model: nn.Module) -> torch.optim.Optimizer:
    first, second = list(model[0].parameters()), list(model[2].parameters())
    return CompositeOptimizer({"lion": Lion(first, lr=0.01), "sgd": SGDScheduleFree(second, lr=0.1)})


MAKERS: dict[str, Any] = {
    "Lion": _lion,
    "AdamWScheduleFree": lambda model: AdamWScheduleFree(model.parameters(), lr=0.01),
    "SGDScheduleFree": lambda model: SGDScheduleFree(model.parameters(), lr=0.1),
    "RAdamScheduleFree": lambda model: RAdamScheduleFree(model.parameters(), lr=0.01),
    "ScheduleFreeWrapper(SGD)": lambda model: ScheduleFreeWrapper(torch.optim.SGD(model.parameters(), lr=0.1)),
    "ScheduleFreeWrapper(Lion)": lambda model: ScheduleFreeWrapper(_lion(model)),
    "CompositeOptimizer": _composite,
}


def _stepped(name: str, steps: int = 2) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    optimizer = MAKERS[name](model)
    if hasattr(optimizer, "train"):
        optimizer.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
    return model, optimizer


def _assert_unchanged(optimizer: torch.optim.Optimizer, before: dict[str, Any], groups: list[Any]) -> None:
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert after["state"].keys() == before["state"].keys()
    for key, entry in before["state"].items():
        assert after["state"][key].keys() == entry.keys()
        for name, value in entry.items():
            assert (
                torch.equal(after["state"][key][name], value)
                if torch.is_tensor(value)
                else after["state"][key][name] == value
            )
    assert all(a is b for a, b in zip(optimizer.param_groups, groups, strict=True))


def _sgd_state(model: nn.Module, momentum: float) -> dict[str, Any]:
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    model(torch.randn(2, 3)).sum().backward()
    sgd.step()
    return sgd.state_dict()  # momentum 0 keeps no per-parameter state: only the groups tell it apart


def _without_lr(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    state = copy.deepcopy(optimizer.state_dict())
    del state["param_groups"][-1]["lr"]
    return state


FOREIGN = {
    "SGD": lambda model, optimizer: _sgd_state(model, 0.0),
    "SGD with momentum": lambda model, optimizer: _sgd_state(model, 0.9),
    "a group without lr": _without_lr,
}


@pytest.mark.parametrize("foreign", FOREIGN)
@pytest.mark.parametrize("name", MAKERS)
def test_a_state_of_another_optimizer_or_without_lr_is_refused_and_changes_nothing(name: str, foreign: str) -> None:
    if name == "ScheduleFreeWrapper(SGD)" and foreign.startswith("SGD"):
        pytest.skip("the state of its own base optimizer: loads, with the wrapper's counters at their defaults")
    model, optimizer = _stepped(name)
    state = FOREIGN[foreign](model, optimizer)
    before, groups = copy.deepcopy(optimizer.state_dict()), list(optimizer.param_groups)
    if name == "CompositeOptimizer" and foreign.startswith("SGD"):
        with pytest.raises(ValueError, match="another layout"):
            optimizer.load_state_dict(state)
    else:
        with pytest.raises(ConfigError, match=r"param_groups\[\d\]: missing .*the state of another optimizer\?"):
            optimizer.load_state_dict(state)
    _assert_unchanged(optimizer, before, groups)
    optimizer.zero_grad()
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()  # still steps as before


@pytest.mark.parametrize("name", MAKERS)
def test_a_state_with_other_hyperparameters_of_the_same_optimizer_loads(name: str) -> None:
    _, saved = _stepped(name)
    for group in saved.param_groups:
        group["lr"] *= 0.5
        for key, value in list(group.items()):
            if key in ("betas", "momentum", "weight_decay", "sf_momentum") and not isinstance(value, bool):
                group[key] = tuple(b * 0.9 for b in value) if isinstance(value, tuple) else value * 0.9 + 0.01
    state = copy.deepcopy(saved.state_dict())
    model, optimizer = _stepped(name, steps=1)
    optimizer.load_state_dict(state)
    assert optimizer.state_dict()["param_groups"] == state["param_groups"]
    optimizer.zero_grad()
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()


OWN = [Lion, AdamWScheduleFree, SGDScheduleFree, RAdamScheduleFree]


@pytest.mark.parametrize("cls", OWN)
def test_a_group_must_hold_the_hyperparameters_setstate_does_not_fill_in(cls: type[torch.optim.Optimizer]) -> None:
    """Older checkpoints may lack a key that ``__setstate__`` fills in; any other missing key is refused."""
    _, optimizer = _stepped(cls.__name__)
    saved = optimizer.state_dict()
    required = set(cls.GROUP_KEYS)
    assert "lr" in required
    assert required < set(optimizer.defaults)
    for key in optimizer.defaults:
        state = copy.deepcopy(saved)
        for group in state["param_groups"]:
            group.pop(key, None)
        model, fresh = _stepped(cls.__name__, steps=1)
        if key in required:
            with pytest.raises(ConfigError, match=f"missing {key} "):
                fresh.load_state_dict(state)
            continue
        fresh.load_state_dict(state)
        assert all(key in group for group in fresh.param_groups), key
        if hasattr(fresh, "train"):
            fresh.train()
        fresh.zero_grad()
        model(torch.randn(5, 3)).sum().backward()
        fresh.step()


def test_the_wrapper_loads_without_its_own_group_keys_and_checks_z() -> None:
    _, optimizer = _stepped("ScheduleFreeWrapper(Lion)")
    saved = optimizer.state_dict()
    state = copy.deepcopy(saved)
    for group in state["param_groups"]:
        for key in optimizer.defaults:
            del group[key]
    optimizer.load_state_dict(state)
    assert optimizer.param_groups[0]["sf_momentum"] == 0.9
    state = copy.deepcopy(saved)
    state["state"][0]["sf_z"] = torch.zeros(5, 3)
    with pytest.raises(ConfigError, match=r"state\[0\].sf_z: has shape \[5, 3\], but its parameter has shape \[4, 3\]"):
        optimizer.load_state_dict(state)
