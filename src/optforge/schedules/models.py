"""Typed schedule configs: the one-of :class:`LearningRate` and one model per shape.

The first four shapes are those of the recommender-system design, with its
field names, so existing configs keep working unchanged. The others share one
vocabulary:

* ``peak_value``: the value the schedule starts from after its warmup (its maximum);
* ``end_value``: the value it decays to (the floor, or min lr), held afterwards;
* ``init_value``: the value at step 0, where the linear warmup starts;
* ``warmup_steps``: the length of the warmup, which reaches ``peak_value`` exactly at its end;
* ``decay_steps``: the step at which the decay reaches ``end_value``, counted from
  step 0 of the schedule (the warmup included), i.e. the schedule's length;
* ``decay_rate`` and ``transition_steps``: the factor applied every ``transition_steps``.

Every step count or position also accepts ``{epochs: x}`` or ``{fraction: x}``
(see :func:`~optforge.schedules.resolve_schedule`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Annotated, ClassVar, Literal

import pydantic

from optforge._validation import StrictModel, exactly_one
from optforge.schedules._lengths import StepCount, StepIndex

__all__ = [
    "CosineCycles",
    "CosineDecay",
    "CosineRestarts",
    "ExponentialDecay",
    "InverseSqrt",
    "InverseTimeDecay",
    "Join",
    "LearningRate",
    "LinearDecay",
    "LinearGrowth",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MultistepDecay",
    "OneCycle",
    "Phase",
    "PiecewiseConstant",
    "PolynomialDecay",
    "Ramp",
    "Shift",
    "StepDecay",
    "Triangle",
    "Warmup",
    "WarmupStableDecay",
]

# A value a schedule takes: finite and >= 0 (a number, not a string or a boolean).
Value = Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False, strict=True)]
DecayRate = Annotated[float, pydantic.Field(gt=0, lt=1, allow_inf_nan=False, strict=True)]


def _resolved(*values: object) -> bool:
    """True when every value is already a step count (not epochs or a fraction)."""
    return all(isinstance(v, int) for v in values)


class _Schedule(StrictModel):
    """Shared behaviour: the schedule's own length and the step positions it names."""

    # The field holding the step at which the schedule reaches its final value, if any.
    END_FIELD: ClassVar[str | None] = None
    # Fields naming steps that must lie within ``total_steps`` when it is known.
    WITHIN_TOTAL: ClassVar[tuple[str, ...]] = ()

    def length(self) -> int | None:
        """The step at which the schedule settles on its last value, or ``None`` if it never does."""
        value = getattr(self, self.END_FIELD) if self.END_FIELD else None
        return value if isinstance(value, int) else None

    def positions(self) -> Iterator[tuple[tuple[str | int, ...], int]]:
        """``(path parts, step)`` for each step the schedule names, from its own step 0."""
        for name in self.WITHIN_TOTAL:
            value = getattr(self, name)
            if isinstance(value, list):
                yield from (((name, i), v) for i, v in enumerate(value))
            elif value is not None:
                yield (name,), value


class PiecewiseConstant(_Schedule):
    """``values[i]`` from boundary ``i-1`` (inclusive) to boundary ``i`` (exclusive).

    Example:
        >>> PiecewiseConstant(learning_rate_boundaries=[10], learning_rate_values=[0.1, 0.01]).learning_rate_values
        [0.1, 0.01]
    """

    WITHIN_TOTAL = ("learning_rate_boundaries",)

    learning_rate_boundaries: list[StepIndex]
    learning_rate_values: list[Value]

    @pydantic.model_validator(mode="after")
    def _check(self) -> PiecewiseConstant:
        bounds, values = self.learning_rate_boundaries, self.learning_rate_values
        if len(values) != len(bounds) + 1:
            raise ValueError(
                f"learning_rate_values needs one more entry than learning_rate_boundaries: "
                f"got {len(values)} values for {len(bounds)} boundaries"
            )
        if _resolved(*bounds) and any(later <= earlier for earlier, later in itertools.pairwise(bounds)):
            raise ValueError(f"learning_rate_boundaries must be strictly increasing, got {bounds}")
        return self


class LinearRampToConstant(_Schedule):
    """Linear ramp from 0 at step 0 to ``learning_rate`` at ``num_ramp_steps``, then constant."""

    learning_rate: Value
    num_ramp_steps: StepCount


