"""build_optimizer: every torch optimizer from a flat config, every kind of input and config source."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import optforge
from optforge.config import AdagradConfig, AdamConfig, OptimizerConfig, SgdConfig
from optforge.errors import ConfigError
from tests.conftest import regression_batch

TORCH_ENTRIES = optforge.optimizer_entries(provider="torch")


def _model_for(entry: optforge.OptimizerEntry) -> nn.Module:
    if entry.needs_sparse_grad:
        return nn.Embedding(10, 4, sparse=True)
    if entry.matrix_params_only:
        return nn.Linear(8, 1, bias=False)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def _loss(model: nn.Module) -> torch.Tensor:
    if isinstance(model, nn.Embedding):
        return model(torch.tensor([1, 2, 3])).pow(2).mean()
    x, y = regression_batch()
    return nn.functional.mse_loss(model(x), y)


@pytest.mark.parametrize("entry", TORCH_ENTRIES, ids=lambda e: e.name)
def test_every_torch_optimizer_builds_from_a_flat_config_and_steps(entry: optforge.OptimizerEntry) -> None:
    model = _model_for(entry)
    opt = optforge.build_optimizer(model, {"name": entry.name, "lr": 0.01})
    assert isinstance(opt, entry.resolve_class())
    for key, value in entry.defaults.items():
        assert opt.defaults[key] == value
    before = [p.detach().clone() for p in model.parameters()]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        return loss

    for _ in range(3):
        if entry.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
    after = list(model.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after)), "the step changed no parameter"
    assert all(torch.isfinite(p).all() for p in after)


def test_flat_config_passes_hyperparameters_and_tuples(mlp: nn.Module) -> None:
    opt = optforge.build_optimizer(mlp, {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]})
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.999)
    assert isinstance(opt.defaults["betas"], tuple)
    assert opt.defaults["weight_decay"] == 0.01
    assert opt.param_groups[0]["lr"] == 1e-3


def test_nested_tuples_are_converted_too() -> None:
    w = nn.Parameter(torch.ones(3, 3))
    opt = optforge.build_optimizer([w], {"name": "Adafactor", "eps": [None, 0.01]})
    assert opt.defaults["eps"] == (None, 0.01)


def test_frozen_parameters_are_left_out(mlp: nn.Module) -> None:
    mlp[0].weight.requires_grad_(False)
    opt = optforge.build_optimizer(mlp, {"name": "SGD", "lr": 0.1})
    ids = {id(p) for p in opt.param_groups[0]["params"]}
    assert id(mlp[0].weight) not in ids
    assert len(ids) == len([p for p in mlp.parameters() if p.requires_grad])


def test_iterables_of_tensors_and_named_pairs(mlp: nn.Module) -> None:
    opt = optforge.build_optimizer(iter(list(mlp.parameters())), {"name": "SGD", "lr": 0.1})
    assert len(opt.param_groups[0]["params"]) == 6
    opt = optforge.build_optimizer(mlp.named_parameters(), {"name": "SGD", "lr": 0.1})
    assert len(opt.param_groups[0]["params"]) == 6


def test_param_group_dicts_keep_their_own_settings(mlp: nn.Module) -> None:
    groups = [
        {"params": list(mlp[0].parameters()), "lr": 0.5, "name": "first"},
        {"params": list(mlp[3].parameters())},
        {"params": list(mlp[1].parameters()), "weight_decay": 0.0, "betas": [0.5, 0.6]},
    ]
    opt = optforge.build_optimizer(groups, {"name": "AdamW", "lr": 0.01, "weight_decay": 0.1})
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.01, 0.01]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.1, 0.0]
    assert opt.param_groups[2]["betas"] == (0.5, 0.6)
    assert opt.param_groups[0]["name"] == "first"


def test_bad_values_in_param_group_dicts_name_the_group(mlp: nn.Module) -> None:
    groups = [{"params": list(mlp[0].parameters())}, {"params": list(mlp[3].parameters()), "betas": [0.9, 1.0]}]
    with pytest.raises(ConfigError, match=r"param_groups\[1\]\.betas\[1\]: must be in \[0, 1\), got 1.0"):
        optforge.build_optimizer(groups, {"name": "AdamW"})


def test_param_group_dicts_take_a_tensor_lr_as_torch_does(mlp: nn.Module) -> None:
    lr = torch.tensor(1e-3)
    groups = [{"params": list(mlp[0].parameters()), "lr": lr}, {"params": list(mlp[3].parameters())}]
    opt = optforge.build_optimizer(groups, {"name": "AdamW", "lr": 0.01})
    assert opt.param_groups[0]["lr"] is lr
    mlp(torch.randn(4, 8)).sum().backward()
    opt.step()
    with pytest.raises(ConfigError, match=r"param_groups\[0\]\.lr: must be >= 0.0, got -1.0"):
        optforge.build_optimizer([{"params": list(mlp[0].parameters()), "lr": torch.tensor(-1.0)}], {"name": "AdamW"})
    with pytest.raises(ConfigError, match=r"param_groups\[0\]\.lr: expected a number or a 1-element floating-point"):
        optforge.build_optimizer([{"params": list(mlp[0].parameters()), "lr": torch.ones(2)}], {"name": "AdamW"})


def test_a_typo_of_a_hyperparameter_in_a_group_dict_is_an_error(mlp: nn.Module) -> None:
    groups = [
        {"params": list(mlp[0].parameters()), "lrr": 0.5, "name": "first", "layer": 3},
        {"params": list(mlp[3].parameters()), "wieght_decay": 0.0, "betas": [0.9, 1.0]},
    ]
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(groups, {"name": "AdamW"})
    assert [path for path, _ in info.value.problems] == [
        "param_groups[0].lrr",
        "param_groups[1].wieght_decay",
        "param_groups[1].betas[1]",
    ]
    assert "did you mean 'lr'?" in info.value.problems[0][1]
    assert "did you mean 'weight_decay'?" in info.value.problems[1][1]
    # Keys that are no typo stay, as torch keeps them.
    labelled = [{"params": list(mlp[0].parameters()), "name": "first", "layer": 3, "initial_lr": 0.1}]
    kept = optforge.build_optimizer(labelled, {"name": "AdamW"})
    assert kept.param_groups[0]["layer"] == 3


def test_empty_parameters_are_an_error(mlp: nn.Module) -> None:
    with pytest.raises(ConfigError, match="no trainable parameters"):
        optforge.build_optimizer([], {"name": "SGD", "lr": 0.1})
    for p in mlp.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match=r"no trainable parameters.*requires_grad=False"):
        optforge.build_optimizer(mlp, {"name": "SGD", "lr": 0.1})


# --- config sources -------------------------------------------------------------------------------


@dataclass
class DataclassConfig:
    name: str = "RMSprop"
    lr: float = 0.02
    alpha: float = 0.9


def test_every_config_source_builds_the_same_optimizer(mlp: nn.Module, tmp_path) -> None:
    mapping = {"name": "RMSprop", "lr": 0.02, "alpha": 0.9}
    path = tmp_path / "opt.yaml"
    path.write_text("optimizer:\n  name: RMSprop\n  lr: 2e-2\n  alpha: 0.9\n")
    sources = [
        mapping,
        OmegaConf.create(mapping),
        OmegaConf.create({"optimizer": mapping}),
        str(path),
        path,
        DataclassConfig(),
        optforge.config.FlatOptimizerConfig(**mapping),
    ]
    built = [optforge.build_optimizer(mlp, source) for source in sources]
    for opt in built:
        assert type(opt) is torch.optim.RMSprop
        assert opt.defaults == built[0].defaults


def test_yaml_exponent_floats_are_numbers(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: Adam\nlr: 1e-3\neps: 1.0e-8\n")
    assert optforge.load_config(path) == {"name": "Adam", "lr": 0.001, "eps": 1e-8}


def test_missing_or_invalid_yaml_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        optforge.build_optimizer(nn.Linear(1, 1), str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [Adam\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        optforge.build_optimizer(nn.Linear(1, 1), bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="a config must be a mapping"):
        optforge.build_optimizer(nn.Linear(1, 1), scalar)


# --- the typed configs of the recommender-system design -------------------------------------------

TYPED_CASES = [
    (OptimizerConfig(adam=AdamConfig(lr=1e-3)), {"adam": {"lr": 1e-3}}, torch.optim.Adam),
    (
        OptimizerConfig(sgd=SgdConfig(lr=0.1, momentum=0.9), learning_rate={"constant": 0.1}),
        {"sgd": {"lr": 0.1, "momentum": 0.9}, "learning_rate": {"constant": 0.1}},
        torch.optim.SGD,
    ),
    (OptimizerConfig(adagrad=AdagradConfig(lr=0.05)), {"adagrad": {"lr": 0.05}}, torch.optim.Adagrad),
]


@pytest.mark.parametrize(("typed", "mapping", "cls"), TYPED_CASES, ids=["adam", "sgd", "adagrad"])
def test_typed_configs_and_their_mappings_build_identical_optimizers(typed, mapping, cls, mlp: nn.Module) -> None:
    assert optforge.get_optimizer_class(typed) is cls
    assert optforge.get_optimizer_class(mapping) is cls
    from_typed = optforge.build_optimizer(mlp, typed)
    from_mapping = optforge.build_optimizer(mlp, mapping)
    assert type(from_typed) is type(from_mapping) is cls
    assert from_typed.defaults == from_mapping.defaults


def test_typed_adam_passes_its_own_kwargs_not_sgds(mlp: nn.Module) -> None:
    opt = optforge.build_optimizer(mlp, OptimizerConfig(adam=AdamConfig(lr=1e-3, betas=(0.8, 0.9))))
    assert opt.defaults["betas"] == (0.8, 0.9)
    assert opt.defaults["eps"] == 1e-7  # the design's default, not torch's 1e-8
    assert "momentum" not in opt.defaults
    adagrad = optforge.build_optimizer(mlp, {"adagrad": {"lr": 0.1}})
    assert adagrad.defaults["eps"] == 0.0


def test_one_of_with_zero_or_two_optimizers_is_an_error() -> None:
    with pytest.raises(ConfigError, match="exactly one of adam, sgd, adagrad; got adam and sgd"):
        optforge.get_optimizer_class({"adam": {"lr": 1e-3}, "sgd": {"lr": 0.1}})
    with pytest.raises(ConfigError, match="exactly one of adam, sgd, adagrad; got none"):
        optforge.get_optimizer_class({"learning_rate": {"constant": 0.1}})


def test_typed_config_errors_carry_paths() -> None:
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(nn.Linear(1, 1), {"optimizer": {"adam": {"lr": 1e-3, "betas": [0.9, 1.5]}}})
    assert str(info.value) == "optimizer.adam.betas[1]: Input should be less than 1 (got 1.5)"
    with pytest.raises(ConfigError, match=r"optimizer\.sgd\.momentun: unknown key; did you mean 'momentum'\?"):
        optforge.build_optimizer(nn.Linear(1, 1), {"optimizer": {"sgd": {"lr": 0.1, "momentun": 0.9}}})
