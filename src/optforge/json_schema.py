"""The JSON Schema of config files, for editors to complete and check YAML.

It is made from the models the validator parses with and the keys the
scheduler reads, so it accepts the files ``optforge validate`` accepts: a
document (``optimizer:`` with ``schedule:`` and ``multi_task_learning_rates:``
beside it), a bare optimizer section in any form, the training template's
scheduler file and a file holding only a schedule. What only the registry or
the model can tell is left open: an optimizer's hyperparameters, a scheduler's
arguments, param-group names, and rules across fields (``warmup_steps <
decay_steps``).

Example:
    >>> schema = json_schema()
    >>> forms = [form["$ref"].rsplit("/", 1)[1] for form in schema["anyOf"]]
    >>> forms[:2], forms[-2:]
    (['ConfigDocument', 'FlatOptimizerConfig'], ['TemplateSchedulers', 'ScheduleFile'])
    >>> "AdamW" in schema["$defs"]["OptimizerName"]["anyOf"][0]["enum"]
    True
    >>> section = schema["$defs"]["ScheduleSection"]["anyOf"]
    >>> [form["$ref"].rsplit("/", 1)[1] for form in section if "$ref" in form]
    ['Schedule', 'FullSchedule', 'SchedulerByName', 'TemplateScheduler']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pydantic

from optforge.config import (
    TYPED_OPTIMIZERS,
    ConfigDocument,
    FlatOptimizerConfig,
    OptimizerConfig,
    RecapOptimizerConfig,
    TemplateOptimizerConfig,
)
from optforge.config.around_step import CLIP_MODES
from optforge.config.document import TOWERS_KEY
from optforge.config.forms.parts import SELECTOR_KEYS
from optforge.config.sections import RECAP_LEARNING_RATES
from optforge.lr_schedulers.registry import list_schedulers
from optforge.lr_schedulers.section import SECTION_OPTIONS, TEMPLATE_DOCUMENT_KEYS
from optforge.registry import list_optimizers
from optforge.scheduler import HYPERPARAMETERS, SCHEDULE_KEYS
from optforge.schedules import LearningRate, StepCount

__all__ = ["json_schema"]

NULL = {"type": "null"}
# The forms of a file, in the order the validator recognises them (a document first: it holds ``optimizer:``).
FORMS = (
    "ConfigDocument",
    "FlatOptimizerConfig",
    "OptimizerConfig",
    "RecapOptimizerConfig",
    "TemplateOptimizerConfig",
    "TemplateSchedulers",
    "ScheduleFile",
)
# The types of a scheduler section's options (any value for an option not listed).
OPTION_TYPES: dict[str, dict[str, Any]] = {
    "interval": {"enum": ["step", "epoch"]},
    "frequency": {"type": "integer", "minimum": 1},
    "monitor": {"type": "string"},
    "checkpoint": {"anyOf": [{"type": "string"}, NULL]},
    "warmup_steps": pydantic.TypeAdapter(StepCount).json_schema(),
    "warmup_start_factor": {"type": "number", "minimum": 0, "maximum": 1},
    "warmup_per": {"enum": ["metric", "step"]},
    "steps_per_epoch": {"anyOf": [{"type": "integer", "minimum": 1}, NULL]},
    "total_steps": {"anyOf": [{"type": "integer", "minimum": 1}, NULL]},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _given(key: str) -> dict[str, Any]:
    """Holds for a mapping in which ``key`` is set to something other than null."""
    return {"type": "object", "required": [key], "properties": {key: {"not": NULL}}}


def _names(names: Iterable[str], description: str) -> dict[str, Any]:
    """A registered name: completion offers ``names``; any string passes (names are case-insensitive, and
    more may be registered)."""
    return {"description": description, "anyOf": [{"enum": list(names)}, {"type": "string"}]}


def _near_misses(words: Iterable[str]) -> str:
    """A regex of the strings one typo away from one of ``words``: a letter added, dropped, changed or swapped.

    Example:
        >>> import re
        >>> [bool(re.fullmatch(_near_misses(["join"]), text)) for text in ("jion", "joins", "jon", "jxin", "main")]
        [True, True, True, True, False]
    """
    variants: dict[str, None] = {}
    for word in words:
        for i in range(len(word) + 1):
            variants[f"{word[:i]}.{word[i:]}"] = None  # a letter added
            if i < len(word):
                variants[f"{word[:i]}.?{word[i + 1 :]}"] = None  # a letter changed or dropped
            if i < len(word) - 1:
                variants[word[:i] + word[i + 1] + word[i] + word[i + 2 :]] = None  # two letters swapped
    return "^(?:" + "|".join(variants) + ")$"


def _optimizer_sections(defs: dict[str, Any]) -> None:
    """Registry names for completion, and the one-of rules of the forms the models check after parsing."""
    defs["OptimizerName"] = _names(
        list_optimizers(), "A registered optimizer name, case-insensitive (`optforge list`)."
    )
    for name in ("FlatOptimizerConfig", "FlatPartConfig"):
        defs[name]["properties"]["name"] = {**_ref("OptimizerName"), "description": "The optimizer."}
        defs[name]["not"] = {"required": ["class_name"]}  # a section with class_name is in the template form
        rules = {"type": "array", "contains": _given("layer")}
        defs[name]["if"] = {"type": "object", "required": ["param_groups"], "properties": {"param_groups": rules}}
        defs[name]["then"] = _given("layer_decay")  # a rule's layer places it for layer_decay
    for name in ("TemplateOptimizerConfig", "TemplatePartConfig"):
        properties = defs[name]["properties"]
        properties["class_name"] = {**_ref("OptimizerName"), "description": "The optimizer."}
        properties["args"]["propertyNames"] = {"not": {"const": "lr"}}  # the section's own lr is the lr
    for name in ("OptimizerConfig", "TypedPartConfig"):
        defs[name]["oneOf"] = [_given(key) for key in TYPED_OPTIMIZERS]
    for name in ("RecapOptimizerConfig", "RecapPartConfig"):
        defs[name]["oneOf"] = [_given(key) for key in RECAP_LEARNING_RATES]
    defs["LearningRate"]["oneOf"] = [_given(key) for key in LearningRate.model_fields]
    # A rule or a part's params needs a selector; regex: true applies to match.
    selectors = {"anyOf": [_given(key) for key in SELECTOR_KEYS if key != "regex"]}
    regex = {"if": {"required": ["regex"], "properties": {"regex": {"const": True}}}, "then": _given("match")}
    for name in ("ParamGroupRule", "PartSelector"):
        defs[name]["allOf"] = [selectors, regex]
    defs["ParamGroupRule"]["additionalProperties"] = True  # a rule's other keys are optimizer hyperparameters


def _schedule_defs() -> dict[str, Any]:
    """The forms of a ``schedule:`` section, and of the files that hold only schedules."""
    schedules = list(LearningRate.model_fields)
    scheduled = {"anyOf": [_ref("Schedule"), _ref("GroupSchedules"), NULL]}
    full: dict[str, Any] = {}
    for key in SCHEDULE_KEYS:
        if key == "lr":
            full[key] = {**scheduled, "description": "The learning rate: one schedule, or one per param group."}
        elif key in HYPERPARAMETERS:
            hint = f" ({HYPERPARAMETERS[key].hint})" if HYPERPARAMETERS[key].hint else ""
            full[key] = {**scheduled, "description": f"The param groups' {HYPERPARAMETERS[key].group_key}{hint}."}
        else:  # the run's length, for lengths in epochs or fractions
            full[key] = {**OPTION_TYPES.get(key, {}), "description": SECTION_OPTIONS.get(key, "")}
    scheduler = {**_ref("SchedulerName"), "description": "The scheduler."}
    options = {key: {**OPTION_TYPES.get(key, {}), "description": text} for key, text in SECTION_OPTIONS.items()}
    by_name = {"anyOf": [_ref("SchedulerByName"), _ref("TemplateScheduler")]}
    # As the whole section, a mapping with a key of the full form is the full form, and one of only
    # epoch_scheduler and iter_scheduler is the template's scheduler file: neither is a schedule per group.
    groups = {
        "allOf": [_ref("GroupSchedules")],
        "propertyNames": {"not": {"enum": list(SCHEDULE_KEYS)}},
        "not": {"minProperties": 1, "propertyNames": {"enum": list(TEMPLATE_DOCUMENT_KEYS)}},
    }
    return {
        "SchedulerName": _names(
            list_schedulers(), "A registered scheduler name, case-insensitive (`optforge list --schedulers`)."
        ),
        "Schedule": {
            "description": "One schedule: a LearningRate, or a number for a constant lr.",
            "anyOf": [{"type": "number", "minimum": 0}, _ref("LearningRate")],
        },
        "GroupSchedules": {
            "description": "A schedule for each param group (or part of a composite optimizer), by its name.",
            "type": "object",
            # A key that is a schedule's name, or one typo from it, is no group name.
            "propertyNames": {"not": {"anyOf": [{"enum": schedules}, {"pattern": _near_misses(schedules)}]}},
            "additionalProperties": _ref("Schedule"),
        },
        "FullSchedule": {
            "description": "Schedules of the lr and other hyperparameters, and the run's length for lengths in "
            "epochs or fractions.",
            "type": "object",
            "properties": full,
            "additionalProperties": False,
            "minProperties": 1,
        },
        "SchedulerByName": {
            "description": "A scheduler of the registry, its arguments beside its name: {name: StepLR, step_size: 10}.",
            "type": "object",
            "properties": {"name": scheduler},
            "required": ["name"],
            "not": {"anyOf": [{"required": ["class_name"]}, {"required": ["args"]}]},
        },
        "TemplateScheduler": {
            "description": "A scheduler in the training template's form: {name, class_name, args, checkpoint}.",
            "type": "object",
            "properties": {
                "name": {"description": "A label; the scheduler's name when class_name is not given."},
                "class_name": scheduler,
                "args": {"anyOf": [{"type": "object"}, NULL], "description": "The scheduler's arguments."},
                **options,
            },
            "additionalProperties": False,
            "anyOf": [{"required": ["class_name"]}, {"required": ["args"]}],
            "if": {"not": {"required": ["class_name"]}},
            "then": {"required": ["name"], "properties": {"name": {"type": "string"}}},
            "dependentRequired": {"warmup_start_factor": ["warmup_steps"], "warmup_per": ["warmup_steps"]},
        },
        "ScheduleSection": {
            "description": "One schedule for every param group, a schedule per group, the full form, "
            "or a scheduler by name.",
            "anyOf": [_ref("Schedule"), _ref("FullSchedule"), groups, *by_name["anyOf"]],
        },
        "TemplateSchedulers": {
            "description": "The training template's scheduler file: an epoch and an iteration scheduler.",
            "type": "object",
            "properties": {key: {"anyOf": [*by_name["anyOf"], NULL]} for key in TEMPLATE_DOCUMENT_KEYS},
            "additionalProperties": False,
            "minProperties": 1,
        },
        "ScheduleFile": {
            "description": "A file holding only a schedule (a Hydra schedule/ fragment), checked as a schedule: "
            "section: one schedule, or the full form with a schedule in it.",
            "anyOf": [
                _ref("LearningRate"),
                {
                    "allOf": [_ref("FullSchedule")],
                    "anyOf": [{"required": [key], "properties": {key: {"type": "object"}}} for key in SCHEDULE_KEYS],
                },
            ],
        },
    }


def _around_step(defs: dict[str, Any]) -> None:
    """``clip_grad:`` sets exactly one of its modes."""
    defs["ClipGrad"]["oneOf"] = [_given(mode) for mode in CLIP_MODES]


def _document(defs: dict[str, Any]) -> None:
    """``schedule:`` in its forms; a schedule or towers given both in the section and beside it are errors."""
    document = defs["ConfigDocument"]
    schedule = document["properties"]["schedule"]
    document["properties"]["schedule"] = {
        "anyOf": [_ref("ScheduleSection"), NULL],
        "default": None,
        "description": schedule["description"],
    }
    typed = {"type": "object", "not": {"anyOf": [{"required": ["name"]}, {"required": ["class_name"]}]}}
    own_schedule = {**typed, "anyOf": [_given("learning_rate"), _given("single_task_learning_rate")]}
    document["allOf"] = [
        {"not": {"allOf": [_given("schedule"), {"properties": {"optimizer": own_schedule}}]}},
        {"not": {"allOf": [_given(TOWERS_KEY), {"properties": {"optimizer": {**typed, **_given(TOWERS_KEY)}}}]}},
    ]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an optforge config file; registered names are offered for optimizers and schedulers."""
    sections = ConfigDocument | FlatOptimizerConfig | OptimizerConfig | RecapOptimizerConfig | TemplateOptimizerConfig
    schema = pydantic.TypeAdapter(sections).json_schema()
    defs = schema["$defs"]
    _optimizer_sections(defs)
    defs.update(_schedule_defs())
    _document(defs)
    _around_step(defs)
    forms: list[dict[str, Any]] = [_ref(name) for name in FORMS]
    forms[1]["not"] = {"required": ["optimizer"]}  # with optimizer:, a file is a document
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "optforge config",
        "anyOf": forms,
        "$defs": dict(sorted(defs.items())),
    }
