"""A scheduler by name whose steps go beyond a known run length fails at build time, as optforge's own schedules do."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from optforge.lr_schedulers import build_template_schedulers
from optforge.scheduler import build_scheduler
from tests.lr_schedulers._common import make_optimizer

BEYOND = "is beyond total_steps ({total}): the run ends before the schedule gets there"


def _problems(section: Any, **context: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        build_scheduler(make_optimizer(), section, **context)
    return dict(info.value.problems)


@pytest.mark.parametrize(
    ("section", "path", "step"),
    [
        ({"name": "CosineAnnealingLR", "T_max": 200}, "schedule.T_max", "200"),
        ({"name": "LinearLR", "start_factor": 0.1, "total_iters": 101}, "schedule.total_iters", "101"),
        ({"name": "ConstantLR", "total_iters": 150}, "schedule.total_iters", "150"),
        ({"name": "PolynomialLR", "total_iters": 300}, "schedule.total_iters", "300"),
        ({"name": "StepLR", "step_size": 120}, "schedule.step_size", "120"),
        ({"name": "MultiStepLR", "milestones": [50, 130]}, "schedule.milestones[1]", "130"),
        ({"name": "CosineAnnealingWarmRestarts", "T_0": 250}, "schedule.T_0", "250"),
        ({"name": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 400}, "schedule.step_size_up", "400"),
        (
            {"name": "OneCycleLR", "max_lr": 0.1, "epochs": 30, "steps_per_epoch": 5},
            "schedule.epochs",
            "150 (epochs 30 x steps_per_epoch 5)",
        ),
        ({"name": "PolynomialLRDecay", "max_decay_steps": 101}, "schedule.max_decay_steps", "101"),
        (
            {"name": "CosineAnnealingWarmupReduceRestarts", "first_cycle_steps": 500, "warmup_steps": 10},
            "schedule.first_cycle_steps",
            "500",
        ),
        ({"name": "ReduceLROnPlateau", "warmup_steps": 120}, "schedule.warmup_steps", "120"),
        ({"name": "x", "class_name": "CosineAnnealingLR", "args": {"T_max": 200}}, "schedule.args.T_max", "200"),
        (
            {
                "name": "SequentialLR",
                "schedulers": [{"name": "LinearLR", "total_iters": 40}, {"name": "CosineAnnealingLR", "T_max": 80}],
                "milestones": [40],
            },
            "schedule.schedulers[1].T_max",
            "120 (T_max 80 from step 40, milestones[0], where SequentialLR starts it)",
        ),
        (
            {"name": "SequentialLR", "schedulers": [{"name": "LinearLR"}, {"name": "LinearLR"}], "milestones": [101]},
            "schedule.milestones[0]",
            "101",
        ),
    ],
)
def test_a_step_beyond_the_run_is_an_error(section: dict[str, Any], path: str, step: str) -> None:
    assert _problems(section, total_steps=100) == {path: f"step {step} {BEYOND.format(total=100)}"}


def test_the_run_length_may_come_from_the_section_or_from_build() -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = {"name": "SGD", "lr": 0.1}
    expected = [("schedule.T_max", f"step 20000 {BEYOND.format(total=10000)}")]
    for config, run in [
        ({"optimizer": optimizer, "schedule": {"name": "CosineAnnealingLR", "T_max": 20000}}, {"total_steps": 10000}),
        ({"optimizer": optimizer, "schedule": {"name": "CosineAnnealingLR", "T_max": 20000, "total_steps": 10000}}, {}),
    ]:
        with pytest.raises(ConfigError) as info:
            optforge.build(model, config, **run)
        assert info.value.problems == expected


def test_the_message_is_that_of_optforges_own_schedules() -> None:
    own = _problems({"cosine_decay": {"peak_value": 0.1, "decay_steps": 200}}, total_steps=100)
    named = _problems({"name": "CosineAnnealingLR", "T_max": 200}, total_steps=100)
    assert list(own.values()) == list(named.values())


def test_every_step_beyond_the_run_is_reported_at_once() -> None:
    section = {
        "name": "SequentialLR",
        "schedulers": [
            {"name": "LinearLR", "total_iters": 20},
            {"name": "CosineAnnealingLR", "T_max": 150},
            {"name": "ConstantLR", "total_iters": 20},
        ],
        "milestones": [20, 90],
    }
    assert _problems(section, total_steps=100) == {
        # beyond the run on its own: reported once, as written
        "schedule.schedulers[1].T_max": f"step 150 {BEYOND.format(total=100)}",
        # beyond it only from where SequentialLR starts it
        "schedule.schedulers[2].total_iters": "step 110 (total_iters 20 from step 90, milestones[1], where "
        f"SequentialLR starts it) {BEYOND.format(total=100)}",
    }


def test_steps_within_the_run_build() -> None:
    sections = [
        {"name": "CosineAnnealingLR", "T_max": 100},
        {"name": "CosineAnnealingLR", "T_max": {"fraction": 1.0}},
        {"name": "MultiStepLR", "milestones": [30, 100]},
        {"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 100},
        {"name": "OneCycleLR", "max_lr": 0.1, "epochs": 20, "steps_per_epoch": 5},
        {"name": "ExponentialLR", "gamma": 0.9},
        {"name": "ReduceLROnPlateau", "warmup_steps": 100, "patience": 500},
        {
            "name": "SequentialLR",
            "schedulers": [{"name": "LinearLR", "total_iters": 10}, {"name": "CosineAnnealingLR", "T_max": 90}],
            "milestones": [10],
        },
        {
            "name": "ChainedScheduler",
            "schedulers": [{"name": "LinearLR", "total_iters": 10}, {"name": "CosineAnnealingLR", "T_max": 100}],
        },
    ]
    for section in sections:
        build_scheduler(make_optimizer(), section, total_steps=100)


def test_without_a_run_length_nothing_is_checked() -> None:
    scheduler = build_scheduler(make_optimizer(), {"name": "CosineAnnealingLR", "T_max": 20000})
    assert scheduler.T_max == 20000


def test_a_scheduler_that_runs_on_its_own_length_needs_no_check() -> None:
    # OneCycleLR's own total_steps is the run's when none is given from code
    scheduler = build_scheduler(make_optimizer(), {"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 500})
    assert scheduler.total_steps == 500


def test_the_template_document_is_checked_against_its_run() -> None:
    document = {
        "epoch_scheduler": {"name": "cosine", "class_name": "CosineAnnealingLR", "args": {"T_max": 20}},
        "iter_scheduler": {"name": "warmup", "class_name": "LinearLR", "args": {"total_iters": 2000}},
    }
    with pytest.raises(ConfigError) as info:
        build_template_schedulers(document, make_optimizer(), epoch=10, max_iter=1000)
    assert dict(info.value.problems) == {
        "epoch_scheduler.args.T_max": f"step 20 {BEYOND.format(total=10)}",
        "iter_scheduler.args.total_iters": f"step 2000 {BEYOND.format(total=1000)}",
    }


@pytest.mark.parametrize(
    ("section", "path", "step"),
    [
        ({"name": "timm_CosineLRScheduler", "t_initial": 101}, "schedule.t_initial", "101"),
        (
            {"name": "timm_CosineLRScheduler", "t_initial": 90, "warmup_t": 20, "warmup_prefix": True},
            "schedule.t_initial",
            "110 (warmup_t 20 + t_initial 90)",
        ),
        (
            {"name": "timm_WSDLRScheduler", "t_initial": 95, "decay_t": 10, "warmup_t": 10},
            "schedule.t_initial",
            "105 (warmup_t 10 + t_initial 95)",
        ),
        (
            {"name": "timm_StepLRScheduler", "decay_t": 95, "warmup_t": 10},
            "schedule.decay_t",
            "105 (warmup_t 10 + decay_t 95)",
        ),
        ({"name": "timm_MultiStepLRScheduler", "decay_t": [30, 120]}, "schedule.decay_t[1]", "120"),
        ({"name": "timm_PlateauLRScheduler", "warmup_t": 101}, "schedule.warmup_t", "101"),
        ({"name": "timm.cosine", "num_epochs": 101}, "schedule.num_epochs", "101"),
        (
            {"name": "timm.cosine", "num_epochs": 10, "step_on_epochs": False, "updates_per_epoch": 20},
            "schedule.num_epochs",
            "200 (num_epochs 10 x updates_per_epoch 20)",
        ),
        ({"name": "timm.multistep", "decay_milestones": [50, 200]}, "schedule.decay_milestones[1]", "200"),
    ],
)
@pytest.mark.filterwarnings("ignore:PlateauLRScheduler is deprecated:FutureWarning")
def test_timm_steps_beyond_the_run_are_errors(section: dict[str, Any], path: str, step: str) -> None:
    pytest.importorskip("timm")
    assert _problems(section, total_steps=100) == {path: f"step {step} {BEYOND.format(total=100)}"}


def test_a_registered_scheduler_names_its_steps_of_the_run() -> None:
    from optforge.lr_schedulers import register_scheduler, unregister_scheduler

    class Halving(torch.optim.lr_scheduler.StepLR):
        def __init__(self, optimizer: torch.optim.Optimizer, every: int) -> None:
            super().__init__(optimizer, step_size=every, gamma=0.5)

    register_scheduler(Halving, name="HalvingRunLength", length_args=("every",), within_run=("every",))
    try:
        assert _problems({"name": "HalvingRunLength", "every": 300}, total_steps=100) == {
            "schedule.every": f"step 300 {BEYOND.format(total=100)}"
        }
    finally:
        unregister_scheduler("HalvingRunLength")


def test_a_fraction_without_a_run_length_says_where_total_steps_goes() -> None:
    problems = _problems({"name": "CosineAnnealingLR", "T_max": {"fraction": 0.5}})
    assert problems == {
        "schedule.T_max": "{fraction: 0.5} needs total_steps: pass it from code, optforge.build(model, config, "
        "total_steps=N), or write it in the scheduler's section, beside its name, schedule: {name: ..., "
        "total_steps: N}"
    }
    scheduler = build_scheduler(
        make_optimizer(), {"name": "CosineAnnealingLR", "T_max": {"fraction": 0.5}, "total_steps": 10}
    )
    assert scheduler.T_max == 5
