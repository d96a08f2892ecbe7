"""The recommender system's optimizer configs and call sites, run unchanged.

The reference ``compute_lr`` below is written from the system's documented
formulas (ANCHORS), independently of optforge's schedules.
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import optforge
from optforge.compat import tml
from optforge.errors import ConfigError

TASKS = [
    "recap.engagement.is_favorited",
    "recap.engagement.is_replied",
    "recap.engagement.is_good_clicked_convo_desc_v2",
]

# The recap project's optimizer section as its config files write it: every unset one-of member is null.
RECAP_YAML = """
optimizer:
  adam:
    beta_1: 0.95
    beta_2: 0.999
    epsilon: 1.0e-07
  multi_task_learning_rates:
    tower_learning_rates:
      recap.engagement.is_favorited:
        constant: null
        linear_ramp_to_constant:
          learning_rate: 0.0008
          num_ramp_steps: 5000
        linear_ramp_to_cosine: null
        piecewise_constant: null
      recap.engagement.is_replied:
        constant: null
        linear_ramp_to_constant: null
        linear_ramp_to_cosine:
          learning_rate: 0.0004
          final_learning_rate: 0.00001
          num_ramp_steps: 1000
          final_num_steps: 9000
        piecewise_constant: null
      recap.engagement.is_good_clicked_convo_desc_v2:
        constant: null
        linear_ramp_to_constant: null
        linear_ramp_to_cosine: null
        piecewise_constant:
          learning_rate_boundaries: [2000, 7000]
          learning_rate_values: [0.0001, 0.0002, 0.00005]
    backbone_learning_rate:
      constant: null
      linear_ramp_to_constant:
        learning_rate: 0.0001
        num_ramp_steps: 3000
      linear_ramp_to_cosine: null
      piecewise_constant: null
  single_task_learning_rate: null
"""


def reference_compute_lr(cfg: dict[str, Any], step: int) -> float:
    """The original ``compute_lr``, from its documented formulas."""
    if cfg.get("constant") is not None:
        return cfg["constant"]
    if cfg.get("piecewise_constant") is not None:
        c = cfg["piecewise_constant"]
        return c["learning_rate_values"][bisect.bisect_right(c["learning_rate_boundaries"], step)]
    if cfg.get("linear_ramp_to_constant") is not None:
        c = cfg["linear_ramp_to_constant"]
        return min(c["learning_rate"], c["learning_rate"] / c["num_ramp_steps"] * step)
    if cfg.get("linear_ramp_to_cosine") is not None:
        c = cfg["linear_ramp_to_cosine"]
        lr, final, ramp, end = c["learning_rate"], c["final_learning_rate"], c["num_ramp_steps"], c["final_num_steps"]
        if step < ramp:
            return lr / ramp * step
        if step <= end:
            return final + (lr - final) * 0.5 * (1 + math.cos(math.pi * (step - ramp) / (end - ramp)))
        return final
    raise ValueError("No option selected in lr_config")


class Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 1))


class RecapModel(nn.Module):
    """A ranking model: towers keyed by the sanitized task names, as module names cannot hold dots."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(16, 8), nn.ReLU())
        self.towers = nn.ModuleDict({task.replace(".", "__"): Tower() for task in TASKS})


def _doc() -> dict[str, Any]:
    return yaml.safe_load(RECAP_YAML)


