"""Every example in the docs runs, and the site builds with ``mkdocs build --strict``.

Python blocks of each page run in order in one fresh namespace, in a temporary
directory holding a copy of ``examples/``; ``optforge ...`` lines of shell blocks
run through the command line there too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from optforge.cli import app
from optforge.schedules import LearningRate

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>```|~~~)[ \t]*(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell", "console"}
COMMAND = re.compile(r"^(?:\$ )?optforge\s")


def fenced_blocks(text: str, languages: set[str]) -> list[str]:
    """The bodies of the fenced blocks whose language is in ``languages``, dedented.

    Example:
        >>> fenced_blocks("```python\\nx = 1\\n```\\n```yaml\\na: 1\\n```\\n", {"python"})
        ['x = 1\\n']
    """
    blocks = []
    for match in FENCE.finditer(text):
        words = re.findall(r"[\w+-]+", match["info"])
        if words and words[0].lower() in languages:
            blocks.append(textwrap.dedent(match["body"]))
    return blocks


def command_lines(text: str) -> list[str]:
    return [
        line.strip().removeprefix("$ ")
        for block in fenced_blocks(text, SHELL)
        for line in block.splitlines()
        if COMMAND.match(line.strip())
    ]


def _pages_with(select: Any) -> list[Path]:
    return [page for page in PAGES if select(page.read_text(encoding="utf-8"))]


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the examples' models are tiny: one thread is the fastest
    yield tmp_path
    torch.set_num_threads(threads)


def test_the_main_pages_have_examples() -> None:
    with_python = {_id(page) for page in _pages_with(lambda text: fenced_blocks(text, PYTHON))}
    assert {"docs/index.md", "docs/getting-started.md"} <= with_python
    assert "docs/cli.md" in {_id(page) for page in _pages_with(command_lines)}


def test_fenced_blocks_reads_indented_and_attributed_fences() -> None:
    text = "- item\n\n    ```python title='x.py'\n    y = 2\n    ```\n\n~~~{.python}\nz = 3\n~~~\n"
    assert fenced_blocks(text, PYTHON) == ["y = 2\n", "z = 3\n"]
    assert command_lines("```bash\n$ optforge list  # all\npip install x\n```\n") == ["optforge list  # all"]


# The registries a page's examples may add to, with their unregister functions: what a page registers
# (entries of the "user" provider; providers' own entries stay loaded) is removed after it, so no later
# test in the same process finds the name taken.
REGISTRIES = {
    "optforge.registry": "unregister_optimizer",
    "optforge.lr_schedulers.registry": "unregister_scheduler",
}


def _registry(name: str) -> Any:
    """The registry module ``name``, or ``None`` where this version of optforge has none."""
    package = name.rpartition(".")[0]
    if importlib.util.find_spec(package) is None or importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _registered() -> dict[str, set[str]]:
    return {name: set(module._ENTRIES) for name in REGISTRIES if (module := _registry(name)) is not None}


@pytest.mark.parametrize("page", _pages_with(lambda text: fenced_blocks(text, PYTHON)), ids=_id)
def test_python_examples_run(page: Path, workdir: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    before = _registered()
    try:
        for index, code in enumerate(fenced_blocks(page.read_text(encoding="utf-8"), PYTHON), start=1):
            exec(compile(code, f"{_id(page)} (python block {index})", "exec"), namespace)
    finally:
        for name, names in before.items():
            module = importlib.import_module(name)
            for added in set(module._ENTRIES) - names:
                if module._ENTRIES[added].provider == "user":
                    getattr(module, REGISTRIES[name])(added)


@pytest.mark.parametrize("page", _pages_with(command_lines), ids=_id)
def test_command_examples_run(page: Path, workdir: Path) -> None:
    for line in command_lines(page.read_text(encoding="utf-8")):
        result = CliRunner().invoke(app, shlex.split(line, comments=True)[1:])
        assert result.exit_code == 0, f"{_id(page)}: `{line}` failed:\n{result.output}"


SCHEDULERS_PAGE = ROOT / "docs" / "schedulers.md"
YAML = {"yaml", "yml"}
STAND_IN_OPTIMIZER = {"name": "SGD", "lr": 0.1}


def yaml_documents(page: Path) -> list[Any]:
    """The documents of a page's YAML blocks, in order."""
    return [yaml.safe_load(block) for block in fenced_blocks(page.read_text(encoding="utf-8"), YAML)]


