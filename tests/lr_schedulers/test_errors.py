"""Bad scheduler sections fail at build time with one ConfigError naming every problem's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from optforge.lr_schedulers import MetricMissingError, build_named_scheduler
from optforge.scheduler import ScheduleChangedWarning, build_scheduler
from tests.lr_schedulers._common import make_optimizer


def _problems(section: Any, **context: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        build_scheduler(make_optimizer(), section, **context)
    return info.value.problems


def test_an_unknown_scheduler_name_suggests_the_closest() -> None:
    ((path, message),) = _problems({"name": "CosineAnealingLR", "T_max": 10})
    assert path == "schedule.name"
    assert "unknown scheduler 'CosineAnealingLR'; did you mean 'CosineAnnealingLR'?" in message
    assert "optforge list --schedulers" in message


def test_every_bad_argument_is_reported_at_once_with_the_valid_names() -> None:
    problems = dict(_problems({"name": "CosineAnnealingLR", "T_mx": 10, "eta_min": "small"}))
    assert problems == {
        "schedule.T_mx": "unknown argument for CosineAnnealingLR; did you mean 'T_max'? "
        "Valid arguments: T_max, eta_min",
        "schedule.eta_min": "expected a number, got str 'small'",
        "schedule.T_max": "required argument of CosineAnnealingLR is missing",
    }


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ({"name": "StepLR", "step_size": 2.5}, "schedule.step_size", "expected a whole number, got float 2.5"),
        ({"name": "StepLR", "step_size": 0}, "schedule.step_size", "must be >= 1, got 0"),
        ({"name": "ReduceLROnPlateau", "factor": 1.5}, "schedule.factor", "must be in [0, 1), got 1.5"),
        (
            {"name": "ReduceLROnPlateau", "mode": "minimum"},
            "schedule.mode",
            "expected one of 'min', 'max', got str 'minimum'; did you mean 'min'?",
        ),
        ({"name": "MultiStepLR", "milestones": 30}, "schedule.milestones", "expected a list of whole numbers"),
        ({"name": "MultiStepLR", "milestones": [30, "x"]}, "schedule.milestones[1]", "expected a whole number"),
        ({"name": "LambdaLR", "lr_lambda": "math:nope"}, "schedule.lr_lambda", "module 'math' has no attribute 'nope'"),
        (
            {"name": "StepLR", "step_size": 5, "last_epoch": 3},
            "schedule.last_epoch",
            "the step count comes from a saved state",
        ),
        ({"name": "StepLR", "step_size": 5, "gamma": {"fraction": 0.5}}, "schedule.gamma", "gamma is not a length"),
        ({"name": "StepLR", "step_size": {"epochs": 2}}, "schedule.step_size", "needs steps_per_epoch"),
        (
            {"name": "StepLR", "step_size": 3, "warmup_steps": 10},
            "schedule.warmup_steps",
            "for metric-driven schedulers; for StepLR, put a LinearLR before it in a SequentialLR",
        ),
        ({"name": "StepLR", "step_size": 3, "interval": "batch"}, "schedule.interval", "expected step or epoch"),
        (
            {"name": "x", "class_name": "StepLR", "arg": {"step_size": 3}},
            "schedule.arg",
            "unknown key; did you mean 'args'?",
        ),
        ({"name": "OneCycleLR", "max_lr": 0.1}, "schedule", "OneCycleLR rejected the config: You must define"),
        (
            {
                "name": "ChainedScheduler",
                "schedulers": [{"name": "StepLR", "step_size": 2}],
                "step_ranges": [[0, 2], [2, 9]],
            },
            "schedule",
            "2 step_ranges for 1 schedulers",
        ),
        (
            {"epoch_scheduler": None, "iter_scheduler": {"name": "StepLR"}},
            "schedule",
            "build_template_schedulers",
        ),
    ],
)
def test_bad_values_name_their_path(section: dict[str, Any], path: str, message: str) -> None:
    problems = _problems(section)
    assert any(p == path and message in m for p, m in problems), problems


def test_nested_sections_report_their_own_paths() -> None:
    section = {
        "name": "SequentialLR",
        "schedulers": [{"name": "LinearLR", "total_iter": 5}, {"name": "CosineAnnealingLR"}],
        "milestones": [5.5],
    }
    paths = [path for path, _ in _problems(section)]
    assert paths == ["schedule.schedulers[0].total_iter", "schedule.schedulers[1].T_max", "schedule.milestones[0]"]


def test_a_run_length_given_twice_must_agree() -> None:
    section = {"name": "StepLR", "step_size": {"fraction": 0.5}, "total_steps": 100}
    ((path, message),) = _problems(section, total_steps=200)
    assert path == "schedule.total_steps"
    assert "100 here but 200 for the run" in message


def test_build_reports_a_bad_scheduler_section_by_its_path() -> None:
    config = {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"name": "StepLr", "step_size": 10}}
    _optimizer, scheduler = optforge.build(torch.nn.Linear(2, 1), config)
    assert type(scheduler).__name__ == "StepLR"
    with pytest.raises(ConfigError, match=r"schedule\.name: unknown scheduler 'Stepp'"):
        optforge.build(torch.nn.Linear(2, 1), {**config, "schedule": {"name": "Stepp"}})


def test_checkpoint_problems_name_the_checkpoint_key(tmp_path: Path) -> None:
    section = {"name": "c", "class_name": "StepLR", "args": {"step_size": 5}, "checkpoint": str(tmp_path / "nope.pt")}
    ((path, message),) = _problems(section)
    assert path == "schedule.checkpoint"
    assert "scheduler checkpoint" in message
    assert "does not exist" in message

    other = torch.optim.lr_scheduler.CosineAnnealingLR(make_optimizer(), T_max=4)
    torch.save(other.state_dict(), tmp_path / "other.pt")
    ((path, message),) = _problems({**section, "checkpoint": str(tmp_path / "other.pt")})
    assert path == "schedule.checkpoint"
    assert "is not a state of StepLR" in message

    (tmp_path / "junk.pt").write_text("not a checkpoint")
    ((path, message),) = _problems({**section, "checkpoint": str(tmp_path / "junk.pt")})
    assert path == "schedule.checkpoint"
    assert "cannot read" in message


def test_a_checkpoint_that_replaces_a_configured_argument_warns(tmp_path: Path) -> None:
    saved = torch.optim.lr_scheduler.StepLR(make_optimizer(), step_size=5)
    torch.save(saved.state_dict(), tmp_path / "s.pt")
    section = {"name": "c", "class_name": "StepLR", "args": {"step_size": 8}, "checkpoint": str(tmp_path / "s.pt")}
    with pytest.warns(ScheduleChangedWarning, match=r"the saved state replaces step_size=5 \(configured 8\)"):
        scheduler = build_scheduler(make_optimizer(), section)
    assert scheduler.step_size == 5


def test_stepping_a_metric_scheduler_without_a_metric_says_what_to_pass() -> None:
    scheduler = build_named_scheduler(make_optimizer(), {"name": "ReduceLROnPlateau"})
    with pytest.raises(
        MetricMissingError, match=r"ReduceLROnPlateau decides on a metric: call scheduler\.step\(metric\)"
    ):
        scheduler.step()
    warm = build_named_scheduler(make_optimizer(), {"name": "ReduceLROnPlateau", "warmup_steps": 1})
    warm.step()  # the warmup needs no metric
    with pytest.raises(MetricMissingError, match="after its 1-step warmup"):
        warm.step()
