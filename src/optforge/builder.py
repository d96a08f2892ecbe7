"""Build optimizers (and their schedulers) from any config.

The flat form names a registered optimizer and its hyperparameters::

    {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}

The typed form of the recommender-system design holds exactly one of ``adam``,
``sgd``, ``adagrad`` and a ``learning_rate`` schedule. A config file may also
wrap either form under an ``optimizer:`` key, beside its ``schedule:``.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = optforge.build_optimizer(model, {"sgd": {"lr": 0.1, "momentum": 0.9}})
    >>> type(opt).__name__, opt.defaults["momentum"]
    ('SGD', 0.9)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

from optforge.around_step import attach
from optforge.composite_plan import build_composite, build_composite_and_scheduler, composite_document
from optforge.config import (
    BUILD_OPTIONS,
    DOCUMENT_KEYS,
    AroundStep,
    ClosedForm,
    Problems,
    read_around_step,
    read_schedule_section,
)
from optforge.config.stacks import as_document
from optforge.config_source import read_config
from optforge.construct import build_from_spec
from optforge.errors import ConfigError, format_path
from optforge.param_groups import group_schedules, parse_rules
from optforge.resolution import OptimizerSpec, ResolvedDocument, resolve_document, resolve_optimizer_spec
from optforge.scheduler import ClosedFormScheduler, build_scheduler, check_schedule_section

__all__ = [
    "BUILD_OPTIONS",
    "DOCUMENT_KEYS",
    "OptimizerSpec",
    "build",
    "build_optimizer",
    "resolve",
    "resolve_optimizer_spec",
]


def resolve(config: Any) -> ResolvedDocument:
    """Parse and check a whole config document, nothing built; every problem is reported at once.

    Beyond :func:`~optforge.resolution.resolve_document`, the structure of every
    param-group rule and of the ``schedule:`` section is checked (what rules
    match, and which groups schedules name, need the model).

    Raises:
        ConfigError: listing every problem of the document, each with its path.
    """
    problems = Problems()
    resolved = resolve_document(config, problems)
    spec = resolved.spec
    if spec is not None and spec.options.get("param_groups") is not None:
        with problems.collect():
            parse_rules(spec.options, spec.entry, format_path(spec.path, "param_groups"))
    with problems.collect():
        check_schedule_section(resolved.document.schedule, path="schedule")
    if spec is not None and spec.entry.needs_closure:
        around = resolved.document.around_step
        for key, given in (("clip_grad", around.clip_grad is not None), ("skip_nonfinite", around.skip_nonfinite)):
            if given:
                problems.add(
                    key,
                    f"{spec.entry.name} evaluates its closure several times in one step, so the gradients cannot "
                    "be clipped or checked before it; remove this key",
                )
    problems.raise_if_any()
    return resolved


def _shadow(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """An optimizer with the same group settings as ``optimizer`` over throwaway tensors, to try a schedule on."""
    groups = [
        {**{key: value for key, value in group.items() if key != "params"}, "params": [torch.zeros(1)]}
        for group in optimizer.param_groups
    ]
    return torch.optim.Optimizer(groups, {})


def build_optimizer(model_or_params: Any, config: Any) -> torch.optim.Optimizer:
    """Build a ready optimizer from a config.

    Args:
        model_or_params: An ``nn.Module``, an iterable of tensors (or of
            ``(name, tensor)`` pairs), or a list of param-group dicts. Groups keep
            their own settings; the config supplies the defaults.
        config: A mapping, an OmegaConf ``DictConfig``, a path to a YAML file, or a
            typed config object, in any form of :mod:`optforge.config` (flat,
            typed, the template's or the recap's), optionally under ``optimizer:``.

    Returns:
        The optimizer. A document's ``schedule:`` is validated too, and a warning
        says that :func:`build` is the function that builds it.

    Raises:
        ConfigError: for any bad config, before anything is built.

    Example:
        >>> import torch, optforge
        >>> w = torch.nn.Parameter(torch.zeros(3))
        >>> opt = optforge.build_optimizer([w], {"name": "NesterovMomentum", "lr": 0.1})
        >>> opt.defaults["nesterov"], opt.defaults["momentum"]
        (True, 0.9)
    """

    config = as_document(read_config(config))  # a YAML path is read once; another stack's file is translated
    document = composite_document(config)
    if document is not None:  # the optimizer section is a list of parts: one CompositeOptimizer
        optimizer, around = _with_around_step(
            document, lambda: build_composite(model_or_params, document["optimizer"], document=document)
        )
        return attach(optimizer, around, model_or_params)
    resolved = resolve(config)
    spec = resolved.spec
    assert spec is not None  # a list of parts is a composite, built above
    optimizer = attach(build_from_spec(model_or_params, spec), resolved.document.around_step, model_or_params)
    if spec.schedule is not None:
        build_scheduler(_shadow(optimizer), spec.schedule, path="schedule")
        warnings.warn(
            "the config holds a schedule, which build_optimizer checks but does not build; "
            "optforge.build(model, config) returns the optimizer and its scheduler",
            UserWarning,
            stacklevel=2,
        )
    return optimizer


def build(
    model_or_params: Any,
    config: Any,
    *,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
    stack: str | None = None,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Build an optimizer and its learning-rate scheduler from one config.

    The config is a document with ``optimizer:`` (any form) and an optional
    ``schedule:``, or an optimizer section itself (the typed form's
    ``learning_rate``, or the recap's schedules, are the schedule). Without a
    schedule, each group's own ``lr`` is held constant.

    ``total_steps`` and ``steps_per_epoch`` give the run's length from code (a
    training script knows it from its data loader), for schedule lengths written
    as fractions of the run (``{fraction: 0.05}``) or in epochs; where the
    ``schedule:`` section also gives one, both must agree.

    Another training stack's file (Hugging Face ``TrainingArguments`` fields, ...) is
    translated into an optforge document first (:mod:`optforge.config.stacks`): it is
    recognised where its shape is unambiguous, else named by ``stack``; ``total_steps``
    is then the run fact the stack's trainer would supply (``num_training_steps``), and
    each field the document does not carry is one :class:`~optforge.config.stacks.StackWarning`.

    Example:
        >>> import torch, optforge
        >>> model = torch.nn.Linear(2, 1)
        >>> cfg = {"adam": {"lr": 0.01}, "learning_rate": {"linear_ramp_to_constant":
        ...        {"learning_rate": 0.01, "num_ramp_steps": 10}}}
        >>> opt, sched = optforge.build(model, cfg)
        >>> opt.param_groups[0]["lr"]
        0.0
        >>> opt.step(); sched.step(); round(sched.get_last_lr()[0], 6)
        0.001
        >>> cfg = {"optimizer": {"name": "SGD", "lr": 0.1},
        ...        "schedule": {"cosine_decay": {"peak_value": 0.1, "warmup_steps": {"fraction": 0.1},
        ...                                      "decay_steps": {"fraction": 1.0}}}}
        >>> opt, sched = optforge.build(model, cfg, total_steps=1000)
        >>> lrs = [opt.param_groups[0]["lr"]]
        >>> for step in range(100):
        ...     opt.step(); sched.step(); lrs.append(opt.param_groups[0]["lr"])
        >>> [round(lrs[step], 4) for step in (0, 50, 100)]
        [0.0, 0.05, 0.1]
    """

    run = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch}
    config = as_document(read_config(config), stack, **run)  # a YAML path is read once
    document = composite_document(config)
    if document is not None:  # the optimizer section is a list of parts: one CompositeOptimizer
        (optimizer, scheduler), around = _with_around_step(
            document, lambda: build_composite_and_scheduler(model_or_params, document, **run)
        )
    else:
        resolved = resolve(config)
        around = resolved.document.around_step
        assert resolved.spec is not None  # a list of parts is a composite, built above
        optimizer, scheduler = build_spec(model_or_params, resolved.spec, **run)
    return attach(optimizer, around, model_or_params), scheduler


