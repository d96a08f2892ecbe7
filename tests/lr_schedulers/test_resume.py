"""A scheduler by name saves and loads its own state: build, load, continue, and the lrs are those of one run."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from optforge.scheduler import build_scheduler
from tests.lr_schedulers._common import make_optimizer, metric_at, run

SAVE_AT, TOTAL = 23, 80

KINDS: dict[str, dict[str, Any]] = {
    # closed form: the state is a step count
    "LRShim": {"cosine_decay": {"peak_value": 0.1, "warmup_steps": 10, "decay_steps": {"fraction": 1.0}}},
    "PolynomialLRDecay": {"name": "PolynomialLRDecay", "max_decay_steps": 60, "power": 2.0},
    "CosineAnnealingWarmupReduceRestarts": {
        "name": "CosineAnnealingWarmupReduceRestarts",
        "first_cycle_steps": 15,
        "cycle_mult": 1.5,
        "warmup_steps": 3,
        "gamma": 0.7,
    },
    # torch's own
    "OneCycleLR": {"name": "OneCycleLR", "max_lr": 0.3, "total_steps": {"fraction": 1.0}},
    "CosineAnnealingWarmRestarts": {"name": "CosineAnnealingWarmRestarts", "T_0": 10, "T_mult": 2},
    "SequentialLR": {
        "name": "SequentialLR",
        "schedulers": [
            {"name": "LinearLR", "start_factor": 0.1, "total_iters": 10},
            {"name": "ExponentialLR", "gamma": 0.95},
        ],
        "milestones": [10],
    },
    "timm_CosineLRScheduler": {"name": "timm_CosineLRScheduler", "t_initial": 50, "warmup_t": 5, "cycle_limit": 2},
    # metric-driven
    "ReduceLROnPlateau": {"name": "ReduceLROnPlateau", "patience": 2, "factor": 0.5},
    "ReduceLROnPlateau with warmup": {"name": "ReduceLROnPlateau", "warmup_steps": 8, "patience": 2, "factor": 0.5},
    "timm_PlateauLRScheduler": {"name": "timm_PlateauLRScheduler", "patience_t": 2, "mode": "min", "warmup_t": 4},
    "ChainedScheduler step_ranges": {
        "name": "x",
        "class_name": "ChainedScheduler",
        "args": {
            "step_ranges": [[0, 10], [10, 1000]],
            "schedulers": [
                {"name": "LinearLR", "start_factor": 0.1, "total_iters": 9},
                {"name": "ReduceLROnPlateau", "patience": 2},
            ],
        },
    },
}
METRIC = {
    "ReduceLROnPlateau",
    "ReduceLROnPlateau with warmup",
    "timm_PlateauLRScheduler",
    "ChainedScheduler step_ranges",
}
# Kinds whose state alone (without the optimizer's) sets the lrs back.
OWN_LRS = set(KINDS) - {"OneCycleLR", "CosineAnnealingWarmRestarts", "SequentialLR"}


def _stepper(scheduler: Any, kind: str) -> Any:
    if kind in METRIC:
        return lambda k: scheduler.step(metric=metric_at(k)) if "Chained" in kind else scheduler.step(metric_at(k))
    return lambda k: scheduler.step()


def _build(kind: str) -> tuple[torch.optim.Optimizer, Any]:
    optimizer = make_optimizer()
    return optimizer, build_scheduler(optimizer, KINDS[kind], total_steps=TOTAL)


@pytest.mark.filterwarnings("ignore:PlateauLRScheduler is deprecated:FutureWarning")
@pytest.mark.parametrize(
    ("kind", "with_optimizer_state"),
    [(kind, True) for kind in sorted(KINDS)] + [(kind, False) for kind in sorted(OWN_LRS)],
)
def test_build_and_load_state_dict_continues_identically(kind: str, with_optimizer_state: bool) -> None:
    if kind.startswith("timm"):
        pytest.importorskip("timm")
    optimizer, scheduler = _build(kind)
    before = run(optimizer, _stepper(scheduler, kind), SAVE_AT)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    after = run(optimizer, _stepper(scheduler, kind), TOTAL - SAVE_AT, start=SAVE_AT)
    assert len({row[0] for row in before + after}) > 3

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_optimizer, resumed = _build(kind)
    if with_optimizer_state:
        resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert run(resumed_optimizer, _stepper(resumed, kind), TOTAL - SAVE_AT, start=SAVE_AT) == after


def test_the_template_checkpoint_key_loads_a_saved_state(tmp_path: Any) -> None:
    section = {"name": "c", "class_name": "CosineAnnealingLR", "args": {"T_max": 50}, "checkpoint": None}
    optimizer = make_optimizer()
    scheduler = build_scheduler(optimizer, section)
    run(optimizer, lambda k: scheduler.step(), 20)
    torch.save(scheduler.state_dict(), tmp_path / "sched.pt")
    resumed = build_scheduler(make_optimizer(), {**section, "checkpoint": str(tmp_path / "sched.pt")})
    assert resumed.last_epoch == 20
    assert resumed.state_dict() == scheduler.state_dict()
