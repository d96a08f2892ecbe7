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
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from optforge.config import BUILD_OPTIONS, DOCUMENT_KEYS, ClosedForm, Problems, read_schedule_section
from optforge.config_source import read_config
from optforge.errors import ConfigError, format_path, misspelling_of
from optforge.hyperparameters import check_hyperparameters
from optforge.param_groups import form_groups, group_schedules, param_groups_for, parse_rules
from optforge.scheduler import LRShim, build_scheduler, check_schedule_section
from optforge.schedules import make_schedule
from optforge.spec import OptimizerSpec, ResolvedDocument, resolve_document, resolve_optimizer_spec

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

    Beyond :func:`~optforge.spec.resolve_document`, the structure of every
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
    problems.raise_if_any()
    return resolved


def _trainable(tensors: Iterable[Any], path: str) -> list[torch.Tensor]:
    params = []
    for index, tensor in enumerate(tensors):
        if isinstance(tensor, tuple) and len(tensor) == 2 and isinstance(tensor[0], str):
            tensor = tensor[1]  # (name, parameter) pairs, as from named_parameters()
        if not isinstance(tensor, torch.Tensor):
            raise ConfigError(f"expected a tensor, got {type(tensor).__name__}", path=format_path(path, index))
        if tensor.requires_grad:
            params.append(tensor)
    return params


def collect_params(model_or_params: Any) -> list[dict[str, Any]] | list[torch.Tensor]:
    """The trainable parameters (or groups) of a module, a tensor iterable or group dicts.

    Parameters with ``requires_grad=False`` are left out; groups keep their own settings.

    Raises:
        ConfigError: when nothing trainable is left.
    """
    if isinstance(model_or_params, nn.Module):
        params: list[Any] = [p for p in model_or_params.parameters() if p.requires_grad]
    elif isinstance(model_or_params, torch.Tensor):
        params = _trainable([model_or_params], "params")
    else:
        items = list(model_or_params)
        if items and all(isinstance(item, Mapping) for item in items):
            params = []
            for index, group in enumerate(items):
                if "params" not in group:
                    raise ConfigError("a param group needs a 'params' key", path=f"param_groups[{index}]")
                tensors = group["params"]
                tensors = [tensors] if isinstance(tensors, torch.Tensor) else tensors
                params.append({**group, "params": _trainable(tensors, f"param_groups[{index}].params")})
            if not any(group["params"] for group in params):
                params = []
        else:
            params = _trainable(items, "params")
    if not params:
        raise ConfigError(
            "no trainable parameters: the model or parameter list is empty, or every parameter has requires_grad=False"
        )
    return params


