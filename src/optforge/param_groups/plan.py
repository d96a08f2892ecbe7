"""The plan of param groups for a model and a config, and where every parameter went."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from optforge.config.rules import MultiTaskLearningRates
from optforge.errors import ConfigError, format_path
from optforge.param_groups.infos import ParamInfo, param_infos
from optforge.param_groups.layer_decay import layer_decay_plan
from optforge.param_groups.selectors import Rule, check_module_types, parse_rules, place_rules
from optforge.param_groups.template import template_groups
from optforge.param_groups.towers import place_towers, tower_groups
from optforge.param_groups.weight_decay import no_decay_config, no_decay_reasons
from optforge.schedules import make_schedule

if TYPE_CHECKING:
    from optforge.resolution import OptimizerSpec

__all__ = [
    "GroupPlan",
    "Placement",
    "group_schedules",
    "make_param_groups",
    "param_groups_for",
    "plan_param_groups",
    "uses_rules",
]


# The keys of a config that this module reads (flat optimizer section, and document).
OPTION_KEYS: tuple[str, ...] = ("param_groups", "no_weight_decay", "layer_decay")


@dataclass
class Placement:
    """Where one parameter went, and why.

    Attributes:
        info: The parameter.
        group: The name of its group, or ``None`` when it is left out.
        reasons: What placed it (``"param_groups[1]"``, ``"no_weight_decay: bias"``,
            ``"tower ctr"``, ``"layer 3"``, ``"requires_grad=False"``...).
    """

    info: ParamInfo
    group: str | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class GroupPlan:
    """The param groups for a model and config, and the placement of every parameter.

    Attributes:
        groups: Param-group dicts ready for a torch optimizer (each has a ``name``).
        placements: One per parameter of the model, frozen ones included.
        defaults: The optimizer's effective defaults (signature, entry and config).
    """

    groups: list[dict[str, Any]]
    placements: list[Placement]
    defaults: dict[str, Any]


def effective_defaults(spec: OptimizerSpec) -> dict[str, Any]:
    accepted, _ = spec.entry.hyperparameters()
    defaults = {name: p.default for name, p in accepted.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **spec.hyperparameters}


@dataclass(frozen=True)
class _Context:
    """What placing one parameter needs, gathered once per model and config."""

    defaults: dict[str, Any]
    by_rule: dict[int, Rule]
    exempt: dict[int, str]
    towers: MultiTaskLearningRates | None
    by_tower: dict[int, str]
    layers: tuple[float, dict[int, int], int] | None

    @property
    def base_lr(self) -> float:
        return float(self.defaults.get("lr") or 0.0)


def _context(model: nn.Module, spec: OptimizerSpec, infos: Sequence[ParamInfo]) -> _Context:
    options, path = spec.options, spec.path
    defaults = effective_defaults(spec)
    rules = parse_rules(options, spec.entry, format_path(path, "param_groups"))
    check_module_types(rules, infos, model)
    by_rule = place_rules(rules, infos)
    no_decay = no_decay_config(options.get("no_weight_decay"), spec, defaults, format_path(path, "no_weight_decay"))
    exempt = no_decay_reasons(no_decay, model, infos, format_path(path, "no_weight_decay"))
    towers = spec.towers
    by_tower = place_towers(towers, infos, spec.towers_path) if towers is not None else {}
    layers = layer_decay_plan(options.get("layer_decay"), model, infos, by_rule, format_path(path, "layer_decay"))
    return _Context(defaults, by_rule, exempt, towers, by_tower, layers)


def _settings(info: ParamInfo, ctx: _Context, reasons: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The merge key and the group settings of one trainable parameter, noting what placed it."""
    key_id = id(info.param)
    rule = ctx.by_rule.get(key_id)
    settings = dict(rule.hyperparameters) if rule is not None else {}
    if key_id in ctx.exempt and "weight_decay" not in settings:
        settings["weight_decay"] = 0.0
        reasons.append(ctx.exempt[key_id])
    schedule = rule.config.schedule if rule is not None else None
    tower = None
    if ctx.towers is not None:
        tower = ctx.by_tower.get(key_id, "backbone")
        reasons.append(f"tower {tower}")
        if schedule is None:
            schedule = ctx.towers.tower_learning_rates.get(tower, ctx.towers.backbone_learning_rate)
    scale = rule.config.lr_scale if rule is not None and rule.config.lr_scale is not None else 1.0
    layer = None
    if ctx.layers is not None:
        rate, layers, top = ctx.layers
        layer = layers[key_id]
        scale *= rate ** (top - layer)
        reasons.append(f"layer {layer}")
    lr = float(settings.pop("lr", ctx.base_lr))
    # Without its own schedule, a group follows the shared one in proportion to its lr.
    relative = lr / ctx.base_lr if schedule is None and ctx.base_lr > 0 else 1.0
    settings = {k: v for k, v in settings.items() if k not in ctx.defaults or ctx.defaults[k] != v}
    if lr * scale != ctx.defaults.get("lr"):
        settings["lr"] = lr * scale
    if scale * relative != 1.0:
        settings["lr_scale"] = scale * relative
    if schedule is not None:
        settings["schedule"] = schedule.model_dump(mode="json", exclude_none=True)
    label = rule.config.name if rule is not None else None
    key = (tower, label, layer, tuple(sorted((k, repr(v)) for k, v in settings.items())))
    return key, settings