class LinearRampToCosine(_Schedule):
    """Linear ramp to ``learning_rate``, cosine decay to ``final_learning_rate`` at ``final_num_steps``."""

    END_FIELD = "final_num_steps"
    WITHIN_TOTAL = ("final_num_steps",)

    learning_rate: Value
    final_learning_rate: Value
    num_ramp_steps: StepCount
    final_num_steps: StepCount

    @pydantic.model_validator(mode="after")
    def _check(self) -> LinearRampToCosine:
        if _resolved(self.num_ramp_steps, self.final_num_steps) and self.final_num_steps <= self.num_ramp_steps:
            raise ValueError(
                f"final_num_steps ({self.final_num_steps}) must be greater than "
                f"num_ramp_steps ({self.num_ramp_steps}): the cosine decay needs at least one step"
            )
        return self


class _WithWarmup(_Schedule):
    """A schedule with an optional linear warmup from ``init_value`` to ``peak_value``."""

    END_FIELD = "decay_steps"
    WITHIN_TOTAL = ("decay_steps",)

    warmup_steps: StepIndex = 0
    init_value: Value = 0.0

    @pydantic.model_validator(mode="after")
    def _check_warmup(self) -> _WithWarmup:
        peak, warmup = self.peak_value, self.warmup_steps  # type: ignore[attr-defined]
        if self.init_value != 0 and warmup == 0:
            raise ValueError(f"init_value ({self.init_value}) is where the warmup starts; set warmup_steps > 0")
        if self.init_value > peak:
            raise ValueError(f"init_value ({self.init_value}) must not exceed peak_value ({peak})")
        end = getattr(self, "end_value", None)
        if end is not None and end > peak:
            raise ValueError(f"end_value ({end}) must not exceed peak_value ({peak}): a decay goes down")
        decay = getattr(self, "decay_steps", None)
        if decay is not None and _resolved(warmup, decay) and warmup >= decay:
            raise ValueError(
                f"warmup_steps ({warmup}) must be less than decay_steps ({decay}); "
                "decay_steps counts from step 0, the warmup included"
            )
        return self


class LinearDecay(_WithWarmup):
    """Linear from ``peak_value`` (after the warmup) to ``end_value`` at ``decay_steps``.

    Example:
        >>> LinearDecay(peak_value=1.0, decay_steps=10).end_value
        0.0
    """

    peak_value: Value
    end_value: Value = 0.0
    decay_steps: StepCount


class CosineDecay(_WithWarmup):
    """Half a cosine from ``peak_value`` (after the warmup) to the floor ``end_value`` at ``decay_steps``."""

    peak_value: Value
    end_value: Value = 0.0
    decay_steps: StepCount


class PolynomialDecay(_WithWarmup):
    """``end + (peak - end) * (1 - progress) ** power`` until ``decay_steps``."""

    peak_value: Value
    end_value: Value = 0.0
    decay_steps: StepCount
    power: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False, strict=True)] = 1.0


class ExponentialDecay(_WithWarmup):
    """``peak_value * decay_rate ** (t / transition_steps)`` after the warmup, never below ``end_value``."""

    END_FIELD = None
    WITHIN_TOTAL = ()

    peak_value: Value
    decay_rate: DecayRate
    transition_steps: StepCount
    staircase: pydantic.StrictBool = False
    end_value: Value = 0.0


class StepDecay(_WithWarmup):
    """``peak_value`` times ``decay_rate`` every ``transition_steps`` after the warmup (torch ``StepLR``)."""

    END_FIELD = None
    WITHIN_TOTAL = ()

    peak_value: Value
    decay_rate: DecayRate
    transition_steps: StepCount
    end_value: Value = 0.0


class MultistepDecay(_WithWarmup):
    """``peak_value`` times ``decay_rate`` at each of the ``milestones`` (steps from step 0)."""

    END_FIELD = None
    WITHIN_TOTAL = ("milestones",)

    peak_value: Value
    decay_rate: DecayRate
    milestones: Annotated[list[StepIndex], pydantic.Field(min_length=1)]

    @pydantic.model_validator(mode="after")
    def _check(self) -> MultistepDecay:
        marks = self.milestones
        if not _resolved(self.warmup_steps, *marks):
            return self
        if any(later <= earlier for earlier, later in itertools.pairwise(marks)):
            raise ValueError(f"milestones must be strictly increasing, got {marks}")
        if marks[0] <= self.warmup_steps:
            raise ValueError(f"milestones must come after warmup_steps ({self.warmup_steps}), got {marks}")
        return self


