"""mmengine's ``optim_wrapper`` and ``param_scheduler``, translated into an optforge document.

* ``optim_wrapper.optimizer``: the optimizer by its torch class name, its keyword arguments as
  hyperparameters; no weight-decay presets (mmengine has none).
* ``paramwise_cfg``: ordered ``optional`` param-group rules with mmengine's precedence:
  ``custom_keys`` (sorted by name, then longest first; a key matches where it is a
  substring of the parameter's full name, a root-level one read as ``.name``), then the
  combinations of norm layer, parameter named ``bias``, depthwise convolution (a
  ``Conv2d`` with ``in_channels == groups``) and 1-D parameter, each with the
  lr and weight decay mmengine gives it. mmengine makes one group per parameter; the
  document makes one group per distinct setting, holding the same parameters with the
  same hyperparameters (the same optimizer numerically).
* ``param_scheduler``: one ``WindowedChain`` (optforge's scheduler of chainable
  factors in ``[begin, end)`` windows), stepped once per iteration as mmengine's runner
  steps its schedulers: by-epoch factors every ``epoch_length`` iterations.
* ``clip_grad``: ``clip_grad: {max_norm, norm_type}`` or ``{max_value}``.

Example:
    >>> doc = translate({"optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1, "weight_decay": 1e-4},
    ...                                    "paramwise_cfg": {"norm_decay_mult": 0.0}}}, {}).document
    >>> doc["optimizer"]["name"], doc["optimizer"]["param_groups"][0]["module_type"][0]
    ('SGD', '_BatchNorm')
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from optforge.config.problems import Problems
from optforge.config.stacks.base import Translation, Unexpressed
from optforge.errors import truncate, unknown_choice

__all__ = [
    "NORM_TYPES",
    "OPTIMIZER_TYPES",
    "PARAMWISE_KEYS",
    "PLATEAU_ARGS",
    "SCHEDULER_TYPES",
    "recognises",
    "rule_paths",
    "translate",
]

# mmengine's optimizer types that torch supplies (its registry holds every torch.optim class by name).
OPTIMIZER_TYPES: tuple[str, ...] = (
    "ASGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "LBFGS",
    "Muon",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGD",
    "SparseAdam",
)
# The module types mmengine counts as norm layers (their subclasses too).
NORM_TYPES: tuple[str, ...] = ("_BatchNorm", "_InstanceNorm", "GroupNorm", "LayerNorm")
PARAMWISE_KEYS: tuple[str, ...] = (
    "custom_keys",
    "bias_lr_mult",
    "bias_decay_mult",
    "norm_decay_mult",
    "dwconv_decay_mult",
    "flat_decay_mult",
    "bypass_duplicate",
    "dcn_offset_lr_mult",
)
WRAPPER_KEYS: tuple[str, ...] = (
    "type",
    "optimizer",
    "paramwise_cfg",
    "clip_grad",
    "accumulative_counts",
    "constructor",
    "loss_scale",
    "dtype",
    "use_fsdp",
)
# mmengine's lr schedulers: the WindowedChain kind and how each argument is named there.
SCHEDULER_TYPES: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "LinearLR": ("linear", {"start_factor": "start_factor", "end_factor": "end_factor"}),
    "ConstantLR": ("constant", {"factor": "factor"}),
    "CosineAnnealingLR": ("cosine", {"T_max": "T_max", "eta_min": "eta_min", "eta_min_ratio": "eta_min_ratio"}),
    "PolyLR": ("poly", {"eta_min": "eta_min", "power": "power"}),
    "ExponentialLR": ("exponential", {"gamma": "gamma"}),
    "StepLR": ("step", {"step_size": "step_size", "gamma": "gamma"}),
    "MultiStepLR": ("multistep", {"milestones": "milestones", "gamma": "gamma"}),
    "CosineRestartLR": (
        "cosine_restart",
        {
            "periods": "periods",
            "restart_weights": "restart_weights",
            "eta_min": "eta_min",
            "eta_min_ratio": "eta_min_ratio",
        },
    ),
    "OneCycleLR": (
        "onecycle",
        {
            key: key
            for key in (
                "eta_max",
                "total_steps",
                "pct_start",
                "anneal_strategy",
                "div_factor",
                "final_div_factor",
                "three_phase",
            )
        },
    ),
}
# Arguments counted in epochs that convert_to_iter_based multiplies by the epoch length.
_EPOCH_COUNTS = ("T_max", "step_size", "total_steps")
# Lists of such counts.
_EPOCH_COUNT_LISTS = ("milestones", "periods")
_WINDOW_KEYS = ("type", "begin", "end", "by_epoch", "convert_to_iter_based", "last_step", "verbose")


def recognises(data: Mapping[str, Any]) -> bool:
    """A file of mmengine's: it has an ``optim_wrapper``."""
    return isinstance(data, Mapping) and isinstance(data.get("optim_wrapper"), Mapping)


