"""Parameter groups from rules: lr scales, weight-decay exclusion, layer decay and task towers.

A flat optimizer config may hold, beside the hyperparameters:

- ``param_groups``: an ordered list of rules. Each rule selects parameters by
  ``match`` (globs, or a regex with ``regex: true``), ``module_type`` and/or
  ``ndim`` and sets hyperparameters, ``lr_scale``, ``name``, ``schedule``,
  ``layer`` or ``frozen: true``. The first rule that matches a parameter wins.
- ``no_weight_decay``: presets that set ``weight_decay: 0`` for biases, norm
  parameters, 1-D parameters, embeddings and named parameters; on by default
  for optimizers with decoupled weight decay (AdamW).
- ``layer_decay``: scale each block's lr by ``layer_decay ** (depth from the top)``.

A config document may also hold ``multi_task_learning_rates`` beside ``optimizer``:
one group (with its own schedule) per task tower, and the backbone.

Rules apply when a model (an ``nn.Module``) is given; param-group dicts passed
in are used as they are. Groups with identical settings are merged.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    >>> cfg = {"name": "AdamW", "lr": 0.01, "weight_decay": 0.1,
    ...        "param_groups": [{"match": "2", "lr_scale": 10, "name": "head"}]}
    >>> opt = optforge.build_optimizer(model, cfg)
    >>> for g in opt.param_groups:
    ...     print(g["name"], g["lr"], g["weight_decay"], len(g["params"]))
    default 0.01 0.1 1
    no_decay 0.01 0.0 3
    head 0.1 0.1 1
    head/no_decay 0.1 0.0 1
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import pydantic
import torch
from torch import nn

from optforge._validation import StrictModel, parse_model
from optforge.errors import ConfigError, format_path, unknown_choice
from optforge.hyperparameters import check_hyperparameters
from optforge.registry import OptimizerEntry
from optforge.schedules import LearningRate

if TYPE_CHECKING:
    from optforge.builder import OptimizerSpec

__all__ = [
    "BLOCK_CONTAINERS",
    "EMBEDDING_TYPES",
    "NORM_TYPES",
    "NO_WEIGHT_DECAY_PRESETS",
    "GroupPlan",
    "MultiTaskLearningRates",
    "NoWeightDecay",
    "ParamGroupRule",
    "ParamInfo",
    "Placement",
    "group_schedules",
    "make_param_groups",
    "param_groups_for",
    "plan_param_groups",
]

# Names of the module lists whose numbered children are the blocks that layer decay counts.
BLOCK_CONTAINERS: tuple[str, ...] = ("blocks", "layers", "layer", "h")

# Module types whose parameters the ``norm`` preset exempts from weight decay; other
# classes count too when their name ends in "Norm" (RMSNorm, LayerNorm2d, FrozenBatchNorm2d...).
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)
_NORM_CLASS_NAME = re.compile(r"Norm\d*d?$")

# Module types whose parameters the ``embedding`` preset exempts from weight decay.
EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)

# The keys of a config that this module reads (flat optimizer section, and document).
OPTION_KEYS: tuple[str, ...] = ("param_groups", "no_weight_decay", "layer_decay")
TOWERS_KEY = "multi_task_learning_rates"


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a model: its names (tied parameters have several) and owners.

    Attributes:
        name: The name ``named_parameters()`` gives it (the first of ``aliases``).
        aliases: Every dotted name that reaches it.
        param: The parameter.
        owners: The types of the modules that hold it directly.
    """

    name: str
    aliases: tuple[str, ...]
    param: torch.Tensor
    owners: tuple[type[nn.Module], ...]


def _is_norm(info: ParamInfo) -> bool:
    return any(issubclass(t, NORM_TYPES) or _NORM_CLASS_NAME.search(t.__name__) for t in info.owners)


# The weight-decay presets, by their key in ``no_weight_decay``; each says whether a parameter is exempt.
NO_WEIGHT_DECAY_PRESETS: Mapping[str, Callable[[ParamInfo], bool]] = {
    "bias": lambda info: any(alias.rsplit(".", 1)[-1] == "bias" for alias in info.aliases),
    "norm": _is_norm,
    "embedding": lambda info: any(issubclass(t, EMBEDDING_TYPES) for t in info.owners),
    "ndim_1": lambda info: info.param.ndim <= 1,
}

Globs = str | list[str]


