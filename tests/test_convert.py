"""optforge convert: a stack's file as YAML that builds the same optimizer and scheduler."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import optforge
from optforge.cli import app
from optforge.compat import hf
from optforge.config.stacks import StackWarning
from optforge.convert import convert
from optforge.errors import ConfigError

FIELDS = {
    "optim": "adamw_torch",
    "learning_rate": 3e-4,
    "weight_decay": 0.1,
    "lr_scheduler_type": "cosine_with_min_lr",
    "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
    "warmup_steps": 0.05,
    "max_grad_norm": 0.5,
    "seed": 1,
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def _trace(optimizer: torch.optim.Optimizer, scheduler: object, steps: int) -> list[list[float]]:
    lrs = []
    for _ in range(steps):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()  # type: ignore[attr-defined]
    return lrs


def test_the_converted_document_builds_what_compat_builds() -> None:
    text = convert(FIELDS, "huggingface", total_steps=200)
    assert text.splitlines()[1] == "# seed: 1: the Trainer's, not the optimizer's: optforge does not read it"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StackWarning)
        ref_opt, ref_sched = hf.build(_model(), FIELDS, 200)
    opt, sched = optforge.build(_model(), yaml.safe_load(text))
    assert type(opt) is type(ref_opt)
    strip = ("params", "lr")
    assert [{k: v for k, v in g.items() if k not in strip} for g in opt.param_groups] == [
        {k: v for k, v in g.items() if k not in strip} for g in ref_opt.param_groups
    ]
    assert [len(g["params"]) for g in opt.param_groups] == [len(g["params"]) for g in ref_opt.param_groups]
    assert _trace(opt, sched, 201) == _trace(ref_opt, ref_sched, 201)


def test_a_file_no_stack_recognises() -> None:
    with pytest.raises(ConfigError, match="name it with --from NAME"):
        convert({"optimizer": {"name": "SGD", "lr": 0.1}})


def test_the_command(tmp_path: Path) -> None:
    path = tmp_path / "args.json"
    path.write_text(json.dumps(FIELDS))
    result = CliRunner().invoke(app, ["convert", str(path), "--from", "hf", "--steps", "200"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == yaml.safe_load(convert(FIELDS, total_steps=200))
    missing = CliRunner().invoke(app, ["convert", str(path)])
    assert missing.exit_code == 1
    assert "num_training_steps" in missing.output
    valid = CliRunner().invoke(app, ["validate", str(path), "--steps", "200"])
    assert valid.exit_code == 0, valid.output
    wrong = CliRunner().invoke(app, ["validate", str(path), "--from", "nosuch"])
    assert wrong.exit_code == 1
    assert "unknown stack 'nosuch'" in wrong.output
