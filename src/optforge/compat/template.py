"""The training template's optimizer and scheduler builders, on optforge.

Replace the template's ``from src.optimizer import ...`` with
``from optforge.compat.template import ...``; its YAML files
(``{name, class_name, lr, args, group, checkpoint}``) load unchanged and build
what the template builds: the registry's class over every trainable parameter,
or the template's lr-divided groups, then the saved optimizer state if
``checkpoint`` names one. No weight-decay presets, no group merging.

Example:
    >>> import torch
    >>> from optforge.compat.template import OPTIMIZER_REGISTRY, build_optimizer
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    >>> cfg = {"name": "sgd", "class_name": "Momentum", "lr": 0.01, "args": {"weight_decay": 4e-5},
    ...        "group": [{"name": "1.", "divide": 10}], "checkpoint": None}
    >>> optimizer = build_optimizer(cfg, model)
    >>> [(len(g["params"]), g["lr"], g["momentum"]) for g in optimizer.param_groups]
    [(2, 0.01, 0.9), (2, 0.001, 0.9)]
    >>> OPTIMIZER_REGISTRY.get("timm_Lamb").__name__
    'Lamb'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from optforge._validation import parse_model
from optforge.builder import build_optimizer as _build_optimizer
from optforge.config import TemplateGroup
from optforge.config_source import to_plain
from optforge.errors import ConfigError
from optforge.lr_schedulers import build_template_schedulers, is_metric_driven
from optforge.param_groups import template_groups
from optforge.registry import get_optimizer_class, list_optimizers, register_optimizer

__all__ = [
    "OPTIMIZER_REGISTRY",
    "TemplateStepping",
    "build_lr_scheduler",
    "build_optimizer",
    "get_param_group",
    "param_groups_weight_decay",
]


class OptimizerRegistry:
    """The template's ``OPTIMIZER_REGISTRY``: optforge's registry under the template's interface.

    ``get(name)`` returns the class (names are case-insensitive; an unknown name
    is a :class:`~optforge.errors.ConfigError` with suggestions), ``name in
    registry`` tests a name, and ``register()`` adds a class under its name.
    """

    def get(self, name: str) -> type[torch.optim.Optimizer]:
        """The optimizer class registered as ``name``."""
        return get_optimizer_class(name)

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            get_optimizer_class(name)
        except ConfigError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(list_optimizers())

    def register(self, obj: type[torch.optim.Optimizer] | None = None) -> Any:
        """Register a class under its own name, as a call or a decorator."""
        if obj is None:
            return lambda cls: self.register(cls)
        register_optimizer(obj)
        return obj


OPTIMIZER_REGISTRY = OptimizerRegistry()


def build_optimizer(cfg: Any, model_or_param_groups: nn.Module | Iterable[Any]) -> torch.optim.Optimizer:
    """Build the optimizer of a template optimizer file (a path, a mapping or a ``DictConfig``), config first.

    Raises:
        ConfigError: for a bad section, or a checkpoint that is missing or does not match.
    """
    return _build_optimizer(model_or_param_groups, cfg)


def _groups(cfg: Any) -> list[TemplateGroup]:
    """The ``group`` entries of an optimizer section, or of a bare ``group`` list."""
    entries = to_plain(cfg)
    if isinstance(entries, Mapping):
        entries = entries.get("group")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"expected a list of {{name, divide}} entries, got {entries!r}", path="optimizer.group")
    return [parse_model(TemplateGroup, entry, f"optimizer.group[{i}]") for i, entry in enumerate(entries)]


def get_param_group(model: nn.Module, cfg: Any, base_lr: float) -> list[dict[str, Any]]:
    """The template's groups: unmatched parameters at ``base_lr``, then one group per ``group`` entry at
    ``base_lr / divide`` (a parameter goes to the first entry whose ``name`` its name contains).

    ``cfg`` is the optimizer section or its ``group`` list.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
        >>> [g["lr"] for g in get_param_group(model, [{"name": "0.", "divide": 4}], 1.0)]
        [1.0, 0.25]
    """
    return template_groups(model, _groups(cfg), float(base_lr))


def param_groups_weight_decay(
    model: nn.Module, weight_decay: float = 1e-5, no_weight_decay_list: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """``[{params: no_decay, weight_decay: 0}, {params: decay, weight_decay}]`` over the trainable parameters.

    No decay for 1-D parameters (``ndim <= 1``), names ending in ``.bias`` and names in ``no_weight_decay_list``.

    Example:
        >>> groups = param_groups_weight_decay(torch.nn.Linear(2, 2), 0.05)
        >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
        [(1, 0.0), (1, 0.05)]
    """
    skip = set(no_weight_decay_list)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name.endswith(".bias") or name in skip
        (no_decay if exempt else decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


class TemplateStepping:
    """A scheduler stepped as the template's trainer steps it: ``step(epoch=k, metric=loss)``.

    As the template's schedulers do: those that take the epoch (the template's
    own, timm's, ``CosineAnnealingWarmRestarts``, the ranged ``ChainedScheduler``)
    go to step ``k``; a metric-driven one (``ReduceLROnPlateau``) judges ``metric``
    once per call, whatever the epoch; torch's others ignore ``metric`` and advance
    to step ``k`` (one step when the trainer counts up one at a time).
    ``step()`` advances by one. Every other attribute (``state_dict``,
    ``get_last_lr``, ``optimizer``...) is the wrapped scheduler's, which
    ``scheduler`` holds.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = TemplateStepping(torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5))
        >>> for k in range(1, 5):
        ...     opt.step()
        ...     sched.step(epoch=k, metric=0.3)
        >>> sched.get_last_lr()
        [0.25]
    """

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def step(self, epoch: int | None = None, metric: float | None = None) -> None:
        """Advance to ``epoch`` (or by one step), passing ``metric`` to a metric-driven scheduler."""
        if getattr(self.scheduler, "takes_epoch", False):
            self.scheduler.step(epoch=epoch, metric=metric)
            return
        if is_metric_driven(self.scheduler):
            self.scheduler.step(metric)
            return
        if epoch is not None and isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts):
            self.scheduler.step(epoch)
            return
        last = getattr(self.scheduler, "last_epoch", None)
        steps = 1 if epoch is None or not isinstance(last, int) else epoch - last
        if steps < 1:
            raise ValueError(f"step(epoch={epoch}) goes back: the scheduler is already at step {last}")
        for _ in range(steps):
            self.scheduler.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scheduler, name)


def build_lr_scheduler(cfg: Any, optimizer: torch.optim.Optimizer, epoch: int, max_iter: int) -> tuple[Any, Any]:
    """The template's ``(iter_scheduler, epoch_scheduler)`` from its scheduler file.

    ``cfg`` holds ``epoch_scheduler`` and ``iter_scheduler`` sections (either may be
    ``null``), each ``{name, class_name, args, checkpoint}``, rewritten as the template
    rewrites them (float milestones and ``step_size <= 1`` are fractions of the run:
    ``epoch`` epochs, or ``max_iter`` iterations; see
    :func:`~optforge.lr_schedulers.build_template_schedulers`). Both take the
    trainer's ``step(epoch=k, metric=loss)`` (:class:`TemplateStepping`).

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> cfg = {"epoch_scheduler": {"name": "step", "class_name": "MultiStepLR",
        ...                            "args": {"milestones": [0.5, 0.75], "gamma": 0.1}, "checkpoint": None},
        ...        "iter_scheduler": None}
        >>> iter_scheduler, epoch_scheduler = build_lr_scheduler(cfg, opt, 200, 1000)
        >>> iter_scheduler is None, epoch_scheduler.milestones
        (True, Counter({100: 1, 150: 1}))
        >>> for k in range(1, 101):
        ...     opt.step()
        ...     epoch_scheduler.step(epoch=k, metric=0.5)  # as the template's trainer steps it
        >>> [round(lr, 6) for lr in epoch_scheduler.get_last_lr()]
        [0.01]

    Raises:
        ConfigError: with every problem of both sections at once.
    """
    iter_scheduler, epoch_scheduler = build_template_schedulers(cfg, optimizer, epoch, max_iter)
    return tuple(None if s is None else TemplateStepping(s) for s in (iter_scheduler, epoch_scheduler))  # type: ignore[return-value]
