"""Models of the optimizer-section forms a config document may use.

* the flat form: ``{name: AdamW, lr: 0.001, ...}`` (:class:`FlatOptimizerConfig`);
* the typed form of the recommender system: exactly one of ``adam``, ``sgd``,
  ``adagrad`` beside a ``learning_rate`` schedule (:class:`OptimizerConfig`);
* the recommender's ranking-project section: ``adam: {beta_1, beta_2, epsilon}``
  beside ``multi_task_learning_rates`` or ``single_task_learning_rate``
  (:class:`RecapOptimizerConfig`);
* the training template's section: ``{name, class_name, lr, args, group, checkpoint}``
  (:class:`TemplateOptimizerConfig`).

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
from optforge.config.rules import MultiTaskLearningRates, NoWeightDecay, ParamGroupRule
from optforge.schedules import LearningRate

__all__ = [
    "BUILD_OPTIONS",
    "TYPED_OPTIMIZERS",
    "AdagradConfig",
    "AdamConfig",
    "FlatOptimizerConfig",
    "FlatPartConfig",
    "OptimizerConfig",
    "PartSelector",
    "RecapAdamConfig",
    "RecapOptimizerConfig",
    "RecapPartConfig",
    "SgdConfig",
    "TemplateGroup",
    "TemplateOptimizerConfig",
    "TemplatePartConfig",
    "TypedPartConfig",
]

# Numbers must be written as numbers: "1e-3" and true are errors, as in the flat form.
NonNegative = Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False, strict=True)]
Positive = Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False, strict=True)]
Beta = Annotated[float, pydantic.Field(ge=0, lt=1, strict=True)]

# Keys of a flat optimizer section that shape the build rather than being
# hyperparameters of the optimizer, with what each does.
BUILD_OPTIONS: Mapping[str, str] = {
    "zero": "true wraps the optimizer in ZeroRedundancyOptimizer, sharding its state across ranks "
    "(needs an initialized process group)",
    "param_groups": "ordered rules: match parameters by name, module_type, ndim or depthwise; set hyperparameters, "
    "lr_scale, name, schedule, layer, frozen or optional (first match wins)",
    "no_weight_decay": "weight_decay 0 for biases, norms, 1-D params, embeddings, names: true, false or a mapping "
    "(default: on for decoupled-decay optimizers)",
    "layer_decay": "scale each block's lr by layer_decay ** (blocks above it)",
}


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
    ``multi_task_learning_rates`` gives each task tower, and the backbone, its own schedule.
    """

    learning_rate: LearningRate | None = None
    adam: AdamConfig | None = None
    sgd: SgdConfig | None = None
    adagrad: AdagradConfig | None = None
    multi_task_learning_rates: MultiTaskLearningRates | None = None

    @pydantic.model_validator(mode="after")
    def _one_optimizer(self) -> OptimizerConfig:
        exactly_one(self, "an optimizer config", TYPED_OPTIMIZERS)
        return self

    def chosen(self) -> tuple[str, StrictModel]:
        """The one-of field that is set and its config, e.g. ``("adam", AdamConfig(...))``."""
        name = exactly_one(self, "an optimizer config", TYPED_OPTIMIZERS)
        return name, getattr(self, name)


class RecapAdamConfig(StrictModel):
    """The ranking project's Adam: ``torch.optim.Adam(betas=(beta_1, beta_2), eps=epsilon)``; no lr."""

    beta_1: Beta = 0.9
    beta_2: Beta = 0.999
    epsilon: NonNegative = 1e-7


# The one-of learning-rate fields of RecapOptimizerConfig.
RECAP_LEARNING_RATES: tuple[str, ...] = ("multi_task_learning_rates", "single_task_learning_rate")


