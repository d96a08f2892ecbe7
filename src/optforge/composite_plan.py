"""One optimizer over several, from one config: the ``optimizer:`` section as a list of parts.

Each part is a flat (or typed) optimizer section: any registry name with its
hyperparameters, its own ``param_groups`` rules, ``no_weight_decay`` and
``layer_decay``, plus two keys of its own:

- ``params``: which parameters the part takes, in the rule language (``match``
  globs or a regex with ``regex: true``, ``module_type``, ``ndim``; all given
  must hold). The first part whose selector takes a parameter gets it; a part
  without ``params`` takes every parameter no earlier part took.
- ``part``: its name (default: the optimizer's name in lower case), which tags
  its groups (``group["part"]``) and prefixes their names (``muon/default``).

Every trainable parameter lands in exactly one part. The result is a
:class:`~optforge.optimizers.composite.CompositeOptimizer`.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Sequential(torch.nn.Embedding(16, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    >>> opt = optforge.build_optimizer(model, {"optimizer": [
    ...     {"name": "Muon", "lr": 0.02, "params": {"match": "1", "ndim": 2}},
    ...     {"name": "AdamW", "lr": 3e-4, "weight_decay": 0.1},
    ... ]})
    >>> [(g["name"], g["lr"], len(g["params"])) for g in opt.param_groups]
    [('muon/default', 0.02, 1), ('adamw/default', 0.0003, 2), ('adamw/no_decay', 0.0003, 2)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optforge.config import (
    DOCUMENT_KEYS,
    ClosedForm,
    Document,
    OneSchedule,
    Problems,
    parse_document,
    read_schedule_section,
)
from optforge.config.document import TOWERS_KEY
from optforge.config.forms.parts import PartSection, is_part_list
from optforge.config_source import read_config
from optforge.construct import build_from_spec, check_matrix_params, listed_params, matrix_problem
from optforge.errors import ConfigError, format_path, unknown_choice
from optforge.optimizers.composite import CompositeOptimizer
from optforge.param_groups import (
    BLOCK_CONTAINERS,
    OPTION_KEYS,
    GroupPlan,
    ParamInfo,
    Placement,
    Rule,
    check_module_types,
    compile_patterns,
    effective_defaults,
    param_infos,
    plan_param_groups,
    rule_matches,
    rule_matches_nothing,
    uses_rules,
)
from optforge.resolution import OptimizerSpec, resolve_section
from optforge.scheduler import ClosedFormScheduler, build_scheduler

__all__ = [
    "PARTS_PATH",
    "PartPlan",
    "build_composite",
    "build_composite_and_scheduler",
    "check_matrix_params",
    "check_parts",
    "composite_document",
    "composite_group_plan",
    "muon_recipe",
    "plan_composite",
]

# The config path of the list of parts.
PARTS_PATH = "optimizer"


@dataclass
class PartPlan:
    """One part of a composite: its optimizer spec, the parameters it takes and its groups.

    Attributes:
        name: The part's name.
        path: Its config path (``optimizer[0]``).
        spec: Its validated optimizer spec.
        infos: The parameters it takes, in model order.
        selected: Whether its ``params`` selector chose them (else it took the rest).
        groups: Its param-group dicts, named ``<part>/<group>`` (set by :func:`plan_composite`).
        placements: Where each of its parameters went, and why (for :func:`composite_group_plan`).
        defaults: The optimizer's effective defaults.
    """

    name: str
    path: str
    spec: OptimizerSpec
    infos: list[ParamInfo]
    selected: bool = False
    groups: list[dict[str, Any]] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)


def composite_document(config: Any) -> dict[str, Any] | None:
    """The config document when its ``optimizer:`` section is a list of parts, else ``None``.

    A bare list of parts counts as the ``optimizer:`` section of a document.

    Example:
        >>> composite_document([{"name": "SGD", "lr": 0.1}])
        {'optimizer': [{'name': 'SGD', 'lr': 0.1}]}
        >>> composite_document({"name": "SGD"}) is None
        True
    """
    plain = read_config(config)
    if isinstance(plain, (list, tuple)):
        return {"optimizer": list(plain)}
    if not isinstance(plain, Mapping) or not isinstance(plain.get("optimizer"), (list, tuple)):
        return None
    doc = dict(plain)
    unknown = [key for key in doc if key not in DOCUMENT_KEYS]
    if unknown:
        raise unknown_choice(str(unknown[0]), unknown[0], DOCUMENT_KEYS, what="top-level key")
    return {**doc, "optimizer": list(doc["optimizer"])}


def _in_order(problems: Problems, parts: Sequence[Any]) -> list[tuple[str, str]]:
    """The problems in the order of the document: by part (``optimizer[0]`` first) and, within a part, by
    the key they are about; those of the whole list last."""

    def place(problem: tuple[str, str]) -> tuple[int, int]:
        rest = problem[0].removeprefix(PARTS_PATH + "[")
        index, _, key = rest.partition("]")
        if rest == problem[0] or not index.isdigit():
            return 1 << 30, 0
        part = parts[int(index)] if int(index) < len(parts) else None
        keys = [str(name) for name in part] if isinstance(part, Mapping) else []
        first = key.removeprefix(".").split(".", 1)[0].split("[", 1)[0]
        return int(index), keys.index(first) if first in keys else len(keys)

    return sorted(problems.items, key=place)


def _composite(parts: Any, document: Mapping[str, Any] | None, problems: Problems) -> Document:
    """The document of the parts (with the towers of ``document``, which reach every part), parsed."""
    towers = (document or {}).get(TOWERS_KEY)
    data = {"optimizer": parts} if towers is None else {"optimizer": parts, TOWERS_KEY: towers}
    return parse_document(data, problems)


def _resolve_part(part: PartSection, document: Document, problems: Problems) -> OptimizerSpec | None:
    """The part's spec, or ``None`` when its section has problems (noted)."""
    if part.section is None:
        return None
    noted = len(problems.items)
    spec = resolve_section(part.section, document, problems)
    if spec is None or len(problems.items) > noted:
        return None
    # A part with its own schedule (typed form) is outside the towers; the others follow them.
    towers = document.towers if spec.learning_rate is None else None
    shared = {TOWERS_KEY: document.raw[TOWERS_KEY]} if towers is not None else {}
    spec = dataclasses.replace(spec, document=shared, towers=towers, towers_path=TOWERS_KEY, schedule=None)
    _part_problems(spec, part.path, problems)
    return spec


