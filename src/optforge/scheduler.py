"""``ClosedFormScheduler``: a torch ``LRScheduler`` that sets each group's lr from a schedule config.

The lr of a param group at step ``t`` is ``compute_lr(schedule, t) * lr_scale``,
in closed form: nothing accumulates, so a resumed run gets exactly the values of
an uninterrupted one. Other hyperparameters (``momentum``, ``beta1``, ``beta2``,
``weight_decay``) can be scheduled the same way. ``LRShim`` is the same class, under the
name the training code optforge grew from imports.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = torch.optim.SGD([w], lr=0.1)
    >>> ramp = {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 4}}
    >>> sched = ClosedFormScheduler(opt, {"ALL_PARAMS": ramp})
    >>> opt.param_groups[0]["lr"]
    0.0
    >>> for _ in range(2):
    ...     opt.step()
    ...     sched.step()
    >>> sched.get_last_lr(), sched.state_dict()["step"]
    ([0.05], 2)
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch.optim.lr_scheduler import LRScheduler

from optforge.around_step import scheduler_advances
from optforge.config import (
    SCHEDULE_KEYS,
    ClosedForm,
    NamedScheduler,
    OneSchedule,
    TemplateSchedulers,
    is_one_schedule,
    read_schedule_section,
)
from optforge.config_source import to_plain
from optforge.errors import ConfigError, ScheduleChangedWarning, format_path, suggest, truncate, unknown_choice
from optforge.lr_schedulers import is_metric_driven, trace_steps
from optforge.lr_schedulers.section import build_named_scheduler
from optforge.ranges import RANGES, value_problems
from optforge.schedules import MAX_STEP, LearningRate, Schedule, make_schedule, resolve_schedule
from optforge.torch_internals import CLOSED_FORM_METHOD

__all__ = [
    "HYPERPARAMETERS",
    "SCHEDULE_KEYS",
    "ClosedFormScheduler",
    "LRShim",
    "ScheduleChangedWarning",
    "build_scheduler",
    "scheduler_trace",
]


def _set_value(group: dict[str, Any], key: str, value: float) -> None:
    """Set ``group[key]``, in place when it is a tensor (fused or capturable optimizers)."""
    current = group.get(key)
    if isinstance(current, torch.Tensor):
        current.fill_(value)
    else:
        group[key] = value


def _set_beta(index: int) -> Callable[[dict[str, Any], float], None]:
    def setter(group: dict[str, Any], value: float) -> None:
        betas = group["betas"]
        if isinstance(betas[index], torch.Tensor):
            betas[index].fill_(value)
        else:
            group["betas"] = tuple(value if i == index else beta for i, beta in enumerate(betas))

    return setter


class Hyperparameter(NamedTuple):
    """How to set a scheduled hyperparameter in a param group."""

    group_key: str  # the key the group must have
    setter: Callable[[dict[str, Any], float], None]
    hint: str = ""


# Hyperparameters other than lr that a schedule document may schedule.
HYPERPARAMETERS: Mapping[str, Hyperparameter] = {
    "momentum": Hyperparameter(
        "momentum", lambda g, v: _set_value(g, "momentum", v), "optimizers with betas schedule beta1"
    ),
    "beta1": Hyperparameter("betas", _set_beta(0), "optimizers with a momentum schedule momentum"),
    "beta2": Hyperparameter("betas", _set_beta(1)),
    "weight_decay": Hyperparameter("weight_decay", lambda g, v: _set_value(g, "weight_decay", v)),
}


def group_labels(param_groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each group's ``"name"``, or ``"group<i>"`` for a group without one."""
    return [str(group["name"]) if "name" in group else f"group{index}" for index, group in enumerate(param_groups)]


