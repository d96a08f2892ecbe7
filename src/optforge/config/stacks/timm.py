"""timm ``train.py``'s arguments, translated into an optforge document.

* the optimizer: timm's own (``timm.<opt>``, as ``create_optimizer_v2`` builds it), with
  ``lr`` (from ``lr_base`` and the global batch size when ``lr`` is unset or 0),
  ``weight_decay``, ``momentum`` (for the optimizers that take one), ``opt_eps``,
  ``opt_betas`` and ``opt_kwargs``; no weight decay for 1-D parameters, biases and the
  model's ``no_weight_decay()`` names when ``weight_decay`` is set;
* the schedule: timm's own scheduler by name (``timm.<sched>``) with the arguments
  ``scheduler_kwargs`` makes of train.py's arguments (train.py's defaults fill what the
  mapping leaves out), stepped per epoch, or per update with ``sched_on_updates``;
* ``clip_grad`` / ``clip_mode`` as ``clip_grad:``, ``model_ema*`` as ``ema:``.

Example:
    >>> doc = translate({"opt": "adamw", "lr": 1e-3, "sched": "cosine", "epochs": 10}, {}).document
    >>> doc["optimizer"]["name"], doc["schedule"]["name"], doc["schedule"]["num_epochs"]
    ('timm.adamw', 'timm.cosine', 10)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from optforge.config.problems import Problems
from optforge.config.stacks.base import Translation, Unexpressed
from optforge.errors import truncate, unknown_choice

__all__ = ["OPTIMIZER_ARGS", "SCHEDULER_ARGS", "TRAIN_DEFAULTS", "recognises", "translate"]

# train.py's defaults of the arguments read here.
TRAIN_DEFAULTS: Mapping[str, Any] = {
    "opt": "sgd",
    "lr": None,
    "lr_base": 0.1,
    "lr_base_size": 256,
    "lr_base_scale": "",
    "batch_size": 128,
    "grad_accum_steps": 1,
    "weight_decay": 2e-5,
    "momentum": 0.9,
    "opt_eps": None,
    "opt_betas": None,
    "opt_kwargs": {},
    "layer_decay": None,
    "sched": "cosine",
    "sched_on_updates": False,
    "epochs": 300,
    "decay_epochs": 90,
    "decay_milestones": [90, 180, 270],
    "warmup_epochs": 5,
    "cooldown_epochs": 0,
    "patience_epochs": 10,
    "decay_rate": 0.1,
    "min_lr": 0.0,
    "warmup_lr": 1e-5,
    "warmup_prefix": False,
    "lr_noise": None,
    "lr_noise_pct": 0.67,
    "lr_noise_std": 1.0,
    "seed": 42,
    "lr_cycle_mul": 1.0,
    "lr_cycle_decay": 0.5,
    "lr_cycle_limit": 1,
    "lr_k_decay": 1.0,
    "eval_metric": "top1",
    "clip_grad": None,
    "clip_mode": "norm",
    "model_ema": False,
    "model_ema_decay": 0.9998,
    "model_ema_warmup": False,
}
OPTIMIZER_ARGS = (
    "opt",
    "lr",
    "lr_base",
    "lr_base_size",
    "lr_base_scale",
    "batch_size",
    "grad_accum_steps",
    "weight_decay",
    "momentum",
    "opt_eps",
    "opt_betas",
    "opt_kwargs",
    "layer_decay",
    "layer_decay_min_scale",
    "layer_decay_no_opt_scale",
)
# create_scheduler_v2's argument for each train.py argument.
SCHEDULER_ARGS: Mapping[str, str] = {
    "epochs": "num_epochs",
    "decay_epochs": "decay_epochs",
    "decay_milestones": "decay_milestones",
    "warmup_epochs": "warmup_epochs",
    "cooldown_epochs": "cooldown_epochs",
    "patience_epochs": "patience_epochs",
    "decay_rate": "decay_rate",
    "min_lr": "min_lr",
    "warmup_lr": "warmup_lr",
    "warmup_prefix": "warmup_prefix",
    "lr_noise": "noise",
    "lr_noise_pct": "noise_pct",
    "lr_noise_std": "noise_std",
    "seed": "noise_seed",
    "lr_cycle_mul": "cycle_mul",
    "lr_cycle_decay": "cycle_decay",
    "lr_cycle_limit": "cycle_limit",
    "lr_k_decay": "k_decay",
}
SCHEDULES = ("cosine", "tanh", "step", "multistep", "plateau", "poly", "wsd", "rsqrt", "constant", "none")
CLIP_MODES: Mapping[str, str] = {"norm": "max_norm", "value": "max_value", "agc": "agc"}
# timm's optimizers that take a momentum (create_optimizer_v2 passes it to these only).
MOMENTUM_OPTIMIZERS = (
    "sgd",
    "nesterov",
    "momentum",
    "sgdp",
    "sgdw",
    "nesterovw",
    "rmsprop",
    "rmsproptf",
    "lars",
    "larc",
    "nlars",
    "nlarc",
)
_READ = (
    *OPTIMIZER_ARGS,
    "sched",
    "sched_on_updates",
    *SCHEDULER_ARGS,
    "eval_metric",
    "clip_grad",
    "clip_mode",
    "model_ema",
    "model_ema_decay",
    "model_ema_warmup",
    "world_size",
)


def recognises(data: Mapping[str, Any]) -> bool:
    """train.py's arguments: ``opt`` and ``sched`` beside each other."""
    return isinstance(data, Mapping) and "opt" in data and "sched" in data


