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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optforge._validation import parse_model
from optforge.config import TYPED_OPTIMIZERS, OptimizerConfig
from optforge.config_source import load_config
from optforge.errors import ConfigError, format_path, unknown_choice
from optforge.hyperparameters import check_hyperparameters
from optforge.param_groups import group_schedules, param_groups_for
from optforge.registry import OptimizerEntry, get_optimizer_entry

__all__ = ["BUILD_OPTIONS", "DOCUMENT_KEYS", "OptimizerSpec", "build", "build_optimizer", "resolve_optimizer_spec"]

# Top-level keys of a config document (the optimizer and what goes beside it).
DOCUMENT_KEYS: tuple[str, ...] = ("optimizer", "schedule", "multi_task_learning_rates")

# Keys of a flat optimizer section that shape the build rather than being
# hyperparameters of the optimizer, with what each does.
BUILD_OPTIONS: dict[str, str] = {
    "zero": "true wraps the optimizer in ZeroRedundancyOptimizer, sharding its state across ranks "
    "(needs an initialized process group)",
    "param_groups": "ordered rules: match parameters by name, module_type or ndim; set hyperparameters, "
    "lr_scale, name, schedule, layer or frozen (first match wins)",
    "no_weight_decay": "weight_decay 0 for biases, norms, 1-D params, embeddings, names: true, false or a mapping "
    "(default: on for decoupled-decay optimizers)",
    "layer_decay": "scale each block's lr by layer_decay ** (blocks above it)",
}


@dataclass(frozen=True)
class OptimizerSpec:
    """A validated optimizer config, ready to build.

    Attributes:
        entry: The registry entry of the chosen optimizer.
        hyperparameters: Checked keyword arguments (bound defaults included).
        path: The config path of the optimizer section, for messages.
        learning_rate: The typed form's schedule, if it had one.
        document: The whole config document it came from.
        options: Values of the section's :data:`BUILD_OPTIONS` keys.
    """

    entry: OptimizerEntry
    hyperparameters: dict[str, Any]
    path: str = "optimizer"
    learning_rate: Any = None
    document: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def _optimizer_section(doc: dict[str, Any]) -> tuple[Any, str]:
    """The optimizer part of a document, and its config path."""
    if "optimizer" in doc:
        unknown = [key for key in doc if key not in DOCUMENT_KEYS]
        if unknown:
            raise unknown_choice(unknown[0], unknown[0], DOCUMENT_KEYS, what="top-level key")
        return doc["optimizer"], "optimizer"
    return doc, "optimizer"


def resolve_optimizer_spec(config: Any) -> OptimizerSpec:
    """Validate any optimizer config into an :class:`OptimizerSpec` (nothing is built).

    Raises:
        ConfigError: for any problem in the config, naming its path.
    """
    doc = load_config(config)
    section, path = _optimizer_section(doc)
    if not isinstance(section, Mapping):
        raise ConfigError(f"expected a mapping, got {type(section).__name__} {section!r}", path=path)
    section = dict(section)
    if "name" in section:
        name = section.pop("name")
        entry = get_optimizer_entry(name, path=format_path(path, "name"))
        reason = entry.unavailable_reason()
        if reason:  # before the signature is read: that may import a package that is missing
            raise ConfigError(f"{entry.name} cannot be built here: {reason}", path=format_path(path, "name"))
        options = {key: section.pop(key) for key in list(section) if key in BUILD_OPTIONS}
        hyperparameters = check_hyperparameters(entry, section, path)
        return OptimizerSpec(entry, {**entry.defaults, **hyperparameters}, path, document=doc, options=options)
    if any(key in section for key in (*TYPED_OPTIMIZERS, "learning_rate")):
        typed = parse_model(OptimizerConfig, section, path)
        choice, sub_config = typed.chosen()
        entry = get_optimizer_entry(TYPED_OPTIMIZERS[choice], path=format_path(path, choice))
        hyperparameters = check_hyperparameters(entry, sub_config.model_dump(), format_path(path, choice))
        return OptimizerSpec(entry, hyperparameters, format_path(path, choice), typed.learning_rate, doc)
    raise ConfigError(
        "an optimizer config needs a 'name' (flat form, e.g. {name: AdamW, lr: 0.001}) "
        f"or exactly one of {', '.join(TYPED_OPTIMIZERS)} (typed form); got keys {sorted(section)}",
        path=path,
    )


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
    """Validate the hyperparameters that explicit groups set, as the config's are."""
    checked = []
    accepted, _ = spec.entry.hyperparameters()
    for index, group in enumerate(groups):
        settings = {key: value for key, value in group.items() if key in accepted}
        valid = check_hyperparameters(spec.entry, settings, f"param_groups[{index}]")
        checked.append({**group, **valid})
    return checked


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
    if asked or spec.document.get("multi_task_learning_rates") is not None:
        where = format_path(spec.path, asked[0]) if asked else "multi_task_learning_rates"
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
    params: Any = param_groups_for(model_or_params, spec)  # groups made by rules, for a model
    if params is None:
        params = collect_params(model_or_params)
        if params and isinstance(params[0], dict):
            params = _check_groups(spec, params)
    from optforge.composite import check_matrix_params
    from optforge.distributed import zero_factory

    check_matrix_params(model_or_params, params, spec)  # 2-D-only optimizers (Muon) over other shapes

    create = zero_factory(spec)  # spec.entry.create, or a ZeRO wrap of it with zero: true
    try:
        return create(params, **spec.hyperparameters)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{spec.entry.name} rejected the config: {exc}", path=spec.path) from exc


