"""An optimizer section checked against the registry: the entry and its ready hyperparameters.

Example:
    >>> spec = resolve_optimizer_spec({"optimizer": {"name": "AdamW", "lr": 1e-3, "betas": [0.9, 0.95]}})
    >>> spec.entry.name, spec.hyperparameters["betas"], spec.groups_as_written
    ('AdamW', (0.9, 0.95), False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optforge.config import Document, MultiTaskLearningRates, OptimizerSection, Problems, parse_document
from optforge.errors import ConfigError
from optforge.hyperparameters import check_hyperparameters
from optforge.lr_schedulers.registry import is_scheduler_name
from optforge.registry import OptimizerEntry, get_optimizer_entry
from optforge.schedules import LearningRate

__all__ = ["OptimizerSpec", "ResolvedDocument", "resolve_document", "resolve_optimizer_spec", "resolve_section"]


@dataclass(frozen=True)
class OptimizerSpec:
    """A validated optimizer section, ready to build.

    Attributes:
        entry: The registry entry of the chosen optimizer.
        hyperparameters: Checked keyword arguments (bound defaults included).
        path: The config path of the optimizer section, for messages.
        learning_rate: The section's own schedule (typed form ``learning_rate``,
            recap ``single_task_learning_rate``), if it has one.
        document: The whole config document it came from, as plain data.
        options: Values of the section's build options (``param_groups``, ``no_weight_decay``...).
        section: The parsed section (its form, template groups, composite selector).
        towers: The document's task towers, if any.
        towers_path: Where the towers were given.
        schedule: The document's ``schedule:`` section as written, if any.
    """

    entry: OptimizerEntry
    hyperparameters: dict[str, Any]
    path: str = "optimizer"
    learning_rate: LearningRate | None = None
    document: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    section: OptimizerSection | None = None
    towers: MultiTaskLearningRates | None = None
    towers_path: str = "multi_task_learning_rates"
    schedule: Any = None

    @property
    def groups_as_written(self) -> bool:
        """Whether the section's form groups the parameters as its own system does (no presets, no merging)."""
        return self.section is not None and self.section.groups_as_written

    @property
    def lr_from_schedule(self) -> bool:
        """Whether the constructor's ``lr`` is the section's schedule at step 0."""
        return self.section is not None and self.section.lr_from_schedule

    @property
    def schedule_key(self) -> str | None:
        """The scheduler's name for the section's own schedule over one group (``ALL_PARAMS``), if any."""
        return self.section.schedule_key if self.section is not None else None

    @property
    def origin(self) -> str:
        """How explanations name where the section's groups came from."""
        return self.section.origin if self.section is not None else ""


@dataclass(frozen=True)
class ResolvedDocument:
    """A parsed document whose optimizer sections are checked against the registry.

    Attributes:
        document: The parsed document.
        spec: The optimizer's spec (``None`` for a composite optimizer, whose
            parts :mod:`optforge.composite_plan` resolves).
    """

    document: Document
    spec: OptimizerSpec | None


def _optimizer_entry(name: Any, path: str) -> OptimizerEntry:
    """The registry entry of ``name``; a scheduler's name is an error that says where it goes."""
    try:
        return get_optimizer_entry(name, path=path)
    except ConfigError:
        if isinstance(name, str) and is_scheduler_name(name):
            raise ConfigError(
                f"{name!r} is a learning-rate scheduler, not an optimizer: give it as "
                f"schedule: {{name: {name}, ...}} beside the optimizer section",
                path=path,
            ) from None
        raise


def resolve_section(section: OptimizerSection, document: Document, problems: Problems) -> OptimizerSpec | None:
    """Check ``section`` against the registry, noting every problem; ``None`` when its optimizer is unknown."""
    entry = None
    with problems.collect():
        found = _optimizer_entry(section.name, section.name_path)
        reason = found.unavailable_reason()
        if reason:  # before the signature is read: that may import a package that is missing
            raise ConfigError(f"{found.name} cannot be built here: {reason}", path=section.name_path)
        entry = found
    if entry is None:
        return None
    by_path: dict[str, dict[str, Any]] = {}  # the template form holds lr and args in two mappings
    for key, value in section.hyperparameters.items():
        by_path.setdefault(section.hyperparameter_paths[key], {})[key] = value
    checked: dict[str, Any] = {}
    for path, values in by_path.items():
        with problems.collect():  # check_hyperparameters reports every problem of its mapping
            checked.update(check_hyperparameters(entry, values, path))
    return OptimizerSpec(
        entry,
        {**entry.defaults, **checked},
        section.path,
        section.learning_rate,
        document.raw,
        dict(section.options),
        section,
        document.towers,
        document.towers_path,
        document.schedule,
    )


def resolve_document(config: Any, problems: Problems | None = None) -> ResolvedDocument:
    """Parse ``config`` and check its optimizer sections against the registry.

    Raises:
        ConfigError: listing every problem found (without ``problems``, where they are noted instead).
    """
    own = problems is None
    problems = Problems() if problems is None else problems
    document = parse_document(config, problems)
    spec = None if document.optimizer is None else resolve_section(document.optimizer, document, problems)
    if own:
        problems.raise_if_any()
    return ResolvedDocument(document, spec)


def resolve_optimizer_spec(config: Any) -> OptimizerSpec:
    """Validate any single-optimizer config into an :class:`OptimizerSpec` (nothing is built).

    Raises:
        ConfigError: for any problem in the config, naming its path.
    """
    resolved = resolve_document(config)
    if resolved.spec is None:
        raise ConfigError("a composite optimizer (a list of parts) has one spec per part", path="optimizer")
    return resolved.spec
