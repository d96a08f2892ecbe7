"""Read a config from wherever it comes: a mapping, OmegaConf, a YAML file, a typed object.

Everything becomes plain Python data (dicts, lists, scalars) before validation,
so one validation path serves every source. Whatever the source, the data that
comes out has string keys, no cycles and at most :data:`MAX_DEPTH` levels of
nesting; anything else is a :class:`~optforge.errors.ConfigError` naming each
place, rather than a ``RecursionError`` or a ``TypeError`` later on.

YAML files are read as UTF-8 with the libyaml C parser when PyYAML has it; a
key given twice in one mapping is an error (YAML would keep the last one).

Example:
    >>> cyclic = {"name": "SGD"}; cyclic["self"] = cyclic
    >>> load_config(cyclic)
    Traceback (most recent call last):
    ...
    optforge.errors.ConfigError: self: refers to itself (a cyclic structure)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from optforge.errors import ConfigError, format_path, truncate

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "load_config",
    "load_yaml",
    "read_config",
    "to_plain",
]

# The deepest nesting a config may have; real documents are a handful of levels deep.
MAX_DEPTH = 64
# The most values (every scalar, list and mapping, aliases expanded) a config may hold.
MAX_VALUES = 1_000_000
# The largest config file read.
MAX_BYTES = 128 * 1024 * 1024

_YAMLBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser, when PyYAML was built with it


class _Loader(_YAMLBase):  # type: ignore[misc, valid-type]
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

# Byte-order marks of encodings other than UTF-8, longest first (UTF-32 LE starts like UTF-16 LE).
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOLEAN_KEY_HINT = " (YAML reads unquoted yes/no/on/off as booleans: quote the key)"


def _where(path: Path) -> str:
    """A file's name for messages, shortened in the middle when it is very long."""
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-97:]}"


def _read_text(path: Path) -> str:
    """The file's text, decoded as UTF-8; any other encoding or binary data is a ``ConfigError``."""
    where = _where(path)
    try:
        if not path.is_file():
            raise ConfigError("config file does not exist" if not path.exists() else "is not a file", path=where)
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"config file is {size:,} bytes; configs over {MAX_BYTES:,} bytes are refused", path=where
            )
        data = path.read_bytes()
    except OSError as exc:  # a name too long for the file system, a file that cannot be read
        raise ConfigError(f"cannot read the config file: {exc.strerror or exc}", path=where) from None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise ConfigError(f"config file is encoded as {encoding}; save it as UTF-8", path=where)
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise ConfigError(
            f"config file holds a NUL byte at offset {offset}: it is binary, or UTF-16/UTF-32 text; "
            "config files must be UTF-8 text",
            path=where,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"config file is not UTF-8 text: byte {data[exc.start]:#04x} at offset {exc.start} (line {line}); "
            "save it as UTF-8",
            path=where,
        ) from None


def _duplicate_keys(root: yaml.Node) -> list[tuple[str, str]]:
    """A problem for each key given twice in one mapping, walking the node graph once per node."""
    problems: list[tuple[str, str]] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:  # an alias: checked where the anchor is
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, format_path(path, index)) for index, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                part = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
                where = format_path(path, part)
                if isinstance(key_node, yaml.ScalarNode):
                    key = (key_node.tag, key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in lines:
                        message = f"duplicate key (lines {lines[key]} and {line}); YAML would keep the last: remove one"
                        problems.append((where, message))
                    lines.setdefault(key, line)
                stack.append((value_node, where))
    return problems


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a UTF-8 YAML (or JSON) file; ``1e-3`` is a float, a repeated key is an error.

    Raises:
        ConfigError: when the file is missing, is not UTF-8 text, is not valid
            YAML, or repeats a key in a mapping.
    """
    path = Path(path)
    text = _read_text(path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problems = _duplicate_keys(node)
        if problems:
            raise ConfigError.from_problems(problems)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{_where(path)}:{mark.line + 1}" if mark is not None else _where(path)
        reason = " ".join(str(exc).split())
        raise ConfigError(f"config file is not valid YAML: {reason}", path=where) from None
    except RecursionError:
        raise ConfigError("config file is nested too deeply to read", path=_where(path)) from None
    finally:
        loader.dispose()


@dataclasses.dataclass
class _Walk:
    """What converting one config has found so far."""

    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    values: int = 0


def _plain(value: Any, path: str, depth: int, ancestors: tuple[int, ...], walk: _Walk) -> Any:
    walk.values += 1
    if walk.values > MAX_VALUES:
        raise ConfigError(f"the config holds more than {MAX_VALUES:,} values (aliases expanded)", path=path)
    module = type(value).__module__
    if module.startswith("omegaconf"):
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        try:
            value = OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException as exc:
            reason = " ".join(str(exc).split())
            raise ConfigError(f"cannot resolve the OmegaConf config: {reason}", path=path) from None
    elif hasattr(value, "model_dump") and callable(value.model_dump):
        value = value.model_dump(exclude_none=True)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if not isinstance(value, Mapping | list | tuple):
        return value
    if id(value) in ancestors:
        walk.problems.append((path, "refers to itself (a cyclic structure)"))
        return None
    if depth >= MAX_DEPTH:
        walk.problems.append((path, f"nested more than {MAX_DEPTH} levels deep"))
        return None
    inside = (*ancestors, id(value))
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                where = format_path(path, key)
            else:
                where = format_path(path, truncate(key, 40))
                hint = _BOOLEAN_KEY_HINT if isinstance(key, bool) else ""
                walk.problems.append((where, f"keys must be strings, got {type(key).__name__} {truncate(key)}{hint}"))
            out[key] = _plain(item, where, depth + 1, inside, walk)
        return out
    items = [_plain(item, format_path(path, index), depth + 1, inside, walk) for index, item in enumerate(value)]
    return type(value)(items) if isinstance(value, tuple) else items


def to_plain(value: Any) -> Any:
    """Turn OmegaConf containers, pydantic models, dataclasses and mappings into plain data.

    Raises:
        ConfigError: for a key that is not a string, a cyclic structure, nesting
            deeper than :data:`MAX_DEPTH` or more than :data:`MAX_VALUES` values,
            naming every place at once.

    Example:
        >>> to_plain({"betas": (0.9, 0.99), 1: "x"})
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: 1: keys must be strings, got int 1
    """
    walk = _Walk()
    plain = _plain(value, "", 0, (), walk)
    if walk.problems:
        raise ConfigError.from_problems(walk.problems)
    return plain


def read_config(source: Any) -> Any:
    """A config source as plain data (a YAML/JSON path is read here), whatever its top level holds.

    Raises:
        ConfigError: as :func:`load_config`, but a top level that is not a mapping is returned as it is.

    Example:
        >>> read_config([{"name": "SGD"}])
        [{'name': 'SGD'}]
    """
    return to_plain(load_yaml(source) if isinstance(source, str | os.PathLike) else source)


def load_config(source: Any) -> dict[str, Any]:
    """A config as a plain ``dict``, from any supported source.

    Args:
        source: A mapping, an OmegaConf ``DictConfig``, a path to a YAML/JSON
            file, a pydantic model or a dataclass.

    Raises:
        ConfigError: for a file that cannot be read as UTF-8 YAML, or data that
            is not a mapping with string keys, no cycles and sane nesting.

    Example:
        >>> load_config({"name": "SGD", "lr": 0.1})
        {'name': 'SGD', 'lr': 0.1}
    """
    data = read_config(source)
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__} {truncate(data)}")
    return data
