"""The optimizer and scheduler a torchtune recipe config makes, built by optforge.

``build(model, cfg, num_training_steps=T)`` translates the config's ``optimizer:``,
``lr_scheduler:`` and ``clip_grad_norm`` (:mod:`optforge.config.stacks.torchtune`) and
builds the document; ``T`` is what the recipe passes the scheduler (epochs times
optimizer steps per epoch). The scheduler is stepped once per optimizer step. Fields the
document does not carry are named in one warning. torchtune itself is not imported.

Example:
    >>> import torch
    >>> cfg = {"optimizer": {"_component_": "torch.optim.AdamW", "lr": 1e-3},
    ...        "lr_scheduler": {"_component_": "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
    ...                         "num_warmup_steps": 2}}
    >>> optimizer, scheduler = build(torch.nn.Linear(4, 2), cfg, num_training_steps=10)
    >>> lrs = [optimizer.param_groups[0]["lr"]]
    >>> for _ in range(3):
    ...     optimizer.step(); scheduler.step(); lrs.append(optimizer.param_groups[0]["lr"])
    >>> [round(lr, 6) for lr in lrs]
    [0.0, 0.0005, 0.001, 0.000962]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from optforge.builder import build as build_document
from optforge.compat.mmengine import document_path, warn_unexpressed
from optforge.config.stacks.torchtune import translate
from optforge.errors import ConfigError

__all__ = ["build"]

# Where each part of the translated document comes from in the config.
_SOURCES: tuple[tuple[str, str], ...] = (
    ("optimizer.name", "optimizer._component_"),
    ("optimizer", "optimizer"),
    ("schedule.name", "lr_scheduler._component_"),
    ("schedule.lr", "lr_scheduler"),
    ("schedule", "lr_scheduler"),
    ("clip_grad", "clip_grad_norm"),
)


def build(
    model: torch.nn.Module, cfg: Mapping[str, Any], *, num_training_steps: int | None = None
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and scheduler of a torchtune recipe config (a mapping; an OmegaConf one as a plain dict).

    Raises:
        ConfigError: listing every problem at its field path in the config, before anything is built.
    """
    translation = translate(cfg, {"num_training_steps": num_training_steps})
    warn_unexpressed(translation)
    try:
        return build_document(model, translation.document)
    except ConfigError as err:
        raise ConfigError.from_problems([(document_path(p, _SOURCES), m) for p, m in err.problems]) from None
