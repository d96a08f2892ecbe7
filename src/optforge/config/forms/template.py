"""The training template's form: ``{name, class_name, lr, args, group, checkpoint}``.

Example:
    >>> parse({"name": "m", "class_name": "SGD", "lr": 0.1, "args": {"momentum": 0.9}}, "optimizer").hyperparameters
    {'lr': 0.1, 'momentum': 0.9}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optforge._validation import parse_model
from optforge.config.section import OptimizerSection
from optforge.config.sections import TemplateOptimizerConfig
from optforge.errors import ConfigError, format_path

__all__ = ["parse", "recognises"]


def recognises(section: Mapping[str, Any]) -> bool:
    """A section with a ``class_name``."""
    return "class_name" in section


def parse(section: Mapping[str, Any], path: str) -> OptimizerSection:
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
