"""``CosineAnnealingWarmupReduceRestarts`` gives the lrs of the training template's trainer.

The template's trainer calls ``scheduler.step(epoch=k, metric=loss)`` after epoch
``k`` (``k`` from 1), and with an epoch the template's class makes cycle ``n``
last ``first * mult ** n`` steps; a bare ``step()`` grows each cycle by
``int((length - warmup) * mult) + warmup`` instead. The references below are
those two rules written out from the template's description.
"""

from __future__ import annotations

import io
import math
import pickle
from typing import Any

import pytest
import torch

from optforge.compat import template
from optforge.lr_schedulers import CosineAnnealingWarmupReduceRestarts, build_template_schedulers
from tests.lr_schedulers._common import make_optimizer, metric_at, run

# (first_cycle_steps, cycle_mult, max_lr, min_lr, warmup_steps, gamma)
PARAMETERS: dict[str, tuple[int, float, float, float, int, float]] = {
    "mult 1, warmup 5, gamma 0.5": (10, 1.0, 0.1, 1e-4, 5, 0.5),
    "mult 2, warmup 5, gamma 0.5": (10, 2.0, 0.1, 1e-4, 5, 0.5),
    "mult 2, warmup 0": (10, 2.0, 0.1, 1e-4, 0, 1.0),
    "mult 1.5, warmup 4, gamma 0.5": (20, 1.5, 0.1, 1e-4, 4, 0.5),
    "mult 1.5, warmup 0, gamma 0.5": (7, 1.5, 0.05, 0.0, 0, 0.5),
}
STEPPINGS = ("step()", "step(epoch=k)", "step(epoch=k, metric=loss)")


def _cosine(within: float, length: float, peak: float, low: float, warmup: int) -> float:
    if within < warmup:
        return (peak - low) * within / warmup + low
    return low + (peak - low) * (1 + math.cos(math.pi * (within - warmup) / (length - warmup))) / 2


def template_epoch_lr(
    k: int, first: int, mult: float, max_lr: float, min_lr: float, warmup: int, gamma: float
) -> float:
    """The lr after the template's ``step(epoch=k)``; ``min_lr`` before the first step."""
    if k == 0:
        return min_lr
    if k < first:
        cycle, within, length = 0, k, first
    elif mult == 1.0:
        cycle, within, length = k // first, k % first, first
    else:
        n = int(math.log(k / first * (mult - 1) + 1, mult))
        cycle, within, length = n, k - int(first * (mult**n - 1) / (mult - 1)), first * mult**n
    return _cosine(within, length, max_lr * gamma**cycle, min_lr, warmup)


def template_step_lrs(steps: int, first: int, mult: float, max_lr: float, min_lr: float, warmup: int, gamma: float):
    """The lrs the template's bare ``step()`` gives, from construction on (``steps`` values)."""
    out, within, length, cycle = [min_lr], 0, first, 0
    for _ in range(1, steps):
        within += 1
        if within >= length:
            cycle, within = cycle + 1, within - length
            length = int((length - warmup) * mult) + warmup
        out.append(_cosine(within, length, max_lr * gamma**cycle, min_lr, warmup))
    return out


def _args(name: str) -> dict[str, Any]:
    first, mult, max_lr, min_lr, warmup, gamma = PARAMETERS[name]
    return {
        "first_cycle_steps": first,
        "cycle_mult": mult,
        "max_lr": max_lr,
        "min_lr": min_lr,
        "warmup_steps": warmup,
        "gamma": gamma,
    }


def _document(name: str, key: str = "epoch_scheduler") -> dict[str, Any]:
    section = {"name": "cycles", "class_name": "CosineAnnealingWarmupReduceRestarts", "args": _args(name)}
    other = "iter_scheduler" if key == "epoch_scheduler" else "epoch_scheduler"
    return {key: {**section, "checkpoint": None}, other: None}


def _stepper(scheduler: Any, stepping: str):
    # run() calls it after epoch k (0-based): the trainer's epoch count is k + 1.
    if stepping == "step()":
        return lambda k: scheduler.step()
    if stepping == "step(epoch=k)":
        return lambda k: scheduler.step(epoch=k + 1)
    return lambda k: scheduler.step(epoch=k + 1, metric=metric_at(k))


