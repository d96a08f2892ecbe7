"""DDP: optforge optimizers and schedulers follow on 2 ranks the trajectory of 1 process with the full batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import optforge
from tests.integrations._common import CONFIGS, assert_same_params, data, full_params, rank_share, tiny_model, train
from tests.integrations._launch import run_ranks

pytestmark = pytest.mark.distributed

STEPS = 6

# Each run: a whole optforge config, optimizer and schedule.
RUNS: dict[str, Any] = {
    "AdamW+cosine": {
        "optimizer": {"name": "AdamW", "lr": 0.01, "weight_decay": 0.1},
        "schedule": {"cosine_decay": {"peak_value": 0.02, "warmup_steps": 2, "decay_steps": STEPS}},
    },
    "typed adam+linear_ramp_to_cosine": {
        "adam": {"lr": 0.01},
        "learning_rate": {
            "linear_ramp_to_cosine": {
                "learning_rate": 0.02,
                "final_learning_rate": 0.001,
                "num_ramp_steps": 2,
                "final_num_steps": STEPS,
            }
        },
    },
    "NesterovMomentum+lr and momentum schedules": {
        "optimizer": {"name": "NesterovMomentum", "lr": 0.05},
        "schedule": {
            "lr": {"linear_decay": {"peak_value": 0.05, "end_value": 0.01, "decay_steps": STEPS}},
            "momentum": {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": STEPS}},
        },
    },
    "Lion+cosine": {
        "optimizer": CONFIGS["Lion"],
        "schedule": {"cosine_decay": {"peak_value": 3e-3, "warmup_steps": 1, "decay_steps": STEPS}},
    },
    "AdamWScheduleFree": {"optimizer": CONFIGS["AdamWScheduleFree-foreach"]},
}


def run(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    optimizer, scheduler = optforge.build(model, RUNS[name])
    train(model, optimizer, x, y, STEPS, scheduler)
    return {"params": full_params(model), "lrs": scheduler.get_last_lr()}


def ddp_runs(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    x, y = data()
    x, y = rank_share(x, rank, world_size), rank_share(y, rank, world_size)
    return {name: run(nn.parallel.DistributedDataParallel(tiny_model()), name, x, y) for name in RUNS}


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_ranks("tests.integrations.test_ddp:ddp_runs", tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("name", list(RUNS))
def test_two_ranks_follow_the_full_batch_run(ddp_results: list[dict[str, Any]], name: str) -> None:
    want = run(tiny_model(), name, *data())
    for rank_result in ddp_results:
        assert_same_params(rank_result[name]["params"], want["params"], rtol=1e-5, atol=1e-6)
        assert rank_result[name]["lrs"] == pytest.approx(want["lrs"])
