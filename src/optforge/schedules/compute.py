"""Compile schedule configs into plain callables; ``compute_lr`` on top, with a cache."""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from optforge.errors import ConfigError, truncate
from optforge.schedules import _shapes as shapes
from optforge.schedules._lengths import MAX_STEP
from optforge.schedules._shapes import Schedule
from optforge.schedules.models import (
    CosineCycles,
    CosineRestarts,
    ExponentialDecay,
    InverseSqrt,
    InverseTimeDecay,
    Join,
    LearningRate,
    LinearGrowth,
    LinearRampToConstant,
    LinearRampToCosine,
    MultistepDecay,
    OneCycle,
    PiecewiseConstant,
    PolynomialDecay,
    Ramp,
    Shift,
    StepDecay,
    Triangle,
    Warmup,
    WarmupStableDecay,
)
from optforge.schedules.resolve import resolve_schedule

__all__ = ["SCHEDULE_BUILDERS", "CompiledSchedule", "Schedule", "check_step", "compute_lr", "make_schedule"]


def check_step(step: Any) -> None:
    """Raise ``ConfigError`` unless ``step`` is a number in ``[0, 2**53]`` (a schedule's domain).

    Example:
        >>> check_step(float("nan"))
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: step: step must be a number >= 0, got nan
    """
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise ConfigError(f"step must be a number >= 0, got {type(step).__name__} {truncate(step)}", path="step")
    if step < 0:
        raise ConfigError(f"step must be >= 0, got {truncate(step)}", path="step")
    if not step <= MAX_STEP:  # also nan
        what = "a number >= 0" if step != step else "at most 2**53"
        raise ConfigError(f"step must be {what}, got {truncate(step)}", path="step")


class CompiledSchedule:
    """A compiled schedule config: call it with a step for the value at that step.

    It refuses a step outside ``[0, 2**53]`` instead of returning nan or
    overflowing. It pickles and copies as its config, compiled again on load.

    Example:
        >>> import pickle
        >>> f = make_schedule({"linear_decay": {"peak_value": 1.0, "decay_steps": 4}})
        >>> f(1), pickle.loads(pickle.dumps(f))(1)
        (0.75, 0.75)
    """

    __slots__ = ("_function", "config")

    def __init__(self, config: LearningRate) -> None:
        self.config = config
        self._function = _compile(config)

    def __call__(self, step: int) -> float:
        check_step(step)
        return self._function(step)

    def __reduce__(self) -> tuple[type[CompiledSchedule], tuple[LearningRate]]:
        return (CompiledSchedule, (self.config,))

    def __repr__(self) -> str:
        return f"CompiledSchedule({self.config.model_dump(mode='json', exclude_none=True)})"


def _piecewise_constant(cfg: PiecewiseConstant) -> Schedule:
    boundaries, values = list(cfg.learning_rate_boundaries), list(cfg.learning_rate_values)
    return lambda step: values[bisect.bisect_right(boundaries, step)]


def _linear_ramp_to_constant(cfg: LinearRampToConstant) -> Schedule:
    lr, ramp = cfg.learning_rate, cfg.num_ramp_steps
    return lambda step: min(lr, lr / ramp * step)


def _linear_ramp_to_cosine(cfg: LinearRampToCosine) -> Schedule:
    lr, final, ramp, total = cfg.learning_rate, cfg.final_learning_rate, cfg.num_ramp_steps, cfg.final_num_steps

    # The recommender design's formula, operation for operation, so its configs give the same floats.
    def schedule(step: int) -> float:
        if step < ramp:
            return lr / ramp * step
        if step <= total:
            return final + (lr - final) * 0.5 * (1 + math.cos(math.pi * (step - ramp) / (total - ramp)))
        return final

    return schedule


def _warmup_then(cfg: Any, body: Schedule) -> Schedule:
    """``body`` after the config's linear warmup (``warmup_steps`` from ``init_value``)."""
    return shapes.with_warmup(body, cfg.warmup_steps, cfg.init_value)


def _decay(shape: str) -> Callable[[Any], Schedule]:
    """Warmup, then an anneal of ``shape`` from ``peak_value`` to ``end_value`` at ``decay_steps``."""

    def build(cfg: Any) -> Schedule:
        body = shapes.anneal(cfg.peak_value, cfg.end_value, cfg.decay_steps - cfg.warmup_steps, shape)
        return _warmup_then(cfg, body)

    return build


def _polynomial_decay(cfg: PolynomialDecay) -> Schedule:
    power = cfg.power
    body = shapes.anneal(
        cfg.peak_value, cfg.end_value, cfg.decay_steps - cfg.warmup_steps, lambda p: 1.0 - (1.0 - p) ** power
    )
    return _warmup_then(cfg, body)