_Built = TypeVar("_Built")


def _with_around_step(document: Mapping[str, Any], build_parts: Callable[[], _Built]) -> tuple[_Built, AroundStep]:
    """What ``build_parts`` builds, and the ``clip_grad:``, ``ema:`` and ``skip_nonfinite:`` of a composite's
    document; one :class:`ConfigError` lists the problems of both."""
    problems = Problems()
    around = read_around_step(document, problems)
    try:
        built = build_parts()
    except ConfigError as err:
        raise ConfigError.from_problems([*err.problems, *problems.items]) from None
    problems.raise_if_any()
    return built, around


def build_spec(
    model_or_params: Any, spec: OptimizerSpec, *, total_steps: int | None = None, steps_per_epoch: int | None = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer and scheduler of a resolved spec (see :func:`resolve`): what :func:`build` returns.

    Example:
        >>> import torch
        >>> spec = resolve({"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"constant": 0.05}}).spec
        >>> opt, sched = build_spec(torch.nn.Linear(2, 1), spec)
        >>> opt.param_groups[0]["lr"]
        0.05
    """
    run = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch}
    optimizer = build_from_spec(model_or_params, spec)
    per_group = group_schedules(optimizer, spec)  # towers, or rules with their own schedule
    if per_group is not None:
        return optimizer, ClosedFormScheduler(optimizer, per_group, **run)
    if spec.learning_rate is not None:
        shared = {"lr": spec.learning_rate}  # also for groups added later
        if len(optimizer.param_groups) != 1:
            names = [group.get("name", f"group{i}") for i, group in enumerate(optimizer.param_groups)]
            return optimizer, ClosedFormScheduler(
                optimizer, dict.fromkeys(names, spec.learning_rate), defaults=shared, **run
            )
        key = spec.schedule_key or "ALL_PARAMS"
        return optimizer, ClosedFormScheduler(optimizer, {key: spec.learning_rate}, defaults=shared, **run)
    schedule = spec.schedule
    section = read_schedule_section(schedule)
    if isinstance(section, ClosedForm) and section.full_form and section.lr is None:
        # Only other hyperparameters are scheduled: each group keeps its lr, which already holds its rule's lr_scale.
        own = group_schedules(optimizer, dataclasses.replace(spec, schedule=None))
        schedule = schedule if own is None else {**schedule, "lr": own}
    return optimizer, build_scheduler(optimizer, schedule, path="schedule", **run)
