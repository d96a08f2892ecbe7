"""``WindowedChain``: chainable lr factors, each acting only inside its own window of steps or epochs.

Each entry of ``schedulers`` is one factor with a ``kind``, a window ``[begin, end)``
and ``by_epoch``. A factor counts its own steps (optimizer steps, or epochs when
``by_epoch``: one every ``steps_per_epoch`` steps); while its count lies in its window
it updates every group's current lr in place from the lr the factors before it left,
so factors whose windows overlap multiply (and a cosine's floor applies to what the
others made of the lr). Factors whose count is ``t`` inside the window (``t = count -
begin``, from 0) and ``n = end - begin - 1`` (the window's last ``t``):

* ``linear`` (``start_factor``, ``end_factor``): ``start`` at ``t = 0``, moving linearly
  to ``end_factor`` at ``t = n``;
* ``constant`` (``factor``): times ``factor`` from ``t = 0``, restored at ``t = n``;
* ``cosine`` (``T_max``, default ``end - begin``; ``eta_min`` or ``eta_min_ratio``
  of the group's initial lr): half a cosine towards the floor over ``T_max``;
* ``poly`` (``eta_min``, ``power``): ``(lr - eta_min) (1 - 1 / (n - t + 1)) ** power + eta_min``;
* ``exponential`` (``gamma``), ``step`` (``step_size``, ``gamma``),
  ``multistep`` (``milestones``, counted from ``begin``, ``gamma``);
* ``cosine_restart`` (``periods``, ``restart_weights``, ``eta_min`` or ``eta_min_ratio``):
  at the start of each period the lr is ``base * weight``, then half a cosine towards
  the floor over the period; past the last period the lr is left as it is;
* ``onecycle`` (``eta_max``, ``total_steps`` (default ``end - begin``), ``pct_start``,
  ``anneal_strategy`` ``cos`` or ``linear``, ``div_factor``, ``final_div_factor``,
  ``three_phase``): not a factor but the lr itself, from ``eta_max / div_factor`` up to
  ``eta_max`` and down to ``eta_max / div_factor / final_div_factor`` (phases ending at
  ``pct_start * total_steps - 1`` and ``total_steps - 1``); the factors after it take
  ``eta_max / div_factor`` as their group's initial lr.

After construction (count 0) the lr is that of step 0; after ``k`` calls of
``step()`` it is that of step ``k`` (factors counted in steps have stepped ``k``
times, those counted in epochs ``k // steps_per_epoch`` times, after the others).

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = WindowedChain(opt, [{"kind": "linear", "start_factor": 0.25, "begin": 0, "end": 4},
    ...                             {"kind": "step", "step_size": 1, "gamma": 0.5, "begin": 4, "by_epoch": True}],
    ...                       steps_per_epoch=1)
    >>> lrs = [sched.get_last_lr()[0]]
    >>> for _ in range(5):
    ...     opt.step()
    ...     sched.step()
    ...     lrs.append(sched.get_last_lr()[0])
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 1.0, 0.5]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from optforge.lr_schedulers._closed_form import ClosedFormScheduler

__all__ = ["FACTOR_KINDS", "WindowedChain"]


@dataclass(frozen=True)
class _Factor:
    """One factor of the chain, with its arguments checked."""

    kind: str
    begin: int
    end: float
    by_epoch: bool
    args: Mapping[str, Any]

    @property
    def last(self) -> float:
        return self.end - self.begin - 1


# Each kind: its arguments with defaults, and the update of one group's lr at the factor's count t.
Update = Callable[[_Factor, float, float, int], float]


def _linear(f: _Factor, lr: float, base: float, t: int) -> float:
    start, end = f.args["start_factor"], f.args["end_factor"]
    if t == 0:
        return lr * start
    return lr * (1.0 + (end - start) / (f.last * start + (t - 1) * (end - start)))


def _constant(f: _Factor, lr: float, base: float, t: int) -> float:
    if t == 0:
        return lr * f.args["factor"]
    return lr * (1.0 / f.args["factor"]) if t == f.last else lr


def _cosine(f: _Factor, lr: float, base: float, t: int) -> float:
    period = f.args["T_max"] or (f.end - f.begin)
    ratio = f.args["eta_min_ratio"]
    floor = f.args["eta_min"] if ratio is None else base * ratio
    if t == 0:
        return lr
    if (t - 1 - period) % (2 * period) == 0:
        return lr + (base - floor) * (1 - math.cos(math.pi / period)) / 2
    return (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period)) * (lr - floor) + floor


def _poly(f: _Factor, lr: float, base: float, t: int) -> float:
    floor = f.args["eta_min"]
    return lr if t == 0 else (lr - floor) * (1 - 1 / (f.last - t + 1)) ** f.args["power"] + floor


def _exponential(f: _Factor, lr: float, base: float, t: int) -> float:
    return lr if t == 0 else lr * f.args["gamma"]


def _step(f: _Factor, lr: float, base: float, t: int) -> float:
    return lr if t == 0 or t % f.args["step_size"] else lr * f.args["gamma"]


def _multistep(f: _Factor, lr: float, base: float, t: int) -> float:
    count = Counter(f.args["milestones"])[t]
    return lr * f.args["gamma"] ** count if count else lr


def _cosine_restart(f: _Factor, lr: float, base: float, t: int) -> float:
    start = 0
    for period, weight in zip(f.args["periods"], f.args["restart_weights"]):
        if t < start + period:
            ratio = f.args["eta_min_ratio"]
            floor = f.args["eta_min"] if ratio is None else base * ratio
            step = t - start
            if step == 0:
                return base * weight
            return (1 + math.cos(math.pi * step / period)) / (1 + math.cos(math.pi * (step - 1) / period)) * (
                lr - floor
            ) + floor
        start += period
    return lr


def _onecycle_total(f: _Factor) -> float:
    return f.args["total_steps"] if f.args["total_steps"] is not None else f.end - f.begin


def _onecycle(f: _Factor, lr: float, base: float, t: int) -> float:
    total, pct, peak = _onecycle_total(f), f.args["pct_start"], f.args["eta_max"]
    if t > total:
        raise ValueError(f"onecycle: stepped {t + 1} times, beyond its total_steps {total}")
    initial = peak / f.args["div_factor"]
    values = {"initial": initial, "max": peak, "min": initial / f.args["final_div_factor"]}
    if f.args["three_phase"]:
        phases = [(pct * total - 1, "initial", "max"), (2 * pct * total - 2, "max", "initial")]
        phases.append((total - 1, "initial", "min"))
    else:
        phases = [(pct * total - 1, "initial", "max"), (total - 1, "max", "min")]
    start_step = 0.0
    for index, (end_step, start, end) in enumerate(phases):
        if t <= end_step or index == len(phases) - 1:
            progress = (t - start_step) / (end_step - start_step)
            low, high = values[start], values[end]
            if f.args["anneal_strategy"] == "linear":
                return (high - low) * progress + low
            return high + (low - high) / 2.0 * (math.cos(math.pi * progress) + 1)
        start_step = end_step
    raise AssertionError("the last phase always matches")


def _check_onecycle(f: _Factor) -> None:
    if f.args["anneal_strategy"] not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy: expected cos or linear, got {f.args['anneal_strategy']!r}")
    if not 0 <= f.args["pct_start"] <= 1:
        raise ValueError(f"pct_start: expected a number in [0, 1], got {f.args['pct_start']!r}")
    total = _onecycle_total(f)
    if total == math.inf or (isinstance(total, int) and total <= 0) or not isinstance(total, int | float):
        raise ValueError(f"onecycle needs total_steps > 0 or an end, got total_steps={f.args['total_steps']!r}")
    if f.end != math.inf and f.end - f.begin - 1 > total:
        raise ValueError(f"onecycle runs total_steps + 1 = {total + 1} steps at most; its window has {f.end - f.begin}")


def _check_cosine_restart(f: _Factor) -> None:
    if (f.args["eta_min"] is None) == (f.args["eta_min_ratio"] is None):
        raise ValueError("cosine_restart needs exactly one of eta_min and eta_min_ratio")
    if len(f.args["periods"]) != len(f.args["restart_weights"]):
        raise ValueError("cosine_restart: periods and restart_weights need the same length")
    if any(not isinstance(period, int) or period <= 0 for period in f.args["periods"]):
        raise ValueError(f"cosine_restart: periods must be whole numbers > 0, got {f.args['periods']!r}")


# The kinds of factor: their arguments (with defaults; ``...`` marks a required one) and their update.
FACTOR_KINDS: Mapping[str, tuple[Mapping[str, Any], Update]] = {
    "linear": ({"start_factor": 1.0 / 3, "end_factor": 1.0}, _linear),
    "constant": ({"factor": 1.0 / 3}, _constant),
    "cosine": ({"T_max": None, "eta_min": 0.0, "eta_min_ratio": None}, _cosine),
    "poly": ({"eta_min": 0.0, "power": 1.0}, _poly),
    "exponential": ({"gamma": ...}, _exponential),
    "step": ({"step_size": ..., "gamma": 0.1}, _step),
    "multistep": ({"milestones": ..., "gamma": 0.1}, _multistep),
    "cosine_restart": (
        {"periods": ..., "restart_weights": (1,), "eta_min": None, "eta_min_ratio": None},
        _cosine_restart,
    ),
    "onecycle": (
        {
            "eta_max": 0.0,
            "total_steps": None,
            "pct_start": 0.3,
            "anneal_strategy": "cos",
            "div_factor": 25.0,
            "final_div_factor": 1e4,
            "three_phase": False,
        },
        _onecycle,
    ),
}
# Checks of a kind's arguments beyond their names (each raises ValueError).
_CHECKS: Mapping[str, Callable[[_Factor], None]] = {
    "onecycle": _check_onecycle,
    "cosine_restart": _check_cosine_restart,
}
# Kinds that set the group's initial lr for the factors after them: the new initial lr.
_SETS_INITIAL: Mapping[str, Callable[[_Factor], float]] = {
    "onecycle": lambda f: f.args["eta_max"] / f.args["div_factor"],
}
# Kinds whose update reads the window's last step, so that their window needs an end.
_NEEDS_END = ("linear", "constant", "poly")


def _factor(index: int, raw: Mapping[str, Any], steps_per_epoch: int | None) -> _Factor:
    where = f"schedulers[{index}]"
    raw = dict(raw)
    kind = raw.pop("kind", None)
    if kind not in FACTOR_KINDS:
        raise ValueError(f"{where}.kind: expected one of {', '.join(FACTOR_KINDS)}, got {kind!r}")
    begin, end, by_epoch = raw.pop("begin", 0), raw.pop("end", None), raw.pop("by_epoch", False)
    defaults, _ = FACTOR_KINDS[kind]
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise ValueError(f"{where}: unknown arguments {unknown} for {kind}; expected {', '.join(defaults)}")
    args = {**defaults, **raw}
    missing = [name for name, value in args.items() if value is ...]
    if missing:
        raise ValueError(f"{where}: {kind} needs {', '.join(missing)}")
    if not isinstance(begin, int) or begin < 0 or (end is not None and (not isinstance(end, int) or end <= begin)):
        raise ValueError(f"{where}: needs integers 0 <= begin < end, got begin={begin!r}, end={end!r}")
    if end is None and kind in _NEEDS_END:
        raise ValueError(f"{where}: {kind} needs an end")
    if by_epoch and not steps_per_epoch:
        raise ValueError(f"{where}: by_epoch needs steps_per_epoch")
    factor = _Factor(kind, begin, math.inf if end is None else end, bool(by_epoch), args)
    if kind in _CHECKS:
        try:
            _CHECKS[kind](factor)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    return factor


class WindowedChain(ClosedFormScheduler):
    """Chainable lr factors, each in its own ``[begin, end)`` window of steps or epochs (see the module).

    Args:
        optimizer: The optimizer; each group's initial lr is the base of its factors.
        schedulers: The factors, in the order they update the lr: each a mapping with
            ``kind``, ``begin`` (default 0), ``end`` (default: none), ``by_epoch``
            (default false) and the kind's arguments.
        steps_per_epoch: Optimizer steps per epoch, for the factors counted in epochs.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedulers: Sequence[Mapping[str, Any]],
        steps_per_epoch: int | None = None,
    ) -> None:
        if not schedulers:
            raise ValueError("schedulers needs at least one factor")
        self.steps_per_epoch = steps_per_epoch
        self.factors = [_factor(index, raw, steps_per_epoch) for index, raw in enumerate(schedulers)]
        self._trajectory: list[list[float]] = []
        # Each factor's initial lr of every group: the group's, or what a factor before it set.
        self._bases: dict[int, list[float]] = {}
        bases = [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
        for factor in self.factors:
            self._bases[id(factor)] = bases
            if factor.kind in _SETS_INITIAL:
                bases = [_SETS_INITIAL[factor.kind](factor)] * len(bases)
        super().__init__(optimizer)

    def _advance(self, lrs: list[float], count: int, factors: Sequence[_Factor]) -> list[float]:
        for factor in factors:
            if factor.begin <= count < factor.end:
                update = FACTOR_KINDS[factor.kind][1]
                bases = self._bases[id(factor)]
                lrs = [update(factor, lr, base, count - factor.begin) for lr, base in zip(lrs, bases)]
        return lrs

    def lr_at(self, step: int) -> list[float]:
        """The lrs after ``step`` steps (computed once, from step 0, then kept)."""
        if not self._trajectory:
            self._trajectory.append(self._advance([float(base) for base in self.base_lrs], 0, self.factors))
        by_step = [factor for factor in self.factors if not factor.by_epoch]
        by_epoch = [factor for factor in self.factors if factor.by_epoch]
        while len(self._trajectory) <= step:
            done = len(self._trajectory)
            lrs = self._advance(list(self._trajectory[-1]), done, by_step)
            if by_epoch and done % self.steps_per_epoch == 0:  # type: ignore[operator]
                lrs = self._advance(lrs, done // self.steps_per_epoch, by_epoch)  # type: ignore[operator]
            self._trajectory.append(lrs)
        return list(self._trajectory[step])
