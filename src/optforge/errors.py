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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ScheduleChangedWarning",
    "edit_distance",
    "format_path",
    "misspelling_of",
    "suggest",
    "truncate",
    "unknown_choice",
]

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
        path, message = str(path), str(message) if problems else _cut_message(str(message))
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
        # Each problem is cut on its own: the joined text is not, so no cut runs across lines.
        text = "\n".join([f"{len(lines)} problems in the config:", *("  - " + line for line in lines)])
        return cls(text, problems=problems)


class ScheduleChangedWarning(UserWarning):
    """A scheduler state was loaded whose schedules differ from the configured ones."""


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


# What a key of one vocabulary (torch, Hugging Face, the recommender's schedules, British spelling) is
# called in another: "did you mean" offers the first of these that is a valid choice, before the
# closest spelling, since ``min_value`` is spelled like ``init_value`` but means ``end_value``.
SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "optimiser": ("optimizer",),
    "optim": ("optimizer",),
    "scheduler": ("schedule",),
    "lr_scheduler": ("schedule",),
    "lr_schedule": ("schedule",),
    "learning_rate": ("peak_value", "init_value", "value", "lr"),
    "lr": ("peak_value", "init_value", "value", "learning_rate"),
    "max_lr": ("peak_value", "learning_rate"),
    "peak_lr": ("peak_value", "learning_rate"),
    "base_lr": ("peak_value", "init_value", "learning_rate"),
    "peak_value": ("learning_rate",),
    "init_value": ("learning_rate",),
    "min_value": ("end_value", "final_learning_rate"),
    "min_lr": ("end_value", "final_learning_rate"),
    "eta_min": ("end_value", "final_learning_rate"),
    "final_value": ("end_value", "final_learning_rate"),
    "final_lr": ("end_value", "final_learning_rate"),
    "end_lr": ("end_value", "final_learning_rate"),
    "end_value": ("final_learning_rate",),
    "final_learning_rate": ("end_value",),
    "warmup": ("warmup_steps", "num_ramp_steps"),
    "num_warmup_steps": ("warmup_steps", "num_ramp_steps"),
    "warmup_steps": ("num_ramp_steps",),
    "num_ramp_steps": ("warmup_steps",),
    "t_max": ("decay_steps", "final_num_steps"),
    "num_training_steps": ("decay_steps", "final_num_steps", "total_steps"),
    "max_steps": ("decay_steps", "final_num_steps", "total_steps"),
    "decay_steps": ("final_num_steps",),
    "final_num_steps": ("decay_steps",),
}


def suggest(value: str, choices: Iterable[str], *, n: int = 1) -> list[str]:
    """The closest matches to ``value`` among ``choices``, case-insensitively: a synonym first.

    Example:
        >>> suggest("min_value", ["init_value", "peak_value", "end_value"]), suggest("lerning", ["learning"])
        (['end_value'], ['learning'])
    """
    choices = [str(c) for c in choices]
    by_lower = {c.lower(): c for c in choices}
    synonyms = [by_lower[s] for s in SYNONYMS.get(value.lower(), ()) if s in by_lower]
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=n, cutoff=0.6)
    return list(dict.fromkeys([*synonyms, *(by_lower[c] for c in close)]))[:n]


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours that turn ``a`` into ``b``.

    Example:
        >>> edit_distance("lrr", "lr"), edit_distance("mometnum", "momentum"), edit_distance("name", "eps")
        (1, 1, 4)
    """
    previous, current = None, list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        before, previous, current = previous, current, [i] + [0] * len(b)
        for j, other in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            if before is not None and j > 1 and char == b[j - 2] and a[i - 2] == other:
                current[j] = min(current[j], before[j - 2] + 1)
    return current[-1]


def misspelling_of(value: str, choices: Iterable[str]) -> str | None:
    """The choice ``value`` is most likely a typo of: one edit away (two for names of 5+ letters).

    Stricter than :func:`suggest`: it decides whether an unknown key is an error, not just a hint.

    Example:
        >>> misspelling_of("lrr", ["lr", "momentum"]), misspelling_of("layer", ["lr", "momentum"])
        ('lr', None)
    """
    allowed = 1 if len(value) < 5 else 2
    scored = sorted((edit_distance(value.lower(), str(c).lower()), str(c)) for c in choices)
    return scored[0][1] if scored and scored[0][0] <= allowed else None


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
