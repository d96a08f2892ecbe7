"""A checkpoint load that fails changes nothing: missing, truncated and mismatched files, for each part of the state."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import optforge
from optforge import CheckpointError
from optforge.distributed import load_checkpoint, save_checkpoint, schedule_free_training
from optforge.scheduler import build_scheduler
from tests.integrations._common import CONFIGS, train_for_checkpoint

NAMES = ["AdamW", "Lion", "AdamWScheduleFree"]


def _model(width: int = 6) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 1))


def _build(name: str, model: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    optimizer = optforge.build_optimizer(list(model.parameters()), CONFIGS[name])
    peak = optimizer.defaults["lr"]
    return optimizer, build_scheduler(optimizer, {"linear_decay": {"peak_value": peak, "decay_steps": 20}})


def _live(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Everything a load could change, copied."""
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "state": {
            index: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in optimizer.state[p].items()}
            for index, p in enumerate(p for group in optimizer.param_groups for p in group["params"])
            if p in optimizer.state
        },
        "groups": [copy.deepcopy({k: v for k, v in g.items() if k != "params"}) for g in optimizer.param_groups],
        "params": [[id(p) for p in g["params"]] for g in optimizer.param_groups],
        "scheduler": (scheduler.last_epoch, list(scheduler.get_last_lr()), scheduler.state_dict()),
        "training": schedule_free_training(optimizer),
    }


def _assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    torch.testing.assert_close(after["model"], before["model"], rtol=0, atol=0)
    assert after["state"].keys() == before["state"].keys()
    for key, state in before["state"].items():
        assert after["state"][key].keys() == state.keys()
        torch.testing.assert_close(after["state"][key], state, rtol=0, atol=0)
    assert after["groups"] == before["groups"]
    assert after["params"] == before["params"]
    assert after["scheduler"] == before["scheduler"]
    assert after["training"] == before["training"]


def _saved(tmp_path: Path, name: str, *, width: int = 6, scheduler: bool = True) -> Path:
    model = _model(width)
    optimizer, sched = _build(name, model)
    train_for_checkpoint(model, optimizer, sched, 3)
    path = tmp_path / f"ckpt-{name}-{width}-{scheduler}"
    save_checkpoint(path, model, optimizer, sched if scheduler else None)
    return path


def _target(name: str, stepped: bool) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    model = _model()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.5)  # other weights than the checkpoint's
    optimizer, scheduler = _build(name, model)
    if stepped:
        train_for_checkpoint(model, optimizer, scheduler, 2)
    return model, optimizer, scheduler


def _expect_failure(path: Path, target: tuple[nn.Module, torch.optim.Optimizer, Any], cause: str) -> None:
    before = _live(*target)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, *target)
    first = str(info.value).splitlines()[0]
    assert first.startswith("cannot load checkpoint"), first
    assert re.search(cause, first), first
    _assert_unchanged(before, _live(*target))


def _data_file(path: Path) -> Path:
    (found,) = sorted(path.glob("*.distcp"))
    return found


def _truncate(file: Path, fraction: float) -> None:
    data_bytes = file.read_bytes()
    file.write_bytes(data_bytes[: int(len(data_bytes) * fraction)])


@pytest.mark.parametrize("stepped", [True, False], ids=["stepped", "never stepped"])
@pytest.mark.parametrize("name", NAMES)
def test_missing_checkpoint_changes_nothing(tmp_path: Path, name: str, stepped: bool) -> None:
    _expect_failure(tmp_path / "nowhere", _target(name, stepped), "FileNotFoundError: no checkpoint directory")


@pytest.mark.parametrize("stepped", [True, False], ids=["stepped", "never stepped"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        ("data file missing", "FileNotFoundError"),
        ("metadata missing", "metadata read failed"),
        ("data truncated", "truncated or damaged|checkpoint file is corrupted"),
        ("metadata truncated", "pickle data was truncated"),
    ],
)
def test_damaged_checkpoint_changes_nothing(tmp_path: Path, name: str, stepped: bool, damage: str, cause: str) -> None:
    path = _saved(tmp_path, name)
    if damage == "data file missing":
        _data_file(path).unlink()
    elif damage == "metadata missing":
        (path / ".metadata").unlink()
    elif damage == "data truncated":
        _truncate(_data_file(path), 0.5)
    else:
        _truncate(path / ".metadata", 0.5)
    _expect_failure(path, _target(name, stepped), cause)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.7, 0.95])
def test_data_truncated_anywhere_leaves_nothing_half_loaded(tmp_path: Path, fraction: float) -> None:
    """Wherever the cut falls (model, optimizer or scheduler entries), nothing of the file is loaded."""
    path = _saved(tmp_path, "AdamW")
    _truncate(_data_file(path), fraction)
    _expect_failure(path, _target("AdamW", stepped=True), "truncated or damaged|checkpoint file is corrupted")


