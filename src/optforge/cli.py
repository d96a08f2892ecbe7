"""The ``optforge`` command line: list, validate, plot, explain, schema and demo.

Every command reports a bad config as one ``path: message`` line per problem on
stderr (long values cut short) and exits with status 1; no input makes it print a
traceback. Only the commands that build something import torch, so
``optforge --help`` and ``optforge --version`` answer at once.

Example:
    >>> from typer.testing import CliRunner
    >>> result = CliRunner().invoke(app, ["list", "nadam", "--provider", "torch"])
    >>> result.exit_code, "NAdam" in result.output
    (0, True)
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from optforge.errors import ConfigError

__all__ = ["app", "load_model", "main", "validate_config"]

app = typer.Typer(
    name="optforge",
    help="Build PyTorch optimizers and learning-rate schedules from configuration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class _Command(typer.core.TyperCommand):
    """A command whose help shows no type after a flag (``--help``, ``--all``): a flag takes no value."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and not getattr(param, "count", False) and param.metavar is None:
                param.metavar = ""
        return params


# The longest message and path printed for one problem: a bad value can be megabytes long.
MESSAGE_LIMIT = 300
PATH_LIMIT = 120
# What validate, plot and explain build on when neither --model nor the file names a model.
STAND_IN = "torch.nn.Linear(1, 1)"
# The model the shipped examples are written for.
EXAMPLE_MODEL = "optforge.demo:make_model"
# Set to see the traceback of an unexpected error instead of its one-line report.
TRACEBACK_VARIABLE = "OPTFORGE_TRACEBACK"

ConfigArgument = Annotated[Path, typer.Argument(help="A YAML (or JSON) config file.", show_default=False)]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A model to build on, as module:factory or file.py:factory (a function returning an nn.Module, "
        "or a module instance); param-group rules match its parameter names. Default: the model the file "
        "names in a '# optforge: --model module:factory' header, else a one-layer stand-in.",
    ),
]


def _console(*, stderr: bool = False) -> Console:
    # No markup: messages quote config values and install commands such as optforge[plot].
    console = Console(stderr=stderr, highlight=False, markup=False)
    if not console.is_terminal:
        console.width = 160  # piped or captured output: print tables whole rather than at 80 columns
    return console


def clip(text: Any, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters of it: a long one loses its middle, so that
    its start (what is wrong) and its end (the hint) both stay, and says its full length.

    Example:
        >>> clip("a\\n  b")
        'a b'
        >>> clip("x" * 1000 + " See the docs.", 30)
        'xxxxxxxxxxxxxxxxxxxx… the docs. (1,014 characters in all)'
    """
    text = str(text)
    if len(text) <= 4 * limit:
        line = " ".join(text.split())
        if len(line) <= limit:
            return line
    else:
        line = " ".join(text[: 2 * limit].split()) + " " + " ".join(text[-2 * limit :].split())
    tail = limit // 3
    return f"{line[: limit - tail]}…{line[-tail:]} ({len(text):,} characters in all)"


def _line(path: str, message: str, style: str = "") -> Text:
    return Text.assemble((clip(path, PATH_LIMIT), "cyan"), ": ", (clip(message), style))


def _report(problems: Sequence[tuple[str, str]], source: str = "") -> None:
    """Print each problem as one ``path: message`` line on stderr; a problem without a path takes ``source``."""
    console = _console(stderr=True)
    for path, message in problems:
        console.print(_line(path or source or "<config>", message), soft_wrap=True)


def _note(text: str, *, stderr: bool = False) -> None:
    _console(stderr=stderr).print(Text("  note: " + text, style="dim"), soft_wrap=True)


def _guarded(command: F) -> F:
    """Report what ``command`` raises as ``path: message`` lines and exit with status 1: never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        source = str(kwargs.get("config") or "")
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            _report(error.problems, source)
        except (typer.Exit, typer.Abort, typer.TyperException):  # typer's exits and usage errors
            raise
        except Exception as exc:  # a bug, or an input no check foresaw: one line all the same
            if os.environ.get(TRACEBACK_VARIABLE):
                raise
            message = f"unexpected {type(exc).__name__}: {exc} (set {TRACEBACK_VARIABLE}=1 to see where it came from)"
            _report([("", message)], source)
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def _require_plot_library(package: str) -> None:
    """Exit with the install command when ``package`` (matplotlib or plotext) is missing."""
    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"this needs {package}, which is not installed; install it with `pip install -e '.[plot]'`")


