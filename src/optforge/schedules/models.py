"""Typed schedule configs: the one-of :class:`LearningRate` and one model per shape.

The first four shapes are those of the recommender-system design, with its
field names, so existing configs keep working unchanged.
"""

from __future__ import annotations

import itertools

import pydantic

from optforge._validation import StrictModel, exactly_one

__all__ = ["LearningRate", "LinearRampToConstant", "LinearRampToCosine", "PiecewiseConstant"]


class PiecewiseConstant(StrictModel):
    """``values[i]`` from boundary ``i-1`` (inclusive) to boundary ``i`` (exclusive).

    Example:
        >>> PiecewiseConstant(learning_rate_boundaries=[10], learning_rate_values=[0.1, 0.01]).learning_rate_values
        [0.1, 0.01]
    """

    learning_rate_boundaries: list[int]
    learning_rate_values: list[float]

    @pydantic.model_validator(mode="after")
    def _check(self) -> PiecewiseConstant:
        bounds, values = self.learning_rate_boundaries, self.learning_rate_values
        if len(values) != len(bounds) + 1:
            raise ValueError(
                f"learning_rate_values needs one more entry than learning_rate_boundaries: "
                f"got {len(values)} values for {len(bounds)} boundaries"
            )
        if any(b < 0 for b in bounds):
            raise ValueError(f"learning_rate_boundaries must be >= 0, got {bounds}")
        if any(later <= earlier for earlier, later in itertools.pairwise(bounds)):
            raise ValueError(f"learning_rate_boundaries must be strictly increasing, got {bounds}")
        return self


class LinearRampToConstant(StrictModel):
    """Linear ramp from 0 at step 0 to ``learning_rate`` at ``num_ramp_steps``, then constant."""

    learning_rate: float
    num_ramp_steps: pydantic.PositiveInt


class LinearRampToCosine(StrictModel):
    """Linear ramp to ``learning_rate``, cosine decay to ``final_learning_rate`` at ``final_num_steps``."""

    learning_rate: float
    final_learning_rate: float
    num_ramp_steps: pydantic.PositiveInt
    final_num_steps: pydantic.PositiveInt

    @pydantic.model_validator(mode="after")
    def _check(self) -> LinearRampToCosine:
        if self.final_num_steps <= self.num_ramp_steps:
            raise ValueError(
                f"final_num_steps ({self.final_num_steps}) must be greater than "
                f"num_ramp_steps ({self.num_ramp_steps}): the cosine decay needs at least one step"
            )
        return self


class LearningRate(StrictModel):
    """A learning-rate schedule: exactly one of the fields is set.

    Example:
        >>> LearningRate(constant=0.1).constant
        0.1
    """

    constant: float | None = None
    piecewise_constant: PiecewiseConstant | None = None
    linear_ramp_to_constant: LinearRampToConstant | None = None
    linear_ramp_to_cosine: LinearRampToCosine | None = None

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
