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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optforge._validation import parse_model
from optforge.config.problems import Problems
from optforge.config.rules import MultiTaskLearningRates
from optforge.config.schedule_section import ScheduleSection, read_schedule_section
from optforge.config.sections import (
    BUILD_OPTIONS,
    TYPED_OPTIMIZERS,
    OptimizerConfig,
    RecapOptimizerConfig,
    TemplateOptimizerConfig,
)
from optforge.config_source import load_config
from optforge.errors import SYNONYMS, ConfigError, format_path, misspelling_of, truncate, unknown_choice
from optforge.schedules import LearningRate

__all__ = ["DOCUMENT_KEYS", "SECTION_FORMS", "Document", "OptimizerSection", "parse_document"]

# Top-level keys of a config document (the optimizer and what goes beside it).
DOCUMENT_KEYS: tuple[str, ...] = ("optimizer", "schedule", "multi_task_learning_rates")
TOWERS_KEY = "multi_task_learning_rates"


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


@dataclass(frozen=True)
class Document:
    """A whole config document, parsed.

    Attributes:
        optimizer: The optimizer section (``None`` only when it could not be read).
        parts: The parts of a composite optimizer (``optimizer:`` given as a list), as written;
            :mod:`optforge.composite` parses them, each as an optimizer section with a selector.
        schedule: The ``schedule:`` section as written (the scheduler validates it), or ``None``.
        towers: The task towers (beside ``optimizer:`` or inside its section), or ``None``.
        towers_path: Where the towers were given.
        raw: The document as plain data.
    """

    optimizer: OptimizerSection | None
    parts: tuple[Any, ...] = ()
    schedule: Any = None
    towers: MultiTaskLearningRates | None = None
    towers_path: str = TOWERS_KEY
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def schedule_section(self) -> ScheduleSection:
        """The ``schedule:`` section's variant (see :mod:`optforge.config.schedule_section`)."""
        return read_schedule_section(self.schedule)


def _flat(section: Mapping[str, Any], path: str) -> OptimizerSection:
    section = dict(section)
    name = section.pop("name")  # the registry checks it
    options = {key: section.pop(key) for key in list(section) if key in BUILD_OPTIONS}
    for key in section:
        if not isinstance(key, str):
            raise ConfigError(f"hyperparameter names must be strings, got {key!r}", path=path)
    return OptimizerSection(
        "flat", name, format_path(path, "name"), path, section, dict.fromkeys(section, path), options
    )


def _one_mapping(form: str, name: str, where: str, values: dict[str, Any], **fields: Any) -> OptimizerSection:
    """A section whose hyperparameters all sit in one mapping at ``where``."""
    return OptimizerSection(form, name, where, where, values, dict.fromkeys(values, where), **fields)


def _typed(section: Mapping[str, Any], path: str) -> OptimizerSection:
    model = parse_model(OptimizerConfig, section, path)
    choice, sub = model.chosen()
    return _one_mapping(
        "typed",
        TYPED_OPTIMIZERS[choice],
        format_path(path, choice),
        sub.model_dump(),
        learning_rate=model.learning_rate,
        towers=model.multi_task_learning_rates,
        schedule_key="ALL_PARAMS",
        origin="typed form",
    )


def _recap(section: Mapping[str, Any], path: str) -> OptimizerSection:
    model = parse_model(RecapOptimizerConfig, section, path)
    adam = model.adam
    return _one_mapping(
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


def _template(section: Mapping[str, Any], path: str) -> OptimizerSection:
    model = parse_model(TemplateOptimizerConfig, section, path)
    args = dict(model.args or {})
    if "lr" in args:
        raise ConfigError("lr is given twice: as the section's lr and in args; keep the section's", path=f"{path}.args")
    values = {"lr": model.lr, **args}
    paths = {"lr": path, **dict.fromkeys(args, format_path(path, "args"))}
    return OptimizerSection(
        "template",
        model.class_name,
        format_path(path, "class_name"),
        path,
        values,
        paths,
        template=model,
        groups_as_written=True,
        origin="template form",
    )


def _is_recap(section: Mapping[str, Any]) -> bool:
    if "single_task_learning_rate" in section:
        return True
    if TOWERS_KEY not in section or "learning_rate" in section:
        return False
    adam = section.get("adam")
    return (isinstance(adam, Mapping) and "lr" not in adam) or not any(key in section for key in TYPED_OPTIMIZERS)


# The forms of an optimizer section, in the order they are recognised: (form, recognises it, parses it).
SECTION_FORMS: tuple[tuple[str, Callable[[Mapping[str, Any]], bool], Callable[..., OptimizerSection]], ...] = (
    ("template", lambda s: "class_name" in s, _template),
    ("flat", lambda s: "name" in s, _flat),
    ("recap", _is_recap, _recap),
    ("typed", lambda s: any(key in s for key in (*TYPED_OPTIMIZERS, "learning_rate")), _typed),
)


def _section(section: Any, path: str) -> OptimizerSection:
    if not isinstance(section, Mapping):
        raise ConfigError(f"expected a mapping, got {type(section).__name__} {section!r}", path=path)
    for _form, recognises, parse in SECTION_FORMS:
        if recognises(section):
            return parse(section, path)
    keys = ", ".join(sorted(map(str, section)))
    raise ConfigError(
        "an optimizer config needs a 'name' (flat form, e.g. {name: AdamW, lr: 0.001}), "
        f"exactly one of {', '.join(TYPED_OPTIMIZERS)} (typed form), a 'class_name' (template form: "
        "{name, class_name, lr, args, group, checkpoint}) or adam with single_task_learning_rate or "
        f"multi_task_learning_rates; got keys [{keys}]",
        path=path,
    )


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
        misspelt = {key: _top_level_key_meant(key) for key in data if not any(r(data) for _, r, _ in SECTION_FORMS)}
        if any(misspelt.values()):  # ``optimiser:`` or ``scheduler:``, and no ``optimizer:``
            for key, meant in misspelt.items():
                if meant:
                    problems.add(str(key), f"unknown top-level key {truncate(key)}; did you mean {meant!r}?")
            return Document(None, (), None, None, TOWERS_KEY, data)
    optimizer, parts, towers, towers_path = None, (), None, TOWERS_KEY
    with problems.collect():
        towers = _towers(towers_raw, TOWERS_KEY)
    if isinstance(section, Sequence) and not isinstance(section, (str, bytes)):
        parts = tuple(section)  # a composite optimizer: optforge.composite reads its parts
    else:
        with problems.collect():
            optimizer = _section(section, "optimizer")
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
    return Document(optimizer, parts, schedule, towers, towers_path, data)


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