def match_groups(
    param_groups: Sequence[Mapping[str, Any]],
    mapping: Mapping[str, Any],
    *,
    path: str,
    what: str,
    required: Sequence[bool],
) -> list[Any]:
    """The entry of ``mapping`` for each group (``None`` where there is none).

    When no group has a ``"name"``, entries match groups by order and there must
    be one per group. Otherwise they match by label (:func:`group_labels`), and
    every group marked ``required`` needs one; in a composite optimizer, an entry
    keyed by a part's name stands for each of that part's groups.

    Raises:
        ConfigError: for a count mismatch, an unknown name or a missing group.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"expected a mapping of param groups to {what}s, got {type(mapping).__name__}", path=path)
    keys = list(mapping)
    if not any("name" in group for group in param_groups):
        if len(keys) != len(param_groups):
            raise ConfigError(
                f"{len(keys)} {what}s ({', '.join(map(str, keys))}) for {len(param_groups)} param groups; "
                "the groups have no 'name', so entries match them by order: give one per group",
                path=path,
            )
        return [mapping[key] for key in keys]
    labels = group_labels(param_groups)
    mapping = _by_part(param_groups, mapping, labels)
    keys = list(mapping)
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"param group names must be unique to match {what}s; repeated: {repeated}", path=path)
    for key in keys:
        if key not in labels:
            raise unknown_choice(format_path(path, str(key)), key, labels, what="param group name")
    missing = [label for label, needed in zip(labels, required) if needed and label not in mapping]
    if missing:
        raise ConfigError(f"no {what} for param group(s) {', '.join(missing)}; groups: {', '.join(labels)}", path=path)
    return [mapping.get(label) for label in labels]


def _by_part(
    param_groups: Sequence[Mapping[str, Any]], mapping: Mapping[str, Any], labels: list[str]
) -> Mapping[str, Any]:
    """Entries keyed by the part of a composite optimizer (``group["part"]``) stand for each of its groups."""
    parts = {group["part"] for group in param_groups if "part" in group}
    if not any(key in parts and key not in labels for key in mapping):
        return mapping
    expanded = {key: value for key, value in mapping.items() if key in labels or key not in parts}
    for label, group in zip(labels, param_groups):
        if label not in expanded and group.get("part") in mapping:
            expanded[label] = mapping[group["part"]]
    return expanded


def _fingerprint(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _own_lr(group: Mapping[str, Any]) -> dict[str, float]:
    """A group's own lr, held constant (the schedule of a group when there is no schedule section)."""
    return {"constant": _as_float(group.get("initial_lr", group["lr"]))}


class _GroupSchedules(NamedTuple):
    """What the scheduler sets in one param group."""

    label: str
    lr: Schedule
    lr_scale: float
    hyperparameters: list[tuple[str, Schedule]]  # (name in HYPERPARAMETERS, schedule)
    fingerprint: str


