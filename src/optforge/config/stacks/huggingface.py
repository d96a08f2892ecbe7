"""Hugging Face ``TrainingArguments``: the optimizer, groups, schedule and clipping its ``Trainer`` builds.

The fields are those of transformers 5.25 (plus v4's ``warmup_ratio``). What
``Trainer.create_optimizer_and_scheduler(num_training_steps)`` makes of them:

* ``optim`` picks the optimizer (:data:`OPTIMIZERS`), with ``learning_rate``, the Adam
  fields and ``optim_args`` (``"k=v,k=v"``) as its hyperparameters;
* two param groups: ``weight_decay`` and ``0.0``, the latter for parameters held by an
  ``nn.LayerNorm`` or whose lower-cased name matches one of :data:`NO_DECAY_PATTERNS`;
* ``lr_scheduler_type`` with ``lr_scheduler_kwargs`` (:data:`SCHEDULES`), after a linear
  warmup of ``warmup_steps`` (a count, or a ratio of the run when below 1);
* ``max_grad_norm`` as clipping by the total norm (0 turns it off).

Example:
    >>> t = translate({"learning_rate": 1e-3, "lr_scheduler_type": "cosine", "warmup_steps": 0.1},
    ...               {"num_training_steps": 100})
    >>> t.document["schedule"]["lr"]["cosine_cycles"]["warmup_steps"], t.document["clip_grad"]
    (10, {'max_norm': 1.0})
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from optforge.config.problems import Problems
from optforge.config.stacks.base import Translation, Unexpressed
from optforge.errors import ConfigError, truncate, unknown_choice

__all__ = ["FIELDS", "NO_DECAY_PATTERNS", "OPTIMIZERS", "SCHEDULES", "recognises", "translate"]

# Every field of transformers 5.25's TrainingArguments, and v4's warmup_ratio.
FIELDS: tuple[str, ...] = (
    *[
        "output_dir",
        "per_device_train_batch_size",
        "num_train_epochs",
        "max_steps",
        "learning_rate",
        "lr_scheduler_type",
    ],
    *[
        "lr_scheduler_kwargs",
        "warmup_steps",
        "optim",
        "optim_args",
        "weight_decay",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
    ],
    *["optim_target_modules", "gradient_accumulation_steps", "average_tokens_across_devices", "max_grad_norm"],
    *["label_smoothing_factor", "bf16", "fp16", "bf16_full_eval", "fp16_full_eval", "tf32", "activation_checkpointing"],
    *["activation_checkpointing_kwargs", "gradient_checkpointing", "gradient_checkpointing_kwargs", "torch_compile"],
    *["torch_compile_backend", "torch_compile_mode", "use_liger_kernel", "liger_kernel_config", "use_cache"],
    *["neftune_noise_alpha", "torch_empty_cache_steps", "auto_find_batch_size", "logging_strategy", "logging_steps"],
    *["logging_first_step", "log_on_each_node", "logging_nan_inf_filter", "include_num_input_tokens_seen", "log_level"],
    *["log_level_replica", "disable_tqdm", "report_to", "run_name", "project", "trackio_space_id", "trackio_bucket_id"],
    *["trackio_static_space_id", "eval_strategy", "eval_steps", "eval_delay", "per_device_eval_batch_size"],
    *["prediction_loss_only", "eval_on_start", "eval_do_concat_batches", "eval_use_gather_object"],
    *["eval_accumulation_steps", "include_for_metrics", "batch_eval_metrics", "save_only_model", "save_strategy"],
    *["save_steps", "save_on_each_node", "save_total_limit", "enable_jit_checkpoint", "push_to_hub", "hub_token"],
    *["hub_private_repo", "hub_model_id", "hub_strategy", "hub_always_push", "hub_revision", "load_best_model_at_end"],
    *["metric_for_best_model", "greater_is_better", "ignore_data_skip", "restore_callback_states_from_checkpoint"],
    *[
        "full_determinism",
        "seed",
        "data_seed",
        "use_cpu",
        "accelerator_config",
        "parallelism_config",
        "dataloader_drop_last",
    ],
    *["dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor"],
    *["dataloader_multiprocessing_context", "dataloader_in_order", "remove_unused_columns", "label_names"],
    *["train_sampling_strategy", "length_column_name", "ddp_find_unused_parameters", "ddp_bucket_cap_mb"],
    *[
        "ddp_broadcast_buffers",
        "ddp_static_graph",
        "ddp_backend",
        "ddp_timeout",
        "fsdp",
        "fsdp_config",
        "deepspeed",
        "debug",
    ],
    *[
        "skip_memory_metrics",
        "do_train",
        "do_eval",
        "do_predict",
        "resume_from_checkpoint",
        "local_rank",
        "warmup_ratio",
    ],
)

# The fields this module reads; every other field set is named in a warning.
READ: tuple[str, ...] = (
    *["learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "optim", "optim_args"],
    *["lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio", "max_grad_norm", "max_steps"],
)

# Fields whose value shapes the run, not the optimizer, named in the warning with what they do.
TRAINER_FIELDS: Mapping[str, str] = {
    "gradient_accumulation_steps": "the Trainer steps the optimizer once every N batches; "
    "optforge's schedule counts optimizer steps, so step it at the same boundary",
    "optim_target_modules": "used only by the GaLore and APOLLO optimizers, which optforge has not",
}

DEFAULTS: Mapping[str, Any] = {
    "learning_rate": 5e-5,
    "weight_decay": 0.0,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "optim": "adamw_torch_fused",
    "lr_scheduler_type": "linear",
    "warmup_steps": 0,
    "warmup_ratio": 0.0,
    "max_grad_norm": 1.0,
    "max_steps": -1,
}

# The names get_decay_parameter_names exempts from weight decay (searched in the lower-cased name).
NO_DECAY_PATTERNS: tuple[str, ...] = ("bias", "layernorm", "rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")

# The Trainer's decay split as optforge's no_weight_decay: its LayerNorm type and its name patterns only.
NO_DECAY: Mapping[str, Any] = {
    "bias": False,
    "norm": False,
    "embedding": False,
    "ndim_1": False,
    "model": False,
    "module_types": ["LayerNorm"],
    "patterns": list(NO_DECAY_PATTERNS),
}


@dataclasses.dataclass(frozen=True)
class Optim:
    """What one ``optim`` name builds: optforge's optimizer, the fields it takes and its ``optim_args``.

    ``adam`` adds ``betas`` and ``eps``; ``optim_args`` maps each key the Trainer reads to its
    type; ``fixed`` are set by the Trainer whatever the file says; ``warmup`` passes the
    ``warmup_steps`` field as written (a ratio stays a float).
    """

    name: str
    adam: bool = False
    optim_args: Mapping[str, Callable[[str], Any]] = dataclasses.field(default_factory=dict)
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    weight_decay: bool = False
    warmup: bool = False


def _flag(text: str) -> bool:
    return text.lower() in ("true", "1", "yes")


_SCHEDULE_FREE = {"weight_lr_power": float, "r": float}

OPTIMIZERS: Mapping[str, Optim] = {
    "adamw_torch": Optim("AdamW", adam=True),
    "adamw_torch_fused": Optim("AdamW", adam=True, fixed={"fused": True}),
    "sgd": Optim("SGD", optim_args={"momentum": float, "dampening": float, "weight_decay": float, "nesterov": _flag}),
    "adagrad": Optim("Adagrad", optim_args={"lr_decay": float, "weight_decay": float, "eps": float}),
    "rmsprop": Optim(
        "RMSprop",
        optim_args={"momentum": float, "alpha": float, "eps": float, "weight_decay": float, "centered": _flag},
    ),
    "schedule_free_adamw": Optim(
        "AdamWScheduleFree", adam=True, optim_args=_SCHEDULE_FREE, weight_decay=True, warmup=True
    ),
    "schedule_free_radam": Optim("RAdamScheduleFree", adam=True, optim_args=_SCHEDULE_FREE, weight_decay=True),
    "schedule_free_sgd": Optim("SGDScheduleFree", optim_args=_SCHEDULE_FREE, weight_decay=True, warmup=True),
    "adafactor": Optim("transformers.trainer_adafactor"),  # transformers' class: needs transformers installed
}

# Every other optim name of 5.25, and the package its optimizer comes from.
ELSEWHERE: Mapping[str, str] = {
    **dict.fromkeys(("adamw_torch_xla",), "torch_xla"),
    **dict.fromkeys(("adamw_torch_npu_fused",), "torch_npu"),
    **dict.fromkeys(("adamw_anyprecision",), "torchdistx"),
    **dict.fromkeys(("adamw_torch_4bit", "adamw_torch_8bit"), "torchao"),
    **dict.fromkeys(
        [
            "ademamix",
            "adamw_bnb_8bit",
            "adamw_8bit",
            "ademamix_8bit",
            "lion_8bit",
            "lion_32bit",
            "paged_adamw_32bit",
            "paged_adamw_8bit",
            "paged_ademamix_32bit",
            "paged_ademamix_8bit",
            "paged_lion_32bit",
            "paged_lion_8bit",
            "rmsprop_bnb",
            "rmsprop_bnb_8bit",
            "rmsprop_bnb_32bit",
        ],
        "bitsandbytes",
    ),
    **dict.fromkeys(
        [
            "galore_adamw",
            "galore_adamw_8bit",
            "galore_adafactor",
            "galore_adamw_layerwise",
            "galore_adamw_8bit_layerwise",
            "galore_adafactor_layerwise",
        ],
        "galore-torch",
    ),
    **dict.fromkeys(("apollo_adamw", "apollo_adamw_layerwise"), "apollo-torch"),
    **dict.fromkeys(("lomo", "adalomo"), "lomo-optim"),
    **dict.fromkeys(("grokadamw",), "grokadamw"),
    **dict.fromkeys(("stable_adamw",), "torch-optimi"),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """The facts one schedule is made from: the peak lr, the warmup and the run's length."""

    peak: float
    warmup: int
    total: int | None
    kwargs: Mapping[str, Any]
    problems: Problems
    unexpressed: list[Unexpressed]

    def need_total(self) -> int:
        if self.total is None:
            raise ConfigError(
                "this schedule needs the run's length: pass num_training_steps (total_steps=, --steps N) "
                "or set max_steps",
                path="num_training_steps",
            )
        if self.warmup >= self.total:
            raise ConfigError(
                f"the warmup ({self.warmup} steps) does not end before the run does ({self.total} steps)",
                path="warmup_steps",
            )
        return self.total


