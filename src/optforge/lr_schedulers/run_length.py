"""The steps of the run a scheduler by name reaches, checked against a known ``total_steps``.

optforge's own schedules refuse a step beyond ``total_steps`` (a decay that
ends after the run, a milestone it never reaches); a scheduler by name is held
to the same rule. Its arguments that name a step of the run are listed by name
in :data:`WITHIN_RUN` (or by the entry's ``within_run``), and where a step is
derived (counted after a warmup, in epochs times steps per epoch) by the
scheduler's :class:`RunSteps` in :data:`RUN_STEPS`. A nested scheduler of a
``SequentialLR`` counts from the milestone that starts it.

Example:
    >>> from optforge.lr_schedulers import get_scheduler_entry
    >>> entry = get_scheduler_entry("MultiStepLR")
    >>> [(reach.parts, reach.step) for reach in run_steps(entry).reached({"milestones": [30, 60], "gamma": 0.1})]
    [(('milestones', 0), 30), (('milestones', 1), 60)]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from optforge.errors import format_path

if TYPE_CHECKING:
    from optforge.lr_schedulers.entry import SchedulerEntry
    from optforge.lr_schedulers.section import SchedulerSpec

__all__ = ["RUN_STEPS", "WITHIN_RUN", "Reach", "RunSteps", "beyond_run", "run_steps"]

# Arguments that name a step of the run, by name: where a decay, a warmup or a first cycle ends, a milestone.
WITHIN_RUN: frozenset[str] = frozenset(
    {
        "T_max",
        "T_0",
        "step_size",
        "milestones",
        "total_iters",
        "step_size_up",
        "t_initial",
        "warmup_t",
        "decay_t",
        "first_cycle_steps",
        "warmup_steps",
        "max_decay_steps",
    }
)


class Reach(NamedTuple):
    """One step of the run a scheduler reaches: where its config says so, the step, and how it is derived."""

    parts: tuple[str | int, ...]  # the argument (and the index in a list) that names it
    step: float
    how: str = ""  # how the step follows from the arguments, when it is not the value as written


def _is_step(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class RunSteps:
    """Which arguments of a scheduler name steps of the run, and how those steps follow from them.

    Attributes:
        steps: Arguments whose value (or each of whose items) is a step.
        warmup: The argument holding a warmup's length; ``after_warmup`` count after it.
        after_warmup: Arguments whose steps count from the end of the warmup.
        prefix: The boolean argument that puts the warmup first, and its default
            (timm's ``warmup_prefix``); ``None``: the warmup always comes first.
        per: An argument every step is multiplied by (OneCycleLR's ``steps_per_epoch``).
        per_unless: A boolean argument (default true) under which ``per`` does not
            apply (timm's factory counts updates only with ``step_on_epochs: false``).
        nested_from: The argument listing where each nested scheduler after the
            first starts (``SequentialLR``'s ``milestones``); nested ones start at 0 without it.
    """

    steps: tuple[str, ...] = ()
    warmup: str | None = None
    after_warmup: tuple[str, ...] = ()
    prefix: tuple[str, bool] | None = None
    per: str | None = None
    per_unless: str | None = None
    nested_from: str | None = None

    def reached(self, arguments: Mapping[str, Any]) -> Iterator[Reach]:
        """Every step of the run the arguments name, from the scheduler's own step 0."""
        scale = arguments.get(self.per) if self.per else None
        if not _is_step(scale) or (self.per_unless and arguments.get(self.per_unless, True)):
            scale = None
        offset = arguments.get(self.warmup) if self.warmup else None
        if not _is_step(offset) or (self.prefix and not arguments.get(*self.prefix)):
            offset = None
        names = (*self.steps, *([self.warmup] if self.warmup else []))
        for name in (*names, *self.after_warmup):
            value = arguments.get(name)
            items = list(enumerate(value)) if isinstance(value, list | tuple) else [(None, value)]
            for index, item in items:
                if not _is_step(item):
                    continue
                parts = (name,) if index is None else (name, index)
                written = f"{name if index is None else f'{name}[{index}]'} {_show(item)}"
                step, how = item, ""
                if offset and name in self.after_warmup:
                    step, how = offset + item, f"{self.warmup} {_show(offset)} + {written}"
                if scale is not None:
                    step, how = step * scale, f"{f'({how})' if how else written} x {self.per} {_show(scale)}"
                yield Reach(parts, step, how)

    def starts(self, arguments: Mapping[str, Any], count: int) -> list[tuple[float, str]]:
        """Where each of ``count`` nested schedulers starts, with the argument that says so."""
        marks = arguments.get(self.nested_from) if self.nested_from else None
        if not isinstance(marks, list | tuple):
            return [(0, "")] * count
        starts = [(0, "")] + [
            (mark if _is_step(mark) else 0, f"{self.nested_from}[{i}]") for i, mark in enumerate(marks)
        ]
        return (starts + [(0, "")] * count)[:count]


_TIMM_CYCLES = RunSteps(warmup="warmup_t", after_warmup=("t_initial",), prefix=("warmup_prefix", False))
_TIMM_STEPS = RunSteps(warmup="warmup_t", after_warmup=("decay_t",), prefix=("warmup_prefix", True))
_TIMM_FACTORY = {"per": "updates_per_epoch", "per_unless": "step_on_epochs", "warmup": "warmup_epochs"}
_TIMM_FACTORY_CYCLES = RunSteps(after_warmup=("num_epochs",), prefix=("warmup_prefix", False), **_TIMM_FACTORY)

# The schedulers whose steps of the run are not (only) their WITHIN_RUN arguments as written, by registry name.
RUN_STEPS: Mapping[str, RunSteps] = {
    "OneCycleLR": RunSteps(steps=("epochs",), per="steps_per_epoch"),  # its own total_steps must be the run's
    "SequentialLR": RunSteps(steps=("milestones",), nested_from="milestones"),
    "timm_CosineLRScheduler": _TIMM_CYCLES,
    "timm_PolyLRScheduler": _TIMM_CYCLES,
    "timm_TanhLRScheduler": _TIMM_CYCLES,
    "timm_WSDLRScheduler": RunSteps(warmup="warmup_t", after_warmup=("t_initial",)),
    "timm_StepLRScheduler": _TIMM_STEPS,
    "timm_MultiStepLRScheduler": _TIMM_STEPS,
    "timm.cosine": _TIMM_FACTORY_CYCLES,
    "timm.tanh": _TIMM_FACTORY_CYCLES,
    "timm.poly": _TIMM_FACTORY_CYCLES,
    "timm.wsd": _TIMM_FACTORY_CYCLES,
    "timm.rsqrt": _TIMM_FACTORY_CYCLES,
    "timm.step": RunSteps(after_warmup=("decay_epochs",), prefix=("warmup_prefix", False), **_TIMM_FACTORY),
    "timm.multistep": RunSteps(after_warmup=("decay_milestones",), prefix=("warmup_prefix", False), **_TIMM_FACTORY),
    "timm.constant": RunSteps(**_TIMM_FACTORY),
    "timm.plateau": RunSteps(**_TIMM_FACTORY),
}


def run_steps(entry: SchedulerEntry) -> RunSteps:
    """The :class:`RunSteps` of a registry entry: its own, else those of :data:`RUN_STEPS`, else by name."""
    if entry.within_run is not None:
        return RunSteps(steps=tuple(entry.within_run))
    if entry.name in RUN_STEPS:
        return RUN_STEPS[entry.name]
    return RunSteps(steps=tuple(name for name in entry.parameters() if name in WITHIN_RUN))


def _message(step: float, total: int, how: str) -> str:
    detail = f" ({how})" if how else ""
    return f"step {_show(step)}{detail} is beyond total_steps ({total}): the run ends before the schedule gets there"


def _reached(spec: SchedulerSpec) -> Iterator[tuple[str, float, float | None, str]]:
    """``(path, step, step within the nested section it comes from or None, how)`` for every step of ``spec``."""
    rule = run_steps(spec.entry)
    for reach in rule.reached(spec.arguments):
        yield format_path(spec.args_path or spec.path, *reach.parts), reach.step, None, reach.how
    warmup = spec.options.get("warmup_steps")  # the section's warmup before a metric-driven scheduler
    if _is_step(warmup):
        yield format_path(spec.path, "warmup_steps"), warmup, None, ""
    for key in spec.entry.nested:
        nested: Sequence[Any] = spec.arguments.get(key) or ()
        for inner, (start, where) in zip(nested, rule.starts(spec.arguments, len(nested))):
            for path, step, _, how in _reached(inner):
                if start:
                    written = how or f"{path.rsplit('.', 1)[-1]} {_show(step)}"
                    how = f"{written} from step {_show(start)}, {where}, where {spec.entry.name} starts it"
                yield path, start + step, step, how


def beyond_run(spec: SchedulerSpec, total_steps: int | None) -> list[tuple[str, str]]:
    """The problems of the steps ``spec`` reaches beyond ``total_steps`` (none when it is not known).

    A step of a nested section that is beyond the run on its own is that
    section's problem (reported when it is checked); here, only those that its
    start puts beyond it.
    """
    if total_steps is None:
        return []
    return [
        (path, _message(step, total_steps, how))
        for path, step, inner, how in _reached(spec)
        if step > total_steps and (inner is None or inner <= total_steps)
    ]
