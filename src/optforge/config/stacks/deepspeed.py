"""DeepSpeed's JSON config: the optimizer, lr schedule and clipping its engine builds from it.

What DeepSpeed 0.19.8's engine makes of a config without a client optimizer:

* ``optimizer.type`` (matched lower-cased against its own types, else a ``torch.optim``
  class by its exact name) with ``optimizer.params`` (:data:`OPTIMIZERS`): ``adam`` and
  ``adamw`` are decoupled AdamW unless ``adam_w_mode: false`` (``AdamW`` stays AdamW), with
  FusedAdam's defaults, or torch's class and defaults with ``torch_adam: true``;
  ``lamb`` is optforge's ``Lamb`` (FusedLamb's update, trust-ratio clamps and defaults);
* one param group holding every parameter, no weight-decay split;
* ``scheduler.type`` (:data:`SCHEDULERS`, or a ``torch.optim.lr_scheduler`` class), stepped
  once per optimizer step from its construction state: ``WarmupLR``, ``WarmupDecayLR``,
  ``WarmupCosineLR``, ``OneCycle`` (with its momentum as ``betas``) and ``LRRangeTest``
  become closed-form schedules, each equal to DeepSpeed's at every step;
* ``gradient_clipping`` as clipping by the total norm (1.0 when absent, 0 turns it off).

Every other top-level field is the engine's (ZeRO, precision, batch sizes) and is named in
one warning. ``"auto"`` values, which Hugging Face's Trainer fills in, are an error that
names the argument filling each.

Example:
    >>> t = translate({"optimizer": {"type": "Adam", "params": {"lr": 1e-3}},
    ...                "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 10}}}, {})
    >>> t.document["optimizer"]["name"], t.document["clip_grad"]
    ('AdamW', {'max_norm': 1.0})
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from optforge.config.problems import Problems
from optforge.config.stacks.base import Translation, Unexpressed
from optforge.errors import truncate, unknown_choice

__all__ = [
    "AUTO_FROM",
    "OPTIMIZERS",
    "SCHEDULERS",
    "TORCH_OPTIMIZERS",
    "TORCH_SCHEDULERS",
    "recognises",
    "translate",
]

# Where Hugging Face's Trainer takes each "auto" value from (transformers' HfTrainerDeepSpeedConfig).
AUTO_FROM: Mapping[str, str] = {
    "optimizer.params.lr": "learning_rate",
    "optimizer.params.betas": "adam_beta1 and adam_beta2",
    "optimizer.params.eps": "adam_epsilon",
    "optimizer.params.weight_decay": "weight_decay",
    "scheduler.params.warmup_min_lr": "0 (not a Trainer argument: the Trainer writes 0)",
    "scheduler.params.warmup_max_lr": "learning_rate",
    "scheduler.params.warmup_num_steps": "warmup_steps (at least 1)",
    "scheduler.params.total_num_steps": "num_training_steps (pass total_steps=, or --steps N)",
    "gradient_clipping": "max_grad_norm",
}

# torch.optim's optimizers: the default lr of each and whether its defaults hold betas
# (OneCycle cycles momentum only then).
TORCH_OPTIMIZERS: Mapping[str, tuple[float, bool]] = {
    "ASGD": (0.01, False),
    "Adadelta": (1.0, False),
    "Adafactor": (0.01, False),
    "Adagrad": (0.01, False),
    "Adam": (1e-3, True),
    "AdamW": (1e-3, True),
    "Adamax": (2e-3, True),
    "LBFGS": (1.0, False),
    "Muon": (1e-3, False),
    "NAdam": (2e-3, True),
    "RAdam": (1e-3, True),
    "RMSprop": (0.01, False),
    "Rprop": (0.01, False),
    "SGD": (1e-3, False),
    "SparseAdam": (1e-3, True),
}

# The keyword arguments of torch's Adam and AdamW (what torch_adam: true passes on).
_TORCH_ADAM_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "foreach", "maximize")
TORCH_ADAM_KEYS: Mapping[str, tuple[str, ...]] = {
    "Adam": (*_TORCH_ADAM_KEYS, "capturable", "differentiable", "fused", "decoupled_weight_decay"),
    "AdamW": (*_TORCH_ADAM_KEYS, "capturable", "differentiable", "fused"),
}

# torch.optim.lr_scheduler's schedulers, which the engine builds by name with scheduler.params.
TORCH_SCHEDULERS: tuple[str, ...] = (
    *["LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR"],
    *["SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler", "ReduceLROnPlateau"],
    *["CyclicLR", "CosineAnnealingWarmRestarts", "OneCycleLR"],
)

# The top-level fields whose presence says a file is DeepSpeed's.
_DISTINCTIVE = ("train_batch_size", "train_micro_batch_size_per_gpu", "zero_optimization", "gradient_clipping")
_READ = ("optimizer", "scheduler", "gradient_clipping")
_OPTIMIZER_KEYS = ("type", "params", "legacy_fusion")
_SCHEDULER_KEYS = ("type", "params")

REQUIRED = object()  # an argument without a default
GROUP_LR = object()  # defaults to the param group's lr


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """What one DeepSpeed optimizer type builds: optforge's optimizer name and the arguments it takes.

    ``defaults`` are the DeepSpeed class's own (written out, where optforge's class has others);
    ``passed`` are arguments the engine takes out of ``params`` before the constructor sees them.
    """

    name: str
    defaults: Mapping[str, Any]
    keys: tuple[str, ...]
    betas: bool = True
    passed: tuple[str, ...] = ()
    fixed: Mapping[str, tuple[Any, str]] = dataclasses.field(default_factory=dict)  # value it must keep, and why


_FUSED_ADAM = Optimizer(
    "AdamW",
    {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
    ("lr", "bias_correction", "betas", "eps", "weight_decay", "amsgrad", "set_grad_none"),
    passed=("adam_w_mode", "torch_adam", "fp32_optimizer_states"),
)

OPTIMIZERS: Mapping[str, Optimizer | str] = {
    "adam": _FUSED_ADAM,
    "adamw": _FUSED_ADAM,
    "lion": Optimizer(
        "Lion",
        {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0},
        ("lr", "betas", "weight_decay", "set_grad_none"),
    ),
    "adagrad": "Adagrad",  # torch.optim.Adagrad with params as they are
    "lamb": Optimizer(
        "Lamb",
        {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "min_coeff": 0.01, "max_coeff": 10.0},
        (
            "lr",
            "bias_correction",
            "betas",
            "eps",
            "eps_inside_sqrt",
            "weight_decay",
            "max_coeff",
            "min_coeff",
            "amsgrad",
        ),
        fixed={"amsgrad": (False, "DeepSpeed's FusedLamb does not support AMSGrad (it raises)")},
    ),
    "muadam": "MuAdam comes from the mup package, which optforge has not",
    "muadamw": "MuAdamW comes from the mup package, which optforge has not",
    "musgd": "MuSGD comes from the mup package, which optforge has not",
    "muon": "DeepSpeed's Muon (MuonWithAuxAdam) splits the parameters by shape into its own groups; "
    "write an optforge composite of Muon and AdamW",
}


@dataclasses.dataclass(frozen=True)
class Scheduler:
    """One DeepSpeed scheduler: its arguments with their defaults, and the closed form it becomes."""

    arguments: Mapping[str, Any]
    make: Callable[[Args], dict[str, Any]]


@dataclasses.dataclass
class Args:
    """A scheduler's arguments as read, with what the schedule needs from the optimizer."""

    values: dict[str, Any]
    lr: float | None
    betas: bool
    problems: Problems
    unexpressed: list[Unexpressed]
    lr_reported: bool = False  # the lr is missing for a reason already reported

    def number(self, key: str, *, low: float | None = None) -> float:
        value = self.values[key]
        if isinstance(value, list | tuple) and len(value) == 1:
            value = value[0]  # one value per param group, and there is one group
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            self.problems.add(f"scheduler.params.{key}", f"expected a number, got {truncate(value)}")
            return 0.0
        if low is not None and value < low:
            self.problems.add(f"scheduler.params.{key}", f"must be >= {low}, got {truncate(value)}")
        return float(value)

    def count(self, key: str, *, low: int = 1) -> int:
        value = self.values[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.problems.add(f"scheduler.params.{key}", f"expected a whole number >= {low}, got {truncate(value)}")
            return max(low, 1)
        return value

    def flag(self, key: str) -> bool:
        value = self.values[key]
        if not isinstance(value, bool):
            self.problems.add(f"scheduler.params.{key}", f"expected true or false, got {truncate(value)}")
            return False
        return value

    def group_lr(self, path: str, why: str) -> float:
        """The param group's lr, which the schedule ``why`` reads; a problem at ``path`` where it is unknown."""
        if self.lr is None:
            if not self.lr_reported:
                self.problems.add(path, f"{why} the param group's lr: set optimizer.params.lr")
            return 1.0
        return self.lr

    def warmup(self) -> tuple[int, str]:
        """The warmup's length as the scheduler uses it (at least 2) and its shape."""
        kind = self.values["warmup_type"]
        if kind not in ("log", "linear"):
            self.unexpressed.append(
                Unexpressed(
                    "scheduler.params.warmup_type", kind, "DeepSpeed warns and warms up along log; so does this"
                )
            )
            kind = "log"
        return max(2, self.count("warmup_num_steps")), kind


def _ramp(start: float, end: float, steps: int, shape: str) -> dict[str, Any]:
    return {"ramp": {"init_value": start, "peak_value": end, "warmup_steps": steps, "shape": shape}}


def _phases(*phases: tuple[dict[str, Any], int | None]) -> dict[str, Any]:
    return {"join": {"phases": [{"schedule": s, **({"steps": n} if n else {})} for s, n in phases]}}


def _after_construction(first: float, schedule: dict[str, Any]) -> dict[str, Any]:
    """``first`` at step 0, then ``schedule`` from its own step 0 (the scheduler's first step())."""
    return _phases(({"constant": first}, 1), (schedule, None))


def _warmup_lr(args: Args) -> dict[str, Any]:
    low = args.number("warmup_min_lr", low=0.0)
    if args.values["warmup_max_lr"] is GROUP_LR:
        high = args.group_lr("scheduler.params.warmup_max_lr", "without it, WarmupLR warms up to")
    else:
        high = args.number("warmup_max_lr", low=0.0)
    steps, shape = args.warmup()
    return {"lr": _after_construction(low, _ramp(low, high, steps, shape))}


def _warmup_decay_lr(args: Args) -> dict[str, Any]:
    low, high = args.number("warmup_min_lr", low=0.0), args.number("warmup_max_lr", low=0.0)
    if low > high:
        args.problems.add("scheduler.params.warmup_min_lr", f"must not exceed warmup_max_lr ({high}), got {low}")
    steps, shape = args.warmup()
    total = args.count("total_num_steps")
    decay = (
        {"linear_decay": {"peak_value": high, "end_value": low, "decay_steps": total - steps}}
        if total > steps
        else {"constant": low}
    )
    return {"lr": _after_construction(low, _phases((_ramp(low, high, steps, shape), steps), (decay, None)))}


def _warmup_cosine_lr(args: Args) -> dict[str, Any]:
    peak = args.group_lr("optimizer.params.lr", "WarmupCosineLR scales")
    start = peak * args.number("warmup_min_ratio", low=0.0)
    floor = args.number("cos_min_ratio", low=0.0)
    if floor > 1:
        args.problems.add("scheduler.params.cos_min_ratio", f"must be <= 1 (a decay), got {truncate(floor)}")
    steps, shape = args.warmup()
    total = args.count("total_num_steps")
    # The cosine's progress is (t - W + 1) / max(1, T - W), one step ahead of the warmup's end, capped at 1.
    length, end = max(1, total - steps), peak * min(floor, 1.0)
    cosine = {"cosine_cycles": {"peak_value": peak, "end_value": end, "decay_steps": length}}
    decay = [({"shift": {"steps": 1, "schedule": cosine}}, length - 1)] if length > 1 else []
    body = _phases((_ramp(start, peak, steps, shape), steps), *decay, ({"constant": end}, None))
    # Its constructor sets every group's lr to 0.0 (the schedule "before it has started").
    return {"lr": _after_construction(0.0, body)}


def _one_cycle(args: Args) -> dict[str, Any]:
    low, high = args.number("cycle_min_lr", low=0.0), args.number("cycle_max_lr", low=0.0)
    rise = args.count("cycle_first_step_size")
    second = args.values["cycle_second_step_size"]
    fall = rise if second is None else args.count("cycle_second_step_size", low=0)
    stairs = args.count("cycle_first_stair_count", low=0)
    second_stairs = args.values["cycle_second_stair_count"]
    fall_stairs = stairs if second_stairs is None else args.count("cycle_second_stair_count", low=0)
    decay_steps = args.count("decay_step_size", low=0)
    cycle = {"rise_steps": rise, "fall_steps": fall, "rise_stairs": stairs, "fall_stairs": fall_stairs}

    def after(start: float, rate: float, shape: str, key: str) -> dict[str, Any]:
        if not (decay_steps and rate):
            return {"constant": start}
        return {
            shape: {
                key: start,
                "decay_rate" if shape == "inverse_time_decay" else "rate": rate,
                "transition_steps": decay_steps,
            }
        }

    lr_rate = args.number("decay_lr_rate", low=0.0)
    lr = _phases(
        ({"triangle": {"init_value": low, "peak_value": high, **cycle}}, rise + fall),
        (after(low, lr_rate, "inverse_time_decay", "peak_value"), None),
    )
    schedule: dict[str, Any] = {"lr": lr}
    if not args.flag("cycle_momentum"):
        return schedule
    if not args.betas:
        args.unexpressed.append(
            Unexpressed(
                "scheduler.params.cycle_momentum",
                True,
                "the optimizer has no betas: DeepSpeed then leaves its momentum alone, and so does this",
            )
        )
        return schedule
    least, most = args.number("cycle_min_mom", low=0.0), args.number("cycle_max_mom", low=0.0)
    mom_rate = args.number("decay_mom_rate", low=0.0)
    momentum = _phases(
        ({"triangle": {"init_value": most, "peak_value": least, **cycle}}, rise + fall),
        (after(most, mom_rate, "linear_growth", "init_value"), None),
    )
    # betas: (cycle_min_mom, 0.99) at construction, then the cycle one step on; beta2 stays 0.99.
    schedule["beta1"] = _after_construction(least, {"shift": {"steps": 1, "schedule": momentum}})
    schedule["beta2"] = 0.99
    return schedule


def _lr_range_test(args: Args) -> dict[str, Any]:
    body = {
        "init_value": args.number("lr_range_test_min_lr", low=0.0),
        "rate": args.number("lr_range_test_step_rate", low=0.0),
        "transition_steps": args.count("lr_range_test_step_size"),
        "staircase": args.flag("lr_range_test_staircase"),
    }
    return {"lr": {"linear_growth": body}}


_WARMUP = {"warmup_num_steps": 1000, "warmup_type": "log", "last_batch_iteration": -1}

SCHEDULERS: Mapping[str, Scheduler] = {
    "WarmupLR": Scheduler({"warmup_min_lr": 0.0, "warmup_max_lr": GROUP_LR, **_WARMUP}, _warmup_lr),
    "WarmupDecayLR": Scheduler(
        {"total_num_steps": REQUIRED, "warmup_min_lr": 0.0, "warmup_max_lr": 1e-3, **_WARMUP}, _warmup_decay_lr
    ),
    "WarmupCosineLR": Scheduler(
        {"total_num_steps": REQUIRED, "warmup_min_ratio": 0.0, "cos_min_ratio": 1e-4, **_WARMUP}, _warmup_cosine_lr
    ),
    "OneCycle": Scheduler(
        {
            **{"cycle_min_lr": REQUIRED, "cycle_max_lr": REQUIRED, "decay_lr_rate": 0.0},
            **{"cycle_first_step_size": 2000, "cycle_second_step_size": None, "cycle_first_stair_count": 0},
            **{"cycle_second_stair_count": None, "decay_step_size": 0, "cycle_momentum": True},
            **{"cycle_min_mom": 0.8, "cycle_max_mom": 0.9, "decay_mom_rate": 0.0, "last_batch_iteration": -1},
        },
        _one_cycle,
    ),
    "LRRangeTest": Scheduler(
        {
            **{"lr_range_test_min_lr": 1e-3, "lr_range_test_step_size": 2000, "lr_range_test_step_rate": 1.0},
            **{"lr_range_test_staircase": False, "last_batch_iteration": -1},
        },
        _lr_range_test,
    ),
}


def recognises(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is a DeepSpeed config: a ``{type, params}`` optimizer or scheduler, or an engine field.

    Example:
        >>> recognises({"optimizer": {"type": "AdamW", "params": {"lr": 1e-4}}}), recognises({"optimizer": "AdamW"})
        (True, False)
    """

    def typed(section: Any, keys: tuple[str, ...]) -> bool:
        return isinstance(section, Mapping) and "type" in section and {str(key) for key in section} <= set(keys)

    return (
        typed(data.get("optimizer"), _OPTIMIZER_KEYS)
        or typed(data.get("scheduler"), _SCHEDULER_KEYS)
        or any(key in data for key in _DISTINCTIVE)
    )


def _autos(problems: Problems, data: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduler's params with ``total_num_steps: auto`` filled from the run; every other "auto" a problem."""
    sections = {name: data.get(name) for name in ("optimizer", "scheduler")}
    filled: dict[str, Any] = {}
    for name, section in sections.items():
        params = section.get("params") if isinstance(section, Mapping) else None
        if not isinstance(params, Mapping):
            continue
        for key, value in params.items():
            path = f"{name}.params.{key}"
            if value != "auto":
                continue
            if path == "scheduler.params.total_num_steps" and run.get("total_num_steps") is not None:
                filled[str(key)] = run["total_num_steps"]
                continue
            source = AUTO_FROM.get(path, "an argument of Hugging Face's Trainer")
            problems.add(path, f'"auto" is filled in by Hugging Face\'s Trainer from {source}; write the value')
    if data.get("gradient_clipping") == "auto":
        problems.add(
            "gradient_clipping",
            f'"auto" is filled in by Hugging Face\'s Trainer from {AUTO_FROM["gradient_clipping"]}; write the value',
        )
    return filled


def _params(problems: Problems, section: Mapping[str, Any], name: str) -> dict[str, Any]:
    params = section.get("params", {})
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        problems.add(f"{name}.params", f"expected a mapping, got {type(params).__name__}")
        return {}
    return {str(key): value for key, value in params.items()}


def _check_keys(problems: Problems, params: Mapping[str, Any], keys: tuple[str, ...], path: str, what: str) -> None:
    for key in params:
        if key not in keys:
            with problems.collect():
                raise unknown_choice(f"{path}.{key}", key, keys, what=what)


def _adam(
    problems: Problems, params: dict[str, Any], kind: str, unexpressed: list[Unexpressed]
) -> tuple[dict[str, Any], Optimizer]:
    """FusedAdam (or torch's class with ``torch_adam``), decoupled unless ``adam_w_mode: false`` on ``adam``."""
    w_mode, torch_adam = params.pop("adam_w_mode", True), params.pop("torch_adam", False)
    for key, value in (("adam_w_mode", w_mode), ("torch_adam", torch_adam)):
        if not isinstance(value, bool):
            problems.add(f"optimizer.params.{key}", f"expected true or false, got {truncate(value)}")
    name = "AdamW" if kind == "adamw" or w_mode else "Adam"
    if "fp32_optimizer_states" in params:
        unexpressed.append(
            Unexpressed(
                "optimizer.params.fp32_optimizer_states",
                params.pop("fp32_optimizer_states"),
                "read only by DeepSpeed's CPU Adam under ZeRO offload",
            )
        )
    if torch_adam is True:
        _check_keys(problems, params, TORCH_ADAM_KEYS[name], "optimizer.params", f"argument of torch.optim.{name}")
        return {"name": name, **params}, dataclasses.replace(_FUSED_ADAM, name=name)
    _check_keys(problems, params, _FUSED_ADAM.keys, "optimizer.params", "argument of DeepSpeed's FusedAdam")
    if params.pop("bias_correction", True) is not True:
        problems.add("optimizer.params.bias_correction", "torch's Adam and AdamW always correct the bias")
    if params.pop("amsgrad", False) is not False:
        problems.add("optimizer.params.amsgrad", "DeepSpeed's FusedAdam does not support AMSGrad (it raises)")
    _grad_none(params, unexpressed)
    return {"name": name, **_FUSED_ADAM.defaults, **params}, dataclasses.replace(_FUSED_ADAM, name=name)


def _grad_none(params: dict[str, Any], unexpressed: list[Unexpressed]) -> None:
    if params.pop("set_grad_none", True) is not True:
        unexpressed.append(
            Unexpressed(
                "optimizer.params.set_grad_none",
                False,
                "zero_grad() then zeroes the gradients in place; torch's zero_grad(set_to_none=False) does that",
            )
        )


def _optimizer(
    problems: Problems, data: Mapping[str, Any], unexpressed: list[Unexpressed]
) -> tuple[dict[str, Any], float | None, bool]:
    """The optimizer section, the param group's lr and whether the optimizer has betas."""
    section = data.get("optimizer")
    if section is None:
        problems.add(
            "optimizer",
            "no optimizer section: DeepSpeed then steps the client's optimizer; build that one with optforge",
        )
        return {}, None, False
    if not isinstance(section, Mapping) or not isinstance(section.get("type"), str):
        problems.add("optimizer", "expected a mapping with a type (a string) and params")
        return {}, None, False
    _check_keys(problems, section, _OPTIMIZER_KEYS, "optimizer", "optimizer field")
    if "legacy_fusion" in section:
        unexpressed.append(
            Unexpressed("optimizer.legacy_fusion", section["legacy_fusion"], "read only by the fp16 engine")
        )
    kind, params = section["type"], _params(problems, section, "optimizer")
    if "max_grad_norm" in params:
        problems.add("optimizer.params.max_grad_norm", "DeepSpeed rejects it here: use gradient_clipping")
        params.pop("max_grad_norm")
    entry = OPTIMIZERS.get(kind.lower())
    if isinstance(entry, str) and entry in TORCH_OPTIMIZERS:
        default_lr, betas = TORCH_OPTIMIZERS[entry]
        return {"name": entry, **params}, params.get("lr", default_lr), betas
    if isinstance(entry, str):
        problems.add("optimizer.type", f"{kind!r}: {entry}")
        return {}, None, False
    if entry is not None:
        if kind.lower() in ("adam", "adamw"):
            built, entry = _adam(problems, params, kind.lower(), unexpressed)
        else:
            _check_keys(problems, params, entry.keys, "optimizer.params", f"argument of DeepSpeed's {kind}")
            for key, (value, why) in entry.fixed.items():
                if params.pop(key, value) != value:
                    problems.add(f"optimizer.params.{key}", why)
            _grad_none(params, unexpressed)
            built = {"name": entry.name, **entry.defaults, **params}
        return built, built.get("lr", entry.defaults.get("lr")), entry.betas
    if kind in TORCH_OPTIMIZERS:
        default_lr, betas = TORCH_OPTIMIZERS[kind]
        return {"name": kind, **params}, params.get("lr", default_lr), betas
    with problems.collect():
        # DeepSpeed's own types match in any case: listed once, lower-cased.
        torch_only = [name for name in TORCH_OPTIMIZERS if name.lower() not in OPTIMIZERS]
        raise unknown_choice("optimizer.type", kind, (*OPTIMIZERS, *torch_only), what="optimizer type")
    return {}, None, False


def _lr_value(lr: Any) -> float | None:
    return float(lr) if isinstance(lr, numbers.Real) and not isinstance(lr, bool) and math.isfinite(lr) else None


def _schedule(
    problems: Problems,
    data: Mapping[str, Any],
    filled: Mapping[str, Any],
    optimizer: tuple[Any, bool, bool],
    unexpressed: list[Unexpressed],
) -> dict[str, Any] | None:
    section = data.get("scheduler")
    if section is None:
        return None
    if not isinstance(section, Mapping) or not isinstance(section.get("type"), str):
        problems.add("scheduler", "expected a mapping with a type (a string) and params")
        return None
    _check_keys(problems, section, _SCHEDULER_KEYS, "scheduler", "scheduler field")
    kind, params = section["type"], {**_params(problems, section, "scheduler"), **filled}
    if kind in TORCH_SCHEDULERS:
        return {"name": kind, **params}
    if kind not in SCHEDULERS:
        with problems.collect():
            raise unknown_choice("scheduler.type", kind, (*SCHEDULERS, *TORCH_SCHEDULERS), what="scheduler type")
        return None
    entry = SCHEDULERS[kind]
    _check_keys(problems, params, tuple(entry.arguments), "scheduler.params", f"argument of {kind}")
    values = {key: params.get(key, default) for key, default in entry.arguments.items()}
    missing = [key for key, value in values.items() if value is REQUIRED or value == "auto"]
    for key in missing:
        if values[key] is REQUIRED:
            problems.add(f"scheduler.params.{key}", f"{kind} needs {key}")
    if values["last_batch_iteration"] != -1:
        problems.add(
            "scheduler.params.last_batch_iteration",
            f"resuming at {truncate(values['last_batch_iteration'])}: load the scheduler's state_dict instead",
        )
    if missing:
        return None
    lr, betas, built = optimizer
    return entry.make(Args(values, _lr_value(lr), betas, problems, unexpressed, lr_reported=lr == "auto" or not built))


def _clipping(problems: Problems, data: Mapping[str, Any]) -> dict[str, Any] | None:
    value = data.get("gradient_clipping", 1.0)
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 or math.isinf(value):
        problems.add("gradient_clipping", f"expected a number >= 0, got {truncate(value)}")
        return None
    return {"max_norm": float(value)} if value > 0 else None


def translate(data: Mapping[str, Any], run: Mapping[str, Any]) -> Translation:
    """The optforge document of a DeepSpeed config.

    ``run["total_num_steps"]`` fills a ``scheduler.params.total_num_steps: "auto"``.

    Raises:
        ConfigError: listing every problem, each at DeepSpeed's field path
            (``scheduler.params.warmup_num_steps``).
    """
    problems, unexpressed = Problems(), []
    filled = _autos(problems, data, run)
    optimizer, lr, betas = _optimizer(problems, data, unexpressed)
    document: dict[str, Any] = {"optimizer": {**optimizer, "no_weight_decay": False} if optimizer else {}}
    schedule = _schedule(problems, data, filled, (lr, betas, bool(optimizer)), unexpressed)
    if schedule is not None:
        document["schedule"] = schedule
    clip = _clipping(problems, data)
    if clip is not None:
        document["clip_grad"] = clip
    engine = [str(key) for key in data if key not in _READ]
    if engine:
        unexpressed.append(
            Unexpressed(
                ", ".join(engine),
                {key: data[key] for key in engine},
                "the DeepSpeed engine's (ZeRO, precision, batch sizes), not the optimizer's: optforge does not "
                "read them; step the scheduler once per optimizer step, every gradient_accumulation_steps batches",
            )
        )
    problems.raise_if_any()
    return Translation("deepspeed", document, tuple(unexpressed))