def _linear(run: Run) -> dict[str, Any]:
    return {"linear_decay": {"peak_value": run.peak, "warmup_steps": run.warmup, "decay_steps": run.need_total()}}


def _cosine(end: float = 0.0, *, hard: bool = False, cycles: float = 0.5) -> dict[str, Any]:
    return {"cycles": cycles, "hard_restarts": hard, "end_value": end}


def _cosine_cycles(run: Run, **extra: Any) -> dict[str, Any]:
    body = {"peak_value": run.peak, "warmup_steps": run.warmup, "decay_steps": run.need_total(), **extra}
    return {"cosine_cycles": body}


def _min_lr(run: Run) -> float:
    """The floor of the min-lr cosines: exactly one of ``min_lr`` and ``min_lr_rate``."""
    kwargs = run.kwargs
    if ("min_lr" in kwargs) == ("min_lr_rate" in kwargs) or None in (
        kwargs.get("min_lr", 0),
        kwargs.get("min_lr_rate", 0),
    ):
        raise ConfigError("give exactly one of min_lr and min_lr_rate", path="lr_scheduler_kwargs")
    return float(kwargs["min_lr"]) if "min_lr" in kwargs else run.peak * float(kwargs["min_lr_rate"])


def _schedule_cosine(run: Run) -> dict[str, Any]:
    return _cosine_cycles(run, **_cosine(cycles=float(run.kwargs.get("num_cycles", 0.5))))


