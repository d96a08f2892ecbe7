"""Read a scheduler-by-name section, check all of it, and build the scheduler.

Two section forms name a scheduler of the registry:

- flat, like optimizer sections: ``{name: CosineAnnealingLR, T_max: 100}``;
- the training template's: ``{name: a label, class_name: CosineAnnealingLR,
  args: {T_max: 100}, checkpoint: null}`` (``class_name`` names the scheduler;
  without it, ``name`` does).

Both may add the keys of :data:`SECTION_OPTIONS` (``interval``, ``monitor``, a
warmup before a metric-driven scheduler...). ``SequentialLR`` and
``ChainedScheduler`` take a list of nested sections as ``schedulers``.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> sched = build_named_scheduler(opt, {"name": "StepLR", "step_size": {"fraction": 0.5}}, total_steps=10)
    >>> type(sched).__name__, sched.step_size
    ('StepLR', 5)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from optforge.config import (
    TEMPLATE_SCHEDULER_KEYS,
    NamedScheduler,
    Problems,
    TemplateSchedulers,
    read_schedule_section,
)
from optforge.config_source import to_plain
from optforge.errors import ConfigError, ScheduleChangedWarning, format_path, suggest
from optforge.lr_schedulers.arguments import check_arguments, is_length, resolve_lengths
from optforge.lr_schedulers.entry import SchedulerEntry
from optforge.lr_schedulers.plateau import WarmupPlateau
from optforge.lr_schedulers.registry import get_scheduler_entry
from optforge.lr_schedulers.run_length import beyond_run
from optforge.lr_schedulers.template_rules import TEMPLATE_RULES, apply_template_rules, warn_notes
from optforge.ranges import Range
from optforge.state_check import read_state_file

__all__ = [
    "CONTEXT_KEYS",
    "SECTION_OPTIONS",
    "TEMPLATE_DOCUMENT_KEYS",
    "SchedulerSpec",
    "build_from_spec",
    "build_named_scheduler",
    "is_named_section",
    "parse_section",
    "section_options",
]

# Keys a section may hold besides the scheduler's arguments, with what each does.
SECTION_OPTIONS: Mapping[str, str] = {
    "interval": "step or epoch: when a trainer steps the scheduler (read by the Lightning helper; default step)",
    "frequency": "step the scheduler every this many intervals (Lightning; default 1)",
    "monitor": "the logged metric a metric-driven scheduler is stepped with (Lightning)",
    "checkpoint": "a file holding a saved state of this scheduler, loaded after it is built",
    "warmup_steps": "metric-driven schedulers only: a linear warmup over this many steps (see warmup_per) first",
    "warmup_start_factor": "the fraction of the lr the warmup starts from, in [0, 1] (default 0)",
    "warmup_per": "metric (default): every call of step() advances the warmup; step: only step() without a metric",
    "steps_per_epoch": "steps per epoch, for lengths written {epochs: x}",
    "total_steps": "steps of the run, for lengths written {fraction: x}",
}
CONTEXT_KEYS: tuple[str, ...] = ("steps_per_epoch", "total_steps")
TEMPLATE_KEYS: tuple[str, ...] = ("name", "class_name", "args")
TEMPLATE_DOCUMENT_KEYS: tuple[str, ...] = TEMPLATE_SCHEDULER_KEYS


@dataclass(frozen=True)
class SchedulerSpec:
    """A checked scheduler section, ready to build.

    Attributes:
        entry: The registry entry.
        arguments: Checked arguments; nested sections are lists of specs.
        path: The config path of the section.
        options: The section's :data:`SECTION_OPTIONS` values.
        args_path: The config path of the mapping holding the arguments (``path``
            in the flat form, ``path.args`` in the template's).
    """

    entry: SchedulerEntry
    arguments: dict[str, Any]
    path: str
    options: dict[str, Any] = field(default_factory=dict)
    args_path: str = ""


def is_named_section(section: Any) -> bool:
    """True for a section that names a scheduler (or holds the template's two), rather than a schedule.

    Example:
        >>> is_named_section({"name": "StepLR", "step_size": 10}), is_named_section({"constant": 0.1})
        (True, False)
    """
    section = to_plain(section) if type(section).__module__.startswith("omegaconf") else section
    return isinstance(read_schedule_section(section), NamedScheduler | TemplateSchedulers)


def _positive(name: str, value: Any, path: str, problems: Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.add(format_path(path, name), f"{name} must be a positive integer, got {value!r}")
        return None
    return value


def _merge_context(
    given: Mapping[str, int | None], section: Mapping[str, Any], path: str, problems: Problems
) -> dict[str, int | None]:
    context = dict(given)
    for name in CONTEXT_KEYS:
        value = _positive(name, section.get(name), path, problems)
        if value is None:
            continue
        if context.get(name) is not None and context[name] != value:
            problems.add(format_path(path, name), f"{name} is {value} here but {context[name]} for the run")
            continue
        context[name] = value
    return context


def _split(
    section: Mapping[str, Any], path: str, problems: Problems
) -> tuple[str, str, dict[str, Any], str, dict[str, Any]] | None:
    """(scheduler name, its path, arguments, their path, options) of either section form."""
    if "class_name" in section or "args" in section:
        key = "class_name" if "class_name" in section else "name"
        args = section.get("args") or {}
        args_path = format_path(path, "args")
        if not isinstance(args, Mapping):
            problems.add(args_path, f"expected a mapping of arguments or null, got {type(args).__name__}")
            return None
        options = {}
        for item in section:
            if item in TEMPLATE_KEYS:
                continue
            if item in SECTION_OPTIONS:
                options[item] = section[item]
            else:
                valid = [*TEMPLATE_KEYS, *SECTION_OPTIONS]
                close = suggest(str(item), valid)
                hint = f"; did you mean {close[0]!r}?" if close else "."
                problems.add(
                    format_path(path, str(item)),
                    f"unknown key{hint} Valid keys: {', '.join(valid)}; the scheduler's arguments go under args",
                )
        return section[key], format_path(path, key), dict(args), args_path, options
    args = {key: value for key, value in section.items() if key != "name"}
    return section["name"], format_path(path, "name"), args, path, {}


def parse_section(
    section: Any,
    path: str,
    context: Mapping[str, int | None],
    problems: Problems,
    *,
    num_loop: int | None = None,
    notes: list[tuple[str, str]] | None = None,
) -> SchedulerSpec | None:
    """Check a section (and its nested ones), noting every problem in ``problems``.

    Args:
        section: A flat or template section.
        path: Its config path.
        context: ``{"steps_per_epoch": ..., "total_steps": ...}`` of the run.
        problems: Where problems are noted.
        num_loop: The run's length for the training template's rewrites
            (:mod:`~optforge.lr_schedulers.template_rules`); template sections use
            ``total_steps`` when it is not given.
        notes: Where the template's rewrites note values it does not read as they
            look (:func:`~optforge.lr_schedulers.template_rules.warn_notes` warns of them).

    Returns:
        The spec, or ``None`` when a problem stops the check early.
    """
    section = to_plain(section)
    if not isinstance(section, Mapping):
        problems.add(path, f"expected a scheduler section (a mapping with a name), got {type(section).__name__}")
        return None
    parts = _split(section, path, problems)
    if parts is None:
        return None
    name, name_path, args, args_path, options = parts
    template = "class_name" in section or "args" in section
    try:
        entry = get_scheduler_entry(name, path=name_path)
    except ConfigError as error:
        for problem in _unknown_name(name, name_path, error):
            problems.add(*problem)
        return None
    parameters = entry.parameters()
    if not template:  # in a flat section, keys that are not arguments may be options
        for key in list(args):
            if key in SECTION_OPTIONS and key not in parameters:
                options[key] = args.pop(key)
    # The run's length may come from the section; an argument of that name (OneCycleLR's) counts when it is a number.
    given = {k: args[k] for k in CONTEXT_KEYS if isinstance(args.get(k), int) and not isinstance(args[k], bool)}
    context = _merge_context(context, {**options, **given}, path, problems)
    for key in CONTEXT_KEYS:
        options.pop(key, None)
    in_template = template or num_loop is not None
    if num_loop is None and template:
        num_loop = context.get("total_steps")
    if in_template:
        args = apply_template_rules(name, args, num_loop, entry=entry, path=args_path, name_path=name_path, notes=notes)
    values = {**entry.defaults, **args}
    nested: dict[str, list[SchedulerSpec]] = {}
    for key in entry.nested:
        if key not in values:
            continue
        where = format_path(args_path, key)
        items = values[key]
        if not isinstance(items, list | tuple) or not items:
            problems.add(where, f"expected a list of scheduler sections, got {items!r}")
            continue
        specs = [
            parse_section(item, format_path(where, i), context, problems, num_loop=num_loop, notes=notes)
            for i, item in enumerate(items)
        ]
        nested[key] = [spec for spec in specs if spec is not None]
    checked = check_arguments(entry, values, args_path, context, problems=problems, skip=tuple(entry.nested))
    checked.update(nested)
    options = _check_options(entry, options, path, context, problems)
    spec = SchedulerSpec(entry, checked, path, options, args_path)
    for problem in beyond_run(spec, context.get("total_steps")):
        problems.add(*problem)
    return spec


def _unknown_name(name: Any, name_path: str, error: ConfigError) -> list[tuple[str, str]]:
    """The problems of an unknown name; for one of timm's classes written without its prefix, its name."""
    if not isinstance(name, str) or name.lower().startswith("timm"):
        return error.problems
    try:
        timm_entry = get_scheduler_entry(f"timm_{name}", path=name_path)
    except ConfigError:  # not timm's either, or timm is not installed
        return error.problems
    message = f"unknown scheduler {name!r}; timm's {name} is registered as {timm_entry.name!r}, as in the template"
    if name in TEMPLATE_RULES:
        message += f" (whose rewrite of arguments keyed on {name!r} does not apply to {timm_entry.name!r})"
    return [(name_path, message)]


def _check_options(
    entry: SchedulerEntry,
    options: dict[str, Any],
    path: str,
    context: Mapping[str, int | None],
    problems: Problems,
) -> dict[str, Any]:
    out = dict(options)
    where = {key: format_path(path, key) for key in options}
    if out.get("interval", "step") not in ("step", "epoch"):
        problems.add(where["interval"], f"expected step or epoch, got {out['interval']!r}")
    frequency = out.get("frequency", 1)
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
        problems.add(where["frequency"], f"expected a whole number >= 1, got {frequency!r}")
    if "monitor" in out and not isinstance(out["monitor"], str):
        problems.add(where["monitor"], f"expected the name of a logged metric, got {out['monitor']!r}")
    checkpoint = out.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, str | os.PathLike):
        problems.add(where["checkpoint"], f"expected a file path or null, got {checkpoint!r}")
    if "warmup_steps" in out or "warmup_start_factor" in out or "warmup_per" in out:
        if not entry.metric:
            key = next(key for key in ("warmup_steps", "warmup_start_factor", "warmup_per") if key in out)
            problems.add(
                where[key],
                f"a warmup section key is for metric-driven schedulers; for {entry.name}, put a "
                "LinearLR before it in a SequentialLR",
            )
            return out
        steps = out.get("warmup_steps")
        try:
            steps = steps if not is_length(steps) else resolve_lengths(steps, context, where["warmup_steps"])
        except ConfigError as error:
            problems.extend(error)
            return out
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            problems.add(
                format_path(path, "warmup_steps"), f"expected a whole number >= 1 (or a length), got {steps!r}"
            )
        out["warmup_steps"] = steps
        factor, unit = out.get("warmup_start_factor", 0.0), Range(0, 1, high_open=False)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or unit.outside(factor):
            problems.add(format_path(path, "warmup_start_factor"), f"must be {unit.text()}, got {factor!r}")
        if out.get("warmup_per", "metric") not in ("step", "metric"):
            problems.add(where["warmup_per"], f"expected step or metric, got {out['warmup_per']!r}")
    return out


def build_from_spec(optimizer: torch.optim.Optimizer, spec: SchedulerSpec) -> Any:
    """Build a checked spec (nested schedulers first, in order) on ``optimizer``."""
    arguments = {
        key: [build_from_spec(optimizer, item) for item in value] if key in spec.entry.nested else value
        for key, value in spec.arguments.items()
    }
    try:
        scheduler = spec.entry.create(optimizer, **arguments)
    except (ValueError, TypeError, AssertionError, KeyError, ZeroDivisionError) as exc:
        raise ConfigError(f"{spec.entry.name} rejected the config: {exc}", path=spec.path) from exc
    if spec.options.get("warmup_steps"):
        scheduler = WarmupPlateau(
            optimizer,
            scheduler,
            spec.options["warmup_steps"],
            float(spec.options.get("warmup_start_factor", 0.0)),
            warmup_per=spec.options.get("warmup_per", "metric"),
        )
    if spec.options.get("checkpoint") is not None:
        load_checkpoint(scheduler, spec.options["checkpoint"], format_path(spec.path, "checkpoint"), spec.arguments)
    return scheduler


def load_checkpoint(scheduler: Any, file: str | os.PathLike[str], path: str, arguments: Mapping[str, Any]) -> None:
    """Load a saved state into ``scheduler``; warn where it replaces a configured argument.

    Raises:
        ConfigError: when the file is missing, unreadable, or the state of another scheduler.
    """

    state = read_state_file(file, path, "scheduler")
    fresh = scheduler.state_dict()
    missing = sorted(set(fresh) - set(state) - set(getattr(scheduler, "added_state", ())))
    unexpected = sorted(set(state) - set(fresh))
    if missing or unexpected:
        raise ConfigError(
            f"{str(file)!r} is not a state of {type(scheduler).__name__}: missing keys {missing}, "
            f"unexpected keys {unexpected}",
            path=path,
        )
    changed = [key for key in arguments if key in state and _differs(state[key], fresh[key])]
    if changed:
        details = ", ".join(f"{key}={state[key]!r} (configured {fresh[key]!r})" for key in changed)
        warnings.warn(f"{path}: the saved state replaces {details}", ScheduleChangedWarning, stacklevel=3)
    try:
        scheduler.load_state_dict(state)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"cannot load {str(file)!r} into {type(scheduler).__name__}: {exc}", path=path) from None


