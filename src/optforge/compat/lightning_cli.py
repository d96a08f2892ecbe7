"""The optimizer and scheduler a LightningCLI config file makes, built by optforge.

``build(model, config)`` translates the file's ``optimizer:``, ``lr_scheduler:`` and
``trainer.gradient_clip_*`` (:mod:`optforge.config.stacks.lightning`) and builds the
document. Lightning steps the scheduler once per epoch (``interval: epoch``); the
section keeps that, for ``optforge.integrations.lightning``. Fields the document does
not carry are named in one warning. Lightning itself is not imported.

Example:
    >>> import torch
    >>> config = {"optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1, "momentum": 0.9}},
    ...           "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR",
    ...                            "init_args": {"step_size": 1, "gamma": 0.5}}}
    >>> optimizer, scheduler = build(torch.nn.Linear(4, 2), config)
    >>> optimizer.step(); scheduler.step(); scheduler.get_last_lr()
    [0.05]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from optforge.builder import build as build_document
from optforge.compat.mmengine import document_path, warn_unexpressed
from optforge.config.stacks.lightning import translate
from optforge.errors import ConfigError

__all__ = ["build"]

# Where each part of the translated document comes from in the file.
_SOURCES: tuple[tuple[str, str], ...] = (
    ("optimizer.name", "optimizer.class_path"),
    ("optimizer", "optimizer.init_args"),
    ("schedule.name", "lr_scheduler.class_path"),
    ("schedule.monitor", "lr_scheduler.init_args.monitor"),
    ("schedule", "lr_scheduler.init_args"),
    ("clip_grad", "trainer.gradient_clip_val"),
)


def build(model: torch.nn.Module, config: Mapping[str, Any]) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and scheduler of a LightningCLI config (the whole file, or its ``optimizer``,
    ``lr_scheduler`` and ``trainer`` keys).

    Raises:
        ConfigError: listing every problem at its field path in the file, before anything is built.
    """
    translation = translate(config, {})
    warn_unexpressed(translation)
    try:
        return build_document(model, translation.document)
    except ConfigError as err:
        raise ConfigError.from_problems([(document_path(p, _SOURCES), m) for p, m in err.problems]) from None
