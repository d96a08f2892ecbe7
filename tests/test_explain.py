"""explain: one row per parameter with its group, lr, weight decay and what placed it."""

from __future__ import annotations

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from optforge.explain import explain
from tests.test_param_groups import TOWERS, ConvNet, TinyTransformer, TwoTower


def test_rows_cover_every_parameter_once_with_its_group_and_settings() -> None:
    model = TinyTransformer()
    model.norm.bias.requires_grad_(False)
    cfg = {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.05, "layer_decay": 0.5}
    table = explain(model, cfg)
    assert table.columns == ("parameter", "group", "lr", "weight_decay", "shape", "numel", "placed_by")
    records = {r["parameter"]: r for r in table.records()}
    assert len(records) == len(list(model.parameters())) == 37
    tied = records["tok_emb.weight (= head.weight)"]
    assert (tied["group"], tied["lr"], tied["weight_decay"], tied["shape"], tied["numel"]) == (
        "layer0",
        pytest.approx(1e-3 / 16),
        0.05,
        "11x8",
        88,
    )
    assert records["pos_embed"]["placed_by"] == "no_weight_decay: pos_embed, layer 0"
    assert records["blocks.1.ln2.weight"]["placed_by"] == "no_weight_decay: norm, layer 2"
    frozen = records["norm.bias"]
    assert (frozen["group"], frozen["lr"], frozen["placed_by"]) == (None, None, "requires_grad=False")
    # the table agrees with the optimizer that build_optimizer makes
    opt = optforge.build_optimizer(model, cfg)
    assert [row[0] for row in table.group_rows] == [g["name"] for g in opt.param_groups]
    assert [row[3] for row in table.group_rows] == pytest.approx([g["lr"] for g in opt.param_groups])
    assert table.totals == {
        "groups": len(opt.param_groups),
        "tensors": 37,
        "trainable": sum(p.numel() for g in opt.param_groups for p in g["params"]),
        "frozen": 8,
    }


def test_text_table_shows_rules_and_towers() -> None:
    cfg = {
        "optimizer": {"name": "SGD", "lr": 0.1, "param_groups": [{"match": "towers.ctr.bias", "frozen": True}]},
        "multi_task_learning_rates": TOWERS,
    }
    text = str(explain(TwoTower(), cfg))
    lines = text.splitlines()
    assert lines[0].split() == ["parameter", "group", "lr", "weight_decay", "shape", "numel", "placed_by"]
    assert lines[2].split() == ["backbone.0.weight", "backbone", "0.1", "0", "8x6", "48", "tower", "backbone"]
    assert "towers.ctr.bias    -         -    -             1          1  param_groups[0], frozen" in text
    assert text.endswith("SGD: 3 groups, 6 tensors, 73 trainable parameters, 1 frozen")


def test_explain_raises_the_errors_build_would() -> None:
    with pytest.raises(ConfigError, match=r"optimizer\.param_groups\[0\]\.match: 'haed' matches no parameter"):
        explain(ConvNet(), {"name": "SGD", "param_groups": [{"match": "haed"}]})
    with pytest.raises(ConfigError, match="explain needs a model"):
        explain(list(ConvNet().parameters()), {"name": "SGD"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "config",
    [
        {"name": "Lion", "lr": 1e-4},
        {"name": "Lion", "lr": 1e-4, "foreach": True},
        {"name": "AdamWScheduleFree", "lr": 1e-3, "fused": False},
        {"name": "SGDScheduleFree", "lr": 1.0, "param_groups": [{"match": "0", "lr_scale": 0.5}]},
    ],
)
def test_explain_names_the_step_path_the_optimizer_takes(config: dict) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    table = optforge.explain(model, config)
    built = optforge.build_optimizer(model, config).step_path
    assert table.step_path == f"{built.name} ({built.reason})"
    assert f"step path: {built.name}" in str(table)


def test_explain_has_no_step_path_for_other_optimizers() -> None:
    assert optforge.explain(torch.nn.Linear(2, 2), {"name": "AdamW"}).step_path == ""
