"""The peak lr of each param group of a config, and the config with another peak filled in.

An LR range test sweeps one lr, the *base*: the largest peak among the groups. Each group
runs at the base times its own share, ``peak / base``, so layer decay, rule scales, towers
with their own schedules and the parts of a composite keep their ratios. A group's peak is
the largest lr its schedule gives over the first ``horizon`` steps (its optimizer lr when
it has no schedule, or a metric-driven one).

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    >>> cfg = {"optimizer": {"name": "SGD", "lr": 0.1, "param_groups": [{"match": "0.*", "lr_scale": 0.5}]},
    ...        "schedule": {"cosine_decay": {"peak_value": 0.2, "warmup_steps": 5, "decay_steps": 50}}}
    >>> [round(peak, 6) for peak in group_peaks(model, cfg)]
    [0.1, 0.2]
    >>> new = with_base_lr(model, cfg, 0.02)
    >>> new["optimizer"]["lr"], new["schedule"]["cosine_decay"]["peak_value"]
    (0.01, 0.02)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch

from optforge.builder import build
from optforge.config_source import load_config
from optforge.errors import ConfigError
from optforge.lr_schedulers import is_metric_driven, trace_steps

__all__ = ["LR_KEYS", "PEAK_HORIZON", "group_peaks", "optimizer_of", "with_base_lr"]

# Steps over which a schedule's peak is looked for when the run's length is not given.
PEAK_HORIZON = 1000
# Keys whose numbers are learning rates, in optimizer sections and lr schedules.
LR_KEYS = frozenset(
    {
        "lr",
        "learning_rate",
        "peak_value",
        "init_value",
        "end_value",
        "final_learning_rate",
        "learning_rate_values",
        "constant",
        "max_lr",
        "base_lr",
        "eta_min",
        "min_lr",
        "backbone_learning_rate",
    }
)
# Keys of a schedule section that schedule something other than the lr (their values are left alone).
_OTHER_HYPERPARAMETERS = frozenset({"momentum", "beta1", "beta2", "betas", "weight_decay", "eps"})


def optimizer_of(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose parameter names the config's rules match: the wrapped one of a DDP model."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module
    return model


def group_peaks(model: torch.nn.Module, config: Any, *, total_steps: int | None = None) -> list[float]:
    """The peak lr of each param group that ``optforge.build(model, config)`` makes, in group order."""
    optimizer, scheduler = build(optimizer_of(model), config, total_steps=total_steps)
    peaks = [_as_float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
    if is_metric_driven(scheduler):
        return peaks  # a plateau scheduler only lowers the lr
    peaks = [_as_float(group["lr"]) for group in optimizer.param_groups]

    def record(_step: int) -> None:
        for index, group in enumerate(optimizer.param_groups):
            peaks[index] = max(peaks[index], _as_float(group["lr"]))

    trace_steps(scheduler, total_steps or PEAK_HORIZON, record)
    return peaks


def _as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def with_base_lr(model: torch.nn.Module, config: Any, lr: float, *, total_steps: int | None = None) -> dict[str, Any]:
    """``config`` as plain data with every learning rate scaled so that the base (largest) peak is ``lr``.

    The optimizer's lr, the schedule's values, rules' lrs and each part's lr all scale by one
    factor; the result is built and checked: each group's peak must be its old peak times that factor.

    Raises:
        ConfigError: at ``config`` when the config holds an lr this cannot find, so the check fails.
    """
    document = load_config(config)
    peaks = group_peaks(model, document, total_steps=total_steps)
    factor = lr / max(peaks)
    scaled = _scale(copy.deepcopy(document), factor, in_lr=False)
    got = group_peaks(model, scaled, total_steps=total_steps)
    want = [peak * factor for peak in peaks]
    if not all(math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-12) for g, w in zip(got, want)):
        raise ConfigError(
            f"cannot fill in lr {lr:g}: scaling the lrs found in the config by {factor:g} gives group peaks "
            f"{[f'{g:.3g}' for g in got]}, not {[f'{w:.3g}' for w in want]}; set the lr by hand",
            path="config",
        )
    return scaled


def _scale(value: Any, factor: float, *, in_lr: bool) -> Any:
    """``value`` with each lr multiplied by ``factor``: a number under a key of :data:`LR_KEYS`, or right
    inside one (``lr: {backbone: 0.01}``, one lr per group); step counts and other hyperparameters stay."""
    if isinstance(value, Mapping):
        return {
            key: item
            if key in _OTHER_HYPERPARAMETERS
            else _scale(item, factor, in_lr=str(key) in LR_KEYS or (in_lr and not isinstance(item, Mapping)))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scale(item, factor, in_lr=in_lr) for item in value]
    if in_lr and isinstance(value, int | float) and not isinstance(value, bool):
        return value * factor
    return value