def test_recap_section_builds_adam_with_one_group_per_task_then_backbone(tmp_path: Path) -> None:
    model = RecapModel()
    path = tmp_path / "recap.yaml"
    path.write_text(RECAP_YAML)
    optimizer, _ = optforge.build(model, path)
    assert type(optimizer) is torch.optim.Adam
    assert [g["name"] for g in optimizer.param_groups] == [*TASKS, "backbone"]
    for group in optimizer.param_groups:
        assert group["betas"] == (0.95, 0.999)
        assert group["eps"] == 1e-7
        assert group["maximize"] is False
    by_group = {g["name"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    for task in TASKS:
        assert by_group[task] == {id(p) for p in model.towers[task.replace(".", "__")].parameters()}
    assert by_group["backbone"] == {id(p) for p in model.backbone.parameters()}


def test_recap_lrs_equal_the_original_compute_lr_for_12000_steps() -> None:
    doc = _doc()
    schedules = dict(doc["optimizer"]["multi_task_learning_rates"]["tower_learning_rates"])
    schedules["backbone"] = doc["optimizer"]["multi_task_learning_rates"]["backbone_learning_rate"]
    optimizer, scheduler = tml.build_optimizer(RecapModel(), tml.RecapOptimizerConfig(**doc["optimizer"]))
    names = [g["name"] for g in optimizer.param_groups]
    for step in range(12001):
        expected = [reference_compute_lr(schedules[name], step) for name in names]
        assert [g["lr"] for g in optimizer.param_groups] == expected, step
        optimizer.step()
        scheduler.step()


def test_plain_task_names_still_match() -> None:
    model = nn.Module()
    model.towers = nn.ModuleDict({"ctr": nn.Linear(2, 1), "cvr": nn.Linear(2, 1)})
    model.trunk = nn.Linear(2, 2)
    section = {
        "adam": {},
        "multi_task_learning_rates": {
            "tower_learning_rates": {"cvr": {"constant": 0.2}, "ctr": {"constant": 0.1}},
            "backbone_learning_rate": {"constant": 0.05},
        },
    }
    optimizer, _ = tml.build_optimizer(model, section)
    assert [(g["name"], g["lr"]) for g in optimizer.param_groups] == [("cvr", 0.2), ("ctr", 0.1), ("backbone", 0.05)]


def test_recap_single_task_is_one_group() -> None:
    section = {
        "adam": {"beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-8},
        "multi_task_learning_rates": None,
        "single_task_learning_rate": {"linear_ramp_to_constant": {"learning_rate": 0.01, "num_ramp_steps": 10}},
    }
    optimizer, scheduler = tml.build_optimizer(RecapModel(), section)
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["lr"] == 0.0
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [0.001]


def test_recap_errors() -> None:
    model = nn.Module()
    model.towers = nn.ModuleDict({"a__b": nn.Linear(2, 1)})
    model.a = nn.ModuleDict({"b": nn.Linear(2, 1)})
    model.other = nn.Linear(2, 1)
    towers = {"tower_learning_rates": {"a.b": {"constant": 0.1}}}
    with pytest.raises(ConfigError, match=r"backbone group, which has no schedule: set backbone_learning_rate"):
        tml.build_optimizer(model, {"adam": {}, "multi_task_learning_rates": towers})
    both = {"tower_learning_rates": {"a.b": {"constant": 0.1}, "b": {"constant": 0.2}}, "backbone_learning_rate": None}
    with pytest.raises(ConfigError, match=r"belongs to towers 'a.b' and 'b'"):
        tml.build_optimizer(model, {"adam": {}, "multi_task_learning_rates": both})
    with pytest.raises(
        ConfigError, match=r"must set exactly one of multi_task_learning_rates, single_task_learning_rate"
    ):
        tml.build_optimizer(
            model, {"adam": {}, "single_task_learning_rate": {"constant": 0.1}, "multi_task_learning_rates": towers}
        )
    with pytest.raises(ConfigError, match=r"optimizer.adam.beta_2: Input should be less than 1"):
        tml.build_optimizer(model, {"adam": {"beta_2": 1.0}, "single_task_learning_rate": {"constant": 0.1}})


def test_towers_beside_the_typed_one_of() -> None:
    model = RecapModel()
    section = {
        "adam": {"lr": 0.001},
        "learning_rate": {"constant": 0.001},
        "multi_task_learning_rates": {"tower_learning_rates": {TASKS[0]: {"constant": 0.01}}},
    }
    optimizer, _ = tml.build_optimizer(model, section)
    lrs = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            lrs[id(p)] = group["lr"]
    assert {lrs[id(p)] for p in model.towers[TASKS[0].replace(".", "__")].parameters()} == {0.01}
    assert {lrs[id(p)] for p in model.backbone.parameters()} == {0.001}


def test_embedding_table_section_keeps_working() -> None:
    model = nn.EmbeddingBag(100, 8)
    optimizer, scheduler = tml.build_optimizer(model, {"sgd": {"lr": 0.01}, "learning_rate": {"constant": 0.01}})
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert optimizer.param_groups[0]["momentum"] == 0.0
    assert len(optimizer.param_groups) == 1
    assert scheduler.get_last_lr() == [0.01]


def test_core_build_optimizer_passes_each_optimizer_its_own_hyperparameters() -> None:
    model = nn.Linear(3, 1)
    cfg = tml.OptimizerConfig(adam=tml.AdamConfig(lr=0.01, betas=(0.8, 0.9)), learning_rate=None)
    optimizer, scheduler = tml.build_optimizer(model, cfg)
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.9)
    assert optimizer.param_groups[0]["eps"] == 1e-7
    assert "momentum" not in optimizer.param_groups[0]
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == [0.01]  # no learning_rate: its own lr, held constant


def test_get_optimizer_class_and_algorithm_config() -> None:
    assert tml.get_optimizer_class(tml.OptimizerConfig(adagrad={"lr": 0.1})) is torch.optim.Adagrad
    assert tml.get_optimizer_class(tml.RecapOptimizerConfig(single_task_learning_rate={"constant": 0.1})) is (
        torch.optim.Adam
    )
    chosen = tml.get_optimizer_algorithm_config(tml.OptimizerConfig(sgd={"lr": 0.1, "momentum": 0.5}))
    assert isinstance(chosen, tml.SgdConfig)
    assert chosen.momentum == 0.5


def test_lrshim_and_compute_lr_as_the_original() -> None:
    w = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([w], lr=1.0)
    cfg = tml.LearningRate(
        piecewise_constant=tml.PiecewiseConstant(learning_rate_boundaries=[2], learning_rate_values=[0.1, 0.01])
    )
    shim = tml.LRShim(optimizer, {"ALL_PARAMS": cfg})
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        shim.step()
    assert lrs == [reference_compute_lr(cfg.model_dump(), step) for step in range(4)]
    with pytest.raises(ConfigError, match=r"2 learning-rate schedules .* for 1 param groups"):
        tml.LRShim(optimizer, {"a": cfg, "b": cfg})
    with pytest.raises(ConfigError):
        tml.compute_lr({"constant": None, "piecewise_constant": None}, 0)  # none set: a ValueError, as the original
