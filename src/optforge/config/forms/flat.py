"""The flat form: ``{name: AdamW, lr: 0.001, ...}``; every key but ``name`` and the build options is a hyperparameter.

Example:
    >>> recognises({"name": "AdamW"}), parse({"name": "AdamW", "lr": 0.1}, "optimizer").hyperparameters
    (True, {'lr': 0.1})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optforge.config.section import OptimizerSection
from optforge.config.sections import BUILD_OPTIONS
from optforge.errors import ConfigError, format_path

__all__ = ["parse", "recognises"]


def recognises(section: Mapping[str, Any]) -> bool:
    """A section with a ``name`` (and no ``class_name``, which the template form reads first)."""
    return "name" in section


def parse(section: Mapping[str, Any], path: str) -> OptimizerSection:
    section = dict(section)
    name = section.pop("name")  # the registry checks it
    options = {key: section.pop(key) for key in list(section) if key in BUILD_OPTIONS}
    for key in section:
        if not isinstance(key, str):
            raise ConfigError(f"hyperparameter names must be strings, got {key!r}", path=path)
    return OptimizerSection(
        "flat", name, format_path(path, "name"), path, section, dict.fromkeys(section, path), options
    )
