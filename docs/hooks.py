"""mkdocs hooks: the parts of the site that are generated from the code at build time.

- ``config-reference.md``: the block from ``<!-- optforge:config-reference -->`` to
  ``<!-- /optforge:config-reference -->`` (in the repository, a note saying the page is
  generated) becomes tables of every config key, made from the config models' JSON
  Schema and the registry.
- ``cli.md``: the ``<!-- optforge:cli-help -->`` block becomes each command's ``--help``.
- ``gallery.md``: every ``yaml`` block whose first line is ``# plot: N steps`` is
  followed by a PNG of its schedule over N steps, drawn into the site (never committed).

:class:`DoctestExamples` is also a griffe extension (see ``mkdocs.yml``): docstrings
here title their doctests ``Example:``, which griffe would render as prose.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import griffe
import yaml

GALLERY_PAGE = "gallery.md"
GALLERY_BLOCK = re.compile(r"^```yaml\n# plot: (?P<steps>\d+) steps\n(?P<body>.*?)^```\n", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{2,3} (?P<title>.+)$", re.MULTILINE)
# Gallery blocks are schedule sections: they are plotted beside this optimizer.
GALLERY_OPTIMIZER = {"name": "SGD", "lr": 1.0}

# Generated blocks: page -> marker name; the block runs from <!-- optforge:NAME --> to <!-- /optforge:NAME -->.
MARKERS = {
    "config-reference.md": "config-reference",
    "cli.md": "cli-help",
}


def generated_block(name: str) -> re.Pattern[str]:
    """The placeholder block ``name`` of a page, the repository's build-only note included."""
    return re.compile(rf"^<!-- optforge:{name} -->\n.*?^<!-- /optforge:{name} -->\n?", re.MULTILINE | re.DOTALL)


# A Sphinx role in a docstring: :class:`~optforge.LRShim`, :func:`make_schedule`, :meth:`step`.
SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")


def sphinx_roles_to_links(text: str, module: str) -> str:
    """Write each Sphinx role as a link to its object where the site documents it, else as code.

    A name without dots is looked up in ``module`` first. A ``~`` shows only the last part of the name.

    Example:
        >>> sphinx_roles_to_links("see :class:`~optforge.LRShim`", "optforge.builder")
        'see <autoref identifier="optforge.LRShim" optional><code>LRShim</code></autoref>'
    """

    def link(match: re.Match[str]) -> str:
        target = match["target"].strip().removesuffix("()")
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        identifier = target if target.startswith("optforge") or "." in target else f"{module}.{target}"
        suffix = "()" if match["target"].strip().endswith("()") else ""
        return f'<autoref identifier="{identifier}" optional><code>{shown}{suffix}</code></autoref>'

    return SPHINX_ROLE.sub(link, text)


