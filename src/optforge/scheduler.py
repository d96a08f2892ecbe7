"""``LRShim``: a torch ``LRScheduler`` that sets each group's lr from a schedule config.

The lr of a param group at step ``t`` is ``compute_lr(schedule, t) * lr_scale``,
in closed form: nothing accumulates, so a resumed run gets exactly the values of
an uninterrupted one. Other hyperparameters (``momentum``, ``beta1``, ``beta2``,
``weight_decay``) can be scheduled the same way.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = torch.optim.SGD([w], lr=0.1)
    >>> sched = LRShim(opt, {"ALL_PARAMS": {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 4}}})
    >>> opt.param_groups[0]["lr"]
    0.0
    >>> for _ in range(2):
    ...     opt.step()
    ...     sched.step()
    >>> sched.get_last_lr(), sched.state_dict()["step"]
    ([0.05], 2)
"""

from __future__ import annotations

import hashlib
import json
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch.optim.lr_scheduler import LRScheduler

from optforge.errors import ConfigError, format_path, suggest, truncate, unknown_choice
from optforge.hyperparameters import RANGES, value_problems
from optforge.lr_schedulers.section import build_named_scheduler, is_named_section
from optforge.schedules import LearningRate, Schedule, make_schedule, resolve_schedule
from optforge.schedules._lengths import MAX_STEP

__all__ = ["HYPERPARAMETERS", "SCHEDULE_KEYS", "LRShim", "ScheduleChangedWarning", "build_scheduler"]


class ScheduleChangedWarning(UserWarning):
    """A scheduler state was loaded whose schedules differ from the configured ones."""


def _set_value(group: dict[str, Any], key: str, value: float) -> None:
    """Set ``group[key]``, in place when it is a tensor (fused or capturable optimizers)."""
    current = group.get(key)  # a loaded optimizer state may lack it: the schedule decides it anyway
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

# Keys of the full form of a ``schedule:`` document.
SCHEDULE_KEYS: tuple[str, ...] = ("lr", *HYPERPARAMETERS, "steps_per_epoch", "total_steps")


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


class LRShim(LRScheduler):
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
        steps_per_epoch: Steps per epoch, for schedule lengths given in epochs.
        total_steps: Steps of the run, for lengths given as fractions.
        paths: Config paths of ``"lr"`` and of each hyperparameter, for messages.

    Raises:
        ConfigError: for a bad schedule or a mismatch between schedules and groups.

    Example:
        >>> import torch
        >>> opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.ones(1))], "name": "head"}])
        >>> cosine = {"cosine_decay": {"peak_value": 1e-3, "end_value": 1e-4, "decay_steps": 100}}
        >>> sched = LRShim(opt, {"head": cosine}, {"beta1": {"head": {"constant": 0.8}}})
        >>> opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]
        (0.001, (0.8, 0.999))
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr_dict: Mapping[str, Any],
        hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
        *,
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
        keys = list(lr_dict) if not any("name" in group for group in groups) else labels
        lr_configs: list[LearningRate] = []
        self._lr_scales: list[float] = []
        for index, (group, entry, key) in enumerate(zip(groups, entries, keys)):
            if own[index]:
                config, where = group["schedule"], format_path("param_groups", index, "schedule")
            else:
                config, where = entry, format_path(lr_path, str(key))
            lr_configs.append(resolve_schedule(config, **context, path=where))
            _check_values("lr", lr_configs[-1], where)
            self._lr_scales.append(self._check_scale(group.get("lr_scale", 1.0), index))
        self._lr_fns: list[Schedule] = [make_schedule(config) for config in lr_configs]

        # (setter, group index, schedule): groups by index, since loading an optimizer state replaces the dicts.
        self._hyperparameter_updates: list[tuple[Callable[[dict[str, Any], float], None], int, Schedule]] = []
        described: dict[str, dict[str, Any]] = {
            label: {"lr": config.model_dump(mode="json", exclude_none=True), "lr_scale": scale}
            for label, config, scale in zip(labels, lr_configs, self._lr_scales)
        }
        for name, mapping in (hyperparameters or {}).items():
            where = paths.get(name, format_path("hyperparameters", name))
            if name not in HYPERPARAMETERS:
                raise unknown_choice(where, name, HYPERPARAMETERS, what="hyperparameter to schedule")
            spec = HYPERPARAMETERS[name]
            entries = match_groups(groups, mapping, path=where, what=f"{name} schedule", required=[False] * len(groups))
            keys = list(mapping) if not any("name" in group for group in groups) else labels
            for index, (group, entry, key, label) in enumerate(zip(groups, entries, keys, labels)):
                if entry is None:
                    continue
                if spec.group_key not in group:
                    hint = f"; {spec.hint}" if spec.hint else ""
                    raise ConfigError(
                        f"param group {label!r} of {type(optimizer).__name__} has no {spec.group_key!r} "
                        f"to schedule as {name}{hint}",
                        path=format_path(where, str(key)),
                    )
                config = resolve_schedule(entry, **context, path=format_path(where, str(key)))
                _check_values(name, config, format_path(where, str(key)))
                self._hyperparameter_updates.append((spec.setter, index, make_schedule(config)))
                described[label][name] = config.model_dump(mode="json", exclude_none=True)
        self._fingerprint = {label: _fingerprint(data) for label, data in described.items()}
        super().__init__(optimizer)
        shim = weakref.ref(self)

        def reapply(_optimizer: torch.optim.Optimizer) -> None:
            # Loading an optimizer state brings back the lrs saved with it; the schedule decides them.
            alive = shim()
            if alive is not None:
                alive._apply(alive.last_epoch)

        self._load_hook = optimizer.register_load_state_dict_post_hook(reapply)

    @staticmethod
    def _check_scale(scale: Any, index: int) -> float:
        where = f"param_groups[{index}].lr_scale"
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 0:
            raise ConfigError(f"lr_scale must be a number >= 0, got {truncate(scale)}", path=where)
        if RANGES["lr_scale"].problem(scale):
            raise ConfigError(f"lr_scale must be a finite number >= 0, got {truncate(scale)}", path=where)
        return float(scale)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The lr of each group at the current step ``last_epoch``."""
        step = self.last_epoch
        return [schedule(step) * scale for schedule, scale in zip(self._lr_fns, self._lr_scales)]

    _get_closed_form_lr = get_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one step and set every scheduled value for it (call after ``optimizer.step()``)."""
        super().step(epoch)
        self._apply_hyperparameters(self.last_epoch)

    def _apply_hyperparameters(self, step: int) -> None:
        groups = self.optimizer.param_groups
        for setter, index, schedule in self._hyperparameter_updates:
            setter(groups[index], schedule(step))

    def _apply(self, step: int) -> None:
        """Set every scheduled value for ``step`` without advancing."""
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
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
            >>> sorted(LRShim(opt, {"all": {"constant": 0.1}}).state_dict())
            ['fingerprint', 'step']
        """
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
        if saved is not None and saved != self._fingerprint:
            changed = sorted(
                label for label in {*saved, *self._fingerprint} if saved.get(label) != self._fingerprint.get(label)
            )
            warnings.warn(
                f"the schedule of param group(s) {', '.join(changed)} changed since the checkpoint; "
                f"continuing at step {step} with the schedule as configured now",
                ScheduleChangedWarning,
                stacklevel=2,
            )
        self.last_epoch = step
        self._apply(step)


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


def _is_schedule(value: Any) -> bool:
    """True for one schedule (rather than a per-group mapping of schedules)."""
    if isinstance(value, LearningRate | int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, Mapping) and any(key in LearningRate.model_fields for key in value)


def _as_schedule(value: Any) -> Any:
    """A bare number is a constant schedule."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"constant": value}  # validated (finite, >= 0) with the schedule
    return value