class NoWeightDecay(StrictModel):
    """Which parameters get ``weight_decay: 0`` (``no_weight_decay: true`` takes these defaults).

    Embeddings keep their decay by default, as in timm and GPT-2 training recipes
    (and a tied output head shares its weight with the embedding).
    """

    bias: bool = True
    norm: bool = True
    embedding: bool = False
    ndim_1: bool = True
    model: bool = pydantic.Field(True, description="also the names returned by model.no_weight_decay()")
    names: list[str] = pydantic.Field(default_factory=list, description="globs of parameter names")


class ParamGroupRule(StrictModel):
    """The selectors and settings of one rule; its other keys are optimizer hyperparameters."""

    match: Globs | None = None
    regex: bool = False
    module_type: Globs | None = None
    ndim: int | list[int] | None = None
    name: str | None = None
    lr_scale: Annotated[float, pydantic.Field(ge=0)] | None = None
    schedule: LearningRate | None = None
    layer: Annotated[int, pydantic.Field(ge=0)] | None = None
    frozen: bool = False


class MultiTaskLearningRates(StrictModel):
    """Task towers of a multi-task model, each with its schedule, and the backbone's.

    A parameter belongs to task ``t`` when ``.t.`` is in ``"." + name``; the rest is the backbone.

    Example:
        >>> MultiTaskLearningRates(tower_learning_rates={"ctr": {"constant": 0.1}}).backbone_learning_rate is None
        True
    """

    tower_learning_rates: Annotated[dict[str, LearningRate], pydantic.Field(min_length=1)]
    backbone_learning_rate: LearningRate | None = None


@dataclass(frozen=True)
class _Rule:
    index: int
    path: str
    config: ParamGroupRule
    hyperparameters: dict[str, Any]
    patterns: tuple[Callable[[str], bool], ...]


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


def _glob(pattern: str) -> Callable[[str], bool]:
    """A matcher for a name or any of its leading dotted parts (so ``head`` matches ``head.fc.weight``)."""
    regex = re.compile(fnmatch.translate(pattern))

    def matches(name: str) -> bool:
        parts = name.split(".")
        return any(regex.match(".".join(parts[:k])) for k in range(len(parts), 0, -1))

    return matches


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _patterns(values: Any, regex: bool, path: str) -> tuple[Callable[[str], bool], ...]:
    values = _as_list(values)
    if not values:
        raise ConfigError("needs at least one pattern", path=path)
    matchers = []
    for value in values:
        if regex:
            try:
                matchers.append(re.compile(value).fullmatch)
            except re.error as exc:
                raise ConfigError(f"invalid regex {value!r}: {exc}", path=path) from None
        else:
            matchers.append(_glob(value))
    return tuple(matchers)


def param_infos(model: nn.Module) -> list[ParamInfo]:
    """Every parameter of ``model`` once, in ``named_parameters()`` order, with all its names.

    Example:
        >>> lin = torch.nn.Linear(2, 2)
        >>> [info.name for info in param_infos(torch.nn.ModuleDict({"a": lin, "b": lin}))]
        ['a.weight', 'a.bias']
    """
    found: dict[int, tuple[torch.Tensor, list[str], list[type[nn.Module]]]] = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        for pname, param in module.named_parameters(recurse=False, remove_duplicate=False):
            _, aliases, owners = found.setdefault(id(param), (param, [], []))
            aliases.append(f"{prefix}.{pname}" if prefix else pname)
            if type(module) not in owners:
                owners.append(type(module))
    return [ParamInfo(aliases[0], tuple(aliases), param, tuple(owners)) for param, aliases, owners in found.values()]


def _close_names(value: str, infos: Sequence[ParamInfo], n: int = 3) -> list[str]:
    names = {alias for info in infos for alias in info.aliases}
    modules = {alias.rsplit(".", 1)[0] for alias in names if "." in alias}
    modules |= {segment for name in names for segment in name.split(".") if not segment.isdigit()}
    stripped = re.sub(r"[*?\[\]\\^$]", "", value)
    return difflib.get_close_matches(stripped, sorted(names | modules), n=n, cutoff=0.5)


def _no_match(value: Any, infos: Sequence[ParamInfo], path: str, what: str = "matches no parameter") -> ConfigError:
    message = f"{value!r} {what}"
    close = _close_names(str(value), infos)
    if close:
        message += f"; did you mean {close[0]!r}? Closest names: {', '.join(close)}"
    return ConfigError(message, path=path)


def _effective_defaults(spec: OptimizerSpec) -> dict[str, Any]:
    accepted, _ = spec.entry.hyperparameters()
    defaults = {name: p.default for name, p in accepted.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **spec.hyperparameters}


