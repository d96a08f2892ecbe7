"""The ``optforge`` command line: list, validate, plot, explain, schema and demo.

Every command reports a bad config as its :class:`~optforge.errors.ConfigError`
problems, one ``path: message`` line each, and exits with status 1.

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
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

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

ConfigArgument = Annotated[Path, typer.Argument(help="A YAML (or JSON) config file.", show_default=False)]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A model to build on, as module:factory or file.py:factory "
        "(a function returning an nn.Module, or a module instance); param-group rules match its parameter names.",
    ),
]


def _console(*, stderr: bool = False) -> Console:
    # No markup: messages quote config values and install commands such as optforge[plot].
    console = Console(stderr=stderr, highlight=False, markup=False)
    if not console.is_terminal:
        console.width = 160  # piped or captured output: print tables whole rather than at 80 columns
    return console


def _error(message: str, path: str = "") -> None:
    """Print ``error path: message`` on stderr."""
    where = [(path, "cyan"), ": "] if path else []
    _console(stderr=True).print(Text.assemble(("error", "bold red"), " ", *where, message), soft_wrap=True)


def _report(problems: Sequence[tuple[str, str]]) -> None:
    """Print each config problem as ``path: message`` on stderr."""
    for path, message in problems:
        _error(message, path or "<config>")


def _config_errors_exit(command: F) -> F:
    """Turn a ConfigError raised by ``command`` into its report and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            _report(error.problems)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _require_plot_library(package: str) -> None:
    """Exit with the install command when ``package`` (matplotlib or plotext) is missing."""
    if importlib.util.find_spec(package) is None:
        _error(f"this needs {package}, which is not installed; install it with `pip install 'optforge[plot]'`")
        raise typer.Exit(1)


def load_model(spec: str) -> Any:
    """The ``nn.Module`` named by ``module:factory`` or ``path/to/file.py:factory``.

    ``factory`` is called without arguments unless it already is a module.

    Raises:
        ConfigError: when the module, the attribute or the model cannot be had.

    Example:
        >>> type(load_model("optforge.demo:make_model")).__name__
        'DemoNet'
    """
    from torch import nn

    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"expected module:factory or file.py:factory, got {spec!r}", path="--model")
    try:
        if target.endswith(".py"):
            name = f"_optforge_model_{Path(target).stem}"
            module_spec = importlib.util.spec_from_file_location(name, target)
            if module_spec is None or module_spec.loader is None or not Path(target).is_file():
                raise ConfigError(f"no Python file {target!r}", path="--model")
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
        raise ConfigError(f"cannot import {target!r}: {exc}", path="--model") from None
    if not hasattr(module, attr):
        public = sorted(name for name in vars(module) if not name.startswith("_"))
        raise ConfigError(f"{target!r} has no attribute {attr!r}; it has: {', '.join(public)}", path="--model")
    model = getattr(module, attr)
    if not isinstance(model, nn.Module) and callable(model):
        model = model()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec} gave {type(model).__name__}, not a torch.nn.Module", path="--model")
    return model


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
    import torch

    from optforge.builder import build, resolve_optimizer_spec
    from optforge.config_source import load_config

    try:
        document = load_config(config)
    except ConfigError as error:
        return error.problems
    from optforge.composite import check_parts, composite_document

    try:
        composite = composite_document(document)
        if composite is not None and model is None:  # selectors and schedules by group need the model
            return check_parts(composite["optimizer"], document=composite)
        if composite is None:
            resolve_optimizer_spec(document)
    except ConfigError as error:
        return [
            *error.problems,
            *(problem for problem in _schedule_problems(document) if problem not in error.problems),
        ]
    try:
        build(model if model is not None else torch.nn.Linear(1, 1), document)
    except ConfigError as error:
        return error.problems
    return []


@app.command("list")
@_config_errors_exit
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
) -> None:
    """List the registered optimizers (or, with --schedulers, LR schedulers) with their provider and description."""
    from optforge.lr_schedulers import scheduler_entries
    from optforge.registry import optimizer_entries

    glob = pattern if any(char in pattern for char in "*?[") else f"*{pattern}*"
    what = "scheduler" if schedulers else "optimizer"
    entries: Sequence[Any] = (scheduler_entries if schedulers else optimizer_entries)(glob, provider=provider)
    if not entries:
        flag = " --schedulers" if schedulers else ""
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
    _console().print(table)


@app.command()
def validate(config: ConfigArgument, model: ModelOption = None) -> None:
    """Check a config (optimizer, schedule, param groups); print every error with its field path.

    Exits with status 0 when the config builds, 1 otherwise.
    """
    try:
        problems = validate_config(config, load_model(model) if model else None)
    except ConfigError as error:
        problems = error.problems
    note = "" if model else " (checked on a one-layer stand-in model: pass --model for param-group rules)"
    if problems:
        _report(problems)
        _console(stderr=True).print(Text.assemble((f"{config}: {len(problems)} problem(s)", "red"), note))
        raise typer.Exit(1)
    _console().print(Text.assemble((f"{config}: valid", "green"), note), soft_wrap=True)


@app.command()
@_config_errors_exit
def plot(
    config: ConfigArgument,
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="Number of optimizer steps to plot.")] = 1000,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write a PNG here instead of drawing in the terminal.")
    ] = None,
    model: ModelOption = None,
) -> None:
    """Plot the learning rate of each param group (and other scheduled hyperparameters).

    Warmup and phase boundaries are marked. Without -o the plot is drawn in the terminal.
    """
    from optforge.plotting import plot_trace_png, plot_trace_terminal, trace_schedule

    _require_plot_library("plotext" if output is None else "matplotlib")
    trace = trace_schedule(config, steps, load_model(model) if model else None, title=config.name)
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


@app.command()
@_config_errors_exit
def explain(
    config: ConfigArgument,
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="The model, as module:factory or file.py:factory.", show_default=False),
    ],
) -> None:
    """Show the param group each parameter of a model lands in, with its lr, weight decay and why."""
    from optforge.explain import _cell, explain

    table = explain(load_model(model), config)
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


@app.command()
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


def _run_with_progress(console: Console, label: str, config: Any, steps: int, seed: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from optforge.demo import train

    columns = (
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("lr {task.fields[lr]:.2e}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=steps, loss=float("nan"), lr=float("nan"))
        return train(
            config,
            steps,
            seed=seed,
            name=label.strip(),
            on_step=lambda step, loss, lr: progress.update(task, completed=step + 1, loss=loss, lr=lr),
        )


@app.command()
@_config_errors_exit
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
    app()
