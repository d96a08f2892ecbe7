"""Any value in any field of another stack's file builds, or is one ConfigError: no other exception escapes."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optforge
from optforge.errors import ConfigError

# A valid file of each stack; the test replaces the values of some of its fields.
BASES: dict[str, dict[str, Any]] = {
    "huggingface": {
        "learning_rate": 1e-3,
        "weight_decay": 0.01,
        "optim": "adamw_torch",
        "lr_scheduler_type": "cosine",
        "warmup_steps": 5,
        "max_grad_norm": 1.0,
    },
    "deepspeed": {
        "train_batch_size": 8,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decay": 0.01}},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0, "warmup_max_lr": 1e-3, "warmup_num_steps": 5}},
        "gradient_clipping": 1.0,
    },
    "mmengine": {
        "optim_wrapper": {
            "type": "OptimWrapper",
            "optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
            "paramwise_cfg": {"bias_lr_mult": 2.0, "norm_decay_mult": 0.0},
            "clip_grad": {"max_norm": 1.0},
        },
        "param_scheduler": [
            {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "begin": 0, "end": 5},
            {"type": "CosineAnnealingLR", "by_epoch": True, "begin": 0, "end": 10},
        ],
    },
    "lightning": {
        "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3, "weight_decay": 0.01}},
        "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 3}},
        "trainer": {"gradient_clip_val": 1.0},
    },
    "timm": {
        "opt": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "sched": "cosine",
        "epochs": 10,
        "warmup_epochs": 1,
        "clip_grad": 1.0,
    },
    "torchtune": {
        "optimizer": {"_component_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.01},
        "lr_scheduler": {
            "_component_": "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
            "num_warmup_steps": 5,
        },
        "clip_grad_norm": 1.0,
    },
}

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3), max_size=2),
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field of ``data``, as the keys and indices that reach it."""
    if isinstance(data, dict):
        return [p for key, value in data.items() for p in [(*prefix, key), *_paths(value, (*prefix, key))]]
    if isinstance(data, list):
        return [p for index, value in enumerate(data) for p in [(*prefix, index), *_paths(value, (*prefix, index))]]
    return []


def _replaced(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    stack = draw(st.sampled_from(sorted(BASES)))
    data = BASES[stack]
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(_paths(data)))
        data = _replaced(data, path, draw(VALUES))
    return stack, data


@pytest.mark.parametrize("stack", sorted(BASES))
def test_each_base_file_builds(stack: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer, _ = optforge.build(
            torch.nn.Linear(4, 2), BASES[stack], stack=stack, total_steps=20, steps_per_epoch=2
        )
    assert optimizer.param_groups


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_field_builds_or_is_one_config_error(case: tuple[str, dict[str, Any]]) -> None:
    stack, data = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            optforge.build(torch.nn.Linear(4, 2), data, stack=stack, total_steps=20, steps_per_epoch=2)
        except ConfigError as error:
            problems = error.problems
        else:
            problems = [("", "built")]
    assert problems
    assert all(isinstance(path, str) and message for path, message in problems)
