"""Hugging Face transformers' own optimizer (``pip install -e '.[transformers]'``), loaded on first use.

``transformers.Adafactor`` is ``transformers.optimization.Adafactor`` with its own defaults
(relative step sizes, parameter scaling); ``transformers.trainer_adafactor`` is the one the
``Trainer`` builds for ``optim: adafactor``: ``scale_parameter=False, relative_step=False``,
so that ``lr`` is the step size. Its weight decay is decoupled (``p -= lr * wd * p``).

Example:
    >>> sorted(TRAINER_DEFAULTS)
    ['relative_step', 'scale_parameter']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optforge.registry import register_optimizer

__all__ = ["TRAINER_DEFAULTS", "register"]

# Where the class lives: named, not imported, until an entry is built.
_ADAFACTOR = "transformers.optimization:Adafactor"

# What the Trainer binds for optim: adafactor (transformers' trainer_optimizer._get_adafactor).
TRAINER_DEFAULTS: Mapping[str, Any] = {"scale_parameter": False, "relative_step": False}


def register() -> None:
    """Register transformers' Adafactor, as itself and as the Trainer's preset."""
    register_optimizer(
        _ADAFACTOR,
        name="transformers.Adafactor",
        provider="transformers",
        decoupled_weight_decay=True,
        description="Hugging Face transformers' Adafactor (its own defaults: relative step sizes)",
    )
    register_optimizer(
        _ADAFACTOR,
        name="transformers.trainer_adafactor",
        defaults=TRAINER_DEFAULTS,
        provider="transformers",
        decoupled_weight_decay=True,
        description="transformers' Adafactor as the Trainer builds it (scale_parameter and relative_step off)",
    )