def load_model(spec: str, *, path: str = "--model") -> Any:
    """The ``nn.Module`` named by ``module:factory`` or ``path/to/file.py:factory``.

    ``factory`` is called without arguments unless it already is a module.

    Raises:
        ConfigError: when the module, the attribute or the model cannot be had
            (its path is ``path``, where the spec came from).

    Example:
        >>> type(load_model("optforge.demo:make_model")).__name__
        'DemoNet'
    """
    from torch import nn

    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"expected module:factory or file.py:factory, got {spec!r}", path=path)
    try:
        if target.endswith(".py"):
            name = f"_optforge_model_{Path(target).stem}"
            module_spec = importlib.util.spec_from_file_location(name, target)
            if module_spec is None or module_spec.loader is None or not Path(target).is_file():
                raise ConfigError(f"no Python file {target!r}", path=path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module  # dataclasses and pickling look a class's module up there
            module_spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            try:
                module = importlib.import_module(target)
            finally:
                sys.path.remove(str(Path.cwd()))
    except ImportError as exc:
        raise ConfigError(f"cannot import {target!r}: {exc}", path=path) from None
    if not hasattr(module, attr):
        public = sorted(name for name in vars(module) if not name.startswith("_"))
        raise ConfigError(f"{target!r} has no attribute {attr!r}; it has: {', '.join(public)}", path=path)
    model = getattr(module, attr)
    if not isinstance(model, nn.Module) and callable(model):
        model = model()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec} gave {type(model).__name__}, not a torch.nn.Module", path=path)
    return model


def _model_for(option: str | None, config: Any) -> tuple[Any, str]:
    """The model to build ``config`` on, and where it came from: ``"--model"``, ``"file"`` or ``"stand-in"``."""
    if option:
        return load_model(option), "--model"
    if config.model:
        return load_model(config.model, path=f"{config.path} header (# optforge: --model)"), "file"
    import torch

    return torch.nn.Linear(1, 1), "stand-in"


