"""A torchtune recipe config's ``optimizer:``, ``lr_scheduler:`` and clipping, translated into an optforge document.

What torchtune's recipes build from the config:

* ``optimizer: {_component_, ...}``: that class over ``model.parameters()``, one group,
  the other keys its keyword arguments (a class of ``torch.optim`` by its registry
  name, any other class by its import path);
* ``lr_scheduler: {_component_, ...}``: that scheduler, with the recipe's
  ``num_training_steps`` (epochs times optimizer steps per epoch, given by the caller)
  added, stepped once per optimizer step. torchtune's
  ``get_cosine_schedule_with_warmup`` (:data:`COSINE_WITH_WARMUP`) is optforge's
  ``cosine_cycles`` schedule: ``s / max(1, W)`` during the warmup, then
  ``max(0, 0.5 (1 + cos(2 pi num_cycles p)))`` with ``p = (s - W) / max(1, T - W)``;
* ``clip_grad_norm`` as ``clip_grad: {max_norm}`` (``"inf"`` only logs the norm).

``gradient_accumulation_steps``, ``optimizer_in_bwd`` and every other key (the model,
the data, the recipe's settings) are torchtune's: each is named in a warning.

Example:
    >>> doc = translate({"optimizer": {"_component_": "torch.optim.AdamW", "lr": 2e-5},
    ...                  "lr_scheduler": {"_component_": COSINE_WITH_WARMUP[0], "num_warmup_steps": 10},
    ...                  "clip_grad_norm": 1.0}, {"num_training_steps": 100}).document
    >>> doc["optimizer"]["name"], doc["schedule"]["lr"]["cosine_cycles"]["decay_steps"], doc["clip_grad"]
    ('AdamW', 100, {'max_norm': 1.0})
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from optforge.config.problems import Problems
from optforge.config.stacks.base import Translation, Unexpressed
from optforge.config.stacks.import_paths import optforge_name
from optforge.errors import truncate, unknown_choice

__all__ = ["COSINE_ARGUMENTS", "COSINE_WITH_WARMUP", "READ_KEYS", "recognises", "translate"]

# Where torchtune's get_cosine_schedule_with_warmup is imported from.
COSINE_WITH_WARMUP: tuple[str, ...] = (
    "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
    "torchtune.training.get_cosine_schedule_with_warmup",
)
# Its arguments a config sets, with their defaults (... for a required one).
COSINE_ARGUMENTS: Mapping[str, Any] = {"num_warmup_steps": ..., "num_cycles": 0.5}
READ_KEYS: tuple[str, ...] = (
    "optimizer",
    "lr_scheduler",
    "clip_grad_norm",
    "gradient_accumulation_steps",
    "optimizer_in_bwd",
)


def recognises(data: Mapping[str, Any]) -> bool:
    """A torchtune config: its ``optimizer`` or ``lr_scheduler`` is a ``{_component_, ...}`` section."""
    return isinstance(data, Mapping) and any(
        isinstance(data.get(key), Mapping) and "_component_" in data[key] for key in ("optimizer", "lr_scheduler")
    )


def _component(raw: Any, path: str, problems: Problems) -> tuple[str | None, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        problems.add(path, f"expected a mapping with _component_, got {truncate(raw)}")
        return None, {}
    component = raw.get("_component_")
    if not isinstance(component, str) or not component:
        problems.add(
            f"{path}._component_", f"expected the import path of a class or a function, got {truncate(component)}"
        )
        component = None
    arguments = {str(key): value for key, value in raw.items() if key != "_component_"}
    return component, arguments


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _cosine(arguments: Mapping[str, Any], peak: Any, total: int | None, problems: Problems) -> dict[str, Any] | None:
    path = "lr_scheduler"
    for key in arguments:
        if key not in COSINE_ARGUMENTS:
            with problems.collect():
                raise unknown_choice(f"{path}.{key}", key, COSINE_ARGUMENTS, what="argument of the cosine schedule")
    warmup, cycles = arguments.get("num_warmup_steps"), arguments.get("num_cycles", 0.5)
    if not _is_count(warmup):
        problems.add(f"{path}.num_warmup_steps", f"expected a whole number of steps >= 0, got {truncate(warmup)}")
    if isinstance(cycles, bool) or not isinstance(cycles, numbers.Real) or cycles <= 0:
        problems.add(f"{path}.num_cycles", f"expected a number > 0, got {truncate(cycles)}")
    if isinstance(peak, bool) or not isinstance(peak, numbers.Real):
        problems.add("optimizer.lr", f"the schedule's peak: expected a number, got {truncate(peak)}")
    if problems or total is None:
        return None
    # torchtune's progress divides by max(1, T - W).
    body = {"peak_value": float(peak), "warmup_steps": warmup, "decay_steps": max(total, warmup + 1)}
    return {"lr": {"cosine_cycles": {**body, "cycles": float(cycles), "end_value": 0.0}}}


def _schedule(raw: Any, peak: Any, run: Mapping[str, Any], problems: Problems, unexpressed: list[Unexpressed]) -> Any:
    component, arguments = _component(raw, "lr_scheduler", problems)
    if component is None:
        return None
    for key in ("optimizer", "last_epoch"):
        if key in arguments:
            problems.add(f"lr_scheduler.{key}", f"is not set in the config: the recipe passes {key} itself")
    if "num_training_steps" in arguments:
        unexpressed.append(
            Unexpressed(
                "lr_scheduler.num_training_steps",
                arguments.pop("num_training_steps"),
                "the recipe passes its own num_training_steps, which replaces this one",
            )
        )
    total = run.get("num_training_steps")
    if not _is_count(total) or not total:
        problems.add(
            "num_training_steps",
            f"the recipe passes epochs * steps per epoch: give it (total_steps=, --steps N), got {truncate(total)}",
        )
        total = None
    if component in COSINE_WITH_WARMUP:
        return _cosine(arguments, peak, total, problems)
    schedule = {"name": optforge_name(component), **arguments}
    if total is not None:
        schedule["num_training_steps"] = total
    return schedule


def _clip(value: Any, problems: Problems, unexpressed: list[Unexpressed]) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        norm = float(value)
    except (TypeError, ValueError):
        norm = math.nan
    if isinstance(value, bool) or math.isnan(norm) or norm <= 0:
        problems.add("clip_grad_norm", f"expected a number > 0, 'inf' or null, got {truncate(value)}")
        return None
    if math.isinf(norm):
        unexpressed.append(Unexpressed("clip_grad_norm", value, "'inf' only logs the norm; nothing is clipped"))
        return None
    return {"max_norm": norm}


def translate(data: Mapping[str, Any], run: Mapping[str, Any]) -> Translation:
    """The optforge document of a torchtune recipe config (a mapping).

    ``run`` gives ``num_training_steps``, which the recipe adds to the scheduler's arguments.

    Raises:
        ConfigError: listing every problem, each at its field path in the config.
    """
    problems, unexpressed = Problems(), []
    document: dict[str, Any] = {}
    arguments: dict[str, Any] = {}
    if data.get("optimizer") is None:
        problems.add("optimizer", "is required: the recipe builds the optimizer from it")
    else:
        component, arguments = _component(data["optimizer"], "optimizer", problems)
        if "params" in arguments:
            problems.add("optimizer.params", "is not set in the config: the recipe passes model.parameters()")
        if component is not None:
            document["optimizer"] = {"name": optforge_name(component), **arguments, "no_weight_decay": False}
    if data.get("lr_scheduler") is not None:
        schedule = _schedule(data["lr_scheduler"], arguments.get("lr"), run, problems, unexpressed)
        if schedule is not None:
            document["schedule"] = schedule
    clip = _clip(data.get("clip_grad_norm"), problems, unexpressed)
    if clip is not None:
        document["clip_grad"] = clip
    steps = data.get("gradient_accumulation_steps", 1)
    if steps != 1:
        unexpressed.append(
            Unexpressed(
                "gradient_accumulation_steps",
                steps,
                "the recipe steps the optimizer and the scheduler once every that many batches: do so in your loop",
            )
        )
    if data.get("optimizer_in_bwd"):
        unexpressed.append(
            Unexpressed(
                "optimizer_in_bwd",
                data["optimizer_in_bwd"],
                "the recipe steps one optimizer per parameter inside backward; optforge builds one optimizer "
                "with the same settings over every parameter",
            )
        )
    noted = {item.path for item in unexpressed}
    others = [str(key) for key in data if key not in READ_KEYS]
    others += [key for key in ("gradient_accumulation_steps", "optimizer_in_bwd") if key in data and key not in noted]
    if others:
        unexpressed.append(Unexpressed(", ".join(others), None, "not optimizer settings: left to the recipe"))
    problems.raise_if_any()
    return Translation("torchtune", document, tuple(unexpressed))
