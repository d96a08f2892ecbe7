"""optforge: build PyTorch optimizers and learning-rate schedules from configuration.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = optforge.build_optimizer(model, {"name": "AdamW", "lr": 1e-3, "betas": [0.9, 0.95]})
    >>> type(opt).__name__, opt.defaults["betas"]
    ('AdamW', (0.9, 0.95))
"""

from optforge.builder import build, build_optimizer
from optforge.composite import build_composite, muon_recipe
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
from optforge.scheduler import LRShim, ScheduleChangedWarning, build_scheduler
from optforge.schedules import LearningRate, compute_lr, make_schedule, parse_schedule, resolve_schedule

__all__ = [
    "AdagradConfig",
    "AdamConfig",
    "CheckpointError",
    "CompositeOptimizer",
    "ConfigError",
    "Document",
    "FlatOptimizerConfig",
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
    "TemplateOptimizerConfig",
    "build",
    "build_composite",
    "build_optimizer",
    "build_scheduler",
    "compute_lr",
    "explain",
    "get_optimizer_class",
    "get_optimizer_entry",
    "list_optimizers",
    "list_schedulers",
    "load_checkpoint",
    "load_config",
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
    "unregister_optimizer",
]

__version__ = "0.1.0"
