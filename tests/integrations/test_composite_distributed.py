"""A Muon + AdamW composite under DCP checkpoints, DDP and FSDP2 follows the one-process run."""

from __future__ import annotations

import copy
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

import optforge
from optforge.distributed import load_checkpoint, save_checkpoint
from optforge.optimizers.composite import CompositeOptimizer
from tests.integrations._common import assert_same_params, data, full_params, rank_share, tiny_model
from tests.integrations.test_fsdp import fully_sharded_model

# The model is tiny: one thread is the fastest (the ranks run with one too).
pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 6
CONFIG: dict[str, Any] = {
    "optimizer": [
        {
            "name": "Muon",
            "lr": 0.02,
            "adjust_lr_fn": "match_rms_adamw",
            "params": {"match": ["0", "2"], "ndim": 2},  # the hidden layers' weights
        },
        {"name": "AdamW", "lr": 0.02, "weight_decay": 0.1},
    ],
    "schedule": {"cosine_decay": {"peak_value": 0.02, "warmup_steps": 2, "decay_steps": STEPS}},
}


# Parts in float32 throughout (torch's Muon orthogonalizes in bfloat16), with a schedule per part.
FLOAT32_CONFIG: dict[str, Any] = {
    "optimizer": [
        {"part": "hidden", "name": "NesterovMomentum", "lr": 0.05, "params": {"match": ["0", "2"], "ndim": 2}},
        {"name": "AdamW", "lr": 0.02, "weight_decay": 0.1},
    ],
    "schedule": {
        "lr": {
            "hidden": {"cosine_decay": {"peak_value": 0.05, "warmup_steps": 1, "decay_steps": STEPS}},
            "adamw": {"cosine_decay": {"peak_value": 0.02, "warmup_steps": 2, "decay_steps": STEPS}},
        }
    },
}


def build(model: nn.Module, config: dict[str, Any] = CONFIG) -> tuple[CompositeOptimizer, Any]:
    optimizer, scheduler = optforge.build(model, config)
    assert isinstance(optimizer, CompositeOptimizer)
    return optimizer, scheduler


