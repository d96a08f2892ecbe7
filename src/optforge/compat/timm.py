"""timm ``train.py``'s optimizer, scheduler, clipping and EMA from its arguments, built by optforge.

``build(model, args)`` translates the arguments (:mod:`optforge.config.stacks.timm`)
and builds the document (with ``layer_decay``, the layers are the model's as timm counts
them: :func:`layer_ids`): timm's optimizer and timm's scheduler, stepped with
``scheduler.step()`` once per epoch (or per update with ``sched_on_updates``).

Example:
    >>> import torch
    >>> optimizer, scheduler = build(torch.nn.Linear(4, 2), {"opt": "sgd", "lr": 0.1, "sched": "step",
    ...                                                     "decay_epochs": 2, "warmup_epochs": 0})
    >>> type(optimizer).__name__, optimizer.param_groups[0]["nesterov"], scheduler.get_last_lr()
    ('SGD', True, [0.1, 0.1])
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import torch

from optforge.builder import build as build_document
from optforge.compat.mmengine import document_path, warn_unexpressed
from optforge.config.stacks.timm import translate
from optforge.errors import ConfigError

__all__ = ["build", "layer_ids"]

_SOURCES = (
    ("optimizer.lr", "lr"),
    ("optimizer.momentum", "momentum"),
    ("optimizer.weight_decay", "weight_decay"),
    ("optimizer.eps", "opt_eps"),
    ("optimizer.betas", "opt_betas"),
    ("optimizer.layer_decay", "layer_decay"),
    ("optimizer", "opt_kwargs"),
    ("schedule", "sched"),
    ("clip_grad", "clip_grad"),
    ("ema", "model_ema_decay"),
)


def layer_ids(model: torch.nn.Module) -> dict[str, int]:
    """Each parameter's layer id as ``create_optimizer_v2(..., layer_decay=...)`` counts them.

    The ids come from the model's ``group_matcher(coarse=False)`` (timm's models have one),
    else from timm's automatic grouping; a parameter neither names is in the top layer.

    Example:
        >>> import timm
        >>> model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2)
        >>> ids = layer_ids(model)
        >>> ids["cls_token"], ids["blocks.1.attn.qkv.weight"], ids["head.bias"]
        (0, 2, 3)
    """
    # timm is an optional dependency: imported when layer ids are asked for.
    from timm.models import group_parameters
    from timm.optim import auto_group_layers

    if hasattr(model, "group_matcher"):
        found = dict(group_parameters(model, model.group_matcher(coarse=False), reverse=True))
    else:
        found = dict(auto_group_layers(model))
    top = max(found.values(), default=0)
    return {name: found.get(name, top) for name, param in model.named_parameters() if param.requires_grad}


def build(
    model: torch.nn.Module,
    args: argparse.Namespace | Mapping[str, Any],
    *,
    updates_per_epoch: int | None = None,
    world_size: int = 1,
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and scheduler train.py makes of ``args`` (a Namespace or a mapping).

    Raises:
        ConfigError: listing every problem at its train.py argument, before anything is built.
    """
    data = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    run: dict[str, Any] = {"updates_per_epoch": updates_per_epoch, "world_size": world_size}
    if data.get("layer_decay") is not None:
        run["layer_ids"] = layer_ids(model)
    translation = translate(data, run)
    warn_unexpressed(translation)
    try:
        return build_document(model, translation.document)
    except ConfigError as err:
        raise ConfigError.from_problems([(document_path(p, _SOURCES), m) for p, m in err.problems]) from None
