"""Rules that pick a learning rate from the smoothed loss curve of an LR range test.

Each rule reads the lrs and the smoothed losses of a sweep (one entry per step) and
returns a :class:`Suggestion`, or ``None`` where the curve has too few points:

* ``"valley"`` and ``"minimum"`` read fastai's window, points ``[steps // 10 : -5]``
  cut at the first non-finite loss. ``valley`` takes the longest decreasing run of
  the window (a subsequence, as fastai finds it) and the point at
  ``start + ⌊s⌋ + ⌊s / 2⌋``, ``s = (end - start) / 3``; ``minimum`` is the lr of the
  lowest loss, divided by 10.
* ``"steep"`` is Lightning's rule before 2.5.3: the lowest central-difference
  gradient (``numpy.gradient`` with unit spacing) of the losses, the first 10 and
  the last point left out, non-finite losses dropped. On the exponential grid unit
  spacing is even spacing in log lr, so this is the steepest fall against log lr.

Example:
    >>> lrs = [1e-4 * 10 ** (i / 10) for i in range(40)]
    >>> losses = [1 + 1 / (1 + math.exp((i - 18) / 3)) + max(0.2 * (i - 32), 0) for i in range(40)]
    >>> found = valley(lrs, losses, steps=40)
    >>> found.index, f"{found.lr:.2e}"
    (16, '3.98e-03')
    >>> minimum(lrs, losses, steps=40).index, steep(lrs, losses).index
    (32, 18)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RULES",
    "STEEP_SKIP_BEGIN",
    "STEEP_SKIP_END",
    "WINDOW_END_SKIP",
    "Suggestion",
    "fastai_window",
    "minimum",
    "steep",
    "valley",
]

# fastai leaves out the last 5 points of the sweep; Lightning's rule its first 10 and its last 1.
WINDOW_END_SKIP = 5
STEEP_SKIP_BEGIN = 10
STEEP_SKIP_END = 1


@dataclass(frozen=True)
class Suggestion:
    """A learning rate a rule picked, and why.

    Attributes:
        lr: The suggested learning rate.
        index: The step of the sweep the rule picked (the lr there is ``lr``, or ten times it for ``minimum``).
        rule: The rule's name.
        reason: One sentence on what the rule found.
    """

    lr: float
    index: int
    rule: str
    reason: str


def fastai_window(losses: Sequence[float], steps: int) -> range:
    """The steps fastai's rules read: ``[steps // 10 : -5]`` of the sweep, cut at its first non-finite loss.

    Example:
        >>> fastai_window([1.0] * 100, 100), fastai_window([1.0, 1.0, float("nan")] + [1.0] * 10, 10)
        (range(10, 95), range(1, 2))
    """
    begin, end = steps // 10, max(len(losses) - WINDOW_END_SKIP, 0)
    cut = next((i for i in range(begin, end) if not math.isfinite(losses[i])), end)
    return range(begin, max(cut, begin))


def valley(lrs: Sequence[float], losses: Sequence[float], steps: int) -> Suggestion | None:
    """fastai's ``valley``: a point inside the longest decreasing run of the window (see the module)."""
    window = fastai_window(losses, steps)
    if len(window) < 2:
        return None
    values = np.asarray([losses[i] for i in window], dtype=float)
    start, end = _longest_decrease(values)
    third = (end - start) / 3
    index = window[start + int(third) + int(third / 2)]
    return Suggestion(
        float(lrs[index]),
        index,
        "valley",
        f"the longest decreasing run of the loss ends at lr {lrs[window[end]]:.3g}; the suggestion lies inside it",
    )


def _longest_decrease(values: np.ndarray) -> tuple[int, int]:
    """The ``(start, end)`` fastai's valley reads: ``end`` is the first point that ends a longest decreasing
    subsequence; ``start`` is ``end`` less that subsequence's length as it stood when ``end`` first beat the
    longest one before it (fastai updates the start only then, so it may lie before the subsequence).

    Example:
        >>> _longest_decrease(np.array([3.0, 2.0, 1.0, 5.0, 0.5]))
        (0, 4)
    """
    lengths = np.ones(len(values), dtype=int)
    start = end = 0
    for i in range(1, len(values)):
        # Running longest length of a decreasing subsequence ending at i, as j goes up: fastai compares each.
        candidates = np.where(values[:i] > values[i], lengths[:i] + 1, 1)
        running = np.maximum.accumulate(candidates)
        lengths[i] = running[-1]
        if running[-1] > lengths[end]:
            first = int(np.argmax(running > lengths[end]))
            start, end = i - int(running[first]), i
    return start, end


def minimum(lrs: Sequence[float], losses: Sequence[float], steps: int) -> Suggestion | None:
    """fastai's ``minimum``: the lr of the lowest loss in the window, divided by 10."""
    window = fastai_window(losses, steps)
    if len(window) < 1:
        return None
    index = window[int(np.argmin([losses[i] for i in window]))]
    return Suggestion(
        float(lrs[index]) / 10,
        index,
        "minimum",
        f"the loss is lowest at lr {lrs[index]:.3g}; a tenth of it is suggested",
    )


def steep(lrs: Sequence[float], losses: Sequence[float], steps: int | None = None) -> Suggestion | None:
    """Lightning's steepest-gradient rule before 2.5.3 (see the module); ``steps`` is not used."""
    kept = [i for i in range(STEEP_SKIP_BEGIN, len(losses) - STEEP_SKIP_END) if math.isfinite(losses[i])]
    if len(kept) < 2:
        return None
    gradient = np.gradient(np.asarray([losses[i] for i in kept], dtype=float))
    index = kept[int(np.argmin(gradient))]
    return Suggestion(
        float(lrs[index]),
        index,
        "steep",
        f"the loss falls fastest (per step of the sweep) at lr {lrs[index]:.3g}",
    )


RULES: dict[str, Callable[[Sequence[float], Sequence[float], int], Suggestion | None]] = {
    "valley": valley,
    "steep": steep,
    "minimum": minimum,
}