def _exponential_decay(cfg: ExponentialDecay | StepDecay) -> Schedule:
    staircase = getattr(cfg, "staircase", True)  # step_decay is the staircase form
    body = shapes.exponential(cfg.peak_value, cfg.decay_rate, cfg.transition_steps, staircase, cfg.end_value)
    return _warmup_then(cfg, body)


def _multistep_decay(cfg: MultistepDecay) -> Schedule:
    # Milestones count from step 0 of the schedule; the body counts from the end of the warmup.
    marks = [mark - cfg.warmup_steps for mark in cfg.milestones]
    return _warmup_then(cfg, shapes.multistep(cfg.peak_value, marks, cfg.decay_rate))


def _inverse_sqrt(cfg: InverseSqrt) -> Schedule:
    timescale = cfg.timescale if cfg.timescale is not None else cfg.warmup_steps
    return _warmup_then(cfg, shapes.inverse_sqrt(cfg.peak_value, timescale))


def _cosine_restarts(cfg: CosineRestarts) -> Schedule:
    body = shapes.cosine_restarts(cfg.peak_value, cfg.end_value, cfg.cycle_steps, cfg.cycle_mult, cfg.peak_decay)
    return _warmup_then(cfg, body)


def _one_cycle(cfg: OneCycle) -> Schedule:
    # torch's OneCycleLR over a run of decay_steps steps: the peak at step warmup_steps - 1, the end at the last step.
    peak_at, end_at = cfg.warmup_steps - 1, cfg.decay_steps - 1
    rise = shapes.anneal(cfg.init_value, cfg.peak_value, peak_at, cfg.shape)
    fall = shapes.anneal(cfg.peak_value, cfg.end_value, end_at - peak_at, cfg.shape)
    return shapes.join([rise, fall], [peak_at]) if peak_at else fall


def _warmup_stable_decay(cfg: WarmupStableDecay) -> Schedule:
    stable = cfg.decay_steps - cfg.warmup_steps - cfg.cooldown_steps
    cooldown = shapes.anneal(cfg.peak_value, cfg.end_value, cfg.cooldown_steps, cfg.shape)
    body = shapes.join([shapes.constant(cfg.peak_value), cooldown], [stable]) if stable else cooldown
    if cfg.warmup_shape == "linear" or not cfg.warmup_steps:
        return _warmup_then(cfg, body)
    ramp = shapes.anneal(cfg.init_value, cfg.peak_value, cfg.warmup_steps, shapes.RISE_WEIGHTS[cfg.warmup_shape])
    return shapes.join([ramp, body], [cfg.warmup_steps])


def _cosine_cycles(cfg: CosineCycles) -> Schedule:
    body = shapes.cosine_cycles(
        cfg.peak_value, cfg.end_value, cfg.decay_steps - cfg.warmup_steps, cfg.cycles, cfg.hard_restarts
    )
    return _warmup_then(cfg, body)


def _shift(cfg: Shift) -> Schedule:
    body, steps = _compile(cfg.schedule), cfg.steps
    return lambda step: body(step + steps)


def _ramp(cfg: Ramp) -> Schedule:
    if cfg.shape == "log":
        return shapes.log_ramp(cfg.init_value, cfg.peak_value, cfg.warmup_steps)
    return shapes.anneal(cfg.init_value, cfg.peak_value, cfg.warmup_steps, shapes.RISE_WEIGHTS[cfg.shape])


def _triangle(cfg: Triangle) -> Schedule:
    rise, fall = cfg.rise_steps, cfg.fall_steps
    return shapes.triangle(cfg.init_value, cfg.peak_value, rise, fall, cfg.rise_stairs, cfg.fall_stairs)


def _inverse_time_decay(cfg: InverseTimeDecay) -> Schedule:
    return shapes.inverse_time(cfg.peak_value, cfg.decay_rate, cfg.transition_steps, cfg.staircase)


def _linear_growth(cfg: LinearGrowth) -> Schedule:
    return shapes.linear_growth(cfg.init_value, cfg.rate, cfg.transition_steps, cfg.staircase)


def _warmup(cfg: Warmup) -> Schedule:
    body = _compile(cfg.schedule)
    if cfg.prefix:
        return shapes.with_warmup(body, cfg.warmup_steps, cfg.init_value)
    # timm's warmup_prefix=False: the ramp replaces the body's first values; the body keeps its own count.
    ramp, warmup = shapes.anneal(cfg.init_value, body(0), cfg.warmup_steps, "linear"), cfg.warmup_steps
    return lambda step: ramp(step) if step < warmup else body(step)


def _join(cfg: Join) -> Schedule:
    return shapes.join([_compile(phase.schedule) for phase in cfg.phases], cfg.boundaries())


