"""What an LR range test found: its curve, the suggested lr and the notes on how far to trust it.

Example:
    >>> import math
    >>> lrs = [1e-4 * 10 ** (i / 10) for i in range(40)]
    >>> losses = [1 + 1 / (1 + math.exp((i - 18) / 3)) + max(0.2 * (i - 32), 0) for i in range(40)]
    >>> result = LRFindResult(lrs=lrs, losses=losses, smoothed=losses, stopped="diverged", steps=40)
    >>> result.rule, f"{result.suggestion:.2e}", result.notes
    ('minimum', '1.58e-02', [])
    >>> f"{result.suggest('steep').lr:.2e}"
    '6.31e-03'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optforge.errors import ConfigError, unknown_choice
from optforge.lr_find.config_lr import with_base_lr
from optforge.lr_find.suggest import RULES, Suggestion, fastai_window

__all__ = ["DEFAULT_RULE", "MIN_WINDOW", "LRFindResult"]

# The rule `suggestion` uses: its lr trained best in benchmarks/lr_find_demo.py (docs/guides/lr-find.md).
DEFAULT_RULE = "minimum"
# Fewer points than this in the window the rules read is too short a curve to trust.
MIN_WINDOW = 10
_STOPS = {
    "steps": "ran all {steps} steps",
    "diverged": "stopped at step {taken}: the smoothed loss exceeded stop_factor times its lowest",
    "non-finite": "stopped at step {taken}: the loss was not finite",
}


@dataclass(frozen=True)
class LRFindResult:
    """The curve of an LR range test and the lr it suggests.

    Attributes:
        lrs: The base lr of each step taken (each group ran at it times its share).
        losses: The loss of each step (the mean over its micro-batches, and over the ranks).
        smoothed: The bias-corrected running average of the losses, which the rules read.
        stopped: ``"steps"`` (all ran), ``"diverged"`` or ``"non-finite"``; the step that stopped is kept.
        start, end, steps, mode: The sweep asked for.
        config: The config swept.
        base_lr: The base lr of the config: the largest peak lr of its groups.
        shares: Each group's peak lr over ``base_lr``.
        suggestion: The default rule's lr (``None`` only when no loss was finite).
        rule: The rule that chose it.
        reason: Why the rule chose it.
        notes: Why the curve may not be worth trusting (too short, too noisy, never falling).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped: str
    steps: int
    start: float = 0.0
    end: float = 0.0
    mode: str = "exponential"
    config: Any = None
    base_lr: float = 0.0
    shares: list[float] = field(default_factory=list)
    model: Any = field(default=None, repr=False, compare=False)
    total_steps: int | None = None
    suggestion: float | None = field(init=False)
    rule: str = field(init=False)
    reason: str = field(init=False)
    notes: list[str] = field(init=False)

    def __post_init__(self) -> None:
        chosen = self._default()
        set_field = object.__setattr__  # frozen: the fields derived from the curve are set once, here
        set_field(self, "suggestion", None if chosen is None else chosen.lr)
        set_field(self, "rule", DEFAULT_RULE if chosen is None else chosen.rule)
        set_field(self, "reason", "no finite loss was recorded" if chosen is None else chosen.reason)
        set_field(self, "notes", self._notes(chosen))

    def suggest(self, rule: str = DEFAULT_RULE) -> Suggestion | None:
        """What ``rule`` (``"valley"``, ``"steep"`` or ``"minimum"``) suggests; ``None`` when the curve is too short.

        Raises:
            ConfigError: for an unknown rule, with the valid ones.
        """
        if rule not in RULES:
            raise unknown_choice("rule", rule, RULES, what="rule")
        return RULES[rule](self.lrs, self.smoothed, self.steps)

    def _default(self) -> Suggestion | None:
        """The default rule's suggestion; where its window is empty, the next rule's; at last the lowest loss's."""
        for rule in (DEFAULT_RULE, *(name for name in RULES if name != DEFAULT_RULE)):
            found = self.suggest(rule)
            if found is not None:
                return found
        finite = [i for i, value in enumerate(self.smoothed) if math.isfinite(value)]
        if not finite:
            return None
        index = min(finite, key=lambda i: self.smoothed[i])
        reason = f"too few steps for any rule: a tenth of lr {self.lrs[index]:.3g}, where the loss was lowest"
        return Suggestion(self.lrs[index] / 10, index, "lowest", reason)

    def _notes(self, chosen: Suggestion | None) -> list[str]:
        notes: list[str] = []
        window = fastai_window(self.smoothed, self.steps)
        taken = len(self.lrs)
        if chosen is not None and chosen.rule != DEFAULT_RULE:
            notes.append(f"the {DEFAULT_RULE} rule had too few points; the {chosen.rule} rule chose instead")
        if len(window) < MIN_WINDOW:
            notes.append(
                f"too short to trust: the rules read {len(window)} points (steps {self.steps // 10} to "
                f"{taken - 5} of the {taken} taken); sweep more steps, or start lower if it diverged early"
            )
            return notes
        smooth = [self.smoothed[i] for i in window]
        fall = smooth[0] - min(smooth)
        if fall <= 0:
            notes.append("the smoothed loss never fell below its value at the window's start: no lr here trained")
            return notes
        # The scatter of the raw losses from batch to batch: second differences cancel the curve's own slope,
        # and have sqrt(6) times the spread of independent noise.
        lowest = min(range(len(smooth)), key=smooth.__getitem__)
        raw = [self.losses[i] for i in window][: max(lowest + 1, 5)]  # before the loss climbs, and scatters more
        second = [abs(raw[i - 1] - 2 * raw[i] + raw[i + 1]) for i in range(1, len(raw) - 1)]
        noise = 1.4826 * statistics.median(second) / math.sqrt(6)
        if noise > fall:
            notes.append(
                f"too noisy to trust: the loss scatters by about {noise:.3g} around its average, more than the "
                f"{fall:.3g} it falls over the sweep; use bigger batches, accumulate, or a smoothing closer to 1"
            )
        return notes

    def summary(self) -> str:
        """A few lines: what ran, the lowest loss, each rule's lr, the notes.

        Example:
            >>> lrs = [1e-3 * 1.1 ** i for i in range(30)]
            >>> flat = LRFindResult(lrs=lrs, losses=[1.0] * 30, smoothed=[1.0] * 30, stopped="steps", steps=30)
            >>> print(flat.summary())
            30 steps from lr 0.001 to 0.0159, ran all 30 steps
            lowest smoothed loss 1 at lr 0.001
              valley   suggests 0.00133
              steep    suggests 0.00259
              minimum  suggests 0.000133
            note: the smoothed loss never fell below its value at the window's start: no lr here trained
        """
        taken = len(self.lrs)
        lines = [f"{taken} steps from lr {self.lrs[0]:.3g} to {self.lrs[-1]:.3g}, "]
        lines[0] += _STOPS[self.stopped].format(steps=self.steps, taken=taken - 1)
        finite = [i for i, value in enumerate(self.smoothed) if math.isfinite(value)]
        if finite:
            best = min(finite, key=lambda i: self.smoothed[i])
            lines.append(f"lowest smoothed loss {self.smoothed[best]:.4g} at lr {self.lrs[best]:.3g}")
        for rule in RULES:
            found = self.suggest(rule)
            lines.append(
                f"  {rule:<8} suggests " + ("nothing (too few points)" if found is None else f"{found.lr:.3g}")
            )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def with_lr(self, lr: float | None = None) -> dict[str, Any]:
        """The config swept, as plain data, with its base lr set to ``lr`` (default: the suggestion).

        The peak of its schedule (or the optimizer's lr, without one) becomes ``lr``; every other lr
        of the config (rules, towers, parts, the schedule's floor) scales with it.

        Raises:
            ConfigError: when there is no lr to fill in, or the config's lrs cannot all be found.
        """
        lr = self.suggestion if lr is None else lr
        if lr is None or not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"expected a finite lr > 0, got {lr!r}", path="lr")
        if self.config is None or self.model is None:
            raise ConfigError("this result holds no config and model to fill in; it was not made by lr_find")
        return with_base_lr(self.model, self.config, float(lr), total_steps=self.total_steps)

    def figure(self) -> Any:
        """A matplotlib ``Figure``: the raw and smoothed loss against the lr (log scale), the suggestion marked."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.subplots()
        ax.plot(self.lrs, self.losses, color="0.75", linewidth=0.8, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", label="smoothed loss")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, color="C3", linestyle="--", linewidth=1.0)
            ax.plot([self.suggestion], [_at(self.lrs, self.smoothed, self.suggestion)], "o", color="C3",
                    label=f"{self.rule}: {self.suggestion:.2g}")  # fmt: skip
        if self.mode == "exponential":
            ax.set_xscale("log")
        low, high = _y_range(self.smoothed)
        ax.set_ylim(low, high)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
        return fig

    def plot_png(self, path: str | Path) -> Path:
        """Write :meth:`figure` to ``path`` (PNG, or the format its extension names) and return it.

        Raises:
            ConfigError: at ``--output`` for an extension matplotlib cannot write, or a path that cannot be written.
        """
        fig = self.figure()
        path = Path(path)
        kind = path.suffix[1:].lower() or "png"
        supported = fig.canvas.get_supported_filetypes()
        if kind not in supported:
            choices = ", ".join(f".{name}" for name in sorted(supported))
            raise ConfigError(f"cannot write a {path.suffix!r} file; give a name ending in {choices}", path="--output")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, format=kind, dpi=110)
        except OSError as exc:
            raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}", path="--output") from None
        return path

    def plot_terminal(self, width: int = 100, height: int = 25, *, color: bool = False) -> str:
        """The smoothed loss against log10 of the lr, drawn as text with plotext, the suggestion a vertical line."""
        import plotext

        fig = plotext.figure
        fig.clear()
        plotext.terminal.limit(False, False)
        fig.plot_size(width, height)
        finite = [(lr, v) for lr, v in zip(self.lrs, self.smoothed) if math.isfinite(v) and lr > 0]
        xs = [math.log10(lr) if self.mode == "exponential" else lr for lr, _ in finite]
        fig.draw(fig.signal(xs, [v for _, v in finite]).lines().label("smoothed loss"))
        low, high = _y_range(self.smoothed)
        if xs:
            fig.ruler(0).lim(xs[0], xs[-1])
        fig.ruler(1).lim(low, high)
        if self.suggestion is not None and self.suggestion > 0:
            where = math.log10(self.suggestion) if self.mode == "exponential" else self.suggestion
            fig.line(where, orientation=1, relative=True, label=f"{self.rule}: {self.suggestion:.2g}")
        fig.legend(x=xs[0] if xs else 0, y=low, relative=True, ha=-1, va=1)  # the curve falls to the right
        fig.label("log10 learning rate" if self.mode == "exponential" else "learning rate", axis=0)
        fig.title("LR range test")
        drawing = fig.build().string(colorless=not color)
        fig.clear()
        return drawing


def _at(lrs: Sequence[float], values: Sequence[float], lr: float) -> float:
    """The value at the step whose lr is nearest ``lr`` (in log scale)."""
    index = min(range(len(lrs)), key=lambda i: abs(math.log(max(lrs[i], 1e-300)) - math.log(max(lr, 1e-300))))
    value = values[index]
    return value if math.isfinite(value) else min(v for v in values if math.isfinite(v))


def _y_range(values: Sequence[float]) -> tuple[float, float]:
    """From a little below the lowest finite value to the first value's level plus half its drop: a divergence
    does not squash the curve (fastai and Lightning leave the last points out for the same reason)."""
    finite = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
    low, first = min(finite), finite[0]
    top = min(first + 0.5 * (first - low), max(finite))
    margin = 0.05 * (top - low) or abs(low) * 0.05 or 1.0
    return low - margin, top + margin