def _optimizer(optimizer: Any, problems: Problems) -> tuple[dict[str, Any], Any, Any]:
    path = "optim_wrapper.optimizer"
    if not isinstance(optimizer, Mapping):
        problems.add(path, f"expected a mapping with a type, got {truncate(optimizer)}")
        return {}, None, None
    kind = optimizer.get("type")
    name = kind.__name__ if isinstance(kind, type) else kind
    if name not in OPTIMIZER_TYPES:
        with problems.collect():
            raise unknown_choice(f"{path}.type", name, OPTIMIZER_TYPES, what="optimizer type")
    section = {"name": name, **{key: value for key, value in optimizer.items() if key != "type"}}
    return section, optimizer.get("lr"), optimizer.get("weight_decay")


def _key_pattern(key: str) -> str:
    """A regex (full match) of the parameter names in whose full name ``key`` is a substring.

    mmengine reads a root-level parameter's full name as ``.name``.

    Example:
        >>> bool(re.fullmatch(_key_pattern(".w"), "w")), bool(re.fullmatch(_key_pattern(".w"), "a.w"))
        (True, True)
    """
    pattern = f".*{re.escape(key)}.*"
    if key.startswith(".") and "." not in key[1:]:
        pattern += f"|{re.escape(key[1:])}[^.]*"
    return pattern


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers_noted(values: Mapping[str, Any], keys: Sequence[str], path: str, problems: Problems) -> bool:
    """Whether each of ``keys`` that ``values`` sets is a finite number; notes each that is not."""
    good = True
    for key in keys:
        if values.get(key) is not None and not _is_number(values[key]):
            problems.add(f"{path}.{key}", f"expected a finite number, got {truncate(values[key])}")
            good = False
    return good


def _custom_rules(custom: Any, base_wd: Any, problems: Problems) -> list[dict[str, Any]]:
    path = "optim_wrapper.paramwise_cfg.custom_keys"
    if not isinstance(custom, Mapping):
        problems.add(path, f"expected a mapping of name substrings to settings, got {truncate(custom)}")
        return []
    rules = []
    for key in sorted(sorted(custom), key=len, reverse=True):
        entry, where = custom[key], f"{path}.{key}"
        if not isinstance(entry, Mapping):
            problems.add(where, f"expected a mapping (lr_mult, decay_mult, ...), got {truncate(entry)}")
            continue
        if not _numbers_noted(entry, ("lr_mult", "decay_mult"), where, problems):
            continue
        rule: dict[str, Any] = {"match": _key_pattern(str(key)), "regex": True, "optional": True}
        if "lr" not in entry:
            rule["lr_scale"] = entry.get("lr_mult", 1.0)
        if base_wd is not None:
            rule["weight_decay"] = base_wd * entry.get("decay_mult", 1.0)
        elif "decay_mult" in entry:
            problems.add(f"{where}.decay_mult", "needs optim_wrapper.optimizer.weight_decay, which is not set")
        rule.update({k: v for k, v in entry.items() if k not in ("lr_mult", "decay_mult")})
        rules.append(rule)
    return rules


# The traits of a parameter mmengine's rules read: in a norm layer, named ``bias``, in a
# depthwise convolution (a Conv2d with in_channels == groups), 1-D.
_TRAITS: Mapping[str, dict[str, Any]] = {
    "norm": {"module_type": list(NORM_TYPES)},
    "bias": {"match": r"(.*\.)?bias", "regex": True},
    "dwconv": {"depthwise": True},
    "flat": {"ndim": 1},
}
# The weight-decay multipliers by trait, in mmengine's precedence.
_DECAY_MULTS: tuple[tuple[str, str], ...] = (
    ("norm", "norm_decay_mult"),
    ("bias", "bias_decay_mult"),
    ("dwconv", "dwconv_decay_mult"),
    ("flat", "flat_decay_mult"),
)


