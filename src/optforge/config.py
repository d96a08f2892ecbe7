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

from optforge._validation import StrictModel
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
    "FlatOptimizerConfig",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "OptimizerConfig",
    "PiecewiseConstant",
    "SgdConfig",
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
        chosen = [name for name in TYPED_OPTIMIZERS if getattr(self, name) is not None]
        if len(chosen) != 1:
            got = "none" if not chosen else " and ".join(chosen)
            raise ValueError(f"an optimizer config must set exactly one of {', '.join(TYPED_OPTIMIZERS)}; got {got}")
        return self

    def chosen(self) -> tuple[str, StrictModel]:
        """The one-of field that is set and its config, e.g. ``("adam", AdamConfig(...))``."""
        name = next(name for name in TYPED_OPTIMIZERS if getattr(self, name) is not None)
        return name, getattr(self, name)


class FlatOptimizerConfig(pydantic.BaseModel):
    """The flat form: ``name`` plus the optimizer's own hyperparameters.

    Hyperparameters are checked against the named optimizer's signature when it
    is built, so this model only fixes ``name``.
    """

    model_config = pydantic.ConfigDict(extra="allow")

    name: str = pydantic.Field(description="Registered optimizer name, case-insensitive (see `optforge list`).")


class ConfigDocument(StrictModel):
    """A whole config file: the optimizer and, optionally, its schedule."""

    optimizer: FlatOptimizerConfig | OptimizerConfig
    schedule: LearningRate | None = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a config document, for editors to complete and check YAML.

    Registered optimizer names are offered as completions for ``optimizer.name``.

    Example:
        >>> schema = json_schema()
        >>> "AdamW" in schema["$defs"]["FlatOptimizerConfig"]["properties"]["name"]["anyOf"][0]["enum"]
        True
    """
    from optforge.registry import list_optimizers

    schema = ConfigDocument.model_json_schema()
    name = schema["$defs"]["FlatOptimizerConfig"]["properties"]["name"]
    name["anyOf"] = [{"enum": list_optimizers()}, {"type": "string"}]
    name.pop("type", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "optforge config"
    return schema
