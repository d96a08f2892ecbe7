"""What runs around each optimizer step: gradient clipping, EMA weights, skipping non-finite steps.

:func:`attach` adds the document's ``clip_grad:``, ``ema:`` and ``skip_nonfinite:``
to a built optimizer through torch's own hooks (``register_step_pre_hook``,
``register_step_post_hook``, the state-dict hooks), so the optimizer stays the
``torch.optim.Optimizer`` it was; :func:`optforge.build` calls it.

- **Before the step**, over every parameter of the optimizer: the total norm of the
  gradients is taken (``norm_type``'s norm with ``max_norm``, else the 2-norm),
  then the gradients are clipped as ``torch.nn.utils.clip_grad_norm_``,
  ``clip_grad_value_`` or timm's ``adaptive_clip_grad`` do. Under a
  ``GradScaler``, ``scaler.step(optimizer)`` unscales the gradients before it
  calls ``optimizer.step()``, so clipping sees unscaled gradients.
- **Skipping a non-finite step** (``skip_nonfinite: true``): when a gradient holds
  inf or NaN, the pre-hook sets every gradient to ``None`` for the step, so the
  optimizer has nothing to update (torch's optimizers, and optforge's, leave a
  parameter without a gradient untouched: no update, no state, no step count),
  and the post-hook puts the gradients back, and the param groups' settings (where
  some optimizers keep counters, as Schedule-Free's ``k``) as they were. optforge's
  scheduler does not advance when its optimizer took no step since its last step,
  which also covers a step that a ``GradScaler`` skipped; torch's own schedulers
  advance regardless.
- **After the step**: the EMA copy of the weights is updated (see
  :class:`~optforge.config.Ema`) with ``torch._foreach_lerp_``, about one pass
  over the weights.

The EMA weights and the counts travel with ``optimizer.state_dict()`` (under
:data:`STATE_KEY`) and ``load_state_dict``, and ``copy.deepcopy(optimizer)`` keeps
all of it. A step given a closure (as Lightning gives one) evaluates it once, before
the clipping and the check for non-finite gradients, and the optimizer's step gets
its loss; an optimizer that evaluates its closure several times in one step (L-BFGS)
cannot be clipped or skipped, which the builder refuses.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Linear(2, 1)
    >>> opt, sched = optforge.build(model, {"optimizer": {"name": "SGD", "lr": 0.1},
    ...                                     "clip_grad": {"max_norm": 1.0}, "ema": {"decay": 0.9}})
    >>> model(torch.full((4, 2), 10.0)).sum().backward()
    >>> opt.step(); sched.step()
    >>> stats = optforge.step_stats(opt)
    >>> stats.steps, stats.skipped, stats.grad_norm > 1.0
    (1, 0, True)
    >>> torch.equal(optforge.ema_model(opt).weight, model.weight)  # the first update copies
    True
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optforge.config import AroundStep, ClipGrad, Ema
from optforge.errors import ConfigError
from optforge.optimizers.composite import CompositeOptimizer
from optforge.torch_internals import clear_pending_grad_scale, pending_grad_scale

__all__ = [
    "STATE_KEY",
    "StepStats",
    "attach",
    "clip_gradients",
    "describe",
    "ema_decay",
    "ema_model",
    "paused",
    "release_clipping",
    "restore_saved_state",
    "saved_state",
    "scheduler_advances",
    "seen_steps",
    "step_stats",
    "use_ema",
]

# The key of ``optimizer.state_dict()`` that holds the EMA weights and the step counts.
STATE_KEY = "optforge_around_step"
_ATTRIBUTE = "_optforge_around_step"


@dataclass(frozen=True)
class StepStats:
    """What happened at the optimizer's steps.

    Attributes:
        grad_norm: The total norm of the gradients before clipping at the last step
            (``norm_type``'s with ``clip_grad: {max_norm}``, else the 2-norm; inf or
            NaN at a skipped step), by part name with ``per_part: true``, or ``None``
            without ``clip_grad`` and ``skip_nonfinite``.
        steps: The steps taken.
        skipped: The steps skipped for non-finite gradients (also by a ``GradScaler``).
    """

    grad_norm: float | dict[str, float] | None
    steps: int
    skipped: int


def ema_decay(ema: Ema, step: int) -> float:
    """The decay of the EMA update after optimizer step ``step`` (from 1): timm's ``ModelEmaV3.get_decay``.

    Example:
        >>> ema = Ema(decay=0.999, warmup=True)
        >>> ema_decay(ema, 1), round(ema_decay(ema, 2), 4), ema_decay(ema, 10**9)
        (0.0, 0.37, 0.999)
    """
    since = max(0, step - ema.start_step - 1)
    if since <= 0:
        return 0.0
    if not ema.warmup:
        return ema.decay
    return max(min(1 - (1 + since / ema.warmup_gamma) ** -ema.warmup_power, ema.decay), 0.0)


def _lerp_(averaged: list[torch.Tensor], live: list[torch.Tensor], weight: float) -> None:
    """Move each floating-point tensor of ``averaged`` toward ``live`` by ``weight``; copy the others."""
    floats = [(a, b) for a, b in zip(averaged, live, strict=True) if a.is_floating_point()]
    others = [(a, b) for a, b in zip(averaged, live, strict=True) if not a.is_floating_point()]
    if floats:
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], weight)
    for a, b in others:
        a.copy_(b)


def _adaptive_clip_(params: list[torch.Tensor], clip_factor: float, eps: float) -> None:
    """timm's ``adaptive_clip_grad`` (2-norm per output unit), the same operations."""

    def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
        return x.norm(2.0) if x.ndim <= 1 else x.norm(2.0, dim=tuple(range(1, x.ndim)), keepdim=True)

    for p in params:
        grad = p.grad.detach()
        max_norm = unitwise_norm(p.detach()).clamp_(min=eps).mul_(clip_factor)
        grad_norm = unitwise_norm(grad)
        clipped = grad * (max_norm / grad_norm.clamp(min=1e-6))
        grad.copy_(torch.where(grad_norm < max_norm, grad, clipped))