def _schedule_restarts(run: Run) -> dict[str, Any]:
    return _cosine_cycles(run, **_cosine(hard=True, cycles=float(run.kwargs.get("num_cycles", 1))))


def _schedule_min_lr(run: Run) -> dict[str, Any]:
    return _cosine_cycles(run, **_cosine(_min_lr(run), cycles=float(run.kwargs.get("num_cycles", 0.5))))


def _schedule_warmup_min_lr(run: Run) -> dict[str, Any]:
    # Its warmup reaches the peak one step early ((s + 1) / W) and its decay runs one step ahead.
    total, end, cycles = run.need_total(), _min_lr(run), float(run.kwargs.get("num_cycles", 0.5))
    rate = run.kwargs.get("warmup_lr_rate")
    wave = {"peak_value": run.peak, "end_value": end, "cycles": cycles}
    if rate is None:
        return {
            "shift": {
                "steps": 1,
                "schedule": {"cosine_cycles": {**wave, "warmup_steps": run.warmup, "decay_steps": total}},
            }
        }
    start = run.peak * float(rate)
    if run.warmup <= 1:  # one step at the warmup's start, then the decay from step 1
        body = {"shift": {"steps": 1, "schedule": {"cosine_cycles": {**wave, "decay_steps": total - 1}}}}
        phases = [{"schedule": {"constant": start}, "steps": 1}, {"schedule": body}]
        return {"join": {"phases": phases}} if run.warmup == 1 else body
    return {"cosine_cycles": {**wave, "init_value": start, "warmup_steps": run.warmup - 1, "decay_steps": total - 1}}