def _lr(args: Mapping[str, Any], world_size: int) -> float:
    """train.py's lr: ``lr``, or ``lr_base`` scaled by the global batch size when ``lr`` is unset or 0."""
    if args["lr"]:
        return args["lr"]
    ratio = args["batch_size"] * world_size * args["grad_accum_steps"] / args["lr_base_size"]
    scale = args["lr_base_scale"] or ("sqrt" if any(k in args["opt"].lower() for k in ("ada", "lamb")) else "linear")
    return args["lr_base"] * (math.sqrt(ratio) if scale == "sqrt" else ratio)


def _layer_rules(args: Mapping[str, Any], run: Mapping[str, Any], problems: Problems) -> list[dict[str, Any]]:
    """One rule per layer id of ``run["layer_ids"]`` (each parameter's name: its id), for ``layer_decay``.

    timm scales a layer's lr by ``layer_decay ** (top id - id)``, as optforge's ``layer_decay`` does.

    Example:
        >>> _layer_rules({"layer_decay": 0.5}, {"layer_ids": {"cls_token": 0, "w": 1, "head": 1}}, Problems())
        [{'match': ['cls_token'], 'regex': True, 'layer': 0}, {'match': ['w', 'head'], 'regex': True, 'layer': 1}]
    """
    if args["layer_decay"] is None:
        return []
    for key in ("layer_decay_min_scale", "layer_decay_no_opt_scale"):
        if args.get(key):
            problems.add(key, f"is not translated: optforge's layer_decay has no such bound, got {truncate(args[key])}")
    ids = run.get("layer_ids")
    if not isinstance(ids, Mapping) or not ids:
        problems.add(
            "layer_decay",
            "needs each parameter's layer id, which timm reads from the model's group_matcher: "
            "build with optforge.compat.timm.build(model, args)",
        )
        return []
    by_layer: dict[int, list[str]] = {}
    for name, layer in ids.items():
        by_layer.setdefault(int(layer), []).append(re.escape(str(name)))
    return [{"match": names, "regex": True, "layer": layer} for layer, names in sorted(by_layer.items())]