def _parse_rules(options: Mapping[str, Any], entry: OptimizerEntry, path: str) -> list[_Rule]:
    raw = options.get("param_groups")
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ConfigError(f"expected a list of rules, got {type(raw).__name__} {raw!r}", path=path)
    accepted, takes_any = entry.hyperparameters()
    rules = []
    for index, item in enumerate(raw):
        where = format_path(path, index)
        if not isinstance(item, Mapping):
            raise ConfigError(f"a rule must be a mapping, got {type(item).__name__} {item!r}", path=where)
        own = {key: value for key, value in item.items() if key in ParamGroupRule.model_fields}
        rest = {key: value for key, value in item.items() if key not in own}
        for key in rest:
            if key not in accepted and not takes_any:
                raise unknown_choice(
                    format_path(where, str(key)),
                    key,
                    [*ParamGroupRule.model_fields, *accepted],
                    what=f"key in a param-group rule (neither a rule key nor a {entry.name} hyperparameter)",
                )
        config = parse_model(ParamGroupRule, own, where)
        hyperparameters = check_hyperparameters(entry, rest, where)
        if config.match is None and config.module_type is None and config.ndim is None:
            raise ConfigError("a rule needs a selector: match, module_type or ndim", path=where)
        if config.frozen and (hyperparameters or config.lr_scale is not None or config.schedule is not None):
            raise ConfigError("a frozen rule leaves its parameters out and takes no settings", path=where)
        if config.layer is not None and options.get("layer_decay") is None:
            raise ConfigError("layer is only used with layer_decay, which is not set", path=format_path(where, "layer"))
        patterns = () if config.match is None else _patterns(config.match, config.regex, format_path(where, "match"))
        rules.append(_Rule(index, where, config, hyperparameters, patterns))
    return rules


def _type_names(owners: Iterable[type]) -> set[str]:
    return {klass.__name__ for owner in owners for klass in owner.__mro__}


def _check_module_types(rules: Sequence[_Rule], infos: Sequence[ParamInfo], model: nn.Module) -> None:
    in_model = _type_names(type(m) for m in model.modules())
    known = in_model | {name for name in dir(nn) if isinstance(getattr(nn, name), type)}
    for rule in rules:
        for value in _as_list(rule.config.module_type) if rule.config.module_type is not None else []:
            if not any(ch in value for ch in "*?[") and value not in known:
                raise unknown_choice(
                    format_path(rule.path, "module_type"), value, in_model - {"Module", "object"}, what="module type"
                )


def _rule_matches(rule: _Rule, info: ParamInfo) -> bool:
    config = rule.config
    if rule.patterns and not any(match(alias) for match in rule.patterns for alias in info.aliases):
        return False
    if config.module_type is not None:
        names = _type_names(info.owners)
        if not any(fnmatch.filter(names, value) for value in _as_list(config.module_type)):
            return False
    return config.ndim is None or info.param.ndim in _as_list(config.ndim)


def _rule_matches_nothing(rule: _Rule, infos: Sequence[ParamInfo]) -> ConfigError:
    config = rule.config
    if config.match is not None:
        shown = config.match if isinstance(config.match, str) else ", ".join(config.match)
        extra = "" if config.module_type is None and config.ndim is None else " (with its other selectors)"
        return _no_match(shown, infos, format_path(rule.path, "match"), f"matches no parameter{extra}")
    if config.module_type is not None:
        types = sorted(_type_names(t for info in infos for t in info.owners) - {"Module", "object"})
        return ConfigError(
            f"{config.module_type!r} matches no parameter; module types holding parameters: {', '.join(types)}",
            path=format_path(rule.path, "module_type"),
        )
    ndims = sorted({info.param.ndim for info in infos})
    return ConfigError(
        f"{config.ndim!r} matches no parameter; the model's ndims: {ndims}", path=format_path(rule.path, "ndim")
    )


def _place_rules(rules: Sequence[_Rule], infos: Sequence[ParamInfo]) -> dict[int, _Rule]:
    """The first matching rule of each parameter (by ``id``); a rule that places nothing is an error."""
    placed: dict[int, _Rule] = {}
    for rule in rules:
        matched = [info for info in infos if _rule_matches(rule, info)]
        if not matched:
            raise _rule_matches_nothing(rule, infos)
        fresh = [info for info in matched if id(info.param) not in placed]
        if not fresh:
            earlier = sorted({placed[id(info.param)].path for info in matched})
            raise ConfigError(
                f"matches only parameters already placed by {', '.join(earlier)} (first match wins); "
                "move this rule up or narrow the earlier one",
                path=rule.path,
            )
        for info in fresh:
            placed[id(info.param)] = rule
    return placed


