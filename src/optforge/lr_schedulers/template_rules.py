"""The training template's rewrites of scheduler arguments, made before building, by ``class_name``.

The template builds each scheduler for a run of ``num_loop`` epochs (or
iterations) and first rewrites some arguments, choosing the rule by comparing
``class_name`` with exact strings (:data:`TEMPLATE_RULES`): a float milestone is
a fraction of the run, a missing ``total_iters`` is the whole run... Its rule for
timm's cosine is keyed on ``CosineLRScheduler``, while its own files name that
scheduler ``timm_CosineLRScheduler``: there the rule never fires, so timm reads
fractions written in ``t_initial`` or ``noise_range_t`` as epochs. optforge
builds what the template builds and warns once, with a
:class:`TemplateRuleWarning` that says how to write such a value as an
optforge length (``{fraction: 0.8}``) that does what the file means.

Example:
    >>> TEMPLATE_RULES["MultiStepLR"]({"milestones": [0.5, 0.75, 150]}, 200)
    {'milestones': [100, 150, 150]}
    >>> "multisteplr" in TEMPLATE_RULES, "timm_CosineLRScheduler" in TEMPLATE_RULES
    (False, False)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optforge.errors import format_path

if TYPE_CHECKING:
    from optforge.lr_schedulers.entry import SchedulerEntry

__all__ = [
    "RUN_LENGTH",
    "TEMPLATE_RULES",
    "TRAINER_ARGUMENTS",
    "TemplateRuleWarning",
    "apply_template_rules",
    "warn_notes",
]

Rule = Callable[[dict[str, Any], int], dict[str, Any]]


class TemplateRuleWarning(UserWarning):
    """A template-form section holds a value the template does not read as it looks.

    A fraction that timm reads as epochs, or a length the template replaces by the run's.
    """


def _scaled(value: Any, num_loop: int) -> Any:
    """A float is a fraction of the run: ``round(x * num_loop)``; anything else stays."""
    return round(value * num_loop) if isinstance(value, float) else value


def _fractions_in(name: str) -> Rule:
    """Float entries of the list ``name`` are fractions of the run."""

    def rule(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
        value = args.get(name)
        if isinstance(value, list | tuple):
            return {**args, name: [_scaled(item, num_loop) for item in value]}
        return args

    return rule


def _run_length(name: str) -> Rule:
    """``name`` is the run's length, whatever the file says."""

    def rule(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
        return {**args, name: num_loop}

    return rule


def _step_size(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
    value = args.get("step_size")
    if isinstance(value, float) and value <= 1:
        return {**args, "step_size": round(value * num_loop)}
    return args


def _total_iters(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
    return {**args, "total_iters": num_loop} if args.get("total_iters") is None else args


def _both(*rules: Rule) -> Rule:
    def rule(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
        for each in rules:
            args = each(args, num_loop)
        return args

    return rule


# Arguments the template sets to the run's length whatever the file says, by class_name.
RUN_LENGTH: Mapping[str, str] = {"CosineLRScheduler": "t_initial", "PolynomialLRDecay": "max_decay_steps"}

# By class_name exactly as written; a ChainedScheduler's nested sections get their own rules.
TEMPLATE_RULES: Mapping[str, Rule] = {
    "CosineLRScheduler": _both(_fractions_in("noise_range_t"), _run_length("t_initial")),
    "PolynomialLRDecay": _run_length("max_decay_steps"),
    "MultiStepLR": _fractions_in("milestones"),
    "StepLR": _step_size,
    "LinearLR": _total_iters,
}

# What the template's trainer implies, by registry name: it passes the epoch to step(),
# which sets the cycle lengths of its warm restarts; step() gets the same with these.
TRAINER_ARGUMENTS: Mapping[str, Mapping[str, Any]] = {
    "CosineAnnealingWarmupReduceRestarts": {"cycle_lengths": "epoch"},
}


def _is_fraction(value: Any) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def _epochs(value: float) -> int | float:
    """What timm, comparing whole epochs with it, reads a float bound as."""
    return math.ceil(value) if isinstance(value, float) and math.isfinite(value) else value


def _noise_effect(value: Any) -> str:
    if isinstance(value, list | tuple):
        if len(value) != 2 or not all(isinstance(item, int | float) for item in value):
            return "timm reads it as [first, end) epochs"
        low, high = (_epochs(item) for item in value)
        return "it adds no noise" if low >= high else f"it adds noise in epochs {low} to {high - 1} only"
    return f"it adds noise from epoch {_epochs(value)} on"


def _as_fractions(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_as_fractions(item) for item in value) + "]"
    return f"{{fraction: {value!r}}}" if isinstance(value, float) else repr(value)


def _timm_as_written(args: dict[str, Any], path: str, notes: list[tuple[str, str]]) -> dict[str, Any]:
    """timm's arguments as the template passes them, noting fractions that timm reads as epochs.

    A float ``noise_range_t`` bound ``x`` acts on whole epochs as ``ceil(x)``, which passes the checks.
    """
    t_initial = args.get("t_initial")
    if _is_fraction(t_initial):
        span = "the whole run" if t_initial == 1.0 else "that fraction of the run"
        epochs = f"{t_initial:g} epoch" + ("" if t_initial == 1.0 else "s")
        notes.append(
            (
                format_path(path, "t_initial"),
                f"{t_initial!r} is read by timm as {epochs}, not as a fraction of the run (the template "
                f"sets t_initial only for class_name CosineLRScheduler); for {span} write "
                f"t_initial: {_as_fractions(t_initial)}",
            )
        )
    noise = args.get("noise_range_t")
    items = list(noise) if isinstance(noise, list | tuple) else [noise]
    if not any(isinstance(item, float) for item in items):
        return args
    if any(_is_fraction(item) for item in items):
        notes.append(
            (
                format_path(path, "noise_range_t"),
                f"{noise!r} is read by timm as epochs, not as fractions of the run: {_noise_effect(noise)} (the "
                "template scales noise_range_t only for class_name CosineLRScheduler); for noise over that part "
                f"of the run write noise_range_t: {_as_fractions(noise)}",
            )
        )
    whole = [_epochs(item) for item in items]
    return {**args, "noise_range_t": whole if isinstance(noise, list | tuple) else whole[0]}


def apply_template_rules(
    class_name: str,
    args: Mapping[str, Any],
    num_loop: int | None,
    *,
    entry: SchedulerEntry | None = None,
    path: str = "args",
    name_path: str = "class_name",
    notes: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """``args`` of a template-form section as the template passes them to scheduler ``class_name``.

    Args:
        class_name: The name as written (the template's rules match it exactly).
        args: The section's arguments.
        num_loop: The run's length; ``None`` applies no rule.
        entry: The registry entry ``class_name`` resolves to, for the trainer's
            arguments (:data:`TRAINER_ARGUMENTS`) and timm's.
        path: The config path of ``args``, for notes.
        name_path: The config path of ``class_name``, for notes.
        notes: Where to append ``(path, message)`` for values the template does not
            read as they look (see :func:`warn_notes`).

    Example:
        >>> notes = []
        >>> apply_template_rules("PolynomialLRDecay", {"max_decay_steps": 50}, 200, notes=notes)
        {'max_decay_steps': 200}
        >>> notes[0][0]
        'args.max_decay_steps'
        >>> print(notes[0][1])
        50 is replaced by the run's length, 200: the template sets it whatever the file says
    """
    notes = [] if notes is None else notes
    out = dict(args)
    rule = TEMPLATE_RULES.get(class_name)
    if rule is not None and num_loop is not None:
        out = rule(out, num_loop)
        replaced = RUN_LENGTH.get(class_name)
        if replaced in args and args[replaced] != num_loop:
            notes.append(
                (
                    format_path(path, replaced),
                    f"{args[replaced]!r} is replaced by the run's length, {num_loop}: "
                    "the template sets it whatever the file says",
                )
            )
    elif entry is not None and entry.name in TEMPLATE_RULES and num_loop is not None:
        notes.append(
            (
                name_path,
                f"{class_name!r} is not {entry.name!r}: the template matches class_name exactly, so it rewrites "
                f"no argument here (and its registry has no {class_name!r}); write {entry.name}",
            )
        )
    if rule is None and entry is not None and entry.provider == "timm":
        out = _timm_as_written(out, path, notes)
    if entry is not None:
        out = {**TRAINER_ARGUMENTS.get(entry.name, {}), **out}
    return out


def warn_notes(notes: Sequence[tuple[str, str]], *, stacklevel: int = 2) -> None:
    """One :class:`TemplateRuleWarning` listing every note (none when there is none).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_notes([("epoch_scheduler.args.t_initial", "1.0 is read by timm as 1 epoch")])
        >>> print(caught[0].message)
        the training template reads these scheduler arguments otherwise than they look:
          - epoch_scheduler.args.t_initial: 1.0 is read by timm as 1 epoch
    """
    if not notes:
        return
    lines = [f"  - {path}: {message}" if path else f"  - {message}" for path, message in notes]
    text = "\n".join(["the training template reads these scheduler arguments otherwise than they look:", *lines])
    warnings.warn(text, TemplateRuleWarning, stacklevel=stacklevel + 1)
