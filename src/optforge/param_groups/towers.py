"""Task towers of a multi-task model: each parameter's task, by name, and the backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optforge.config.rules import MultiTaskLearningRates, sanitize_task_name
from optforge.errors import ConfigError, format_path
from optforge.param_groups.infos import ParamInfo, no_match_error
from optforge.schedules import LearningRate

__all__ = ["place_towers", "tower_groups"]


def place_towers(towers: MultiTaskLearningRates, infos: Sequence[ParamInfo], path: str) -> dict[int, str]:
    """The task of each tower parameter (by ``id``); a parameter in two towers is an error.

    A parameter belongs to task ``t`` when ``.t.`` or ``.{sanitize_task_name(t)}.`` is in ``"." + name``.
    """
    placed: dict[int, str] = {}
    for task in towers.tower_learning_rates:
        where = format_path(path, "tower_learning_rates", task)
        keys = {f".{task}.", f".{sanitize_task_name(task)}."}
        hits = [info for info in infos if any(key in f".{alias}" for key in keys for alias in info.aliases)]
        if not hits:
            raise no_match_error(
                task,
                infos,
                where,
                "matches no parameter (a task's parameters have '.<task>.' in their name, "
                "or the task with its dots written as '__')",
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
            path=format_path(path, "backbone_learning_rate"),
        )
    return placed


def tower_groups(
    towers: MultiTaskLearningRates, infos: Sequence[ParamInfo], path: str
) -> tuple[list[dict[str, Any]], dict[str, LearningRate]]:
    """The recommender's groups: one per task in config order (named as the config writes it), then ``backbone``.

    Returns the groups (trainable parameters only, no other settings) and the
    schedule of each group by name. Backbone parameters need ``backbone_learning_rate``.

    Example:
        >>> import torch
        >>> from optforge.param_groups.infos import param_infos
        >>> model = torch.nn.ModuleDict({"towers": torch.nn.ModuleDict({"a__b": torch.nn.Linear(2, 1)})})
        >>> towers = MultiTaskLearningRates(tower_learning_rates={"a.b": {"constant": 0.1}})
        >>> groups, schedules = tower_groups(towers, param_infos(model), "multi_task_learning_rates")
        >>> [(g["name"], len(g["params"])) for g in groups], list(schedules)
        ([('a.b', 2)], ['a.b'])
    """
    placed = place_towers(towers, infos, path)
    trainable = [info for info in infos if info.param.requires_grad]
    groups = [
        {"params": [info.param for info in trainable if placed.get(id(info.param)) == task], "name": task}
        for task in towers.tower_learning_rates
    ]
    schedules: dict[str, LearningRate] = dict(towers.tower_learning_rates)
    backbone = [info.param for info in trainable if id(info.param) not in placed]
    if backbone:
        if towers.backbone_learning_rate is None:
            names = [info.name for info in trainable if id(info.param) not in placed]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise ConfigError(
                f"parameters outside every tower ({shown}) form the backbone group, which has no schedule: "
                "set backbone_learning_rate",
                path=path,
            )
        groups.append({"params": backbone, "name": "backbone"})
        schedules["backbone"] = towers.backbone_learning_rate
    return groups, schedules
