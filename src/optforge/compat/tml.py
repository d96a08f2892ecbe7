"""The recommender system's ``optimizers`` package, on optforge.

Replace ``from <project>.optimizers import ...`` (and the ranking project's
optimizer imports) with ``from optforge.compat.tml import ...``; configs and call
sites stay as they are. ``build_optimizer`` returns ``(optimizer, scheduler)``
as the original does, passing each optimizer its own hyperparameters.

Example:
    >>> import torch
    >>> from optforge.compat.tml import OptimizerConfig, build_optimizer, compute_lr
    >>> model = torch.nn.Linear(4, 1)
    >>> cfg = OptimizerConfig(sgd={"lr": 0.1, "momentum": 0.9},
    ...                       learning_rate={"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}})
    >>> optimizer, scheduler = build_optimizer(model, cfg)
    >>> type(optimizer).__name__, optimizer.param_groups[0]["momentum"], compute_lr(cfg.learning_rate, 5)
    ('SGD', 0.9, 0.05)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from optforge._validation import parse_model
from optforge.builder import build, resolve
from optforge.config import (
    AdagradConfig,
    AdamConfig,
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    MultiTaskLearningRates,
    OptimizerConfig,
    PiecewiseConstant,
    RecapAdamConfig,
    RecapOptimizerConfig,
    SgdConfig,
)
from optforge.construct import build_from_spec
from optforge.errors import ConfigError
from optforge.registry import get_optimizer_class as _registry_class
from optforge.scheduler import LRShim
from optforge.schedules import compute_lr

__all__ = [
    "AdagradConfig",
    "AdamConfig",
    "LRShim",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MultiTaskLearningRates",
    "OptimizerConfig",
    "PiecewiseConstant",
    "RecapAdamConfig",
    "RecapOptimizerConfig",
    "SgdConfig",
    "build_optimizer",
    "compute_lr",
    "get_optimizer_algorithm_config",
    "get_optimizer_class",
]


def get_optimizer_algorithm_config(optimizer_config: OptimizerConfig | Any) -> AdamConfig | SgdConfig | AdagradConfig:
    """The chosen one of ``adam``, ``sgd``, ``adagrad`` of an :class:`OptimizerConfig` (or a mapping of its shape).

    Example:
        >>> get_optimizer_algorithm_config({"adagrad": {"lr": 0.1}, "adam": None}).lr
        0.1
    """
    return parse_model(OptimizerConfig, optimizer_config, "optimizer").chosen()[1]


def get_optimizer_class(optimizer_config: OptimizerConfig | RecapOptimizerConfig | Any) -> type[torch.optim.Optimizer]:
    """``torch.optim.Adam``, ``SGD`` or ``Adagrad``, as chosen by the config.

    Example:
        >>> get_optimizer_class(OptimizerConfig(sgd={"lr": 0.1})) is torch.optim.SGD
        True
    """
    return _registry_class(optimizer_config)


def build_optimizer(
    model: nn.Module, optimizer_config: OptimizerConfig | RecapOptimizerConfig | Any
) -> tuple[torch.optim.Optimizer, LRShim]:
    """The optimizer and its :class:`LRShim`, as the original builds them.

    * :class:`OptimizerConfig`: one group of every trainable parameter and
      ``LRShim(optimizer, {"ALL_PARAMS": learning_rate})`` (the optimizer's own
      ``lr``, held constant, without ``learning_rate``); with
      ``multi_task_learning_rates``, one group per task tower and the backbone.
    * :class:`RecapOptimizerConfig`: ``torch.optim.Adam(betas=(beta_1, beta_2),
      eps=epsilon)`` with one group per task (named as the config writes it) and
      ``backbone``, each following its schedule; or one group with
      ``single_task_learning_rate``.

    Raises:
        ConfigError: for any bad config, naming its path.
    """
    resolved = resolve(optimizer_config)
    spec = resolved.spec
    if spec is None:
        raise ConfigError("expected one optimizer, got a list of parts", path="optimizer")
    if spec.schedule_key is None or spec.groups_as_written or spec.towers is not None:
        return build(model, optimizer_config)  # type: ignore[return-value]
    if not isinstance(model, nn.Module):
        raise ConfigError(f"build_optimizer needs a model (an nn.Module), got {type(model).__name__}")
    params = [param for param in model.parameters() if param.requires_grad]
    optimizer = build_from_spec(params, spec)
    schedule = spec.learning_rate or {"constant": float(spec.hyperparameters["lr"])}
    return optimizer, LRShim(optimizer, {spec.schedule_key: schedule})
