"""``SchedulerEntry``: one registered scheduler, as data.

An entry names a scheduler class (or a lazy ``"module:attr"``), how to build it
when the class alone will not do (``factory``), which of its arguments are
lengths that accept ``{epochs: x}`` / ``{fraction: x}``, which hold nested
scheduler sections, and whether ``step()`` needs a metric.

Example:
    >>> import torch
    >>> entry = SchedulerEntry("StepLR", torch.optim.lr_scheduler.StepLR, provider="torch")
    >>> sorted(entry.parameters()), entry.lengths()
    (['gamma', 'step_size'], ('step_size',))
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from optforge.ranges import Range

__all__ = ["EXCLUDED_ARGUMENTS", "LENGTH_ARGUMENTS", "Argument", "SchedulerEntry"]

# Arguments that count steps (or epochs: whatever the scheduler steps on), by name.
LENGTH_ARGUMENTS: frozenset[str] = frozenset(
    {
        "T_max",
        "T_0",
        "step_size",
        "milestones",
        "total_iters",
        "step_size_up",
        "step_size_down",
        "total_steps",
        "patience",
        "cooldown",
        "t_initial",
        "warmup_t",
        "decay_t",
        "noise_range_t",
        "patience_t",
        "cooldown_t",
        "first_cycle_steps",
        "warmup_steps",
        "max_decay_steps",
        "num_epochs",
        "decay_epochs",
        "decay_milestones",
        "warmup_epochs",
        "cooldown_epochs",
        "patience_epochs",
    }
)

# Signature arguments a config does not set, and why.
EXCLUDED_ARGUMENTS: Mapping[str, str] = {
    "optimizer": "the optimizer is passed to build_scheduler, not set in the config",
    "last_epoch": "the step count comes from a saved state: use checkpoint: or load_state_dict()",
    "verbose": "deprecated by torch; read the lr with get_last_lr()",
    "initialize": "the wrapper initializes the param groups itself",
    "sched": "the scheduler is chosen by the registry name",
}


@dataclass(frozen=True)
class Argument:
    """One argument a scheduler takes: its annotation (evaluated) and whether it is required."""

    name: str
    hint: Any
    default: Any
    required: bool


def _namespace(function: Callable[..., Any]) -> dict[str, Any]:
    module = sys.modules.get(getattr(function, "__module__", ""), None)
    names = {**vars(typing), **vars(collections.abc)}
    names.update(vars(module) if module is not None else {})
    return names


def _evaluate(annotation: Any, namespace: dict[str, Any]) -> Any:
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, namespace)
        except Exception:
            return Any
    return annotation


@dataclass(frozen=True)
class SchedulerEntry:
    """One registered learning-rate scheduler.

    Attributes:
        name: The canonical name, as listed (``"CosineAnnealingLR"``, ``"timm_CosineLRScheduler"``).
        cls: The scheduler class (or a function ``f(optimizer, **arguments)`` returning
            a scheduler), or a lazy ``"module:attr"`` string.
        provider: Who supplies it (``"torch"``, ``"timm"``, ``"optforge"``, ``"user"``).
        description: One line for listings.
        aliases: Other names that reach this entry.
        defaults: Arguments bound by this entry; a config may override them.
        metric: ``step()`` takes a metric (``ReduceLROnPlateau``).
        nested: Arguments that hold a list of scheduler sections (``SequentialLR.schedulers``).
        length_args: Arguments that accept ``{epochs: x}`` / ``{fraction: x}``; by default
            those of :data:`LENGTH_ARGUMENTS` that the scheduler takes.
        within_run: Arguments naming a step of the run (where a decay, a phase or a
            cycle ends, a milestone), which must not lie beyond a known ``total_steps``;
            by default those of :data:`~optforge.lr_schedulers.run_length.WITHIN_RUN`
            that the scheduler takes (see :mod:`~optforge.lr_schedulers.run_length`).
        ranges: Valid ranges of arguments, over the shared ones of
            :data:`~optforge.ranges.SCHEDULER_RANGES`.
        factory: Builds the scheduler as ``factory(optimizer, **arguments)``; its
            signature lists the arguments. Default: ``cls``.
        hidden: Arguments of the signature a config may not set.
        wrap: Applied to the built scheduler (timm's schedulers become torch schedulers).
        signature: The callable whose signature lists the arguments, when neither
            ``factory`` nor ``cls`` has the right one.
    """

    name: str
    cls: type | str
    provider: str = "user"
    description: str = ""
    aliases: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    metric: bool = False
    nested: tuple[str, ...] = ()
    length_args: tuple[str, ...] | None = None
    within_run: tuple[str, ...] | None = None
    ranges: Mapping[str, Range] = field(default_factory=dict)
    factory: Callable[..., Any] | None = None
    hidden: tuple[str, ...] = ()
    wrap: Callable[[Any], Any] | None = None
    signature: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "ranges", MappingProxyType(dict(self.ranges)))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "nested", tuple(self.nested))

    def resolve_class(self) -> type:
        """The scheduler class, importing it if it was registered lazily."""
        if isinstance(self.cls, str):
            module_name, _, attr = self.cls.partition(":")
            return getattr(importlib.import_module(module_name), attr)
        return self.cls

    def _signature_source(self) -> Callable[..., Any]:
        if self.signature is not None:
            return self.signature
        if self.factory is not None:
            return self.factory
        target = self.resolve_class()
        return target.__init__ if inspect.isclass(target) else target  # a class, or a function building one

    def parameters(self) -> dict[str, Argument]:
        """The arguments a config may set (nested ones included), by name, in signature order."""
        function = self._signature_source()
        namespace = _namespace(function)
        out: dict[str, Argument] = {}
        for pname, param in inspect.signature(function).parameters.items():
            if pname == "self" or pname in EXCLUDED_ARGUMENTS or pname in self.hidden:
                continue
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            required = param.default is inspect.Parameter.empty and pname not in self.defaults
            out[pname] = Argument(pname, _evaluate(param.annotation, namespace), param.default, required)
        return out

    def lengths(self) -> tuple[str, ...]:
        """The arguments that accept ``{epochs: x}`` and ``{fraction: x}``."""
        if self.length_args is not None:
            return self.length_args
        return tuple(name for name in self.parameters() if name in LENGTH_ARGUMENTS)

    def excluded_reason(self, name: str) -> str | None:
        """Why a config may not set ``name`` when the signature has it, or ``None``."""
        function = self._signature_source()
        if name not in inspect.signature(function).parameters:
            return None
        if name in EXCLUDED_ARGUMENTS:
            return f"not set in a config: {EXCLUDED_ARGUMENTS[name]}"
        if name in self.hidden:
            return f"not set in a config: {self.name} sets it itself"
        return None

    def create(self, optimizer: Any, **arguments: Any) -> Any:
        """Instantiate the scheduler (no validation: see ``build_named_scheduler``)."""
        if self.factory is not None:
            scheduler = self.factory(optimizer, **arguments)
        else:
            scheduler = self.resolve_class()(optimizer, **arguments)
        return self.wrap(scheduler) if self.wrap is not None else scheduler