def _schedule_problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems of the ``schedule:`` section on its own, built over a one-group stand-in optimizer."""
    import torch

    from optforge.scheduler import build_scheduler

    if document.get("schedule") is None:
        return []
    stand_in = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        build_scheduler(stand_in, document["schedule"], path="schedule")
    except ConfigError as error:
        return error.problems
    return []


def _check(config: Any, model: Any) -> tuple[list[tuple[str, str]], str]:
    """Every problem of ``config`` built over ``model``, and the stage that found them: load, spec or build."""
    import torch

    from optforge.builder import build, resolve_optimizer_spec
    from optforge.config_source import load_config

    try:
        document = load_config(config)
    except ConfigError as error:
        return error.problems, "load"
    from optforge.composite import check_parts, composite_document

    try:
        composite = composite_document(document)
        if composite is not None and model is None:  # selectors and schedules by group need the model
            return check_parts(composite["optimizer"], document=composite), "spec"
        if composite is None:
            resolve_optimizer_spec(document)
    except ConfigError as error:
        schedule = [problem for problem in _schedule_problems(document) if problem not in error.problems]
        return [*error.problems, *schedule], "spec"
    try:
        build(model if model is not None else torch.nn.Linear(1, 1), document)
    except ConfigError as error:
        return error.problems, "build"
    return [], "build"


def validate_config(config: Any, model: Any = None) -> list[tuple[str, str]]:
    """Every problem of ``config`` as ``(path, message)``; empty when it builds.

    The config is built over ``model`` (a one-layer stand-in when omitted), which
    checks everything, param-group rules and per-group schedules included. When
    the optimizer section is broken, the schedule is also checked on its own, so
    a config with problems in both reports both.

    Example:
        >>> validate_config({"optimizer": {"name": "AdamW", "lr": 1e-3, "beta": [0.9, 0.99]}})[0][0]
        'optimizer.beta'
    """
    return _check(config, model)[0]


# Keys of the recap form that place parameters in task towers, at the top level or in the optimizer section.
TOWER_KEYS = ("multi_task_learning_rates",)


def needs_model(document: Mapping[str, Any]) -> bool:
    """Whether ``document`` has parts that match parameter names: rules, layer decay, towers, per-group schedules.

    Example:
        >>> needs_model({"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"constant": 0.1}})
        False
        >>> needs_model({"optimizer": {"name": "SGD", "lr": 0.1, "layer_decay": 0.8}})
        True
        >>> needs_model({"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"name": "StepLR", "step_size": 5}})
        False
    """
    from optforge.lr_schedulers import is_named_section
    from optforge.param_groups import OPTION_KEYS
    from optforge.scheduler import SCHEDULE_KEYS
    from optforge.schedules import LearningRate

    section = document.get("optimizer", document)
    sections = [document, section] if isinstance(section, Mapping) else [document]
    if any(part.get(key) is not None for part in sections for key in (*OPTION_KEYS, *TOWER_KEYS)):
        return True
    schedule = document.get("schedule")
    if not isinstance(schedule, Mapping) or is_named_section(schedule):
        return False  # a scheduler by name drives every group alike
    full_form = any(key in SCHEDULE_KEYS for key in schedule)
    parts = [schedule[key] for key in SCHEDULE_KEYS if key in schedule] if full_form else [schedule]
    return any(isinstance(part, Mapping) and not set(part) & set(LearningRate.model_fields) for part in parts)


def _stand_in_note(used: str, document: Mapping[str, Any]) -> str:
    """Why the stand-in model matters for ``document``, or ``""`` when it does not."""
    if used != "stand-in" or not needs_model(document):
        return ""
    return (
        f"built on a one-layer stand-in model, {STAND_IN}: this config's param-group rules match parameter "
        f"names, so pass your model with --model module:factory (the shipped examples use --model {EXAMPLE_MODEL})"
    )


def schedule_peak(schedule: Any, *, steps_per_epoch: int | None = None, total_steps: int | None = None) -> float:
    """The largest lr of one schedule, over its steps up to twice its longest length (at least 1,000).

    Raises:
        ConfigError: for a bad schedule.

    Example:
        >>> schedule_peak({"cosine_decay": {"peak_value": 0.3, "warmup_steps": 10, "decay_steps": 100}})
        0.3
    """
    from optforge.cli_files import leaves
    from optforge.schedules import make_schedule

    lr = make_schedule(schedule, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    lengths = [*leaves(schedule, int), *(n for n in (steps_per_epoch, total_steps) if n is not None)]
    horizon = min(max(2 * max(lengths, default=0), 1000), 200_000)
    return max(lr(step) for step in range(horizon + 1))


def lr_warnings(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A warning when the optimizer's ``lr`` differs from the peak of the schedule that overrides it.

    A shared schedule sets every group's lr at every step, so a different
    ``lr`` in the optimizer section is never used: often a sign that one of the
    two was edited and not the other.

    Example:
        >>> lr_warnings({"optimizer": {"name": "SGD", "lr": 1e-3},
        ...              "schedule": {"cosine_decay": {"peak_value": 0.3, "decay_steps": 100}}})[0][0]
        'optimizer.lr'
    """
    from optforge.builder import resolve_optimizer_spec
    from optforge.scheduler import SCHEDULE_KEYS

    try:
        spec = resolve_optimizer_spec(dict(document))
    except ConfigError:
        return []
    base = spec.path if "optimizer" in document else spec.path.removeprefix("optimizer").lstrip(".")
    section: Any = document
    for part in base.split(".") if base else ():
        section = section.get(part) if isinstance(section, Mapping) else None
    lr = section.get("lr") if isinstance(section, Mapping) else None
    if not isinstance(lr, int | float) or isinstance(lr, bool):
        return []
    schedule = spec.learning_rate if spec.learning_rate is not None else document.get("schedule")
    context: dict[str, Any] = {}
    if isinstance(schedule, Mapping) and any(key in SCHEDULE_KEYS for key in schedule):
        context = {key: schedule.get(key) for key in ("steps_per_epoch", "total_steps")}
        schedule = schedule.get("lr")
    if schedule is None:
        return []
    try:
        peak = (
            float(schedule)
            if isinstance(schedule, int | float) and not isinstance(schedule, bool)
            else schedule_peak(schedule, **context)
        )
    except (ConfigError, TypeError):  # a per-group mapping, or a bad schedule that validation reports
        return []
    if math.isclose(peak, lr, rel_tol=1e-6):
        return []
    path = f"{base}.lr" if base else "lr"
    return [
        (
            path,
            f"warning: {lr:g} differs from the schedule's peak {peak:g}; the schedule sets the lr at every step, "
            "so this value is never used",
        )
    ]


def _version(value: bool) -> None:
    if value:
        from optforge import __version__

        typer.echo(f"optforge {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Build PyTorch optimizers and learning-rate schedules from configuration."""


def _optional_providers() -> list[Any]:
    """The installed providers that are not loaded by default (timm, pytorch_optimizer)."""
    from optforge import registry

    return [provider for provider in registry.optimizer_providers() if not provider.builtin and provider.is_installed()]


@app.command("list", cls=_Command)
@_guarded
def list_command(
    pattern: Annotated[
        str, typer.Argument(help="Glob over names (adam*); a plain word matches names that contain it.")
    ] = "*",
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Only this provider's optimizers (torch, optforge, timm...).")
    ] = None,
    schedulers: Annotated[
        bool, typer.Option("--schedulers", help="List the learning-rate schedulers a schedule: section can name.")
    ] = False,
    everything: Annotated[
        bool,
        typer.Option(
            "--all", "-a", help="Also list the installed optional providers (timm, pytorch_optimizer); slower."
        ),
    ] = False,
) -> None:
    """List the registered optimizers (or, with --schedulers, LR schedulers) with their provider and description.

    Without --all or --provider, the optional providers' optimizers are listed only when nothing else
    matches: importing timm alone takes seconds.
    """
    from optforge.registry import optimizer_entries

    glob = pattern if any(char in pattern for char in "*?[") else f"*{pattern}*"
    what = "scheduler" if schedulers else "optimizer"
    optional = [] if schedulers or provider or everything else [p.name for p in _optional_providers()]
    entries: Sequence[Any]
    if schedulers:
        from optforge.lr_schedulers import scheduler_entries

        entries = scheduler_entries(glob, provider=provider)
    else:
        entries = optimizer_entries(glob, provider=provider) if not optional else _builtin_entries(glob, optional)
        if not entries and optional:
            entries, optional = optimizer_entries(glob), []
    if not entries:
        flag = " --schedulers" if schedulers else " --all"
        raise ConfigError(f"no {what} matches {pattern!r}; run `optforge list{flag}` to see every name", path="pattern")
    table = Table(title=f"{len(entries)} {what}s", title_justify="left")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("provider")
    table.add_column("description")
    for entry in entries:
        reason = None if schedulers else entry.unavailable_reason()
        notes = [f"aliases: {', '.join(entry.aliases)}"] if entry.aliases else []
        notes += ["steps on a metric"] if getattr(entry, "metric", False) else []
        description = Text(" ".join([entry.description, *(f"({note})" for note in notes)]))
        if reason:
            description.append(f" (unavailable: {reason})", style="yellow")
        table.add_row(entry.name, entry.provider, description)
    console = _console()
    console.print(table)
    if optional:
        console.print(
            f"Not listed: the optional providers {', '.join(optional)} (installed). "
            f"Add --all, or --provider {optional[0]}, to list their optimizers too.",
            style="dim",
        )


def _builtin_entries(glob: str, optional: Sequence[str]) -> list[Any]:
    from optforge import registry

    names = [p.name for p in registry.optimizer_providers() if p.name not in optional]
    entries = [entry for name in names for entry in registry.optimizer_entries(glob, provider=name)]
    return sorted(entries, key=lambda e: (e.provider != "torch", e.provider, e.name.lower()))


@app.command(cls=_Command)
@_guarded
def validate(config: ConfigArgument, model: ModelOption = None) -> None:
    """Check a config (optimizer, schedule, param groups); print every error with its field path.

    Exits with status 0 when the config builds, 1 otherwise. A file holding only a
    schedule (a Hydra schedule/ fragment) is checked as a schedule. Warns when the
    optimizer's lr differs from the peak of the schedule that overrides it.
    """
    from optforge.cli_files import read_config_file

    try:
        file = read_config_file(config)
    except ConfigError as error:
        _fail(config, error.problems, [])
    chosen, used = _model_for(model, file)
    if file.kind == "template-schedulers":
        from optforge.cli_files import check_template_schedulers

        problems, stage, used = check_template_schedulers(file.document), "build", "none"
    else:
        problems, stage = _check(file.document, None if used == "stand-in" else chosen)
    notes = [file.note] if file.note else []
    if used == "file":
        notes.append(f"built on {file.model}, the model the file names")
    if stage == "build" and (stand_in := _stand_in_note(used, file.document)):
        notes.append(stand_in)
    if problems:
        _fail(config, problems, notes)
    _console().print(Text(f"{config}: valid", style="green"), soft_wrap=True)
    for note in notes:
        _note(note)
    if not file.synthetic_optimizer:
        warnings = lr_warnings(file.document)
        console = _console(stderr=True)
        for path, message in warnings:
            console.print(_line(path, message, "yellow"), soft_wrap=True)


def _fail(config: Path, problems: Sequence[tuple[str, str]], notes: Sequence[str]) -> NoReturn:
    _report(problems, str(config))
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    _console(stderr=True).print(_line(str(config), count, "red"), soft_wrap=True)
    for note in notes:
        _note(note, stderr=True)
    raise typer.Exit(1)


def _on_model(config: Path, model: str | None, action: Callable[[Any, Any], Any]) -> tuple[Any, Any]:
    """``action(document, model)`` for a config file, and the file; its problems end the command.

    When the optimizer section is sound, the problems may come from the stand-in model: the note says so.
    """
    from optforge.builder import resolve_optimizer_spec
    from optforge.cli_files import read_config_file

    file = read_config_file(config)
    chosen, used = _model_for(model, file)
    try:
        return action(file.document, chosen), file
    except ConfigError as error:
        _report(error.problems, str(config))
        try:
            resolve_optimizer_spec(file.document)
        except ConfigError:
            raise typer.Exit(1) from None
        if note := _stand_in_note(used, file.document):
            _note(note, stderr=True)
        raise typer.Exit(1) from None


@app.command(cls=_Command)
@_guarded
def plot(
    config: ConfigArgument,
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="Number of optimizer steps to plot.")] = 1000,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the plot to this file (PNG, or the format its extension names) instead of drawing it.",
        ),
    ] = None,
    model: ModelOption = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="For a metric-driven scheduler (ReduceLROnPlateau): the monitored value at each step, "
            "comma-separated; the last value repeats.",
        ),
    ] = None,
) -> None:
    """Plot the learning rate of each param group (and other scheduled hyperparameters).

    Warmup and phase boundaries are marked. Without -o the plot is drawn in the terminal.
    """
    from optforge.plotting import plot_trace_png, plot_trace_terminal, trace_schedule

    values = _metric_values(metric)
    _require_plot_library("plotext" if output is None else "matplotlib")
    trace, _ = _on_model(
        config,
        model,
        lambda document, chosen: trace_schedule(document, steps, chosen, title=config.name, metric=values),
    )
    console = _console()
    if output is None:
        size = shutil.get_terminal_size((100, 30))
        drawing = plot_trace_terminal(trace, size.columns, max(size.lines - 4, 15), color=console.is_terminal)
        typer.echo(drawing)
    else:
        console.print(f"wrote {plot_trace_png(trace, output)}")
    if trace.boundaries:
        console.print("boundaries at steps: " + ", ".join(map(str, trace.boundaries)))
    for name, values in [*(("lr of " + k, v) for k, v in trace.lrs.items()), *trace.others.items()]:
        console.print(
            f"{name}: {values[0]:.3g} at step 0, min {min(values):.3g}, max {max(values):.3g}, "
            f"{values[-1]:.3g} at step {steps - 1}"
        )


