"""The recommender's form: ``adam: {beta_1, beta_2, epsilon}`` beside ``single_task_learning_rate`` or
``multi_task_learning_rates``.

Example:
    >>> parse({"adam": {"beta_1": 0.8}, "single_task_learning_rate": {"constant": 0.1}}, "optimizer").name
    'Adam'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optforge._validation import parse_model
from optforge.config.section import OptimizerSection, one_mapping
from optforge.config.sections import TYPED_OPTIMIZERS, RecapOptimizerConfig
from optforge.errors import format_path

__all__ = ["TOWERS_KEY", "parse", "recognises"]

TOWERS_KEY = "multi_task_learning_rates"


def recognises(section: Mapping[str, Any]) -> bool:
    """A section with ``single_task_learning_rate``, or towers beside an ``adam`` without ``lr``."""
    if "single_task_learning_rate" in section:
        return True
    if TOWERS_KEY not in section or "learning_rate" in section:
        return False
    adam = section.get("adam")
    return (isinstance(adam, Mapping) and "lr" not in adam) or not any(key in section for key in TYPED_OPTIMIZERS)


def parse(section: Mapping[str, Any], path: str) -> OptimizerSection:
    model = parse_model(RecapOptimizerConfig, section, path)
    adam = model.adam
    return one_mapping(
        "recap",
        "Adam",
        format_path(path, "adam"),
        {"betas": (adam.beta_1, adam.beta_2), "eps": adam.epsilon, "maximize": False},
        learning_rate=model.single_task_learning_rate,
        towers=model.multi_task_learning_rates,
        groups_as_written=True,
        lr_from_schedule=True,
        schedule_key="ALL_PARAMS",
        origin="recap form",
    )