def _want(name: str, epochs: int) -> list[list[float]]:
    return [[template_epoch_lr(e, *PARAMETERS[name])] * 2 for e in range(epochs)]


@pytest.mark.parametrize("stepping", STEPPINGS)
@pytest.mark.parametrize("epochs", [200, 37])
@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_template_document_gives_the_trainer_lrs(name: str, epochs: int, stepping: str) -> None:
    optimizer = make_optimizer()
    iter_scheduler, scheduler = build_template_schedulers(_document(name), optimizer, epoch=epochs, max_iter=10)
    assert iter_scheduler is None
    assert run(optimizer, _stepper(scheduler, stepping), epochs) == _want(name, epochs)


@pytest.mark.parametrize("stepping", STEPPINGS)
@pytest.mark.parametrize("epochs", [200, 37])
@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_compat_build_lr_scheduler_gives_the_trainer_lrs(name: str, epochs: int, stepping: str) -> None:
    optimizer = make_optimizer()
    iter_scheduler, scheduler = template.build_lr_scheduler(_document(name), optimizer, epochs, 10)
    assert iter_scheduler is None
    assert run(optimizer, _stepper(scheduler, stepping), epochs) == _want(name, epochs)


def test_the_iteration_scheduler_takes_the_trainer_count_too() -> None:
    name = "mult 2, warmup 5, gamma 0.5"
    optimizer = make_optimizer()
    iter_scheduler, epoch_scheduler = template.build_lr_scheduler(_document(name, "iter_scheduler"), optimizer, 4, 150)
    assert epoch_scheduler is None
    got = run(optimizer, lambda i: iter_scheduler.step(epoch=i + 1, metric=0.5), 150)
    assert got == _want(name, 150)


def test_the_lrs_differ_from_the_bare_step_recurrence_from_epoch_16() -> None:
    # first 10, mult 2, warmup 5: the template's step() makes cycles 10, 15, 25...; its step(epoch=k) 10, 20, 40...
    parameters = PARAMETERS["mult 2, warmup 5, gamma 0.5"]
    trainer = [template_epoch_lr(e, *parameters) for e in range(200)]
    recurrence = template_step_lrs(200, *parameters)
    assert trainer[:16] == recurrence[:16]
    assert trainer[16] != recurrence[16]
    optimizer = make_optimizer()
    _, scheduler = build_template_schedulers(
        _document("mult 2, warmup 5, gamma 0.5"), optimizer, epoch=200, max_iter=10
    )
    assert [row[0] for row in run(optimizer, lambda k: scheduler.step(), 200)] == trainer


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_the_class_follows_the_call_as_the_template_class_does(name: str) -> None:
    # Built directly, step() gives the recurrence and step(epoch=k) the epoch lengths.
    bare, by_epoch = make_optimizer(), make_optimizer()
    stepped = CosineAnnealingWarmupReduceRestarts(bare, **_args(name))
    told = CosineAnnealingWarmupReduceRestarts(by_epoch, **_args(name))
    assert [row[0] for row in run(bare, lambda k: stepped.step(), 120)] == template_step_lrs(120, *PARAMETERS[name])
    assert run(by_epoch, lambda k: told.step(epoch=k + 1), 120) == _want(name, 120)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_cycle_lengths_fixes_the_lengths_whichever_way_it_is_stepped(name: str) -> None:
    epoch_opt, step_opt = make_optimizer(), make_optimizer()
    epochs = CosineAnnealingWarmupReduceRestarts(epoch_opt, **_args(name), cycle_lengths="epoch")
    steps = CosineAnnealingWarmupReduceRestarts(step_opt, **_args(name), cycle_lengths="step")
    assert run(epoch_opt, lambda k: epochs.step(), 120) == _want(name, 120)
    assert [row[0] for row in run(step_opt, lambda k: steps.step(epoch=k + 1), 120)] == template_step_lrs(
        120, *PARAMETERS[name]
    )


