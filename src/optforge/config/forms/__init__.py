"""The forms an optimizer section may be written in: each a module that recognises it and parses it.

:data:`SECTION_FORMS` is the table, in the order forms are tried; :func:`parse_section`
turns a section into the :class:`~optforge.config.section.OptimizerSection` the
builders read. A new form is one module here and one row of the table.

Example:
    >>> parse_section({"name": "SGD", "lr": 0.1}, "optimizer").name
    'SGD'
    >>> [form.name for form in SECTION_FORMS]
    ['template', 'flat', 'recap', 'typed']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optforge.config.forms import flat, recap, template, typed
from optforge.config.section import OptimizerSection
from optforge.config.sections import TYPED_OPTIMIZERS
from optforge.errors import ConfigError

__all__ = ["SECTION_FORMS", "SectionForm", "parse_section"]


@dataclass(frozen=True)
class SectionForm:
    """One form: its name, whether a section is written in it, and how to parse one."""

    name: str
    recognises: Callable[[Mapping[str, Any]], bool]
    parse: Callable[[Mapping[str, Any], str], OptimizerSection]


# In the order they are tried: the template's class_name first, since its sections also have a name.
SECTION_FORMS: tuple[SectionForm, ...] = (
    SectionForm("template", template.recognises, template.parse),
    SectionForm("flat", flat.recognises, flat.parse),
    SectionForm("recap", recap.recognises, recap.parse),
    SectionForm("typed", typed.recognises, typed.parse),
)


def parse_section(section: Any, path: str) -> OptimizerSection:
    """The section parsed by the first form that recognises it."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"expected a mapping, got {type(section).__name__} {section!r}", path=path)
    for form in SECTION_FORMS:
        if form.recognises(section):
            return form.parse(section, path)
    keys = ", ".join(sorted(map(str, section)))
    raise ConfigError(
        "an optimizer config needs a 'name' (flat form, e.g. {name: AdamW, lr: 0.001}), "
        f"exactly one of {', '.join(TYPED_OPTIMIZERS)} (typed form), a 'class_name' (template form: "
        "{name, class_name, lr, args, group, checkpoint}) or adam with single_task_learning_rate or "
        f"multi_task_learning_rates; got keys [{keys}]",
        path=path,
    )