class InverseSqrt(_WithWarmup):
    """``peak_value * sqrt(timescale / (timescale + t))``, ``t`` counted from the end of the warmup.

    ``timescale`` defaults to ``warmup_steps``, which gives ``peak * sqrt(warmup_steps / step)``.
    """

    END_FIELD = None
    WITHIN_TOTAL = ()

    peak_value: Value
    timescale: StepCount | None = None

    @pydantic.model_validator(mode="after")
    def _check(self) -> InverseSqrt:
        if self.timescale is None and self.warmup_steps == 0:
            raise ValueError("inverse_sqrt needs a timescale, or warmup_steps > 0 to serve as one")
        return self


class CosineRestarts(_WithWarmup):
    """Cosine cycles from the peak down to ``end_value``, restarting (SGDR).

    Cycle ``i`` lasts ``cycle_steps * cycle_mult ** i`` steps; its height above
    ``end_value`` is ``(peak_value - end_value) * peak_decay ** i``.
    """

    END_FIELD = None
    WITHIN_TOTAL = ()

    peak_value: Value
    end_value: Value = 0.0
    cycle_steps: StepCount
    cycle_mult: Annotated[float, pydantic.Field(ge=1, allow_inf_nan=False, strict=True)] = 1.0
    peak_decay: Annotated[float, pydantic.Field(gt=0, le=1, allow_inf_nan=False, strict=True)] = 1.0


class OneCycle(_WithWarmup):
    """torch's ``OneCycleLR`` (``three_phase=False``) over a run of ``decay_steps`` steps.

    Up from ``init_value`` to ``peak_value`` at step ``warmup_steps - 1``, down to
    ``end_value`` at step ``decay_steps - 1``, the run's last; both follow ``shape``.
    """

    init_value: Value = 0.0
    peak_value: Value
    end_value: Value = 0.0
    warmup_steps: StepCount
    decay_steps: StepCount
    shape: Literal["cosine", "linear"] = "cosine"


class WarmupStableDecay(_WithWarmup):
    """Warmup to ``peak_value``, hold it, then decay to ``end_value`` over the last ``cooldown_steps``.

    The decay ends at ``decay_steps``; its ``shape`` is ``linear``, ``cosine`` or ``1-sqrt``.
    ``warmup_shape`` shapes the warmup from ``init_value`` the same way, mirrored (``1-sqrt``
    rises as ``1 - sqrt(1 - p)``: fast at first).
    """

    peak_value: Value
    end_value: Value = 0.0
    decay_steps: StepCount
    cooldown_steps: StepCount
    shape: Literal["linear", "cosine", "1-sqrt"] = "linear"
    warmup_shape: Literal["linear", "cosine", "1-sqrt"] = "linear"

    @pydantic.model_validator(mode="after")
    def _check(self) -> WarmupStableDecay:
        warmup, cooldown, decay = self.warmup_steps, self.cooldown_steps, self.decay_steps
        if _resolved(warmup, cooldown, decay) and warmup + cooldown > decay:
            raise ValueError(
                f"warmup_steps ({warmup}) + cooldown_steps ({cooldown}) must not exceed decay_steps ({decay})"
            )
        return self


class CosineCycles(_WithWarmup):
    """``cycles`` cosine waves after the warmup, from ``peak_value`` down to ``end_value`` and back.

    ``progress = t / (decay_steps - warmup_steps)`` (``t`` from the end of the warmup) and the
    value is ``end + (peak - end) * max(0, 0.5 * (1 + cos(2 * pi * cycles * progress)))``: with
    the default ``cycles: 0.5`` one half wave that reaches ``end_value`` at ``decay_steps``. The
    wave goes on after ``decay_steps`` (it is not held). With ``hard_restarts: true`` each of the
    ``cycles`` cycles is a half wave that jumps back to the peak, and ``end_value`` is held from
    ``decay_steps`` on (Hugging Face's ``cosine`` and ``cosine_with_restarts``).

    Example:
        >>> CosineCycles(peak_value=1.0, decay_steps=10, cycles=2, hard_restarts=True).cycles
        2.0
    """

    END_FIELD = None

    peak_value: Value
    end_value: Value = 0.0
    decay_steps: StepCount
    cycles: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False, strict=True)] = 0.5
    hard_restarts: pydantic.StrictBool = False


class Shift(_Schedule):
    """``schedule`` read ``steps`` steps ahead: the value at step ``t`` is the schedule's at ``t + steps``.

    Example:
        >>> Shift(steps=1, schedule={"linear_decay": {"peak_value": 1.0, "decay_steps": 4}}).steps
        1
    """

    steps: Annotated[int, pydantic.Field(ge=0, strict=True)]
    schedule: LearningRate

    def length(self) -> int | None:
        """The wrapped schedule's length, less the steps skipped."""
        inner = self.schedule.length()
        return None if inner is None else max(0, inner - self.steps)