def _group_name(tower: str | None, label: str | None, layer: int | None, rules: set[int | None], no_decay: bool) -> str:
    parts = [part for part in (tower, label) if part is not None]
    if label is None and None not in rules:
        parts.append("+".join(f"rule{index}" for index in sorted(rules)))  # type: ignore[arg-type]
    if layer is not None:
        parts.append(f"layer{layer}")
    if no_decay:
        parts.append("no_decay")
    return "/".join(parts) or "default"


def form_groups(model_or_params: Any, spec: OptimizerSpec) -> list[dict[str, Any]] | None:
    """The groups the template and recap forms make, exactly as their systems make them; ``None`` otherwise.

    Raises:
        ConfigError: when a form's groups match names but no model is given.
    """
    template = spec.section.template if spec.section is not None else None
    if template is not None:
        if isinstance(model_or_params, nn.Module):
            return template_groups(model_or_params, template.group or [], float(spec.hyperparameters["lr"]))
        if template.group:
            raise ConfigError(
                "group matches parameter names, so it needs a model (an nn.Module); "
                f"got {type(model_or_params).__name__}",
                path=format_path(spec.path, "group"),
            )
        return None  # parameters or group dicts, used as given
    if spec.groups_as_written and spec.towers is not None:
        if not isinstance(model_or_params, nn.Module):
            raise ConfigError(
                f"task towers match parameter names, so they need a model (an nn.Module); "
                f"got {type(model_or_params).__name__}",
                path=spec.towers_path,
            )
        groups, schedules = tower_groups(spec.towers, param_infos(model_or_params), spec.towers_path)
        for group in groups:
            schedule = schedules[group["name"]]
            group["lr"] = make_schedule(schedule)(0)
            group["schedule"] = schedule.model_dump(mode="json", exclude_none=True)
        return groups
    return None


def _plan_from_groups(model: nn.Module, spec: OptimizerSpec, groups: list[dict[str, Any]]) -> GroupPlan:
    """The plan of groups made as a form's system makes them (no rules, presets or merging)."""
    named = [{**group, "name": group.get("name", f"group{index}")} for index, group in enumerate(groups)]
    by_param = {id(param): group["name"] for group in named for param in group["params"]}
    placements = []
    for info in param_infos(model):
        group = by_param.get(id(info.param))
        reason = spec.origin if group is not None else "requires_grad=False"
        placements.append(Placement(info, group, [reason]))
    return GroupPlan(named, placements, effective_defaults(spec))


def plan_param_groups(model: nn.Module, spec: OptimizerSpec) -> GroupPlan:
    """Place every parameter of ``model`` by the rules, presets, layer decay and towers of ``spec``.

    Raises:
        ConfigError: for a bad rule, a rule or tower that matches no parameter, a
            parameter in two towers, or layer decay with no block to decay.

    Example:
        >>> import torch
        >>> from optforge.resolution import resolve_optimizer_spec
        >>> plan = plan_param_groups(torch.nn.Linear(2, 2), resolve_optimizer_spec({"name": "AdamW"}))
        >>> [(p.info.name, p.group, p.reasons) for p in plan.placements]
        [('weight', 'default', []), ('bias', 'no_decay', ['no_weight_decay: bias'])]
    """
    made = form_groups(model, spec)
    if made is not None:
        return _plan_from_groups(model, spec, made)
    infos = param_infos(model)
    ctx = _context(model, spec, infos)
    placements: list[Placement] = []
    merged: dict[tuple[Any, ...], tuple[dict[str, Any], set[int | None]]] = {}
    for info in infos:
        placement = Placement(info)
        placements.append(placement)
        rule = ctx.by_rule.get(id(info.param))
        if rule is not None:
            placement.reasons.append(rule.path.rsplit(".", 1)[-1])
        if not info.param.requires_grad or (rule is not None and rule.config.frozen):
            placement.reasons.append("frozen" if info.param.requires_grad else "requires_grad=False")
            continue
        key, settings = _settings(info, ctx, placement.reasons)
        group, rules = merged.setdefault(key, ({"params": [], **settings}, set()))
        group["params"].append(info.param)
        rules.add(rule.index if rule is not None else None)
    groups: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for (tower, label, layer, _), (group, rules) in merged.items():
        no_decay = group.get("weight_decay") == 0.0 and bool(ctx.defaults.get("weight_decay"))
        name = _group_name(tower, label, layer, rules, no_decay)
        seen[name] = seen.get(name, 0) + 1
        name = name if seen[name] == 1 else f"{name}-{seen[name]}"
        groups.append({"params": group.pop("params"), "name": name, **group})
    by_param = {id(p): group["name"] for group in groups for p in group["params"]}
    for placement in placements:
        placement.group = by_param.get(id(placement.info.param))
    return GroupPlan(groups, placements, ctx.defaults)