def _check_groups(spec: OptimizerSpec, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate the hyperparameters that explicit groups set, as the config's are.

    Other keys are kept, as torch keeps them, unless one is a typo of a hyperparameter
    (``lrr`` for ``lr``): that would be silently ignored, so it is an error.
    """
    checked = []
    problems: list[tuple[str, str]] = []
    accepted, _ = spec.entry.hyperparameters()
    for index, group in enumerate(groups):
        for key in group:
            if key in accepted or key == "params" or not isinstance(key, str):
                continue
            meant = misspelling_of(key, accepted)
            if meant is not None:
                problems.append(
                    (
                        f"param_groups[{index}].{key}",
                        f"not a hyperparameter of {spec.entry.name}; did you mean {meant!r}? A group keeps "
                        "other keys as labels, but this one looks like a typo",
                    )
                )
        settings = {key: value for key, value in group.items() if key in accepted}
        try:
            valid = check_hyperparameters(spec.entry, settings, f"param_groups[{index}]")
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        checked.append({**group, **valid})
    if problems:
        raise ConfigError.from_problems(problems)
    return checked


def _hyperparameters(spec: OptimizerSpec) -> dict[str, Any]:
    """The keyword arguments of the constructor; a section whose lr comes from its schedule starts at step 0."""
    if spec.lr_from_schedule and spec.learning_rate is not None:
        return {**spec.hyperparameters, "lr": make_schedule(spec.learning_rate)(0)}
    return dict(spec.hyperparameters)


def _load_optimizer_checkpoint(optimizer: torch.optim.Optimizer, file: str, path: str) -> None:
    """Load a saved optimizer state into a freshly built ``optimizer``; any failure is a ConfigError."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"optimizer checkpoint {file!r} does not exist", path=path) from None
    except Exception as exc:  # a corrupt or foreign file: pickle, zip and torch errors alike
        raise ConfigError(f"cannot read optimizer checkpoint {file!r}: {exc}", path=path) from None
    if not isinstance(state, Mapping) or "state" not in state or "param_groups" not in state:
        raise ConfigError(f"{file!r} holds no optimizer state dict (keys 'state' and 'param_groups')", path=path)
    try:
        optimizer.load_state_dict(state)
    except Exception as exc:  # torch raises ValueError, KeyError or RuntimeError for a mismatched state
        raise ConfigError(f"optimizer checkpoint {file!r} does not match the optimizer: {exc}", path=path) from None


def _build_over_model(model: Any, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """Build an entry whose constructor takes the model (``entry.takes``: LOMO, AdamMini) rather than parameters."""
    name, takes = spec.entry.name, spec.entry.takes
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{name} takes the model itself (its {takes.replace('_', ' ')}), not a list of parameters: "
            f"pass the nn.Module; got {type(model).__name__}",
            path=format_path(spec.path, "name"),
        )
    asked = [key for key, value in spec.options.items() if value not in (None, False)]
    if asked or spec.towers is not None:
        where = format_path(spec.path, asked[0]) if asked else spec.towers_path
        raise ConfigError(f"{name} groups the model's parameters itself; remove this key", path=where)
    target = model if takes == "module" else [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    try:
        return spec.entry.create(target, **spec.hyperparameters)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} rejected the config: {exc}", path=spec.path) from exc


def build_from_spec(model_or_params: Any, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """Instantiate a validated spec over ``model_or_params``."""
    if spec.entry.takes != "params":
        return _build_over_model(model_or_params, spec)
    if spec.groups_as_written:
        params: Any = form_groups(model_or_params, spec)  # no presets, no merging: what those systems build
    else:
        params = param_groups_for(model_or_params, spec)  # groups made by rules, for a model
    if params is None:
        params = collect_params(model_or_params)
        if params and isinstance(params[0], dict):
            params = _check_groups(spec, params)
    from optforge.composite import check_matrix_params
    from optforge.distributed import zero_factory

    check_matrix_params(model_or_params, params, spec)  # 2-D-only optimizers (Muon) over other shapes

    create = zero_factory(spec)  # spec.entry.create, or a ZeRO wrap of it with zero: true
    try:
        optimizer = create(params, **_hyperparameters(spec))
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:  # what constructors raise for bad values
        raise ConfigError(f"{spec.entry.name} rejected the config: {exc}", path=spec.path) from exc
    section = spec.section
    if section is not None and section.template is not None and section.template.checkpoint is not None:
        _load_optimizer_checkpoint(optimizer, section.template.checkpoint, format_path(spec.path, "checkpoint"))
    return optimizer


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
    from optforge.composite import build_composite, composite_document

    config = read_config(config)  # a YAML path is read once
    document = composite_document(config)
    if document is not None:  # the optimizer section is a list of parts: one CompositeOptimizer
        return build_composite(model_or_params, document["optimizer"], document=document)
    resolved = resolve(config)
    spec = resolved.spec
    assert spec is not None  # a list of parts is a composite, built above
    optimizer = build_from_spec(model_or_params, spec)
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
    model_or_params: Any, config: Any, *, total_steps: int | None = None, steps_per_epoch: int | None = None
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
    from optforge.composite import build_composite_and_scheduler, composite_document

    run = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch}
    config = read_config(config)  # a YAML path is read once
    document = composite_document(config)
    if document is not None:  # the optimizer section is a list of parts: one CompositeOptimizer
        return build_composite_and_scheduler(model_or_params, document, **run)
    resolved = resolve(config)
    spec = resolved.spec
    assert spec is not None  # a list of parts is a composite, built above
    return build_spec(model_or_params, spec, **run)


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
        return optimizer, LRShim(optimizer, per_group, **run)
    if spec.learning_rate is not None:
        shared = {"lr": spec.learning_rate}  # also for groups added later
        if len(optimizer.param_groups) != 1:
            names = [group.get("name", f"group{i}") for i, group in enumerate(optimizer.param_groups)]
            return optimizer, LRShim(optimizer, dict.fromkeys(names, spec.learning_rate), defaults=shared, **run)
        key = spec.schedule_key or "ALL_PARAMS"
        return optimizer, LRShim(optimizer, {key: spec.learning_rate}, defaults=shared, **run)
    schedule = spec.schedule
    section = read_schedule_section(schedule)
    if isinstance(section, ClosedForm) and section.full_form and section.lr is None:
        # Only other hyperparameters are scheduled: each group keeps its lr, which already holds its rule's lr_scale.
        own = group_schedules(optimizer, dataclasses.replace(spec, schedule=None))
        schedule = schedule if own is None else {**schedule, "lr": own}
    return optimizer, build_scheduler(optimizer, schedule, path="schedule", **run)