def _metric_values(text: str | None) -> list[float] | None:
    """The numbers of a ``--metric`` option."""
    if text is None:
        return None
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {clip(text, 80)!r}", path="--metric") from None
    if not values or not all(math.isfinite(value) for value in values):
        raise ConfigError(f"expected finite numbers, got {clip(text, 80)!r}", path="--metric")
    return values


@app.command(cls=_Command)
@_guarded
def explain(config: ConfigArgument, model: ModelOption = None) -> None:
    """Show the param group each parameter of a model lands in, with its lr, weight decay and why."""
    from optforge.explain import _cell, explain

    table, file = _on_model(config, model, lambda document, chosen: explain(chosen, document))
    console = _console()
    for title, columns, rows in (
        ("parameters", table.columns, table.rows),
        ("groups", table.group_columns, table.group_rows),
    ):
        view = Table(title=title, title_justify="left")
        for column in columns:
            view.add_column(column, justify="right" if column in ("numel", "tensors") else "left")
        for row in rows:
            view.add_row(*(_cell(value) for value in row))
        console.print(view)
    totals = table.totals
    console.print(
        f"{table.optimizer}: {totals['groups']} groups, {totals['tensors']} tensors, "
        f"{totals['trainable']:,} trainable parameters, {totals['frozen']:,} frozen"
    )
    if table.step_path:
        console.print(f"step path: {table.step_path}")
    if model is None and file.model:
        _note(f"on {file.model}, the model the file names")
    elif model is None:
        _note(f"on a one-layer stand-in model, {STAND_IN}: pass yours with --model module:factory")


