"""The training template's rewrites of scheduler arguments, made before building, by scheduler.

The template builds each scheduler for a run of ``num_loop`` epochs (or
iterations) and, by scheduler, fills in or scales some arguments first: a float
milestone is a fraction of the run, a missing ``total_iters`` is the whole run.
Each rule takes the arguments and ``num_loop`` and returns new arguments.

Example:
    >>> TEMPLATE_RULES["multisteplr"]({"milestones": [0.5, 0.75, 150]}, 200)
    {'milestones': [100, 150, 150]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["TEMPLATE_RULES", "apply_template_rules"]

Rule = Callable[[dict[str, Any], int], dict[str, Any]]


def _scaled(value: Any, num_loop: int) -> Any:
    """A float is a fraction of the run: ``round(x * num_loop)``; anything else stays."""
    return round(value * num_loop) if isinstance(value, float) else value


def _fractions_in(name: str) -> Rule:
    def rule(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
        value = args.get(name)
        if isinstance(value, list | tuple):
            return {**args, name: [_scaled(item, num_loop) for item in value]}
        return {**args, name: _scaled(value, num_loop)} if name in args else args

    return rule


def _whole_run(name: str) -> Rule:
    """A missing ``name`` is the whole run; a float is a fraction of it."""

    def rule(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
        return {**args, name: _scaled(args.get(name, 1.0), num_loop)}

    return rule


def _step_size(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
    value = args.get("step_size")
    if isinstance(value, float) and value <= 1:
        return {**args, "step_size": round(value * num_loop)}
    return args


def _missing_total_iters(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
    return args if "total_iters" in args else {**args, "total_iters": num_loop}


def _both(*rules: Rule) -> Rule:
    def rule(args: dict[str, Any], num_loop: int) -> dict[str, Any]:
        for each in rules:
            args = each(args, num_loop)
        return args

    return rule


_NOISE = _fractions_in("noise_range_t")
_TIMM_CYCLES = _both(_whole_run("t_initial"), _NOISE)

# By lower-case registry name. timm's cosine is the template's; poly and tanh share its t_initial.
TEMPLATE_RULES: Mapping[str, Rule] = {
    "multisteplr": _fractions_in("milestones"),
    "steplr": _step_size,
    "linearlr": _missing_total_iters,
    "polynomiallrdecay": _whole_run("max_decay_steps"),
    "timm_cosinelrscheduler": _TIMM_CYCLES,
    "timm_polylrscheduler": _TIMM_CYCLES,
    "timm_tanhlrscheduler": _TIMM_CYCLES,
    "timm_steplrscheduler": _NOISE,
    "timm_multisteplrscheduler": _NOISE,
    "timm_plateaulrscheduler": _NOISE,
}


def apply_template_rules(name: str, args: dict[str, Any], num_loop: int) -> dict[str, Any]:
    """``args`` rewritten by the template's rule for scheduler ``name`` (unchanged when it has none)."""
    rule = TEMPLATE_RULES.get(name.lower())
    return rule(dict(args), num_loop) if rule is not None else dict(args)
