"""Param-group rules: parse them, and find the parameters each selects (first match wins).

A rule selects parameters by ``match`` (globs, or a regex with ``regex: true``),
``module_type``, ``ndim`` and/or ``depthwise`` (held by a depthwise convolution: an
``nn.Conv2d`` with ``in_channels == groups``); its other keys set hyperparameters.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from optforge._validation import parse_model
from optforge.config.rules import ParamGroupRule
from optforge.errors import ConfigError, format_path, unknown_choice
from optforge.hyperparameters import check_hyperparameters
from optforge.param_groups.infos import ParamInfo, no_match_error
from optforge.registry import OptimizerEntry

__all__ = ["Rule", "parse_rules", "place_rules", "rule_matches"]


@dataclass(frozen=True)
class Rule:
    index: int
    path: str
    config: ParamGroupRule
    hyperparameters: dict[str, Any]
    patterns: tuple[Callable[[str], bool], ...]


def glob_pattern(pattern: str) -> Callable[[str], bool]:
    """A matcher for a name or any of its leading dotted parts (so ``head`` matches ``head.fc.weight``)."""
    regex = re.compile(fnmatch.translate(pattern))

    def matches(name: str) -> bool:
        parts = name.split(".")
        return any(regex.match(".".join(parts[:k])) for k in range(len(parts), 0, -1))

    return matches


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def compile_patterns(values: Any, regex: bool, path: str) -> tuple[Callable[[str], bool], ...]:
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
            matchers.append(glob_pattern(value))
    return tuple(matchers)


def parse_rules(options: Mapping[str, Any], entry: OptimizerEntry, path: str) -> list[Rule]:
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
        if config.match is None and config.module_type is None and config.ndim is None and config.depthwise is None:
            raise ConfigError("a rule needs a selector: match, module_type or ndim (or depthwise)", path=where)
        if config.frozen and (hyperparameters or config.lr_scale is not None or config.schedule is not None):
            raise ConfigError("a frozen rule leaves its parameters out and takes no settings", path=where)
        if config.layer is not None and options.get("layer_decay") is None:
            raise ConfigError("layer is only used with layer_decay, which is not set", path=format_path(where, "layer"))
        patterns = (
            () if config.match is None else compile_patterns(config.match, config.regex, format_path(where, "match"))
        )
        rules.append(Rule(index, where, config, hyperparameters, patterns))
    return rules


def _type_names(owners: Iterable[type]) -> set[str]:
    return {klass.__name__ for owner in owners for klass in owner.__mro__}


def check_module_types(rules: Sequence[Rule], infos: Sequence[ParamInfo], model: nn.Module) -> None:
    in_model = _type_names(type(m) for m in model.modules())
    known = in_model | {name for name in dir(nn) if isinstance(getattr(nn, name), type)}
    for rule in rules:
        if rule.config.optional:
            continue  # written for any model: a type this model lacks selects nothing
        for value in _as_list(rule.config.module_type) if rule.config.module_type is not None else []:
            if not any(ch in value for ch in "*?[") and value not in known:
                raise unknown_choice(
                    format_path(rule.path, "module_type"), value, in_model - {"Module", "object"}, what="module type"
                )


def rule_matches(rule: Rule, info: ParamInfo) -> bool:
    config = rule.config
    if rule.patterns and not any(match(alias) for match in rule.patterns for alias in info.aliases):
        return False
    if config.module_type is not None:
        names = _type_names(info.owners)
        if not any(fnmatch.filter(names, value) for value in _as_list(config.module_type)):
            return False
    if config.depthwise is not None and info.depthwise != config.depthwise:
        return False
    return config.ndim is None or info.param.ndim in _as_list(config.ndim)


def rule_matches_nothing(rule: Rule, infos: Sequence[ParamInfo]) -> ConfigError:
    config = rule.config
    if config.match is not None:
        shown = config.match if isinstance(config.match, str) else ", ".join(config.match)
        others = (config.module_type, config.ndim, config.depthwise)
        extra = "" if all(value is None for value in others) else " (with its other selectors)"
        return no_match_error(shown, infos, format_path(rule.path, "match"), f"matches no parameter{extra}")
    if config.module_type is not None:
        types = sorted(_type_names(t for info in infos for t in info.owners) - {"Module", "object"})
        return ConfigError(
            f"{config.module_type!r} matches no parameter; module types holding parameters: {', '.join(types)}",
            path=format_path(rule.path, "module_type"),
        )
    if config.ndim is None:
        return ConfigError(
            f"depthwise: {str(config.depthwise).lower()} matches no parameter",
            path=format_path(rule.path, "depthwise"),
        )
    ndims = sorted({info.param.ndim for info in infos})
    return ConfigError(
        f"{config.ndim!r} matches no parameter; the model's ndims: {ndims}", path=format_path(rule.path, "ndim")
    )


def place_rules(rules: Sequence[Rule], infos: Sequence[ParamInfo]) -> dict[int, Rule]:
    """The first matching rule of each parameter (by ``id``); a rule that places nothing is an error
    (unless it is ``optional``)."""
    placed: dict[int, Rule] = {}
    for rule in rules:
        matched = [info for info in infos if rule_matches(rule, info)]
        if not matched and not rule.config.optional:
            raise rule_matches_nothing(rule, infos)
        fresh = [info for info in matched if id(info.param) not in placed]
        if not fresh and not rule.config.optional:
            earlier = sorted({placed[id(info.param)].path for info in matched})
            raise ConfigError(
                f"matches only parameters already placed by {', '.join(earlier)} (first match wins); "
                "move this rule up or narrow the earlier one",
                path=rule.path,
            )
        for info in fresh:
            placed[id(info.param)] = rule
    return placed
