"""The parameters of a model as the rules see them: each once, with every name that reaches it.

Example:
    >>> lin = torch.nn.Linear(2, 2)
    >>> [info.name for info in param_infos(torch.nn.ModuleDict({"a": lin, "b": lin}))]
    ['a.weight', 'a.bias']
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optforge.errors import ConfigError

__all__ = ["ParamInfo", "is_depthwise_conv", "param_infos"]


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a model: its names (tied parameters have several) and owners.

    Attributes:
        name: The name ``named_parameters()`` gives it (the first of ``aliases``).
        aliases: Every dotted name that reaches it.
        param: The parameter.
        owners: The types of the modules that hold it directly.
        depthwise: A module holding it directly is a depthwise convolution (an
            ``nn.Conv2d`` with ``in_channels == groups``).
    """

    name: str
    aliases: tuple[str, ...]
    param: torch.Tensor
    owners: tuple[type[nn.Module], ...]
    depthwise: bool = False


def is_depthwise_conv(module: nn.Module) -> bool:
    """Whether ``module`` is a depthwise convolution: an ``nn.Conv2d`` with ``in_channels == groups``.

    Example:
        >>> is_depthwise_conv(torch.nn.Conv2d(4, 8, 3, groups=4)), is_depthwise_conv(torch.nn.Conv2d(4, 4, 3))
        (True, False)
    """
    return isinstance(module, nn.Conv2d) and module.in_channels == module.groups


def param_infos(model: nn.Module) -> list[ParamInfo]:
    """Every parameter of ``model`` once, in ``named_parameters()`` order, with all its names.

    Example:
        >>> lin = torch.nn.Linear(2, 2)
        >>> [info.name for info in param_infos(torch.nn.ModuleDict({"a": lin, "b": lin}))]
        ['a.weight', 'a.bias']
    """
    found: dict[int, tuple[torch.Tensor, list[str], list[type[nn.Module]]]] = {}
    depthwise: set[int] = set()
    for prefix, module in model.named_modules(remove_duplicate=False):
        for pname, param in module.named_parameters(recurse=False, remove_duplicate=False):
            _, aliases, owners = found.setdefault(id(param), (param, [], []))
            aliases.append(f"{prefix}.{pname}" if prefix else pname)
            if type(module) not in owners:
                owners.append(type(module))
            if is_depthwise_conv(module):
                depthwise.add(id(param))
    return [
        ParamInfo(aliases[0], tuple(aliases), param, tuple(owners), id(param) in depthwise)
        for param, aliases, owners in found.values()
    ]


def _close_names(value: str, infos: Sequence[ParamInfo], n: int = 3) -> list[str]:
    names = {alias for info in infos for alias in info.aliases}
    modules = {alias.rsplit(".", 1)[0] for alias in names if "." in alias}
    modules |= {segment for name in names for segment in name.split(".") if not segment.isdigit()}
    stripped = re.sub(r"[*?\[\]\\^$]", "", value)
    return difflib.get_close_matches(stripped, sorted(names | modules), n=n, cutoff=0.5)


def no_match_error(
    value: Any, infos: Sequence[ParamInfo], path: str, what: str = "matches no parameter"
) -> ConfigError:
    message = f"{value!r} {what}"
    close = _close_names(str(value), infos)
    if close:
        message += f"; did you mean {close[0]!r}? Closest names: {', '.join(close)}"
    return ConfigError(message, path=path)