def _differs(saved: Any, current: Any) -> bool:
    try:
        return bool(saved != current)
    except Exception:
        return False


def section_options(section: Any) -> dict[str, Any]:
    """What a trainer needs to know of a by-name section: its ``interval``, ``frequency``, ``monitor``
    (when set) and ``metric`` (whether ``step()`` needs a metric); ``{}`` for any other section.

    Example:
        >>> section_options({"name": "ReduceLROnPlateau", "interval": "epoch", "monitor": "val_loss"})
        {'interval': 'epoch', 'monitor': 'val_loss', 'metric': True}
    """
    if not is_named_section(section):
        return {}
    spec = parse_section(section, "schedule", {}, Problems())
    if spec is None:
        return {}
    wanted = {key: value for key, value in spec.options.items() if key in ("interval", "frequency", "monitor")}
    return {**wanted, "metric": spec.entry.metric}


def build_named_scheduler(
    optimizer: torch.optim.Optimizer,
    section: Any,
    *,
    path: str = "schedule",
    steps_per_epoch: int | None = None,
    total_steps: int | None = None,
) -> Any:
    """Build the scheduler a by-name section describes, after checking all of it.

    Args:
        optimizer: The optimizer to schedule.
        section: A flat or template section (see the module docstring).
        path: Its config path, for messages.
        steps_per_epoch: Steps per epoch, for lengths written ``{epochs: x}``.
        total_steps: Steps of the run, for ``{fraction: x}`` and the template's rewrites.

    Raises:
        ConfigError: with every problem of the section and its nested ones.
    """
    section = to_plain(section)
    if isinstance(section, Mapping) and section and all(key in TEMPLATE_DOCUMENT_KEYS for key in section):
        raise ConfigError(
            "epoch_scheduler and iter_scheduler are two schedulers: build them with "
            "optforge.lr_schedulers.build_template_schedulers(cfg, optimizer, epoch, max_iter)",
            path=path,
        )
    problems = Problems()
    context = {
        "steps_per_epoch": _positive("steps_per_epoch", steps_per_epoch, path, problems),
        "total_steps": _positive("total_steps", total_steps, path, problems),
    }
    notes: list[tuple[str, str]] = []
    spec = parse_section(section, path, context, problems, notes=notes)
    warn_notes(notes, stacklevel=2)
    problems.raise_if_any()
    assert spec is not None  # a section that is not parsed has problems
    return build_from_spec(optimizer, spec)
