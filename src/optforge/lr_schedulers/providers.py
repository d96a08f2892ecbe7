"""Where the registry's entries come from: torch (scanned), optforge's own, and timm (lazily)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim import lr_scheduler

from optforge.lr_schedulers.chained import RangedChainedScheduler
from optforge.lr_schedulers.registry import register_scheduler
from optforge.lr_schedulers.timm_adapter import TimmScheduler, unscale_initial_lrs
from optforge.ranges import Range

__all__ = ["TIMM_FACTORY_NAMES", "register_optforge", "register_timm", "register_torch"]

# The names timm.scheduler.create_scheduler_v2 takes as ``sched`` (besides "none").
TIMM_FACTORY_NAMES: tuple[str, ...] = (
    "cosine",
    "tanh",
    "step",
    "constant",
    "multistep",
    "plateau",
    "poly",
    "wsd",
    "rsqrt",
)


def _first_line(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").strip().split("\n", 1)[0].strip()


def sequential_lr(
    optimizer: torch.optim.Optimizer, schedulers: list[Any], milestones: list[int]
) -> lr_scheduler.SequentialLR:
    """torch's ``SequentialLR`` over nested scheduler sections, built in order on the optimizer."""
    return lr_scheduler.SequentialLR(optimizer, schedulers, milestones)


def chained_scheduler(
    optimizer: torch.optim.Optimizer, schedulers: list[Any], step_ranges: list[tuple[int, int]] | None = None
) -> lr_scheduler.LRScheduler:
    """torch's ``ChainedScheduler``; with ``step_ranges``, each nested scheduler only steps in its range."""
    if step_ranges is not None:
        return RangedChainedScheduler(schedulers, step_ranges)
    return lr_scheduler.ChainedScheduler(schedulers, optimizer)


# Entries whose torch class needs more than ``cls(optimizer, **arguments)``.
_TORCH_SPECIAL: dict[str, dict[str, Any]] = {
    "ReduceLROnPlateau": {
        "cls": "optforge.lr_schedulers.plateau:ReduceLROnPlateau",
        "metric": True,
        "ranges": {"factor": Range(0, 1)},
    },
    "ConstantLR": {"ranges": {"factor": Range(0, 1, high_open=False)}},
    "SequentialLR": {"factory": sequential_lr, "nested": ("schedulers",)},
    "ChainedScheduler": {"factory": chained_scheduler, "nested": ("schedulers",)},
}


def register_torch() -> None:
    """Register every ``LRScheduler`` subclass that ``torch.optim.lr_scheduler`` exports."""
    for name in sorted(dir(lr_scheduler)):
        cls = getattr(lr_scheduler, name)
        if name.startswith("_") or not inspect.isclass(cls) or cls is lr_scheduler.LRScheduler:
            continue
        if not issubclass(cls, lr_scheduler.LRScheduler):
            continue
        fields: dict[str, Any] = {"cls": cls, **_TORCH_SPECIAL.get(name, {})}
        register_scheduler(name=name, provider="torch", description=_first_line(cls), **fields)


def register_optforge() -> None:
    """Register optforge's own schedulers (the training template's two and ``WindowedChain``)."""
    for path in (
        "optforge.lr_schedulers.polynomial_lr_decay:PolynomialLRDecay",
        "optforge.lr_schedulers.cosine_warmup_restarts:CosineAnnealingWarmupReduceRestarts",
        "optforge.lr_schedulers.windowed_chain:WindowedChain",
    ):
        cls = _import(path)
        register_scheduler(cls, provider="optforge", description=_first_line(cls))


def _import(path: str) -> Any:
    import importlib

    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _timm_factory(sched: str) -> Any:
    def build(optimizer: torch.optim.Optimizer, **arguments: Any) -> Any:
        from timm.scheduler import create_scheduler_v2

        unscale_initial_lrs(optimizer)
        scheduler, _ = create_scheduler_v2(optimizer, sched=sched, **arguments)
        return scheduler

    return build


def _timm_class_factory(cls: type) -> Any:
    def build(optimizer: torch.optim.Optimizer, **arguments: Any) -> Any:
        unscale_initial_lrs(optimizer)
        return cls(optimizer, **arguments)

    return build


def register_timm(names: Sequence[str] = TIMM_FACTORY_NAMES) -> None:
    """Register timm's scheduler classes as ``timm_<Class>`` and its factory names as ``timm.<name>``."""
    import timm.scheduler
    from timm.scheduler.scheduler import Scheduler

    for attr in sorted(dir(timm.scheduler)):
        cls = getattr(timm.scheduler, attr)
        if inspect.isclass(cls) and issubclass(cls, Scheduler) and cls is not Scheduler:
            register_scheduler(
                cls,
                name=f"timm_{attr}",
                provider="timm",
                description=_first_line(cls),
                metric=attr == "PlateauLRScheduler",
                factory=_timm_class_factory(cls),
                signature=cls.__init__,
                wrap=TimmScheduler,
            )
    for sched in names:
        register_scheduler(
            "timm.scheduler:create_scheduler_v2",
            name=f"timm.{sched}",
            provider="timm",
            description=f"timm's create_scheduler_v2(sched={sched!r})",
            metric=sched == "plateau",
            factory=_timm_factory(sched),
            signature=timm.scheduler.create_scheduler_v2,
            wrap=TimmScheduler,
        )