@pytest.mark.parametrize("index", range(len(yaml_documents(SCHEDULERS_PAGE))))
def test_the_yaml_examples_of_the_schedulers_page_validate(index: int) -> None:
    from optforge.cli import validate_config
    from optforge.cli_files import check_template_schedulers
    from optforge.lr_schedulers.section import TEMPLATE_DOCUMENT_KEYS

    document = yaml_documents(SCHEDULERS_PAGE)[index]
    assert isinstance(document, dict), f"docs/schedulers.md (yaml block {index + 1}) is not a config"
    if set(document) <= set(TEMPLATE_DOCUMENT_KEYS):
        problems = check_template_schedulers(document)
    else:  # a schedule: section, as in a config beside its optimizer
        assert "schedule" in document, f"docs/schedulers.md (yaml block {index + 1}) has no schedule: section"
        problems = validate_config({"optimizer": STAND_IN_OPTIMIZER, **document})
    assert problems == [], f"docs/schedulers.md (yaml block {index + 1}) does not validate: {problems}"


def _load_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_the_gallery_plots_every_schedule() -> None:
    plots = _load_hooks().gallery_plots((ROOT / "docs" / "gallery.md").read_text(encoding="utf-8"))
    shown = {key for plot in plots for key in _keys(plot.document["schedule"])}
    missing = set(LearningRate.model_fields) - shown
    assert not missing, f"docs/gallery.md has no plotted example of {sorted(missing)}"


@pytest.mark.parametrize(
    ("page", "expected"), [("cli.md", "### `optforge validate`"), ("config-reference.md", "peak_value")]
)
def test_generated_pages_say_so_in_the_repository_and_are_filled_in_the_site(page: str, expected: str) -> None:
    hooks = _load_hooks()
    markdown = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert "**Generated when the site is built.**" in markdown
    assert expected not in markdown
    fake_page = type("Page", (), {"file": type("File", (), {"src_uri": page})()})()
    built = hooks.on_page_markdown(markdown, fake_page, {}, None)
    assert expected in built
    assert "Generated when the site is built" not in built
    assert "<!-- optforge:" not in built
    assert "<!-- /optforge:" not in built


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    plots = _load_hooks().gallery_plots((ROOT / "docs" / "gallery.md").read_text(encoding="utf-8"))
    for plot in plots:
        with Image.open(site / plot.uri) as image:
            assert image.format == "PNG"
    gallery = (site / "gallery" / "index.html").read_text(encoding="utf-8")
    assert gallery.count('<img alt="') == len(plots)
    literal_roles = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(?:<code>|`)")
    pages = site.rglob("*.html")
    with_roles = [str(page.relative_to(site)) for page in pages if literal_roles.search(page.read_text())]
    assert with_roles == [], "pages showing Sphinx roles as text"
    reference = (site / "config-reference" / "index.html").read_text(encoding="utf-8")
    for text in ("peak_value", "AdamW", "layer_decay", "tower_learning_rates", "steps_per_epoch"):
        assert text in reference
    assert "optforge demo" in (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "optforge.builder.build_optimizer" in (site / "api" / "builder" / "index.html").read_text(encoding="utf-8")


def test_the_cli_help_fits_the_page_and_is_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = _load_hooks()
    text = hooks.cli_help()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= hooks.CLI_HELP_WIDTH
    assert not [line for line in lines if line != line.rstrip()]
    assert "…" not in text
    flat = " ".join(text.replace("│", " ").split())
    assert "a function returning an nn.Module, or a module instance" in flat
    from typer import rich_utils

    monkeypatch.setattr(rich_utils, "FORCE_TERMINAL", True)  # as typer sets it under GITHUB_ACTIONS or FORCE_COLOR
    monkeypatch.setattr(rich_utils, "MAX_WIDTH", 200)  # as typer sets it from TERMINAL_WIDTH=200
    monkeypatch.setenv("COLUMNS", "200")
    assert hooks.cli_help() == text
    assert (rich_utils.FORCE_TERMINAL, rich_utils.MAX_WIDTH) == (True, 200)


def test_the_models_list_of_the_cli_page_renders_as_three_items() -> None:
    import markdown

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = page.split("## Models on the command line", 1)[1].split("\n## ", 1)[0]
    html = markdown.markdown(section, extensions=["attr_list", "pymdownx.superfences"])
    (ordered,) = re.findall(r"<ol>.*?</ol>", html, re.S)
    items = re.findall(r"<li>(.*?)</li>", ordered, re.S)
    assert len(items) == 3, items
    assert "stand-in" in items[2]
