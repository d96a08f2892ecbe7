"""timm's schedulers by name behave as timm's, stepped per epoch as timm steps them, through ``step()``."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from optforge.lr_schedulers import MetricMissingError, TimmScheduler, build_named_scheduler, list_schedulers
from tests.lr_schedulers._common import make_optimizer, metric_at, run

timm_scheduler = pytest.importorskip("timm.scheduler")

WARMUP = {"warmup_t": 5, "warmup_lr_init": 1e-4}
# name: arguments, for the section and for the class by hand alike. Every timm class must be here.
CLASSES: dict[str, dict[str, Any]] = {
    "CosineLRScheduler": {"t_initial": 60, "lr_min": 1e-4, "cycle_limit": 3, "cycle_decay": 0.5, **WARMUP},
    "PolyLRScheduler": {"t_initial": 150, "power": 2.0, "lr_min": 1e-5, **WARMUP, "warmup_prefix": True},
    "StepLRScheduler": {"decay_t": 30, "decay_rate": 0.5, **WARMUP},
    "MultiStepLRScheduler": {"decay_t": [40, 90, 150], "decay_rate": 0.3, **WARMUP},
    "TanhLRScheduler": {"t_initial": 180, "lr_min": 1e-5, **WARMUP},
    "PlateauLRScheduler": {"decay_rate": 0.5, "patience_t": 5, "mode": "min", **WARMUP},
    "WSDLRScheduler": {"t_initial": 190, "decay_t": 50, "lr_min": 1e-5, **WARMUP},
    "CosineLRScheduler/noise": {"t_initial": 200, "noise_range_t": [50, 150], "noise_pct": 0.2, "noise_seed": 3},
}


def _timm_steps(scheduler: Any, metric: bool) -> Any:
    # timm's own loop: step(epoch) at the end of each epoch, with the epoch count from 1.
    return lambda k: scheduler.step(k + 1, metric_at(k) if metric else None)


def test_every_timm_class_is_registered_and_has_a_case() -> None:
    names = {f"timm_{name.split('/')[0]}" for name in CLASSES}
    registered = set(list_schedulers("timm_*", provider="timm"))
    assert registered == names


@pytest.mark.filterwarnings("ignore:PlateauLRScheduler is deprecated:FutureWarning")
@pytest.mark.parametrize("case", sorted(CLASSES))
def test_timm_class_by_name_equals_timm_stepped_per_epoch(case: str) -> None:
    cls_name, arguments = case.split("/")[0], CLASSES[case]
    mine, theirs = make_optimizer(), make_optimizer()
    built = build_named_scheduler(mine, {"name": f"timm_{cls_name}", **arguments})
    reference = getattr(timm_scheduler, cls_name)(theirs, **arguments)
    assert isinstance(built, torch.optim.lr_scheduler.LRScheduler)
    assert isinstance(built, TimmScheduler)
    metric = cls_name == "PlateauLRScheduler"
    got = run(mine, (lambda k: built.step(metric_at(k))) if metric else (lambda k: built.step()), 200)
    want = run(theirs, _timm_steps(reference, metric), 200)
    assert got == want
    assert len({row[0] for row in got}) > 5
    assert built.get_last_lr() == [group["lr"] for group in mine.param_groups]


FACTORY: dict[str, dict[str, Any]] = {
    "cosine": {"num_epochs": 150, "warmup_epochs": 5, "min_lr": 1e-5},
    "tanh": {"num_epochs": 150, "warmup_epochs": 5},
    "step": {"decay_epochs": 30, "decay_rate": 0.5},
    "constant": {"warmup_epochs": 10},
    "multistep": {"decay_milestones": [60, 120], "decay_rate": 0.2},
    "plateau": {"patience_epochs": 4, "plateau_mode": "min", "decay_rate": 0.5},
    "poly": {"num_epochs": 180, "decay_rate": 2.0},
    "wsd": {"num_epochs": 180, "warmup_epochs": 10},
    "rsqrt": {"num_epochs": 180, "warmup_epochs": 10},
}


def test_every_timm_factory_name_has_a_case() -> None:
    assert set(list_schedulers("timm.*")) == {f"timm.{name}" for name in FACTORY}


@pytest.mark.filterwarnings("ignore:PlateauLRScheduler is deprecated:FutureWarning")
@pytest.mark.parametrize("sched", sorted(FACTORY))
def test_timm_factory_name_equals_create_scheduler_v2(sched: str) -> None:
    mine, theirs = make_optimizer(), make_optimizer()
    built = build_named_scheduler(mine, {"name": f"timm.{sched}", **FACTORY[sched]})
    reference, _ = timm_scheduler.create_scheduler_v2(theirs, sched=sched, **FACTORY[sched])
    metric = sched == "plateau"
    got = run(mine, (lambda k: built.step(metric_at(k))) if metric else (lambda k: built.step()), 200)
    assert got == run(theirs, _timm_steps(reference, metric), 200)


def test_per_update_schedulers_advance_one_update_per_step() -> None:
    mine, theirs = make_optimizer(), make_optimizer()
    arguments = {"t_initial": 100, "t_in_epochs": False, "warmup_t": 10}
    built = build_named_scheduler(mine, {"name": "timm_CosineLRScheduler", **arguments})
    reference = timm_scheduler.CosineLRScheduler(theirs, **arguments)
    got = run(mine, lambda k: built.step(), 120)
    assert got == run(theirs, lambda k: reference.step_update(k + 1), 120)


def test_warmup_prefix_false_replaces_the_first_values_of_the_cosine() -> None:
    opt = make_optimizer(groups=1)
    built = build_named_scheduler(opt, {"name": "timm_CosineLRScheduler", "t_initial": 100, "warmup_t": 10})
    lrs = [row[0] for row in run(opt, lambda k: built.step(), 100)]
    assert lrs[:10] == pytest.approx([0.1 * t / 10 for t in range(10)])
    assert lrs[10] == pytest.approx(0.1 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 10 / 100)).item()))


@pytest.mark.filterwarnings("ignore:PlateauLRScheduler is deprecated:FutureWarning")
def test_timm_plateau_needs_a_metric_after_its_warmup() -> None:
    opt = make_optimizer()
    built = build_named_scheduler(opt, {"name": "timm_PlateauLRScheduler", "warmup_t": 2, "mode": "min"})
    built.step()
    built.step()
    with pytest.raises(
        MetricMissingError, match=r"PlateauLRScheduler decides on a metric: call scheduler.step\(metric\)"
    ):
        built.step()


def test_timm_is_not_imported_by_optforge() -> None:
    import subprocess
    import sys

    code = "import sys, optforge, optforge.lr_schedulers; optforge.list_schedulers('step*', provider='torch');"
    code += "assert 'timm' not in sys.modules, 'timm imported'"
    with warnings.catch_warnings():
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
