"""Hydra: configs composed from examples/hydra build as they are, and through ``_target_`` instantiation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

import optforge
from optforge.optimizers import AdamWScheduleFree, Lion
from optforge.scheduler import LRShim

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hydra"


def composed(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(EXAMPLE), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_the_composed_optim_node_builds_as_is() -> None:
    cfg = composed()
    assert isinstance(cfg.optim, DictConfig)
    model = torch.nn.Linear(4, 1)
    optimizer, scheduler = optforge.build(model, cfg.optim)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["betas"] == (0.9, 0.95)
    assert isinstance(scheduler, LRShim)
    for _ in range(5):  # warmup to the optimizer's lr, through the ${optim.optimizer.lr} interpolation
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([cfg.optim.optimizer.lr] * len(optimizer.param_groups))


def test_overrides_choose_the_optimizer_and_its_values() -> None:
    cfg = composed("optim/optimizer=lion", "optim.optimizer.lr=3e-3", "steps=10")
    optimizer, scheduler = optforge.build(torch.nn.Linear(4, 1), cfg.optim)
    assert type(optimizer) is Lion
    assert optimizer.defaults["weight_decay"] == 0.5
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([3e-3] * len(optimizer.param_groups))


def test_schedule_free_with_a_constant_schedule() -> None:
    cfg = composed("optim/optimizer=adamw_schedule_free", "optim/schedule=constant")
    optimizer, scheduler = optforge.build(torch.nn.Linear(4, 1), cfg.optim)
    assert type(optimizer) is AdamWScheduleFree
    assert optimizer.param_groups[0]["warmup_steps"] == 5
    assert scheduler.get_last_lr() == pytest.approx([cfg.optim.optimizer.lr] * len(optimizer.param_groups))


def test_target_nodes_instantiate_build_and_build_optimizer() -> None:
    cfg = composed()
    model = torch.nn.Linear(4, 1)
    optimizer, scheduler = instantiate(cfg.build)(model)
    assert type(optimizer) is torch.optim.AdamW
    assert isinstance(scheduler, LRShim)
    assert scheduler.optimizer is optimizer
    optimizer = instantiate(cfg.build_optimizer)(model)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["weight_decay"] == 0.05


def test_a_bad_override_is_a_config_error_naming_its_path() -> None:
    cfg = composed("+optim.optimizer.betaz=[0.9,0.99]")
    with pytest.raises(optforge.ConfigError, match=r"optimizer\.betaz"):
        optforge.build(torch.nn.Linear(4, 1), cfg.optim)


def test_the_example_script_trains(tmp_path: Path) -> None:
    script = EXAMPLE / "train.py"
    overrides = ["optim/optimizer=lion", "steps=30", f"hydra.run.dir={tmp_path}"]
    run = subprocess.run(
        [sys.executable, str(script), *overrides], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    first, last = run.stdout.split("loss ")[1].split(" in ")[0].split(" -> ")
    assert run.stdout.startswith("Lion:")
    assert float(last) < float(first)