def _part_problems(spec: OptimizerSpec, where: str, problems: Problems) -> None:
    """Note what keeps a valid optimizer config from being a part of a composite."""
    entry, name_path = spec.entry, format_path(where, "name")
    if entry.needs_closure:
        problems.add(
            name_path,
            f"{entry.name} steps with a closure that re-evaluates the loss several times; a composite "
            "evaluates the closure once for all its parts, so it cannot be a part",
        )
    if entry.takes != "params":
        problems.add(
            name_path,
            f"{entry.name} takes the whole model and optimizes all of it, so it cannot be one part of "
            "a composite; use it alone",
        )
    if spec.options.get("zero"):
        problems.add(
            format_path(where, "zero"),
            "a composite part cannot be wrapped in ZeroRedundancyOptimizer; shard with FSDP2 (fully_shard)",
        )


def _selector_rule(part: PartSection) -> Rule:
    """The part's ``params`` selector as a rule that matches parameters."""
    config, where = part.selector, part.selector_path
    assert config is not None
    patterns = () if config.match is None else compile_patterns(config.match, config.regex, format_path(where, "match"))
    return Rule(part.index, where, config, {}, patterns)


def _inputs(model_or_params: Any, path: str) -> tuple[list[ParamInfo], nn.Module | None, bool]:
    """Every parameter once (trainable or not), the model if one was given, and whether names are known."""
    if isinstance(model_or_params, nn.Module):
        return param_infos(model_or_params), model_or_params, True
    items = [model_or_params] if isinstance(model_or_params, torch.Tensor) else list(model_or_params)
    if any(isinstance(item, Mapping) for item in items):
        raise ConfigError(
            "a composite optimizer splits the parameters among its parts itself: pass the model (or its "
            "named_parameters()), not param-group dicts",
            path=path,
        )
    infos: dict[int, ParamInfo] = {}
    named = True
    for index, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, tensor = item
        else:
            name, tensor, named = f"params[{index}]", item, False
        if not isinstance(tensor, torch.Tensor):
            raise ConfigError(f"expected a tensor, got {type(tensor).__name__}", path=f"params[{index}]")
        infos.setdefault(id(tensor), ParamInfo(name, (name,), tensor, ()))
    return list(infos.values()), None, named


