"""Weight-decay exclusion presets: biases, norms, 1-D parameters, embeddings and named parameters."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from optforge._validation import parse_model
from optforge.config.rules import NoWeightDecay
from optforge.errors import ConfigError, format_path
from optforge.param_groups.infos import ParamInfo, no_match_error
from optforge.param_groups.selectors import glob_pattern

if TYPE_CHECKING:
    from optforge.resolution import OptimizerSpec

__all__ = ["EMBEDDING_TYPES", "NORM_TYPES", "NO_WEIGHT_DECAY_PRESETS"]


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


def _is_norm(info: ParamInfo) -> bool:
    return any(issubclass(t, NORM_TYPES) or _NORM_CLASS_NAME.search(t.__name__) for t in info.owners)


def _held_by(class_name: str) -> Callable[[ParamInfo], bool]:
    """Whether a parameter is held by a module of class ``class_name`` (or of a subclass)."""
    return lambda info: any(cls.__name__ == class_name for owner in info.owners for cls in owner.__mro__)


def _searched(pattern: str, path: str) -> Callable[[ParamInfo], bool]:
    """Whether ``pattern`` is found in the lower-cased name of a parameter."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"not a regular expression: {exc}", path=path) from None
    return lambda info: any(regex.search(alias.lower()) for alias in info.aliases)


# The weight-decay presets, by their key in ``no_weight_decay``; each says whether a parameter is exempt.
NO_WEIGHT_DECAY_PRESETS: Mapping[str, Callable[[ParamInfo], bool]] = {
    "bias": lambda info: any(alias.rsplit(".", 1)[-1] == "bias" for alias in info.aliases),
    "norm": _is_norm,
    "embedding": lambda info: any(issubclass(t, EMBEDDING_TYPES) for t in info.owners),
    "ndim_1": lambda info: info.param.ndim <= 1,
}


def no_decay_config(value: Any, spec: OptimizerSpec, defaults: Mapping[str, Any], path: str) -> NoWeightDecay | None:
    if value is None:
        return NoWeightDecay() if spec.entry.decoupled_weight_decay and "weight_decay" in defaults else None
    if value is False:
        return None
    if "weight_decay" not in defaults:
        raise ConfigError(f"{spec.entry.name} has no weight_decay hyperparameter", path=path)
    return NoWeightDecay() if value is True else parse_model(NoWeightDecay, value, path)


def no_decay_reasons(
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
        matcher = glob_pattern(pattern)
        hits = [info for info in infos if any(matcher(alias) for alias in info.aliases)]
        if not hits and where is not None:
            raise no_match_error(pattern, infos, where)
        for info in hits:
            reasons.setdefault(id(info.param), f"no_weight_decay: {pattern}")
    checks = [(key, check) for key, check in NO_WEIGHT_DECAY_PRESETS.items() if getattr(config, key)]
    checks += [(f"module_types: {name}", _held_by(name)) for name in config.module_types]
    checks += [
        (f"patterns: {pattern}", _searched(pattern, format_path(path, "patterns", i)))
        for i, pattern in enumerate(config.patterns)
    ]
    for info in infos:
        key = next((key for key, check in checks if check(info)), None)
        if key is not None:
            reasons.setdefault(id(info.param), f"no_weight_decay: {key}")
    return reasons
