"""Bad input at one field is one ConfigError whose one problem carries that field's own path.

For every entry point (``build_optimizer``, ``build``, ``parse_document`` and the
CLI's ``validate_config``): booleans are never coerced from strings or numbers,
hyperparameters whose default is ``None`` are checked against their annotation,
a field that takes several shapes reports one problem at its own path (never
pydantic's member names such as ``.str`` or ``.list[int]``) naming the shapes,
and a long value is cut without losing the path or the hint of any problem.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import optforge
from optforge.cli import clip, validate_config
from optforge.errors import MAX_MESSAGE, ConfigError

EXAMPLES = settings(max_examples=60, deadline=None, derandomize=True)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def _build_optimizer(config: dict[str, Any]) -> None:
    optforge.build_optimizer(_model(), config["optimizer"])


def _build(config: dict[str, Any]) -> None:
    optforge.build(_model(), config)


def _parse_and_build(config: dict[str, Any]) -> None:
    # parse_document checks the document's shape; building checks the rest against the model.
    optforge.parse_document(config)
    optforge.build(_model(), config)


def _validate(config: dict[str, Any]) -> None:
    problems = validate_config(config, _model())
    if problems:
        raise ConfigError.from_problems(problems)


ENTRY_POINTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "build_optimizer": _build_optimizer,
    "build": _build,
    "parse_document": _parse_and_build,
    "validate": _validate,
}

BASE: dict[str, Any] = {
    "optimizer": {
        "name": "AdamW",
        "lr": 1e-3,
        "no_weight_decay": {"bias": True, "norm": True},
        "param_groups": [{"match": "0.*", "lr_scale": 2.0, "ndim": 2, "regex": False, "frozen": False}],
    },
    "schedule": {"cosine_decay": {"peak_value": 1e-3, "decay_steps": 100}},
}

# (path in the optimizer section, values that must be refused there)
NOT_BOOLEANS = ["yes", "true", 1, 0, 1.0, [True], {"a": 1}]
BOOLEAN_FIELDS = [
    ("no_weight_decay", "bias"),
    ("no_weight_decay", "norm"),
    ("no_weight_decay", "embedding"),
    ("param_groups", 0, "regex"),
    ("param_groups", 0, "frozen"),
]
# Fields that take several shapes, and values of none of them.
UNION_FIELDS: dict[tuple[Any, ...], list[Any]] = {
    ("param_groups", 0, "ndim"): [True, "2", 2.5, {"a": 1}],
    ("param_groups", 0, "module_type"): [3, True, {"a": 1}, 2.5],
    ("param_groups", 0, "match"): [3, False, {"a": 1}],
}


def _path(parts: tuple[Any, ...]) -> str:
    text = "optimizer"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _with(parts: tuple[Any, ...], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    node: Any = config["optimizer"]
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return config


def _one_problem(entry: str, config: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ConfigError) as info:
        ENTRY_POINTS[entry](config)
    problems = info.value.problems
    assert len(problems) == 1, problems
    return problems[0]


def test_the_base_config_builds_through_every_entry_point() -> None:
    for call in ENTRY_POINTS.values():
        call(copy.deepcopy(BASE))


@EXAMPLES
@given(st.sampled_from(list(ENTRY_POINTS)), st.sampled_from(BOOLEAN_FIELDS), st.sampled_from(NOT_BOOLEANS))
def test_booleans_are_never_coerced(entry: str, field: tuple[Any, ...], value: Any) -> None:
    path, message = _one_problem(entry, _with(field, value))
    assert path == _path(field)
    assert "boolean" in message or "true or false" in message


@EXAMPLES
@given(st.sampled_from(list(ENTRY_POINTS)), st.sampled_from(list(UNION_FIELDS)), st.data())
def test_a_field_of_several_shapes_reports_one_problem_at_its_own_path(
    entry: str, field: tuple[Any, ...], data: st.DataObject
) -> None:
    value = data.draw(st.sampled_from(UNION_FIELDS[field]))
    path, message = _one_problem(entry, _with(field, value))
    assert path == _path(field)
    assert " or " in message  # the accepted shapes
    assert "str" not in path.rsplit(".", 1)[-1] or field[-1] == "module_type"


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_an_item_of_a_list_shape_is_named_by_its_index(entry: str) -> None:
    path, message = _one_problem(entry, _with(("param_groups", 0, "ndim"), [2, "x"]))
    assert path == "optimizer.param_groups[0].ndim[1]"
    assert "integer" in message


UNTYPED_DEFAULTS = [  # (optimizer, hyperparameter, a value of the wrong type)
    ("LBFGS", "max_eval", "abc"),
    ("LBFGS", "max_eval", True),
    ("LBFGS", "max_eval", [3]),
    ("LBFGS", "line_search_fn", 3),
    ("Lion", "fused", "yes"),
    ("AdamWScheduleFree", "foreach", 1),
    ("Adagrad", "fused", "no"),
]


@EXAMPLES
@given(st.sampled_from(list(ENTRY_POINTS)), st.sampled_from(UNTYPED_DEFAULTS))
def test_hyperparameters_with_a_none_default_are_type_checked(entry: str, case: tuple[str, str, Any]) -> None:
    name, hyperparameter, value = case
    config = {"optimizer": {"name": name, hyperparameter: value}}
    path, message = _one_problem(entry, config)
    assert path == f"optimizer.{hyperparameter}"
    assert message.startswith("expected ")


@EXAMPLES
@given(
    st.sampled_from(list(ENTRY_POINTS)),
    st.integers(min_value=MAX_MESSAGE, max_value=50 * MAX_MESSAGE),
    st.sampled_from(["name", "betas", "schedule"]),
)
def test_long_values_never_cut_a_path_or_a_hint(entry: str, length: int, where: str) -> None:
    long_value = "q" * length
    config = copy.deepcopy(BASE)
    config["optimizer"]["weight_decay"] = "w" * length  # a second problem beside the first
    if where == "name":
        config["optimizer"]["name"] = long_value
    elif where == "betas":
        config["optimizer"]["betas"] = [0.9, long_value]
    else:
        config["schedule"] = {"cosine_decay": {"peak_value": long_value, "decay_steps": 100}}
    with pytest.raises(ConfigError) as info:
        ENTRY_POINTS[entry](config)
    problems = info.value.problems
    lines = str(info.value).splitlines()
    if len(problems) > 1:
        assert lines[0] == f"{len(problems)} problems in the config:"
        assert len(lines) == len(problems) + 1
        for line, (path, message) in zip(lines[1:], problems):
            assert line == f"  - {path}: {message}"
    for path, message in problems:
        assert path.startswith(("optimizer", "schedule"))
        assert len(message) <= MAX_MESSAGE + 60
        shown = clip(message)
        assert shown.endswith(" characters in all)") or shown == " ".join(message.split())
    if where == "name":
        name_problem = next(message for path, message in problems if path == "optimizer.name")
        assert "list_optimizers" in clip(name_problem)  # the hint at the end survives the cut


@pytest.mark.parametrize(
    ("config", "path", "hint"),
    [
        ({"optimiser": {"name": "AdamW"}}, "optimiser", "did you mean 'optimizer'?"),
        ({"optimizer": {"name": "ReduceLROnPlateau"}}, "optimizer.name", "is a learning-rate scheduler, not an"),
        (
            {"optimizer": {"name": "AdamW"}, "schedule": {"name": "SGD"}},
            "schedule.name",
            "is an optimizer, not a learning-rate scheduler",
        ),
        (
            {
                "optimizer": {"name": "AdamW"},
                "schedule": {"cosine_decay": {"peak_value": 0.1, "decay_steps": 9, "min_value": 0.0}},
            },
            "schedule.cosine_decay.min_value",
            "did you mean 'end_value'?",
        ),
        (
            {"optimizer": {"name": "AdamW"}, "schedule": {"cosine_decay": {"learning_rate": 0.1, "decay_steps": 9}}},
            "schedule.cosine_decay.learning_rate",
            "did you mean 'peak_value'?",
        ),
        (
            {
                "optimizer": {"name": "AdamW"},
                "schedule": {
                    "linear_ramp_to_cosine": {
                        "peak_value": 0.1,
                        "final_learning_rate": 0.0,
                        "num_ramp_steps": 1,
                        "final_num_steps": 9,
                    }
                },
            },
            "schedule.linear_ramp_to_cosine.peak_value",
            "did you mean 'learning_rate'?",
        ),
    ],
)
def test_did_you_mean_crosses_vocabularies(config: dict[str, Any], path: str, hint: str) -> None:
    for entry in ENTRY_POINTS:
        if entry == "build_optimizer" and not path.startswith("optimizer."):
            continue  # it reads the optimizer section only
        with pytest.raises(ConfigError) as info:
            ENTRY_POINTS[entry](copy.deepcopy(config))
        messages = dict(info.value.problems)
        assert path in messages, (entry, info.value.problems)
        assert hint in messages[path]


def test_a_document_key_is_never_called_a_misspelling_of_itself() -> None:
    problems = validate_config({"schedule": {"constant": 0.1}})
    assert problems
    assert all("did you mean 'schedule'" not in message for _, message in problems)
    assert validate_config({"schedul": {"constant": 0.1}, "optimiser": {"name": "SGD"}}) == [
        ("schedul", "unknown top-level key 'schedul'; did you mean 'schedule'?"),
        ("optimiser", "unknown top-level key 'optimiser'; did you mean 'optimizer'?"),
    ]
