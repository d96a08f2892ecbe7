"""The README's set-up commands are what CI runs."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"## Set-up: two commands.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README has no set-up block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_has_two_setup_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("optforge demo")
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_both_readme_commands_as_written() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    demo, tests = _readme_commands()
    assert f'(cd "$core" && {demo})' in ci.splitlines(), "command 1 runs in its own clone, core install only"
    assert tests in ci.splitlines()
    assert "[" not in demo.split("-e", 1)[1], "command 1 installs the core package only, no extras"


def test_core_dependencies_cover_every_import_of_the_cli_and_demo() -> None:
    """What ``optforge demo`` imports at the top of its modules is a core dependency (click was not)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = {
        re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("-", "_")
        for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    import_names = {"pyyaml": "yaml"}
    available = {import_names.get(name, name) for name in declared}
    for module in ("cli.py", "demo.py", "__init__.py", "__main__.py"):
        tree = ast.parse((ROOT / "src" / "optforge" / module).read_text())
        for node in tree.body:  # module-level imports only: optional providers load lazily
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "optforge":
                    continue
                assert top in available, f"{module} imports {top}, which is not a core dependency"