def _settings(traits: frozenset[str], cfg: Mapping[str, Any], base_wd: Any) -> dict[str, Any]:
    """The lr scale and weight decay mmengine gives a parameter with ``traits`` (and no custom key)."""
    settings: dict[str, Any] = {}
    if "bias" in traits and "norm" not in traits and cfg.get("bias_lr_mult") is not None:
        settings["lr_scale"] = cfg["bias_lr_mult"]
    if base_wd is not None:
        for trait, key in _DECAY_MULTS:
            if trait in traits and cfg.get(key) is not None:
                settings["weight_decay"] = base_wd * cfg[key]
                break
    return settings


def _trait_rules(cfg: Mapping[str, Any], base_wd: Any) -> list[dict[str, Any]]:
    """One rule per combination of traits whose settings differ from what a later rule gives, most traits first."""
    combos = [frozenset(c) for size in range(1, len(_TRAITS) + 1) for c in itertools.combinations(_TRAITS, size)]
    emitted: list[tuple[frozenset[str], dict[str, Any]]] = []  # most specific first
    for combo in combos:  # fewest traits first: each goes in front of those before it
        fallback = next((s for c, s in emitted if c <= combo), {})
        settings = _settings(combo, cfg, base_wd)
        if settings != fallback:
            emitted.insert(0, (combo, settings))
    rules = []
    for combo, settings in emitted:
        rule: dict[str, Any] = {}
        for trait in _TRAITS:
            if trait in combo:
                rule.update(_TRAITS[trait])
        rules.append({**rule, **settings, "optional": True})
    return rules


def _paramwise(cfg: Any, base_wd: Any, problems: Problems, unexpressed: list[Unexpressed]) -> list[dict[str, Any]]:
    path = "optim_wrapper.paramwise_cfg"
    if not isinstance(cfg, Mapping):
        problems.add(path, f"expected a mapping, got {truncate(cfg)}")
        return []
    for key in cfg:
        if key not in PARAMWISE_KEYS:
            with problems.collect():
                raise unknown_choice(f"{path}.{key}", key, PARAMWISE_KEYS, what="paramwise_cfg key")
    mults = ("bias_lr_mult", "bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult", "flat_decay_mult")
    numbers = _numbers_noted(cfg, mults, path, problems)
    if base_wd is not None and not _is_number(base_wd):
        problems.add("optim_wrapper.optimizer.weight_decay", f"expected a finite number, got {truncate(base_wd)}")
        numbers = False
    if not numbers:
        return []
    for key in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult", "flat_decay_mult"):
        if cfg.get(key) is not None and base_wd is None:
            problems.add(f"{path}.{key}", "needs optim_wrapper.optimizer.weight_decay, which is not set")
    if cfg.get("dcn_offset_lr_mult") is not None:
        unexpressed.append(
            Unexpressed(
                f"{path}.dcn_offset_lr_mult",
                cfg["dcn_offset_lr_mult"],
                "applies to mmcv's deformable convolutions only; not translated (no effect without mmcv)",
            )
        )
    if "bypass_duplicate" in cfg:
        unexpressed.append(
            Unexpressed(
                f"{path}.bypass_duplicate",
                cfg["bypass_duplicate"],
                "optforge always places a shared parameter once, in its first name's group",
            )
        )
    rules = _custom_rules(cfg["custom_keys"], base_wd, problems) if "custom_keys" in cfg else []
    return rules + _trait_rules(cfg, base_wd)


def rule_paths(data: Mapping[str, Any]) -> list[str]:
    """The mmengine field path of each param-group rule of the translation of ``data``, in order.

    Example:
        >>> rule_paths({"optim_wrapper": {"paramwise_cfg": {"custom_keys": {"a": {}, "bb": {}}}}})
        ['optim_wrapper.paramwise_cfg.custom_keys.bb', 'optim_wrapper.paramwise_cfg.custom_keys.a']
    """
    cfg = data.get("optim_wrapper", {}).get("paramwise_cfg") or {}
    custom = cfg.get("custom_keys") if isinstance(cfg.get("custom_keys"), Mapping) else {}
    paths = [f"optim_wrapper.paramwise_cfg.custom_keys.{key}" for key in sorted(sorted(custom), key=len, reverse=True)]
    wd = data["optim_wrapper"].get("optimizer", {}).get("weight_decay")
    return paths + ["optim_wrapper.paramwise_cfg"] * len(_trait_rules(cfg, wd))