class _Around:
    """The state of what runs around one optimizer's steps; its methods are the hooks."""

    def __init__(self, config: AroundStep, model_or_params: Any, optimizer: torch.optim.Optimizer) -> None:
        self.config = config
        self.steps = 0
        self.skipped = 0
        self.grad_norm: torch.Tensor | dict[str, torch.Tensor] | None = None
        self.seen = (0, 0)  # (steps, skipped) when the scheduler last stepped
        self._held: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._groups: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._loaded: dict[str, Any] | None = None
        self.paused = False  # steps taken meanwhile change nothing here (torch's zero-gradient step)
        if isinstance(model_or_params, nn.parallel.DistributedDataParallel):
            model_or_params = model_or_params.module  # the average is of the model DDP wraps
        self.model = model_or_params if isinstance(model_or_params, nn.Module) else None
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.ema: nn.Module | list[torch.Tensor] | None = None
        if config.ema is not None:
            if self.model is not None and not _fully_sharded(self.model):
                self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
                for p in self.ema.parameters():
                    p.grad = None
            else:
                self.ema = [p.detach().clone() for p in self.params]

    # The tensors of the average and of the live model, pairwise: parameters, then buffers.
    def _pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        if isinstance(self.ema, nn.Module):
            assert self.model is not None
            return (
                [p.detach() for p in self.ema.parameters()],
                [p.detach() for p in self.model.parameters()],
                list(self.ema.buffers()),
                list(self.model.buffers()),
            )
        assert self.ema is not None
        return self.ema, [p.detach() for p in self.params], [], []

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        """Update the average after optimizer step ``step``."""
        ema = self.config.ema
        assert ema is not None
        params, live, buffers, live_buffers = self._pairs()
        _lerp_(params, live, 1.0 - ema_decay(ema, step))
        if ema.buffers == "average":
            _lerp_(buffers, live_buffers, 1.0 - ema_decay(ema, step))
        elif buffers:
            torch._foreach_copy_(buffers, live_buffers)

    def _restore_held(self) -> None:
        for p, grad in self._held:
            p.grad = grad
        for group, saved in self._groups:  # counters kept in the groups (Schedule-Free's k) stay as they were
            for key in [key for key in group if key != "params" and key not in saved]:
                del group[key]
            group.update(saved)
        self._held, self._groups = [], []

    @torch.no_grad()
    def pre_step(
        self, optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        self._restore_held()  # a step that raised after a skip
        if self.paused:
            return None
        clip, skip = self.config.clip_grad, self.config.skip_nonfinite
        if clip is None and not skip:
            return None
        given = _closure_given(args, kwargs)
        if given is not None:
            # The closure makes the gradients: make them here, once, and hand the step their loss.
            with torch.enable_grad():
                loss = given()
            args, kwargs = _with_closure(args, kwargs, functools.partial(_loss_of, loss))
        self._before_step(optimizer, clip, skip)
        return None if given is None else (args, kwargs)

    def _before_step(self, optimizer: torch.optim.Optimizer, clip: ClipGrad | None, skip: bool) -> None:
        """Take the gradients' norms, then drop the gradients of a non-finite step or clip them."""
        per_part = clip is not None and clip.per_part
        by_part = _grads_by_part(optimizer, per_part)
        if not by_part:
            self.grad_norm = None
            return
        _unscale_for_fused_step(optimizer, [p for part in by_part.values() for p in part])
        totals = _total_norms(by_part, clip)
        self.grad_norm = totals if per_part else totals[""]
        params = [p for part in by_part.values() for p in part]
        finite = all(bool(torch.isfinite(total)) for total in totals.values())
        if skip and not finite and not all(bool(torch.isfinite(p.grad).all()) for p in params):
            self._held = [(p, p.grad) for p in params]
            self._groups = [
                (group, {k: v for k, v in group.items() if k != "params"}) for group in optimizer.param_groups
            ]
            for p in params:
                p.grad = None
            return
        if clip is not None:
            for name, part_params in by_part.items():
                _clip_(clip, part_params, totals[name])

    def post_step(self, optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._held:
            self._restore_held()
            self.skipped += 1
            return
        if self.paused:
            return
        self.steps += 1
        ema = self.config.ema
        if ema is not None and self.steps % ema.every == 0:
            self._follow_new_groups(optimizer)
            self.update_ema(self.steps)

    def _follow_new_groups(self, optimizer: torch.optim.Optimizer) -> None:
        """Parameters added since (``add_param_group``) join an average of tensors at their current values."""
        if not isinstance(self.ema, list):
            return  # an average of the model holds all of its parameters
        if sum(len(group["params"]) for group in optimizer.param_groups) == len(self.params):
            return  # no group added since (torch refuses a parameter in two groups)
        known = {id(p) for p in self.params}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in known:
                    known.add(id(p))
                    self.params.append(p)
                    self.ema.append(p.detach().clone())

    def _ema_state(self) -> dict[str, torch.Tensor]:
        if isinstance(self.ema, nn.Module):
            return dict(self.ema.state_dict())
        return {str(index): tensor for index, tensor in enumerate(self.ema or [])}

    def state_dict_post(self, optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        self._follow_new_groups(optimizer)
        state_dict[STATE_KEY] = {"steps": self.steps, "skipped": self.skipped, "ema": self._ema_state()}
        return state_dict

    def load_pre(self, optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        state_dict = dict(state_dict)
        saved = state_dict.pop(STATE_KEY, None)
        self._loaded = None
        if saved is None:
            return state_dict
        self._follow_new_groups(optimizer)
        own = self._ema_state()
        ema = saved.get("ema", {}) if isinstance(saved, dict) else None
        if not isinstance(ema, dict) or set(ema) != set(own):
            raise ValueError(
                f"the saved {STATE_KEY} does not match this optimizer's EMA "
                f"(saved {sorted(ema or {})[:5]}, expected {sorted(own)[:5]})"
            )
        for name, tensor in own.items():
            if not isinstance(ema[name], torch.Tensor) or ema[name].shape != tensor.shape:
                raise ValueError(f"the saved EMA tensor {name!r} does not match the shape {tuple(tensor.shape)}")
        self._loaded = saved
        return state_dict

    @torch.no_grad()
    def load_post(self, optimizer: torch.optim.Optimizer) -> None:
        saved, self._loaded = self._loaded, None
        if saved is None:
            return
        for name, tensor in self._ema_state().items():
            tensor.copy_(saved["ema"][name])
        self.steps, self.skipped = int(saved["steps"]), int(saved["skipped"])
        self.seen = (self.steps, self.skipped)


def _clip_(clip: ClipGrad, params: list[torch.Tensor], total: torch.Tensor) -> None:
    if clip.max_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, clip.max_norm, total)
    elif clip.max_value is not None:
        torch.nn.utils.clip_grad_value_(params, clip.max_value)
    else:
        assert clip.agc is not None
        _adaptive_clip_(params, clip.agc, clip.eps)


def _fully_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 (``fully_shard``) shards a module of ``model``: such a model cannot be copied, so its
    average is kept as tensors sharded as its parameters."""
    fsdp = sys.modules.get("torch.distributed.fsdp")  # never imported here: a model it shards imported it
    return fsdp is not None and any(isinstance(module, fsdp.FSDPModule) for module in model.modules())


def _unscale_for_fused_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    """Unscale the gradients a ``GradScaler`` left scaled for a fused step, so they are clipped and checked as
    the true gradients.

    For an optimizer that unscales inside its step (``fused=True``), ``GradScaler.step`` sets
    ``optimizer.grad_scale`` instead of unscaling; once the gradients are unscaled here it is
    ``None``, as the scaler sets it after ``scaler.unscale_(optimizer)``.
    """
    scale = pending_grad_scale(optimizer)
    if not isinstance(scale, torch.Tensor):
        return
    grads = [p.grad for p in params]
    torch._foreach_mul_(grads, scale.double().reciprocal().float().to(grads[0].device))
    clear_pending_grad_scale(optimizer)


def _closure_given(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any] | None:
    """The closure a call of ``optimizer.step`` was given (``args`` holds the optimizer first)."""
    if kwargs.get("closure") is not None:
        return kwargs["closure"]
    return args[1] if len(args) > 1 else None


def _with_closure(
    args: tuple[Any, ...], kwargs: dict[str, Any], closure: Callable[[], Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if kwargs.get("closure") is not None:
        return args, {**kwargs, "closure": closure}
    return (args[0], closure, *args[2:]), kwargs


def _loss_of(loss: Any) -> Any:
    return loss


def _deepcopy(optimizer: torch.optim.Optimizer, memo: dict[int, Any]) -> torch.optim.Optimizer:
    """``copy.deepcopy`` of an optimizer with its around-step state and hooks (torch's copy drops hooks)."""
    hook = optimizer.__dict__.pop("__deepcopy__")
    try:
        copied = copy.deepcopy(optimizer, memo)
    finally:
        optimizer.__deepcopy__ = hook  # type: ignore[method-assign]
    _install(copied, copy.deepcopy(optimizer.__dict__[_ATTRIBUTE], memo))
    return copied


def _install(optimizer: torch.optim.Optimizer, around: _Around) -> None:
    optimizer.__dict__[_ATTRIBUTE] = around
    optimizer.register_step_pre_hook(around.pre_step)
    optimizer.register_step_post_hook(around.post_step)
    optimizer.register_state_dict_post_hook(around.state_dict_post)
    optimizer.register_load_state_dict_pre_hook(around.load_pre)
    optimizer.register_load_state_dict_post_hook(around.load_post)
    # copy.deepcopy looks __deepcopy__ up on the instance: the copy gets its own state and hooks.
    optimizer.__deepcopy__ = types.MethodType(_deepcopy, optimizer)  # type: ignore[method-assign]


def attach(optimizer: torch.optim.Optimizer, config: AroundStep, model_or_params: Any = None) -> torch.optim.Optimizer:
    """Run ``config`` around every step of ``optimizer``; returns ``optimizer`` itself.

    Args:
        optimizer: Any torch optimizer (a composite one too).
        config: The parsed ``clip_grad:``, ``ema:`` and ``skip_nonfinite:`` (``Document.around_step``).
        model_or_params: The model the optimizer was built over: with an ``nn.Module``
            the EMA copy is that module (parameters and buffers), else it holds the
            optimizer's parameters.

    Raises:
        ConfigError: for ``clip_grad: {per_part: true}`` on an optimizer that has no parts.
        ValueError: when ``optimizer`` already has something attached.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = attach(torch.optim.SGD([w], lr=1.0), AroundStep(skip_nonfinite=True))
        >>> w.grad = torch.tensor([1.0, float("nan")]); opt.step()
        >>> w.tolist(), step_stats(opt).skipped, w.grad.isnan().any().item()
        ([1.0, 1.0], 1, True)
    """
    if _ATTRIBUTE in optimizer.__dict__:
        raise ValueError("this optimizer already runs clip_grad / ema / skip_nonfinite around its step")
    if config.clip_grad is not None and config.clip_grad.per_part and not isinstance(optimizer, CompositeOptimizer):
        raise ConfigError(
            "applies to a composite optimizer (optimizer: a list of parts); this optimizer has no parts",
            path="clip_grad.per_part",
        )
    if config.active:
        _install(optimizer, _Around(config, model_or_params, optimizer))
    return optimizer


def describe(config: AroundStep) -> str:
    """What runs around each step under ``config``, in words (``""`` for nothing).

    Example:
        >>> print(describe(AroundStep(clip_grad={"max_norm": 1.0}, ema={"decay": 0.999, "every": 2},
        ...                           skip_nonfinite=True)))
        before the step: skip it when a gradient is inf or NaN; clip the gradients to a total 2-norm of 1.0
        after the step: EMA of the weights, decay 0.999, after every 2nd step (buffers copied)
    """
    before, after = [], []
    if config.skip_nonfinite:
        before.append("skip it when a gradient is inf or NaN")
    clip = config.clip_grad
    if clip is not None:
        over = " of each part" if clip.per_part else ""
        if clip.max_norm is not None:
            norm = "inf-norm" if math.isinf(clip.norm_type) else f"{clip.norm_type:g}-norm"
            before.append(f"clip the gradients{over} to a total {norm} of {clip.max_norm}")
        elif clip.max_value is not None:
            before.append(f"clip each gradient element to [-{clip.max_value}, {clip.max_value}]")
        else:
            before.append(f"clip the gradients adaptively (agc {clip.agc}, eps {clip.eps})")
    ema = config.ema
    if ema is not None:
        warmup = f", warmup (gamma {ema.warmup_gamma:g}, power {ema.warmup_power:.3g})" if ema.warmup else ""
        every = "every step" if ema.every == 1 else f"every {_ordinal(ema.every)} step"
        start = f", copied up to step {ema.start_step + 1}" if ema.start_step else ""
        buffers = "averaged" if ema.buffers == "average" else "copied"
        after.append(f"EMA of the weights, decay {ema.decay}{warmup}, after {every}{start} (buffers {buffers})")
    lines = [
        f"before the step: {'; '.join(before)}" if before else "",
        f"after the step: {'; '.join(after)}" if after else "",
    ]
    return "\n".join(line for line in lines if line)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _around(optimizer: Any) -> _Around | None:
    return getattr(optimizer, "__dict__", {}).get(_ATTRIBUTE)


def step_stats(optimizer: torch.optim.Optimizer) -> StepStats:
    """The :class:`StepStats` of an optimizer built with ``clip_grad:``, ``ema:`` or ``skip_nonfinite:``.

    Reading ``grad_norm`` waits for the device (it is kept as a tensor until then).

    Raises:
        ValueError: for an optimizer with nothing around its step.
    """
    around = _require(optimizer, "step_stats")
    norm = around.grad_norm
    shown = {name: float(value) for name, value in norm.items()} if isinstance(norm, dict) else norm
    shown = float(shown) if isinstance(shown, torch.Tensor) else shown
    return StepStats(shown, around.steps, around.skipped)


def _require(optimizer: Any, what: str) -> _Around:
    around = _around(optimizer)
    if around is None:
        raise ValueError(
            f"{what}: this optimizer was not built with clip_grad, ema or skip_nonfinite beside optimizer: "
            "in its config (optforge.build)"
        )
    return around


def ema_model(optimizer: torch.optim.Optimizer) -> nn.Module | list[torch.Tensor]:
    """The EMA copy of the weights: an ``nn.Module`` when the optimizer was built over one, else tensors
    (also for a model FSDP2 shards, which cannot be copied: DTensors sharded as its parameters).

    Raises:
        ValueError: for an optimizer built without ``ema:``.
    """
    around = _require(optimizer, "ema_model")
    if around.ema is None:
        raise ValueError("ema_model: the config has no ema: section")
    return around.ema


@contextlib.contextmanager
def use_ema(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Put the EMA weights (and buffers) into the live model for the block, and the trained ones back after it.

    The trained weights are restored also when the block raises; they are held in a copy meanwhile.

    Example:
        >>> import torch, optforge
        >>> model = torch.nn.Linear(1, 1)
        >>> opt, _ = optforge.build(model, {"optimizer": {"name": "SGD", "lr": 1.0}, "ema": {"decay": 0.5}})
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(1.0)
        >>> opt.step()  # the first update copies the weights: 1.0
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(3.0)
        >>> opt.step()  # 0.5 * 1.0 + 0.5 * 3.0
        >>> with optforge.use_ema(opt):
        ...     model.weight.item()
        2.0
        >>> model.weight.item()
        3.0
    """
    around = _require(optimizer, "use_ema")
    if around.ema is None:
        raise ValueError("use_ema: the config has no ema: section")
    averaged, live, buffers, live_buffers = around._pairs()
    targets, sources = [*live, *live_buffers], [*averaged, *buffers]
    with torch.no_grad():
        kept = [t.clone() for t in targets]
        for target, source in zip(targets, sources, strict=True):
            target.copy_(source)
    try:
        yield
    finally:
        with torch.no_grad():
            for target, saved in zip(targets, kept, strict=True):
                target.copy_(saved)


def scheduler_advances(scheduler: Any) -> bool:
    """Whether optforge's scheduler advances now: not when ``skip_nonfinite`` is set and its optimizer
    took no step since the scheduler's last step (skipped as non-finite, or by a ``GradScaler``, which
    is then counted as skipped)."""
    around = _around(getattr(scheduler, "optimizer", None))
    if around is None or not around.config.skip_nonfinite or getattr(scheduler, "last_epoch", 0) < 0:
        return True
    steps, skipped = around.seen
    if around.steps == steps:
        if around.skipped == skipped:  # no optimizer.step() at all: a GradScaler skipped it
            around.skipped += 1
        around.seen = (around.steps, around.skipped)
        return False
    around.seen = (around.steps, around.skipped)
    return True


def saved_state(optimizer: Any) -> dict[str, Any] | None:
    """The around-step state to save (``steps``, ``skipped``, ``ema``: the live EMA tensors by name), or ``None``."""
    around = _around(optimizer)
    if around is None:
        return None
    return {"steps": around.steps, "skipped": around.skipped, "ema": around._ema_state()}


@torch.no_grad()
def restore_saved_state(optimizer: Any, saved: dict[str, Any], seen: tuple[int, int] | None = None) -> None:
    """Put a :func:`saved_state` (its EMA tensors shaped as the live ones) into ``optimizer``.

    ``seen`` is what the scheduler last saw, ``(steps, skipped)`` unless given.
    """
    around = _require(optimizer, "restore_saved_state")
    own = around._ema_state()
    if set(saved["ema"]) != set(own):
        raise ValueError(f"the saved EMA does not match this optimizer's (saved {sorted(saved['ema'])[:5]})")
    for name, tensor in own.items():
        tensor.copy_(saved["ema"][name])
    around.steps, around.skipped = int(saved["steps"]), int(saved["skipped"])
    around.seen = (around.steps, around.skipped) if seen is None else seen


def seen_steps(optimizer: Any) -> tuple[int, int] | None:
    """The ``(steps, skipped)`` that optforge's scheduler last saw, or ``None`` without around-step state."""
    around = _around(optimizer)
    return None if around is None else around.seen


@contextlib.contextmanager
def paused(optimizer: Any) -> Iterator[None]:
    """Steps taken inside the block are not clipped, skipped, counted or averaged."""
    around = _around(optimizer)
    if around is None or around.paused:
        yield
        return
    around.paused = True
    try:
        yield
    finally:
        around.paused = False


def release_clipping(optimizer: Any) -> ClipGrad | None:
    """Stop clipping in ``optimizer``'s step hooks, for a trainer that clips at its own point.

    Returns:
        The ``clip_grad:`` it had, or ``None``.
    """
    around = _around(optimizer)
    if around is None or around.config.clip_grad is None:
        return None
    clip = around.config.clip_grad
    around.config = around.config.model_copy(update={"clip_grad": None})
    return clip


@torch.no_grad()
def clip_gradients(optimizer: Any, clip: ClipGrad, params: list[torch.Tensor] | None = None) -> None:
    """Clip the gradients of ``params`` (default: ``optimizer``'s) as ``clip`` says, each part on its own
    with ``per_part``; the norm before clipping goes to :func:`step_stats` when the optimizer has one."""
    parts = _grads_by_part(optimizer, clip.per_part, params)
    totals = _total_norms(parts, clip)
    for name, part in parts.items():
        _clip_(clip, part, totals[name])
    around = _around(optimizer)
    if around is not None:
        around.grad_norm = totals if clip.per_part else totals.get("")


def _with_grads(groups: list[dict[str, Any]]) -> list[torch.Tensor]:
    return [p for group in groups for p in group["params"] if p.grad is not None]


def _grads_by_part(
    optimizer: Any, per_part: bool, params: list[torch.Tensor] | None = None
) -> dict[str, list[torch.Tensor]]:
    """The parameters with a gradient, by part of a composite with ``per_part`` (else all under ``""``:
    ``params``, or the optimizer's); parts without any are left out."""
    if per_part:
        parts = {name: _with_grads(part.param_groups) for name, part in optimizer.parts.items()}
    else:
        parts = {"": [p for p in params if p.grad is not None] if params else _with_grads(optimizer.param_groups)}
    return {name: part for name, part in parts.items() if part}


def _total_norms(parts: dict[str, list[torch.Tensor]], clip: ClipGrad | None) -> dict[str, torch.Tensor]:
    """Each part's total gradient norm: of ``clip``'s ``norm_type`` when it clips by norm, else the 2-norm."""
    norm_type = clip.norm_type if clip is not None and clip.mode == "max_norm" else 2.0
    error = bool(clip is not None and clip.error_if_nonfinite)
    return {
        name: torch.nn.utils.get_total_norm([p.grad for p in part], norm_type, error_if_nonfinite=error)
        for name, part in parts.items()
    }
