"""Models of the param-group parts of an optimizer section: rules, weight-decay presets, task towers.

Example:
    >>> ParamGroupRule(match="head.*", lr_scale=10).lr_scale
    10.0
    >>> MultiTaskLearningRates(tower_learning_rates={"ctr": {"constant": 0.1}}).backbone_learning_rate is None
    True
"""

from __future__ import annotations

from typing import Annotated

import pydantic

from optforge._validation import StrictModel
from optforge.schedules import LearningRate

__all__ = ["Globs", "MultiTaskLearningRates", "NoWeightDecay", "ParamGroupRule", "sanitize_task_name"]

Globs = str | list[str]


class NoWeightDecay(StrictModel):
    """Which parameters get ``weight_decay: 0`` (``no_weight_decay: true`` takes these defaults).

    Embeddings keep their decay by default, as in timm and GPT-2 training recipes
    (and a tied output head shares its weight with the embedding).
    """

    bias: pydantic.StrictBool = True
    norm: pydantic.StrictBool = True
    embedding: pydantic.StrictBool = False
    ndim_1: pydantic.StrictBool = True
    model: pydantic.StrictBool = pydantic.Field(True, description="also the names returned by model.no_weight_decay()")
    names: list[str] = pydantic.Field(default_factory=list, description="globs of parameter names")
    module_types: list[str] = pydantic.Field(
        default_factory=list, description="class names of the modules holding the parameter (subclasses too)"
    )
    patterns: list[str] = pydantic.Field(
        default_factory=list, description="regular expressions searched for in the parameter's lower-cased name"
    )


class ParamGroupRule(StrictModel):
    """The selectors and settings of one rule; its other keys are optimizer hyperparameters."""

    match: Globs | None = None
    regex: pydantic.StrictBool = False
    module_type: Globs | None = None
    ndim: pydantic.StrictInt | list[pydantic.StrictInt] | None = None
    depthwise: pydantic.StrictBool | None = pydantic.Field(
        None,
        description="true: only parameters of depthwise convolutions (an nn.Conv2d with in_channels == groups); "
        "false: none of those",
    )
    name: str | None = None
    lr_scale: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False, strict=True)] | None = None
    schedule: LearningRate | None = None
    layer: Annotated[int, pydantic.Field(ge=0, strict=True)] | None = None
    frozen: pydantic.StrictBool = False
    optional: pydantic.StrictBool = pydantic.Field(
        False, description="the rule may match no parameter (a rule written for any model, not one)"
    )

    @pydantic.model_validator(mode="after")
    def _regex_needs_match(self) -> ParamGroupRule:
        if self.regex and self.match is None:
            raise ValueError("regex: true applies to match, which is not set")
        return self


def sanitize_task_name(task: str) -> str:
    """The module-name form of a task name: torch module names cannot hold dots.

    Example:
        >>> sanitize_task_name("recap.engagement.is_favorited")
        'recap__engagement__is_favorited'
    """
    return task.replace(".", "__")


class MultiTaskLearningRates(StrictModel):
    """Task towers of a multi-task model, each with its schedule, and the backbone's.

    A parameter belongs to task ``t`` when ``.t.`` is in ``"." + name``, or
    ``.t'.`` with ``t'`` the sanitized task name (dots become ``__``, as module
    names cannot hold dots); the rest is the backbone.

    Example:
        >>> MultiTaskLearningRates(tower_learning_rates={"a.b": {"constant": 0.1}}).tower_learning_rates["a.b"].constant
        0.1
    """

    tower_learning_rates: Annotated[dict[str, LearningRate], pydantic.Field(min_length=1)]
    backbone_learning_rate: LearningRate | None = None