def _place(
    rules: list[Rule | None], broken: set[int], trainable: list[ParamInfo], problems: Problems
) -> list[list[ParamInfo]]:
    """The parameters each part takes (first part wins); the problems of the placement are noted.

    Parts whose selector is invalid (``broken``) take nothing, and then no leftover is reported.
    """
    path = PARTS_PATH
    placed: dict[int, int] = {}
    taken: list[list[ParamInfo]] = []
    for index, rule in enumerate(rules):
        where = format_path(path, index, "params")
        if index in broken:
            fresh = []
        elif rule is None:
            fresh = [info for info in trainable if id(info.param) not in placed]
            if not fresh:
                problems.add(
                    where,
                    "this part has no params: selector, so it takes the parameters no earlier "
                    "part took, but none is left; remove it or give it a selector",
                )
        else:
            matched = [info for info in trainable if rule_matches(rule, info)]
            fresh = [info for info in matched if id(info.param) not in placed]
            if not matched:
                err = rule_matches_nothing(rule, trainable)
                problems.add(err.path, f"selects no trainable parameter: {err.problems[0][1]}")
            elif not fresh:
                earlier = sorted({format_path(path, placed[id(info.param)]) for info in matched})
                problems.add(
                    where,
                    f"selects only parameters already taken by {', '.join(earlier)} (the first "
                    "part whose selector takes a parameter gets it); move this part up or narrow the "
                    "earlier one",
                )
        for info in fresh:
            placed[id(info.param)] = index
        taken.append(fresh)
    left = [info for info in trainable if id(info.param) not in placed]
    if left and not broken:
        problems.add(
            path,
            f"{len(left)} trainable parameter(s) are in no part: {listed_params(left)}; end the list "
            "with a part without params: (e.g. {name: AdamW}) to take the rest",
        )
    return taken


def _default_name(spec: OptimizerSpec | None, index: int) -> str:
    return (spec.entry.name.lower() if spec is not None else f"part{index}").replace("/", ".")


def _groups(part: PartPlan, model: nn.Module | None, problems: Problems) -> None:
    """Fill in the part's groups and placements, noting the problems found."""
    spec = part.spec
    taken = {id(info.param) for info in part.infos}
    part.defaults = effective_defaults(spec)
    if model is not None and uses_rules(model, spec):
        plan: GroupPlan = plan_param_groups(model, spec)
        for group in plan.groups:
            params = [p for p in group["params"] if id(p) in taken]
            if params:
                part.groups.append({**group, "params": params})
        part.placements = [p for p in plan.placements if id(p.info.param) in taken]
        reasons = {reason for placement in part.placements for reason in placement.reasons}
        for index, _ in enumerate(spec.options.get("param_groups") or []):
            if f"param_groups[{index}]" not in reasons:
                problems.add(
                    format_path(spec.path, "param_groups", index),
                    "matches no parameter of this part (its matches are in other parts)",
                )
    else:
        if model is None:
            uses_rules([], spec)  # rules match names and module types: a ConfigError without a model
        part.groups = [{"params": [info.param for info in part.infos], "name": "default"}]
        part.placements = [Placement(info, "default") for info in part.infos]
    for placement in part.placements:
        if placement.group is not None:
            placement.group = f"{part.name}/{placement.group}"
    schedule = spec.learning_rate.model_dump(mode="json", exclude_none=True) if spec.learning_rate else None
    for group in part.groups:
        group["name"] = f"{part.name}/{group['name']}"
        if schedule is not None:
            group.setdefault("schedule", schedule)
    if spec.entry.matrix_params_only:
        bad = [info for info in part.infos if info.param.ndim != 2]
        if bad:
            problems.add(*matrix_problem(spec.entry.name, bad, format_path(part.path, "params"), composite=True))


