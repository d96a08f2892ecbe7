"""Learning-rate traces of a config, and their plots.

:func:`trace_schedule` builds the optimizer and scheduler of a config and steps
the scheduler, recording each group's learning rate and every other
hyperparameter that changes; :func:`phase_boundaries` finds where a curve
changes shape (end of warmup, start of a new phase). The plotting functions
import matplotlib or plotext when called, so importing this module stays light.

Example:
    >>> cfg = {"optimizer": {"name": "SGD", "lr": 0.1},
    ...        "schedule": {"linear_ramp_to_cosine": {"learning_rate": 0.1, "final_learning_rate": 0.0,
    ...                                              "num_ramp_steps": 10, "final_num_steps": 50}}}
    >>> trace = trace_schedule(cfg, steps=60)
    >>> round(max(trace.lrs["group0"]), 3), trace.boundaries
    (0.1, [10])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from optforge.errors import ConfigError
from optforge.ranges import is_number

__all__ = [
    "ScheduleTrace",
    "phase_boundaries",
    "plot_losses_png",
    "plot_trace_png",
    "plot_trace_terminal",
    "trace_figure",
    "trace_schedule",
]

# Group keys that are bookkeeping, not hyperparameters worth a curve.
_SKIPPED_KEYS = frozenset({"params", "name", "lr", "initial_lr"})


@dataclass(frozen=True)
class ScheduleTrace:
    """What a config's schedule does over ``steps`` optimizer steps.

    Attributes:
        steps: The step numbers, ``0 .. n-1``.
        lrs: Each param group's learning rate per step, by group name; groups
            with the same curve share one entry, named ``"name1, name2"``.
        others: Every other numeric group hyperparameter that changes over the
            steps, per step, named with its groups (``"momentum (group0)"``).
        boundaries: Steps where the learning-rate curves change shape.
        title: A caption for plots.
        metric_assumed: The scheduler is metric-driven and was traced with a metric that never improves.
    """

    steps: list[int]
    lrs: dict[str, list[float]]
    others: dict[str, list[float]] = field(default_factory=dict)
    boundaries: list[int] = field(default_factory=list)
    title: str = ""
    metric_assumed: bool = False


def _numeric_settings(group: Mapping[str, Any]) -> dict[str, float]:
    """The group's numeric hyperparameters, tuples spread as ``betas[0]``, ``betas[1]``."""
    settings: dict[str, float] = {}
    for key, value in group.items():
        if key in _SKIPPED_KEYS or isinstance(value, bool):
            continue
        if is_number(value):
            settings[key] = float(value)
        elif isinstance(value, (tuple, list)) and value and all(map(is_number, value)):
            settings.update({f"{key}[{i}]": float(v) for i, v in enumerate(value)})
    return settings


