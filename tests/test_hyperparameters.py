"""Bad flat configs are errors at build time that name the field, the value and the choices."""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
import torch
from torch import nn

import optforge
from optforge.errors import ConfigError


def _build(config: dict) -> None:
    optforge.build_optimizer(nn.Linear(2, 2), config)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"name": "AdamW", "lr": 1e-3, "beta": [0.9, 0.99]},
            "optimizer.beta: unknown hyperparameter for AdamW; did you mean 'betas'? "
            "Valid hyperparameters: lr, betas, eps, weight_decay, amsgrad",
        ),
        (
            {"name": "SGD", "lr": 0.1, "momentm": 0.9},
            "optimizer.momentm: unknown hyperparameter for SGD; did you mean 'momentum'?",
        ),
        ({"name": "AdamW", "betas": [0.9, 1.5]}, "optimizer.betas[1]: must be in [0, 1), got 1.5"),
        ({"name": "AdamW", "betas": [-0.1, 0.9]}, "optimizer.betas[0]: must be in [0, 1), got -0.1"),
        ({"name": "AdamW", "betas": [0.9]}, "optimizer.betas: expected 2 values, got 1: [0.9]"),
        ({"name": "AdamW", "betas": 0.9}, "optimizer.betas: expected a list of 2 values, got 0.9"),
        ({"name": "Adam", "lr": "fast"}, "optimizer.lr: expected a number, got str 'fast'"),
        ({"name": "Adam", "lr": True}, "optimizer.lr: expected a number, got bool True"),
        ({"name": "Adam", "lr": -1e-3}, "optimizer.lr: must be >= 0.0, got -0.001"),
        ({"name": "Adam", "eps": -1.0}, "optimizer.eps: must be >= 0.0, got -1.0"),
        ({"name": "Adam", "weight_decay": -0.1}, "optimizer.weight_decay: must be >= 0.0, got -0.1"),
        ({"name": "Adam", "amsgrad": "yes"}, "optimizer.amsgrad: expected true or false, got 'yes'"),
        ({"name": "Adam", "lr": float("nan")}, "optimizer.lr: must be a number, got nan"),
        ({"name": "SGD", "momentum": -0.5}, "optimizer.momentum: must be >= 0.0, got -0.5"),
        ({"name": "RMSprop", "alpha": -1}, "optimizer.alpha: must be >= 0.0, got -1"),
        ({"name": "Adadelta", "rho": 1.5}, "optimizer.rho: must be in [0, 1], got 1.5"),
        ({"name": "LBFGS", "max_iter": 2.5}, "optimizer.max_iter: expected a whole number, got 2.5"),
        ({"name": "Adamw2"}, "optimizer.name: unknown optimizer 'Adamw2'; did you mean 'AdamW'?"),
        ({"name": 3}, "optimizer.name: the optimizer name must be a string, got int 3"),
        ({"lr": 0.1}, "optimizer: an optimizer config needs a 'name'"),
        (
            {"name": "SGD", "lr": 0.1, "nesterov": True},
            "optimizer: SGD rejected the config: Nesterov momentum requires a momentum and zero dampening",
        ),
        (
            {"optimizer": {"name": "SGD"}, "shedule": {}},
            "shedule: unknown top-level key 'shedule'; did you mean 'schedule'?",
        ),
        ({"optimizer": "SGD"}, "optimizer: expected a mapping, got str 'SGD'"),
        ({"optimizer": ["SGD"]}, "optimizer[0]: expected an optimizer section (a mapping), got str 'SGD'"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_bad_config_messages(config: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _build(config)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(expected), str(info.value)


def test_error_path_attribute_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        _build({"name": "AdamW", "betas": [0.9, 2.0]})
    assert info.value.path == "optimizer.betas[1]"


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(nn.Linear(1, 1), {"adam": {"lrr": 0.1, "epsilon": 1e-8}})
    message = str(info.value)
    assert message.startswith("3 problems in the config:")
    assert "optimizer.adam.lr: required field is missing" in message
    assert "optimizer.adam.lrr: unknown key; did you mean 'lr'? Valid keys: lr, betas, eps" in message
    assert "optimizer.adam.epsilon: unknown key" in message
    assert {path for path, _ in info.value.problems} == {
        "optimizer.adam.lr",
        "optimizer.adam.lrr",
        "optimizer.adam.epsilon",
    }


def test_ints_are_accepted_for_float_hyperparameters() -> None:
    opt = optforge.build_optimizer(nn.Linear(1, 1), {"name": "SGD", "lr": 1, "momentum": 0})
    assert opt.defaults["lr"] == 1


class _ReadsTwoKwargs(torch.optim.SGD):
    """Reads two names from **kwargs and ignores nothing else."""

    def __init__(self, params, lr=0.1, **kwargs):
        self.trace = kwargs.get("trace", False)
        super().__init__(params, lr=lr, momentum=kwargs["heavy"] if "heavy" in kwargs else 0.0)  # noqa: SIM401


class _IgnoresKwargs(torch.optim.SGD):
    def __init__(self, params, lr=0.1, **kwargs):
        super().__init__(params, lr=lr)


class _PassesKwargsOn(torch.optim.SGD):
    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)


@pytest.mark.parametrize(
    ("cls", "config", "error"),
    [
        (_IgnoresKwargs, {"lr": 0.1, "momentum": 0.9}, "unknown hyperparameter for Probe. Valid hyperparameters: lr"),
        (_ReadsTwoKwargs, {"trace": True}, None),
        (_ReadsTwoKwargs, {"trac": True}, "did you mean 'trace'? Valid hyperparameters: lr, trace, heavy"),
        (_PassesKwargsOn, {"lr": 0.1, "momentum": 0.5}, None),
    ],
)
def test_kwargs_that_a_class_ignores_are_errors(cls, config: dict, error: str | None) -> None:
    optforge.register_optimizer(cls, name="Probe")
    try:
        if error is None:
            optforge.build_optimizer(nn.Linear(1, 1), {"name": "Probe", **config})
        else:
            with pytest.raises(ConfigError, match=re.escape(error)):
                optforge.build_optimizer(nn.Linear(1, 1), {"name": "Probe", **config})
    finally:
        optforge.unregister_optimizer("Probe")


def _entries_with_untyped_defaults() -> list[tuple[str, str, str]]:
    """(optimizer, hyperparameter, annotation) for every default-``None`` hyperparameter of every installed entry."""
    import inspect

    from optforge.registry import get_optimizer_entry

    found = []
    for name in optforge.list_optimizers("*"):
        entry = get_optimizer_entry(name)
        try:
            accepted, _ = entry.hyperparameters()
        except Exception:  # an entry whose own package is missing (bitsandbytes, apex)
            continue
        for pname, param in accepted.items():
            if param.default is None and param.annotation is not inspect.Parameter.empty:
                found.append((entry.name, pname, str(param.annotation)))
    return found


def test_hyperparameters_without_a_typed_default_are_checked_against_their_annotations() -> None:
    """A default of ``None`` says nothing of the type: the annotation does, for every registry entry."""
    from optforge.hyperparameters import check_hyperparameters
    from optforge.registry import get_optimizer_entry

    cases = _entries_with_untyped_defaults()
    assert ("LBFGS", "max_eval", "int | None") in cases
    checked = 0
    for name, pname, annotation in cases:
        takes_text = any(word in annotation for word in ("str", "Literal", "Any", "Callable", "callable"))
        entry = get_optimizer_entry(name)
        if takes_text:
            continue
        with pytest.raises(ConfigError) as info:
            check_hyperparameters(entry, {pname: "abc"}, "optimizer")
        assert [path for path, _ in info.value.problems] == [f"optimizer.{pname}"], (name, pname)
        assert "got str 'abc'" in str(info.value)
        check_hyperparameters(entry, {pname: None}, "optimizer")  # the default itself is always fine
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"name": "LBFGS", "max_eval": "abc"}, "optimizer.max_eval: expected int | None, got str 'abc'"),
        ({"name": "LBFGS", "max_eval": True}, "optimizer.max_eval: expected int | None, got bool True"),
        ({"name": "LBFGS", "line_search_fn": 3}, "optimizer.line_search_fn: expected str | None, got int 3"),
        ({"name": "Lion", "fused": "yes"}, "optimizer.fused: expected bool | None, got str 'yes'"),
    ],
)
def test_untyped_defaults_get_one_clear_error_at_build_time(config: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(nn.Linear(2, 2), config)
    assert str(info.value) == expected


def test_untyped_defaults_take_what_their_annotation_allows() -> None:
    model = nn.Linear(2, 2)
    assert optforge.build_optimizer(model, {"name": "LBFGS", "max_eval": 5}).defaults["max_eval"] == 5
    assert optforge.build_optimizer(model, {"name": "LBFGS", "max_eval": 5.0}).defaults["max_eval"] == 5.0
    assert optforge.build_optimizer(model, {"name": "Lion", "fused": False}).defaults["fused"] is False


class _UnhashablyAnnotated(torch.optim.SGD):
    """An optimizer whose annotation carries unhashable metadata, as a user's might."""

    def __init__(self, params: Any, lr: float = 0.1, steps: Annotated[int | None, ["unhashable"]] = None) -> None:
        super().__init__(params, lr=lr)


def test_an_unhashable_annotation_is_still_checked() -> None:
    """Default-None arguments are checked against their annotation even when it cannot be hashed."""
    from optforge.hyperparameters import check_hyperparameters
    from optforge.registry import OptimizerEntry

    entry = OptimizerEntry("Odd", _UnhashablyAnnotated)
    assert check_hyperparameters(entry, {"steps": 3}, "optimizer") == {"steps": 3}
    with pytest.raises(ConfigError, match=r"optimizer\.steps: expected"):
        check_hyperparameters(entry, {"steps": "abc"}, "optimizer")