def _schedule_polynomial(run: Run) -> dict[str, Any]:
    end, power = float(run.kwargs.get("lr_end", 1e-7)), float(run.kwargs.get("power", 1.0))
    if not end < run.peak:
        raise ConfigError(
            f"lr_end ({end}) must be smaller than the initial lr ({run.peak})", path="lr_scheduler_kwargs.lr_end"
        )
    body = {"peak_value": run.peak, "end_value": end, "warmup_steps": run.warmup, "power": power}
    return {"polynomial_decay": {**body, "decay_steps": run.need_total()}}


def _schedule_constant(run: Run) -> dict[str, Any]:
    if run.warmup:
        run.unexpressed.append(
            Unexpressed("warmup_steps", run.warmup, "the Trainer's constant schedule has no warmup; nor has this one")
        )
    return {"constant": run.peak}


def _schedule_constant_warmup(run: Run) -> dict[str, Any]:
    if not run.warmup:
        return {"constant": run.peak}
    return {"linear_ramp_to_constant": {"learning_rate": run.peak, "num_ramp_steps": run.warmup}}


def _schedule_inverse_sqrt(run: Run) -> dict[str, Any]:
    timescale = run.kwargs.get("timescale")
    timescale = int(timescale) if timescale is not None else (run.warmup or 10_000)
    return {"inverse_sqrt": {"peak_value": run.peak, "warmup_steps": run.warmup, "timescale": timescale}}


_WSD_SHAPES = ("linear", "cosine", "1-sqrt")