def build_optimizer(model_or_params: Any, config: Any) -> torch.optim.Optimizer:
    """Build a ready optimizer from a config.

    Args:
        model_or_params: An ``nn.Module``, an iterable of tensors (or of
            ``(name, tensor)`` pairs), or a list of param-group dicts. Groups keep
            their own settings; the config supplies the defaults.
        config: A mapping, an OmegaConf ``DictConfig``, a path to a YAML file, or a
            typed config object, in the flat form (``{"name": ..., **hyperparameters}``)
            or the typed form (``{"adam": {...}, "learning_rate": {...}}``), optionally
            under an ``optimizer:`` key.

    Returns:
        The optimizer.

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

    document = composite_document(config)
    if document is not None:  # the optimizer section is a list of parts: one CompositeOptimizer
        return build_composite(model_or_params, document["optimizer"], document=document)
    return build_from_spec(model_or_params, resolve_optimizer_spec(config))


def build(model_or_params: Any, config: Any) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Build an optimizer and its learning-rate scheduler from one config.

    The config is a document with ``optimizer:`` (flat or typed form) and an
    optional ``schedule:``, or the typed form itself (its ``learning_rate`` is the
    schedule). Without a schedule, each group's own ``lr`` is held constant.

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
    """
    from optforge.composite import build_composite_and_scheduler, composite_document
    from optforge.scheduler import LRShim, build_scheduler

    document = composite_document(config)
    if document is not None:  # the optimizer section is a list of parts: one CompositeOptimizer
        return build_composite_and_scheduler(model_or_params, document)
    spec = resolve_optimizer_spec(config)
    optimizer = build_from_spec(model_or_params, spec)
    if spec.learning_rate is not None and spec.document.get("schedule") is not None:
        raise ConfigError(
            "the schedule is given twice: as the optimizer's learning_rate and as schedule; keep one",
            path=format_path(spec.path.rsplit(".", 1)[0], "learning_rate"),
        )
    per_group = group_schedules(optimizer, spec)  # towers, or rules with their own schedule
    if per_group is not None:
        return optimizer, LRShim(optimizer, per_group)
    if spec.learning_rate is not None:
        if len(optimizer.param_groups) != 1:
            names = [group.get("name", f"group{i}") for i, group in enumerate(optimizer.param_groups)]
            return optimizer, LRShim(optimizer, dict.fromkeys(names, spec.learning_rate))
        return optimizer, LRShim(optimizer, {"ALL_PARAMS": spec.learning_rate})
    return optimizer, build_scheduler(optimizer, spec.document.get("schedule"), path="schedule")
