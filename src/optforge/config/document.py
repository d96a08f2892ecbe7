"""One typed :class:`Document` from any accepted config, with every problem reported at once.

:func:`parse_document` reads a mapping, an OmegaConf config, a YAML/JSON path, a
pydantic model or a dataclass, recognises the form of its optimizer section and
normalises it into an :class:`OptimizerSection` (the registry name, its
hyperparameters and what shapes the build). Every structural problem of the
document is collected and raised as one :class:`~optforge.errors.ConfigError`.
Checks that need the registry (names, hyperparameters against signatures) are
made by the builder, which adds its problems to the same error.

Example:
    >>> doc = parse_document({"name": "Momentum", "class_name": "Momentum", "lr": 0.01,
    ...                       "args": {"momentum": 0.937}, "group": None, "checkpoint": None})
    >>> doc.optimizer.form, doc.optimizer.name, dict(doc.optimizer.hyperparameters)
    ('template', 'Momentum', {'lr': 0.01, 'momentum': 0.937})
    >>> parse_document({"optimizer": {"adam": {"beta_1": 0.8}, "single_task_learning_rate": {"constant": 0.1},
    ...                               "multi_task_learning_rates": None}}).optimizer.hyperparameters["betas"]
    (0.8, 0.999)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optforge._validation import parse_model
from optforge.config.around_step import AROUND_STEP_KEYS, AroundStep, read_around_step
from optforge.config.forms import SECTION_FORMS, parse_section
from optforge.config.forms.parts import PartSection, is_part_list, parse_parts
from optforge.config.forms.recap import TOWERS_KEY
from optforge.config.problems import Problems
from optforge.config.rules import MultiTaskLearningRates
from optforge.config.schedule_section import ScheduleSection, read_schedule_section
from optforge.config.section import OptimizerSection
from optforge.config_source import load_config
from optforge.errors import SYNONYMS, format_path, misspelling_of, truncate, unknown_choice

__all__ = ["DOCUMENT_KEYS", "SECTION_FORMS", "TOWERS_KEY", "Document", "OptimizerSection", "parse_document"]

# Top-level keys of a config document (the optimizer and what goes beside it).
DOCUMENT_KEYS: tuple[str, ...] = ("optimizer", "schedule", "multi_task_learning_rates", *AROUND_STEP_KEYS)


@dataclass(frozen=True)
class Document:
    """A whole config document, parsed.

    Attributes:
        optimizer: The optimizer section (``None`` only when it could not be read).
        parts: The parts of a composite optimizer (``optimizer:`` given as a list), each an
            optimizer section with its selector and name.
        schedule: The ``schedule:`` section as written (the scheduler validates it), or ``None``.
        towers: The task towers (beside ``optimizer:`` or inside its section), or ``None``.
        towers_path: Where the towers were given.
        raw: The document as plain data.
        around_step: What runs around each step (``clip_grad:``, ``ema:``, ``skip_nonfinite:``).
    """

    optimizer: OptimizerSection | None
    parts: tuple[PartSection, ...] = ()
    schedule: Any = None
    towers: MultiTaskLearningRates | None = None
    towers_path: str = TOWERS_KEY
    raw: Mapping[str, Any] = field(default_factory=dict)
    around_step: AroundStep = field(default_factory=AroundStep)

    @property
    def schedule_section(self) -> ScheduleSection:
        """The ``schedule:`` section's variant (see :mod:`optforge.config.schedule_section`)."""
        return read_schedule_section(self.schedule)


def _towers(raw: Any, path: str) -> MultiTaskLearningRates | None:
    return None if raw is None else parse_model(MultiTaskLearningRates, raw, path)


def _top_level_key_meant(key: Any) -> str | None:
    """The document key ``key`` stands for: a synonym (``optimiser``, ``scheduler``) or a typo of one."""
    text = str(key)
    if text in DOCUMENT_KEYS:
        return None
    synonyms = [name for name in SYNONYMS.get(text.lower(), ()) if name in DOCUMENT_KEYS]
    return synonyms[0] if synonyms else misspelling_of(text, DOCUMENT_KEYS)


def read_document(data: Mapping[str, Any], problems: Problems) -> Document:
    """The :class:`Document` of plain data, noting every problem in ``problems``."""
    data = dict(data)
    if "optimizer" in data:
        for key in data:
            if key not in DOCUMENT_KEYS:
                with problems.collect():
                    raise unknown_choice(str(key), key, DOCUMENT_KEYS, what="top-level key")
        section, schedule, towers_raw = data["optimizer"], data.get("schedule"), data.get(TOWERS_KEY)
    else:
        section, schedule, towers_raw = data, None, None
        recognised = any(form.recognises(data) for form in SECTION_FORMS)
        misspelt = {key: _top_level_key_meant(key) for key in data if not recognised}
        if any(misspelt.values()):  # ``optimiser:`` or ``scheduler:``, and no ``optimizer:``
            for key, meant in misspelt.items():
                if meant:
                    problems.add(str(key), f"unknown top-level key {truncate(key)}; did you mean {meant!r}?")
            return Document(None, (), None, None, TOWERS_KEY, data)
    optimizer, parts, towers, towers_path = None, (), None, TOWERS_KEY
    around_step = read_around_step(data if "optimizer" in data else {}, problems)
    with problems.collect():
        towers = _towers(towers_raw, TOWERS_KEY)
    if is_part_list(section):
        parts = parse_parts(section, "optimizer", problems)
    else:
        with problems.collect():
            optimizer = parse_section(section, "optimizer")
    if optimizer is not None and optimizer.towers is not None:
        if towers is not None:
            problems.add(
                format_path(optimizer.path.split(".")[0], TOWERS_KEY),
                f"towers are given twice: here and as the top-level {TOWERS_KEY}; keep one",
            )
        towers, towers_path = optimizer.towers, format_path("optimizer" if "optimizer" in data else "", TOWERS_KEY)
    if optimizer is not None and optimizer.learning_rate is not None and schedule is not None:
        problems.add(
            "schedule",
            f"the schedule is given twice: as the optimizer section's "
            f"{'learning_rate' if optimizer.form == 'typed' else 'single_task_learning_rate'} "
            "and as schedule; keep one",
        )
    return Document(optimizer, parts, schedule, towers, towers_path, data, around_step)


def parse_document(source: Any, problems: Problems | None = None) -> Document:
    """Parse any accepted config into a :class:`Document`.

    Args:
        source: A mapping, an OmegaConf config, a path to a YAML/JSON file, a
            pydantic model or a dataclass, in any of the forms of
            :mod:`optforge.config.sections`, optionally under ``optimizer:``.
        problems: Where to note problems instead of raising; the caller raises.

    Raises:
        ConfigError: listing every problem of the document (without ``problems``).
    """
    own = problems is None
    problems = Problems() if problems is None else problems
    data = load_config(source)
    document = read_document(data, problems)
    if own:
        problems.raise_if_any()
    return document