@dataclass
class _Parsed:
    """The parts of a list, read: each spec, selector and name."""

    specs: list[OptimizerSpec | None] = field(default_factory=list)
    rules: list[Rule | None] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    broken: set[int] = field(default_factory=set)  # parts whose selector could not be read


def _parse_parts(
    document: Document, problems: Problems, inputs: tuple[list[ParamInfo], nn.Module | None, bool] | None
) -> _Parsed:
    """Resolve every part; ``inputs`` (the parameters, model, names known) checks the selectors against them."""
    parsed = _Parsed()
    for part in document.parts:
        spec = _resolve_part(part, document, problems)
        rule = None
        if part.broken:
            parsed.broken.add(part.index)
        elif part.selector is not None:
            try:
                rule = _selector_rule(part)
                if inputs is not None:
                    _check_selector(rule, part.path, *inputs)
            except ConfigError as err:
                problems.extend(err)
                parsed.broken.add(part.index)
        parsed.specs.append(spec)
        parsed.rules.append(rule)
        parsed.names.append(part.name or _default_name(spec, part.index))
    # Default names that repeat get their index; names given twice are an error.
    names = parsed.names
    repeated = {name for name in names if names.count(name) > 1}
    for part, name in zip(document.parts, list(names)):
        if name in repeated:
            if part.name is not None:
                problems.add(format_path(part.path, "part"), f"part name {name!r} is used twice")
            else:
                names[part.index] = f"{name}{part.index}"
    return parsed


def _check_selector(rule: Rule, where: str, infos: list[ParamInfo], model: nn.Module | None, named: bool) -> None:
    if rule.config.match is not None and not named:
        raise ConfigError(
            "match needs parameter names: pass the model or model.named_parameters()",
            path=format_path(where, "params", "match"),
        )
    if rule.config.module_type is not None:
        if model is None:
            raise ConfigError(
                "module_type needs the model (an nn.Module)", path=format_path(where, "params", "module_type")
            )
        check_module_types([rule], infos, model)


def _check_list(parts: Any) -> None:
    if not is_part_list(parts) or not parts:
        raise ConfigError(f"expected a non-empty list of optimizer sections, got {parts!r}", path=PARTS_PATH)


