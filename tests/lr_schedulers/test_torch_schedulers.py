"""Every torch scheduler by name gives the lrs of the class built by hand, step for step."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler

from optforge.lr_schedulers import build_named_scheduler, get_scheduler_entry, list_schedulers
from tests.lr_schedulers._common import make_optimizer, metric_at, run


def decay(epoch: int) -> float:
    return 0.97**epoch


def shrink(epoch: int) -> float:
    return 0.99 if epoch % 10 else 0.5


def _sequential(opt: torch.optim.Optimizer) -> Any:
    warm = lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=20)
    cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=180, eta_min=1e-4)
    return lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[20])


def _chained(opt: torch.optim.Optimizer) -> Any:
    constant = lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=30)
    exponential = lr_scheduler.ExponentialLR(opt, gamma=0.99)
    return lr_scheduler.ChainedScheduler([constant, exponential], opt)


# name: (section arguments, how to build it by hand). Every torch scheduler must be here.
CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "StepLR": ({"step_size": 30, "gamma": 0.5}, lambda o: lr_scheduler.StepLR(o, 30, gamma=0.5)),
    "MultiStepLR": ({"milestones": [50, 120], "gamma": 0.2}, lambda o: lr_scheduler.MultiStepLR(o, [50, 120], 0.2)),
    "ConstantLR": ({"factor": 0.25, "total_iters": 40}, lambda o: lr_scheduler.ConstantLR(o, 0.25, 40)),
    "LinearLR": (
        {"start_factor": 0.05, "end_factor": 1.0, "total_iters": 60},
        lambda o: lr_scheduler.LinearLR(o, 0.05, 1.0, 60),
    ),
    "ExponentialLR": ({"gamma": 0.98}, lambda o: lr_scheduler.ExponentialLR(o, 0.98)),
    "PolynomialLR": ({"total_iters": 150, "power": 2.0}, lambda o: lr_scheduler.PolynomialLR(o, 150, 2.0)),
    "CosineAnnealingLR": ({"T_max": 120, "eta_min": 1e-4}, lambda o: lr_scheduler.CosineAnnealingLR(o, 120, 1e-4)),
    "CosineAnnealingWarmRestarts": (
        {"T_0": 25, "T_mult": 2, "eta_min": 1e-5},
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, 25, 2, 1e-5),
    ),
    "CyclicLR": (
        {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 20, "mode": "triangular2"},
        lambda o: lr_scheduler.CyclicLR(o, 0.01, 0.1, step_size_up=20, mode="triangular2"),
    ),
    "OneCycleLR": (
        {"max_lr": 0.2, "total_steps": 200, "pct_start": 0.25},
        lambda o: lr_scheduler.OneCycleLR(o, 0.2, total_steps=200, pct_start=0.25),
    ),
    "LambdaLR": (
        {"lr_lambda": "tests.lr_schedulers.test_torch_schedulers:decay"},
        lambda o: lr_scheduler.LambdaLR(o, decay),
    ),
    "MultiplicativeLR": (
        {"lr_lambda": "tests.lr_schedulers.test_torch_schedulers.shrink"},
        lambda o: lr_scheduler.MultiplicativeLR(o, shrink),
    ),
    "ReduceLROnPlateau": (
        {"mode": "min", "factor": 0.5, "patience": 5, "cooldown": 2, "min_lr": 1e-4},
        lambda o: lr_scheduler.ReduceLROnPlateau(o, "min", 0.5, 5, cooldown=2, min_lr=1e-4),
    ),
    "SequentialLR": (
        {
            "schedulers": [
                {"name": "LinearLR", "start_factor": 0.1, "total_iters": 20},
                {"name": "CosineAnnealingLR", "T_max": 180, "eta_min": 1e-4},
            ],
            "milestones": [20],
        },
        _sequential,
    ),
    "ChainedScheduler": (
        {
            "schedulers": [
                {"name": "ConstantLR", "factor": 0.5, "total_iters": 30},
                {"name": "ExponentialLR", "gamma": 0.99},
            ]
        },
        _chained,
    ),
}


def test_every_torch_scheduler_is_registered_and_has_a_case() -> None:
    exported = {
        name
        for name, obj in vars(lr_scheduler).items()
        if inspect.isclass(obj)
        and issubclass(obj, lr_scheduler.LRScheduler)
        and obj is not lr_scheduler.LRScheduler
        and not name.startswith("_")
    }
    assert exported <= set(list_schedulers(provider="torch"))
    assert set(list_schedulers(provider="torch")) == set(CASES)


@pytest.mark.parametrize("name", list_schedulers(provider="torch"))
def test_by_name_equals_the_class_built_by_hand(name: str) -> None:
    arguments, by_hand = CASES[name]
    mine, theirs = make_optimizer(), make_optimizer()
    built = build_named_scheduler(mine, {"name": name.lower(), **arguments})
    reference = by_hand(theirs)
    assert isinstance(built, type(reference)) or name == "ChainedScheduler"
    if get_scheduler_entry(name).metric:
        got = run(mine, lambda k: built.step(metric_at(k)), 200)
        want = run(theirs, lambda k: reference.step(metric_at(k)), 200)
        assert min(min(row) for row in want) < want[0][0] / 4  # the plateaus did cut the lr
    else:
        got = run(mine, lambda k: built.step(), 200)
        want = run(theirs, lambda k: reference.step(), 200)
    assert got == want
    assert built.get_last_lr() == reference.get_last_lr()
    assert len({row[0] for row in got}) > 1  # the schedule moved


def test_the_template_section_form_builds_the_same_scheduler() -> None:
    mine, theirs = make_optimizer(), make_optimizer()
    section = {"name": "decay", "class_name": "StepLR", "args": {"step_size": 30, "gamma": 0.5}, "checkpoint": None}
    built, reference = build_named_scheduler(mine, section), lr_scheduler.StepLR(theirs, 30, gamma=0.5)
    assert run(mine, lambda k: built.step(), 100) == run(theirs, lambda k: reference.step(), 100)
