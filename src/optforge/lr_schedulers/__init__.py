"""Learning-rate schedulers by name: torch's, timm's and the training template's, from one config.

A ``schedule:`` section that names a scheduler builds it through the registry,
after checking every argument against its signature::

    {name: CosineAnnealingLR, T_max: {fraction: 1.0}, eta_min: 1e-5}
    {name: a label, class_name: MultiStepLR, args: {milestones: [0.5, 0.75]}, checkpoint: null}
    {name: ReduceLROnPlateau, warmup_steps: 500, factor: 0.5, patience: 3, monitor: val_loss}

Example:
    >>> import torch, optforge
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> sched = optforge.build_scheduler(opt, {"name": "cosineannealinglr", "T_max": 100})
    >>> type(sched).__name__
    'CosineAnnealingLR'
"""

from optforge.lr_schedulers.chained import RangedChainedScheduler
from optforge.lr_schedulers.cosine_warmup_restarts import CosineAnnealingWarmupReduceRestarts
from optforge.lr_schedulers.entry import SchedulerEntry
from optforge.lr_schedulers.plateau import MetricMissingError, ReduceLROnPlateau, WarmupPlateau
from optforge.lr_schedulers.polynomial_lr_decay import PolynomialLRDecay
from optforge.lr_schedulers.registry import (
    get_scheduler_entry,
    list_schedulers,
    register_scheduler,
    scheduler_entries,
    unregister_scheduler,
)
from optforge.lr_schedulers.section import SECTION_OPTIONS, build_named_scheduler, is_named_section, section_options
from optforge.lr_schedulers.template import build_template_schedulers
from optforge.lr_schedulers.template_rules import TemplateRuleWarning
from optforge.lr_schedulers.timm_adapter import TimmScheduler
from optforge.lr_schedulers.trace import is_metric_driven, trace_steps

__all__ = [
    "SECTION_OPTIONS",
    "CosineAnnealingWarmupReduceRestarts",
    "MetricMissingError",
    "PolynomialLRDecay",
    "RangedChainedScheduler",
    "ReduceLROnPlateau",
    "SchedulerEntry",
    "TemplateRuleWarning",
    "TimmScheduler",
    "WarmupPlateau",
    "build_named_scheduler",
    "build_template_schedulers",
    "get_scheduler_entry",
    "is_metric_driven",
    "is_named_section",
    "list_schedulers",
    "register_scheduler",
    "scheduler_entries",
    "section_options",
    "trace_steps",
    "unregister_scheduler",
]
