"""Hugging Face's ``Trainer`` optimizer and scheduler, built by optforge from the same ``TrainingArguments``.

``build(model, args, num_training_steps)`` returns what
``Trainer.create_optimizer_and_scheduler(num_training_steps)`` builds: the same optimizer
class and hyperparameters, the same two param groups, the same lr at every step, and
``max_grad_norm`` as clipping. ``args`` is a ``TrainingArguments``, a mapping of its fields
or the path of a JSON/YAML file of them; transformers itself is never imported.

Example:
    >>> import torch
    >>> from optforge.compat import hf
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    >>> args = {"optim": "adamw_torch", "learning_rate": 1e-3, "weight_decay": 0.01, "warmup_steps": 10}
    >>> optimizer, scheduler = hf.build(model, args, num_training_steps=100)
    >>> [(len(g["params"]), g["weight_decay"]) for g in optimizer.param_groups]
    [(1, 0.01), (3, 0.0)]
    >>> for _ in range(10):
    ...     optimizer.step(); scheduler.step()
    >>> optimizer.param_groups[0]["lr"]
    0.001
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import torch

from optforge.builder import build as build_document
from optforge.config.stacks import Translation, huggingface
from optforge.config_source import read_config

__all__ = ["build", "fields_of", "translate"]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def fields_of(args: Any) -> dict[str, Any]:
    """The fields of ``args``: a ``TrainingArguments`` (the fields it reads, and the others
    that differ from their defaults), a mapping, or a JSON/YAML path."""
    if dataclasses.is_dataclass(args) and not isinstance(args, type):
        fields: dict[str, Any] = {}
        for field in dataclasses.fields(args):
            if not field.init or field.name not in huggingface.FIELDS:
                continue
            value = _plain(getattr(args, field.name))
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            if field.name in huggingface.READ or value != _plain(default):
                fields[field.name] = value
        return fields
    data = read_config(args)
    return {key: _plain(value) for key, value in data.items()} if isinstance(data, Mapping) else data


def translate(args: Any, num_training_steps: int | None = None) -> Translation:
    """The optforge document of ``args`` and every field it does not carry."""
    run = {} if num_training_steps is None else {"num_training_steps": num_training_steps}
    return huggingface.translate(fields_of(args), run)


def build(
    model: Any, args: Any, num_training_steps: int | None = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The Trainer's optimizer and scheduler for ``model``, a run of ``num_training_steps`` optimizer steps.

    Raises:
        ConfigError: listing every problem, each at its ``TrainingArguments`` field.
    """
    return build_document(model, fields_of(args), total_steps=num_training_steps, stack="huggingface")
