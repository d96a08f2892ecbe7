"""The JSON Schema of config documents, for editors to complete and check YAML.

Example:
    >>> schema = json_schema()
    >>> [option["$ref"] for option in schema["anyOf"]]
    ['#/$defs/ConfigDocument', '#/$defs/OptimizerConfig']
    >>> "AdamW" in schema["$defs"]["FlatOptimizerConfig"]["properties"]["name"]["anyOf"][0]["enum"]
    True
"""

from __future__ import annotations

from typing import Any

import pydantic

from optforge._validation import StrictModel
from optforge.config.rules import MultiTaskLearningRates
from optforge.config.sections import (
    FlatOptimizerConfig,
    OptimizerConfig,
    RecapOptimizerConfig,
    TemplateOptimizerConfig,
)
from optforge.schedules import LearningRate

__all__ = ["ConfigDocument", "json_schema"]


class ConfigDocument(StrictModel):
    """A whole config file: the optimizer, its schedule and the towers of a multi-task model."""

    optimizer: (
        FlatOptimizerConfig
        | OptimizerConfig
        | RecapOptimizerConfig
        | TemplateOptimizerConfig
        | list[FlatOptimizerConfig]
    ) = pydantic.Field(description="One optimizer section in any form, or a list of parts of a composite optimizer.")
    schedule: LearningRate | dict[str, Any] | float | None = pydantic.Field(
        None,
        description="One schedule for every group, {group name: schedule}, "
        "{lr, momentum, beta1, beta2, weight_decay, steps_per_epoch, total_steps}, or a scheduler by name.",
    )
    multi_task_learning_rates: MultiTaskLearningRates | None = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a config document; registered optimizer names are offered for ``optimizer.name``."""
    from optforge.registry import list_optimizers

    # A document is either the wrapped form (optimizer:, schedule:, ...) or the typed form itself.
    schema = pydantic.TypeAdapter(ConfigDocument | OptimizerConfig).json_schema()
    name = schema["$defs"]["FlatOptimizerConfig"]["properties"]["name"]
    name["anyOf"] = [{"enum": list_optimizers()}, {"type": "string"}]
    name.pop("type", None)
    # A rule's keys other than its selectors and settings are optimizer hyperparameters.
    schema["$defs"]["ParamGroupRule"]["additionalProperties"] = True
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "optforge config"
    return schema