def translate(data: Mapping[str, Any], run: Mapping[str, Any]) -> Translation:
    """The optforge document of train.py's arguments (a mapping; ``vars(args)`` of its Namespace).

    ``run`` may give ``world_size`` (default 1), ``updates_per_epoch`` and ``layer_ids`` (each
    parameter's layer id, for ``layer_decay``: :func:`optforge.compat.timm.layer_ids`).

    Raises:
        ConfigError: listing every problem, each at its train.py argument.
    """
    problems, unexpressed = Problems(), []
    args = {**TRAIN_DEFAULTS, **data}
    world_size = run.get("world_size") or data.get("world_size") or 1
    opt = str(args["opt"]).lower()
    layer_rules = _layer_rules(args, run, problems)
    if args["lr_base_scale"] not in ("", "sqrt", "linear"):
        with problems.collect():
            raise unknown_choice("lr_base_scale", args["lr_base_scale"], ("", "sqrt", "linear"), what="lr_base_scale")
    if not isinstance(args["opt_kwargs"], Mapping):
        problems.add("opt_kwargs", f"expected a mapping, got {truncate(args['opt_kwargs'])}")
    optimizer: dict[str, Any] = {"name": f"timm.{opt}", "lr": _lr(args, world_size) if not problems else 0.0}
    optimizer["weight_decay"] = args["weight_decay"]
    if opt.rpartition("_")[2] in MOMENTUM_OPTIMIZERS:
        optimizer["momentum"] = args["momentum"]
    for key, name in (("opt_eps", "eps"), ("opt_betas", "betas")):
        if args[key] is not None:
            optimizer[name] = list(args[key]) if name == "betas" else args[key]
    optimizer.update(args["opt_kwargs"] if isinstance(args["opt_kwargs"], Mapping) else {})
    if layer_rules:
        optimizer["layer_decay"] = args["layer_decay"]
        optimizer["param_groups"] = layer_rules
    optimizer["no_weight_decay"] = (
        {"bias": True, "norm": False, "embedding": False, "ndim_1": True, "model": True}
        if args["weight_decay"]
        else False
    )
    document: dict[str, Any] = {"optimizer": optimizer}
    sched = args["sched"]
    if sched not in SCHEDULES:
        with problems.collect():
            raise unknown_choice("sched", sched, SCHEDULES, what="timm schedule")
    elif sched != "none":
        schedule = {"name": f"timm.{sched}", **{SCHEDULER_ARGS[key]: args[key] for key in SCHEDULER_ARGS}}
        schedule["plateau_mode"] = "min" if "loss" in str(args["eval_metric"]) else "max"
        schedule["step_on_epochs"] = not args["sched_on_updates"]
        if args["sched_on_updates"]:
            if not run.get("updates_per_epoch"):
                problems.add("sched_on_updates", "steps per update: give updates_per_epoch")
            schedule["updates_per_epoch"] = run.get("updates_per_epoch")
        document["schedule"] = {key: value for key, value in schedule.items() if value is not None}
    if args["clip_grad"] is not None:
        if args["clip_mode"] not in CLIP_MODES:
            with problems.collect():
                raise unknown_choice("clip_mode", args["clip_mode"], CLIP_MODES, what="clip mode")
        else:
            document["clip_grad"] = {CLIP_MODES[args["clip_mode"]]: args["clip_grad"]}
            if args["clip_mode"] == "agc":
                unexpressed.append(
                    Unexpressed(
                        "clip_mode",
                        "agc",
                        "train.py leaves the model's last two parameters out of AGC; optforge clips every parameter",
                    )
                )
    if args["model_ema"]:
        document["ema"] = {"decay": args["model_ema_decay"], "warmup": bool(args["model_ema_warmup"])}
    others = sorted(str(key) for key in data if key not in _READ)
    if others:
        unexpressed.append(Unexpressed(", ".join(others), None, "not optimizer settings: left to train.py"))
    problems.raise_if_any()
    return Translation("timm", document, tuple(unexpressed))
