"""The records of the stacks' translations: a stack, a translation and a field it could not express."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stack", "Translation", "Unexpressed"]


@dataclass(frozen=True)
class Unexpressed:
    """A field of the stack's file that the optforge document does not carry.

    ``path`` is the stack's own field path (``lr_scheduler_kwargs.foo``), ``value`` the
    value written there and ``reason`` what the stack does with it and what optforge does.
    """

    path: str
    value: Any
    reason: str


@dataclass(frozen=True)
class Translation:
    """The optforge document translated from one stack's file."""

    stack: str
    document: dict[str, Any]
    unexpressed: tuple[Unexpressed, ...] = field(default=())


@dataclass(frozen=True)
class Stack:
    """One training stack: its name, what its files look like, and how one is translated."""

    name: str
    title: str
    recognises: Callable[[Mapping[str, Any]], bool]
    translate: Callable[[Mapping[str, Any], Mapping[str, Any]], Translation]
    run_keys: tuple[str, ...] = ()
    # The argument of optforge.build that gives each run key (num_training_steps: total_steps).
    run_from: Mapping[str, str] = field(default_factory=dict)