def _clip(clip: Any, problems: Problems, unexpressed: list[Unexpressed]) -> dict[str, Any] | None:
    path = "optim_wrapper.clip_grad"
    if clip is None:
        return None
    if not isinstance(clip, Mapping):
        problems.add(path, f"expected a mapping (max_norm, norm_type) or (type='value', clip_value), got {clip!r}")
        return None
    clip = dict(clip)
    kind = clip.pop("type", "norm")
    if "foreach" in clip:
        unexpressed.append(Unexpressed(f"{path}.foreach", clip.pop("foreach"), "an implementation choice"))
    keys = {"norm": ("max_norm", "norm_type", "error_if_nonfinite"), "value": ("clip_value",)}
    if kind not in keys:
        with problems.collect():
            raise unknown_choice(f"{path}.type", kind, keys, what="clip_grad type")
        return None
    for key in clip:
        if key not in keys[kind]:
            with problems.collect():
                raise unknown_choice(f"{path}.{key}", key, keys[kind], what=f"key of a {kind} clip_grad")
    if kind == "value":
        return {"max_value": clip.get("clip_value")}
    return {key: clip[key] for key in keys["norm"] if key in clip}


def _check_onecycle(path: str, raw: Mapping[str, Any], problems: Problems) -> None:
    """What mmengine's OneCycleLR checks of its arguments, and what optforge cannot translate."""
    if isinstance(raw.get("eta_max"), Sequence):
        problems.add(
            f"{path}.eta_max",
            "one value per param group is not translated (mmengine's groups are one per parameter): give one number",
        )
    pct = raw.get("pct_start", 0.3)
    if not isinstance(pct, float) or not 0 <= pct <= 1:
        problems.add(f"{path}.pct_start", f"mmengine expects a float between 0 and 1, got {truncate(pct)}")
    if raw.get("anneal_strategy", "cos") not in ("cos", "linear"):
        with problems.collect():
            raise unknown_choice(f"{path}.anneal_strategy", raw["anneal_strategy"], ("cos", "linear"))
    total = raw.get("total_steps")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total <= 0):
        problems.add(f"{path}.total_steps", f"expected a whole number > 0, got {truncate(total)}")


def _scheduler(
    index: int, raw: Any, run: Mapping[str, Any], problems: Problems, unexpressed: list[Unexpressed]
) -> dict[str, Any] | None:
    path = f"param_scheduler[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(path, f"expected a mapping with a type, got {truncate(raw)}")
        return None
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in SCHEDULER_TYPES:
        with problems.collect():
            raise unknown_choice(f"{path}.type", kind, SCHEDULER_TYPES, what="param scheduler type")
        return None
    factor, names = SCHEDULER_TYPES[kind]
    for key in raw:
        if key not in names and key not in _WINDOW_KEYS:
            with problems.collect():
                raise unknown_choice(f"{path}.{key}", key, [*names, *_WINDOW_KEYS], what=f"argument of {kind}")
    if raw.get("last_step", -1) != -1:
        problems.add(f"{path}.last_step", "only -1 (a fresh start) is supported; resume from a state_dict instead")
    if raw.get("verbose"):
        unexpressed.append(Unexpressed(f"{path}.verbose", raw["verbose"], "mmengine prints each value; optforge not"))
    if kind == "CosineAnnealingLR" and raw.get("eta_min") is not None and raw.get("eta_min_ratio") is not None:
        problems.add(f"{path}.eta_min_ratio", "give eta_min or eta_min_ratio, not both")
    if kind == "CosineRestartLR" and (raw.get("eta_min") is None) == (raw.get("eta_min_ratio") is None):
        problems.add(f"{path}.eta_min", "give exactly one of eta_min and eta_min_ratio")
    if kind == "OneCycleLR":
        _check_onecycle(path, raw, problems)
    by_epoch = raw.get("by_epoch", True)
    end = raw.get("end", run.get("max_epochs") if by_epoch else run.get("max_iters"))
    begin = raw.get("begin", 0)
    entry: dict[str, Any] = {"kind": factor, **{names[k]: v for k, v in raw.items() if k in names}}
    if raw.get("convert_to_iter_based") and by_epoch:
        length = run.get("epoch_length")
        if not isinstance(length, int) or length <= 0:
            problems.add(f"{path}.convert_to_iter_based", f"needs the epoch length (epoch_length), got {length!r}")
            return None
        begin = int(begin * length)
        end = None if end is None or end == math.inf else int(end * length)
        for key in _EPOCH_COUNTS:
            if entry.get(key) is not None:
                entry[key] = entry[key] * length
        for key in _EPOCH_COUNT_LISTS:
            if key in entry and isinstance(entry[key], Sequence):
                entry[key] = [count * length for count in entry[key]]
        by_epoch = False
    if end is None and (
        factor in ("linear", "constant", "poly") or (factor == "onecycle" and "total_steps" not in raw)
    ):
        problems.add(f"{path}.end", f"{kind} needs an end: set it, or give max_epochs / max_iters")
    if by_epoch and run.get("epoch_length") is None:
        problems.add(
            f"{path}.by_epoch",
            "counts epochs, and the scheduler steps per iteration: give epoch_length (iterations per epoch)",
        )
    entry.update({"begin": begin, "by_epoch": bool(by_epoch)})
    if end is not None and end != math.inf:
        entry["end"] = end
    return entry