@app.command(cls=_Command)
@_guarded
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the schema to this file.")] = None,
) -> None:
    """Print the JSON Schema of a config file (for editor completion and checks)."""
    from optforge.schema import json_schema

    text = json.dumps(json_schema(), indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        _console().print(f"wrote {output}")


def _progress(console: Console) -> Any:
    """The demo's progress bar: a run's name, its steps, then its loss and lr (or what it is doing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=console, transient=False)


def _run_with_progress(console: Console, label: str, config: Any, steps: int, seed: int) -> Any:
    from optforge.demo import train

    def show(step: int, loss: float, lr: float) -> None:
        progress.update(task, completed=step + 1, status=f"loss {loss:.4f}  lr {lr:.2e}")

    with _progress(console) as progress:
        # Until the first step, say what is happening rather than show empty numbers.
        task = progress.add_task(label, total=steps, status="building")
        return train(config, steps, seed=seed, name=label.strip(), on_step=show)


@app.command(cls=_Command)
@_guarded
def demo(
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="A config file, or the name of a shipped example (lion, ...)."),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="Training steps.")] = 300,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            help="Also train with these (repeat the option, or separate with commas): shipped example "
            "names, config files, or optimizer names, which take the config's lr and schedule.",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the loss curves to this PNG.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data, the weights and the batch order.")] = 0,
) -> None:
    """Train a small model on synthetic data with a config, showing loss and lr as it goes."""
    from optforge.builder import resolve_optimizer_spec
    from optforge.demo import DEFAULT_EXAMPLE, example_names, example_path, resolve_run

    if output is not None:
        _require_plot_library("matplotlib")
    console = _console()
    name = config or DEFAULT_EXAMPLE
    base: Path = example_path(name) if name in example_names() or not Path(name).exists() else Path(name)
    runs = [(Path(name).stem, base)]
    for item in [part.strip() for value in compare or [] for part in value.split(",") if part.strip()]:
        runs.append(resolve_run(item, base))
    for _, cfg in runs:
        resolve_optimizer_spec(cfg)  # every config is checked before any training starts
    width = max(len(label) for label, _ in runs)
    results = [_run_with_progress(console, label.ljust(width), cfg, steps, seed) for label, cfg in runs]
    if len(results) == 1:
        _print_summary(console, results[0], base, steps)
    else:
        _print_comparison(console, results, steps)
    if output is not None:
        from optforge.plotting import plot_losses_png

        path = plot_losses_png({r.name: r.losses for r in results}, output, title=f"demo task, {steps} steps")
        console.print(f"wrote {path}")


def _print_summary(console: Console, result: Any, config: Path, steps: int) -> None:
    console.print(
        f"{result.optimizer} from {config.name}, {steps} steps\n"
        f"  training loss  {result.losses[0]:.4f} at the first step, {result.losses[-1]:.4f} at the last\n"
        f"  final loss     {result.final_loss:.4f} on the whole data set\n"
        f"  learning rate  {max(result.lrs):.3g} at its peak, {result.lrs[-1]:.3g} at the last step\n"
        f"  time per step  {result.seconds_per_step * 1e3:.2f} ms"
    )


def _print_comparison(console: Console, results: Sequence[Any], steps: int) -> None:
    best = min(result.final_loss for result in results)
    table = Table(title=f"demo task, {steps} steps, same data and initial weights", title_justify="left")
    table.add_column("run", no_wrap=True, min_width=max(len(result.name) for result in results))
    table.add_column("optimizer", no_wrap=True)
    for column in ("final loss", "last batch loss", "ms/step"):
        table.add_column(column, justify="right")
    for result in results:
        style = "bold green" if result.final_loss == best else None
        table.add_row(
            result.name,
            result.optimizer,
            f"{result.final_loss:.4f}",
            f"{result.losses[-1]:.4f}",
            f"{result.seconds_per_step * 1e3:.2f}",
            style=style,
        )
    console.print(table)


def main() -> None:
    """Run the ``optforge`` command line."""
    app(prog_name="optforge")
