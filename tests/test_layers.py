"""The layering contract (pyproject.toml, ``[tool.importlinter]``): imports point one way.

Run it alone with ``.venv/bin/lint-imports``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_layers_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


FORM_NAMES = {"flat", "typed", "recap", "template"}


def test_only_the_config_package_knows_which_form_a_config_was_written_in() -> None:
    """Builders read what a section does (its fields), never the name of the form it came in."""
    import ast

    offenders = []
    for path in sorted((ROOT / "src" / "optforge").rglob("*.py")):
        if "config" in path.relative_to(ROOT / "src" / "optforge").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "form":
                offenders.append(f"{path.name}:{node.lineno}: .form")
            if isinstance(node, ast.Compare):
                constants = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                if any(value in FORM_NAMES for value in constants):
                    offenders.append(f"{path.name}:{node.lineno}: compares with a form name")
    assert offenders == []


def test_no_module_imports_a_private_name_of_another() -> None:
    """``from optforge.x import _y`` only for a package's own private submodules (``optimizers._fused``)."""
    import ast
    import importlib.util

    src = ROOT / "src"
    offenders = []
    for path in sorted((src / "optforge").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("optforge")):
                continue
            for alias in node.names:
                if not alias.name.startswith("_") or alias.name.startswith("__"):
                    continue  # public, or a dunder such as __version__
                submodule = f"{node.module}.{alias.name}"
                own_submodule = node.module == package and importlib.util.find_spec(submodule) is not None
                if not own_submodule:
                    offenders.append(f"{module}:{node.lineno}: from {node.module} import {alias.name}")
    assert offenders == []
