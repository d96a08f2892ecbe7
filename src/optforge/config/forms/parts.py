"""The parts of a composite optimizer: ``optimizer:`` written as a list of optimizer sections.

Each part is an optimizer section in any form, plus two keys of its own: ``params``
(a selector in the rule language) and ``part`` (its name). :func:`parse_parts` reads
each into a :class:`PartSection`; what needs the registry or the model (the default
name, which parameters a selector takes) is left to the builder of the composite.

Example:
    >>> from optforge.config.problems import Problems
    >>> problems = Problems()
    >>> muon, rest = parse_parts([{"name": "Muon", "params": {"ndim": 2}}, {"name": "AdamW"}], "optimizer", problems)
    >>> muon.section.name, muon.selector.ndim, rest.selector, rest.path
    ('Muon', 2, None, 'optimizer[1]')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optforge._validation import parse_model
from optforge.config.forms import parse_section
from optforge.config.problems import Problems
from optforge.config.rules import ParamGroupRule
from optforge.config.section import OptimizerSection
from optforge.errors import ConfigError, format_path, unknown_choice

__all__ = ["PART_KEYS", "SELECTOR_KEYS", "PartSection", "is_part_list", "parse_parts"]

# Keys of a part beside those of an optimizer section, with what each does.
PART_KEYS: dict[str, str] = {
    "params": "which parameters the part takes: match, regex, module_type, ndim (first part wins; "
    "a part without it takes the parameters no earlier part took)",
    "part": "the part's name (default: the optimizer's name in lower case); prefixes its group names",
}

# Keys of a ``params`` selector (a param-group rule's selectors).
SELECTOR_KEYS: tuple[str, ...] = ("match", "regex", "module_type", "ndim")


@dataclass(frozen=True)
class PartSection:
    """One part of a composite optimizer, parsed.

    Attributes:
        index: Its place in the list.
        path: Its config path (``optimizer[0]``).
        section: Its optimizer section; ``None`` when the part is not a mapping or its section is broken.
        selector: Its ``params`` selector; ``None`` for a part that takes the parameters left.
        broken: The part is not a mapping, or its selector could not be read: it takes no parameter.
        name: The name given as ``part``; ``None`` for the default (the optimizer's name in lower case).
    """

    index: int
    path: str
    section: OptimizerSection | None
    selector: ParamGroupRule | None = None
    broken: bool = False
    name: str | None = None

    @property
    def selector_path(self) -> str:
        """The config path of the part's ``params`` selector."""
        return format_path(self.path, "params")


def is_part_list(section: Any) -> bool:
    """Whether an ``optimizer:`` section is a list of parts."""
    return isinstance(section, Sequence) and not isinstance(section, (str, bytes))


def _selector(raw: Any, where: str) -> ParamGroupRule:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"expected a mapping of {', '.join(SELECTOR_KEYS)}, got {type(raw).__name__} {raw!r}", path=where
        )
    for key in raw:
        if key not in SELECTOR_KEYS:
            raise unknown_choice(format_path(where, str(key)), key, SELECTOR_KEYS, what="key in a params selector")
    config = parse_model(ParamGroupRule, dict(raw), where)
    if config.match is None and config.module_type is None and config.ndim is None:
        raise ConfigError("a params selector needs match, module_type or ndim", path=where)
    return config


def _given_name(raw: Mapping[str, Any], where: str) -> str | None:
    name = raw.get("part")
    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        raise ConfigError(
            f"a part name is a non-empty string without '/', got {name!r}", path=format_path(where, "part")
        )
    return name


def _parse_part(raw: Any, index: int, where: str, problems: Problems) -> PartSection:
    if not isinstance(raw, Mapping):
        problems.add(where, f"expected an optimizer section (a mapping), got {type(raw).__name__} {raw!r}")
        return PartSection(index, where, None, broken=True)
    section = selector = name = None
    broken = False
    with problems.collect():
        section = parse_section({key: value for key, value in raw.items() if key not in PART_KEYS}, where)
    if raw.get("params") is not None:
        try:
            selector = _selector(raw["params"], format_path(where, "params"))
        except ConfigError as err:
            problems.extend(err)
            broken = True
    with problems.collect():
        name = _given_name(raw, where)
    return PartSection(index, where, section, selector, broken, name)


def parse_parts(parts: Any, path: str, problems: Problems) -> tuple[PartSection, ...]:
    """Each part of the list ``parts`` at ``path``, noting every problem in ``problems``."""
    if not is_part_list(parts) or not parts:
        problems.add(path, f"expected a non-empty list of optimizer sections, got {parts!r}")
        return ()
    return tuple(_parse_part(raw, index, format_path(path, index), problems) for index, raw in enumerate(parts))
