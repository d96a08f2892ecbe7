"""optforge: build PyTorch optimizers and learning-rate schedules from configuration.

The public names below load their module (and torch) on first use, so that
``import optforge`` and the ``optforge`` command's help stay fast.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = optforge.build_optimizer(model, {"name": "AdamW", "lr": 1e-3, "betas": [0.9, 0.95]})
    >>> type(opt).__name__, opt.defaults["betas"]
    ('AdamW', (0.9, 0.95))
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optforge.around_step import StepStats, ema_model, step_stats, use_ema
    from optforge.builder import build, build_optimizer
    from optforge.composite_plan import build_composite, muon_recipe
    from optforge.config import (
        AdagradConfig,
        AdamConfig,
        Document,
        FlatOptimizerConfig,
        OptimizerConfig,
        ParamGroupRule,
        RecapAdamConfig,
        RecapOptimizerConfig,
        SgdConfig,
        TemplateOptimizerConfig,
        parse_document,
    )
    from optforge.config_source import load_config
    from optforge.distributed import load_checkpoint, save_checkpoint
    from optforge.errors import CheckpointError, ConfigError
    from optforge.explain import ParamTable, explain
    from optforge.lr_find import LRFindResult, lr_find
    from optforge.lr_schedulers import list_schedulers, register_scheduler
    from optforge.optimizers.composite import CompositeOptimizer
    from optforge.param_groups import MultiTaskLearningRates, NoWeightDecay, make_param_groups, plan_param_groups
    from optforge.registry import (
        OptimizerEntry,
        get_optimizer_class,
        get_optimizer_entry,
        list_optimizers,
        optimizer_entries,
        register_optimizer,
        unregister_optimizer,
    )
    from optforge.scheduler import ClosedFormScheduler, LRShim, ScheduleChangedWarning, build_scheduler, scheduler_trace
    from optforge.schedules import LearningRate, compute_lr, make_schedule, parse_schedule, resolve_schedule

# Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "StepStats": "optforge.around_step",
    "ema_model": "optforge.around_step",
    "step_stats": "optforge.around_step",
    "use_ema": "optforge.around_step",
    "build": "optforge.builder",
    "build_optimizer": "optforge.builder",
    "build_composite": "optforge.composite_plan",
    "muon_recipe": "optforge.composite_plan",
    "AdagradConfig": "optforge.config",
    "AdamConfig": "optforge.config",
    "Document": "optforge.config",
    "FlatOptimizerConfig": "optforge.config",
    "OptimizerConfig": "optforge.config",
    "ParamGroupRule": "optforge.config",
    "RecapAdamConfig": "optforge.config",
    "RecapOptimizerConfig": "optforge.config",
    "SgdConfig": "optforge.config",
    "TemplateOptimizerConfig": "optforge.config",
    "parse_document": "optforge.config",
    "load_config": "optforge.config_source",
    "load_checkpoint": "optforge.distributed",
    "save_checkpoint": "optforge.distributed",
    "CheckpointError": "optforge.errors",
    "ConfigError": "optforge.errors",
    "ParamTable": "optforge.explain",
    "explain": "optforge.explain",
    "LRFindResult": "optforge.lr_find",
    "lr_find": "optforge.lr_find",
    "list_schedulers": "optforge.lr_schedulers",
    "register_scheduler": "optforge.lr_schedulers",
    "CompositeOptimizer": "optforge.optimizers.composite",
    "MultiTaskLearningRates": "optforge.param_groups",
    "NoWeightDecay": "optforge.param_groups",
    "make_param_groups": "optforge.param_groups",
    "plan_param_groups": "optforge.param_groups",
    "OptimizerEntry": "optforge.registry",
    "get_optimizer_class": "optforge.registry",
    "get_optimizer_entry": "optforge.registry",
    "list_optimizers": "optforge.registry",
    "optimizer_entries": "optforge.registry",
    "register_optimizer": "optforge.registry",
    "unregister_optimizer": "optforge.registry",
    "ClosedFormScheduler": "optforge.scheduler",
    "LRShim": "optforge.scheduler",
    "ScheduleChangedWarning": "optforge.scheduler",
    "build_scheduler": "optforge.scheduler",
    "scheduler_trace": "optforge.scheduler",
    "LearningRate": "optforge.schedules",
    "compute_lr": "optforge.schedules",
    "make_schedule": "optforge.schedules",
    "parse_schedule": "optforge.schedules",
    "resolve_schedule": "optforge.schedules",
}

__all__ = [
    "AdagradConfig",
    "AdamConfig",
    "CheckpointError",
    "ClosedFormScheduler",
    "CompositeOptimizer",
    "ConfigError",
    "Document",
    "FlatOptimizerConfig",
    "LRFindResult",
    "LRShim",
    "LearningRate",
    "MultiTaskLearningRates",
    "NoWeightDecay",
    "OptimizerConfig",
    "OptimizerEntry",
    "ParamGroupRule",
    "ParamTable",
    "RecapAdamConfig",
    "RecapOptimizerConfig",
    "ScheduleChangedWarning",
    "SgdConfig",
    "StepStats",
    "TemplateOptimizerConfig",
    "build",
    "build_composite",
    "build_optimizer",
    "build_scheduler",
    "compute_lr",
    "ema_model",
    "explain",
    "get_optimizer_class",
    "get_optimizer_entry",
    "list_optimizers",
    "list_schedulers",
    "load_checkpoint",
    "load_config",
    "lr_find",
    "make_param_groups",
    "make_schedule",
    "muon_recipe",
    "optimizer_entries",
    "parse_document",
    "parse_schedule",
    "plan_param_groups",
    "register_optimizer",
    "register_scheduler",
    "resolve_schedule",
    "save_checkpoint",
    "scheduler_trace",
    "step_stats",
    "unregister_optimizer",
    "use_ema",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'optforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """The package module: ``optforge.explain`` stays the function when its submodule is imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing optforge.explain binds the submodule under its name; the public name wins.
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
