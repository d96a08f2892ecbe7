"""The registry: torch optimizers, presets, case-insensitive names, user registration."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import optforge
from optforge.errors import ConfigError
from optforge.providers.torch_optim import torch_optimizer_classes

EXPECTED_TORCH = [
    "Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax",
    "NAdam", "RAdam", "ASGD", "Rprop", "LBFGS", "SparseAdam",
]  # fmt: skip


def test_every_torch_optimizer_is_registered_under_its_class_name() -> None:
    names = optforge.list_optimizers(provider="torch")
    for name in EXPECTED_TORCH:
        assert name in names
    for name, cls in torch_optimizer_classes().items():  # Adafactor, Muon where torch has them
        assert optforge.get_optimizer_class(name) is cls


@pytest.mark.parametrize("name", ["adamw", "ADAMW", "AdamW", "aDaMw"])
def test_names_are_case_insensitive(name: str) -> None:
    assert optforge.get_optimizer_class(name) is torch.optim.AdamW


def test_presets_bind_sgd_defaults() -> None:
    momentum = optforge.get_optimizer_entry("Momentum")
    nesterov = optforge.get_optimizer_entry("nesterovmomentum")
    assert momentum.resolve_class() is torch.optim.SGD
    assert dict(momentum.defaults) == {"momentum": 0.9}
    assert dict(nesterov.defaults) == {"momentum": 0.9, "nesterov": True}


def test_list_optimizers_filters_by_glob_case_insensitively() -> None:
    assert optforge.list_optimizers("*adam*", provider="torch") == [
        "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "SparseAdam",
    ]  # fmt: skip
    assert optforge.list_optimizers("SGD", provider="torch") == ["SGD"]
    assert optforge.list_optimizers("no-such-*") == []


def test_entries_carry_capabilities() -> None:
    assert optforge.get_optimizer_entry("LBFGS").needs_closure
    assert optforge.get_optimizer_entry("AdamW").decoupled_weight_decay
    assert not optforge.get_optimizer_entry("Adam").decoupled_weight_decay
    assert optforge.get_optimizer_entry("SparseAdam").needs_sparse_grad


def test_register_optimizer_as_decorator_with_defaults_and_aliases() -> None:
    @optforge.register_optimizer(defaults={"momentum": 0.5}, aliases=["heavy_ball"])
    class HeavyBallSGD(torch.optim.SGD):
        """SGD with a heavy-ball default."""

    try:
        entry = optforge.get_optimizer_entry("HEAVY_BALL")
        assert entry.name == "HeavyBallSGD"
        assert entry.description == "SGD with a heavy-ball default."
        assert entry.provider == "user"
        w = torch.nn.Parameter(torch.ones(2))
        opt = optforge.build_optimizer([w], {"name": "heavy_ball", "lr": 0.1})
        assert isinstance(opt, HeavyBallSGD)
        assert opt.defaults["momentum"] == 0.5
        opt = optforge.build_optimizer([w], {"name": "heavyballsgd", "lr": 0.1, "momentum": 0.0})
        assert opt.defaults["momentum"] == 0.0  # the config overrides bound defaults
        assert "HeavyBallSGD" in optforge.list_optimizers(provider="user")
    finally:
        optforge.unregister_optimizer("HeavyBallSGD")
    with pytest.raises(ConfigError, match="unknown optimizer 'heavy_ball'"):
        optforge.get_optimizer_entry("heavy_ball")


def test_registering_a_taken_name_is_an_error_unless_overwriting() -> None:
    with pytest.raises(ConfigError, match=r"'adamw' is already registered.*overwrite=True"):
        optforge.register_optimizer(torch.optim.SGD, name="adamw")
    optforge.register_optimizer(torch.optim.SGD, name="MyOpt")
    try:
        optforge.register_optimizer(torch.optim.Adam, name="MyOpt", overwrite=True)
        assert optforge.get_optimizer_class("myopt") is torch.optim.Adam
    finally:
        optforge.unregister_optimizer("MyOpt")


def test_unknown_name_suggests_the_closest_and_how_to_list() -> None:
    with pytest.raises(ConfigError) as info:
        optforge.get_optimizer_class("AdamWW")
    message = str(info.value)
    assert message.startswith("optimizer.name: unknown optimizer 'AdamWW'")
    assert "did you mean 'AdamW'?" in message
    assert "optforge.list_optimizers()" in message
    assert info.value.path == "optimizer.name"


def test_unknown_provider_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown provider 'torc'; did you mean 'torch'"):
        optforge.list_optimizers(provider="torc")


def test_import_optforge_is_light() -> None:
    code = (
        "import sys, optforge\n"
        "heavy = {'timm', 'matplotlib', 'pytorch_optimizer', 'lightning', 'hydra', 'plotext', 'torchvision'}\n"
        "optforge.build_optimizer([__import__('torch').zeros(1, requires_grad=True)], {'name': 'SGD', 'lr': 0.1})\n"
        "loaded = sorted(m for m in heavy if m in sys.modules)\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@settings(max_examples=40, deadline=None)
@given(
    cls=st.one_of(
        st.integers(),
        st.floats(allow_nan=True),
        st.booleans(),
        st.binary(max_size=4),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
    name=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
    kind=st.sampled_from(["optimizer", "scheduler"]),
)
def test_registering_something_that_cannot_be_called_is_one_config_error(cls, name, kind) -> None:
    register = optforge.register_optimizer if kind == "optimizer" else optforge.register_scheduler
    listed = optforge.list_optimizers if kind == "optimizer" else optforge.list_schedulers
    before = listed()
    with pytest.raises(ConfigError) as caught:
        register(cls, name=name)
    assert [path for path, _ in caught.value.problems] == ["cls"]
    assert f"must be a class or a factory, got {type(cls).__name__}" in str(caught.value)
    assert listed() == before
