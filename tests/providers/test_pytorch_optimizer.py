"""The pytorch-optimizer provider: every supported name, built and stepped."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from optforge.providers.pytorch_optimizer import muon_groups
from tests.providers._training import Run, assert_stepped

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

ENTRIES = optforge.optimizer_entries(provider="pytorch_optimizer")
UNAVAILABLE = [e for e in ENTRIES if e.unavailable_reason() is not None]

# Names whose loss must fall on the regression problem, with their config.
LEARNERS = {
    "pytorch_optimizer.ranger": {"lr": 0.1},
    "pytorch_optimizer.adabelief": {"lr": 0.01},
    "pytorch_optimizer.lamb": {"lr": 0.01},
    "pytorch_optimizer.lion": {"lr": 0.003},
    "pytorch_optimizer.lbfgs": {"lr": 0.1, "max_iter": 2},
    "pytorch_optimizer.adahessian": {"lr": 0.1},
    "pytorch_optimizer.sophiah": {"lr": 0.3},
    "pytorch_optimizer.muon": {"lr": 0.02},
    "pytorch_optimizer.prodigy": {"lr": 1.0},
    "pytorch_optimizer.soap": {"lr": 0.01},
}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_entry_builds_from_a_flat_config_and_steps(
    entry: optforge.OptimizerEntry, run_entry: Callable[..., Run]
) -> None:
    reason = entry.unavailable_reason()
    if reason is not None:
        pytest.skip(f"{entry.name}: {reason}")
    result = run_entry(entry)
    assert isinstance(result.optimizer, entry.resolve_class())
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


def test_every_supported_name_is_registered_with_its_class() -> None:
    supported = pytorch_optimizer.get_supported_optimizers()
    assert len(ENTRIES) == len(supported)
    for name in supported:
        entry = optforge.get_optimizer_entry(f"pytorch_optimizer.{name}")
        assert entry.resolve_class() is pytorch_optimizer.load_optimizer(name)
        assert entry.provider == "pytorch_optimizer"
        assert entry.description


def test_which_entries_are_unavailable_here() -> None:
    names = {e.name.removeprefix("pytorch_optimizer.") for e in UNAVAILABLE}
    assert {"demo", "distributedmuon"} <= names  # no process group in tests
    assert not {"lomo", "adalomo", "adammini"} & names  # built from the model


def test_entries_that_take_the_model() -> None:
    def flagged(flag: str, value: object = True) -> set[str]:
        return {e.name.removeprefix("pytorch_optimizer.") for e in ENTRIES if getattr(e, flag) == value}

    assert flagged("takes", "module") == {"lomo", "adalomo", "adammini"}
    assert flagged("updates_in_backward") == {"lomo", "adalomo"}


def test_capability_flags() -> None:
    def flagged(flag: str) -> set[str]:
        return {e.name.removeprefix("pytorch_optimizer.") for e in ENTRIES if getattr(e, flag)}

    assert {"lbfgs", "alig", "bsam"} <= flagged("needs_closure")
    assert flagged("needs_create_graph") == {"adahessian", "sophiah"}
    assert flagged("matrix_params_only") == {"spectralsphere"}
    assert {"adamw", "lion", "lamb", "sgdw", "stableadamw", "soap"} <= flagged("decoupled_weight_decay")
    assert not {"adam", "sgd", "adan", "madgrad", "novograd"} & flagged("decoupled_weight_decay")


def test_muon_family_gets_use_muon_groups_from_plain_parameters() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    opt = optforge.build_optimizer(model, {"name": "pytorch_optimizer.muon", "lr": 0.02, "adamw_lr": 1e-3})
    assert [(g["use_muon"], g["lr"], [p.ndim for p in g["params"]]) for g in opt.param_groups] == [
        (True, 0.02, [2, 2]),
        (False, 1e-3, [1, 1]),
    ]


def test_muon_groups_keep_group_settings_and_explicit_flags() -> None:
    w, b, v = torch.zeros(2, 2), torch.zeros(2), torch.zeros(3, 3)
    groups = muon_groups([{"params": [w, b], "weight_decay": 0.1}, {"params": [v], "use_muon": False}])
    assert [(g["use_muon"], g.get("weight_decay"), len(g["params"])) for g in groups] == [
        (True, 0.1, 1),
        (False, 0.1, 1),
        (False, None, 1),
    ]


def test_hyperparameters_are_checked_against_the_signature() -> None:
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ConfigError, match=r"optimizer\.betas\[1\]: must be in \[0, 1\)"):
        optforge.build_optimizer(model, {"name": "pytorch_optimizer.adabelief", "betas": [0.9, 1.5]})
    with pytest.raises(ConfigError, match=r"optimizer\.keep_num: expected a whole number, got 2\.5"):
        optforge.build_optimizer(model, {"name": "pytorch_optimizer.adashift", "keep_num": 2.5})


def test_unknown_names_under_the_prefix_suggest_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'pytorch_optimizer\.ranger'\?"):
        optforge.get_optimizer_entry("pytorch_optimizer.rangr")


def test_listing_filters_by_pattern_and_provider() -> None:
    assert optforge.list_optimizers("pytorch_optimizer.dadapt*") == [
        f"pytorch_optimizer.dadapt{n}" for n in ("adagrad", "adam", "adan", "lion", "sgd")
    ]
    assert optforge.list_optimizers("*ranger*", provider="pytorch_optimizer") == [
        "pytorch_optimizer.ranger",
        "pytorch_optimizer.ranger21",
    ]
