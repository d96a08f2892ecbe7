"""The training template's scheduler sections give, epoch by epoch, the lrs its own builder gives.

Each case is a section as the template's config files write it, and a reference:
a plain re-implementation, from the template's description, of the lr its
builder and trainer produce in each epoch (0-based) of an ``E``-epoch run. The
template steps its epoch scheduler once after every epoch.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

import pytest

from optforge.lr_schedulers import build_template_schedulers
from tests.lr_schedulers._common import make_optimizer, metric_at, run

pytest.importorskip("timm")

Reference = Callable[[float, int], list[float]]


def _plateau(lrs0: float, metrics: list[float], factor: float, patience: int, start: int = 0) -> list[float]:
    """torch's ReduceLROnPlateau (mode min, rel threshold 1e-4): the lr after each metric from index ``start``."""
    lr, best, bad, out = lrs0, math.inf, 0, []
    for index, metric in enumerate(metrics):
        if index >= start:
            if metric < best * (1 - 1e-4):
                best, bad = metric, 0
            else:
                bad += 1
            if bad > patience:
                lr, bad = lr * factor, 0
        out.append(lr)
    return out


def step_lr(b: float, n: int) -> list[float]:
    size = round(0.1 * n)
    return [b * 0.5 ** (e // size) for e in range(n)]


def step_lr_int(b: float, n: int) -> list[float]:
    return [b * 0.5 ** (e // 7) for e in range(n)]


def multistep_lr(b: float, n: int) -> list[float]:
    marks = [round(x * n) for x in (0.3, 0.6, 0.9)]
    return [b * 0.1 ** sum(m <= e for m in marks) for e in range(n)]


def linear_lr(b: float, n: int) -> list[float]:
    return [b * (0.1 + 0.9 * min(e, n) / n) for e in range(n)]


def warm_restarts(b: float, n: int) -> list[float]:
    out = []
    for e in range(n):
        start, length = 0, 10
        while e >= start + length:
            start, length = start + length, length * 2
        out.append(1e-4 + (b - 1e-4) * (1 + math.cos(math.pi * (e - start) / length)) / 2)
    return out


def reduce_on_plateau(b: float, n: int) -> list[float]:
    after = _plateau(b, [metric_at(e) for e in range(n)], 0.5, 3)
    return [b, *after[: n - 1]]  # epoch e uses the lr set after the metric of epoch e - 1


def polynomial_lr_decay(b: float, n: int) -> list[float]:
    return [(b - 1e-4) * (1 - max(e, 1) / n) ** 2 + 1e-4 for e in range(n)]


def warmup_reduce_restarts(b: float, n: int) -> list[float]:
    # The template's trainer calls step(epoch=k): cycle c lasts 20 * 1.5 ** c from int(20 * (1.5 ** c - 1) / 0.5).
    out = [1e-4]
    for k in range(1, n):
        if k < 20:
            cycle, within, length = 0, k, 20.0
        else:
            cycle = int(math.log(k / 20 * 0.5 + 1, 1.5))
            within, length = k - int(20 * (1.5**cycle - 1) / 0.5), 20 * 1.5**cycle
        peak = 0.1 * 0.5**cycle
        if within < 4:
            out.append((peak - 1e-4) * within / 4 + 1e-4)
        else:
            out.append(1e-4 + (peak - 1e-4) * (1 + math.cos(math.pi * (within - 4) / (length - 4))) / 2)
    return out


def timm_cosine(b: float, n: int) -> list[float]:
    # t_initial stays as written, and timm reads noise_range_t [0.4, 0.8] as epochs: no noise.
    out = []
    for t in range(n):
        if t < 3:
            out.append(1e-4 + t * (b - 1e-4) / 3)
        elif t < 30:
            out.append(1e-5 + 0.5 * (b - 1e-5) * (1 + math.cos(math.pi * t / 30)))
        else:
            out.append(1e-5)
    return out


def timm_poly(b: float, n: int) -> list[float]:
    length = 20
    return [b * (1 - t / length) ** 0.9 if t < length else 0.0 for t in range(n)]


def timm_step(b: float, n: int) -> list[float]:
    return [1e-3 + t * (b - 1e-3) / 2 if t < 2 else b * 0.5 ** ((t - 2) // 10) for t in range(n)]


def timm_multistep(b: float, n: int) -> list[float]:
    return [b * 0.5 ** bisect.bisect_right([10, 20], t + 1) for t in range(n)]


def timm_tanh(b: float, n: int) -> list[float]:
    # Without a warmup, timm's schedulers set the base lr when built: the formula starts at epoch 1.
    tanh = [0.5 * b * (1 - math.tanh(-7 * (1 - t / 30) + 3 * t / 30)) if t < 30 else 0.0 for t in range(1, n)]
    return [b, *tanh]


def timm_plateau(b: float, n: int) -> list[float]:
    warm = [1e-3 + t * (b - 1e-3) / 3 for t in range(4)]
    # After the warmup, timm's plateau judges the metric given with each step(epoch, metric), epoch >= 4.
    after = _plateau(b, [metric_at(e) for e in range(n)], 0.5, 3, start=3)
    return (warm + after[3 : n - 1])[:n]


def chained(b: float, n: int) -> list[float]:
    mark = round(0.5 * n)
    out = []
    for e in range(n):
        if e <= 5:
            out.append(b * (0.2 + 0.8 * e / 5))
        else:
            out.append(b * 0.1 ** ((e - 5) >= mark))
    return out


def _section(class_name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": class_name.lower(), "class_name": class_name, "args": args, "checkpoint": None}


CASES: dict[str, tuple[dict[str, Any], Reference]] = {
    "StepLR float step_size": (_section("StepLR", {"step_size": 0.1, "gamma": 0.5}), step_lr),
    "StepLR int step_size": (_section("StepLR", {"step_size": 7, "gamma": 0.5}), step_lr_int),
    "MultiStepLR float milestones": (
        _section("MultiStepLR", {"milestones": [0.3, 0.6, 0.9], "gamma": 0.1}),
        multistep_lr,
    ),
    "LinearLR without total_iters": (_section("LinearLR", {"start_factor": 0.1}), linear_lr),
    "CosineAnnealingWarmRestarts": (
        _section("CosineAnnealingWarmRestarts", {"T_0": 10, "T_mult": 2, "eta_min": 1e-4}),
        warm_restarts,
    ),
    "ReduceLROnPlateau": (_section("ReduceLROnPlateau", {"factor": 0.5, "patience": 3}), reduce_on_plateau),
    "PolynomialLRDecay": (
        _section("PolynomialLRDecay", {"end_learning_rate": 1e-4, "power": 2.0}),
        polynomial_lr_decay,
    ),
    "CosineAnnealingWarmupReduceRestarts": (
        _section(
            "CosineAnnealingWarmupReduceRestarts",
            {
                "first_cycle_steps": 20,
                "cycle_mult": 1.5,
                "max_lr": 0.1,
                "min_lr": 1e-4,
                "warmup_steps": 4,
                "gamma": 0.5,
            },
        ),
        warmup_reduce_restarts,
    ),
    "timm_CosineLRScheduler": (
        _section(
            "timm_CosineLRScheduler",
            {
                "t_initial": 30,
                "lr_min": 1e-5,
                "warmup_t": 3,
                "warmup_lr_init": 1e-4,
                "noise_range_t": [0.4, 0.8],
                "noise_pct": 0.1,
                "noise_seed": 7,
            },
        ),
        timm_cosine,
    ),
    "timm_PolyLRScheduler": (_section("timm_PolyLRScheduler", {"t_initial": 20, "power": 0.9}), timm_poly),
    "timm_StepLRScheduler": (
        _section("timm_StepLRScheduler", {"decay_t": 10, "decay_rate": 0.5, "warmup_t": 2, "warmup_lr_init": 1e-3}),
        timm_step,
    ),
    "timm_MultiStepLRScheduler": (
        _section("timm_MultiStepLRScheduler", {"decay_t": [10, 20], "decay_rate": 0.5}),
        timm_multistep,
    ),
    "timm_TanhLRScheduler": (_section("timm_TanhLRScheduler", {"t_initial": 30}), timm_tanh),
    "timm_PlateauLRScheduler": (
        _section(
            "timm_PlateauLRScheduler",
            {"decay_rate": 0.5, "patience_t": 3, "mode": "min", "warmup_t": 3, "warmup_lr_init": 1e-3},
        ),
        timm_plateau,
    ),
    "ChainedScheduler step_ranges": (
        _section(
            "ChainedScheduler",
            {
                "step_ranges": [[0, 6], [6, 100000]],
                "schedulers": [
                    _section("LinearLR", {"start_factor": 0.2, "total_iters": 5}),
                    _section("MultiStepLR", {"milestones": [0.5], "gamma": 0.1}),
                ],
            },
        ),
        chained,
    ),
}
METRIC_DRIVEN = {"ReduceLROnPlateau", "timm_PlateauLRScheduler"}


@pytest.mark.filterwarnings("ignore:PlateauLRScheduler is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore::optforge.lr_schedulers.TemplateRuleWarning")
@pytest.mark.parametrize("epochs", [200, 37])
@pytest.mark.parametrize("case", sorted(CASES))
def test_epoch_scheduler_lrs_equal_the_template_builder(case: str, epochs: int) -> None:
    section, reference = CASES[case]
    opt = make_optimizer()
    iter_scheduler, scheduler = build_template_schedulers(
        {"epoch_scheduler": section, "iter_scheduler": None}, opt, epoch=epochs, max_iter=epochs * 50
    )
    assert iter_scheduler is None
    if case in METRIC_DRIVEN:
        got = run(opt, lambda k: scheduler.step(metric_at(k)), epochs)
    else:
        got = run(opt, lambda k: scheduler.step(), epochs)
    bases = [0.1, 0.05] if case != "CosineAnnealingWarmupReduceRestarts" else [None, None]
    for index, base in enumerate(bases):
        want = reference(0.1 if base is None else base, epochs)
        assert [row[index] for row in got] == pytest.approx(want, rel=1e-9, abs=1e-15), case


def test_the_iteration_scheduler_runs_over_max_iter() -> None:
    opt = make_optimizer()
    doc = {"epoch_scheduler": None, "iter_scheduler": _section("LinearLR", {"start_factor": 0.01})}
    iter_scheduler, epoch_scheduler = build_template_schedulers(doc, opt, epoch=10, max_iter=500)
    assert epoch_scheduler is None
    assert iter_scheduler.total_iters == 500


def test_both_schedulers_report_every_problem_at_once() -> None:
    from optforge.errors import ConfigError

    doc = {
        "epoch_scheduler": _section("MultiStepLR", {"milestones": ["half"], "gama": 0.1}),
        "iter_scheduler": _section("CosineAnealingLR", {"T_max": 10}),
    }
    with pytest.raises(ConfigError) as info:
        build_template_schedulers(doc, make_optimizer(), epoch=10, max_iter=100)
    paths = [path for path, _ in info.value.problems]
    assert paths == ["epoch_scheduler.args.milestones[0]", "epoch_scheduler.args.gama", "iter_scheduler.class_name"]
    assert "did you mean 'gamma'?" in str(info.value)
    assert "did you mean 'CosineAnnealingLR'?" in str(info.value)