class ClosedFormScheduler(LRScheduler):
    """Set each param group's lr (and optionally other hyperparameters) from schedule configs.

    Args:
        optimizer: Any torch optimizer.
        lr_dict: One schedule per param group (a :class:`~optforge.LearningRate`
            or a mapping of its shape), keyed by group ``"name"``; when the groups
            have no names, keys are labels matched by order. A group's own
            ``"schedule"`` entry takes precedence over its entry here, and its
            ``"lr_scale"`` (default 1) multiplies the scheduled lr.
        hyperparameters: Optional ``{name: {group: schedule}}`` for other
            hyperparameters (names in :data:`HYPERPARAMETERS`); groups left out
            keep their value. ``beta1`` sets ``betas[0]`` and keeps ``betas[1]``.
        defaults: Optional ``{"lr" or a hyperparameter name: schedule}`` for
            groups added later that have no entry of their own; a callable here
            is given the new group and returns its schedule.
        steps_per_epoch: Steps per epoch, for schedule lengths given in epochs.
        total_steps: Steps of the run, for lengths given as fractions.
        paths: Config paths of ``"lr"`` and of each hyperparameter, for messages.

    A group added with ``optimizer.add_param_group`` gets its own ``"schedule"``,
    else the entry of its part (composite optimizers), else the ``defaults``;
    without any, adding it raises ``ConfigError`` and the group is not added.

    Raises:
        ConfigError: for a bad schedule or a mismatch between schedules and groups.

    Example:
        >>> import torch
        >>> opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.ones(1))], "name": "head"}])
        >>> cosine = {"cosine_decay": {"peak_value": 1e-3, "end_value": 1e-4, "decay_steps": 100}}
        >>> sched = ClosedFormScheduler(opt, {"head": cosine}, {"beta1": {"head": {"constant": 0.8}}})
        >>> opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]
        (0.001, (0.8, 0.999))
        >>> opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "schedule": {"constant": 0.01}})
        >>> sched.get_last_lr()
        [0.001, 0.01]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr_dict: Mapping[str, Any],
        hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
        steps_per_epoch: int | None = None,
        total_steps: int | None = None,
        paths: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not a torch.optim.Optimizer")
        paths = dict(paths or {})
        context = {"steps_per_epoch": steps_per_epoch, "total_steps": total_steps}
        groups = optimizer.param_groups
        labels = group_labels(groups)
        lr_path = paths.get("lr", "lr_dict")
        own = [group.get("schedule") is not None for group in groups]
        entries = match_groups(
            groups, lr_dict, path=lr_path, what="learning-rate schedule", required=[not o for o in own]
        )
        by_name = any("name" in group for group in groups)
        keys = list(lr_dict) if not by_name else labels
        lr_configs: list[LearningRate] = []
        lr_scales: list[float] = []
        for index, (group, entry, key) in enumerate(zip(groups, entries, keys)):
            if own[index]:
                config, where = group["schedule"], format_path("param_groups", index, "schedule")
            else:
                config, where = entry, format_path(lr_path, str(key))
            lr_configs.append(resolve_schedule(config, **context, path=where))
            _check_values("lr", lr_configs[-1], where)
            lr_scales.append(self._check_scale(group.get("lr_scale", 1.0), index))

        # Per group, by index, since loading an optimizer state replaces the group dicts.
        updates: list[list[tuple[str, Schedule]]] = [[] for _ in groups]
        described: dict[str, dict[str, Any]] = {
            label: {"lr": config.model_dump(mode="json", exclude_none=True), "lr_scale": scale}
            for label, config, scale in zip(labels, lr_configs, lr_scales)
        }
        hyperparameter_entries: dict[str, tuple[Mapping[str, Any], str]] = {}
        for name, mapping in (hyperparameters or {}).items():
            where = paths.get(name, format_path("hyperparameters", name))
            if name not in HYPERPARAMETERS:
                raise unknown_choice(where, name, HYPERPARAMETERS, what="hyperparameter to schedule")
            entries = match_groups(groups, mapping, path=where, what=f"{name} schedule", required=[False] * len(groups))
            keys = list(mapping) if not by_name else labels
            for index, (group, entry, key, label) in enumerate(zip(groups, entries, keys, labels)):
                if entry is None:
                    continue
                config = self._hyperparameter_config(
                    name, entry, group, label, format_path(where, str(key)), context, type(optimizer).__name__
                )
                updates[index].append((name, make_schedule(config)))
                described[label][name] = config.model_dump(mode="json", exclude_none=True)
            hyperparameter_entries[name] = (dict(mapping), where)

        self._context = context
        self._by_name = by_name
        self._lr_entries: tuple[Mapping[str, Any], str] = (dict(lr_dict), lr_path)
        self._hyperparameter_entries = hyperparameter_entries
        self._defaults = self._check_defaults(defaults, context, paths)
        self._labels = labels
        self._lr_fns: list[Schedule] = [make_schedule(config) for config in lr_configs]
        self._lr_scales = lr_scales
        self._hyperparameter_updates = updates
        self._fingerprints = [_fingerprint(described[label]) for label in labels]
        super().__init__(optimizer)
        self._attach()

    @staticmethod
    def _check_scale(scale: Any, index: int) -> float:
        where = f"param_groups[{index}].lr_scale"
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 0:
            raise ConfigError(f"lr_scale must be a number >= 0, got {truncate(scale)}", path=where)
        if RANGES["lr_scale"].problem(scale):
            raise ConfigError(f"lr_scale must be a finite number >= 0, got {truncate(scale)}", path=where)
        return float(scale)

    @staticmethod
    def _hyperparameter_config(
        name: str,
        entry: Any,
        group: Mapping[str, Any],
        label: str,
        where: str,
        context: Mapping[str, int | None],
        optimizer_name: str,
    ) -> LearningRate:
        spec = HYPERPARAMETERS[name]
        if spec.group_key not in group:
            hint = f"; {spec.hint}" if spec.hint else ""
            raise ConfigError(
                f"param group {label!r} of {optimizer_name} has no {spec.group_key!r} to schedule as {name}{hint}",
                path=where,
            )
        config = resolve_schedule(entry, **context, path=where)
        _check_values(name, config, where)
        return config

    @staticmethod
    def _check_defaults(
        defaults: Mapping[str, Any] | None, context: Mapping[str, int | None], paths: Mapping[str, str]
    ) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        for name, value in (defaults or {}).items():
            where = paths.get(name, format_path("defaults", str(name)))
            if name != "lr" and name not in HYPERPARAMETERS:
                raise unknown_choice(format_path("defaults", str(name)), name, ["lr", *HYPERPARAMETERS], what="key")
            if callable(value):
                checked[name] = value
            else:
                checked[name] = resolve_schedule(value, **context, path=where)
                _check_values(name, checked[name], where)
        return checked

    # Hooks on the optimizer: checks and re-applies what it loads, and follows the groups it adds.

    def _attach(self) -> None:
        optimizer, shim = self.optimizer, weakref.ref(self)

        def check(_optimizer: torch.optim.Optimizer, state_dict: Any) -> None:
            alive = shim()
            if alive is not None:
                alive._check_optimizer_state(state_dict)

        def reapply(_optimizer: torch.optim.Optimizer) -> None:
            # Loading an optimizer state brings back the lrs saved with it; the schedule decides them.
            alive = shim()
            if alive is not None:
                alive._apply(alive.last_epoch)

        add = optimizer.add_param_group

        @functools.wraps(add)
        def add_param_group(param_group: Any, *args: Any, **kwargs: Any) -> Any:
            alive = shim()
            if alive is None or alive.optimizer is not optimizer:
                return add(param_group, *args, **kwargs)
            alive._adopt_groups()
            alive._precheck(param_group, args, kwargs)
            known = {id(group) for group in optimizer.param_groups}
            result = add(param_group, *args, **kwargs)
            alive._adopt_groups(known)
            return result

        try:
            self._load_hooks = (
                optimizer.register_load_state_dict_pre_hook(check),
                optimizer.register_load_state_dict_post_hook(reapply),
            )
        except AttributeError:  # a subclass that skips Optimizer.__init__ (timm's Lookahead) has no hook tables
            load = optimizer.load_state_dict

            @functools.wraps(load)
            def load_state_dict(state_dict: Any, *args: Any, **kwargs: Any) -> Any:
                check(optimizer, state_dict)
                result = load(state_dict, *args, **kwargs)
                reapply(optimizer)
                return result

            optimizer.load_state_dict = load_state_dict  # type: ignore[method-assign]
        optimizer.add_param_group = add_param_group  # type: ignore[method-assign]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_load_hooks", None)  # hold closures; attached again to the optimizer the copy holds
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attach()

    def _check_optimizer_state(self, state_dict: Any) -> None:
        """``ConfigError`` for an optimizer state whose groups lack the lr (or a scheduled hyperparameter's key)."""
        saved = state_dict.get("param_groups") if isinstance(state_dict, Mapping) else None
        if not isinstance(saved, Sequence) or isinstance(saved, str | bytes):
            return  # not a state at all: the optimizer says so
        problems = []
        for index, group in enumerate(saved):
            if not isinstance(group, Mapping):
                continue  # the optimizer says what is wrong with it
            updates = self._hyperparameter_updates[index] if index < len(self._hyperparameter_updates) else []
            needed = {"lr": "lr", **{HYPERPARAMETERS[name].group_key: name for name, _ in updates}}
            for key, name in needed.items():
                if key not in group:
                    scheduled = "" if key == name else f" (scheduled as {name})"
                    problems.append(
                        (
                            format_path("param_groups", index, key),
                            f"the optimizer state has no {key!r}{scheduled} in this param group "
                            "(a state an optimizer saved always has it); nothing was loaded",
                        )
                    )
        if problems:
            raise ConfigError.from_problems(problems)

    # Groups added while training.

    def _precheck(self, param_group: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Refuse a group about to be added that would get no schedule, before the optimizer takes it."""
        if not isinstance(param_group, Mapping):
            return  # the optimizer refuses it
        candidate = {**self.optimizer.defaults, **param_group}
        part = kwargs.get("part", args[0] if args else None)
        parts = getattr(self.optimizer, "parts", None)
        if isinstance(part, str):
            candidate["part"] = part
        elif "part" not in candidate and isinstance(parts, Mapping) and len(parts) == 1:
            candidate["part"] = next(iter(parts))
        try:
            self._schedules_for(candidate, len(self.optimizer.param_groups), self._labels)
        except ConfigError:
            raise
        except Exception:  # not a valid group: the optimizer refuses it, or the scheduler checks it once added
            return

    def _adopt_groups(self, known: set[int] | None = None) -> None:
        """Give the groups added since the last call their schedules, and set them for the current step.

        ``known`` holds the ids of the groups there were before; without it, new groups are those at the end.
        """
        groups = self.optimizer.param_groups
        count = len(self._lr_fns)
        if known is None and len(groups) == count:
            return
        if known is None:
            new = list(range(count, len(groups)))
        else:
            new = [index for index, group in enumerate(groups) if id(group) not in known]
        if len(groups) - len(new) != count:
            raise ConfigError(
                f"the optimizer has {len(groups)} param groups, but the scheduler schedules {count} and "
                f"saw {len(new)} added; it cannot follow groups that were removed or replaced",
                path="param_groups",
            )
        labels, lr_fns, scales = list(self._labels), list(self._lr_fns), list(self._lr_scales)
        updates, fingerprints = list(self._hyperparameter_updates), list(self._fingerprints)
        planned = [self._schedules_for(groups[index], index, labels) for index in new]  # all, before changing any
        for index, plan in zip(new, planned):
            labels.insert(index, plan.label)
            lr_fns.insert(index, plan.lr)
            scales.insert(index, plan.lr_scale)
            updates.insert(index, plan.hyperparameters)
            fingerprints.insert(index, plan.fingerprint)
        base_lrs = list(self.base_lrs)
        for index in new:
            group = groups[index]
            initial_lr = group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"]
            base_lrs.insert(index, group.setdefault("initial_lr", initial_lr))
        self._labels, self._lr_fns, self._lr_scales = labels, lr_fns, scales
        self._hyperparameter_updates, self._fingerprints, self.base_lrs = updates, fingerprints, base_lrs
        step = max(self.last_epoch, 0)
        for index in new:
            group = groups[index]
            _set_value(group, "lr", lr_fns[index](step) * scales[index])
            for name, schedule in updates[index]:
                HYPERPARAMETERS[name].setter(group, schedule(step))
        self._last_lr = [
            group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"] for group in groups
        ]

    def _schedules_for(self, group: Mapping[str, Any], index: int, labels: Sequence[str]) -> _GroupSchedules:
        """The schedules of a group added at ``index``, by the rules of the groups given when built."""
        label = str(group["name"]) if "name" in group else f"group{index}"
        where = format_path("param_groups", index)
        if label in labels:
            raise ConfigError(
                f"param group names must be unique to match schedules; {label!r} is already scheduled",
                path=format_path(where, "name"),
            )
        optimizer_name = type(self.optimizer).__name__
        entries, lr_path = self._lr_entries
        if group.get("schedule") is not None:
            lr_where = format_path(where, "schedule")
            config = resolve_schedule(group["schedule"], **self._context, path=lr_where)
        else:
            entry, lr_where = self._part_entry(group, labels, entries, lr_path)
            if entry is None and "lr" in self._defaults:
                entry, lr_where = self._default("lr", group, where)
            if entry is None:
                raise ConfigError(
                    f"param group {label!r} added after the scheduler was built has no schedule: give it "
                    "its own 'schedule' (add_param_group({'params': ..., 'schedule': {...}})), or build the "
                    "scheduler with one schedule for every group",
                    path=where,
                )
            config = resolve_schedule(entry, **self._context, path=lr_where)
        _check_values("lr", config, lr_where)
        scale = self._check_scale(group.get("lr_scale", 1.0), index)
        described: dict[str, Any] = {"lr": config.model_dump(mode="json", exclude_none=True), "lr_scale": scale}
        hyperparameters: list[tuple[str, Schedule]] = []
        for name in HYPERPARAMETERS:
            if name in self._hyperparameter_entries:
                mapping, path = self._hyperparameter_entries[name]
                entry, entry_where = self._part_entry(group, labels, mapping, path)
            else:
                entry = None
            if entry is None and name in self._defaults:
                entry, entry_where = self._default(name, group, where)
            if entry is None:
                continue
            hyperparameter = self._hyperparameter_config(
                name, entry, group, label, entry_where, self._context, optimizer_name
            )
            hyperparameters.append((name, make_schedule(hyperparameter)))
            described[name] = hyperparameter.model_dump(mode="json", exclude_none=True)
        return _GroupSchedules(label, make_schedule(config), scale, hyperparameters, _fingerprint(described))

    def _part_entry(
        self, group: Mapping[str, Any], labels: Sequence[str], mapping: Mapping[str, Any], path: str
    ) -> tuple[Any, str]:
        """The entry of ``mapping`` keyed by the part (of a composite optimizer) the group belongs to."""
        part = group.get("part")
        if self._by_name and isinstance(part, str) and part in mapping and part not in labels:
            return mapping[part], format_path(path, part)
        return None, path

    def _default(self, name: str, group: Mapping[str, Any], where: str) -> tuple[Any, str]:
        value = self._defaults[name]
        return (value(group), format_path(where, name)) if callable(value) else (value, format_path("defaults", name))

    @property
    def _fingerprint(self) -> dict[str, str]:
        return dict(zip(self._labels, self._fingerprints))

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The lr of each group at the current step ``last_epoch``."""
        self._adopt_groups()
        step = self.last_epoch
        return [schedule(step) * scale for schedule, scale in zip(self._lr_fns, self._lr_scales, strict=True)]

    def step(self, epoch: int | None = None) -> None:
        """Advance one step and set every scheduled value for it (call after ``optimizer.step()``)."""
        if not scheduler_advances(self):  # skip_nonfinite: no optimizer step since the last one
            return
        self._adopt_groups()
        super().step(epoch)
        self._apply_hyperparameters(self.last_epoch)

    def _apply_hyperparameters(self, step: int) -> None:
        for group, updates in zip(self.optimizer.param_groups, self._hyperparameter_updates, strict=True):
            for name, schedule in updates:
                HYPERPARAMETERS[name].setter(group, schedule(step))

    def _apply(self, step: int) -> None:
        """Set every scheduled value for ``step`` without advancing."""
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            _set_value(group, "lr", lr)
        self._apply_hyperparameters(step)
        self._last_lr = [
            group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"]
            for group in self.optimizer.param_groups
        ]

    def state_dict(self) -> dict[str, Any]:
        """The step count and a fingerprint of the schedules; nothing else.

        Example:
            >>> import torch
            >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
            >>> sorted(ClosedFormScheduler(opt, {"all": {"constant": 0.1}}).state_dict())
            ['fingerprint', 'step']
        """
        self._adopt_groups()
        return {"step": self.last_epoch, "fingerprint": dict(self._fingerprint)}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue at the saved step with the schedules as configured now.

        A state without a fingerprint, such as the full state of another torch
        scheduler, is read for its ``last_epoch``. When the saved fingerprint
        differs from the current one, a :class:`ScheduleChangedWarning` names the
        groups whose schedule changed.

        Raises:
            ConfigError: for a state that is not one (no step count, a step
                outside ``[0, 2**53]``, a malformed fingerprint); nothing changes.
        """
        step, saved = _read_state(state_dict)
        self._adopt_groups()
        current = self._fingerprint
        if saved is not None and saved != current:
            changed = sorted(label for label in {*saved, *current} if saved.get(label) != current.get(label))
            warnings.warn(
                f"the schedule of param group(s) {', '.join(changed)} changed since the checkpoint; "
                f"continuing at step {step} with the schedule as configured now",
                ScheduleChangedWarning,
                stacklevel=2,
            )
        self.last_epoch = step
        self._apply(step)


# torch's LRScheduler.step(epoch) takes an explicit step's lrs from the closed form: the schedules are one.
setattr(ClosedFormScheduler, CLOSED_FORM_METHOD, ClosedFormScheduler.get_lr)

# The name the training code optforge grew from imports.
LRShim = ClosedFormScheduler


def _read_state(state_dict: Any) -> tuple[int, dict[str, str] | None]:
    """The step and fingerprint of a scheduler state, checked; ``ConfigError`` for anything else."""
    if not isinstance(state_dict, Mapping):
        raise ConfigError(
            f"not a scheduler state: expected a mapping, got {type(state_dict).__name__} {truncate(state_dict)}",
            path="scheduler",
        )
    step = state_dict.get("step", state_dict.get("last_epoch"))
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        keys = ", ".join(truncate(key, 40) for key in list(state_dict)[:20])
        raise ConfigError(
            f"not a scheduler state: expected a step count in [0, 2**53] under 'step', got {truncate(step)} "
            f"(keys: {keys})",
            path="scheduler.step",
        )
    saved = state_dict.get("fingerprint")
    if saved is None:
        return step, None
    if not isinstance(saved, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in saved.items()):
        raise ConfigError(
            f"not a scheduler state: expected a mapping of group names to fingerprints, got {truncate(saved)}",
            path="scheduler.fingerprint",
        )
    return step, dict(saved)


# Fields of a schedule config that hold values the schedule takes (the others are lengths and shapes).
_VALUE_FIELDS = frozenset(
    {"constant", "learning_rate", "final_learning_rate", "learning_rate_values"}
    | {"init_value", "peak_value", "end_value"}
)


def _schedule_values(data: Any, path: str) -> list[tuple[str, Any]]:
    """``(path, value)`` for every value a schedule config names; its values stay between them (and 0)."""
    found: list[tuple[str, Any]] = []
    if isinstance(data, Mapping):
        for key, item in data.items():
            where = format_path(path, str(key))
            if key in _VALUE_FIELDS and isinstance(item, list):
                found.extend((format_path(where, index), value) for index, value in enumerate(item))
            elif key in _VALUE_FIELDS:
                found.append((where, item))
            else:
                found.extend(_schedule_values(item, where))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found.extend(_schedule_values(item, format_path(path, index)))
    return found


def _check_values(name: str, config: LearningRate, path: str) -> None:
    """``ConfigError`` unless every value of a schedule of ``name`` lies in the range the optimizer section allows."""
    problems = [
        problem
        for where, value in _schedule_values(config.model_dump(mode="json", exclude_none=True), path)
        for problem in value_problems(name, value, where)
    ]
    if problems:
        raise ConfigError.from_problems(problems)


def _as_schedule(value: Any) -> Any:
    """A bare number is a constant schedule."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"constant": value}  # validated (finite, >= 0) with the schedule
    return value


def _per_group(value: Any, labels: list[str], context: Mapping[str, int | None], path: str) -> dict[str, Any] | None:
    """One schedule for every group, or a per-group mapping, as ``{label: schedule}``."""
    if value is None:
        return None
    if is_one_schedule(value):
        resolved = resolve_schedule(_as_schedule(value), **context, path=path)
        return dict.fromkeys(labels, resolved)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"expected a schedule, a number, or a mapping of param groups to schedules, got {type(value).__name__}",
            path=path,
        )
    for key in value:
        if key not in labels:
            if suggest(str(key), LearningRate.model_fields):
                raise unknown_choice(format_path(path, str(key)), key, LearningRate.model_fields, what="schedule")
            if not all(label == f"group{index}" for index, label in enumerate(labels)):
                continue  # named groups: the scheduler names the unknown group
            # Unnamed groups would take any keys by order: a misspelt schedule would set every lr.
            raise unknown_choice(
                format_path(path, str(key)),
                key,
                [*labels, *LearningRate.model_fields],
                what="param group name or schedule",
            )
    return {key: _as_schedule(item) for key, item in value.items()}


def _unknown_key(path: str, key: Any, document: Mapping[str, Any]) -> ConfigError:
    """The error for a key of the full form that is not one of :data:`SCHEDULE_KEYS`.

    A schedule (or a scheduler by name) written beside ``total_steps`` is told
    where it goes instead.

    Example:
        >>> error = _unknown_key("schedule", "constant", {"total_steps": 9, "constant": 0.1})
        >>> print(error.problems[0][1])  # doctest: +ELLIPSIS
        unknown key 'constant': a schedule beside total_steps goes under lr: schedule: {total_steps: 9, lr: ...}
    """
    from optforge.lr_schedulers.registry import is_scheduler_name

    name, where = str(key), format_path(path, str(key))
    section = path.rsplit(".", 1)[-1] or "schedule"
    beside = [item for item in document if item in SCHEDULE_KEYS]
    shown = [f"{item}: {_flow(document[item])}" for item in beside]
    if name in LearningRate.model_fields or (
        not suggest(name, SCHEDULE_KEYS) and (close := suggest(name, LearningRate.model_fields))
    ):
        schedule = name if name in LearningRate.model_fields else close[0]
        start = f"unknown key {name!r}" + (":" if schedule == name else f"; did you mean the schedule {schedule!r}?")
        if "lr" in document:
            return ConfigError(f"{start} a schedule goes under lr, and this section has one already", path=where)
        return ConfigError(
            f"{start} a schedule beside {', '.join(beside)} goes under lr: "
            f"{section}: {{{', '.join([*shown, f'lr: {{{schedule}: {{...}}}}'])}}}",
            path=where,
        )
    if name == "name" or is_scheduler_name(name):
        value = document[key]  # the scheduler's arguments, or (under name) a mapping keyed by its name
        scheduler = name
        if name == "name":
            scheduler = str(next(iter(value))) if isinstance(value, Mapping) and value else "..."
        context = [item for item in beside if item in ("steps_per_epoch", "total_steps")]
        tail = f" and {' and '.join(context)} beside its arguments:" if context else ""
        example = ", ".join([f"name: {scheduler}", "...", *(f"{item}: {_flow(document[item])}" for item in context)])
        return ConfigError(
            f"unknown key {name!r}: a scheduler by name goes in the section itself, its name under name:{tail} "
            f"{section}: {{{example}}}",
            path=where,
        )
    return unknown_choice(where, key, SCHEDULE_KEYS, what="key")


def _flow(value: Any) -> str:
    """``value`` as a message shows it in a YAML flow mapping: numbers as they are, anything else elided."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return "{...}"


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule_config: Any,
    *,
    path: str = "schedule",
    steps_per_epoch: int | None = None,
    total_steps: int | None = None,
) -> LRScheduler:
    """Build the :class:`ClosedFormScheduler` of a ``schedule:`` section (see ``docs/schedules.md``).

    A section that names a scheduler (``{name: CosineAnnealingLR, T_max: 100}``)
    builds that scheduler instead (see ``docs/schedulers.md``).

    ``schedule_config`` is ``None`` (each group's own lr, held constant), one
    schedule for all groups, a mapping of group names to schedules, or the full
    form ``{lr, momentum, beta1, beta2, weight_decay, steps_per_epoch,
    total_steps}`` whose schedule entries take either of the two previous forms.
    A group's own ``"schedule"`` entry takes precedence; its ``"lr_scale"``
    multiplies its lr.

    Raises:
        ConfigError: for any bad schedule, naming its config path.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1, momentum=0.9)
        >>> doc = {"steps_per_epoch": 10, "lr": {"cosine_decay": {"peak_value": 0.1,
        ...        "warmup_steps": {"epochs": 1}, "decay_steps": {"epochs": 5}}},
        ...        "momentum": {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": 50}}}
        >>> sched = build_scheduler(opt, doc)
        >>> opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]
        (0.0, 0.95)
    """
    if type(schedule_config).__module__.startswith("omegaconf"):
        schedule_config = to_plain(schedule_config)
    section = read_schedule_section(schedule_config)
    if isinstance(section, NamedScheduler | TemplateSchedulers):
        return build_named_scheduler(
            optimizer, section.section, path=path, steps_per_epoch=steps_per_epoch, total_steps=total_steps
        )
    document: Mapping[str, Any] = {"lr": None}
    if isinstance(section, ClosedForm) and section.full_form:
        for key in section.raw:
            if key not in SCHEDULE_KEYS:
                raise _unknown_key(path, key, section.raw)
        document = schedule_config = section.raw
    elif isinstance(section, ClosedForm):
        document = {"lr": section.raw}
    context = {
        name: _merge_context(name, document.get(name), value, path)
        for name, value in (("steps_per_epoch", steps_per_epoch), ("total_steps", total_steps))
    }
    groups = optimizer.param_groups
    labels = (
        group_labels(groups) if any("name" in group for group in groups) else [f"group{i}" for i in range(len(groups))]
    )
    lr_path = format_path(path, "lr") if "lr" in document and document is schedule_config else path
    lr_dict = _per_group(document.get("lr"), labels, context, lr_path)
    # Groups added later get the schedule shared by every group (or, without a schedule, keep their own lr).
    defaults: dict[str, Any] = {"lr": _own_lr} if lr_dict is None else {}
    if lr_dict is None:
        lr_dict = {label: _own_lr(group) for label, group in zip(labels, groups)}
    elif isinstance(section, ClosedForm) and isinstance(section.lr, OneSchedule):
        defaults["lr"] = lr_dict[labels[0]]
    hyperparameters = {}
    scheduled = section.hyperparameters if isinstance(section, ClosedForm) else {}
    for name, value in scheduled.items():
        hyperparameters[name] = _per_group(document[name], labels, context, format_path(path, name))
        if isinstance(value, OneSchedule):
            defaults[name] = hyperparameters[name][labels[0]]  # type: ignore[index]
    paths = {"lr": lr_path, **{name: format_path(path, name) for name in HYPERPARAMETERS}}
    return ClosedFormScheduler(optimizer, lr_dict, hyperparameters, defaults=defaults, **context, paths=paths)  # type: ignore[arg-type]


def _merge_context(name: str, in_document: Any, given: int | None, path: str) -> int | None:
    """A context value from the document or the caller; both must agree when both are given."""
    if in_document is not None and given is not None and in_document != given:
        raise ConfigError(
            f"{name} is {in_document!r} here but {given!r} was passed to build_scheduler", path=format_path(path, name)
        )
    value = in_document if in_document is not None else given
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}", path=format_path(path, name))
    return value


def check_schedule_section(schedule_config: Any, *, path: str = "schedule") -> None:
    """Check a ``schedule:`` section as far as it can be without the optimizer's param groups.

    Unknown keys and every schedule's own fields are checked; group names, and
    lengths in epochs or fractions, are checked when the scheduler is built.

    Raises:
        ConfigError: listing every problem found.

    Example:
        >>> check_schedule_section({"lr": {"constant": 0.1}, "beta1": {"cosine_decay": {"peak_valu": 0.9}}})
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: 3 problems in the config:
          - schedule.beta1.cosine_decay.peak_value: required field is missing
          - schedule.beta1.cosine_decay.decay_steps: required field is missing
          - schedule.beta1.cosine_decay.peak_valu: unknown key; did you mean 'peak_value'? ...
    """
    from optforge.config.problems import Problems
    from optforge.schedules import parse_schedule

    section = read_schedule_section(schedule_config)
    if not isinstance(section, ClosedForm):
        return  # nothing to check, or a scheduler by name, checked against its signature when built
    problems = Problems()
    if section.full_form:
        for key in section.raw:
            if key not in SCHEDULE_KEYS:
                with problems.collect():
                    raise _unknown_key(path, key, section.raw)
    values = {"lr": section.lr, **section.hyperparameters} if section.lr is not None else section.hyperparameters
    for key, value in values.items():
        where = format_path(path, key) if section.full_form else path
        if isinstance(value, OneSchedule):
            entries = [(where, value.value)]
        elif isinstance(value.schedules, Mapping):
            entries = [(format_path(where, str(k)), v) for k, v in value.schedules.items() if is_one_schedule(v)]
        else:
            entries = []
        for entry_path, entry in entries:
            with problems.collect():
                parse_schedule(_as_schedule(entry), entry_path)
    problems.raise_if_any()


def scheduler_trace(
    section: Any,
    steps: int,
    *,
    metric: Sequence[float] | Callable[[int], float] | None = None,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
    lr: float = 1.0,
    path: str = "schedule",
) -> dict[str, list[float]]:
    """The lr of each step of ``section``, built over a one-parameter SGD optimizer at ``lr``.

    Args:
        section: Any ``schedule:`` section: by name, or an optforge schedule.
        steps: How many steps to record.
        metric: For a metric-driven scheduler: one value per step, or a function of the step.
        total_steps: Steps of the run, for ``{fraction: x}`` lengths (default ``steps``).
        steps_per_epoch: Steps per epoch, for ``{epochs: x}`` lengths.
        lr: The optimizer's lr (the lr a torch scheduler scales).
        path: The section's config path, for messages.

    Returns:
        ``{"lr": [lr of step 0, lr of step 1, ...]}``: the lr each optimizer step uses.

    Raises:
        ConfigError: for a bad section, or a metric-driven one without metric values.

    Example:
        >>> scheduler_trace({"name": "StepLR", "step_size": 2, "gamma": 0.5}, 5)
        {'lr': [1.0, 1.0, 0.5, 0.5, 0.25]}
        >>> scheduler_trace({"name": "ReduceLROnPlateau", "patience": 0}, 4, metric=[3.0, 3.0, 3.0, 3.0])["lr"]
        [1.0, 1.0, 0.1, 0.010000000000000002]
    """
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(
        optimizer, section, path=path, steps_per_epoch=steps_per_epoch, total_steps=total_steps or steps
    )
    needs_metric = is_metric_driven(scheduler)
    if needs_metric and metric is None:
        raise ConfigError(
            f"{type(scheduler).__name__} decides on a metric: give one metric value per step to trace it", path=path
        )
    if needs_metric and not callable(metric) and len(metric) < steps:  # type: ignore[arg-type]
        raise ConfigError(f"{len(metric)} metric values for {steps} steps: give one per step", path="metric")  # type: ignore[arg-type]
    lrs: list[float] = []
    values = metric if callable(metric) or metric is None else metric.__getitem__
    trace_steps(scheduler, steps, lambda step: lrs.append(float(optimizer.param_groups[0]["lr"])), values)
    return {"lr": lrs}
