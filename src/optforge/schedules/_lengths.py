"""Step counts that may be written in steps, in epochs, or as a fraction of the run.

A length field accepts an ``int`` (steps), ``{"steps": n}``, ``{"epochs": x}``
(times ``steps_per_epoch``) or ``{"fraction": x}`` (of ``total_steps``). Epochs
and fractions stay symbolic in a parsed config until
:func:`~optforge.schedules.resolve_schedule` turns them into steps, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic

from optforge.errors import ConfigError, truncate
from optforge.ranges import is_finite

__all__ = ["MAX_STEP", "Length", "StepCount", "StepIndex"]

# The largest step count or step: beyond 2**53 a float no longer tells one step from the next.
MAX_STEP = 2**53

# How each unit turns into steps: the context value it needs, and its valid range.
UNITS: Mapping[str, str] = {"epochs": "steps_per_epoch", "fraction": "total_steps"}


@dataclass(frozen=True)
class Length:
    """A length in epochs or as a fraction of ``total_steps``, not yet in steps.

    Example:
        >>> Length(2.5, "epochs").to_steps({"steps_per_epoch": 100}, "warmup_steps")
        250
    """

    value: float
    unit: str

    def to_steps(self, context: Mapping[str, int | None], path: str) -> int:
        """The length in steps, rounded to the nearest step, given the run's context.

        Raises:
            ConfigError: when the context value this unit needs is missing.
        """
        needed = UNITS[self.unit]
        scale = context.get(needed)
        if scale is None:
            raise ConfigError(
                f"{{{self.unit}: {self.value}}} needs {needed}: pass it from code, optforge.build(model, config, "
                f"{needed}=N), or write it in the file with the schedule under lr, "
                f"schedule: {{{needed}: N, lr: {{...this schedule...}}}}",
                path=path,
            )
        steps = self.value * scale
        if not steps <= MAX_STEP:
            raise ConfigError(f"{{{self.unit}: {self.value}}} is {steps:.4g} steps, more than 2**53", path=path)
        return round(steps)

    def as_data(self) -> dict[str, float]:
        """The config form, ``{"epochs": 2.0}``."""
        return {self.unit: self.value}


def _parse(value: Any, minimum: int) -> int | Length:
    if isinstance(value, Length):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        ((unit, amount),) = value.items()
        if unit == "steps":
            return _parse(amount, minimum)
        if unit in UNITS and isinstance(amount, int | float) and not isinstance(amount, bool):
            in_range = (amount > 0 if minimum else amount >= 0) and (unit != "fraction" or amount <= 1)
            if not is_finite(amount):
                raise ValueError(f"{unit} must be a finite number, got {amount!r}")
            if not in_range:
                low = ">" if minimum else ">="
                bound = f"{low} 0 and <= 1" if unit == "fraction" else f"{low} 0"
                raise ValueError(f"{unit} must be {bound}, got {amount!r}")
            return Length(float(amount), unit)
    elif (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer()):
        if value < minimum:
            raise ValueError(f"must be {'> 0' if minimum else '>= 0'} steps, got {value!r}")
        if value > MAX_STEP:
            raise ValueError(f"must be at most {MAX_STEP} (2**53) steps, got {value!r}")
        return int(value)
    raise ValueError(
        f"expected a step count (an integer), {{epochs: x}} (with steps_per_epoch) or "
        f"{{fraction: x}} (of total_steps), got {truncate(value)}"
    )


def _serialize(value: int | Length) -> Any:
    return value.as_data() if isinstance(value, Length) else value


def _length_schema(minimum: int) -> dict[str, Any]:
    """The JSON Schema of a length: what :func:`_parse` accepts, as far as a schema can tell."""
    amount = {"type": "number", "exclusiveMinimum": 0} if minimum else {"type": "number", "minimum": 0}
    steps = {"type": "integer", "minimum": minimum, "maximum": MAX_STEP}

    def unit(name: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": {name: value}, "required": [name], "additionalProperties": False}

    units = [unit("epochs", amount), unit("fraction", {**amount, "maximum": 1})]
    return {"anyOf": [steps, *units, unit("steps", {"anyOf": [steps, *units]})]}


def _length_type(minimum: int, description: str) -> Any:
    return Annotated[
        Any,
        pydantic.PlainValidator(lambda value: _parse(value, minimum)),
        pydantic.PlainSerializer(_serialize),
        pydantic.WithJsonSchema({**_length_schema(minimum), "description": description}),
    ]


# A positive length (a ramp, a decay, a cycle).
StepCount = _length_type(1, "steps (> 0), or {epochs: x}, or {fraction: x} of total_steps")
# A step position or a length that may be 0 (a boundary, a milestone, a warmup).
StepIndex = _length_type(0, "steps (>= 0), or {epochs: x}, or {fraction: x} of total_steps")