def train(model: nn.Module, optimizer: Any, scheduler: Any, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()


def one_process(config: dict[str, Any] = CONFIG, steps: int = STEPS) -> dict[str, torch.Tensor]:
    model = tiny_model()
    train(model, *build(model, config), *data(), steps)
    return full_params(model)


def test_the_split_is_muon_for_hidden_weights() -> None:
    optimizer, _ = build(tiny_model())
    assert [len(g["params"]) for g in optimizer.parts["muon"].param_groups] == [2]
    assert [g["name"] for g in optimizer.param_groups] == ["muon/default", "adamw/default", "adamw/no_decay"]


def test_dcp_checkpoint_resumes_bit_for_bit(tmp_path: Path) -> None:
    x, y = data()
    model = tiny_model()
    optimizer, scheduler = build(model)
    train(model, optimizer, scheduler, x, y, 3)
    save_checkpoint(tmp_path / "ckpt", model, optimizer, scheduler)
    train(model, optimizer, scheduler, x, y, 3)

    resumed = tiny_model()
    optimizer2, scheduler2 = build(resumed)
    load_checkpoint(tmp_path / "ckpt", resumed, optimizer2, scheduler2)
    assert all(
        a is b for a, b in zip(optimizer2.param_groups, [g for p in optimizer2.parts.values() for g in p.param_groups])
    )
    assert [g["part"] for g in optimizer2.param_groups] == ["muon", "adamw", "adamw"]
    train(resumed, optimizer2, scheduler2, x, y, 3)
    got, want = full_params(resumed), full_params(model)
    assert all(torch.equal(got[key], want[key]) for key in want)
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()


def test_dcp_checkpoint_before_the_first_step(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer, scheduler = build(model)
    save_checkpoint(tmp_path / "ckpt", model, optimizer, scheduler)
    assert not optimizer.state
    resumed = tiny_model()
    optimizer2, scheduler2 = build(resumed)
    load_checkpoint(tmp_path / "ckpt", resumed, optimizer2, scheduler2)
    assert not optimizer2.state
    train(resumed, optimizer2, scheduler2, *data(), STEPS)
    assert_same_params(full_params(resumed), one_process(), rtol=0, atol=0)


def _agree(error: str | None) -> str | None:
    """Every rank learns whether any rank failed, so none waits for the other."""
    failed = torch.tensor([error is not None], dtype=torch.int32)
    dist.all_reduce(failed, op=dist.ReduceOp.MAX)
    return (error or "failed on another rank") if failed.item() else None


def ranks(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    x, y = data()
    x, y = rank_share(x, rank, world_size), rank_share(y, rank, world_size)
    results: dict[str, Any] = {}

    ddp = nn.parallel.DistributedDataParallel(tiny_model())
    optimizer, scheduler = build(ddp.module)
    train(ddp, optimizer, scheduler, x, y, STEPS)
    results["ddp"] = full_params(ddp)

    error = None
    try:
        model = fully_sharded_model(world_size)
        train(model, *build(model, FLOAT32_CONFIG), x, y, STEPS)
        results["fsdp-float32"] = full_params(model)

        model = fully_sharded_model(world_size)
        optimizer, scheduler = build(model)
        train(model, optimizer, scheduler, x, y, 3)
        save_checkpoint(workdir / "fsdp-ckpt", model, optimizer, scheduler)
        train(model, optimizer, scheduler, x, y, STEPS - 3)
        results["fsdp"] = full_params(model)
        resumed = fully_sharded_model(world_size)
        optimizer2, scheduler2 = build(resumed)
        load_checkpoint(workdir / "fsdp-ckpt", resumed, optimizer2, scheduler2)
        train(resumed, optimizer2, scheduler2, x, y, STEPS - 3)
        results["fsdp-resumed"] = full_params(resumed)
    except Exception:
        error = traceback.format_exc(limit=-4)
    results["error"] = _agree(error)
    return results


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from tests.integrations._launch import run_ranks

    return run_ranks("tests.integrations.test_composite_distributed:ranks", tmp_path_factory.mktemp("composite"))


@pytest.mark.distributed
def test_ddp_on_two_ranks_follows_one_process(rank_results: list[dict[str, Any]]) -> None:
    want = one_process()
    for result in rank_results:
        assert_same_params(result["ddp"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.distributed
def test_fsdp2_on_two_ranks_follows_one_process(rank_results: list[dict[str, Any]]) -> None:
    want = one_process(FLOAT32_CONFIG)
    for result in rank_results:
        assert result["error"] is None, result["error"]
        assert_same_params(result["fsdp-float32"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.distributed
def test_fsdp2_muon_follows_one_process_to_bfloat16_rounding(rank_results: list[dict[str, Any]]) -> None:
    # torch's Muon orthogonalizes in bfloat16, where a sharded norm or matmul (another summation
    # order) flips roundings; its update then moves by a few percent of its size, as it does for an
    # input perturbed by 1e-4. So the sharded run stays within a few percent of the distance trained.
    initial, want = full_params(tiny_model()), one_process()
    for result in rank_results:
        assert result["error"] is None, result["error"]
        for key, value in want.items():
            moved = (value - initial[key]).abs().max()
            assert (result["fsdp"][key] - value).abs().max() <= 0.1 * moved, key


@pytest.mark.distributed
def test_fsdp2_resumes_from_a_dcp_checkpoint_bit_for_bit(rank_results: list[dict[str, Any]]) -> None:
    for result in rank_results:
        assert result["error"] is None, result["error"]
        got, uninterrupted = result["fsdp-resumed"], result["fsdp"]
        assert all(torch.equal(got[key], uninterrupted[key]) for key in uninterrupted)


def test_pickled_composite_is_independent() -> None:
    model = tiny_model()
    optimizer, _ = build(model)
    clone = copy.deepcopy(optimizer)
    clone.param_groups[0]["lr"] = 1.0
    assert optimizer.param_groups[0]["lr"] != 1.0
