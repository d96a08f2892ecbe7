"""DeepSpeed's optimizer, lr scheduler and clipping from its JSON config, built by optforge.

``build(model, config)`` returns what DeepSpeed 0.19.8's engine builds from the config's
``optimizer``, ``scheduler`` and ``gradient_clipping`` (:mod:`optforge.config.stacks.deepspeed`):
the same optimizer class and hyperparameters over one param group, and a scheduler whose lr
(and OneCycle's betas) equals DeepSpeed's at every step. Step it as the engine does: once
per optimizer step, after ``optimizer.step()``. The engine's own sections are named in one
warning; DeepSpeed itself is never imported.

Example:
    >>> import warnings
    >>> import torch
    >>> config = {"train_batch_size": 32,
    ...           "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decay": 0.01}},
    ...           "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 10, "warmup_type": "linear"}}}
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     optimizer, scheduler = build(torch.nn.Linear(4, 2), config)
    >>> type(optimizer).__name__, optimizer.param_groups[0]["lr"], [str(w.message)[:16] for w in caught]
    ('AdamW', 0.0, ['train_batch_size'])
    >>> for _ in range(11):
    ...     optimizer.step(); scheduler.step()
    >>> optimizer.param_groups[0]["lr"]
    0.001
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from optforge.builder import build as build_document
from optforge.compat.mmengine import document_path
from optforge.config.stacks import StackWarning, Translation
from optforge.config.stacks.deepspeed import translate as translate_config
from optforge.config_source import read_config
from optforge.errors import ConfigError, truncate

__all__ = ["build", "translate"]

# Where each part of the translated document comes from in DeepSpeed's config.
_SOURCES: tuple[tuple[str, str], ...] = (
    ("optimizer.name", "optimizer.type"),
    ("optimizer", "optimizer.params"),
    ("schedule.name", "scheduler.type"),
    ("schedule", "scheduler.params"),
    ("clip_grad", "gradient_clipping"),
)


def translate(config: Any, total_num_steps: int | None = None) -> Translation:
    """The optforge document of ``config`` (a mapping, or a JSON/YAML path) and every field it does not carry.

    ``total_num_steps`` fills a ``scheduler.params.total_num_steps: "auto"``.

    Raises:
        ConfigError: listing every problem at DeepSpeed's field path.
    """
    data = read_config(config)
    if not isinstance(data, Mapping):
        raise ConfigError(f"a DeepSpeed config is a mapping, got {type(data).__name__}", path="config")
    run = {} if total_num_steps is None else {"total_num_steps": total_num_steps}
    return translate_config(data, run)


def build(
    model: Any, config: Any, total_num_steps: int | None = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The engine's optimizer and scheduler for ``model`` from a DeepSpeed config (a mapping or a path).

    Raises:
        ConfigError: listing every problem at DeepSpeed's field path, before anything is built.
    """
    translation = translate(config, total_num_steps)
    for field in translation.unexpressed:
        warnings.warn(f"{field.path}: {truncate(field.value)}: {field.reason}", StackWarning, stacklevel=2)
    try:
        return build_document(model, translation.document)
    except ConfigError as err:
        raise ConfigError.from_problems([(document_path(p, _SOURCES), m) for p, m in err.problems]) from None