class Warmup(_Schedule):
    """A linear warmup from ``init_value`` in front of any ``schedule``, which then counts from 0.

    The warmup reaches the schedule's step-0 value exactly at ``warmup_steps``.
    With ``prefix: false`` the warmup instead takes the place of the schedule's
    first ``warmup_steps`` values, and the schedule counts from step 0 of the run
    (timm's ``warmup_prefix=False``): the ramp still heads for the schedule's
    step-0 value, and the schedule takes over at ``warmup_steps`` where it is then.
    """

    warmup_steps: StepCount
    init_value: Value = 0.0
    schedule: LearningRate
    prefix: pydantic.StrictBool = True

    def length(self) -> int | None:
        """The warmup plus the wrapped schedule's length (the schedule's alone without ``prefix``)."""
        inner = self.schedule.length()
        if not self.prefix:
            return inner
        return None if inner is None or not _resolved(self.warmup_steps) else self.warmup_steps + inner

    def positions(self) -> Iterator[tuple[tuple[str | int, ...], int]]:
        """The wrapped schedule's positions, shifted by the warmup when it is a ``prefix``."""
        shift = self.warmup_steps if self.prefix else 0
        for parts, step in self.schedule.positions():
            yield ("schedule", *parts), shift + step


class Phase(StrictModel):
    """One phase of a :class:`Join`: a schedule and how many steps it lasts.

    ``steps`` may be left out where the schedule has a length of its own
    (a ``decay_steps``) and for the last phase, which lasts until the end.
    """

    schedule: LearningRate
    steps: StepCount | None = None

    def resolved_steps(self) -> int | None:
        """The phase length in steps, from ``steps`` or from the schedule's own length."""
        return self.steps if isinstance(self.steps, int) else self.schedule.length()


class Join(_Schedule):
    """Phases one after the other; each phase sees its own step count from 0 (like ``optax.join_schedules``)."""

    phases: Annotated[list[Phase], pydantic.Field(min_length=1)]

    @pydantic.model_validator(mode="after")
    def _check(self) -> Join:
        for index, phase in enumerate(self.phases):
            own = phase.schedule.length()
            if _resolved(phase.steps) and own is not None and phase.steps != own:
                raise ValueError(
                    f"phases[{index}]: steps ({phase.steps}) differs from the length of its schedule ({own}); "
                    "drop steps or make them agree"
                )
            if index < len(self.phases) - 1 and phase.steps is None and own is None:
                raise ValueError(
                    f"phases[{index}] needs steps: only the last phase may run without an end, "
                    "and its schedule has no decay_steps to take the length from"
                )
        return self

    def boundaries(self) -> list[int]:
        """The step at which each phase after the first starts."""
        ends = itertools.accumulate(phase.resolved_steps() or 0 for phase in self.phases[:-1])
        return list(ends)

    def length(self) -> int | None:
        """The sum of the phase lengths, when the last phase has one."""
        last = self.phases[-1].resolved_steps()
        return None if last is None else sum(self.boundaries()[-1:]) + last

    def positions(self) -> Iterator[tuple[tuple[str | int, ...], int]]:
        """Each phase's positions, shifted to where the phase starts, and each phase's end."""
        starts = [0, *self.boundaries()]
        for index, (phase, start) in enumerate(zip(self.phases, starts)):
            for parts, step in phase.schedule.positions():
                yield ("phases", index, "schedule", *parts), start + step
            if phase.resolved_steps() is not None:
                yield ("phases", index, "steps"), start + phase.resolved_steps()  # type: ignore[operator]


class Ramp(_Schedule):
    """From ``init_value`` to ``peak_value`` over ``warmup_steps`` along ``shape``, then ``peak_value``.

    ``shape`` is ``linear``, ``cosine``, ``1-sqrt`` (the weight of the peak at progress
    ``t / warmup_steps``) or ``log``: ``log(1 + t) / log(warmup_steps)``, which reaches the peak
    one step early, at ``warmup_steps - 1`` (DeepSpeed's ``warmup_type: log``).

    Example:
        >>> Ramp(peak_value=1.0, warmup_steps=10, shape="log").length()
        10
    """

    END_FIELD = "warmup_steps"

    init_value: Value = 0.0
    peak_value: Value
    warmup_steps: StepCount
    shape: Literal["linear", "cosine", "1-sqrt", "log"] = "linear"

    @pydantic.model_validator(mode="after")
    def _check(self) -> Ramp:
        if self.shape == "log" and _resolved(self.warmup_steps) and self.warmup_steps < 2:
            raise ValueError(f"a log ramp needs warmup_steps >= 2, got {self.warmup_steps}")
        return self


