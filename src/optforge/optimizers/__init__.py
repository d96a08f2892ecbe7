"""optforge's own optimizers: AdamW and Lion (state in fp32, bf16 or 8 bits), the Schedule-Free family, the composite.

Example:
    >>> import torch
    >>> from optforge.optimizers import AdamWScheduleFree
    >>> model = torch.nn.Linear(4, 1)
    >>> opt = AdamWScheduleFree(model.parameters(), lr=1e-3)
    >>> _ = opt.train()          # parameters hold y: ready to train
    >>> with opt.eval_mode():    # parameters hold the average x
    ...     opt.training
    False
    >>> opt.step_path.name       # which implementation steps take (see StepPath)
    'single'
"""

from __future__ import annotations

from optforge.optimizers._fused import StepPath
from optforge.optimizers.adamw import AdamW
from optforge.optimizers.adamw_schedule_free import AdamWScheduleFree, adamw_schedule_free
from optforge.optimizers.composite import CompositeOptimizer
from optforge.optimizers.lamb import Lamb
from optforge.optimizers.lion import Lion, lion
from optforge.optimizers.radam_schedule_free import RAdamScheduleFree
from optforge.optimizers.schedule_free import ScheduleFreeOptimizer, eval_mode, recompute_batchnorm_stats
from optforge.optimizers.schedule_free_wrapper import ScheduleFreeWrapper
from optforge.optimizers.sgd_schedule_free import SGDScheduleFree, sgd_schedule_free

__all__ = [
    "AdamW",
    "AdamWScheduleFree",
    "CompositeOptimizer",
    "Lamb",
    "Lion",
    "RAdamScheduleFree",
    "SGDScheduleFree",
    "ScheduleFreeOptimizer",
    "ScheduleFreeWrapper",
    "StepPath",
    "adamw_schedule_free",
    "eval_mode",
    "lion",
    "recompute_batchnorm_stats",
    "register",
    "sgd_schedule_free",
]


def register() -> None:
    """Register optforge's optimizers in the registry (provider ``"optforge"``)."""
    from optforge.registry import register_optimizer

    register_optimizer(
        Lamb,
        provider="optforge",
        description="LAMB with its trust ratio clamped to [min_coeff, max_coeff] (DeepSpeed's FusedLamb update)",
        decoupled_weight_decay=True,
    )
    register_optimizer(
        Lion,
        provider="optforge",
        description="Lion: sign of interpolated momentum (lr 3-10x below AdamW's)",
        decoupled_weight_decay=True,
    )
    register_optimizer(
        Lion,
        name="Lion8bit",
        defaults={"state_precision": "8bit"},
        provider="optforge",
        description="Lion with its momentum in 8 bits (block-wise codes, 1.02 B/param)",
        decoupled_weight_decay=True,
    )
    register_optimizer(
        AdamW,
        name="AdamW8bit",
        defaults={"state_precision": "8bit"},
        provider="optforge",
        description="optforge's AdamW with both moments in 8 bits (block-wise codes, 2.04 B/param)",
        decoupled_weight_decay=True,
    )
    register_optimizer(
        AdamWScheduleFree,
        provider="optforge",
        description="Schedule-Free AdamW: no lr schedule needed; call train()/eval()",
        decoupled_weight_decay=True,
        has_train_eval_modes=True,
    )
    register_optimizer(
        RAdamScheduleFree,
        provider="optforge",
        description="Schedule-Free RAdam: no schedule and no warmup; call train()/eval()",
        decoupled_weight_decay=True,
        has_train_eval_modes=True,
    )
    register_optimizer(
        AdamWScheduleFree,
        name="AdamWScheduleFree8bit",
        defaults={"state_precision": "8bit"},
        provider="optforge",
        description="Schedule-Free AdamW with its second moment in 8 bits (z in fp32: 5.03 B/param)",
        decoupled_weight_decay=True,
        has_train_eval_modes=True,
    )
    register_optimizer(
        RAdamScheduleFree,
        name="RAdamScheduleFree8bit",
        defaults={"state_precision": "8bit"},
        provider="optforge",
        description="Schedule-Free RAdam with its second moment in 8 bits (z in fp32: 5.03 B/param)",
        decoupled_weight_decay=True,
        has_train_eval_modes=True,
    )
    register_optimizer(
        SGDScheduleFree,
        provider="optforge",
        description="Schedule-Free SGD with momentum; call train()/eval()",
        has_train_eval_modes=True,
    )
    register_optimizer(
        ScheduleFreeWrapper,
        provider="optforge",
        description="Makes a base optimizer Schedule-Free (pass the base optimizer)",
        unavailable="wraps an optimizer instance; build the base optimizer, then ScheduleFreeWrapper(base)",
        has_train_eval_modes=True,
    )
