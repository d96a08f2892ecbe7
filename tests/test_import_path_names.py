"""Optimizers and schedulers named by their import path in a document."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from optforge.lr_schedulers import get_scheduler_entry
from optforge.registry import get_optimizer_entry, list_optimizers


def test_a_schedule_naming_an_optimizer_class_says_so():
    with pytest.raises(ConfigError, match="is an optimizer, not a learning-rate scheduler"):
        get_scheduler_entry("torch.optim.SGD")


def test_a_registered_class_keeps_its_entry():
    assert get_optimizer_entry("torch.optim.AdamW").name == "AdamW"
    assert get_optimizer_entry("torch.optim.sgd.SGD").name == "SGD"  # not the Momentum preset of the same class
    assert get_scheduler_entry("torch.optim.lr_scheduler.StepLR").name == "StepLR"
    assert "torch.optim.AdamW" not in list_optimizers()


def test_an_unregistered_class_is_built_and_checked_against_its_signature():
    model = torch.nn.Linear(3, 2)
    config = {"optimizer": {"name": "optforge.optimizers.lion.Lion", "lr": 1e-4, "betas": [0.9, 0.99]}}
    optimizer, _ = optforge.build(model, config)
    assert type(optimizer).__name__ == "Lion"
    assert tuple(optimizer.defaults["betas"]) == (0.9, 0.99)
    with pytest.raises(ConfigError) as err:
        optforge.build(model, {"optimizer": {"name": "optforge.optimizers.lion.Lion", "lr": 1e-4, "betax": 1}})
    assert [path for path, _ in err.value.problems] == ["optimizer.betax"]


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers is not installed")
def test_a_function_returning_a_scheduler():
    model = torch.nn.Linear(3, 2)
    schedule = {"name": "transformers.get_linear_schedule_with_warmup", "num_warmup_steps": 2, "num_training_steps": 10}
    optimizer, scheduler = optforge.build(model, {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": schedule})
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(3):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.0, 0.05, 0.1, 0.0875])
    with pytest.raises(ConfigError) as err:
        optforge.build(model, {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {**schedule, "num_warmup": 2}})
    assert "num_warmup" in str(err.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("torch.nn.Linear", "is not an optimizer class"),
        ("torch.optim.NoSuchThing", "unknown optimizer"),
        ("no_such_package.Thing", "unknown optimizer"),
        ("torch.optim.lr_scheduler.StepLR", "is a learning-rate scheduler, not an optimizer"),
    ],
)
def test_a_path_that_is_no_optimizer_class_is_one_config_error(name, message):
    with pytest.raises(ConfigError) as err:
        optforge.build(torch.nn.Linear(2, 2), {"optimizer": {"name": name, "lr": 0.1}})
    assert [path for path, _ in err.value.problems] == ["optimizer.name"]
    assert message in str(err.value)


class _Failing(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``broken_pkg.inner``, whose import fails on a missing library."""

    def find_spec(self, fullname, path, target=None):
        return importlib.machinery.ModuleSpec(fullname, self) if fullname == "broken_pkg.inner" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ImportError("No module named 'libmissing'", name="libmissing")


def test_a_module_that_fails_to_import_is_named(monkeypatch):
    package = types.ModuleType("broken_pkg")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "broken_pkg", package)
    monkeypatch.setattr(sys, "meta_path", [_Failing(), *sys.meta_path])
    with pytest.raises(ConfigError, match=r"broken_pkg\.inner does not import here: No module named 'libmissing'"):
        get_optimizer_entry("broken_pkg.inner.Thing", path="optimizer.name")
    sys.modules.pop("broken_pkg.inner", None)