def _no_decay_config(value: Any, spec: OptimizerSpec, defaults: Mapping[str, Any], path: str) -> NoWeightDecay | None:
    if value is None:
        return NoWeightDecay() if spec.entry.decoupled_weight_decay and "weight_decay" in defaults else None
    if value is False:
        return None
    if "weight_decay" not in defaults:
        raise ConfigError(f"{spec.entry.name} has no weight_decay hyperparameter", path=path)
    return NoWeightDecay() if value is True else parse_model(NoWeightDecay, value, path)


def _no_decay_reasons(
    config: NoWeightDecay | None, model: nn.Module, infos: Sequence[ParamInfo], path: str
) -> dict[int, str]:
    """Why each exempt parameter (by ``id``) gets no weight decay."""
    if config is None:
        return {}
    reasons: dict[int, str] = {}
    named: list[tuple[str, str | None]] = [(name, format_path(path, "names", i)) for i, name in enumerate(config.names)]
    from_model = getattr(model, "no_weight_decay", None)
    if config.model and callable(from_model):
        named += [(name, None) for name in from_model()]
    for pattern, where in named:
        matcher = _glob(pattern)
        hits = [info for info in infos if any(matcher(alias) for alias in info.aliases)]
        if not hits and where is not None:
            raise _no_match(pattern, infos, where)
        for info in hits:
            reasons.setdefault(id(info.param), f"no_weight_decay: {pattern}")
    checks = [(key, check) for key, check in NO_WEIGHT_DECAY_PRESETS.items() if getattr(config, key)]
    for info in infos:
        key = next((key for key, check in checks if check(info)), None)
        if key is not None:
            reasons.setdefault(id(info.param), f"no_weight_decay: {key}")
    return reasons


def _block_layers(model: nn.Module, infos: Sequence[ParamInfo]) -> tuple[dict[int, int], int]:
    """Layer id of each parameter (0 = stem, 1..n = blocks, n + 1 = head), and n + 1 (0 without blocks).

    Blocks are the numbered children of the outermost module lists named as in
    :data:`BLOCK_CONTAINERS`, counted in module order; a parameter outside them
    takes the layer of the block before it (the stem before the first, the head after the last).
    """
    prefixes: dict[str, int] = {}
    containers: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(c + ".") for c in containers) or name.rsplit(".", 1)[-1] not in BLOCK_CONTAINERS:
            continue
        children = [child for child, _ in module.named_children()]
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and children and all(c.isdigit() for c in children):
            containers.append(name)
            for child in children:
                prefixes[f"{name}.{child}."] = len(prefixes) + 1
    if not prefixes:
        return {}, 0
    top = len(prefixes) + 1
    layers: dict[int, int] = {}
    current = 0
    for info in infos:
        block = next((i for p, i in prefixes.items() if info.name.startswith(p)), None)
        if block is not None:
            current = block
        elif current == len(prefixes):
            current = top
        layers[id(info.param)] = current
    return layers, top


def _layers(
    decay: Any, model: nn.Module, infos: Sequence[ParamInfo], by_rule: Mapping[int, _Rule], path: str
) -> tuple[float, dict[int, int], int] | None:
    """The decay rate, each parameter's layer id and the top id; ``None`` without layer decay."""
    if decay is None:
        return None
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ConfigError(f"expected a number in (0, 1], got {decay!r}", path=path)
    layers, top = _block_layers(model, infos)
    given = {key: rule.config.layer for key, rule in by_rule.items() if rule.config.layer is not None}
    layers.update(given)
    top = max([top, *given.values()])
    if top == 0:
        raise ConfigError(
            f"found no blocks to decay: no module list named {', '.join(BLOCK_CONTAINERS)} with numbered "
            "children; give each rule's parameters a 'layer:'",
            path=path,
        )
    return float(decay), layers, top


def _towers(document: Mapping[str, Any]) -> MultiTaskLearningRates | None:
    raw = document.get(TOWERS_KEY)
    return None if raw is None else parse_model(MultiTaskLearningRates, raw, TOWERS_KEY)


