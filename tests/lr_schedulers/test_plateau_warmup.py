"""The warmup before a plateau: counted in calls of step() (the default) or in optimizer steps (warmup_per: step)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from optforge.errors import ConfigError
from optforge.lr_schedulers import MetricMissingError, WarmupPlateau
from optforge.scheduler import build_scheduler
from tests.lr_schedulers._common import fit_recording_lrs, lrs_of, make_optimizer

PER_STEP = {"name": "ReduceLROnPlateau", "warmup_steps": 4, "warmup_per": "step", "patience": 0, "factor": 0.5}
STEPS_PER_EPOCH = 3


def _epochs(optimizer: torch.optim.Optimizer, scheduler: Any, epochs: int, start: int = 0) -> list[float]:
    """The first group's lr of each optimizer step, stepping per step without a metric and per epoch with one."""
    seen = []
    for _ in range(start, start + epochs):
        for _ in range(STEPS_PER_EPOCH):
            seen.append(lrs_of(optimizer)[0])
            optimizer.step()
            scheduler.step()
        scheduler.step(1.0)  # a validation loss that never improves
    return seen


def test_per_step_warmup_then_a_plateau_judged_per_epoch() -> None:
    optimizer = make_optimizer(lr=0.1, groups=1)
    scheduler = build_scheduler(optimizer, PER_STEP)
    assert isinstance(scheduler, WarmupPlateau)
    assert scheduler.warmup_per == "step"
    seen = _epochs(optimizer, scheduler, 4)
    warmup = [0.0, 0.025, 0.05, 0.075]  # one step of the warmup per optimizer step, whatever the metric steps
    # epoch 0 ends inside the warmup: its metric is not judged; epoch 1's is the plateau's first (its best),
    # epochs 2 and 3 do not improve (patience 0): halved each time
    assert seen == pytest.approx([*warmup, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05])
    assert scheduler.get_last_lr() == pytest.approx([0.025])
    assert scheduler.plateau.last_epoch == 3  # the plateau counts only the metric steps after the warmup


def test_per_step_warmup_ignores_step_without_a_metric_once_it_is_over() -> None:
    optimizer = make_optimizer(lr=0.1, groups=1)
    scheduler = build_scheduler(optimizer, {**PER_STEP, "warmup_steps": 1})
    scheduler.step()
    scheduler.step(1.0)
    scheduler.step(1.0)
    for _ in range(5):
        scheduler.step()  # every later optimizer step: nothing to do, no error
    assert scheduler.get_last_lr() == [0.05]


def test_per_step_warmup_refuses_a_metric_before_any_optimizer_step() -> None:
    scheduler = build_scheduler(make_optimizer(), PER_STEP)
    with pytest.raises(
        RuntimeError, match=r"warmup_per: step.*call scheduler\.step\(\) after each optimizer\.step\(\)"
    ):
        scheduler.step(1.0)


def test_the_default_warmup_counts_every_call_of_step() -> None:
    optimizer = make_optimizer(lr=0.1, groups=1)
    section = {"name": "ReduceLROnPlateau", "warmup_steps": 2, "patience": 0, "factor": 0.5}
    scheduler = build_scheduler(optimizer, section)
    assert scheduler.warmup_per == "metric"
    scheduler.step()  # the warmup needs no metric
    assert lrs_of(optimizer) == [0.05]
    scheduler.step(3.0)  # a metric during the warmup advances it and is not judged
    assert lrs_of(optimizer) == [0.1]
    scheduler.step(1.0)
    scheduler.step(1.0)
    assert lrs_of(optimizer) == [0.05]
    with pytest.raises(MetricMissingError, match="after its 2-step warmup"):
        scheduler.step()  # after the warmup, a call without a metric is an error


@pytest.mark.parametrize("save_after", [1, 2, 4])
def test_per_step_warmup_resumes_identically(save_after: int) -> None:
    optimizer = make_optimizer(lr=0.1, groups=1)
    scheduler = build_scheduler(optimizer, PER_STEP)
    _epochs(optimizer, scheduler, save_after)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    after = _epochs(optimizer, scheduler, 3, start=save_after)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_optimizer = make_optimizer(lr=0.1, groups=1)
    resumed = build_scheduler(resumed_optimizer, PER_STEP)
    resumed.load_state_dict(saved["scheduler"])  # the scheduler's state sets the lrs on its own
    assert _epochs(resumed_optimizer, resumed, 3, start=save_after) == after


def test_a_state_of_the_other_warmup_is_refused() -> None:
    per_metric = build_scheduler(make_optimizer(), {**PER_STEP, "warmup_per": "metric"})
    per_metric.step()
    per_step = build_scheduler(make_optimizer(), PER_STEP)
    with pytest.raises(ValueError, match="saved with warmup_per: metric; this scheduler warms up per step"):
        per_step.load_state_dict(per_metric.state_dict())
    old = {key: value for key, value in per_metric.state_dict().items() if key != "warmup_per"}
    build_scheduler(make_optimizer(), {**PER_STEP, "warmup_per": "metric"}).load_state_dict(old)  # saved before


def test_the_template_checkpoint_of_a_per_step_warmup_loads(tmp_path: Any) -> None:
    section = {"name": "p", "class_name": "ReduceLROnPlateau", "args": {"patience": 0}, "warmup_steps": 4}
    optimizer = make_optimizer(groups=1)
    scheduler = build_scheduler(optimizer, {**section, "warmup_per": "step"})
    _epochs(optimizer, scheduler, 1)
    torch.save(scheduler.state_dict(), tmp_path / "s.pt")
    resumed = build_scheduler(
        make_optimizer(groups=1), {**section, "warmup_per": "step", "checkpoint": str(tmp_path / "s.pt")}
    )
    assert resumed.state_dict() == scheduler.state_dict()
    with pytest.raises(ConfigError, match=r"schedule\.checkpoint: cannot load .*warmup_per"):
        build_scheduler(make_optimizer(groups=1), {**section, "checkpoint": str(tmp_path / "s.pt")})


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ({**PER_STEP, "warmup_per": "epoch"}, "schedule.warmup_per", "expected step or metric, got 'epoch'"),
        (
            {"name": "StepLR", "step_size": 3, "warmup_per": "step"},
            "schedule.warmup_per",
            "a warmup section key is for metric-driven schedulers",
        ),
        (
            {"name": "ReduceLROnPlateau", "warmup_per": "step"},
            "schedule.warmup_steps",
            "expected a whole number >= 1 (or a length), got None",
        ),
    ],
)
def test_a_bad_warmup_per_is_a_config_error(section: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_scheduler(make_optimizer(), section)
    ((where, text),) = info.value.problems
    assert where == path
    assert message in text


def test_lightning_steps_the_metric_and_the_module_steps_the_warmup(tmp_path: Any) -> None:
    schedule = {**PER_STEP, "warmup_steps": 3, "interval": "epoch", "monitor": "val_loss"}
    # the module steps the warmup once per optimizer step; Lightning steps the plateau each epoch
    seen = fit_recording_lrs(tmp_path, schedule, max_epochs=4, step_each_batch=True, num_sanity_val_steps=0)
    # two optimizer steps an epoch: warmed up over 3 steps; epoch 1's metric is the plateau's best, then halved
    assert seen == pytest.approx([0.0, 0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.1, 0.05, 0.05])
