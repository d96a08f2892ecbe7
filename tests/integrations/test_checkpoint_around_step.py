"""Checkpoints keep what runs around the step (EMA weights, step counts), and a failed load changes none of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import optforge
from optforge import CheckpointError
from optforge.distributed import load_checkpoint, save_checkpoint
from tests.integrations._common import CONFIGS, train_for_checkpoint
from tests.integrations.test_checkpoint_faults import _data_file, _live, _truncate

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")

EMA = {"decay": 0.9, "buffers": "average"}


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1))


def _build(model: nn.Module, name: str = "AdamW", **around: Any) -> tuple[torch.optim.Optimizer, Any]:
    schedule = {"linear_decay": {"peak_value": CONFIGS[name]["lr"], "decay_steps": 20}}
    return optforge.build(model, {"optimizer": CONFIGS[name], "schedule": schedule, **around})


def _around(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    stats = optforge.step_stats(optimizer)
    ema = optforge.ema_model(optimizer)
    assert isinstance(ema, nn.Module)
    return {"steps": stats.steps, "skipped": stats.skipped, "ema": {k: v.clone() for k, v in ema.state_dict().items()}}


def _run(
    seed: int = 0, steps: int = 3, name: str = "AdamW", **around: Any
) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    model = _model(seed)
    optimizer, scheduler = _build(model, name, **around)
    train_for_checkpoint(model, optimizer, scheduler, steps)
    return model, optimizer, scheduler


@pytest.mark.parametrize("stepped", [True, False], ids=["stepped", "never stepped"])
@pytest.mark.parametrize("name", ["AdamW", "AdamWScheduleFree"])
def test_ema_and_step_counts_round_trip(tmp_path: Path, name: str, stepped: bool) -> None:
    model = _model()
    optimizer, scheduler = _build(model, name, ema=EMA, skip_nonfinite=True)
    train_for_checkpoint(model, optimizer, scheduler, 3 if stepped else 0)
    save_checkpoint(tmp_path, model, optimizer, scheduler)
    saved = _around(optimizer)
    target = _run(seed=1, steps=2, name=name, ema=EMA, skip_nonfinite=True)
    load_checkpoint(tmp_path, *target)
    loaded = _around(target[1])
    assert (loaded["steps"], loaded["skipped"]) == (saved["steps"], saved["skipped"])
    torch.testing.assert_close(loaded["ema"], saved["ema"], rtol=0, atol=0)
    # Training on from the checkpoint gives the run's own EMA.
    train_for_checkpoint(model, optimizer, scheduler, 2)
    train_for_checkpoint(*target, 2)
    torch.testing.assert_close(_around(target[1])["ema"], _around(optimizer)["ema"], rtol=1e-6, atol=1e-7)
    assert optforge.step_stats(target[1]).steps == optforge.step_stats(optimizer).steps


def test_saving_and_reading_take_no_step_of_the_ema(tmp_path: Path) -> None:
    """The zero-gradient step that torch takes for an optimizer without state counts for nothing."""
    model = _model()
    optimizer, scheduler = _build(model, ema=EMA)
    before = _around(optimizer)
    save_checkpoint(tmp_path, model, optimizer, scheduler)
    after = _around(optimizer)
    assert after["steps"] == before["steps"] == 0
    torch.testing.assert_close(after["ema"], before["ema"], rtol=0, atol=0)


def _expect_failure(path: Path, target: tuple[nn.Module, torch.optim.Optimizer, Any], cause: str) -> None:
    before = _live(*target)
    around = _around(target[1])
    seen = target[1]._optforge_around_step.seen  # type: ignore[attr-defined]
    with pytest.raises(CheckpointError, match=cause) as info:
        load_checkpoint(path, *target)
    assert str(info.value).startswith("cannot load checkpoint")
    after = _live(*target)
    torch.testing.assert_close(after["model"], before["model"], rtol=0, atol=0)
    torch.testing.assert_close(after["state"], before["state"], rtol=0, atol=0)
    assert after["groups"] == before["groups"]
    assert after["scheduler"] == before["scheduler"]
    again = _around(target[1])
    assert (again["steps"], again["skipped"]) == (around["steps"], around["skipped"])
    torch.testing.assert_close(again["ema"], around["ema"], rtol=0, atol=0)
    assert target[1]._optforge_around_step.seen == seen  # type: ignore[attr-defined]


def test_a_checkpoint_without_ema_weights_does_not_load_into_an_optimizer_with_ema(tmp_path: Path) -> None:
    model = _model()
    optimizer, scheduler = _build(model)
    train_for_checkpoint(model, optimizer, scheduler, 3)
    save_checkpoint(tmp_path, model, optimizer, scheduler)
    _expect_failure(tmp_path, _run(seed=1, steps=2, ema=EMA), "holds no EMA weights")


def test_ema_weights_do_not_load_into_an_optimizer_without_ema(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, *_run(ema=EMA))
    target = _run(seed=1, steps=2, clip_grad={"max_norm": 1.0})
    with pytest.raises(CheckpointError, match="holds EMA weights"):
        load_checkpoint(tmp_path, *target)
    assert optforge.step_stats(target[1]).steps == 2


@pytest.mark.parametrize("damage", ["entry missing", "wrong shape"])
def test_a_damaged_ema_entry_changes_nothing(tmp_path: Path, damage: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model, optimizer, scheduler = _run(ema=EMA)
    # A checkpoint as save_checkpoint writes it, with one EMA entry damaged.
    model_state, optimizer_state = get_state_dict(model, optimizer)
    ema = dict(_around(optimizer)["ema"])
    if damage == "entry missing":
        del ema["0.weight"]
    else:
        ema["0.weight"] = torch.zeros(3, 3)
    full = {
        "model": model_state,
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict(),
        "optforge": {"schedule_free_train_mode": False, "stepped": True, "optimizer": "AdamW", "around_step": "ema"},
        "around_step": {"steps": 3, "skipped": 0, "ema": ema},
    }
    damaged = tmp_path / "damaged"
    dcp.save(full, checkpoint_id=str(damaged))
    cause = "Missing key in checkpoint state_dict: around_step.ema.0.weight" if damage == "entry missing" else "Size"
    _expect_failure(damaged, _run(seed=1, steps=2, ema=EMA), cause)


def test_truncated_data_changes_nothing_of_the_ema(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, *_run(ema=EMA))
    _truncate(_data_file(tmp_path), 0.6)
    _expect_failure(tmp_path, _run(seed=1, steps=2, ema=EMA), "truncated or damaged|checkpoint file is corrupted")


class _CorruptScheduler:
    """Saves a scheduler's state with a step that is not a step count."""

    def __init__(self, scheduler: Any) -> None:
        self.saved = {**scheduler.state_dict(), "step": -3}

    def state_dict(self) -> dict[str, Any]:
        return self.saved


@pytest.mark.parametrize("stepped", [True, False], ids=["stepped", "never stepped"])
def test_scheduler_refusing_its_state_undoes_the_ema_too(tmp_path: Path, stepped: bool) -> None:
    """The EMA is committed before the scheduler, which then fails: all is put back."""
    model, optimizer, scheduler = _run(ema=EMA, skip_nonfinite=True)
    save_checkpoint(tmp_path, model, optimizer, _CorruptScheduler(scheduler))  # type: ignore[arg-type]
    target = _run(seed=1, steps=2 if stepped else 0, ema=EMA, skip_nonfinite=True)
    _expect_failure(tmp_path, target, r"scheduler\.step: not a scheduler state")


def test_step_counts_without_ema_round_trip(tmp_path: Path) -> None:
    model, optimizer, scheduler = _run(clip_grad={"max_norm": 0.5}, skip_nonfinite=True)
    save_checkpoint(tmp_path, model, optimizer, scheduler)
    target = _run(seed=1, steps=1, clip_grad={"max_norm": 0.5}, skip_nonfinite=True)
    load_checkpoint(tmp_path, *target)
    assert optforge.step_stats(target[1]).steps == 3