@pytest.mark.parametrize("stepped", [True, False], ids=["stepped", "never stepped"])
def test_mismatched_model_state_changes_nothing(tmp_path: Path, stepped: bool) -> None:
    path = _saved(tmp_path, "Lion", width=7)
    _expect_failure(path, _target("Lion", stepped), "Size mismatch")


@pytest.mark.parametrize("stepped", [True, False], ids=["stepped", "never stepped"])
@pytest.mark.parametrize(("saved", "loaded"), [("AdamW", "Lion"), ("Lion", "AdamWScheduleFree")])
def test_state_of_another_optimizer_changes_nothing(tmp_path: Path, saved: str, loaded: str, stepped: bool) -> None:
    path = _saved(tmp_path, saved)
    _expect_failure(path, _target(loaded, stepped), f"the state of optimizer {saved}, not {loaded}")


def test_missing_scheduler_state_changes_nothing(tmp_path: Path) -> None:
    path = _saved(tmp_path, "AdamW", scheduler=False)
    _expect_failure(path, _target("AdamW", stepped=True), r"Missing key in checkpoint state_dict: scheduler\.step")


class _CorruptScheduler:
    """Saves a scheduler state whose step is not a step count."""

    def state_dict(self) -> dict[str, Any]:
        return {"step": -3, "fingerprint": {"group0": "x"}}


@pytest.mark.parametrize("stepped", [True, False], ids=["stepped", "never stepped"])
@pytest.mark.parametrize("name", NAMES)
def test_scheduler_refusing_its_state_undoes_the_optimizer_and_model(tmp_path: Path, name: str, stepped: bool) -> None:
    """The scheduler fails after the optimizer was committed: everything is put back."""
    model = _model()
    optimizer, scheduler = _build(name, model)
    train_for_checkpoint(model, optimizer, scheduler, 3)
    path = tmp_path / "ckpt"
    save_checkpoint(path, model, optimizer, _CorruptScheduler())  # type: ignore[arg-type]
    _expect_failure(path, _target(name, stepped), r"ConfigError: scheduler\.step: not a scheduler state")


def test_never_stepped_optimizer_keeps_no_state_after_a_failed_load(tmp_path: Path) -> None:
    model, optimizer, scheduler = _target("AdamW", stepped=False)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "nowhere", model, optimizer, scheduler)
    assert not optimizer.state
    assert "step" not in optimizer.param_groups[0]


def test_checkpoint_error_is_an_exception_with_the_cause_first(tmp_path: Path) -> None:
    path = _saved(tmp_path, "AdamW")
    _data_file(path).unlink()
    with pytest.raises(Exception) as info:  # noqa: PT011 - the point is that it is an Exception
        load_checkpoint(path, *_target("AdamW", stepped=True))
    assert isinstance(info.value, CheckpointError)
    first = str(info.value).splitlines()[0]
    assert "FileNotFoundError" in first, first
    assert ".distcp" in first, first
    assert "unchanged" in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_a_good_load_after_a_failed_one_resumes_exactly(tmp_path: Path, name: str) -> None:
    model = _model()
    optimizer, scheduler = _build(name, model)
    train_for_checkpoint(model, optimizer, scheduler, 3)
    good = tmp_path / "good"
    save_checkpoint(good, model, optimizer, scheduler)
    train_for_checkpoint(model, optimizer, scheduler, 2)
    expected = _live(model, optimizer, scheduler)

    target = _target(name, stepped=True)
    bad = _saved(tmp_path, name, width=7)
    with pytest.raises(CheckpointError):
        load_checkpoint(bad, *target)
    load_checkpoint(good, *target)
    train_for_checkpoint(*target, 2)
    after = _live(*target)
    torch.testing.assert_close(after["model"], expected["model"], rtol=1e-6, atol=1e-7)
    assert after["scheduler"] == expected["scheduler"]


def test_a_failed_save_is_a_checkpoint_error_and_leaves_training_state_alone(tmp_path: Path) -> None:
    model, optimizer, scheduler = _target("AdamW", stepped=True)
    before = _live(model, optimizer, scheduler)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(blocked, model, optimizer, scheduler)
    assert str(info.value).splitlines()[0].startswith(f"cannot save checkpoint {str(blocked)!r}: FileExistsError")
    _assert_unchanged(before, _live(model, optimizer, scheduler))


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_a_checkpoint_without_the_optimizer_name_still_loads(tmp_path: Path) -> None:
    """Checkpoints written before the optimizer's name was recorded load as before."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model = _model()
    optimizer, scheduler = _build("AdamW", model)
    train_for_checkpoint(model, optimizer, scheduler, 3)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {
        "model": model_state,
        "optimizer": optimizer_state,
        "optforge": {"schedule_free_train_mode": False, "stepped": True},
        "scheduler": scheduler.state_dict(),
    }
    dcp.save(state, checkpoint_id=str(tmp_path))
    target = _target("AdamW", stepped=False)
    load_checkpoint(tmp_path, *target)
    expected, loaded = _live(model, optimizer, scheduler), _live(*target)
    expected["params"] = loaded["params"]  # other parameter objects, in the same places
    _assert_unchanged(expected, loaded)
