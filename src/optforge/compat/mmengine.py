"""mmengine's optimizer settings, built by optforge: ``build(model, optim_wrapper, param_scheduler)``.

The config's ``optim_wrapper`` and ``param_scheduler`` are translated into an optforge
document (:mod:`optforge.config.stacks.mmengine`), which builds the optimizer,
its scheduler and the clipping. Step the scheduler once per iteration, after the
optimizer, as mmengine's runner does (its by-epoch schedulers step every
``epoch_length`` iterations). Fields the document does not carry are named in one
warning. mmengine itself is not imported.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    >>> optim_wrapper = {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
    ...                  "paramwise_cfg": {"norm_decay_mult": 0.0}}
    >>> schedulers = [{"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "begin": 0, "end": 3}]
    >>> optimizer, scheduler = build(model, optim_wrapper, schedulers, max_iters=100)
    >>> sorted(group["weight_decay"] for group in optimizer.param_groups), optimizer.param_groups[0]["lr"]
    ([0.0, 0.0001], 0.05)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from optforge.builder import build as build_document
from optforge.config.stacks.base import Translation
from optforge.config.stacks.mmengine import rule_paths, translate
from optforge.errors import ConfigError

__all__ = ["build", "document_path", "warn_unexpressed"]

# Where each part of the translated document comes from in mmengine's config.
_SOURCES: tuple[tuple[str, str], ...] = (
    ("optimizer.param_groups", "optim_wrapper.paramwise_cfg"),
    ("optimizer", "optim_wrapper.optimizer"),
    ("schedule.schedulers", "param_scheduler"),
    ("schedule", "param_scheduler"),
    ("clip_grad", "optim_wrapper.clip_grad"),
)


def document_path(path: str, sources: Sequence[tuple[str, str]] = _SOURCES) -> str:
    """The stack's field path of a path in the translated document.

    Example:
        >>> document_path("optimizer.momentum"), document_path("schedule.schedulers[1].end")
        ('optim_wrapper.optimizer.momentum', 'param_scheduler[1].end')
    """
    for prefix, source in sources:
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            return source + path[len(prefix) :]
    return path


def warn_unexpressed(translation: Translation, stacklevel: int = 3) -> None:
    """One warning naming every field of the stack's file that the document does not carry."""
    if translation.unexpressed:
        lines = [f"{item.path}: {item.reason}" for item in translation.unexpressed]
        warnings.warn(
            f"{translation.stack} fields not built by optforge:\n  " + "\n  ".join(lines),
            UserWarning,
            stacklevel=stacklevel,
        )


def build(
    model: torch.nn.Module,
    optim_wrapper: Mapping[str, Any],
    param_scheduler: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    *,
    max_epochs: int | None = None,
    max_iters: int | None = None,
    epoch_length: int | None = None,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer and scheduler of mmengine's ``optim_wrapper`` and ``param_scheduler``.

    Args:
        model: The model whose parameters are optimized.
        optim_wrapper: mmengine's ``optim_wrapper`` dict.
        param_scheduler: mmengine's ``param_scheduler`` list (or one dict).
        max_epochs: The train loop's epochs: the ``end`` of by-epoch schedulers without one.
        max_iters: The train loop's iterations: the ``end`` of by-iteration schedulers without one.
        epoch_length: Iterations per epoch (``len(train_dataloader)``).

    Raises:
        ConfigError: listing every problem at its mmengine field path, before anything is built.
    """
    data: dict[str, Any] = {"optim_wrapper": optim_wrapper}
    if param_scheduler is not None:
        data["param_scheduler"] = param_scheduler
    run = {"max_epochs": max_epochs, "max_iters": max_iters, "epoch_length": epoch_length}
    translation = translate(data, run)
    warn_unexpressed(translation)
    try:
        return build_document(model, translation.document)
    except ConfigError as err:
        rules = rule_paths(data)
        sources = [(f"optimizer.param_groups[{i}]", path) for i, path in enumerate(rules)] + list(_SOURCES)
        raise ConfigError.from_problems([(document_path(p, sources), m) for p, m in err.problems]) from None