def check_parts(parts: Any, *, document: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """The problems of the parts' sections and selectors on their own, without a model (``optforge validate``).

    Example:
        >>> check_parts([{"name": "Muon", "params": {"ndims": 2}}, {"name": "AdamW", "lr": -1}])[0][0]
        'optimizer[0].params.ndims'
    """
    try:
        _check_list(parts)
    except ConfigError as err:
        return err.problems
    problems = Problems()
    _parse_parts(_composite(parts, document, problems), problems, None)
    return _in_order(problems, parts)


def plan_composite(model_or_params: Any, parts: Any, *, document: Mapping[str, Any] | None = None) -> list[PartPlan]:
    """Validate the parts, place every parameter in one, and make each part's groups (nothing is built).

    Raises:
        ConfigError: with every problem found in every part.
    """
    _check_list(parts)
    inputs = _inputs(model_or_params, PARTS_PATH)
    trainable = [info for info in inputs[0] if info.param.requires_grad]
    if not trainable:
        raise ConfigError("no trainable parameters: every parameter has requires_grad=False", path=PARTS_PATH)
    problems = Problems()
    composite = _composite(parts, document, problems)
    parsed = _parse_parts(composite, problems, inputs)
    specs, rules, names, broken = parsed.specs, parsed.rules, parsed.names, parsed.broken
    if composite.towers is not None and all(spec is not None and spec.learning_rate for spec in specs):
        problems.add(TOWERS_KEY, "applies to no part: every part has its own learning_rate")
    taken = _place(rules, broken, trainable, problems)
    if problems:
        raise ConfigError.from_problems(_in_order(problems, parts))
    plans = [
        PartPlan(name, part.path, spec, infos, rule is not None)  # type: ignore[arg-type]
        for part, name, spec, infos, rule in zip(composite.parts, names, specs, taken, rules)
    ]
    for plan in plans:
        with problems.collect():
            _groups(plan, inputs[1], problems)
    if problems:
        raise ConfigError.from_problems(_in_order(problems, parts))
    return plans


def build_composite(
    model_or_params: Any, parts: Any, *, document: Mapping[str, Any] | None = None
) -> CompositeOptimizer:
    """Build one :class:`CompositeOptimizer` from a list of optimizer sections.

    Args:
        model_or_params: The model (needed for ``module_type`` selectors and for the
            parts' rules), or its ``named_parameters()`` (``match`` and ``ndim``
            selectors), or bare tensors (``ndim`` selectors only).
        parts: The list of parts (see the module docs).
        document: The config document the list came from; its
            ``multi_task_learning_rates`` apply to every part without a ``learning_rate``.

    Raises:
        ConfigError: with every problem of every part, before anything is built.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.EmbeddingBag(100, 8), torch.nn.Linear(8, 1))
        >>> opt = build_composite(model, [
        ...     {"name": "SGD", "lr": 0.01, "params": {"module_type": "EmbeddingBag"}},
        ...     {"adam": {"lr": 1e-3}},
        ... ])
        >>> {name: type(part).__name__ for name, part in opt.parts.items()}
        {'sgd': 'SGD', 'adam': 'Adam'}
    """
    plans = plan_composite(model_or_params, parts, document=document)
    built: dict[str, torch.optim.Optimizer] = {}
    problems = Problems()
    for plan in plans:
        # The groups are made: build the part over them as over explicit groups.
        options = {key: value for key, value in plan.spec.options.items() if key not in OPTION_KEYS}
        spec = dataclasses.replace(plan.spec, options=options, document={}, towers=None)
        with problems.collect():
            built[plan.name] = build_from_spec(plan.groups, spec)
    problems.raise_if_any()
    return CompositeOptimizer(built)


def _is_one_schedule(value: Any) -> bool:
    section = read_schedule_section(value)
    return isinstance(section, ClosedForm) and isinstance(section.lr, OneSchedule)


def build_composite_and_scheduler(
    model_or_params: Any,
    document: Mapping[str, Any],
    *,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
) -> tuple[CompositeOptimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The composite of ``document["optimizer"]`` and its :class:`~optforge.ClosedFormScheduler` (``total_steps`` and
    ``steps_per_epoch``: the run's length, as for :func:`optforge.build`).

    A group's own schedule (a rule's ``schedule``, a task tower's, its part's
    ``learning_rate``) comes first; then the document's ``schedule:``, which may
    be keyed by part name (``{lr: {muon: ..., adamw: ...}}``) or group name;
    without one, each group keeps its lr.

    Raises:
        ConfigError: for a bad part or schedule, or one shared ``schedule:`` over
            parts of different lrs (a schedule sets lrs, not multipliers).
    """
    run = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch}
    optimizer = build_composite(model_or_params, document["optimizer"], document=document)
    groups = optimizer.param_groups
    schedule = document.get("schedule")
    if schedule is not None:
        lrs = {
            group["part"]: optimizer.parts[group["part"]].defaults.get("lr")
            for group in groups
            if "schedule" not in group
        }
        if len(set(lrs.values())) > 1 and _is_one_schedule(schedule):
            shown = ", ".join(f"{part} {lr}" for part, lr in lrs.items())
            raise ConfigError(
                f"one schedule sets the same lr in every part, but the parts have different lrs ({shown}); "
                "give one schedule per part, e.g. schedule: {lr: {" + ", ".join(f"{p}: ..." for p in lrs) + "}}",
                path="schedule",
            )
        return optimizer, build_scheduler(optimizer, schedule, path="schedule", **run)
    if any("schedule" in group or "lr_scale" in group for group in groups):
        # Groups without a schedule hold lr / lr_scale: the scheduler multiplies lr_scale back in.
        constant = {
            group["name"]: group.get("schedule")
            or {"constant": float(group["lr"]) / (float(group.get("lr_scale", 1.0)) or 1.0)}
            for group in groups
        }
        return optimizer, ClosedFormScheduler(optimizer, constant, **run)
    return optimizer, build_scheduler(optimizer, None, path="schedule", **run)


def composite_group_plan(model: nn.Module, document: Mapping[str, Any]) -> tuple[GroupPlan, str]:
    """The :class:`~optforge.param_groups.GroupPlan` of a composite config (each parameter's part, group
    and settings, for :func:`optforge.explain`), and a label naming its optimizers."""
    plans = plan_composite(model, document["optimizer"], document=document)
    groups, by_param = [], {}
    for plan in plans:
        for group in plan.groups:
            groups.append({**group, **{key: group.get(key, plan.defaults.get(key)) for key in ("lr", "weight_decay")}})
        why = f"part {plan.name} ({plan.path}.params)" if plan.selected else f"part {plan.name} (the rest)"
        for placement in plan.placements:
            reasons = [why, *placement.reasons]
            by_param[id(placement.info.param)] = Placement(placement.info, placement.group, reasons)
    placements = [
        by_param.get(id(info.param), Placement(info, None, ["requires_grad=False"])) for info in param_infos(model)
    ]
    label = " + ".join(plan.spec.entry.name for plan in plans)
    return GroupPlan(groups, placements, {}), label


def muon_recipe(
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    *,
    hidden: Sequence[str] | None = None,
    momentum: float = 0.95,
    nesterov: bool = True,
    betas: Sequence[float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> list[dict[str, Any]]:
    """The parts of the usual Muon setup: ``torch.optim.Muon`` for hidden matrices, AdamW for the rest.

    Muon takes the 2-D weights inside the hidden layers (the numbered blocks of
    a transformer); the embeddings, the output head and every 1-D parameter
    (biases, norms) go to AdamW. Muon's ``adjust_lr_fn: match_rms_adamw`` scales
    its update to the RMS of AdamW's, so both parts share one ``lr`` and
    ``weight_decay``, and one schedule drives them both.

    Args:
        lr: The lr of both parts.
        weight_decay: The decoupled weight decay of both parts (AdamW's biases
            and norms are exempt, as usual).
        hidden: Globs of the hidden layers' parameter names; default: the numbered
            blocks of module lists named ``blocks``, ``layers``, ``layer`` or ``h``,
            at the top or one level down.
        momentum: Muon's momentum.
        nesterov: Muon's Nesterov momentum.
        betas: AdamW's betas.
        eps: AdamW's eps.

    Returns:
        The list of two parts, for ``{"optimizer": muon_recipe(...)}`` (or to dump to YAML).

    Example:
        >>> import torch, optforge
        >>> class Net(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embed = torch.nn.Embedding(32, 8)
        ...         self.blocks = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(2))
        ...         self.head = torch.nn.Linear(8, 32)
        >>> opt = optforge.build_optimizer(Net(), {"optimizer": optforge.muon_recipe(lr=2e-3)})
        >>> [(g["name"], len(g["params"])) for g in opt.param_groups]
        [('muon/default', 2), ('adamw/default', 2), ('adamw/no_decay', 3)]
    """
    if hidden is None:
        hidden = [f"{prefix}{name}.*" for name in BLOCK_CONTAINERS for prefix in ("", "*.")]
    return [
        {
            "part": "muon",
            "name": "Muon",
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "adjust_lr_fn": "match_rms_adamw",
            "params": {"match": list(hidden), "ndim": 2},
        },
        {"part": "adamw", "name": "AdamW", "lr": lr, "weight_decay": weight_decay, "betas": list(betas), "eps": eps},
    ]
