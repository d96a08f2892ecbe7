"""optforge: build PyTorch optimizers and learning-rate schedules from configuration.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = optforge.build_optimizer(model, {"name": "AdamW", "lr": 1e-3, "betas": [0.9, 0.95]})
    >>> type(opt).__name__, opt.defaults["betas"]
    ('AdamW', (0.9, 0.95))
"""

from optforge.builder import build, build_optimizer
from optforge.config_source import load_config
from optforge.errors import ConfigError
from optforge.registry import (
    OptimizerEntry,
    get_optimizer_class,
    get_optimizer_entry,
    list_optimizers,
    optimizer_entries,
    register_optimizer,
    unregister_optimizer,
)
from optforge.schedules import LearningRate, compute_lr

__all__ = [
    "ConfigError",
    "LearningRate",
    "OptimizerEntry",
    "build",
    "build_optimizer",
    "compute_lr",
    "get_optimizer_class",
    "get_optimizer_entry",
    "list_optimizers",
    "load_config",
    "optimizer_entries",
    "register_optimizer",
    "unregister_optimizer",
]

__version__ = "0.1.0"
