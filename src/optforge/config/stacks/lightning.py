"""A LightningCLI config file's ``optimizer:``, ``lr_scheduler:`` and clipping, translated into an optforge document.

What ``LightningCLI`` builds when the file gives the sections (its automatic
``configure_optimizers``):

* ``optimizer: {class_path, init_args}``: that class over ``model.parameters()``, one
  group, ``init_args`` its keyword arguments (a class of ``torch.optim`` by its registry
  name, any other class by its import path; a bare class name is a ``torch.optim`` one);
* ``lr_scheduler: {class_path, init_args}``: that scheduler, stepped once per epoch
  (Lightning's default ``interval: epoch``); Lightning's ``ReduceLROnPlateau`` takes the
  metric to watch as ``init_args.monitor``;
* ``trainer.gradient_clip_val`` with ``gradient_clip_algorithm`` (``norm``, the default,
  or ``value``) as ``clip_grad:``.

``trainer.accumulate_grad_batches`` and every other key (``model``, ``data``, the
trainer's other settings) are Lightning's: each is named in a warning.

Example:
    >>> doc = translate({"optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3}},
    ...                  "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR",
    ...                                   "init_args": {"step_size": 10}},
    ...                  "trainer": {"gradient_clip_val": 1.0}}, {}).document
    >>> doc["optimizer"]["name"], doc["schedule"], doc["clip_grad"]
    ('AdamW', {'name': 'StepLR', 'step_size': 10, 'interval': 'epoch'}, {'max_norm': 1.0})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optforge.config.problems import Problems
from optforge.config.stacks.base import Translation, Unexpressed
from optforge.config.stacks.import_paths import optforge_name
from optforge.errors import truncate, unknown_choice

__all__ = ["CLIP_ALGORITHMS", "PLATEAU_PATHS", "SECTION_KEYS", "class_section", "recognises", "translate"]

# The keys of a class section (jsonargparse's).
SECTION_KEYS: tuple[str, ...] = ("class_path", "init_args", "dict_kwargs")
# gradient_clip_algorithm: the clip_grad key of each.
CLIP_ALGORITHMS: Mapping[str, str] = {"norm": "max_norm", "value": "max_value"}
# Lightning's ReduceLROnPlateau, which takes the metric to monitor; a bare name means it too.
PLATEAU_PATHS: tuple[str, ...] = (
    "lightning.pytorch.cli.ReduceLROnPlateau",
    "pytorch_lightning.cli.ReduceLROnPlateau",
    "ReduceLROnPlateau",
)
_TRAINER_KEYS = ("gradient_clip_val", "gradient_clip_algorithm")


def recognises(data: Mapping[str, Any]) -> bool:
    """A LightningCLI file: its ``optimizer`` or ``lr_scheduler`` is a ``{class_path, ...}`` section."""
    return isinstance(data, Mapping) and any(
        isinstance(data.get(key), Mapping) and "class_path" in data[key] for key in ("optimizer", "lr_scheduler")
    )


def class_section(raw: Any, path: str, problems: Problems) -> tuple[str | None, dict[str, Any]]:
    """The class path and keyword arguments of a ``{class_path, init_args}`` section (or a bare class path).

    Example:
        >>> class_section({"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}, "optimizer", Problems())
        ('torch.optim.SGD', {'lr': 0.1})
    """
    if isinstance(raw, str):
        return raw, {}
    if not isinstance(raw, Mapping):
        problems.add(path, f"expected a class path or a mapping with class_path and init_args, got {truncate(raw)}")
        return None, {}
    for key in raw:
        if key not in SECTION_KEYS:
            with problems.collect():
                raise unknown_choice(f"{path}.{key}", key, SECTION_KEYS, what="key of a class section")
    class_path = raw.get("class_path")
    if not isinstance(class_path, str) or not class_path:
        problems.add(f"{path}.class_path", f"expected the class's import path, got {truncate(class_path)}")
        class_path = None
    arguments: dict[str, Any] = {}
    for key in ("init_args", "dict_kwargs"):
        value = raw.get(key) or {}
        if not isinstance(value, Mapping):
            problems.add(f"{path}.{key}", f"expected a mapping of keyword arguments, got {truncate(value)}")
            continue
        arguments.update(value)
    for key in ("params", "optimizer"):
        if key in arguments:
            problems.add(f"{path}.init_args.{key}", f"is not set in the file: LightningCLI passes the {key} itself")
    return class_path, arguments


def _schedule(raw: Any, problems: Problems) -> dict[str, Any] | None:
    path = "lr_scheduler"
    class_path, arguments = class_section(raw, path, problems)
    if class_path is None:
        return None
    schedule: dict[str, Any] = {"name": optforge_name(class_path), **arguments, "interval": "epoch"}
    if class_path in PLATEAU_PATHS:
        monitor = schedule.pop("monitor", None)
        if not isinstance(monitor, str) or not monitor:
            problems.add(f"{path}.init_args.monitor", f"the metric to watch is required, got {truncate(monitor)}")
        schedule["name"], schedule["monitor"] = "ReduceLROnPlateau", monitor
    elif schedule["name"] == "ReduceLROnPlateau":
        problems.add(
            f"{path}.class_path",
            "Lightning steps torch's ReduceLROnPlateau only with a monitor: use "
            "lightning.pytorch.cli.ReduceLROnPlateau with init_args.monitor",
        )
    return schedule


def _clip(trainer: Mapping[str, Any], problems: Problems) -> dict[str, Any] | None:
    value = trainer.get("gradient_clip_val")
    algorithm = trainer.get("gradient_clip_algorithm") or "norm"
    if not isinstance(algorithm, str) or algorithm.lower() not in CLIP_ALGORITHMS:
        with problems.collect():
            raise unknown_choice(
                "trainer.gradient_clip_algorithm", algorithm, CLIP_ALGORITHMS, what="gradient clip algorithm"
            )
        return None
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problems.add("trainer.gradient_clip_val", f"expected a number >= 0, got {truncate(value)}")
        return None
    return {CLIP_ALGORITHMS[algorithm.lower()]: float(value)}


def translate(data: Mapping[str, Any], run: Mapping[str, Any]) -> Translation:
    """The optforge document of a LightningCLI config file (a mapping). ``run`` is not read.

    Raises:
        ConfigError: listing every problem, each at its field path in the file.
    """
    problems, unexpressed = Problems(), []
    document: dict[str, Any] = {}
    if data.get("optimizer") is None:
        problems.add(
            "optimizer",
            "is required: without it LightningCLI calls the model's configure_optimizers, which optforge cannot read",
        )
    else:
        class_path, arguments = class_section(data["optimizer"], "optimizer", problems)
        if class_path is not None:
            document["optimizer"] = {"name": optforge_name(class_path), **arguments, "no_weight_decay": False}
    if data.get("lr_scheduler") is not None:
        schedule = _schedule(data["lr_scheduler"], problems)
        if schedule is not None:
            document["schedule"] = schedule
    trainer = data.get("trainer") or {}
    if not isinstance(trainer, Mapping):
        problems.add("trainer", f"expected a mapping of the Trainer's arguments, got {truncate(trainer)}")
        trainer = {}
    clip = _clip(trainer, problems)
    if clip is not None:
        document["clip_grad"] = clip
    if trainer.get("accumulate_grad_batches", 1) != 1:
        unexpressed.append(
            Unexpressed(
                "trainer.accumulate_grad_batches",
                trainer["accumulate_grad_batches"],
                "Lightning steps the optimizer (and a scheduler with interval: step) once every that many "
                "batches: do so in your loop",
            )
        )
    noted = {item.path for item in unexpressed}
    others = [f"trainer.{key}" for key in trainer if key not in _TRAINER_KEYS and f"trainer.{key}" not in noted]
    others += [str(key) for key in data if key not in ("optimizer", "lr_scheduler", "trainer")]
    if others:
        unexpressed.append(Unexpressed(", ".join(others), None, "not optimizer settings: left to Lightning"))
    problems.raise_if_any()
    return Translation("lightning", document, tuple(unexpressed))