def _per_group(value: Any, labels: list[str], context: Mapping[str, int | None], path: str) -> dict[str, Any] | None:
    """One schedule for every group, or a per-group mapping, as ``{label: schedule}``."""
    if value is None:
        return None
    if _is_schedule(value):
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


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule_config: Any,
    *,
    path: str = "schedule",
    steps_per_epoch: int | None = None,
    total_steps: int | None = None,
) -> LRScheduler:
    """Build the :class:`LRShim` of a ``schedule:`` section (see ``docs/schedules.md``).

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
        from omegaconf import OmegaConf

        schedule_config = OmegaConf.to_container(schedule_config, resolve=True)
    if is_named_section(schedule_config):
        return build_named_scheduler(
            optimizer, schedule_config, path=path, steps_per_epoch=steps_per_epoch, total_steps=total_steps
        )
    document: Mapping[str, Any]
    if isinstance(schedule_config, Mapping) and any(key in SCHEDULE_KEYS for key in schedule_config):
        for key in schedule_config:
            if key not in SCHEDULE_KEYS:
                raise unknown_choice(format_path(path, str(key)), key, SCHEDULE_KEYS, what="key")
        document = schedule_config
    else:
        document = {"lr": schedule_config}
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
    if lr_dict is None:
        lr_dict = {
            label: {"constant": _as_float(group.get("initial_lr", group["lr"]))} for label, group in zip(labels, groups)
        }
    hyperparameters = {
        name: _per_group(document[name], labels, context, format_path(path, name))
        for name in HYPERPARAMETERS
        if document.get(name) is not None
    }
    paths = {"lr": lr_path, **{name: format_path(path, name) for name in HYPERPARAMETERS}}
    return LRShim(optimizer, lr_dict, hyperparameters, **context, paths=paths)  # type: ignore[arg-type]


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

    if schedule_config is None or is_named_section(schedule_config):
        return  # nothing to check, or a scheduler by name, checked against its signature when built
    problems = Problems()
    full_form = isinstance(schedule_config, Mapping) and any(key in SCHEDULE_KEYS for key in schedule_config)
    document: Mapping[str, Any] = schedule_config if full_form else {"lr": schedule_config}
    if full_form:
        for key in document:
            if key not in SCHEDULE_KEYS:
                with problems.collect():
                    raise unknown_choice(format_path(path, str(key)), key, SCHEDULE_KEYS, what="key")
    for key in ("lr", *HYPERPARAMETERS):
        value = document.get(key)
        where = format_path(path, key) if full_form else path
        if value is None:
            continue
        entries = [(where, value)] if _is_schedule(value) else []
        if isinstance(value, Mapping) and not entries:
            entries = [(format_path(where, str(k)), v) for k, v in value.items() if _is_schedule(v)]
        for entry_path, entry in entries:
            with problems.collect():
                parse_schedule(_as_schedule(entry), entry_path)
    problems.raise_if_any()
