"""One range table, all problems of a section at once, and values the first step would reject."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import optforge
from optforge.errors import ConfigError
from optforge.hyperparameters import RANGES, check_hyperparameters, value_problems
from optforge.registry import get_optimizer_entry


def _problems(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(nn.Linear(2, 2), config)
    return dict(info.value.problems)


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({"name": "AdamW", "lr": math.inf}, "optimizer.lr", "must be a finite number, got inf"),
        ({"name": "AdamW", "weight_decay": math.inf}, "optimizer.weight_decay", "must be a finite number, got inf"),
        ({"name": "SGD", "lr": 10**400}, "optimizer.lr", "must be a finite number, got 1000"),
        ({"name": "SGD", "lr": 1e39}, "optimizer.lr", "must be at most 3.40282e+38 (the largest float32), got 1e+39"),
        (
            {"name": "Adagrad", "initial_accumulator_value": 1e300},
            "optimizer.initial_accumulator_value",
            "must be at most 3.40282e+38 (the largest float32), got 1e+300",
        ),
        (
            {"name": "LBFGS", "line_search_fn": "abc"},
            "optimizer.line_search_fn",
            "must be null or 'strong_wolfe', got 'abc'",
        ),
        ({"name": "LBFGS", "history_size": 0}, "optimizer.history_size", "must be >= 1, got 0"),
        ({"name": "LBFGS", "max_iter": 10**30}, "optimizer.max_iter", "expected a whole number of at most 2**63 - 1"),
        ({"name": "AdamWScheduleFree", "r": 1e6}, "optimizer.r", "must be in [0, 20], got 1000000.0"),
        ({"name": "SGDScheduleFree", "r": -1.0}, "optimizer.r", "must be in [0, 20], got -1.0"),
        ({"name": "Lion", "betas": [0.9, math.inf]}, "optimizer.betas[1]", "must be a finite number, got inf"),
    ],
)
def test_values_out_of_range_or_rejected_at_the_first_step(config: dict, path: str, message: str) -> None:
    problems = _problems(config)
    assert problems[path].startswith(message), problems


def test_every_problem_of_a_section_is_reported() -> None:
    problems = _problems({"name": "AdamW", "lr": math.inf, "betas": [1.5, -0.1], "eps": "x", "wd": 1})
    assert list(problems) == [
        "optimizer.lr",
        "optimizer.betas[0]",
        "optimizer.betas[1]",
        "optimizer.eps",
        "optimizer.wd",
    ]


def test_a_name_that_is_not_a_string_is_one_of_the_problems() -> None:
    with pytest.raises(ConfigError) as info:
        check_hyperparameters(get_optimizer_entry("SGD"), {3: 4, "lr": -1}, "optimizer")
    assert info.value.problems == [
        ("optimizer.3", "hyperparameter names must be strings, got int 3"),
        ("optimizer.lr", "must be >= 0.0, got -1"),
    ]


def test_explicit_groups_get_the_same_ranges() -> None:
    w = nn.Parameter(torch.zeros(2))
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer([{"params": [w], "lr": math.inf}], {"name": "SGD", "lr": 0.1})
    assert info.value.path == "param_groups[0].lr"


def test_rules_get_the_same_ranges() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    config = {"name": "AdamW", "lr": 0.1, "param_groups": [{"match": "1.*", "weight_decay": math.inf}]}
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(model, config)
    assert info.value.path == "optimizer.param_groups[0].weight_decay"


def test_values_the_first_step_accepts_still_build_and_step() -> None:
    for config in (
        {"name": "LBFGS", "line_search_fn": "strong_wolfe", "history_size": 1},
        {"name": "AdamWScheduleFree", "r": 20.0},
        {"name": "Adagrad", "initial_accumulator_value": 3e38},
        {"name": "SGD", "lr": 1, "momentum": 0},
    ):
        model = nn.Linear(2, 1)
        optimizer = optforge.build_optimizer(model, config)
        if hasattr(optimizer, "train"):
            optimizer.train()

        def closure(model: nn.Module = model, optimizer: torch.optim.Optimizer = optimizer) -> torch.Tensor:
            optimizer.zero_grad()
            loss = model(torch.ones(3, 2)).pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)


def test_a_name_shared_by_another_optimizer_keeps_its_own_meaning() -> None:
    """``r`` of a Schedule-Free optimizer is bounded; adanorm's ``r`` is another parameter."""
    entry = get_optimizer_entry("pytorch_optimizer.adanorm")
    assert check_hyperparameters(entry, {"r": 100.0}, "optimizer") == {"r": 100.0}


def test_an_infinite_default_admits_infinity() -> None:
    entry = get_optimizer_entry("pytorch_optimizer.prodigy")
    assert check_hyperparameters(entry, {"growth_rate": math.inf}, "optimizer") == {"growth_rate": math.inf}


def test_whole_numbers_too_large_for_int64_go_as_floats() -> None:
    checked = check_hyperparameters(get_optimizer_entry("SGD"), {"momentum": 2**64}, "optimizer")
    assert checked == {"momentum": float(2**64)}
    assert isinstance(checked["momentum"], float)


def test_value_problems_serves_scheduled_names() -> None:
    assert value_problems("beta1", 1.0, "b") == [("b", "must be in [0, 1), got 1.0")]
    assert value_problems("momentum", 0.9, "m") == []
    assert value_problems("unknown", math.inf, "u") == []
    assert set(RANGES) >= {"lr", "weight_decay", "momentum", "betas", "beta1", "beta2", "lr_scale"}
