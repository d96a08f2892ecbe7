"""The example configs: shipped copies match examples/, each validates and trains."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optforge.cli import app
from optforge.demo import example_names, example_path, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", str(path), "--model", "optforge.demo:make_model"])
    return result.exit_code, " ".join(result.output.split())


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 7


def test_shipped_examples_are_copies_of_the_repository_examples() -> None:
    assert example_names() == [path.stem for path in EXAMPLES]
    for path in EXAMPLES:
        assert example_path(path.stem).read_text() == path.read_text(), f"src/optforge/examples/{path.name} differs"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates(path: Path) -> None:
    code, output = validate(path)
    assert code == 0, output
    assert "valid" in output


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_the_demo_task(path: Path) -> None:
    result = train(path, steps=40)
    assert all(math.isfinite(loss) for loss in result.losses)
    assert result.final_loss < result.losses[0]


def test_the_cli_page_lists_every_shipped_example() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in example_names() if f"`{name}`" not in page]
    assert not missing, f"docs/cli.md does not list the examples {missing}"