# ReduceOnPlateauLR's arguments: torch's ReduceLROnPlateau's name of each, and mmengine's defaults.
PLATEAU_ARGS: Mapping[str, tuple[str, Any]] = {
    "rule": ("mode", "less"),
    "factor": ("factor", 0.1),
    "patience": ("patience", 10),
    "threshold": ("threshold", 1e-4),
    "threshold_rule": ("threshold_mode", "rel"),
    "cooldown": ("cooldown", 0),
    "min_value": ("min_lr", 0.0),
    "eps": ("eps", 1e-8),
}
_PLATEAU_CHOICES: Mapping[str, Mapping[str, str]] = {
    "rule": {"less": "min", "greater": "max"},
    "threshold_rule": {"rel": "rel", "abs": "abs"},
}


def _has_plateau(schedulers: Any) -> bool:
    return isinstance(schedulers, Sequence) and any(
        isinstance(raw, Mapping) and raw.get("type") == "ReduceOnPlateauLR" for raw in schedulers
    )


def _plateau_section(
    schedulers: Sequence[Any], problems: Problems, unexpressed: list[Unexpressed]
) -> dict[str, Any] | None:
    """``ReduceOnPlateauLR`` as torch's ``ReduceLROnPlateau`` (the same rule), stepped with the monitored metric.

    Only alone and over the whole run: the chain of windows has no metric-driven factor.
    """
    index = next(
        i for i, raw in enumerate(schedulers) if isinstance(raw, Mapping) and raw.get("type") == "ReduceOnPlateauLR"
    )
    path, raw = f"param_scheduler[{index}]", schedulers[index]
    if len(schedulers) != 1:
        problems.add(
            f"{path}.type",
            "ReduceOnPlateauLR is translated only as the one scheduler: optforge's chain of windows has no "
            "metric-driven factor",
        )
        return None
    for key in raw:
        if key not in (*PLATEAU_ARGS, "type", "monitor", "by_epoch", "begin", "end", "last_step", "verbose"):
            with problems.collect():
                raise unknown_choice(
                    f"{path}.{key}",
                    key,
                    [*PLATEAU_ARGS, "monitor", *_WINDOW_KEYS],
                    what="argument of ReduceOnPlateauLR",
                )
    if raw.get("by_epoch", True) is not True:
        problems.add(f"{path}.by_epoch", "mmengine's ReduceOnPlateauLR only counts epochs (by_epoch=True)")
    if raw.get("begin", 0) != 0 or raw.get("end") is not None:
        problems.add(f"{path}.begin", "ReduceOnPlateauLR is translated over the whole run only: no begin or end")
    if raw.get("last_step", -1) != -1:
        problems.add(f"{path}.last_step", "only -1 (a fresh start) is supported; resume from a state_dict instead")
    if raw.get("verbose"):
        unexpressed.append(Unexpressed(f"{path}.verbose", raw["verbose"], "mmengine prints each value; optforge not"))
    if isinstance(raw.get("min_value"), Sequence):
        problems.add(f"{path}.min_value", "one value per param group is not translated: give one number")
    section: dict[str, Any] = {"name": "ReduceLROnPlateau"}
    for key, (name, default) in PLATEAU_ARGS.items():
        value = raw.get(key, default)
        if key in _PLATEAU_CHOICES:
            if value not in _PLATEAU_CHOICES[key]:
                with problems.collect():
                    raise unknown_choice(f"{path}.{key}", value, _PLATEAU_CHOICES[key], what=key)
                continue
            value = _PLATEAU_CHOICES[key][value]
        section[name] = value
    section["monitor"] = raw.get("monitor", "loss")
    return section


