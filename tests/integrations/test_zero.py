"""``zero: true``: the optimizer is wrapped in ZeroRedundancyOptimizer, its state sharded, its trajectory unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import optforge
from tests.integrations._common import assert_same_params, data, full_params, rank_share, tiny_model, train
from tests.integrations._launch import run_ranks

STEPS = 5

CONFIG = {
    "optimizer": {"name": "AdamW", "lr": 0.01, "weight_decay": 0.1, "zero": True},
    "schedule": {"cosine_decay": {"peak_value": 0.02, "warmup_steps": 2, "decay_steps": STEPS}},
}


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Weights with decay, biases without."""
    named = list(model.named_parameters())
    return [
        {"params": [p for n, p in named if n.endswith("weight")]},
        {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0},
    ]


def without_zero(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "optimizer": {**config["optimizer"], "zero": False}}


def run(model: nn.Module, config: dict[str, Any], x: torch.Tensor, y: torch.Tensor, groups: bool) -> dict[str, Any]:
    optimizer, scheduler = optforge.build(param_groups(model) if groups else model, config)
    train(model, optimizer, x, y, STEPS, scheduler)
    local_state = getattr(optimizer, "optim", optimizer).state
    return {
        "type": type(optimizer).__name__,
        "params": full_params(model),
        "lrs": scheduler.get_last_lr(),
        "weight_decays": [group["weight_decay"] for group in optimizer.param_groups],
        "state_numel": sum(s["exp_avg"].numel() for s in local_state.values()),
    }


def zero_runs(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    x, y = data()
    x, y = rank_share(x, rank, world_size), rank_share(y, rank, world_size)
    return {
        groups: run(nn.parallel.DistributedDataParallel(tiny_model()), CONFIG, x, y, groups) for groups in (False, True)
    }


@pytest.fixture(scope="module")
def zero_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_ranks("tests.integrations.test_zero:zero_runs", tmp_path_factory.mktemp("zero"))


@pytest.mark.distributed
@pytest.mark.parametrize("groups", [False, True], ids=["model", "param groups"])
def test_zero_shards_the_state_and_keeps_the_trajectory(zero_results: list[dict[str, Any]], groups: bool) -> None:
    want = run(tiny_model(), without_zero(CONFIG), *data(), groups)
    assert want["type"] == "AdamW"
    numels = []
    for rank_result in zero_results:
        got = rank_result[groups]
        assert got["type"] == "ZeroRedundancyOptimizer"
        assert_same_params(got["params"], want["params"], rtol=1e-5, atol=1e-6)
        assert got["lrs"] == pytest.approx(want["lrs"])
        assert got["weight_decays"] == want["weight_decays"]
        numels.append(got["state_numel"])
    assert min(numels) > 0, "each rank holds some of the state"
    assert sum(numels) == want["state_numel"], "each rank holds the state of its share only"


def test_zero_without_a_process_group_is_a_config_error() -> None:
    with pytest.raises(optforge.ConfigError, match=r"optimizer\.zero: .*needs an initialized process group"):
        optforge.build_optimizer(tiny_model(), CONFIG)


def test_zero_must_be_a_boolean() -> None:
    config = {"name": "AdamW", "zero": "yes"}
    with pytest.raises(optforge.ConfigError, match=r"optimizer\.zero: expected true or false, got 'yes'"):
        optforge.build_optimizer(tiny_model(), config)


@pytest.mark.parametrize("value", [False, None])
def test_zero_false_or_null_builds_the_plain_optimizer(value: bool | None) -> None:
    optimizer = optforge.build_optimizer(tiny_model(), {"name": "SGD", "lr": 0.1, "zero": value})
    assert type(optimizer) is torch.optim.SGD


def test_zero_rejects_schedule_free_optimizers() -> None:
    with pytest.raises(optforge.ConfigError, match=r"optimizer\.zero: .*Schedule-Free.*fully_shard"):
        optforge.build_optimizer(tiny_model(), {"name": "AdamWScheduleFree", "zero": True})
