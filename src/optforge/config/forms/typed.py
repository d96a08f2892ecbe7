"""The typed form: exactly one of ``adam``, ``sgd``, ``adagrad`` beside an optional ``learning_rate``.

Example:
    >>> parse({"sgd": {"lr": 0.1}}, "optimizer").name
    'SGD'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optforge._validation import parse_model
from optforge.config.section import OptimizerSection, one_mapping
from optforge.config.sections import TYPED_OPTIMIZERS, OptimizerConfig
from optforge.errors import format_path

__all__ = ["parse", "recognises"]


def recognises(section: Mapping[str, Any]) -> bool:
    """A section naming one of the typed optimizers, or a ``learning_rate``."""
    return any(key in section for key in (*TYPED_OPTIMIZERS, "learning_rate"))


def parse(section: Mapping[str, Any], path: str) -> OptimizerSection:
    model = parse_model(OptimizerConfig, section, path)
    choice, sub = model.chosen()
    return one_mapping(
        "typed",
        TYPED_OPTIMIZERS[choice],
        format_path(path, choice),
        sub.model_dump(),
        learning_rate=model.learning_rate,
        towers=model.multi_task_learning_rates,
        schedule_key="ALL_PARAMS",
        origin="typed form",
    )