class DoctestExamples(griffe.Extension):
    """Read ``Example:`` docstring sections as ``Examples:``, so their doctests render as code, and
    Sphinx roles as links (mkdocstrings' Google style renders them as literal text)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = re.sub(r"^(\s*)Example:$", r"\1Examples:", obj.docstring.value, flags=re.MULTILINE)
            module = obj.path if obj.is_module else obj.module.path
            obj.docstring.value = sphinx_roles_to_links(text, module)


@dataclass(frozen=True)
class GalleryPlot:
    title: str
    steps: int
    document: dict[str, Any]
    end: int  # offset in the page just after the block
    uri: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def gallery_plots(markdown: str) -> list[GalleryPlot]:
    """The plotted blocks of the gallery page, each titled by the heading above it."""
    plots = []
    for match in GALLERY_BLOCK.finditer(markdown):
        headings = list(HEADING.finditer(markdown, 0, match.start()))
        title = headings[-1]["title"].strip() if headings else f"schedule {len(plots) + 1}"
        document = yaml.safe_load(match["body"])
        document.setdefault("optimizer", GALLERY_OPTIMIZER)
        uri = f"gallery/{len(plots) + 1:02d}-{_slug(title)}.png"
        plots.append(GalleryPlot(title, int(match["steps"]), document, match.end(), uri))
    return plots


def _png(plot: GalleryPlot) -> bytes:
    from optforge.plotting import plot_trace_png, trace_schedule

    trace = trace_schedule(plot.document, plot.steps, title=plot.title)
    with tempfile.TemporaryDirectory() as folder:
        return plot_trace_png(trace, Path(folder) / "plot.png").read_bytes()


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    page = Path(config["docs_dir"]) / GALLERY_PAGE
    if page.is_file():
        for plot in gallery_plots(page.read_text(encoding="utf-8")):
            files.append(File.generated(config, plot.uri, content=_png(plot)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    uri = page.file.src_uri
    if uri == GALLERY_PAGE:
        for plot in reversed(gallery_plots(markdown)):
            image = f"\n![{plot.title}]({plot.uri})\n"
            markdown = markdown[: plot.end] + image + markdown[plot.end :]
    elif uri in MARKERS:
        generate = {"config-reference.md": config_reference, "cli.md": cli_help}[uri]
        markdown = generated_block(MARKERS[uri]).sub(lambda _: generate() + "\n", markdown)
    return markdown


# --- the CLI's help ----------------------------------------------------------------


# The width of the generated help, in columns: Material's code blocks show about 78 whole at every layout
# from 960 px up (beside the table of contents); a wider block scrolls, its right edge out of sight.
CLI_HELP_WIDTH = 78


def cli_help() -> str:
    """Each command's ``--help``, as rendered by the command line itself, ``CLI_HELP_WIDTH`` columns wide.

    The width is fixed here, whatever the terminal (or CI) the site is built in: typer would otherwise take
    it from ``TERMINAL_WIDTH``, and under ``GITHUB_ACTIONS`` or ``FORCE_COLOR`` rich treats the output as a
    terminal, of 80 columns when ``TERM`` is dumb.
    """
    from typer import rich_utils
    from typer.main import get_command
    from typer.testing import CliRunner

    from optforge.cli import app

    runner = CliRunner()
    env = {"COLUMNS": str(CLI_HELP_WIDTH), "NO_COLOR": "1", "TERM": "dumb"}
    sections = []
    saved = rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL
    rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL = CLI_HELP_WIDTH, False
    try:
        for name in get_command(app).list_commands(None):  # type: ignore[attr-defined]
            output = runner.invoke(app, [name, "--help"], env=env).output
            text = "\n".join(line.rstrip() for line in output.strip().splitlines())
            sections.append(f"### `optforge {name}`\n\n```text\n{text}\n```\n")
    finally:
        rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL = saved
    return "\n".join(sections)


# --- the config reference --------------------------------------------------------------


def _anchor(model: str) -> str:
    return f"model-{model.lower()}"


def _type(schema: Mapping[str, Any]) -> str:
    """A short, linked description of a JSON Schema type."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema:
        options = [_type(option) for option in schema["anyOf"] if option.get("type") != "null"]
        return " or ".join(dict.fromkeys(options))
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(_type(item) for item in schema["prefixItems"]) + "]"
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object":
        if isinstance(schema.get("additionalProperties"), Mapping):
            return f"mapping of names to {_type(schema['additionalProperties'])}"
        if schema.get("properties"):
            return "{" + ", ".join(f"{key}: {_type(value)}" for key, value in schema["properties"].items()) + "}"
        return "mapping"
    names = {"number": "float", "integer": "int", "string": "str", "boolean": "bool"}
    text = names.get(kind, str(kind or "any"))
    bounds = [
        f"{symbol} {schema[key]}"
        for key, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
        if key in schema
    ]
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _docstring(text: str) -> str:
    """A docstring as markdown: rst roles and double backticks become code spans; doctests are dropped."""
    text = text.split("\n\nExample", 1)[0]
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return _cell(text.replace("``", "`"))


def _model_section(name: str, schema: Mapping[str, Any]) -> str:
    lines = [f"### {name} {{#{_anchor(name)}}}", ""]
    if schema.get("description"):
        lines += [_docstring(schema["description"]), ""]
    properties = schema.get("properties", {})
    if not properties:
        return "\n".join(lines)
    required = set(schema.get("required", ()))
    lines += ["| key | type | default | notes |", "|---|---|---|---|"]
    for key, prop in properties.items():
        default = "required" if key in required else f"`{prop['default']}`" if "default" in prop else ""
        if key == "name" and name == "FlatOptimizerConfig":
            kind = "str: a registered optimizer name (see [Optimizers](#optimizers))"
        else:
            kind = _type(prop)
        lines.append(f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_docstring(prop.get('description', ''))} |")
    return "\n".join([*lines, ""])


