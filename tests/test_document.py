"""One document model: every form parsed into one Document, every problem of a document reported at once."""

from __future__ import annotations

import warnings

import pytest
import torch

import optforge
from optforge.config import OptimizerSection, ParamGroupRule, Problems, parse_document
from optforge.config.forms.parts import PartSection
from optforge.errors import ConfigError


def test_five_mistakes_are_one_error_with_five_paths() -> None:
    doc = {
        "optimizer": {
            "name": "AdamW",
            "lr": -1,
            "betas": [0.9, 1.5],
            "wieght_decay": 0.1,
            "param_groups": [{"match": "weight", "lr_scael": 2}],
        },
        "schedule": {"cosine_decay": {"peak_value": 0.1, "decay_steps": 10, "end_valeu": 0.0}},
        "sheduler": {},
    }
    with pytest.raises(ConfigError) as info:
        optforge.build(torch.nn.Linear(2, 2), doc)
    paths = [path for path, _ in info.value.problems]
    assert sorted(paths) == sorted(
        [
            "sheduler",
            "optimizer.lr",
            "optimizer.betas[1]",
            "optimizer.wieght_decay",
            "optimizer.param_groups[0].lr_scael",
            "schedule.cosine_decay.end_valeu",
        ]
    )
    message = str(info.value)
    assert message.startswith("6 problems in the config:")
    for fragment in (
        "did you mean 'schedule'",
        "must be >= 0",
        "must be in [0, 1)",
        "did you mean 'weight_decay'",
        "did you mean 'lr_scale'",
        "did you mean 'end_value'",
    ):
        assert fragment in message


def test_problems_in_the_typed_form_and_towers_are_collected_together() -> None:
    doc = {
        "optimizer": {"adam": {"lr": 0.1, "betas": [0.9, 2.0]}, "learning_rate": {"constant": 0.1}},
        "multi_task_learning_rates": {"tower_learning_rates": {"a": {"constnt": 0.1}}},
    }
    with pytest.raises(ConfigError) as info:
        parse_document(doc)
    paths = {path for path, _ in info.value.problems}
    assert "optimizer.adam.betas.1" in paths or "optimizer.adam.betas[1]" in paths
    assert any(path.startswith("multi_task_learning_rates.tower_learning_rates.a") for path in paths)


@pytest.mark.parametrize(
    ("section", "form", "name"),
    [
        ({"name": "AdamW", "lr": 1e-3}, "flat", "AdamW"),
        ({"adam": {"lr": 1e-3}, "sgd": None, "adagrad": None, "learning_rate": None}, "typed", "Adam"),
        ({"adam": {"beta_1": 0.9}, "single_task_learning_rate": {"constant": 0.1}}, "recap", "Adam"),
        (
            {"adam": {}, "multi_task_learning_rates": {"tower_learning_rates": {"t": {"constant": 0.1}}}},
            "recap",
            "Adam",
        ),
        ({"name": "lbl", "class_name": "timm_Lamb", "lr": 1e-3, "args": None, "group": None}, "template", "timm_Lamb"),
    ],
)
def test_every_form_is_recognised(section: dict, form: str, name: str) -> None:
    for doc in (section, {"optimizer": section}):
        parsed = parse_document(doc)
        assert parsed.optimizer is not None
        assert (parsed.optimizer.form, parsed.optimizer.name) == (form, name)


def test_null_one_of_members_mean_unset() -> None:
    schedule = {
        "constant": None,
        "linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10},
        "linear_ramp_to_cosine": None,
        "piecewise_constant": None,
    }
    optimizer, _ = optforge.build(
        torch.nn.Linear(2, 1), {"sgd": {"lr": 0.1}, "adam": None, "adagrad": None, "learning_rate": schedule}
    )
    assert optimizer.param_groups[0]["lr"] == 0.0


