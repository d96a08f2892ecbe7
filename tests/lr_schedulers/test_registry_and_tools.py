"""The scheduler registry, user registrations, the CLI listing, tracing and the Lightning settings."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import optforge
from optforge.cli import app
from optforge.errors import ConfigError
from optforge.lr_schedulers import get_scheduler_entry, unregister_scheduler
from optforge.scheduler import scheduler_trace
from optforge.schedules import make_schedule
from tests.lr_schedulers._common import fit_recording_lrs, make_optimizer


def test_names_are_case_insensitive_and_entries_are_data() -> None:
    entry = get_scheduler_entry("reducelronplateau")
    assert entry.name == "ReduceLROnPlateau"
    assert entry.provider == "torch"
    assert entry.metric
    assert get_scheduler_entry("SEQUENTIALLR").nested == ("schedulers",)
    assert get_scheduler_entry("onecyclelr").lengths() == ("total_steps",)
    assert get_scheduler_entry("CosineAnnealingWarmRestarts").lengths() == ("T_0",)  # T_mult is a factor
    assert {"PolynomialLRDecay", "CosineAnnealingWarmupReduceRestarts"} <= set(
        optforge.list_schedulers(provider="optforge")
    )


def test_users_register_their_own_by_call_or_decorator() -> None:
    @optforge.register_scheduler(name="Halving", aliases=["halve"], length_args=("every",))
    class Halving(torch.optim.lr_scheduler.StepLR):
        """Halve the lr every ``every`` steps."""

        def __init__(self, optimizer: torch.optim.Optimizer, every: int) -> None:
            super().__init__(optimizer, step_size=every, gamma=0.5)

    optforge.register_scheduler(torch.optim.lr_scheduler.ExponentialLR, name="Slow", defaults={"gamma": 0.999})
    try:
        assert optforge.list_schedulers("halv*") == ["Halving"]
        assert scheduler_trace({"name": "halve", "every": {"fraction": 0.5}}, 4) == {"lr": [1.0, 1.0, 0.5, 0.5]}
        assert optforge.build_scheduler(make_optimizer(), {"name": "slow"}).gamma == 0.999
        with pytest.raises(ConfigError, match=r"schedule\.evry: unknown argument for Halving; did you mean 'every'\?"):
            optforge.build_scheduler(make_optimizer(), {"name": "Halving", "evry": 3})
        with pytest.raises(ConfigError, match="already registered"):
            optforge.register_scheduler(Halving)
    finally:
        unregister_scheduler("Halving")
        unregister_scheduler("Slow")
    assert optforge.list_schedulers("halv*") == []


def warm_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup, then cosine: a function that builds a scheduler registers as a class does."""
    warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, cosine], milestones=[warmup])


def test_a_registered_function_is_checked_against_its_own_signature() -> None:
    optforge.register_scheduler(warm_cosine, name="WarmCosine", length_args=("warmup", "total"))
    try:
        scheduler = optforge.build_scheduler(make_optimizer(), {"name": "warmcosine", "warmup": 5, "total": 50})
        assert isinstance(scheduler, torch.optim.lr_scheduler.SequentialLR)
        with pytest.raises(ConfigError, match=r"schedule\.total: required argument of WarmCosine is missing"):
            optforge.build_scheduler(make_optimizer(), {"name": "WarmCosine", "warmup": 5})
    finally:
        unregister_scheduler("WarmCosine")


def test_the_cli_lists_schedulers() -> None:
    result = CliRunner().invoke(app, ["list", "--schedulers", "plateau"])
    assert result.exit_code == 0, result.output
    assert "ReduceLROnPlateau" in result.output
    assert "steps on a metric" in result.output
    assert "AdamW" not in result.output
    missing = CliRunner().invoke(app, ["list", "--schedulers", "nothing-like-this"])
    assert missing.exit_code == 1


def test_trace_steps_a_throwaway_optimizer_and_a_plateau_needs_metrics() -> None:
    trace = scheduler_trace({"name": "CosineAnnealingLR", "T_max": {"fraction": 1.0}}, 12, total_steps=10, lr=2.0)
    assert trace["lr"][0] == 2.0
    assert trace["lr"][10] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="decides on a metric: give one metric value per step"):
        scheduler_trace({"name": "ReduceLROnPlateau"}, 10)
    flat = scheduler_trace({"name": "ReduceLROnPlateau", "warmup_steps": 4, "patience": 1}, 10, metric=lambda k: 1.0)
    assert flat["lr"] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01])


def test_optforge_warmup_can_replace_the_first_values_as_timm_does() -> None:
    timm_scheduler = pytest.importorskip("timm.scheduler")
    cosine = {"cosine_decay": {"peak_value": 0.1, "end_value": 0.001, "decay_steps": 50}}
    replacing = make_schedule({"warmup": {"warmup_steps": 5, "init_value": 0.01, "prefix": False, "schedule": cosine}})
    shifting = make_schedule({"warmup": {"warmup_steps": 5, "init_value": 0.01, "schedule": cosine}})
    timm = timm_scheduler.CosineLRScheduler(make_optimizer(groups=1), 50, lr_min=0.001, warmup_t=5, warmup_lr_init=0.01)
    assert [replacing(t) for t in range(60)] == pytest.approx([timm._get_lr(t)[0] for t in range(60)], rel=1e-12)
    assert shifting(5) == 0.1
    assert replacing(5) < 0.1
    assert shifting(55) == replacing(50) == 0.001


def _configure(schedule: dict[str, Any]) -> dict[str, Any]:
    from optforge.integrations.lightning import configure_optimizers

    return configure_optimizers(torch.nn.Linear(2, 1), {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": schedule})


def test_lightning_reads_interval_frequency_and_monitor_from_the_section() -> None:
    pytest.importorskip("lightning")
    settings = _configure({"name": "StepLR", "step_size": 3, "interval": "epoch", "frequency": 2})["lr_scheduler"]
    assert (settings["interval"], settings["frequency"]) == ("epoch", 2)
    assert "monitor" not in settings
    plateau = _configure({"name": "ReduceLROnPlateau", "warmup_steps": 2, "interval": "epoch", "monitor": "val_loss"})
    assert plateau["lr_scheduler"]["monitor"] == "val_loss"
    assert plateau["lr_scheduler"]["reduce_on_plateau"]
    with pytest.raises(ConfigError, match=r"schedule\.monitor: ReduceLROnPlateau steps on a metric"):
        _configure({"name": "ReduceLROnPlateau"})
    assert _configure({"constant": 0.1})["lr_scheduler"]["interval"] == "step"


def test_lightning_fits_with_a_warmup_then_plateau(tmp_path: Any) -> None:
    schedule = {"name": "ReduceLROnPlateau", "warmup_steps": 2, "patience": 0, "interval": "epoch"}
    seen = fit_recording_lrs(tmp_path, {**schedule, "monitor": "val_loss"}, max_epochs=5)
    per_epoch = seen[::2]
    assert per_epoch == pytest.approx([0.0, 0.05, 0.1, 0.1, 0.01])