def _place_towers(towers: MultiTaskLearningRates, infos: Sequence[ParamInfo]) -> dict[int, str]:
    """The task of each tower parameter (by ``id``); a parameter in two towers is an error."""
    placed: dict[int, str] = {}
    for task in towers.tower_learning_rates:
        where = format_path(TOWERS_KEY, "tower_learning_rates", task)
        hits = [info for info in infos if any(f".{task}." in f".{alias}" for alias in info.aliases)]
        if not hits:
            raise _no_match(
                task, infos, where, "matches no parameter (a task's parameters have '.<task>.' in their name)"
            )
        for info in hits:
            if id(info.param) in placed:
                raise ConfigError(
                    f"parameter {info.name!r} (names: {', '.join(info.aliases)}) belongs to towers "
                    f"{placed[id(info.param)]!r} and {task!r}; a parameter may belong to one tower only",
                    path=where,
                )
            placed[id(info.param)] = task
    if towers.backbone_learning_rate is not None and len(placed) == len(infos):
        raise ConfigError(
            "every parameter belongs to a tower: no backbone parameter is left for this schedule",
            path=format_path(TOWERS_KEY, "backbone_learning_rate"),
        )
    return placed


@dataclass(frozen=True)
class _Context:
    """What placing one parameter needs, gathered once per model and config."""

    defaults: dict[str, Any]
    by_rule: dict[int, _Rule]
    exempt: dict[int, str]
    towers: MultiTaskLearningRates | None
    by_tower: dict[int, str]
    layers: tuple[float, dict[int, int], int] | None

    @property
    def base_lr(self) -> float:
        return float(self.defaults.get("lr") or 0.0)


def _context(model: nn.Module, spec: OptimizerSpec, infos: Sequence[ParamInfo]) -> _Context:
    options, path = spec.options, spec.path
    defaults = _effective_defaults(spec)
    rules = _parse_rules(options, spec.entry, format_path(path, "param_groups"))
    _check_module_types(rules, infos, model)
    by_rule = _place_rules(rules, infos)
    no_decay = _no_decay_config(options.get("no_weight_decay"), spec, defaults, format_path(path, "no_weight_decay"))
    exempt = _no_decay_reasons(no_decay, model, infos, format_path(path, "no_weight_decay"))
    towers = _towers(spec.document)
    by_tower = _place_towers(towers, infos) if towers is not None else {}
    layers = _layers(options.get("layer_decay"), model, infos, by_rule, format_path(path, "layer_decay"))
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


def plan_param_groups(model: nn.Module, spec: OptimizerSpec) -> GroupPlan:
    """Place every parameter of ``model`` by the rules, presets, layer decay and towers of ``spec``.

    Raises:
        ConfigError: for a bad rule, a rule or tower that matches no parameter, a
            parameter in two towers, or layer decay with no block to decay.

    Example:
        >>> import torch
        >>> from optforge.builder import resolve_optimizer_spec
        >>> plan = plan_param_groups(torch.nn.Linear(2, 2), resolve_optimizer_spec({"name": "AdamW"}))
        >>> [(p.info.name, p.group, p.reasons) for p in plan.placements]
        [('weight', 'default', []), ('bias', 'no_decay', ['no_weight_decay: bias'])]
    """
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
    asked = any(spec.options.get(key) is not None for key in OPTION_KEYS) or spec.document.get(TOWERS_KEY) is not None
    if not isinstance(model_or_params, nn.Module):
        if asked:
            keys = [key for key in OPTION_KEYS if spec.options.get(key) is not None]
            where = format_path(spec.path, keys[0]) if keys else TOWERS_KEY
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
    from optforge.builder import resolve_optimizer_spec

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
        >>> from optforge.builder import resolve_optimizer_spec
        >>> w, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([{"params": [w], "name": "a", "schedule": {"constant": 0.1}},
        ...                        {"params": [b], "name": "b", "lr": 0.25, "lr_scale": 0.5}], lr=1.0)
        >>> group_schedules(opt, resolve_optimizer_spec({"name": "SGD", "lr": 1.0}))
        {'a': {'constant': 0.1}, 'b': {'constant': 0.5}}
    """
    groups = optimizer.param_groups
    shared = spec.learning_rate if spec.learning_rate is not None else spec.document.get("schedule")
    if shared is not None or not any("schedule" in group or "lr_scale" in group for group in groups):
        return None
    schedules = {}
    for index, group in enumerate(groups):
        scale = float(group.get("lr_scale", 1.0))
        constant = {"constant": float(group["lr"]) / scale if scale > 0 else float(group["lr"])}
        schedules[group.get("name", f"group{index}")] = group.get("schedule", constant)
    return schedules
