"""The timm provider: every timm registry name and optimizer class, built and stepped."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from tests.providers._training import Run, assert_stepped

timm_optim = pytest.importorskip("timm.optim")

ENTRIES = optforge.optimizer_entries(provider="timm")
AVAILABLE = [e for e in ENTRIES if e.unavailable_reason() is None]


UNAVAILABLE = [entry for entry in ENTRIES if entry.unavailable_reason() is not None]


# Names whose loss must fall on the regression problem, with their config.
LEARNERS = {
    "timm.lamb": {"lr": 0.01},
    "timm.adopt": {"lr": 0.01},
    "timm.clion": {"lr": 0.003},
    "timm.nadamw": {"lr": 0.01},
    "timm.adahessian": {"lr": 0.1},
    "timm.lookahead_adamw": {"lr": 0.01},
    "timm.sgdp": {"lr": 0.05},
    "timm.kron": {"lr": 0.01},
    "timm_Adan": {"lr": 0.01},
    "timm_MADGRAD": {"lr": 0.01},
}


def _classes(module: object) -> dict[str, type]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer
    }


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_entry_builds_from_a_flat_config_and_steps(
    entry: optforge.OptimizerEntry, run_entry: Callable[..., Run]
) -> None:
    reason = entry.unavailable_reason()
    if reason is not None:
        pytest.skip(f"{entry.name}: {reason}")
    result = run_entry(entry)
    inner = getattr(result.optimizer, "_base_optimizer", result.optimizer)  # Lookahead wraps the optimizer
    assert isinstance(inner, entry.resolve_class())
    assert_stepped(entry, result)


@pytest.mark.parametrize(("name", "config"), LEARNERS.items(), ids=list(LEARNERS))
def test_loss_falls(name: str, config: dict[str, float], run_entry: Callable[..., Run]) -> None:
    losses = run_entry(optforge.get_optimizer_entry(name), steps=25, **config).losses
    assert losses[-1] < 0.85 * losses[0], losses


@pytest.mark.parametrize("entry", UNAVAILABLE, ids=lambda e: e.name)
def test_unavailable_entries_say_why_they_cannot_be_built(entry: optforge.OptimizerEntry) -> None:
    reason = entry.unavailable_reason()
    assert reason
    with pytest.raises(ConfigError, match=re.escape(reason)):
        optforge.build_optimizer(torch.nn.Linear(2, 1), {"name": entry.name})


def test_every_timm_registry_name_is_reachable_with_its_bound_defaults() -> None:
    for listed in timm_optim.list_optimizers():
        info = timm_optim.get_optimizer_info(listed)
        for name in (f"timm.{listed}", f"timm.lookahead_{listed}"):
            entry = optforge.get_optimizer_entry(name)
            assert entry.provider == "timm"
            assert entry.description.startswith(info.description)
            assert {**entry.defaults, **(info.defaults or {})} == dict(entry.defaults)
            assert entry.needs_create_graph == info.second_order
            if not isinstance(info.opt_class, str):
                assert entry.resolve_class() is info.opt_class


def test_every_timm_optimizer_class_is_reachable_by_class_name() -> None:
    classes = _classes(timm_optim)
    assert {"Lamb", "Adan", "MADGRAD", "Lookahead"} <= set(classes)
    for name, cls in classes.items():
        assert optforge.get_optimizer_class(f"timm_{name}") is cls
        assert not optforge.get_optimizer_entry(f"timm_{name}").defaults
    assert optforge.get_optimizer_class("timm_kron") is importlib.import_module("timm.optim.kron").Kron


def test_variants_bind_timms_defaults() -> None:
    model = torch.nn.Linear(3, 2)
    adamp = optforge.build_optimizer(model, {"name": "timm.adamp", "lr": 1e-3})
    sgdp = optforge.build_optimizer(model, {"name": "timm.sgdp", "lr": 1e-3})
    assert type(adamp) is timm_optim.AdamP
    assert type(sgdp) is timm_optim.SGDP
    assert adamp.defaults["wd_ratio"] == 0.01
    assert adamp.defaults["nesterov"] is True
    assert sgdp.defaults["nesterov"] is True
    assert sgdp.defaults["momentum"] == 0.9

    clion = optforge.build_optimizer(model, {"name": "timm.clion", "lr": 1e-4})
    lion = optforge.build_optimizer(model, {"name": "timm.lion", "lr": 1e-4})
    assert type(clion) is type(lion) is timm_optim.Lion
    assert clion.defaults["caution"] is True
    assert lion.defaults["caution"] is False
    assert optforge.build_optimizer(model, {"name": "timm.clion", "caution": False}).defaults["caution"] is False

    nadamw = optforge.get_optimizer_entry("timm.nadamw")
    assert nadamw.resolve_class() is timm_optim.NAdamW
    assert not nadamw.defaults
    assert nadamw.decoupled_weight_decay


def test_aliases_and_case_reach_the_same_entry() -> None:
    assert optforge.get_optimizer_entry("timm.nesterov") is optforge.get_optimizer_entry("timm.sgd")
    assert optforge.get_optimizer_entry("TIMM.Lookahead_NesterovW").name == "timm.lookahead_sgdw"
    assert optforge.get_optimizer_entry("timm_lamb").name == "timm_Lamb"


def test_capability_flags() -> None:
    flags = {name: optforge.get_optimizer_entry(name) for name in ("timm.adahessian", "timm_Adahessian")}
    assert all(e.needs_create_graph for e in flags.values())
    decoupled = ["timm.adamw", "timm.lambw", "timm.adoptw", "timm.radamw", "timm.sgdw", "timm.adabelief", "timm_Lion"]
    coupled = ["timm.adam", "timm.lamb", "timm.adopt", "timm.radam", "timm.sgd", "timm.rmsprop"]
    assert all(optforge.get_optimizer_entry(n).decoupled_weight_decay for n in decoupled)
    assert not any(optforge.get_optimizer_entry(n).decoupled_weight_decay for n in coupled)


def test_lookahead_variants_wrap_the_plain_optimizer() -> None:
    opt = optforge.build_optimizer(torch.nn.Linear(3, 2), {"name": "timm.lookahead_lambw", "lr": 1e-3})
    assert isinstance(opt, timm_optim.Lookahead)
    assert type(opt._base_optimizer) is timm_optim.Lamb
    assert opt.defaults["decoupled_decay"] is True
    assert opt.defaults["lookahead_k"] == 6


@pytest.mark.parametrize(
    ("name", "key"),
    [("timm.kron", "foreach"), ("timm_Muon", "foreach"), ("timm.lion", "eps"), ("timm.mars", "foreach")],
)
def test_hyperparameters_a_class_does_not_take_are_errors_naming_the_valid_ones(name: str, key: str) -> None:
    accepted, _ = optforge.get_optimizer_entry(name).hyperparameters()
    with pytest.raises(ConfigError, match=rf"optimizer\.{key}: unknown hyperparameter for {re.escape(name)}") as err:
        optforge.build_optimizer(torch.nn.Linear(2, 1), {"name": name, "lr": 1e-3, key: True})
    assert "Valid hyperparameters: " + ", ".join(accepted) in str(err.value)


def test_unknown_names_under_the_prefix_suggest_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer 'timm\.lamm'; did you mean 'timm\.lamb'\?"):
        optforge.build_optimizer(torch.nn.Linear(2, 1), {"name": "timm.lamm"})
    with pytest.raises(ConfigError, match=r"did you mean 'timm_Adan'\?"):
        optforge.get_optimizer_entry("timm_Addan")


def test_listing_filters_by_pattern_and_provider() -> None:
    assert optforge.list_optimizers("timm.lamb*") == [
        "timm.lamb",
        "timm.lambc",
        "timm.lambcd",
        "timm.lambcw",
        "timm.lambw",
    ]
    names = optforge.list_optimizers(provider="timm")
    assert len(names) == len(ENTRIES)
    assert all(n.startswith(("timm.", "timm_")) for n in names)
    assert all(e.description for e in ENTRIES)


def test_a_schedule_over_lookahead_checks_and_reapplies_loaded_states() -> None:
    """Lookahead skips Optimizer.__init__, so it has no load-hook tables: the scheduler wraps its loading."""
    import copy

    from optforge.cli import validate_config

    config = {"name": "timm.lookahead_adamw", "lr": 1e-3}
    assert validate_config({"optimizer": config}) == []
    model = torch.nn.Linear(2, 2)
    schedule = {"cosine_decay": {"peak_value": 1e-3, "decay_steps": 10}}
    optimizer, scheduler = optforge.build(model, {"optimizer": config, "schedule": schedule})
    model(torch.randn(3, 2)).sum().backward()
    optimizer.step()
    scheduler.step()
    lr = optimizer.param_groups[0]["lr"]
    saved = optimizer.state_dict()
    broken = copy.deepcopy(saved)
    del broken["param_groups"][0]["lr"]
    with pytest.raises(ConfigError, match=r"param_groups\[0\]\.lr: the optimizer state has no 'lr'"):
        optimizer.load_state_dict(broken)
    other_lr = copy.deepcopy(saved)
    other_lr["param_groups"][0]["lr"] = 123.0
    optimizer.load_state_dict(other_lr)
    assert optimizer.param_groups[0]["lr"] == lr  # the schedule's lr, not the one the state held
