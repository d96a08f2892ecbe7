"""Configs a newcomer writes from the docs alone: each validates, plots and explains with no flags.

The files are under ``tests/scenarios/``; those that depend on a model name it in a
``# optforge: --model models.py:...`` header, resolved beside the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import optforge
from optforge.cli import app

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def test_there_are_five_scenarios() -> None:
    assert [path.stem for path in SCENARIOS] == [
        "adamw-warmup-cosine-10k",
        "adamw-warmup-fraction",
        "muon-adamw",
        "vit-layer-decay",
        "warmup-plateau",
    ]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
@pytest.mark.parametrize("command", ["validate", "plot", "explain"])
def test_scenario_works_with_no_flags(
    path: Path, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the model header resolves beside the file, not in the current directory
    result = CliRunner().invoke(app, [command, str(path)])
    assert result.exit_code == 0, result.output


def test_the_warmup_fraction_gives_the_same_lrs_as_the_warmup_in_steps() -> None:
    def lrs(name: str) -> list[float]:
        model = torch.nn.Linear(4, 2)
        optimizer, scheduler = optforge.build(model, SCENARIOS[0].parent / f"{name}.yaml")
        seen = []
        for _ in range(600):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return seen

    steps, fraction = lrs("adamw-warmup-cosine-10k"), lrs("adamw-warmup-fraction")
    assert steps == fraction
    assert steps[500] == pytest.approx(1e-3)
