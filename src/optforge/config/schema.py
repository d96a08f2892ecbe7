"""The model of a whole config document, from which its JSON Schema is made (see :mod:`optforge.json_schema`)."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic

from optforge._validation import StrictModel
from optforge.config.around_step import ClipGrad, Ema
from optforge.config.rules import MultiTaskLearningRates
from optforge.config.sections import (
    FlatOptimizerConfig,
    FlatPartConfig,
    OptimizerConfig,
    RecapOptimizerConfig,
    RecapPartConfig,
    TemplateOptimizerConfig,
    TemplatePartConfig,
    TypedPartConfig,
)
from optforge.schedules import LearningRate

__all__ = ["ConfigDocument"]

# One part of a composite optimizer: an optimizer section in any form, with its params and part keys.
Part = FlatPartConfig | TypedPartConfig | RecapPartConfig | TemplatePartConfig


class ConfigDocument(StrictModel):
    """A whole config file: the optimizer, its schedule and the towers of a multi-task model."""

    optimizer: (
        FlatOptimizerConfig
        | OptimizerConfig
        | RecapOptimizerConfig
        | TemplateOptimizerConfig
        | Annotated[list[Part], pydantic.Field(min_length=1)]
    ) = pydantic.Field(description="One optimizer section in any form, or a list of parts of a composite optimizer.")
    schedule: LearningRate | dict[str, Any] | float | None = pydantic.Field(
        None,
        description="One schedule for every group, {group name: schedule}, "
        "{lr, momentum, beta1, beta2, weight_decay, steps_per_epoch, total_steps}, a schedule per part "
        "of a composite optimizer, or a scheduler by name.",
    )
    multi_task_learning_rates: MultiTaskLearningRates | None = None
    clip_grad: ClipGrad | None = pydantic.Field(None, description="Clip the gradients before each step.")
    ema: Ema | None = pydantic.Field(None, description="Keep a moving average of the weights after each step.")
    skip_nonfinite: pydantic.StrictBool = pydantic.Field(
        False, description="Skip a step whose gradients hold inf or NaN (the scheduler does not advance)."
    )
