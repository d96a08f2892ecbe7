"""Checkpoints through torch.distributed.checkpoint: sharded state round-trips and training resumes identically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from optforge.distributed import (
    load_checkpoint,
    save_checkpoint,
    schedule_free_training,
    set_schedule_free_mode,
)
from optforge.scheduler import build_scheduler
from tests.integrations._common import OPTIMIZERS, assert_same_params, data, full_params, rank_share, tiny_model
from tests.integrations._launch import run_ranks
from tests.integrations.test_fsdp import fully_sharded_model

BEFORE, AFTER = 4, 4  # steps before and after the checkpoint
NAMES = ["AdamW", "Lion-foreach", "AdamWScheduleFree", "SGDScheduleFree-foreach", "RAdamScheduleFree"]


def build(name: str, model: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    optimizer = OPTIMIZERS[name](list(model.parameters()))
    peak = optimizer.defaults["lr"]
    schedule = {"linear_decay": {"peak_value": peak, "end_value": peak / 10, "decay_steps": BEFORE + AFTER}}
    return optimizer, build_scheduler(optimizer, schedule)


def steps(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, x: Any, y: Any, n: int) -> None:
    set_schedule_free_mode(optimizer, True)
    for _ in range(n):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()


def evaluated(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The parameters to evaluate (Schedule-Free: in eval mode), leaving the optimizer's mode as it was."""
    was_training = set_schedule_free_mode(optimizer, False)
    params = full_params(model)
    set_schedule_free_mode(optimizer, was_training)
    return params


def checkpoint_runs(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    x, y = data()
    x, y = rank_share(x, rank, world_size), rank_share(y, rank, world_size)
    results: dict[str, Any] = {}
    for name in NAMES:
        result: dict[str, Any] = {"dir": str(workdir / name)}
        # Uninterrupted: the evaluation at the checkpoint step is the only break.
        model = fully_sharded_model(world_size)
        optimizer, scheduler = build(name, model)
        steps(model, optimizer, scheduler, x, y, BEFORE)
        result["at_checkpoint"] = evaluated(model, optimizer)
        steps(model, optimizer, scheduler, x, y, AFTER)
        result["uninterrupted"] = evaluated(model, optimizer)
        # Interrupted: save, then load into a fresh model (other initial weights), optimizer and scheduler.
        model = fully_sharded_model(world_size)
        optimizer, scheduler = build(name, model)
        steps(model, optimizer, scheduler, x, y, BEFORE)
        save_checkpoint(result["dir"], model, optimizer, scheduler)
        result["training_after_save"] = schedule_free_training(optimizer)
        torch.manual_seed(1 + rank)
        model = fully_sharded_model(world_size)
        with torch.no_grad():
            for param in model.parameters():
                param.normal_()
        optimizer, scheduler = build(name, model)
        load_checkpoint(result["dir"], model, optimizer, scheduler)
        result["training_after_load"] = schedule_free_training(optimizer)
        result["scheduler_step"] = scheduler.last_epoch
        steps(model, optimizer, scheduler, x, y, AFTER)
        result["resumed"] = evaluated(model, optimizer)
        results[name] = result
    return results


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_ranks("tests.integrations.test_checkpoint:checkpoint_runs", tmp_path_factory.mktemp("checkpoint"))


@pytest.mark.distributed
@pytest.mark.parametrize("name", NAMES)
def test_sharded_training_resumes_identically(checkpointed: list[dict[str, Any]], name: str) -> None:
    schedule_free = "ScheduleFree" in name
    for rank_result in checkpointed:
        result = rank_result[name]
        assert result["scheduler_step"] == BEFORE
        assert result["training_after_save"] is schedule_free
        assert result["training_after_load"] is schedule_free, "the Schedule-Free mode survives the round trip"
        assert_same_params(result["resumed"], result["uninterrupted"], rtol=0, atol=0)


@pytest.mark.distributed
@pytest.mark.parametrize("name", NAMES)
def test_sharded_checkpoint_resumes_in_one_process(checkpointed: list[dict[str, Any]], name: str) -> None:
    """The checkpoint of 2 ranks loads unsharded; its model weights are the ones to evaluate."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    result = checkpointed[0][name]
    whole = Path(result["dir"]) / "whole.pt"
    dcp_to_torch_save(result["dir"], whole)
    saved = torch.load(whole, weights_only=False)
    torch.testing.assert_close(saved["model"], result["at_checkpoint"], rtol=0, atol=0)

    model = tiny_model()
    optimizer, scheduler = build(name, model)
    load_checkpoint(result["dir"], model, optimizer, scheduler)
    assert scheduler.last_epoch == BEFORE
    steps(model, optimizer, scheduler, *data(), AFTER)
    assert_same_params(evaluated(model, optimizer), result["uninterrupted"], rtol=1e-5, atol=1e-6)


def _schedule_free_run(mode_at_save: bool) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    model = tiny_model()
    optimizer, scheduler = build("AdamWScheduleFree", model)
    steps(model, optimizer, scheduler, *data(), 2)
    set_schedule_free_mode(optimizer, mode_at_save)
    return model, optimizer, scheduler


@pytest.mark.parametrize("mode_at_save", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("eval_mode", [True, False], ids=["saved in eval mode", "saved as is"])
def test_schedule_free_mode_survives_a_single_process_round_trip(
    tmp_path: Path, mode_at_save: bool, eval_mode: bool
) -> None:
    model, optimizer, scheduler = _schedule_free_run(mode_at_save)
    params_at_save = full_params(model)
    save_checkpoint(tmp_path, model, optimizer, scheduler, eval_mode=eval_mode)
    assert schedule_free_training(optimizer) is mode_at_save
    torch.testing.assert_close(full_params(model), params_at_save)  # eval and back: rounding only

    saved_weights = torch.load(_to_torch_save(tmp_path), weights_only=False)["model"]
    saved_as_x = eval_mode or not mode_at_save
    torch.testing.assert_close(saved_weights, evaluated(model, optimizer) if saved_as_x else params_at_save)

    fresh = tiny_model()
    fresh_optimizer, fresh_scheduler = build("AdamWScheduleFree", fresh)
    load_checkpoint(tmp_path, fresh, fresh_optimizer, fresh_scheduler)
    assert schedule_free_training(fresh_optimizer) is mode_at_save
    assert fresh_scheduler.last_epoch == 2
    torch.testing.assert_close(full_params(fresh), params_at_save)


def _to_torch_save(checkpoint_dir: Path) -> Path:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    whole = checkpoint_dir.parent / f"{checkpoint_dir.name}.pt"
    dcp_to_torch_save(checkpoint_dir, whole)
    return whole


def test_a_schedule_free_optimizer_that_never_stepped_round_trips(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer, scheduler = build("SGDScheduleFree", model)
    save_checkpoint(tmp_path, model, optimizer, scheduler)
    assert not schedule_free_training(optimizer)
    assert optimizer.param_groups[0]["k"] == 0

    fresh = tiny_model()
    fresh_optimizer, fresh_scheduler = build("SGDScheduleFree", fresh)
    load_checkpoint(tmp_path, fresh, fresh_optimizer, fresh_scheduler)
    steps(model, optimizer, scheduler, *data(), 3)
    steps(fresh, fresh_optimizer, fresh_scheduler, *data(), 3)
    assert_same_params(evaluated(fresh, fresh_optimizer), evaluated(model, optimizer), rtol=0, atol=0)