def _saved(scheduler: Any) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("stepping", STEPPINGS)
@pytest.mark.parametrize("name", ["mult 2, warmup 5, gamma 0.5", "mult 1.5, warmup 4, gamma 0.5"])
def test_a_resumed_template_scheduler_continues_with_the_trainer_lrs(name: str, stepping: str) -> None:
    epochs, save_at = 120, 37
    optimizer = make_optimizer()
    _, scheduler = template.build_lr_scheduler(_document(name), optimizer, epochs, 10)
    first = run(optimizer, _stepper(scheduler, stepping), save_at)
    state = _saved(scheduler)
    assert pickle.loads(pickle.dumps(state)) == state
    fresh = make_optimizer()
    _, resumed = template.build_lr_scheduler(_document(name), fresh, epochs, 10)
    resumed.load_state_dict(state)
    second = run(fresh, _stepper(resumed, stepping), epochs - save_at, start=save_at)
    assert first + second == _want(name, epochs)


def test_a_template_checkpoint_file_resumes_the_trainer_lrs(tmp_path: Any) -> None:
    name, epochs, save_at = "mult 2, warmup 5, gamma 0.5", 90, 30
    optimizer = make_optimizer()
    _, scheduler = build_template_schedulers(_document(name), optimizer, epoch=epochs, max_iter=10)
    first = run(optimizer, lambda k: scheduler.step(epoch=k + 1, metric=0.1), save_at)
    torch.save(scheduler.state_dict(), tmp_path / "scheduler.pt")
    document = _document(name)
    document["epoch_scheduler"]["checkpoint"] = str(tmp_path / "scheduler.pt")
    fresh = make_optimizer()
    _, resumed = build_template_schedulers(document, fresh, epoch=epochs, max_iter=10)
    second = run(fresh, lambda k: resumed.step(), epochs - save_at, start=save_at)
    assert first + second == _want(name, epochs)


def test_the_class_resumes_in_the_form_it_was_stepped() -> None:
    name = "mult 2, warmup 5, gamma 0.5"
    optimizer = make_optimizer()
    scheduler = CosineAnnealingWarmupReduceRestarts(optimizer, **_args(name))
    for k in range(1, 24):
        scheduler.step(epoch=k)
    fresh = make_optimizer()
    resumed = CosineAnnealingWarmupReduceRestarts(fresh, **_args(name))
    resumed.load_state_dict(_saved(scheduler))
    assert resumed.get_last_lr() == [template_epoch_lr(23, *PARAMETERS[name])] * 2
    assert [group["lr"] for group in fresh.param_groups] == resumed.get_last_lr()


def test_cycle_lengths_is_checked_in_a_config() -> None:
    from optforge.errors import ConfigError
    from optforge.scheduler import build_scheduler

    section = {"name": "CosineAnnealingWarmupReduceRestarts", "first_cycle_steps": 10, "cycle_lengths": "epochs"}
    with pytest.raises(ConfigError, match=r"cycle_lengths: expected one of 'by_call', 'epoch', 'step'"):
        build_scheduler(make_optimizer(), section)


def test_a_state_saved_before_cycle_lengths_existed_still_loads(tmp_path: Any) -> None:
    name = "mult 2, warmup 5, gamma 0.5"
    optimizer = make_optimizer()
    _, scheduler = build_template_schedulers(_document(name), optimizer, epoch=90, max_iter=10)
    for k in range(1, 31):
        scheduler.step(epoch=k)
    old = {key: value for key, value in scheduler.state_dict().items() if key not in ("cycle_lengths", "by_epoch")}
    torch.save(old, tmp_path / "old.pt")
    document = _document(name)
    document["epoch_scheduler"]["checkpoint"] = str(tmp_path / "old.pt")
    fresh = make_optimizer()
    _, resumed = build_template_schedulers(document, fresh, epoch=90, max_iter=10)
    assert resumed.cycle_lengths == "epoch"
    assert run(fresh, lambda k: resumed.step(), 60, start=30) == _want(name, 90)[30:]
