"""The one error type of optforge, and helpers that make its messages useful.

Every bad configuration raises :class:`ConfigError` at build time. The message
names the config path of the bad field, the bad value and, where there is a
closed set of valid choices, those choices with a "did you mean ...?" hint.

Example:
    >>> from optforge.errors import ConfigError, unknown_choice
    >>> err = unknown_choice("optimizer.name", "adamww", ["AdamW", "Adam", "SGD"])
    >>> isinstance(err, ValueError)
    True
    >>> print(err)
    optimizer.name: unknown value 'adamww'; did you mean 'AdamW'? Valid choices: Adam, AdamW, SGD
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CheckpointError", "ConfigError", "format_path", "suggest", "truncate", "unknown_choice"]

# The longest message one problem may have; longer ones (a huge value echoed whole) are cut in the middle.
MAX_MESSAGE = 1000


def truncate(value: Any, limit: int = 80) -> str:
    """``repr(value)``, at most ``limit`` characters: long, deep or self-referential values stay short.

    Example:
        >>> truncate("x" * 1000, 20)
        "'xxxxxxx...xxxxxxx'"
        >>> deep = []; deep.append(deep)
        >>> truncate(deep)
        '[[...]]'
    """
    shortener = reprlib.Repr()
    shortener.maxlevel = 4
    shortener.maxstring = shortener.maxother = shortener.maxlong = max(limit, 8)
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 8
    return _cut(shortener.repr(value), limit)  # reprlib names a value whose own __repr__ fails


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = max(limit - 3, 2)
    return text[: (keep + 1) // 2] + "..." + text[len(text) - keep // 2 :]


class ConfigError(ValueError):
    """A configuration that cannot be built, found at build time.

    Attributes:
        path: The config path of the bad field (``"optimizer.betas[1]"``), or
            ``""`` when the error concerns the config as a whole.
        problems: Each problem as ``(path, message)``; a config with several
            bad fields reports all of them in one error.
    """

    def __init__(self, message: str, *, path: str = "", problems: Sequence[tuple[str, str]] = ()):
        path, message = str(path), _cut_message(str(message))
        self.path = path
        self.problems: list[tuple[str, str]] = [(str(p), _cut_message(str(m))) for p, m in problems] or [
            (path, message)
        ]
        super().__init__(f"{path}: {message}" if path else message)

    @classmethod
    def from_problems(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error carrying several ``(path, message)`` problems, one per line."""
        problems = [(str(p), _cut_message(str(m))) for p, m in problems]
        lines = [f"{p}: {m}" if p else m for p, m in problems]
        if len(lines) == 1:
            path, message = problems[0]
            return cls(message, path=path)
        err = cls("\n".join([f"{len(lines)} problems in the config:", *("  - " + ln for ln in lines)]))
        err.problems = list(problems)
        return err


class CheckpointError(Exception):
    """A checkpoint that cannot be saved or loaded; the first line of the message is the cause.

    :func:`optforge.load_checkpoint` raises it after leaving the model, the
    optimizer and the scheduler exactly as they were.
    """


def _cut_message(message: str) -> str:
    """A problem's message, cut in the middle when a huge value made it longer than :data:`MAX_MESSAGE`."""
    if len(message) <= MAX_MESSAGE:
        return message
    cut = len(message) - MAX_MESSAGE
    half = MAX_MESSAGE // 2
    return f"{message[:half]} ...[{cut:,} characters cut]... {message[-half:]}"


def format_path(*parts: str | int) -> str:
    """Join config path parts: ``format_path("optimizer", "betas", 1) == "optimizer.betas[1]"``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "":
            out = f"{out}.{part}" if out else str(part)
    return out


def suggest(value: str, choices: Iterable[str], *, n: int = 1) -> list[str]:
    """The closest matches to ``value`` among ``choices``, case-insensitively."""
    choices = [str(c) for c in choices]
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[c] for c in close]


def unknown_choice(
    path: str, value: Any, choices: Iterable[str], *, what: str = "value", hint: str = ""
) -> ConfigError:
    """A :class:`ConfigError` for a value outside a closed set of choices."""
    choices = sorted({str(c) for c in choices}, key=str.lower)
    message = f"unknown {what} {truncate(value)}"
    close = suggest(str(value), choices)
    message += f"; did you mean {close[0]!r}?" if close else "."
    if len(choices) <= 40:
        message += " Valid choices: " + ", ".join(choices)
    else:
        message += f" ({len(choices)} valid choices)"
    if hint:
        message += f". {hint}"
    return ConfigError(message, path=path)
