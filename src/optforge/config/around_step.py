"""The keys of a config document that say what runs around the optimizer's step.

``clip_grad:`` clips the gradients before each step (by total norm, by value or
adaptively), ``ema:`` keeps an exponential moving average of the weights after
each step and ``skip_nonfinite:`` skips a step whose gradients hold inf or NaN.
:func:`read_around_step` parses them once into an :class:`AroundStep`.

Example:
    >>> around = read_around_step({"clip_grad": {"max_norm": 1.0}, "ema": {"decay": 0.999}}, Problems())
    >>> around.clip_grad.mode, around.clip_grad.norm_type, around.ema.decay, around.skip_nonfinite
    ('max_norm', 2.0, 0.999, False)
    >>> read_around_step({"ema": {"decay": 1.5}, "clip_grad": {"max_nrom": 1}}, problems := Problems())
    AroundStep()
    >>> problems.raise_if_any()
    Traceback (most recent call last):
    ...
    optforge.errors.ConfigError: 2 problems in the config:
      - clip_grad.max_nrom: unknown key; did you mean 'max_norm'? Valid keys: max_norm, norm_type, ...
      - ema.decay: Input should be less than 1 (got 1.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic

from optforge._validation import StrictModel, exactly_one, parse_model
from optforge.config.problems import Problems

__all__ = ["AROUND_STEP_KEYS", "CLIP_MODES", "AroundStep", "ClipGrad", "Ema", "read_around_step"]

# The document keys read here, beside ``optimizer:`` and ``schedule:``.
AROUND_STEP_KEYS: tuple[str, ...] = ("clip_grad", "ema", "skip_nonfinite")

Positive = Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False, strict=True)]
CLIP_MODES = ("max_norm", "max_value", "agc")


class ClipGrad(StrictModel):
    """How gradients are clipped before each step: exactly one of ``max_norm``, ``max_value`` and ``agc``.

    ``max_norm`` clips by the total norm over every parameter of the optimizer (as
    ``torch.nn.utils.clip_grad_norm_``), ``max_value`` clips each element (as
    ``clip_grad_value_``), ``agc`` clips each output unit to ``agc`` times the norm
    of its weights (timm's ``adaptive_clip_grad`` with ``clip_factor = agc``).

    Example:
        >>> ClipGrad(max_norm=1.0, norm_type=float("inf")).norm_type
        inf
        >>> ClipGrad(agc=0.01).mode
        'agc'
    """

    max_norm: Positive | None = pydantic.Field(None, description="clip by the total norm of the gradients")
    norm_type: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=True, strict=True)] = pydantic.Field(
        2.0, description="the norm of max_norm (.inf: the largest absolute value)"
    )
    error_if_nonfinite: pydantic.StrictBool = pydantic.Field(
        False, description="raise when the total norm is inf or NaN"
    )
    max_value: Positive | None = pydantic.Field(None, description="clip each gradient element to [-v, v]")
    agc: Positive | None = pydantic.Field(None, description="adaptive clipping factor (timm's clip_factor)")
    eps: Positive = pydantic.Field(1.0e-3, description="agc: the smallest weight norm")
    per_part: pydantic.StrictBool = pydantic.Field(False, description="clip each part of a composite on its own")

    @pydantic.model_validator(mode="after")
    def _one_mode(self) -> ClipGrad:
        mode = exactly_one(self, "clip_grad", CLIP_MODES)
        if math.isnan(self.norm_type):
            raise ValueError("norm_type must be a positive number or .inf, got nan")
        owners = {"norm_type": "max_norm", "error_if_nonfinite": "max_norm", "eps": "agc"}
        for key, owner in owners.items():
            if key in self.model_fields_set and mode != owner:
                raise ValueError(f"{key} applies to {owner}, which is not set")
        return self

    @property
    def mode(self) -> str:
        """The one of ``max_norm``, ``max_value`` and ``agc`` that is set."""
        return next(name for name in CLIP_MODES if getattr(self, name) is not None)


class Ema(StrictModel):
    """An exponential moving average of the weights, updated after optimizer steps.

    After step ``n`` (from 1) it takes timm's ``ModelEmaV3.update(model, step=n)``
    with ``update_after_step = start_step``: up to step ``start_step + 1`` the
    weights are copied, later the average moves by ``1 - decay`` (with ``warmup``,
    decay is ``1 - (1 + (n - start_step - 1) / warmup_gamma) ** -warmup_power``,
    at most ``decay``). ``every: k`` updates after every k-th step only.

    Example:
        >>> Ema(decay=0.999, every=10).buffers
        'copy'
    """

    decay: Annotated[float, pydantic.Field(ge=0, lt=1, allow_inf_nan=False, strict=True)] = pydantic.Field(
        description="the weight of the average at each update, in [0, 1)"
    )
    warmup: pydantic.StrictBool = pydantic.Field(False, description="raise the decay from 0 to decay over the run")
    warmup_gamma: Positive = 1.0
    warmup_power: Positive = 2 / 3
    start_step: Annotated[int, pydantic.Field(ge=0, strict=True)] = pydantic.Field(
        0, description="the weights are copied up to this step (and one more)"
    )
    every: Annotated[int, pydantic.Field(ge=1, strict=True)] = pydantic.Field(
        1, description="update after every k-th optimizer step"
    )
    buffers: Literal["copy", "average"] = pydantic.Field(
        "copy", description="copy the buffers, or average the floating-point ones (integer buffers are copied)"
    )

    @pydantic.model_validator(mode="after")
    def _warmup_keys(self) -> Ema:
        for key in ("warmup_gamma", "warmup_power"):
            if key in self.model_fields_set and not self.warmup:
                raise ValueError(f"{key} applies to warmup: true, which is not set")
        return self


class AroundStep(StrictModel):
    """What runs around each optimizer step; empty when the document says nothing of it.

    Example:
        >>> AroundStep().active
        False
    """

    clip_grad: ClipGrad | None = None
    ema: Ema | None = None
    skip_nonfinite: pydantic.StrictBool = False

    @property
    def active(self) -> bool:
        """Whether anything runs around the step."""
        return self.clip_grad is not None or self.ema is not None or self.skip_nonfinite


def read_around_step(data: Mapping[str, Any], problems: Problems) -> AroundStep:
    """The :class:`AroundStep` of a document's plain data, noting every problem in ``problems``.

    Each key is checked on its own, so that every bad key is reported; a bad key counts as not given.
    """
    given: dict[str, Any] = {}
    models = {"clip_grad": ClipGrad, "ema": Ema}
    for key, model in models.items():
        if data.get(key) is not None:
            with problems.collect():
                given[key] = parse_model(model, data[key], key)
    if data.get("skip_nonfinite") is not None:
        with problems.collect():
            given["skip_nonfinite"] = parse_model(AroundStep, {"skip_nonfinite": data["skip_nonfinite"]}).skip_nonfinite
    around = AroundStep.model_validate(given)
    clip = around.clip_grad
    if around.skip_nonfinite and clip is not None and clip.error_if_nonfinite:
        problems.add(
            "clip_grad.error_if_nonfinite",
            "raises on the non-finite gradients that skip_nonfinite: true skips; keep one",
        )
    return around
