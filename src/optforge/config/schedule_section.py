"""The ``schedule:`` section, read once into the variant it is: what every builder and command matches on.

A section is one of:

* :class:`NoSchedule`: none given; each group keeps its own lr.
* :class:`ClosedForm`: optforge's own schedules. Its ``lr`` and each scheduled
  hyperparameter (``momentum``, ``beta1``, ``beta2``, ``weight_decay``) is
  :class:`OneSchedule` (the same for every group) or :class:`PerGroup` (by group
  or part name); ``full_form`` says whether the section was written with those
  keys (``{lr: ..., total_steps: ...}``) or as a bare schedule or mapping.
* :class:`NamedScheduler`: a scheduler by name (``{name: StepLR, step_size: 10}``).
* :class:`TemplateSchedulers`: the training template's ``{epoch_scheduler, iter_scheduler}``.

Reading the shape never fails: whether the schedules in it are valid is checked
when the scheduler is built (or by ``check_schedule_section``).

Example:
    >>> read_schedule_section({"cosine_decay": {"peak_value": 0.1, "decay_steps": 100}}).lr
    OneSchedule(value={'cosine_decay': {'peak_value': 0.1, 'decay_steps': 100}})
    >>> section = read_schedule_section({"lr": {"muon": 0.02, "adamw": 3e-4}, "total_steps": 1000})
    >>> type(section.lr).__name__, section.full_form, section.total_steps
    ('PerGroup', True, 1000)
    >>> type(read_schedule_section({"name": "StepLR", "step_size": 10})).__name__
    'NamedScheduler'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optforge.schedules import LearningRate

__all__ = [
    "RUN_KEYS",
    "SCHEDULED_HYPERPARAMETERS",
    "SCHEDULE_KEYS",
    "TEMPLATE_SCHEDULER_KEYS",
    "ClosedForm",
    "NamedScheduler",
    "NoSchedule",
    "OneSchedule",
    "PerGroup",
    "ScheduleSection",
    "TemplateSchedulers",
    "is_one_schedule",
    "read_schedule_section",
]

# Hyperparameters other than lr that a closed-form section may schedule.
SCHEDULED_HYPERPARAMETERS: tuple[str, ...] = ("momentum", "beta1", "beta2", "weight_decay")
# The run's length, beside the schedules.
RUN_KEYS: tuple[str, ...] = ("steps_per_epoch", "total_steps")
# The keys of the full form.
SCHEDULE_KEYS: tuple[str, ...] = ("lr", *SCHEDULED_HYPERPARAMETERS, *RUN_KEYS)
# The training template's scheduler file.
TEMPLATE_SCHEDULER_KEYS: tuple[str, ...] = ("epoch_scheduler", "iter_scheduler")


def is_one_schedule(value: Any) -> bool:
    """True for one schedule (a number, a ``LearningRate`` or a mapping naming a schedule) rather than a
    mapping of schedules by group.

    Example:
        >>> is_one_schedule(0.1), is_one_schedule({"constant": 0.1}), is_one_schedule({"head": 0.1})
        (True, True, False)
    """
    if isinstance(value, LearningRate | int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, Mapping) and any(key in LearningRate.model_fields for key in value)


@dataclass(frozen=True)
class OneSchedule:
    """The same schedule for every group (a number is a constant)."""

    value: Any


@dataclass(frozen=True)
class PerGroup:
    """A schedule for each group or part, by its name, as written (the names are checked when built)."""

    schedules: Any


ScheduleValue = OneSchedule | PerGroup


@dataclass(frozen=True)
class NoSchedule:
    """No ``schedule:`` section: each group keeps its own lr."""


@dataclass(frozen=True)
class ClosedForm:
    """optforge's own schedules for lr and other hyperparameters.

    Attributes:
        lr: The lr's schedule, or ``None`` when only other hyperparameters are scheduled.
        hyperparameters: The other scheduled hyperparameters' schedules, by name.
        steps_per_epoch: The run's steps per epoch, if the section gives them.
        total_steps: The run's length in steps, if the section gives it.
        full_form: Written with the keys of :data:`SCHEDULE_KEYS` (rather than as one schedule,
            or one mapping by group, for the lr).
        raw: The section as written.
    """

    lr: ScheduleValue | None
    hyperparameters: Mapping[str, ScheduleValue] = field(default_factory=dict)
    steps_per_epoch: Any = None
    total_steps: Any = None
    full_form: bool = False
    raw: Any = None


@dataclass(frozen=True)
class NamedScheduler:
    """A scheduler by name: ``name`` (or the template's ``class_name``) and its arguments."""

    section: Mapping[str, Any]


@dataclass(frozen=True)
class TemplateSchedulers:
    """The training template's scheduler file: ``epoch_scheduler`` and ``iter_scheduler``."""

    section: Mapping[str, Any]


ScheduleSection = NoSchedule | ClosedForm | NamedScheduler | TemplateSchedulers


def _value(value: Any) -> ScheduleValue:
    return OneSchedule(value) if is_one_schedule(value) else PerGroup(value)


def read_schedule_section(raw: Any) -> ScheduleSection:
    """The variant of a ``schedule:`` section given as plain data (or ``None``), or an already read one."""
    if isinstance(raw, NoSchedule | ClosedForm | NamedScheduler | TemplateSchedulers):
        return raw
    if raw is None:
        return NoSchedule()
    if isinstance(raw, Mapping):
        if any(isinstance(raw.get(key), str) for key in ("name", "class_name")):
            return NamedScheduler(raw)
        if raw and all(key in TEMPLATE_SCHEDULER_KEYS for key in raw):
            return TemplateSchedulers(raw)
        if any(key in SCHEDULE_KEYS for key in raw):
            scheduled = {name: _value(raw[name]) for name in SCHEDULED_HYPERPARAMETERS if raw.get(name) is not None}
            lr = None if raw.get("lr") is None else _value(raw["lr"])
            return ClosedForm(lr, scheduled, raw.get("steps_per_epoch"), raw.get("total_steps"), True, raw)
    return ClosedForm(_value(raw), raw=raw)
