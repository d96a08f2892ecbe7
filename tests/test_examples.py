"""The example configs: shipped copies match examples/; each validates, plots, explains and trains."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optforge.cli import app
from optforge.cli_files import header_model
from optforge.demo import example_names, example_path, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
HYDRA_FILES = sorted((ROOT / "examples" / "hydra").rglob("*.yaml"))
# The shipped examples whose param-group rules are written for the demo model.
NEED_THE_DEMO_MODEL = {"layer-decay", "per-tower-schedules", "template-momentum"}


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, " ".join(result.stdout.split()), " ".join(result.stderr.split())


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 7


def test_shipped_examples_are_copies_of_the_repository_examples() -> None:
    assert example_names() == [path.stem for path in EXAMPLES]
    for path in EXAMPLES:
        assert example_path(path.stem).read_text() == path.read_text(), f"src/optforge/examples/{path.name} differs"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_plots_and_explains_with_no_flags(path: Path, tmp_path: Path) -> None:
    code, out, err = run("validate", path)
    assert code == 0, err
    assert out.startswith(f"{path}: valid")
    assert err == ""  # no warning either
    assert "stand-in" not in out
    named = "built on optforge.demo:make_model, the model the file names"
    assert (named in out) is (path.stem in NEED_THE_DEMO_MODEL)
    code, out, err = run("plot", path, "-o", tmp_path / "lr.png")
    assert code == 0, err
    assert (tmp_path / "lr.png").stat().st_size > 10_000
    code, out, err = run("explain", path)
    assert code == 0, err
    assert "trainable parameters" in out


def test_the_examples_that_need_a_model_name_it() -> None:
    assert {path.stem for path in EXAMPLES if header_model(path)} == NEED_THE_DEMO_MODEL
    for name in NEED_THE_DEMO_MODEL:
        assert header_model(example_path(name)) == "optforge.demo:make_model"


@pytest.mark.skipif(importlib.util.find_spec("hydra") is None, reason="needs hydra-core")
@pytest.mark.parametrize("path", HYDRA_FILES, ids=lambda p: str(p.relative_to(ROOT / "examples" / "hydra")))
def test_hydra_example_files_validate(path: Path) -> None:
    code, out, err = run("validate", path)
    assert code == 0, err
    assert out.startswith(f"{path}: valid")
    if path.parent.name == "schedule":
        group = "optim/schedule"
        note = f"a schedule-only file of the Hydra group {group}, checked in config.yaml with {group}={path.stem}"
        assert note in out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_the_demo_task(path: Path) -> None:
    result = train(path, steps=40)
    assert all(math.isfinite(loss) for loss in result.losses)
    assert result.final_loss < result.losses[0]


def test_the_cli_page_lists_every_shipped_example() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in example_names() if f"`{name}`" not in page]
    assert not missing, f"docs/cli.md does not list the examples {missing}"
