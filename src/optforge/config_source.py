"""Read a config from wherever it comes: a mapping, OmegaConf, a YAML file, a typed object.

Everything becomes plain Python data (dicts, lists, scalars) before validation,
so one validation path serves every source.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from optforge.errors import ConfigError

__all__ = ["load_config", "load_yaml", "to_plain"]


class _Loader(yaml.SafeLoader):
    """YAML loader that reads ``1e-3`` as a float (YAML 1.2), not the string PyYAML makes of it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML (or JSON) file; ``1e-3`` is a float.

    Raises:
        ConfigError: when the file is missing or is not valid YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None


def to_plain(value: Any) -> Any:
    """Turn OmegaConf containers, pydantic models, dataclasses and mappings into plain data."""
    module = type(value).__module__
    if module.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump(exclude_none=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(item) for item in value)
    return value


def load_config(source: Any) -> dict[str, Any]:
    """A config as a plain ``dict``, from any supported source.

    Args:
        source: A mapping, an OmegaConf ``DictConfig``, a path to a YAML/JSON
            file, a pydantic model or a dataclass.

    Example:
        >>> load_config({"name": "SGD", "lr": 0.1})
        {'name': 'SGD', 'lr': 0.1}
    """
    if isinstance(source, (str, os.PathLike)):
        data = load_yaml(source)
    else:
        data = to_plain(source)
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__} {data!r}")
    return data
