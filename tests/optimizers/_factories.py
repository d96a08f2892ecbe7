"""optforge's own optimizers, each with test hyperparameters that exercise weight decay and warmup."""

from __future__ import annotations

from collections.abc import Callable

import torch

from optforge.optimizers import AdamW, AdamWScheduleFree, Lion, RAdamScheduleFree, SGDScheduleFree

OWN_FACTORIES: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "Lion": lambda params, **impl: Lion(params, lr=1e-2, weight_decay=0.1, **impl),
    "AdamWScheduleFree": lambda params, **impl: AdamWScheduleFree(
        params, lr=1e-2, weight_decay=0.01, warmup_steps=2, **impl
    ),
    "SGDScheduleFree": lambda params, **impl: SGDScheduleFree(params, lr=0.05, weight_decay=0.01, **impl),
    "RAdamScheduleFree": lambda params, **impl: RAdamScheduleFree(
        params, lr=1e-2, betas=(0.9, 0.9), weight_decay=0.01, silent_sgd_phase=False, **impl
    ),
    # 8-bit state (parameters under 4,096 elements or of one dimension keep float32 moments)
    "AdamW8bit": lambda params, **impl: AdamW(
        params, lr=1e-2, weight_decay=0.1, state_precision="8bit", seed=0, **impl
    ),
    "Lion8bit": lambda params, **impl: Lion(params, lr=1e-2, weight_decay=0.1, state_precision="8bit", seed=0, **impl),
    "AdamWScheduleFree8bit": lambda params, **impl: AdamWScheduleFree(
        params, lr=1e-2, weight_decay=0.01, warmup_steps=2, state_precision="8bit", seed=0, **impl
    ),
}