def uses_rules(model_or_params: Any, spec: OptimizerSpec) -> bool:
    """Whether ``spec`` asks for groups made by rules (or its optimizer for the default presets)."""
    asked = any(spec.options.get(key) is not None for key in OPTION_KEYS) or spec.towers is not None
    if not isinstance(model_or_params, nn.Module):
        if asked:
            keys = [key for key in OPTION_KEYS if spec.options.get(key) is not None]
            where = format_path(spec.path, keys[0]) if keys else spec.towers_path
            raise ConfigError(
                f"param-group rules match parameter names, so they need a model (an nn.Module); "
                f"got {type(model_or_params).__name__}",
                path=where,
            )
        return False
    return asked or spec.entry.decoupled_weight_decay


def param_groups_for(model_or_params: Any, spec: OptimizerSpec) -> list[dict[str, Any]] | None:
    """The groups ``spec`` makes for a model, or ``None`` when it makes none (plain parameters, no rules).

    Raises:
        ConfigError: for any bad rule, or when every parameter is frozen.
    """
    if not uses_rules(model_or_params, spec):
        return None
    groups = plan_param_groups(model_or_params, spec).groups
    if not groups:
        raise ConfigError("no trainable parameters: every parameter is frozen or has requires_grad=False")
    return groups


def make_param_groups(model: nn.Module, config: Any) -> list[dict[str, Any]]:
    """The param groups that ``build_optimizer(model, config)`` would pass to the optimizer.

    Args:
        model: The model whose parameters are grouped.
        config: Any optimizer config (see :func:`optforge.build_optimizer`).

    Example:
        >>> import torch
        >>> groups = make_param_groups(torch.nn.Linear(2, 2), {"name": "SGD", "lr": 0.1, "no_weight_decay": True,
        ...                                                  "weight_decay": 0.01})
        >>> [(g["name"], g.get("weight_decay")) for g in groups]
        [('default', None), ('no_decay', 0.0)]
    """
    from optforge.resolution import resolve_optimizer_spec

    spec = resolve_optimizer_spec(config)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"make_param_groups needs a model (an nn.Module), got {type(model).__name__}")
    groups = param_groups_for(model, spec)
    return (
        groups
        if groups is not None
        else [{"params": [p for p in model.parameters() if p.requires_grad], "name": "default"}]
    )


def group_schedules(optimizer: torch.optim.Optimizer, spec: OptimizerSpec) -> dict[str, Any] | None:
    """Per-group schedules for a config without a shared schedule, or ``None`` when none is needed.

    A group's own ``schedule`` is used; the others hold their lr constant. Their
    lr already includes ``lr_scale``, which the scheduler multiplies in again, so
    the constant is ``lr / lr_scale``. With a shared schedule (the typed form's
    ``learning_rate`` or the document's ``schedule``) the scheduler needs no help.

    Example:
        >>> import torch
        >>> from optforge.resolution import resolve_optimizer_spec
        >>> w, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([{"params": [w], "name": "a", "schedule": {"constant": 0.1}},
        ...                        {"params": [b], "name": "b", "lr": 0.25, "lr_scale": 0.5}], lr=1.0)
        >>> group_schedules(opt, resolve_optimizer_spec({"name": "SGD", "lr": 1.0}))
        {'a': {'constant': 0.1}, 'b': {'constant': 0.5}}
    """
    groups = optimizer.param_groups
    shared = spec.learning_rate if spec.learning_rate is not None else spec.schedule
    if shared is not None or not any("schedule" in group or "lr_scale" in group for group in groups):
        return None
    schedules = {}
    for index, group in enumerate(groups):
        scale = float(group.get("lr_scale", 1.0))
        constant = {"constant": float(group["lr"]) / scale if scale > 0 else float(group["lr"])}
        schedules[group.get("name", f"group{index}")] = group.get("schedule", constant)
    return schedules