class RecapOptimizerConfig(StrictModel):
    """The ranking project's optimizer section: Adam, and its lrs from schedules (a one-of).

    Example:
        >>> cfg = RecapOptimizerConfig(single_task_learning_rate={"constant": 0.1}, multi_task_learning_rates=None)
        >>> cfg.adam.beta_2, cfg.single_task_learning_rate.constant
        (0.999, 0.1)
    """

    adam: RecapAdamConfig = pydantic.Field(default_factory=RecapAdamConfig)
    multi_task_learning_rates: MultiTaskLearningRates | None = None
    single_task_learning_rate: LearningRate | None = None

    @pydantic.model_validator(mode="after")
    def _one_learning_rate(self) -> RecapOptimizerConfig:
        exactly_one(self, "the optimizer's learning rates", RECAP_LEARNING_RATES)
        return self


class TemplateGroup(StrictModel):
    """One group of the training template: parameters whose name contains ``name``, at ``lr / divide``."""

    name: Annotated[str, pydantic.Field(min_length=1)]
    divide: Positive


class TemplateOptimizerConfig(StrictModel):
    """The training template's optimizer section.

    ``class_name`` is the registry name, ``name`` a label; ``args`` are the
    optimizer's keyword arguments; ``group`` the lr-divided groups by name
    substring; ``checkpoint`` a saved optimizer state loaded after building.
    """

    name: str | None = None
    class_name: str
    lr: float = pydantic.Field(
        strict=True, description="The base lr (checked with the optimizer's other hyperparameters)."
    )
    args: dict[str, Any] | None = None
    group: list[TemplateGroup] | None = None
    checkpoint: str | None = None


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
    no_weight_decay: pydantic.StrictBool | NoWeightDecay | None = pydantic.Field(
        None, description="Parameters without weight decay (default: on for decoupled-decay optimizers)."
    )
    layer_decay: Annotated[float, pydantic.Field(gt=0, le=1)] | None = pydantic.Field(
        None, description="Scale each block's lr by layer_decay ** (blocks above it)."
    )
    zero: pydantic.StrictBool | None = pydantic.Field(
        None, description="Shard optimizer state with ZeroRedundancyOptimizer."
    )


class PartSelector(StrictModel):
    """Which parameters a part of a composite optimizer takes; every selector given must hold."""

    match: str | list[str] | None = pydantic.Field(None, description="Globs of parameter names (regexes with regex).")
    regex: pydantic.StrictBool = False
    module_type: str | list[str] | None = pydantic.Field(
        None, description="Class names (or globs) of the modules holding the parameters; subclasses match too."
    )
    ndim: pydantic.StrictInt | list[pydantic.StrictInt] | None = None


_PART_PARAMS = "The parameters this part takes (first part wins); without it, every parameter no earlier part took."
_PART_NAME = "The part's name (default: the optimizer's name in lower case); prefixes its group names."
# A part's name: a non-empty string without "/", which separates it from a group's name.
PartName = Annotated[str, pydantic.Field(min_length=1, pattern="^[^/]*$")]


class FlatPartConfig(FlatOptimizerConfig):
    """One part of a composite optimizer, in the flat form."""

    params: PartSelector | None = pydantic.Field(None, description=_PART_PARAMS)
    part: PartName | None = pydantic.Field(None, description=_PART_NAME)


class TypedPartConfig(OptimizerConfig):
    """One part of a composite optimizer, in the typed form."""

    params: PartSelector | None = pydantic.Field(None, description=_PART_PARAMS)
    part: PartName | None = pydantic.Field(None, description=_PART_NAME)


class RecapPartConfig(RecapOptimizerConfig):
    """One part of a composite optimizer, in the ranking project's form."""

    params: PartSelector | None = pydantic.Field(None, description=_PART_PARAMS)
    part: PartName | None = pydantic.Field(None, description=_PART_NAME)


class TemplatePartConfig(TemplateOptimizerConfig):
    """One part of a composite optimizer, in the training template's form."""

    params: PartSelector | None = pydantic.Field(None, description=_PART_PARAMS)
    part: PartName | None = pydantic.Field(None, description=_PART_NAME)