def _schedule_wsd(run: Run) -> dict[str, Any]:
    kwargs = run.kwargs
    if kwargs.get("num_decay_steps") is None:
        raise ConfigError("warmup_stable_decay needs num_decay_steps", path="lr_scheduler_kwargs.num_decay_steps")
    decay = int(kwargs["num_decay_steps"])
    stable = kwargs.get("num_stable_steps")
    if stable is None:
        stable = run.need_total() - run.warmup - decay
    stable = int(stable)
    if stable < 0:
        raise ConfigError(
            f"warmup ({run.warmup}) and num_decay_steps ({decay}) take more than the run's {run.total} steps",
            path="lr_scheduler_kwargs.num_decay_steps",
        )
    shapes = {key: kwargs.get(key, default) for key, default in (("warmup_type", "linear"), ("decay_type", "cosine"))}
    for key, shape in shapes.items():
        if shape not in _WSD_SHAPES:
            raise unknown_choice(f"lr_scheduler_kwargs.{key}", shape, _WSD_SHAPES, what=key)
    if shapes["decay_type"] == "cosine" and float(kwargs.get("num_cycles", 0.5)) != 0.5:
        raise ConfigError(
            "optforge's warmup_stable_decay decays along half a cosine (num_cycles 0.5)",
            path="lr_scheduler_kwargs.num_cycles",
        )
    end = run.peak * float(kwargs.get("min_lr_ratio", 0.0))
    body = {
        "peak_value": run.peak,
        "end_value": end,
        "warmup_steps": run.warmup,
        "decay_steps": run.warmup + stable + decay,
        "cooldown_steps": decay,
        "shape": shapes["decay_type"],
        "warmup_shape": shapes["warmup_type"],
    }
    if run.warmup and end:
        body["init_value"] = end
    return {"warmup_stable_decay": body}


def _schedule_plateau(run: Run) -> dict[str, Any]:
    if run.warmup:
        run.unexpressed.append(
            Unexpressed(
                "warmup_steps", run.warmup, "the Trainer's reduce_lr_on_plateau has no warmup; nor has this one"
            )
        )
    return {"name": "ReduceLROnPlateau", **run.kwargs}


def _schedule_greedy(run: Run) -> dict[str, Any]:
    raise ConfigError(
        "greedy is transformers' own GreedyLR, which optforge has not; "
        "reduce_lr_on_plateau is the closest metric-driven scheduler",
        path="lr_scheduler_type",
    )


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One ``lr_scheduler_type``: the schedule it becomes, and the ``lr_scheduler_kwargs`` it takes.

    ``kwargs`` is ``None`` where the Trainer passes every key on (to a scheduler that checks them),
    and ``dropped`` where it drops them all.
    """

    make: Callable[[Run], dict[str, Any]]
    kwargs: tuple[str, ...] | None = ()
    dropped: bool = False
    closed_form: bool = True


SCHEDULES: Mapping[str, Schedule] = {
    "linear": Schedule(_linear),
    "cosine": Schedule(_schedule_cosine, ("num_cycles",)),
    "cosine_with_restarts": Schedule(_schedule_restarts, ("num_cycles",)),
    "polynomial": Schedule(_schedule_polynomial, ("lr_end", "power")),
    "constant": Schedule(_schedule_constant, dropped=True),
    "constant_with_warmup": Schedule(_schedule_constant_warmup, dropped=True),
    "inverse_sqrt": Schedule(_schedule_inverse_sqrt, ("timescale",)),
    "reduce_lr_on_plateau": Schedule(_schedule_plateau, None, closed_form=False),
    "cosine_with_min_lr": Schedule(_schedule_min_lr, ("num_cycles", "min_lr", "min_lr_rate")),
    "cosine_warmup_with_min_lr": Schedule(
        _schedule_warmup_min_lr, ("num_cycles", "min_lr", "min_lr_rate", "warmup_lr_rate")
    ),
    "warmup_stable_decay": Schedule(
        _schedule_wsd,
        ("num_decay_steps", "num_stable_steps", "warmup_type", "decay_type", "min_lr_ratio", "num_cycles"),
    ),
    "greedy": Schedule(_schedule_greedy, None, closed_form=False),
}

# Distinctive fields: a file holding one of them, and only TrainingArguments fields, is Hugging Face's.
_DISTINCTIVE = (
    "optim",
    "lr_scheduler_type",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "optim_args",
    "lr_scheduler_kwargs",
    "per_device_train_batch_size",
)


def recognises(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is a mapping of ``TrainingArguments`` fields with one only Hugging Face writes.

    Example:
        >>> recognises({"optim": "adamw_torch", "learning_rate": 1e-4}), recognises({"name": "AdamW"})
        (True, False)
    """
    keys = {str(key) for key in data}
    return bool(keys) and keys <= set(FIELDS) and any(key in keys for key in _DISTINCTIVE)