def trace_schedule(
    config: Any,
    steps: int,
    model: torch.nn.Module | None = None,
    *,
    title: str = "",
    metric: Sequence[float] | None = None,
    flat_metric: bool = False,
) -> ScheduleTrace:
    """Build ``config`` with :func:`optforge.build` and record its schedule for ``steps`` steps.

    Args:
        config: Any config :func:`optforge.build` takes (a path, a mapping...).
        steps: How many optimizer steps to trace.
        model: The model whose parameters the param-group rules see; a one-layer
            model when omitted.
        title: A caption for plots.
        metric: The monitored value at each step, for a metric-driven scheduler
            (``ReduceLROnPlateau``, timm's plateau); its last value repeats.
        flat_metric: Without ``metric``, trace a metric-driven scheduler as if its metric
            never improved (the lrs of a run that stalls), instead of raising.

    Raises:
        ConfigError: for a config that cannot be built, or a metric-driven
            scheduler without ``metric`` or ``flat_metric``.
    """
    import optforge
    from optforge.scheduler import group_labels

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    from optforge.lr_schedulers import is_metric_driven, trace_steps

    optimizer, scheduler = optforge.build(model if model is not None else torch.nn.Linear(1, 1), config)
    metric_driven = is_metric_driven(scheduler)
    assumed = metric_driven and not metric and flat_metric
    if assumed:
        metric = [1.0]
    if metric_driven and not metric:
        raise ConfigError(
            f"{type(scheduler).__name__} lowers the lr when a monitored metric stops improving: give the "
            "metric's value at each step (optforge plot --metric 1.0,0.8,0.8,0.8; the last value repeats)",
            path="schedule",
        )
    names = group_labels(optimizer.param_groups)
    lrs: dict[str, list[float]] = {name: [] for name in names}
    settings: dict[str, dict[str, list[float]]] = {}  # hyperparameter -> group -> values

    def record(_step: int) -> None:
        for name, lr, group in zip(names, scheduler.get_last_lr(), optimizer.param_groups):
            lrs[name].append(float(lr))
            for key, value in _numeric_settings(group).items():
                settings.setdefault(key, {}).setdefault(name, []).append(value)

    trace_steps(scheduler, steps, record, lambda step: metric[min(step, len(metric) - 1)])  # type: ignore[index]
    others = {
        f"{key} ({groups})": values
        for key, by_group in settings.items()
        for groups, values in _merge_same(by_group).items()
        if len(values) == steps and len(set(values)) > 1
    }
    lrs = _merge_same(lrs)
    boundaries = sorted({b for values in lrs.values() for b in phase_boundaries(values)})
    return ScheduleTrace(list(range(steps)), lrs, others, boundaries, title, metric_assumed=assumed)


def _merge_same(curves: Mapping[str, list[float]]) -> dict[str, list[float]]:
    """One entry per distinct curve, named by all the groups that share it.

    Example:
        >>> _merge_same({"a": [1.0, 0.5], "b": [1.0, 0.5], "c": [2.0, 1.0]})
        {'a, b': [1.0, 0.5], 'c': [2.0, 1.0]}
    """
    shared: dict[tuple[float, ...], list[str]] = {}
    for name, values in curves.items():
        shared.setdefault(tuple(values), []).append(name)
    return {", ".join(names): list(values) for values, names in shared.items()}


def phase_boundaries(values: Sequence[float], tolerance: float = 0.5) -> list[int]:
    """Steps where a curve bends or jumps: the ends of warmups and the starts of phases.

    A step counts when the slope changes there by more than ``tolerance`` times
    both the curve's mean slope and the larger of the slopes on either side;
    smooth curves such as a cosine bend far less than that per step.

    Example:
        >>> ramp_then_flat = [min(1.0, step / 4) for step in range(10)]
        >>> phase_boundaries(ramp_then_flat)
        [4]
        >>> phase_boundaries([0.1] * 3 + [0.01] * 3 + [0.001] * 3)
        [3, 6]
    """
    n = len(values)
    scale = (max(values, default=0.0) - min(values, default=0.0)) / max(n - 1, 1)
    if n < 3 or scale == 0:
        return []
    slopes = [after - before for before, after in itertools.pairwise(values)]
    bends = [
        step
        for step in range(1, n - 1)
        if (change := abs(slopes[step] - slopes[step - 1])) > tolerance * scale
        and change > tolerance * max(abs(slopes[step]), abs(slopes[step - 1]))
    ]
    # A jump bends twice, into it and out of it, on neighbouring steps: keep the step it lands on.
    return [step for step in bends if step + 1 not in bends]


def _label_boundaries(trace: ScheduleTrace) -> list[tuple[int, str]]:
    """Each boundary with a label; the first is the warmup's end when the lr rose up to it."""
    first = next(iter(trace.lrs.values()))
    warmup = bool(trace.boundaries) and first[trace.boundaries[0]] > first[0]
    return [(step, "warmup end" if warmup and i == 0 else f"step {step}") for i, step in enumerate(trace.boundaries)]