class Triangle(_Schedule):
    """A triangular cycle, repeated: ``init_value`` to ``peak_value`` over ``rise_steps``, back over ``fall_steps``.

    ``peak_value`` may lie below ``init_value`` (a momentum that dips while the lr rises).
    With ``rise_stairs`` (``fall_stairs``) above 0 the rise (the fall) moves in that many
    flat stairs instead of every step. DeepSpeed's ``OneCycle`` cycle.

    Example:
        >>> Triangle(init_value=0.1, peak_value=1.0, rise_steps=10, fall_steps=10).fall_steps
        10
    """

    init_value: Value
    peak_value: Value
    rise_steps: StepCount
    fall_steps: StepIndex = 0
    rise_stairs: Annotated[int, pydantic.Field(ge=0, strict=True)] = 0
    fall_stairs: Annotated[int, pydantic.Field(ge=0, strict=True)] = 0


class InverseTimeDecay(_Schedule):
    """``peak_value / (1 + decay_rate * t / transition_steps)`` (whole periods only with ``staircase``).

    Example:
        >>> InverseTimeDecay(peak_value=1.0, decay_rate=0.5, transition_steps=10).staircase
        False
    """

    peak_value: Value
    decay_rate: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False, strict=True)]
    transition_steps: StepCount
    staircase: pydantic.StrictBool = False


class LinearGrowth(_Schedule):
    """``init_value * (1 + rate * t / transition_steps)``, growing without end (whole periods with ``staircase``).

    DeepSpeed's ``LRRangeTest``.

    Example:
        >>> LinearGrowth(init_value=1e-3, rate=2.0, transition_steps=100).rate
        2.0
    """

    init_value: Value
    rate: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False, strict=True)]
    transition_steps: StepCount
    staircase: pydantic.StrictBool = False


class LearningRate(StrictModel):
    """A learning-rate schedule: exactly one of the fields is set.

    Example:
        >>> LearningRate(constant=0.1).constant
        0.1
        >>> LearningRate.model_validate({"cosine_decay": {"peak_value": 0.1, "decay_steps": 100}}).chosen()[0]
        'cosine_decay'
    """

    constant: Value | None = None
    piecewise_constant: PiecewiseConstant | None = None
    linear_ramp_to_constant: LinearRampToConstant | None = None
    linear_ramp_to_cosine: LinearRampToCosine | None = None
    linear_decay: LinearDecay | None = None
    cosine_decay: CosineDecay | None = None
    polynomial_decay: PolynomialDecay | None = None
    exponential_decay: ExponentialDecay | None = None
    step_decay: StepDecay | None = None
    multistep_decay: MultistepDecay | None = None
    inverse_sqrt: InverseSqrt | None = None
    cosine_restarts: CosineRestarts | None = None
    one_cycle: OneCycle | None = None
    warmup_stable_decay: WarmupStableDecay | None = None
    warmup: Warmup | None = None
    join: Join | None = None
    cosine_cycles: CosineCycles | None = None
    shift: Shift | None = None
    ramp: Ramp | None = None
    triangle: Triangle | None = None
    inverse_time_decay: InverseTimeDecay | None = None
    linear_growth: LinearGrowth | None = None

    @pydantic.model_validator(mode="after")
    def _one_of(self) -> LearningRate:
        exactly_one(self, "a learning-rate schedule")
        return self

    def chosen(self) -> tuple[str, object]:
        """The name and config of the one schedule that is set."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise AssertionError("a validated LearningRate always has one field set")

    def length(self) -> int | None:
        """The step from which the schedule holds its last value, or ``None`` if it never settles."""
        _, config = self.chosen()
        return config.length() if isinstance(config, _Schedule) else None

    def positions(self) -> Iterator[tuple[tuple[str | int, ...], int]]:
        """``(path parts, step)`` for each step position the schedule names."""
        name, config = self.chosen()
        if isinstance(config, _Schedule):
            for parts, step in config.positions():
                yield (name, *parts), step


Warmup.model_rebuild()
Shift.model_rebuild()
Phase.model_rebuild()
Join.model_rebuild()