# One entry per field of LearningRate: adding a schedule is a model field and an entry here.
SCHEDULE_BUILDERS: Mapping[str, Callable[[Any], Schedule]] = {
    "constant": shapes.constant,
    "piecewise_constant": _piecewise_constant,
    "linear_ramp_to_constant": _linear_ramp_to_constant,
    "linear_ramp_to_cosine": _linear_ramp_to_cosine,
    "linear_decay": _decay("linear"),
    "cosine_decay": _decay("cosine"),
    "polynomial_decay": _polynomial_decay,
    "exponential_decay": _exponential_decay,
    "step_decay": _exponential_decay,
    "multistep_decay": _multistep_decay,
    "inverse_sqrt": _inverse_sqrt,
    "cosine_restarts": _cosine_restarts,
    "one_cycle": _one_cycle,
    "warmup_stable_decay": _warmup_stable_decay,
    "warmup": _warmup,
    "join": _join,
    "cosine_cycles": _cosine_cycles,
    "shift": _shift,
    "ramp": _ramp,
    "triangle": _triangle,
    "inverse_time_decay": _inverse_time_decay,
    "linear_growth": _linear_growth,
}


def _compile(lr: LearningRate) -> Schedule:
    name, cfg = lr.chosen()
    return SCHEDULE_BUILDERS[name](cfg)


def make_schedule(
    lr_config: LearningRate | Mapping[str, Any],
    *,
    steps_per_epoch: int | None = None,
    total_steps: int | None = None,
    path: str = "learning_rate",
) -> CompiledSchedule:
    """Validate a schedule config once and compile it into a ``step -> lr`` function.

    Args:
        lr_config: A :class:`LearningRate` or a mapping of the same shape.
        steps_per_epoch: Optimizer steps per epoch, for lengths given in epochs.
        total_steps: Optimizer steps of the run, for lengths given as fractions.
        path: The config path of ``lr_config``, for messages.

    Returns:
        A function of the step (counted from 0) returning the learning rate, a
        :class:`CompiledSchedule` that pickles and copies.

    Raises:
        ConfigError: for any bad config, naming the path of the bad field.

    Example:
        >>> f = make_schedule({"warmup_stable_decay": {"peak_value": 1.0, "warmup_steps": 10,
        ...                    "decay_steps": 100, "cooldown_steps": 20}})
        >>> [f(s) for s in (0, 5, 10, 80, 90, 100)]
        [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]
    """
    lr = resolve_schedule(lr_config, steps_per_epoch=steps_per_epoch, total_steps=total_steps, path=path)
    return CompiledSchedule(lr)


# Compiled schedules by config: typed configs by identity (they are frozen), mappings by content.
_BY_MODEL: dict[int, tuple[LearningRate, Schedule]] = {}
_BY_CONTENT: dict[Any, Schedule] = {}
_CACHE_SIZE = 1024


def _lookup(lr_config: Any) -> Schedule:
    if isinstance(lr_config, LearningRate):
        schedule = make_schedule(lr_config)
        if len(_BY_MODEL) >= _CACHE_SIZE:
            _BY_MODEL.clear()
        _BY_MODEL[id(lr_config)] = (lr_config, schedule)  # holding the model keeps its id unique
        return schedule
    # The text of plain config data is its content (1 and 1.0 differ, as they should); C-fast to build.
    try:
        key = (type(lr_config), repr(lr_config))
    except RecursionError:  # nested too deeply to be a schedule: parsing it says where
        return make_schedule(lr_config)
    schedule = _BY_CONTENT.get(key)
    if schedule is None:
        schedule = make_schedule(lr_config)
        if len(_BY_CONTENT) >= _CACHE_SIZE:
            _BY_CONTENT.clear()
        _BY_CONTENT[key] = schedule
    return schedule


def compute_lr(lr_config: LearningRate | Mapping[str, Any], step: int) -> float:
    """The learning rate of ``lr_config`` at ``step`` (0-based), a pure function of the step.

    The config is validated and compiled on first use and cached, so later calls
    cost a dictionary lookup and a few float operations. Lengths in epochs or
    fractions must be resolved first (:func:`resolve_schedule`).

    Args:
        lr_config: A :class:`LearningRate` or a mapping of the same shape.
        step: The optimizer step, counted from 0.

    Returns:
        The learning rate, a float.

    Raises:
        ConfigError: for a bad config, or a step that is not a number in ``[0, 2**53]``.

    Example:
        >>> compute_lr({"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}}, 5)
        0.05
        >>> compute_lr({"cosine_decay": {"peak_value": 1.0, "end_value": 0.1, "decay_steps": 10}}, 10)
        0.1
    """
    entry = _BY_MODEL.get(id(lr_config))
    if entry is not None and entry[0] is lr_config:
        return entry[1](step)
    return _lookup(lr_config)(step)
