"""The ``schedule:`` section is read once into its variant; the builders match on the variant."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

import optforge
from optforge.config import (
    ClosedForm,
    NamedScheduler,
    NoSchedule,
    OneSchedule,
    PerGroup,
    TemplateSchedulers,
    read_schedule_section,
)
from optforge.config.schedule_section import SCHEDULED_HYPERPARAMETERS
from optforge.scheduler import HYPERPARAMETERS

COSINE = {"cosine_decay": {"peak_value": 0.1, "decay_steps": 100}}


@pytest.mark.parametrize(
    ("raw", "variant", "lr", "full_form"),
    [
        (None, NoSchedule, None, None),
        (0.1, ClosedForm, OneSchedule, False),
        (COSINE, ClosedForm, OneSchedule, False),
        ({"head": COSINE, "backbone": 0.01}, ClosedForm, PerGroup, False),
        ({"lr": COSINE, "total_steps": 100}, ClosedForm, OneSchedule, True),
        ({"lr": {"muon": COSINE, "adamw": COSINE}}, ClosedForm, PerGroup, True),
        ({"momentum": {"constant": 0.9}}, ClosedForm, None, True),
        ({"name": "StepLR", "step_size": 10}, NamedScheduler, None, None),
        ({"name": "x", "class_name": "StepLR", "args": {"step_size": 1}}, NamedScheduler, None, None),
        ({"epoch_scheduler": None, "iter_scheduler": None}, TemplateSchedulers, None, None),
    ],
)
def test_each_shape_reads_as_its_variant(raw: Any, variant: type, lr: type | None, full_form: bool | None) -> None:
    section = read_schedule_section(raw)
    assert type(section) is variant
    document = optforge.parse_document({"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": raw})
    assert type(document.schedule_section) is variant
    if isinstance(section, ClosedForm):
        assert (type(section.lr) if section.lr is not None else None) is lr
        assert section.full_form is full_form


def test_the_full_form_reads_every_scheduled_hyperparameter_and_the_run() -> None:
    section = read_schedule_section(
        {"lr": 0.1, "beta1": {"constant": 0.9}, "weight_decay": {"a": 0.1}, "steps_per_epoch": 10, "total_steps": 50}
    )
    assert isinstance(section, ClosedForm)
    assert {name: type(value) for name, value in section.hyperparameters.items()} == {
        "beta1": OneSchedule,
        "weight_decay": PerGroup,
    }
    assert (section.steps_per_epoch, section.total_steps) == (10, 50)


def test_reading_an_omegaconf_section_gives_the_same_variant_when_built() -> None:
    import torch

    config = OmegaConf.create({"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"lr": COSINE, "total_steps": 100}})
    optimizer, scheduler = optforge.build(torch.nn.Linear(2, 1), config)
    assert optimizer.param_groups[0]["lr"] == 0.1
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] < 0.1


def test_the_scheduler_sets_exactly_the_hyperparameters_a_section_may_schedule() -> None:
    assert tuple(HYPERPARAMETERS) == SCHEDULED_HYPERPARAMETERS
