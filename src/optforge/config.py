"""Typed config models, and the JSON Schema of the config documents.

The typed optimizer configs follow the recommender-system design:
:class:`OptimizerConfig` holds a ``learning_rate`` schedule and exactly one of
``adam``, ``sgd`` or ``adagrad``. A plain mapping of the same shape is accepted
wherever the typed object is.

Example:
    >>> import torch, optforge
    >>> from optforge.config import AdamConfig, OptimizerConfig
    >>> cfg = OptimizerConfig(adam=AdamConfig(lr=1e-3), learning_rate={"constant": 1e-3})
    >>> optforge.get_optimizer_class(cfg) is torch.optim.Adam
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import pydantic

from optforge._validation import StrictModel, exactly_one
from optforge.param_groups import MultiTaskLearningRates, NoWeightDecay, ParamGroupRule
from optforge.schedules import (
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    PiecewiseConstant,
)

__all__ = [
    "TYPED_OPTIMIZERS",
    "AdagradConfig",
    "AdamConfig",
    "ConfigDocument",
    "FlatOptimizerConfig",
    "FlatPartConfig",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "OptimizerConfig",
    "PartSelector",
    "PiecewiseConstant",
    "SgdConfig",
    "TypedPartConfig",
    "json_schema",
]

NonNegative = Annotated[float, pydantic.Field(ge=0)]
Beta = Annotated[float, pydantic.Field(ge=0, lt=1)]


class AdamConfig(StrictModel):
    """Hyperparameters of :class:`torch.optim.Adam`, with the design's defaults."""

    lr: NonNegative
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: NonNegative = 1e-7


class SgdConfig(StrictModel):
    """Hyperparameters of :class:`torch.optim.SGD`."""

    lr: NonNegative
    momentum: NonNegative = 0.0


class AdagradConfig(StrictModel):
    """Hyperparameters of :class:`torch.optim.Adagrad`."""

    lr: NonNegative
    eps: NonNegative = 0.0


# The one-of optimizer fields of OptimizerConfig and the registry name each selects.
TYPED_OPTIMIZERS: Mapping[str, str] = {"adam": "Adam", "sgd": "SGD", "adagrad": "Adagrad"}


class OptimizerConfig(StrictModel):
    """An optimizer (exactly one of ``adam``, ``sgd``, ``adagrad``) and its lr schedule.

    Without ``learning_rate``, the chosen optimizer's ``lr`` is used as a constant.
    """

    learning_rate: LearningRate | None = None
    adam: AdamConfig | None = None
    sgd: SgdConfig | None = None
    adagrad: AdagradConfig | None = None

    @pydantic.model_validator(mode="after")
    def _one_optimizer(self) -> OptimizerConfig:
        exactly_one(self, "an optimizer config", TYPED_OPTIMIZERS)
        return self

    def chosen(self) -> tuple[str, StrictModel]:
        """The one-of field that is set and its config, e.g. ``("adam", AdamConfig(...))``."""
        name = exactly_one(self, "an optimizer config", TYPED_OPTIMIZERS)
        return name, getattr(self, name)


class FlatOptimizerConfig(pydantic.BaseModel):
    """The flat form: ``name`` plus the optimizer's own hyperparameters.

    Hyperparameters are checked against the named optimizer's signature when it
    is built, so this model only fixes ``name``.
    """

    model_config = pydantic.ConfigDict(extra="allow")

    name: str = pydantic.Field(description="Registered optimizer name, case-insensitive (see `optforge list`).")
    param_groups: list[ParamGroupRule] | None = pydantic.Field(
        None, description="Ordered rules placing parameters in groups; the first match wins."
    )
    no_weight_decay: bool | NoWeightDecay | None = pydantic.Field(
        None, description="Parameters without weight decay (default: on for decoupled-decay optimizers)."
    )
    layer_decay: Annotated[float, pydantic.Field(gt=0, le=1)] | None = pydantic.Field(
        None, description="Scale each block's lr by layer_decay ** (blocks above it)."
    )
    zero: bool | None = pydantic.Field(None, description="Shard optimizer state with ZeroRedundancyOptimizer.")


class PartSelector(StrictModel):
    """Which parameters a part of a composite optimizer takes; every selector given must hold."""

    match: str | list[str] | None = pydantic.Field(None, description="Globs of parameter names (regexes with regex).")
    regex: bool = False
    module_type: str | list[str] | None = pydantic.Field(
        None, description="Class names (or globs) of the modules holding the parameters; subclasses match too."
    )
    ndim: int | list[int] | None = None


_PART_PARAMS = "The parameters this part takes (first part wins); without it, every parameter no earlier part took."
_PART_NAME = "The part's name (default: the optimizer's name in lower case); prefixes its group names."


class FlatPartConfig(FlatOptimizerConfig):
    """One part of a composite optimizer, in the flat form."""

    params: PartSelector | None = pydantic.Field(None, description=_PART_PARAMS)
    part: str | None = pydantic.Field(None, description=_PART_NAME)


class TypedPartConfig(OptimizerConfig):
    """One part of a composite optimizer, in the typed form."""

    params: PartSelector | None = pydantic.Field(None, description=_PART_PARAMS)
    part: str | None = pydantic.Field(None, description=_PART_NAME)


class ConfigDocument(StrictModel):
    """A whole config file: the optimizer (or a list of parts), its schedule and the towers of a multi-task model."""

    optimizer: (
        FlatOptimizerConfig
        | OptimizerConfig
        | Annotated[list[FlatPartConfig | TypedPartConfig], pydantic.Field(min_length=1)]
    )
    schedule: LearningRate | dict[str, Any] | float | None = pydantic.Field(
        None,
        description="One schedule for every group, {group or part name: schedule}, or "
        "{lr, momentum, beta1, beta2, weight_decay, steps_per_epoch, total_steps}.",
    )
    multi_task_learning_rates: MultiTaskLearningRates | None = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a config document, for editors to complete and check YAML.

    Registered optimizer names are offered as completions for ``optimizer.name``.

    Example:
        >>> schema = json_schema()
        >>> [option["$ref"] for option in schema["anyOf"]]
        ['#/$defs/ConfigDocument', '#/$defs/OptimizerConfig']
        >>> "AdamW" in schema["$defs"]["FlatOptimizerConfig"]["properties"]["name"]["anyOf"][0]["enum"]
        True
    """
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