def _spaced(labels: Sequence[tuple[int, str]], first: int, last: int, chars_across: float) -> list[tuple[int, str]]:
    """The labels that fit above the plot side by side, from the left; a label that would run into
    the one before it is left out (its line is still drawn).

    ``chars_across`` is how many label characters the plot's width holds.

    Example:
        >>> _spaced([(100, "warmup end"), (104, "step 104"), (150, "step 150")], 0, 300, 100)
        [(100, 'warmup end'), (150, 'step 150')]
    """
    kept: list[tuple[int, str]] = []
    right_edge = -math.inf
    for step, label in labels:
        centre = (step - first) / max(last - first, 1) * chars_across
        if centre - len(label) / 2 >= right_edge + 1:
            kept.append((step, label))
            right_edge = centre + len(label) / 2
    return kept


# How many boundary-label characters (small font) the width of a trace figure's plot holds.
LABEL_CHARS_ACROSS = 110


def trace_figure(trace: ScheduleTrace) -> Any:
    """The matplotlib ``Figure`` of ``trace``: learning rates above, other hyperparameters below.

    Boundary labels sit above the plot and legends beside it, so neither covers a curve.
    """
    from matplotlib.figure import Figure

    rows = 2 if trace.others else 1
    fig = Figure(figsize=(9, 3.2 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for name, values in trace.lrs.items():
        axes[0].plot(trace.steps, values, label=name)
    axes[0].set_ylabel("learning rate")
    for name, values in trace.others.items():
        axes[-1].plot(trace.steps, values, label=name)
    if trace.others:
        axes[-1].set_ylabel(next(iter(trace.others)) if len(trace.others) == 1 else "hyperparameter")
    labels = _label_boundaries(trace)
    for step, _ in labels:
        for ax in axes:
            ax.axvline(step, color="0.5", linestyle="--", linewidth=0.8)
    for step, label in _spaced(labels, trace.steps[0], trace.steps[-1], LABEL_CHARS_ACROSS):
        axes[0].annotate(
            label,
            (step, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3),
            textcoords="offset points",
            va="bottom",
            ha="center",
            fontsize="small",
            color="0.3",
            annotation_clip=False,
        )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlim(trace.steps[0], trace.steps[-1])
        if ax.get_legend_handles_labels()[1]:  # the boundary lines have no label
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")
    axes[-1].set_xlabel("step")
    if trace.title:
        axes[0].set_title(trace.title, pad=16 if trace.boundaries else 6)
    return fig


def plot_trace_png(trace: ScheduleTrace, path: str | Path) -> Path:
    """Draw ``trace`` to a PNG file with matplotlib (see :func:`trace_figure`)."""
    return _save(trace_figure(trace), path)


def _legend_corner(curves: Mapping[str, Sequence[float]], box: tuple[float, float]) -> tuple[bool, bool]:
    """The corner ``(right, top)`` of the plot where a legend of ``box`` (fractions of the
    plot's width and height) covers the fewest curve points.

    Example:
        >>> _legend_corner({"ramp": [step / 9 for step in range(10)]}, (0.4, 0.4))  # top left is free
        (False, True)
    """
    points = [
        (step / max(len(values) - 1, 1), value) for values in curves.values() for step, value in enumerate(values)
    ]
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0
    normalised = [(x, (v - low) / span) for x, v in points]

    def covered(right: bool, top: bool) -> int:
        return sum(
            (x >= 1 - box[0] if right else x <= box[0]) and (y >= 1 - box[1] if top else y <= box[1])
            for x, y in normalised
        )

    corners = [(True, True), (False, True), (True, False), (False, False)]  # ties: top right first
    return min(corners, key=lambda corner: covered(*corner))


def _step_ticks(first: int, last: int, count: int) -> list[int]:
    """About ``count`` round step numbers from ``first`` to ``last``, for the step axis.

    Example:
        >>> _step_ticks(0, 299, 6), _step_ticks(0, 9, 20)
        ([0, 50, 100, 150, 200, 250], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    raw = max(last - first, 1) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(factor * magnitude for factor in (1, 2, 5, 10) if factor * magnitude >= raw)
    return list(range(-(-first // step) * step, last + 1, step))


def plot_trace_terminal(trace: ScheduleTrace, width: int = 100, height: int = 25, *, color: bool = False) -> str:
    """Draw ``trace`` as text with plotext: learning rates, and other hyperparameters below; returns the drawing.

    Boundaries are vertical lines at their steps; each legend goes in the corner its curves leave free.
    """
    import plotext

    fig = plotext.figure
    fig.clear()
    plotext.terminal.limit(False, False)  # draw at the size asked, whatever the terminal
    fig.plot_size(width, height)
    panels = [trace.lrs, trace.others] if trace.others else [trace.lrs]
    if len(panels) > 1:
        fig.subplots(len(panels), 1)
    axes = [fig.subplot(row, 1) for row in range(1, len(panels) + 1)] if len(panels) > 1 else [fig]
    boundaries = _label_boundaries(trace)
    panel_height = max((height - 3) // len(panels) - 3, 3)  # rows of one panel's canvas, roughly
    for ax, curves in zip(axes, panels):
        for name, values in curves.items():
            ax.draw(ax.signal(trace.steps, values).lines().label(name))
        low, high = min(min(v) for v in curves.values()), max(max(v) for v in curves.values())
        if low == high:  # a flat curve: centre it rather than let the axis collapse
            margin = abs(low) / 2 or 1.0
            low, high = low - margin, high + margin
        ax.ruler(0).lim(trace.steps[0], trace.steps[-1])
        ticks = _step_ticks(trace.steps[0], trace.steps[-1], max(width // 14, 2))
        ax.ruler(0).ticks(ticks, [str(tick) for tick in ticks])
        ax.ruler(1).lim(low, high)
        labels = [*curves, *(label for _, label in boundaries if ax is axes[0])]
        box = ((max(map(len, labels)) + 8) / max(width - 10, 1), (2 * len(labels) + 2) / panel_height)
        right, top = _legend_corner(curves, box)
        ax.legend(
            x=trace.steps[-1] if right else trace.steps[0],
            y=high if top else low,
            relative=True,
            ha=1 if right else -1,
            va=-1 if top else 1,
        )
        for step, label in boundaries:
            ax.line(step, orientation=1, relative=True, label=label if ax is axes[0] else None)
    axes[0].title(trace.title or "learning rate")
    axes[-1].label("step", axis=0)
    drawing = fig.build().string(colorless=not color)
    fig.clear()
    return drawing


def plot_losses_png(losses: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Draw loss curves, one per run, on a log scale to a PNG file."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    for name, values in losses.items():
        ax.plot(range(len(values)), values, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _save(fig: Any, path: str | Path, option: str = "--output") -> Path:
    """Write ``fig`` to exactly ``path`` and return it.

    The format is the file's extension (PNG where it has none); an unknown
    extension, a directory, or a file that cannot be written in full is a
    ConfigError at ``option``, and nothing is reported as written.
    """
    import io

    path = Path(path)
    supported = fig.canvas.get_supported_filetypes()
    kind = path.suffix[1:].lower() or "png"
    if kind not in supported:
        choices = ", ".join(f".{name}" for name in sorted(supported))
        raise ConfigError(f"cannot write a {path.suffix!r} file; give a name ending in one of {choices}", path=option)
    if path.is_dir():
        raise ConfigError(
            f"{str(path)!r} is a directory; give a file name such as {str(path / 'lr.png')!r}", path=option
        )
    drawing = io.BytesIO()
    fig.savefig(drawing, format=kind, dpi=110)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            file.write(drawing.getvalue())
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}", path=option) from None
    return path
