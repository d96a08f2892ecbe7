"""Layer decay: scale each block's lr by ``layer_decay ** (blocks above it)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from optforge.errors import ConfigError
from optforge.param_groups.infos import ParamInfo
from optforge.param_groups.selectors import Rule

__all__ = ["BLOCK_CONTAINERS"]


# Names of the module lists whose numbered children are the blocks that layer decay counts.
BLOCK_CONTAINERS: tuple[str, ...] = ("blocks", "layers", "layer", "h")


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


def layer_decay_plan(
    decay: Any, model: nn.Module, infos: Sequence[ParamInfo], by_rule: Mapping[int, Rule], path: str
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