def _number(problems: Problems, data: Mapping[str, Any], key: str) -> float:
    value = data.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        problems.add(key, f"expected a number, got {type(value).__name__} {truncate(value)}")
        return float(DEFAULTS[key])
    return float(value)


def _parse_optim_args(problems: Problems, value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, str):
        problems.add("optim_args", f"expected a string of key=value pairs, got {type(value).__name__}")
        return {}
    pairs: dict[str, str] = {}
    for item in value.replace(" ", "").split(","):
        key, sep, text = item.partition("=")
        if not sep:
            problems.add("optim_args", f"expected key=value, got {truncate(item)}")
            continue
        pairs[key] = text
    return pairs


def _kwargs(problems: Problems, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.add("lr_scheduler_kwargs", f"not a JSON object: {exc}")
            return {}
    if not isinstance(value, Mapping):
        problems.add("lr_scheduler_kwargs", f"expected a mapping, got {type(value).__name__}")
        return {}
    return {str(key): item for key, item in value.items()}


def _warmup_steps(problems: Problems, data: Mapping[str, Any], total: int | None) -> int:
    steps = _number(problems, data, "warmup_steps")
    if steps < 0:
        problems.add("warmup_steps", f"must be >= 0, got {truncate(steps)}")
        return 0
    if steps >= 1:
        return int(steps)
    ratio = steps if steps > 0 else _number(problems, data, "warmup_ratio") if "warmup_ratio" in data else 0.0
    if not ratio:
        return 0
    if total is None:
        problems.add(
            "warmup_steps" if steps else "warmup_ratio",
            f"a ratio of the run ({ratio}) needs the run's length: pass num_training_steps or set max_steps",
        )
        return 0
    return math.ceil(total * ratio)


def _optimizer(problems: Problems, data: Mapping[str, Any], unexpressed: list[Unexpressed]) -> dict[str, Any]:
    optim = data.get("optim", DEFAULTS["optim"])
    if not isinstance(optim, str):
        problems.add("optim", f"expected the name of an optimizer (a string), got {truncate(optim)}")
        return {}
    if optim in ELSEWHERE:
        problems.add("optim", f"{optim!r} builds an optimizer of {ELSEWHERE[optim]}, which optforge has not")
        return {}
    if optim not in OPTIMIZERS:
        with problems.collect():
            raise unknown_choice("optim", optim, (*OPTIMIZERS, *ELSEWHERE), what="optim")
        return {}
    spec = OPTIMIZERS[optim]
    section: dict[str, Any] = {"name": spec.name, "lr": _number(problems, data, "learning_rate")}
    if spec.adam:
        section["betas"] = [_number(problems, data, "adam_beta1"), _number(problems, data, "adam_beta2")]
        section["eps"] = _number(problems, data, "adam_epsilon")
    weight_decay = _number(problems, data, "weight_decay")
    section["weight_decay"] = weight_decay
    section.update(spec.fixed)
    if spec.warmup:
        warmup = data.get("warmup_steps", DEFAULTS["warmup_steps"])
        if isinstance(warmup, float) and not warmup.is_integer():
            # The Trainer hands the field to the optimizer as written: a ratio 0.1 makes its first step 10x the lr.
            problems.add(
                "warmup_steps",
                f"{optim!r} takes warmup_steps as the optimizer's own step count, unconverted (the Trainer "
                f"passes {warmup} on as it is); write a whole number of steps",
            )
        section["warmup_steps"] = int(warmup) if isinstance(warmup, float) and warmup.is_integer() else warmup
    for key, text in _parse_optim_args(problems, data.get("optim_args")).items():
        path = f"optim_args.{key}"
        if key not in spec.optim_args:
            unexpressed.append(Unexpressed(path, text, f"the Trainer ignores this key for optim {optim!r}"))
            continue
        try:
            value = spec.optim_args[key](text)
        except ValueError:
            problems.add(path, f"expected a number, got {truncate(text)}")
            continue
        if key == "weight_decay" and not spec.weight_decay:
            unexpressed.append(
                Unexpressed(
                    path, text, "both of the Trainer's groups set their own weight_decay, so this has no effect"
                )
            )
            continue
        section[key] = value
    section["no_weight_decay"] = dict(NO_DECAY)
    return section


def _schedule(
    problems: Problems, data: Mapping[str, Any], total: int | None, unexpressed: list[Unexpressed]
) -> dict[str, Any] | None:
    kind = data.get("lr_scheduler_type", DEFAULTS["lr_scheduler_type"])
    if not isinstance(kind, str) or kind not in SCHEDULES:
        with problems.collect():
            raise unknown_choice("lr_scheduler_type", kind, SCHEDULES, what="lr_scheduler_type")
        return None
    entry = SCHEDULES[kind]
    kwargs = _kwargs(problems, data.get("lr_scheduler_kwargs"))
    if entry.dropped:
        unexpressed.extend(
            Unexpressed(f"lr_scheduler_kwargs.{key}", value, f"the Trainer passes no kwargs to {kind!r}")
            for key, value in kwargs.items()
        )
        kwargs = {}
    elif entry.kwargs is not None:
        for key in kwargs:
            if key not in entry.kwargs:
                with problems.collect():
                    raise unknown_choice(f"lr_scheduler_kwargs.{key}", key, entry.kwargs, what=f"argument of {kind!r}")
    warmup = _warmup_steps(problems, data, total)
    peak = _number(problems, data, "learning_rate")
    run = Run(peak, warmup, total, kwargs, problems, unexpressed)
    try:
        made = entry.make(run)
    except ConfigError as err:
        problems.extend(err)
        return None
    except (TypeError, ValueError) as exc:
        problems.add("lr_scheduler_kwargs", f"bad value: {exc}")
        return None
    if not entry.closed_form:
        return made
    return {"lr": made, **({"total_steps": total} if total is not None else {})}


def _total(problems: Problems, data: Mapping[str, Any], run: Mapping[str, Any]) -> int | None:
    total = run.get("num_training_steps")
    if total is None:
        steps = data.get("max_steps", -1)
        total = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None
    elif isinstance(total, bool) or not isinstance(total, int) or total < 1:
        problems.add("num_training_steps", f"expected a whole number >= 1, got {truncate(total)}")
        return None
    return total


def translate(data: Mapping[str, Any], run: Mapping[str, Any]) -> Translation:
    """The optforge document of a mapping of ``TrainingArguments`` fields.

    ``run["num_training_steps"]`` is the run's length in optimizer steps (else the file's
    ``max_steps``), what the Trainer passes to ``create_optimizer_and_scheduler``.

    Raises:
        ConfigError: listing every problem, each at its field's path (``lr_scheduler_kwargs.power``).
    """
    problems, unexpressed = Problems(), []
    for key in data:
        if key not in FIELDS:
            with problems.collect():
                raise unknown_choice(str(key), key, FIELDS, what="TrainingArguments field")
    total = _total(problems, data, run)
    document: dict[str, Any] = {"optimizer": _optimizer(problems, data, unexpressed)}
    schedule = _schedule(problems, data, total, unexpressed)
    if schedule is not None:
        document["schedule"] = schedule
    clip = (
        0.0 if "max_grad_norm" in data and data["max_grad_norm"] is None else _number(problems, data, "max_grad_norm")
    )
    if clip > 0:
        document["clip_grad"] = {"max_norm": clip}
    for key, value in data.items():
        if key in READ or key not in FIELDS:
            continue
        reason = TRAINER_FIELDS.get(str(key), "the Trainer's, not the optimizer's: optforge does not read it")
        if key != "gradient_accumulation_steps" or value != 1:
            unexpressed.append(Unexpressed(str(key), value, reason))
    problems.raise_if_any()
    return Translation("huggingface", document, tuple(unexpressed))