def test_build_optimizer_checks_the_schedule_and_says_build_makes_it() -> None:
    model = torch.nn.Linear(2, 1)
    doc = {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"constant": 0.1}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer = optforge.build_optimizer(model, doc)
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert [str(w.message) for w in caught if "optforge.build" in str(w.message)]
    for bad in ({"bogus_schedule": 1}, {"lr": {"constnt": 0.1}}, {"lr": {"cosine_decay": {"peak_value": 1}}}):
        with pytest.raises(ConfigError, match=r"^schedule"):
            optforge.build_optimizer(model, {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": bad})


def test_misspelt_schedule_never_sets_every_lr() -> None:
    with pytest.raises(ConfigError, match=r"schedule.bogus_schedule: unknown param group name or schedule"):
        optforge.build(
            torch.nn.Linear(2, 1), {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"bogus_schedule": 1}}
        )


def test_schedule_given_twice_is_an_error() -> None:
    doc = {"optimizer": {"sgd": {"lr": 0.1}, "learning_rate": {"constant": 0.1}}, "schedule": {"constant": 0.2}}
    with pytest.raises(ConfigError, match="the schedule is given twice"):
        optforge.build(torch.nn.Linear(2, 1), doc)


def test_typed_models_are_exported_at_the_top_level() -> None:
    assert optforge.OptimizerConfig(adam={"lr": 0.1}).adam.lr == 0.1
    assert optforge.RecapOptimizerConfig(single_task_learning_rate={"constant": 0.1}).adam.epsilon == 1e-7
    assert optforge.TemplateOptimizerConfig(class_name="SGD", lr=0.1).args is None


@pytest.mark.parametrize("value", ["1e-3", True])
def test_typed_form_takes_numbers_only_as_the_flat_form_does(value: object) -> None:
    for doc in ({"adam": {"lr": value}}, {"name": "Adam", "lr": value}):
        with pytest.raises(ConfigError, match=r"optimizer(\.adam)?\.lr"):
            optforge.build_optimizer(torch.nn.Linear(2, 1), doc)


def test_schedule_without_lr_keeps_each_groups_scaled_lr() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    config = {
        "optimizer": {"name": "SGD", "lr": 0.1, "momentum": 0.9, "param_groups": [{"match": "1", "lr_scale": 10}]},
        "schedule": {"momentum": {"constant": 0.8}},
    }
    optimizer, scheduler = optforge.build(model, config)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 1.0]
    assert [g["momentum"] for g in optimizer.param_groups] == [0.8, 0.8]


def test_a_config_file_is_read_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optforge.config_source as source

    path = tmp_path / "sgd.yaml"
    path.write_text("optimizer: {name: SGD, lr: 0.1}\nschedule: {constant: 0.1}\n")
    reads = []
    real = source.load_yaml
    monkeypatch.setattr(source, "load_yaml", lambda p: reads.append(p) or real(p))
    optforge.build(torch.nn.Linear(2, 1), path)
    optforge.explain(torch.nn.Linear(2, 1), path)
    assert reads == [path, path]


def test_composite_parts_are_parsed_into_typed_parts() -> None:
    document = parse_document(
        {
            "optimizer": [
                {"part": "hidden", "name": "Muon", "lr": 0.02, "params": {"match": "blocks.*", "ndim": 2}},
                {"adam": {"lr": 1e-3}},
            ]
        }
    )
    assert document.optimizer is None
    hidden, rest = document.parts
    assert isinstance(hidden, PartSection)
    assert isinstance(hidden.section, OptimizerSection)
    assert (hidden.index, hidden.path, hidden.name, hidden.section.name) == (0, "optimizer[0]", "hidden", "Muon")
    assert isinstance(hidden.selector, ParamGroupRule)
    assert (hidden.selector.match, hidden.selector.ndim, hidden.selector_path) == ("blocks.*", 2, "optimizer[0].params")
    assert (rest.selector, rest.name, rest.section.form) == (None, None, "typed")
    assert rest.section.path == "optimizer[1].adam"
    assert not hidden.broken
    assert not rest.broken


def test_every_problem_of_the_parts_is_collected_with_its_path() -> None:
    parts = [
        "AdamW",
        {"name": "SGD", "lr": 0.1, "params": {"ndims": 2}},
        {"name": "Adam", "part": "a/b"},
        {"lr": 0.1},
    ]
    problems = Problems()
    parsed = parse_document({"optimizer": parts}, problems).parts
    assert [path for path, _ in problems.items] == [
        "optimizer[0]",
        "optimizer[1].params.ndims",
        "optimizer[2].part",
        "optimizer[3]",
    ]
    assert [part.broken for part in parsed] == [True, True, False, False]
    assert parsed[0].section is None
    assert parsed[3].section is None
    with pytest.raises(ConfigError) as info:
        parse_document({"optimizer": []})
    assert info.value.problems[0][0] == "optimizer"
