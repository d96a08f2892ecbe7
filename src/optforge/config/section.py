"""One optimizer section, whatever form it was written in: what the builders read.

Example:
    >>> section = OptimizerSection("flat", "SGD", "optimizer.name", "optimizer", {"lr": 0.1}, {"lr": "optimizer"})
    >>> section.name, section.groups_as_written
    ('SGD', False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optforge.config.rules import MultiTaskLearningRates
from optforge.config.sections import TemplateOptimizerConfig
from optforge.schedules import LearningRate

__all__ = ["OptimizerSection", "one_mapping"]


@dataclass(frozen=True)
class OptimizerSection:
    """One optimizer section, whatever form it was written in.

    Attributes:
        form: ``"flat"``, ``"typed"``, ``"recap"`` or ``"template"``.
        name: The registry name of the optimizer.
        name_path: The config path of the field naming it.
        path: The config path of the section, for messages about it as a whole.
        hyperparameters: Keyword arguments for the optimizer, as written (not yet
            checked against its signature).
        hyperparameter_paths: For each hyperparameter, the path of the mapping that holds it.
        options: The section's build options (:data:`~optforge.config.BUILD_OPTIONS`).
        learning_rate: The section's own schedule (typed and recap forms).
        towers: Task towers given inside the section, if any.
        template: The template form's model (its ``group`` and ``checkpoint``).
        groups_as_written: The parameters are grouped as the form's own system groups them (the
            template's ``group`` substrings, the recommender's towers): no presets, no merging.
        lr_from_schedule: The constructor's ``lr`` is the section's schedule at step 0.
        schedule_key: The name the scheduler gives the section's own schedule over one group
            (the recommender's ``LRShim`` keys it ``ALL_PARAMS``); ``None`` for a section whose
            groups are named by their labels.
        origin: How explanations name where the groups came from (``"template form"``).
    """

    form: str
    name: str
    name_path: str
    path: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    hyperparameter_paths: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    learning_rate: LearningRate | None = None
    towers: MultiTaskLearningRates | None = None
    template: TemplateOptimizerConfig | None = None
    groups_as_written: bool = False
    lr_from_schedule: bool = False
    schedule_key: str | None = None
    origin: str = ""


def one_mapping(form: str, name: str, where: str, values: dict[str, Any], **fields: Any) -> OptimizerSection:
    """A section whose hyperparameters all sit in one mapping at ``where``."""
    return OptimizerSection(form, name, where, where, values, dict.fromkeys(values, where), **fields)
