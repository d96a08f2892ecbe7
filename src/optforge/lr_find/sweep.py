"""The LR range test: a short run with a rising learning rate, on the user's model and data.

:func:`lr_find` builds the optimizer of a config with :func:`optforge.build`, raises
every group's lr together from ``start`` toward ``end``, one step per batch, records
the loss, and stops when it diverges. The model is left exactly as it was: its
parameters, gradients, buffers, ``requires_grad`` flags and train/eval modes, and the
random number generators, are put back afterwards, also when the loss raises.

Example:
    >>> import torch, optforge
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Linear(4, 1)
    >>> x = torch.randn(256, 4); y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    >>> batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    >>> before = model.weight.clone()
    >>> result = optforge.lr_find(model, {"name": "SGD", "lr": 0.1}, batches,
    ...                           lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), steps=60)
    >>> torch.equal(model.weight, before), result.stopped, 1e-3 < result.suggestion < 1.0
    (True, 'diverged', True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from optforge.builder import build
from optforge.config import Problems
from optforge.errors import ConfigError, truncate
from optforge.lr_find.config_lr import group_peaks, optimizer_of
from optforge.lr_find.result import LRFindResult
from optforge.registry import has_train_eval_modes

__all__ = ["MODES", "ModelSnapshot", "lr_find", "sweep_lrs"]

MODES = ("exponential", "linear")


def sweep_lrs(start: float, end: float, steps: int, mode: str = "exponential") -> list[float]:
    """The lr of each step ``i`` (from 0) of a sweep, as fastai spaces them; ``end`` itself is never reached.

    ``start * (end / start) ** (i / steps)``, or ``start + (end - start) * i / steps`` for ``"linear"``.

    Example:
        >>> [f"{lr:g}" for lr in sweep_lrs(1e-3, 1.0, 3)], sweep_lrs(0.0, 1.0, 4, "linear")
        (['0.001', '0.01', '0.1'], [0.0, 0.25, 0.5, 0.75])
    """
    if mode == "linear":
        return [start + (end - start) * i / steps for i in range(steps)]
    return [start * (end / start) ** (i / steps) for i in range(steps)]


@dataclass
class ModelSnapshot:
    """Everything of a model a training run changes, and the random number generators, to put back.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> snapshot = ModelSnapshot.take(model)
        >>> with torch.no_grad():
        ...     _ = model.weight.add_(1.0)
        >>> before = snapshot.tensors[0].clone(); snapshot.restore(); torch.equal(model.weight, before)
        True
    """

    model: torch.nn.Module
    tensors: list[torch.Tensor]
    grads: list[torch.Tensor | None]
    requires_grad: list[bool]
    modes: list[bool]
    rng: dict[str, Any]

    @classmethod
    def take(cls, model: torch.nn.Module) -> ModelSnapshot:
        params, buffers = list(model.parameters()), list(model.buffers())
        return cls(
            model,
            [t.detach().clone() for t in [*params, *buffers]],
            [None if p.grad is None else p.grad.detach().clone() for p in params],
            [p.requires_grad for p in params],
            [module.training for module in model.modules()],
            _rng_states(),
        )

    def restore(self) -> None:
        params, buffers = list(self.model.parameters()), list(self.model.buffers())
        with torch.no_grad():
            for tensor, saved in zip([*params, *buffers], self.tensors):
                tensor.copy_(saved)
        for param, grad, flag in zip(params, self.grads, self.requires_grad):
            param.grad = grad
            param.requires_grad_(flag)
        for module, mode in zip(self.model.modules(), self.modes):
            module.training = mode
        _set_rng_states(self.rng)


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def _check_arguments(
    model: Any,
    batches: Any,
    loss_fn: Any,
    start: Any,
    end: Any,
    steps: Any,
    mode: Any,
    smoothing: Any,
    stop_factor: Any,
    accumulate: Any,
    scaler: Any,
) -> None:
    """One :class:`ConfigError` naming every bad argument, its value and what it may be."""
    problems = Problems()

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    def integer(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not isinstance(model, torch.nn.Module):
        problems.add("model", f"expected a torch.nn.Module, got {type(model).__name__} {truncate(model)}")
    if not isinstance(batches, Iterable) or isinstance(batches, str | bytes):
        problems.add("batches", f"expected an iterable of batches, got {type(batches).__name__} {truncate(batches)}")
    if not callable(loss_fn):
        problems.add(
            "loss_fn", f"expected a function loss_fn(model, batch) returning the loss, got {truncate(loss_fn)}"
        )
    if mode not in MODES:
        problems.add("mode", f"unknown value {truncate(mode)}. Valid choices: {', '.join(MODES)}")
    low = 0.0 if mode == "linear" else None
    if not number(start) or start < 0 or (low is None and start == 0):
        problems.add(
            "start",
            f"must be a finite number > 0 (>= 0 for mode 'linear'), got {truncate(start)}",
        )
    if not number(end) or end <= 0 or (number(start) and end <= start):
        problems.add("end", f"must be a finite number > start ({truncate(start)}), got {truncate(end)}")
    if not integer(steps) or steps < 2:
        problems.add("steps", f"must be an integer >= 2, got {truncate(steps)}")
    if not number(smoothing) or not 0 <= smoothing < 1:
        problems.add("smoothing", f"must be a number in [0, 1), got {truncate(smoothing)}")
    if not (number(stop_factor) or stop_factor == math.inf) or stop_factor <= 1:
        problems.add("stop_factor", f"must be a number > 1 (math.inf never stops), got {truncate(stop_factor)}")
    if not integer(accumulate) or accumulate < 1:
        problems.add("accumulate", f"must be an integer >= 1, got {truncate(accumulate)}")
    if scaler is not None and not all(callable(getattr(scaler, name, None)) for name in ("scale", "step", "update")):
        problems.add("scaler", f"expected a torch.amp.GradScaler or None, got {truncate(scaler)}")
    problems.raise_if_any()


class _Cycle:
    """The batches of an iterable, over and over; a one-pass iterator is replayed from the batches it gave."""

    def __init__(self, batches: Iterable[Any]):
        self.batches = batches
        self.current: Iterator[Any] = iter(batches)
        self.recording = self.current is batches  # an iterator: keep its batches to go round again
        self.seen: list[Any] = []

    def __next__(self) -> Any:
        try:
            batch = next(self.current)
        except StopIteration:
            self.recording = False
            self.current = iter(self.seen) if self.current is self.batches or self.seen else iter(self.batches)
            batch = next(self.current, _NONE)
            if batch is _NONE:
                raise ConfigError("gave no batch", path="batches") from None
        if self.recording:
            self.seen.append(batch)
        return batch


_NONE = object()


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """``value`` averaged over the ranks of the default process group, so that every rank sees one curve."""
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1:
        value = value.clone()
        distributed.all_reduce(value)  # a sum: every backend has it
        value /= distributed.get_world_size()
    return value


def lr_find(
    model: torch.nn.Module,
    config: Any,
    batches: Iterable[Any],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    mode: str = "exponential",
    smoothing: float = 0.98,
    stop_factor: float = 4.0,
    accumulate: int = 1,
    total_steps: int | None = None,
    scaler: Any = None,
    on_step: Callable[[int, float, float, float], None] | None = None,
) -> LRFindResult:
    """Run an LR range test of ``config`` on ``model``, then put the model back as it was.

    Step ``i`` sets the base lr to ``sweep_lrs(start, end, steps, mode)[i]`` and each param
    group to the base times its share of the config's peak lrs (see
    :mod:`optforge.lr_find.config_lr`), runs ``accumulate`` micro-batches and steps the
    optimizer. The loss is smoothed as fastai does (``v = β v + (1 - β) loss``, reported as
    ``v / (1 - β ** n)`` after ``n`` steps, ``β = smoothing``); the sweep stops after the
    step whose smoothed loss is not finite or exceeds ``stop_factor`` times the lowest so far.

    Args:
        model: The model, in any mode (it trains in train mode and is put back in its own);
            a DDP-wrapped model on every rank (the losses are averaged over the ranks, so
            every rank gets the same result).
        config: Any config :func:`optforge.build` takes; its schedule gives the groups' ratios.
        batches: Any iterable of batches, cycled when it has fewer than ``steps * accumulate``.
        loss_fn: ``loss_fn(model, batch)`` returns the loss, a scalar tensor.
        start: The first lr (> 0; >= 0 for ``"linear"``).
        end: The lr the sweep heads for; fastai's spacing stops one step short of it.
        steps: Optimizer steps, at most.
        mode: ``"exponential"`` or ``"linear"`` spacing of the lrs.
        smoothing: β of the loss's running average, in [0, 1).
        stop_factor: Stop when the smoothed loss exceeds this times its lowest (``math.inf``: never).
        accumulate: Micro-batches per optimizer step, their gradients summed (each loss divided by it).
        total_steps: The run's length, for schedules written in fractions of it.
        scaler: A ``torch.amp.GradScaler`` for mixed precision: the loss is scaled for
            backward and the step goes through it; its state is put back afterwards.
        on_step: Called after each step with ``(step, lr, loss, smoothed loss)``.

    Returns:
        The sweep's lrs and losses, with a suggested lr (:class:`~optforge.lr_find.result.LRFindResult`).

    Raises:
        ConfigError: for bad arguments (every one named) or a config that cannot be built,
            before anything runs; at ``loss_fn`` when it returns no scalar tensor.
    """
    _check_arguments(model, batches, loss_fn, start, end, steps, mode, smoothing, stop_factor, accumulate, scaler)
    lrs = sweep_lrs(start, end, steps, mode)
    snapshot = ModelSnapshot.take(model)  # before building: a rule may freeze parameters
    scaler_state = scaler.state_dict() if scaler is not None else None
    try:
        peaks = group_peaks(model, config, total_steps=total_steps)
        base = max(peaks)
        if not base > 0:
            raise ConfigError(f"every param group's peak lr is {base:g}: there is no lr to scale", path="config")
        shares = [peak / base for peak in peaks]
        optimizer, _ = build(optimizer_of(model), config, total_steps=total_steps)
        if has_train_eval_modes(optimizer):
            optimizer.train()  # Schedule-Free: the loss is taken at the training point
        model.train()
        recorded, raw, smoothed, stopped = _run(
            model, optimizer, shares, lrs, _Cycle(batches), loss_fn, smoothing, stop_factor, accumulate, scaler, on_step
        )
    finally:
        snapshot.restore()
        if scaler is not None:
            scaler.load_state_dict(scaler_state)
    return LRFindResult(
        lrs=recorded,
        losses=raw,
        smoothed=smoothed,
        stopped=stopped,
        start=float(start),
        end=float(end),
        steps=steps,
        mode=mode,
        config=config,
        base_lr=base,
        shares=shares,
        model=optimizer_of(model),
        total_steps=total_steps,
    )


def _run(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shares: list[float],
    lrs: list[float],
    source: _Cycle,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    smoothing: float,
    stop_factor: float,
    accumulate: int,
    scaler: Any,
    on_step: Callable[[int, float, float, float], None] | None,
) -> tuple[list[float], list[float], list[float], str]:
    """The sweep's loop: the lrs used, the raw and smoothed losses, and why it stopped."""
    recorded: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, best = 0.0, math.inf
    for step, lr in enumerate(lrs):
        for group, share in zip(optimizer.param_groups, shares):
            _set_lr(group, lr * share)
        optimizer.zero_grad(set_to_none=True)
        total: torch.Tensor | None = None
        for _ in range(accumulate):
            loss = loss_fn(model, next(source))
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ConfigError(
                    f"must return the loss as a scalar tensor, got {type(loss).__name__} {truncate(loss)}",
                    path="loss_fn",
                )
            part = loss.reshape(()) / accumulate
            (scaler.scale(part) if scaler is not None else part).backward()
            total = part.detach().float() if total is None else total + part.detach().float()
        assert total is not None
        value = float(_mean_over_ranks(total).item())
        if math.isfinite(value):
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        average = smoothing * average + (1 - smoothing) * value
        current = average / (1 - smoothing ** (step + 1))
        recorded.append(lr)
        raw.append(value)
        smoothed.append(current)
        if on_step is not None:
            on_step(step, lr, value, current)
        if not math.isfinite(current):
            return recorded, raw, smoothed, "non-finite"
        best = min(best, current)
        if current > stop_factor * best:
            return recorded, raw, smoothed, "diverged"
    return recorded, raw, smoothed, "steps"
