"""Turn pydantic validation errors into :class:`~optforge.errors.ConfigError`.

Config models are pydantic models with ``extra="forbid"``; this module parses
user data into them and reports every problem with its config path, the bad
value and, for unknown keys, the valid field names with a "did you mean ...?".
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import pydantic

from optforge.errors import ConfigError, format_path, suggest, truncate

__all__ = ["StrictModel", "exactly_one", "parse_model"]

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


class StrictModel(pydantic.BaseModel):
    """Base of every config model: unknown keys are errors, values are checked strictly.

    Its repr shows only the fields that were given a value, so a one-of reads as the choice it holds.

    Example:
        >>> from optforge.schedules import LearningRate
        >>> LearningRate(constant=0.1)
        LearningRate(constant=0.1)
        >>> LearningRate.model_validate({"constant": None, "linear_ramp_to_constant": {"learning_rate": 0.1,
        ...                              "num_ramp_steps": 10}})
        LearningRate(linear_ramp_to_constant=LinearRampToConstant(learning_rate=0.1, num_ramp_steps=10))
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        fields = type(self).model_fields
        for name, value in super().__repr_args__():
            unset = name not in self.model_fields_set or (value is None and fields[name].default is None)
            if name not in fields or not unset:
                yield name, value


def exactly_one(model: pydantic.BaseModel, what: str, fields: Iterable[str] | None = None) -> str:
    """The one field of a one-of ``model`` that is set; ``ValueError`` unless exactly one is.

    ``fields`` limits the one-of to some fields (default: all of them).
    """
    fields = list(type(model).model_fields if fields is None else fields)
    chosen = [name for name in fields if getattr(model, name) is not None]
    if len(chosen) != 1:
        got = "none" if not chosen else " and ".join(chosen)
        raise ValueError(f"{what} must set exactly one of {', '.join(fields)}; got {got}")
    return chosen[0]


def _fields_at(model_cls: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` (the location of an unknown key) inside ``model_cls``."""
    current: Any = model_cls
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, pydantic.BaseModel)):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as ``Foo | None`` or ``list[Foo]``."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# How a message names the shape behind each of pydantic's union member tags.
_SHAPES = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "list[int]": "a list of whole numbers",
    "list[str]": "a list of strings",
    "list[float]": "a list of numbers",
}


def _members(annotation: Any) -> list[Any] | None:
    """The members of a union annotation (``None`` when it is not a union)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return None


def _inner(annotation: Any, part: Any) -> Any:
    """The annotation one step of a location further in: a model's field, a list's item, a dict's value."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (list, tuple, set) and args and isinstance(part, int):
        return args[0]
    if typing.get_origin(annotation) is dict and len(args) == 2:
        return args[1]
    return None


def _field_location(model_cls: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], int, str]:
    """``loc`` without pydantic's union member tags, where the first tag stood (-1: none) and that tag.

    Example:
        >>> from optforge.config.rules import ParamGroupRule
        >>> _field_location(ParamGroupRule, ("ndim", "list[int]", 0))
        (('ndim', 0), 1, 'list[int]')
    """
    annotation: Any = model_cls
    clean: list[Any] = []
    union_at, tag = -1, ""
    for part in loc:
        members = _members(annotation) if annotation is not None else None
        if members is not None and len(members) == 1:  # ``X | None``: pydantic tags no member
            annotation = members[0]
        elif members is not None:
            holding = [member for member in members if _inner(member, part) is not None]
            if holding:  # a field, item or key inside one member: no tag
                annotation = holding[0]
            elif isinstance(part, str):  # the tag of the member pydantic tried
                if union_at < 0:
                    union_at, tag = len(clean), part
                named = [member for member in members if getattr(member, "__name__", None) == part]
                annotation = named[0] if named else None
                continue
        clean.append(part)
        annotation = _inner(annotation, part) if annotation is not None else None
    return tuple(clean), union_at, tag


def _union_problems(
    errors: list[tuple[tuple[Any, ...], int, str, dict[str, Any]]],
) -> list[tuple[tuple[Any, ...], dict]]:
    """One problem per field for errors from the members of a union: the member that got furthest, or one
    message naming every accepted shape."""
    kept: list[tuple[tuple[Any, ...], dict]] = []
    by_union: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], str, dict]]] = {}
    for clean, union_at, tag, error in errors:
        if union_at < 0:
            kept.append((clean, error))
        else:
            by_union.setdefault(clean[:union_at], []).append((clean, tag, error))
    for field, found in by_union.items():
        deepest = max(len(clean) for clean, _, _ in found)
        inside = [(clean, error) for clean, _, error in found if len(clean) == deepest and deepest > len(field)]
        if inside and any(error["type"] not in ("list_type", "dict_type", "model_type") for _, error in inside):
            kept.extend(inside)
            continue
        shapes = [_SHAPES.get(tag, "a mapping" if tag[:1].isupper() else tag) for _, tag, _ in found]
        shown = ", ".join(dict.fromkeys(shapes))
        value = found[0][2].get("input")
        message = f"expected {shown.rsplit(', ', 1)[0]} or {shown.rsplit(', ', 1)[1]}" if ", " in shown else shown
        kept.append((field, {"type": "union", "msg": f"{message}, got {truncate(value)}", "input": value}))
    return kept


def parse_model(model_cls: type[ModelT], data: Any, path: str = "") -> ModelT:
    """Validate ``data`` (a mapping or a ``model_cls`` instance) into ``model_cls``.

    Raises:
        ConfigError: naming every bad field's path, value and the reason.

    Example:
        >>> from optforge.config import AdamConfig
        >>> parse_model(AdamConfig, {"lr": 0.1, "beta": [0.9, 0.99]}, "adam")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: adam.beta: unknown key; did you mean 'betas'? Valid keys: lr, betas, eps
    """
    if isinstance(data, model_cls):
        return data
    if isinstance(data, pydantic.BaseModel):
        data = data.model_dump(exclude_unset=True)
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping for {model_cls.__name__}, got {type(data).__name__} {data!r}", path=path)
    try:
        return model_cls.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        problems = []
        located = [(*_field_location(model_cls, tuple(error["loc"])), error) for error in exc.errors()]
        for loc, error in _union_problems(located):
            where = format_path(path, *loc)
            if error["type"] == "union":
                message = error["msg"]
            elif error["type"] == "extra_forbidden":
                valid = _fields_at(model_cls, loc)
                close = suggest(str(loc[-1]), valid)
                message = "unknown key"
                message += f"; did you mean {close[0]!r}?" if close else "."
                if valid:
                    message += " Valid keys: " + ", ".join(valid)
            elif error["type"] == "missing":
                message = "required field is missing"
            else:
                reason = error["msg"].removeprefix("Value error, ")
                message = reason if error["type"] == "value_error" else f"{reason} (got {error.get('input')!r})"
            problems.append((where, message))
        raise ConfigError.from_problems(problems) from None