def _run(data: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's facts: the caller's, else the file's ``train_cfg``."""
    train = data.get("train_cfg") if isinstance(data.get("train_cfg"), Mapping) else {}
    facts = {key: train.get(key) for key in ("max_epochs", "max_iters")}
    facts.update({key: value for key, value in run.items() if value is not None})
    return facts


def translate(data: Mapping[str, Any], run: Mapping[str, Any]) -> Translation:
    """The optforge document of an mmengine config's ``optim_wrapper`` and ``param_scheduler``.

    ``run`` may give ``max_epochs``, ``max_iters`` (the default ``end`` of the schedulers)
    and ``epoch_length`` (iterations per epoch); without them ``train_cfg`` is read.

    Raises:
        ConfigError: listing every problem, each at its mmengine field path.
    """
    problems, unexpressed = Problems(), []
    facts = _run(data, run)
    wrapper = data.get("optim_wrapper")
    if not isinstance(wrapper, Mapping):
        problems.add("optim_wrapper", f"expected a mapping with an optimizer, got {truncate(wrapper)}")
        problems.raise_if_any()
    for key in wrapper:
        if key not in WRAPPER_KEYS:
            with problems.collect():
                raise unknown_choice(f"optim_wrapper.{key}", key, WRAPPER_KEYS, what="optim_wrapper key")
    if wrapper.get("type", "OptimWrapper") not in ("OptimWrapper", "AmpOptimWrapper"):
        with problems.collect():
            raise unknown_choice(
                "optim_wrapper.type", wrapper["type"], ("OptimWrapper", "AmpOptimWrapper"), what="optim wrapper"
            )
    if wrapper.get("constructor", "DefaultOptimWrapperConstructor") != "DefaultOptimWrapperConstructor":
        problems.add("optim_wrapper.constructor", "only DefaultOptimWrapperConstructor is translated")
    for key in ("loss_scale", "dtype", "use_fsdp"):
        if key in wrapper:
            unexpressed.append(Unexpressed(f"optim_wrapper.{key}", wrapper[key], "mixed precision is the trainer's"))
    if wrapper.get("accumulative_counts", 1) != 1:
        unexpressed.append(
            Unexpressed(
                "optim_wrapper.accumulative_counts",
                wrapper["accumulative_counts"],
                "mmengine divides the loss by it and steps the optimizer every that many iterations: "
                "do so in your loop, and keep stepping the scheduler every iteration",
            )
        )
    optimizer, _, base_wd = _optimizer(wrapper.get("optimizer"), problems)
    if optimizer:
        optimizer["no_weight_decay"] = False
        if wrapper.get("paramwise_cfg"):
            optimizer["param_groups"] = _paramwise(wrapper["paramwise_cfg"], base_wd, problems, unexpressed)
            if not optimizer["param_groups"]:
                del optimizer["param_groups"]
    document: dict[str, Any] = {"optimizer": optimizer}
    clip = _clip(wrapper.get("clip_grad"), problems, unexpressed)
    if clip is not None:
        document["clip_grad"] = clip
    schedulers = data.get("param_scheduler")
    if isinstance(schedulers, Mapping):
        schedulers = [schedulers]
    if schedulers is not None and (not isinstance(schedulers, Sequence) or isinstance(schedulers, str)):
        problems.add("param_scheduler", f"expected a list of scheduler configs, got {truncate(schedulers)}")
        schedulers = None
    if _has_plateau(schedulers):
        plateau = _plateau_section(schedulers, problems, unexpressed)
        if plateau is not None:
            document["schedule"] = plateau
    elif schedulers:
        entries = [_scheduler(i, raw, facts, problems, unexpressed) for i, raw in enumerate(schedulers)]
        schedule: dict[str, Any] = {"name": "WindowedChain", "schedulers": entries}
        if facts.get("epoch_length") is not None and any(e and e["by_epoch"] for e in entries):
            schedule["steps_per_epoch"] = facts["epoch_length"]
        document["schedule"] = schedule
    others = [key for key in data if key not in ("optim_wrapper", "param_scheduler")]
    if others:
        unexpressed.append(Unexpressed(", ".join(map(str, others)), None, "not optimizer settings: left to mmengine"))
    problems.raise_if_any()
    return Translation("mmengine", document, tuple(unexpressed))