def _models() -> dict[str, Mapping[str, Any]]:
    """Every config model's schema, by name."""
    from optforge.json_schema import json_schema

    return dict(sorted(json_schema()["$defs"].items()))


def _document_section() -> str:
    from optforge.json_schema import json_schema
    from optforge.scheduler import HYPERPARAMETERS, SCHEDULE_KEYS

    forms = " or ".join(_type(form) for form in json_schema()["anyOf"])
    lines = [
        "## The document",
        "",
        f"A config document is a {forms}. Its flat optimizer section, "
        f"[FlatOptimizerConfig](#{_anchor('FlatOptimizerConfig')}), holds `name`, the build options "
        "listed there and the optimizer's own hyperparameters (see [Optimizers](#optimizers)).",
        "",
        "## The schedule section",
        "",
        f"`schedule:` is one [LearningRate](#{_anchor('LearningRate')}) for every param group, a mapping of "
        "group names to schedules, or the full form with these keys:",
        "",
        "| key | what it schedules |",
        "|---|---|",
    ]
    for key in SCHEDULE_KEYS:
        if key == "lr":
            meaning = "the learning rate (one schedule, or one per group)"
        elif key in HYPERPARAMETERS:
            meaning = f"the group's `{HYPERPARAMETERS[key].group_key}`" + (
                f" ({HYPERPARAMETERS[key].hint})" if HYPERPARAMETERS[key].hint else ""
            )
        else:
            meaning = "an int: resolves lengths given as `{epochs: x}` / `{fraction: x}` into steps"
        lines.append(f"| `{key}` | {_cell(meaning)} |")
    return "\n".join([*lines, ""])


def _hyperparameters(entry: Any) -> str:
    accepted, _ = entry.hyperparameters()
    shown = []
    for name, param in accepted.items():
        default = entry.defaults.get(name, param.default)
        shown.append(f"`{name}`" if default is param.empty else f"`{name}={default!r}`")
    return ", ".join(shown)


def _optimizers_section() -> str:
    from optforge.registry import optimizer_entries

    entries = optimizer_entries()
    by_provider: dict[str, list[Any]] = {}
    for entry in entries:
        by_provider.setdefault(entry.provider, []).append(entry)
    lines = [
        "## Optimizers",
        "",
        "Names are case-insensitive; `optforge list` prints them with their descriptions. "
        "A flat config may set any hyperparameter below (values shown are the defaults).",
        "",
    ]
    for provider, group in by_provider.items():
        lines += [f"### Provider `{provider}`", ""]
        if len(group) > 40:  # large third-party catalogues: names only
            lines += [", ".join(f"`{entry.name}`" for entry in group), ""]
            continue
        lines += ["| name | hyperparameters | description |", "|---|---|---|"]
        for entry in group:
            try:
                hyper = _hyperparameters(entry)
            except (ImportError, TypeError, ValueError) as exc:  # a lazy class that cannot load here
                hyper = f"unavailable here: {exc}"
            lines.append(f"| `{entry.name}` | {_cell(hyper)} | {_cell(entry.description)} |")
        lines.append("")
    return "\n".join(lines)


def _schedulers_section() -> str:
    from optforge.lr_schedulers import scheduler_entries

    lines = [
        "## Schedulers by name",
        "",
        "A `schedule:` section may name one of these instead of holding a schedule "
        "(see [Schedulers by name](schedulers.md)); `optforge list --schedulers` prints them.",
        "",
        "| name | provider | arguments | description |",
        "|---|---|---|---|",
    ]
    for entry in scheduler_entries():
        shown = [
            f"`{name}`" if arg.required else f"`{name}={entry.defaults.get(name, arg.default)!r}`"
            for name, arg in entry.parameters().items()
        ]
        lines.append(f"| `{entry.name}` | {entry.provider} | {_cell(', '.join(shown))} | {_cell(entry.description)} |")
    return "\n".join([*lines, ""])


def _sections() -> Iterator[str]:
    yield _document_section()
    yield "## Config models\n"
    for name, schema in _models().items():
        yield _model_section(name, schema)
    yield _optimizers_section()
    yield _schedulers_section()


def config_reference() -> str:
    """Markdown tables of every config key, from the models and the registry."""
    return "\n".join(_sections())
