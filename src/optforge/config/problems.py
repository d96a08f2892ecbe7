"""Collect every problem of a config document before raising one :class:`~optforge.errors.ConfigError`.

Example:
    >>> problems = Problems()
    >>> with problems.collect():
    ...     raise ConfigError("must be >= 0, got -1", path="optimizer.lr")
    >>> problems.add("schedule.constant", "must be finite")
    >>> problems.raise_if_any()
    Traceback (most recent call last):
    ...
    optforge.errors.ConfigError: 2 problems in the config:
      - optimizer.lr: must be >= 0, got -1
      - schedule.constant: must be finite
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from optforge.errors import ConfigError

__all__ = ["Problems"]


class Problems:
    """An ordered, duplicate-free list of ``(path, message)`` problems."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        """Note one problem."""
        if (path, message) not in self.items:
            self.items.append((path, message))

    def extend(self, error: ConfigError) -> None:
        """Note every problem of ``error``."""
        for path, message in error.problems:
            self.add(path, message)

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Note the problems of a :class:`ConfigError` raised inside the block, and carry on after it."""
        try:
            yield
        except ConfigError as exc:
            self.extend(exc)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise one :class:`ConfigError` listing every problem noted, if there is any."""
        if self.items:
            raise ConfigError.from_problems(self.items)
