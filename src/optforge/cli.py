"""The ``optforge`` command line: list, validate, plot, explain, schema, demo and lr-find.

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

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from optforge.errors import ConfigError

if TYPE_CHECKING:
    from optforge.config import Problems

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
    """A command whose help shows no type after a flag (``--help``, ``--all``): a flag takes no value.

    Each paragraph of its docstring is one line of help text, which wraps to the terminal's width (typer
    would keep the docstring's own line breaks, and break lines twice where the terminal is narrower).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            text = inspect.cleandoc(self.help).partition("\f")[0]  # typer leaves out what follows a \f
            self.help = "\n\n".join(" ".join(part.split()) for part in text.split("\n\n"))

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
# How many steps plot draws when neither --steps nor the config gives the run's length.
DEFAULT_PLOT_STEPS = 1000
# The model the shipped examples are written for.
EXAMPLE_MODEL = "optforge.demo:make_model"
# Set to see the traceback of an unexpected error instead of its one-line report.
TRACEBACK_VARIABLE = "OPTFORGE_TRACEBACK"

ConfigArgument = Annotated[Path, typer.Argument(help="A YAML (or JSON) config file.", show_default=False)]
StackOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="The training stack the file is written for (huggingface, ...); recognised from its shape when not given.",
        show_default=False,
    ),
]
RunStepsOption = Annotated[
    int | None,
    typer.Option(
        "--steps",
        "-n",
        min=1,
        help="The run's length in optimizer steps, for a stack's file that needs it (num_training_steps).",
        show_default=False,
    ),
]
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


def load_model(spec: str, *, path: str = "--model", folder: str | Path | None = None) -> Any:
    """The ``nn.Module`` named by ``module:factory`` or ``path/to/file.py:factory``.

    ``factory`` is called without arguments unless it already is a module. A
    relative file path, and a module to import, are looked up in ``folder``
    (default: the current directory), which is on ``sys.path`` while the module
    loads and is taken off it after.

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
    base = Path.cwd() if folder is None else Path(folder)
    where = "" if folder is None else f" in {base}, the folder of the config file"
    saved = list(sys.path)
    sys.path.insert(0, str(base))
    try:
        if target.endswith(".py"):
            file = base / target  # an absolute target stays as it is
            name = f"_optforge_model_{file.stem}"
            module_spec = importlib.util.spec_from_file_location(name, file)
            if module_spec is None or module_spec.loader is None or not file.is_file():
                raise ConfigError(f"no Python file {target!r}{where}", path=path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module  # dataclasses and pickling look a class's module up there
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise ConfigError(f"cannot import {target!r}{where}: {exc}", path=path) from None
    finally:
        sys.path[:] = saved
    if not hasattr(module, attr):
        public = sorted(name for name in vars(module) if not name.startswith("_"))
        raise ConfigError(f"{target!r} has no attribute {attr!r}; it has: {', '.join(public)}", path=path)
    model = getattr(module, attr)
    if not isinstance(model, nn.Module) and callable(model):
        model = model()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec} gave {type(model).__name__}, not a torch.nn.Module", path=path)
    return model


def _stand_in() -> Any:
    import torch

    return torch.nn.Linear(1, 1)


def _model_for(option: str | None, config: Any) -> tuple[Any, str]:
    """The model to build ``config`` on, and where it came from: ``"--model"``, ``"file"`` or ``"stand-in"``.

    ``--model`` is found from the current directory; the model the file names, from the file's folder.
    """
    if option:
        return load_model(option), "--model"
    if config.model:
        where = f"{config.path} header (# optforge: --model)"
        return load_model(config.model, path=where, folder=config.path.parent), "file"
    return _stand_in(), "stand-in"


@functools.cache
def _unguarded(cls: type) -> type | None:
    """A subclass of the optimizer class ``cls`` whose ``add_param_group`` runs outside torch.compile's guard.

    torch wraps ``Optimizer.add_param_group`` in ``torch._disable_dynamo``, whose
    first call imports ``torch._dynamo`` (over a second); the guard only matters
    while torch.compile traces the call. The subclass is ``cls`` in all else: its
    own ``__init__`` runs in full, with every check it makes, under its own name.
    ``None`` where ``cls`` has an ``add_param_group`` of its own, or torch's is not
    wrapped so.
    """
    import torch

    from optforge.torch_internals import unguarded_add_param_group

    guarded = torch.optim.Optimizer.add_param_group
    plain = unguarded_add_param_group()
    if plain is None or not issubclass(cls, torch.optim.Optimizer) or cls.add_param_group is not guarded:
        return None
    names = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls.__name__, (cls,), {"add_param_group": plain, **names})


def _unguarded_spec(spec: Any) -> Any:
    """``spec`` with its optimizer built as :func:`_unguarded`'s subclass, where it has one."""
    entry = spec.entry
    if entry.factory is not None or entry.takes != "params" or spec.options.get("zero"):
        return spec
    try:
        cls = entry.resolve_class()
    except Exception:  # a lazy class that cannot load: building reports it
        return spec
    quick = _unguarded(cls) if isinstance(cls, type) else None
    return spec if quick is None else dataclasses.replace(spec, entry=dataclasses.replace(entry, factory=quick))


def _schedule_problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems of the ``schedule:`` section on its own, built over a one-group stand-in optimizer."""
    import torch

    from optforge.scheduler import build_scheduler

    schedule = document.get("schedule")
    if schedule is None or _per_group_schedules(schedule, ()):
        return []  # a schedule per group needs the groups
    sgd = _unguarded(torch.optim.SGD) or torch.optim.SGD
    stand_in = sgd([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        build_scheduler(stand_in, schedule, path="schedule")
    except ConfigError as error:
        return error.problems
    return []


def _unbuilt_problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every problem of ``document`` that shows without a model: its sections, rules, selectors and schedules."""
    from optforge.builder import resolve
    from optforge.composite_plan import check_parts, composite_document
    from optforge.config import Problems, parse_document
    from optforge.scheduler import check_schedule_section

    try:
        composite = composite_document(document)
    except ConfigError as error:
        return error.problems
    problems, names = Problems(), None
    if composite is None:
        try:
            resolve(document)
        except ConfigError as error:
            problems.extend(error)
            for problem in _schedule_problems(document):
                problems.add(*problem)
    else:
        for problem in check_parts(composite["optimizer"], document=composite):
            problems.add(*problem)
        parts = parse_document({"optimizer": composite["optimizer"]}, Problems()).parts
        names = [part.name or part.section.name.lower() for part in parts if part.section is not None]
        with problems.collect():
            check_schedule_section(composite.get("schedule"), path="schedule")
    _group_schedule_problems(document.get("schedule"), names, problems)
    return problems.items


def _group_schedule_problems(schedule: Any, parts: Sequence[str] | None, problems: Problems) -> None:
    """Note the problems of a schedule keyed by group names that show without the groups: each entry is a
    schedule of its own; in a composite (``parts``: its part names, which a key may be), a key that is no
    part's and no group's (``part/group``) but reads as a misspelt schedule name is one, as building says.
    """
    from optforge.errors import format_path, suggest, unknown_choice
    from optforge.schedules import LearningRate, parse_schedule

    for where, entry in _per_group_entries(schedule):
        for key, value in entry.items():
            path = format_path(where, str(key))
            # A group of a model may have any name (no_decay reads like linear_decay); a composite's are part/group.
            misspelt = bool(suggest(str(key), LearningRate.model_fields)) and key not in (parts or ())
            with problems.collect():
                if misspelt and parts is not None and "/" not in str(key):
                    raise unknown_choice(path, key, LearningRate.model_fields, what="schedule")
                if isinstance(value, Mapping) and not misspelt:
                    parse_schedule(value, path)


def _build(model: Any, document: dict[str, Any]) -> None:
    """Build ``document`` over ``model`` as :func:`optforge.build` does; a flat optimizer by :func:`_unguarded`."""
    from optforge.builder import build, build_spec, resolve
    from optforge.composite_plan import composite_document

    if composite_document(document) is not None:
        build(model, document)
        return
    spec = resolve(document).spec
    assert spec is not None  # a list of parts is a composite, built above
    build_spec(model, _unguarded_spec(spec))


def _check(config: Any, model: Any) -> tuple[list[tuple[str, str]], str]:
    """Every problem of ``config`` built over ``model``, and the stage that found them: load, spec or build.

    Problems that show without a model are found first (stage spec); only a
    config free of them is built (stage build), over the stand-in when ``model``
    is ``None``, except a composite: without a model, its parts are checked as written.
    """
    from optforge.config_source import load_config

    try:
        document = load_config(config)
    except ConfigError as error:
        return error.problems, "load"
    problems = _unbuilt_problems(document)
    if problems:
        return problems, "spec"
    from optforge.composite_plan import composite_document

    if model is None and composite_document(document) is not None:
        return [], "spec"  # its selectors pick parameters of the model: without one, checked as written
    try:
        _build(model if model is not None else _stand_in(), document)
    except ConfigError as error:
        return error.problems, "build"
    return [], "build"


def validate_config(config: Any, model: Any = None) -> list[tuple[str, str]]:
    """Every problem of ``config`` as ``(path, message)``; empty when it builds.

    The config is built over ``model`` (a one-layer stand-in when omitted), which
    checks everything, param-group rules and per-group schedules included; a
    composite's parts, whose ``params:`` selectors pick the model's parameters, are
    checked as written when ``model`` is omitted (``optforge validate`` builds them
    on the stand-in and says so). When
    the optimizer section is broken, the schedule is also checked on its own, so
    a config with problems in both reports both.

    Example:
        >>> validate_config({"optimizer": {"name": "AdamW", "lr": 1e-3, "beta": [0.9, 0.99]}})[0][0]
        'optimizer.beta'
    """
    return _check(config, model)[0]


# Keys of the recap form that place parameters in task towers, at the top level or in the optimizer section.
TOWER_KEYS = ("multi_task_learning_rates",)
# The keys that pick parameters by name (or shape), as messages call them.
_PICKERS = {
    "param_groups": "param_groups rules",
    "no_weight_decay": "no_weight_decay patterns",
    "layer_decay": "layer_decay",
    "group": "group patterns",
    "params": "parts' params: selectors",
    **dict.fromkeys(TOWER_KEYS, "multi_task_learning_rates towers"),
}


def _per_group_entries(schedule: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """``(path, mapping)`` for each schedule of a closed-form section given by group (or part) name.

    Example:
        >>> _per_group_entries({"lr": {"head": 0.1, "body": 0.01}, "momentum": {"constant": 0.9}})
        [('schedule.lr', {'head': 0.1, 'body': 0.01})]
    """
    from optforge.config import ClosedForm, PerGroup, read_schedule_section
    from optforge.errors import format_path

    section = read_schedule_section(schedule)
    if not isinstance(section, ClosedForm):
        return []  # none, or a scheduler by name, which drives every group alike
    values = {"lr": section.lr, **section.hyperparameters}
    return [
        (format_path("schedule", name) if section.full_form else "schedule", value.schedules)
        for name, value in values.items()
        if isinstance(value, PerGroup) and isinstance(value.schedules, Mapping)
    ]


def _per_group_schedules(schedule: Any, parts: Sequence[str]) -> bool:
    """Whether a ``schedule:`` section holds schedules keyed by param group names (other than part names).

    A key that reads as a misspelt schedule name (``cosine_decy``) is no group:
    building reports it as a schedule, whatever the model.
    """
    from optforge.errors import suggest
    from optforge.schedules import LearningRate

    return any(
        key not in parts and not suggest(str(key), LearningRate.model_fields)
        for _, entry in _per_group_entries(schedule)
        for key in entry
    )


def model_dependence(document: Mapping[str, Any]) -> str:
    """What in ``document`` picks parameters by name (or shape), so that whether it works depends on
    the model, as messages say it; ``""`` when nothing does.

    Example:
        >>> model_dependence({"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"cosine_decy": {}}})
        ''
        >>> model_dependence({"optimizer": {"name": "SGD", "lr": 0.1, "layer_decay": 0.8}})
        'its layer_decay'
        >>> model_dependence({"optimizer": [{"name": "Muon", "params": {"ndim": 2}}, {"name": "AdamW"}],
        ...                   "schedule": {"lr": {"muon": {"constant": 0.02}, "adamw/no_decay": {"constant": 0}}}})
        "its parts' params: selectors and its schedule per param group"
    """
    section = document.get("optimizer", document)
    parts = [part for part in section if isinstance(part, Mapping)] if isinstance(section, list) else []
    sections = parts or ([section] if isinstance(section, Mapping) else [])
    # The typed and recap forms hold the optimizer one level down ({adam: {...}}).
    nested = [value for part in sections for value in part.values() if isinstance(value, Mapping)]
    found = [
        label
        for key, label in _PICKERS.items()
        if any(part.get(key) is not None for part in [document, *sections, *nested])
    ]
    names = [str(part.get("part") or part.get("name", "")).lower() for part in parts]
    if _per_group_schedules(document.get("schedule"), names):
        found.append("schedule per param group")
    labels = ["its " + item for item in dict.fromkeys(found)]
    return " and ".join([", ".join(labels[:-1]), labels[-1]] if len(labels) > 1 else labels)


def _on_what(used: str, named: str | None, dependence: str, *, failed: bool = False) -> str:
    """What a verdict was reached on, to end its line (``""`` where the model does not matter).

    Example:
        >>> _on_what("file", "optforge.demo:make_model", "")
        'built on optforge.demo:make_model, the model the file names'
    """
    if used == "file":
        return f"built on {named}, the model the file names"
    if used == "--model":
        return f"built on {named}"
    if used != "stand-in" or not dependence:
        return ""
    return (
        f"on a one-layer stand-in model, {STAND_IN}, "
        + ("which may come from the stand-in: " if failed else "but ")
        + f"{dependence} pick parameters by name, so whether the file works depends on the model: check it on "
        "yours with --model module:factory, or name it in the file with a '# optforge: --model module:factory' "
        f"header (the shipped examples use --model {EXAMPLE_MODEL})"
    )


def _verdict(problems: Sequence[Any], on: str) -> str:
    """``valid`` or ``N problems``, and what the verdict was reached on.

    Example:
        >>> _verdict([("optimizer.lr", "...")], "built on optforge.demo:make_model")
        '1 problem, built on optforge.demo:make_model'
    """
    count = (f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")) if problems else "valid"
    return count + ("" if not on else f" {on}" if on.startswith("on ") else f", {on}")


def run_length(document: Mapping[str, Any]) -> int | None:
    """The run's length in steps where the config gives it: the ``schedule:`` section's ``total_steps``, or
    ``epochs`` times ``steps_per_epoch`` of a scheduler by name (OneCycleLR's); ``None`` otherwise.

    Example:
        >>> run_length({"schedule": {"total_steps": 500, "lr": {"constant": 0.1}}})
        500
        >>> run_length({"schedule": {"name": "OneCycleLR", "max_lr": 0.1, "epochs": 3, "steps_per_epoch": 40}})
        120
        >>> run_length({"schedule": {"cosine_decay": {"peak_value": 0.1, "decay_steps": 100}}}) is None
        True
    """
    from optforge.config import NamedScheduler, read_schedule_section

    schedule = document.get("schedule")
    if not isinstance(schedule, Mapping):
        return None
    args = schedule.get("args")  # a template section holds the scheduler's arguments under args:
    places = [schedule, *([args] if isinstance(args, Mapping) else [])]

    def given(key: str) -> int | None:
        values = [place.get(key) for place in places]
        return next((v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0), None)

    if given("total_steps"):
        return given("total_steps")
    epochs, per_epoch = given("epochs"), given("steps_per_epoch")
    named = isinstance(read_schedule_section(schedule), NamedScheduler)
    return epochs * per_epoch if epochs and per_epoch and named else None


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
    from optforge.config import ClosedForm, OneSchedule, read_schedule_section

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
    section = read_schedule_section(spec.learning_rate if spec.learning_rate is not None else document.get("schedule"))
    if not isinstance(section, ClosedForm) or not isinstance(section.lr, OneSchedule):
        return []  # no schedule, one per group (each its own peak), or a scheduler by name
    context = {"steps_per_epoch": section.steps_per_epoch, "total_steps": section.total_steps}
    schedule = section.lr.value
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
def validate(
    config: ConfigArgument, model: ModelOption = None, stack: StackOption = None, steps: RunStepsOption = None
) -> None:
    """Check a config (optimizer, schedule, param groups); print every error with its field path.

    Exits with status 0 when the config builds, 1 otherwise. Where the config picks parameters by name and
    no model is given, the last line says so. A file holding only a schedule (a Hydra schedule/ fragment) is
    checked as a schedule. Warns when the optimizer's lr differs from the peak of the schedule that overrides it.
    """
    try:
        file = _stack_file(config, stack, steps)
    except ConfigError as error:
        _fail(config, error.problems, [])
    notes = [file.note] if file.note else []
    if file.kind == "template-schedulers":
        from optforge.cli_files import check_template_schedulers

        problems, on = check_template_schedulers(file.document), ""
    else:
        checked = _checked(config, model, file)
        problems, on = checked.problems, checked.on
    if problems:
        _fail(config, problems, notes, on)
    _console().print(Text(f"{config}: {_verdict([], on)}", style="green"), soft_wrap=True)
    for note in notes:
        _note(note)
    if not file.synthetic_optimizer:
        warnings = lr_warnings(file.document)
        console = _console(stderr=True)
        for path, message in warnings:
            console.print(_line(path, message, "yellow"), soft_wrap=True)


def _fail(config: Path, problems: Sequence[tuple[str, str]], notes: Sequence[str], on: str = "") -> NoReturn:
    _report(problems, str(config))
    _console(stderr=True).print(_verdict_line(config, problems, on), soft_wrap=True)
    for note in notes:
        _note(note, stderr=True)
    raise typer.Exit(1)


@dataclasses.dataclass
class _Checked:
    """A config file checked on its model, as validate, plot and explain all check it.

    Attributes:
        file: The file, as read.
        model: The model it was built on.
        used: Where the model came from: ``"--model"``, ``"file"`` or ``"stand-in"``.
        problems: Every problem found.
        on: What the verdict was reached on, to end its line (see :func:`_on_what`).
    """

    file: Any
    model: Any
    used: str
    problems: list[tuple[str, str]]
    on: str


def _verdict_line(config: Path, problems: Sequence[Any], on: str) -> Text:
    """The last line of a failed check: the file, its count of problems and what they were found on."""
    return Text.assemble((clip(config, PATH_LIMIT), "cyan"), ": ", (_verdict(problems, on), "red"))


def _checked(config: Path, option: str | None, file: Any = None) -> _Checked:
    """Read ``config`` (unless ``file`` is the file, read), find its model and check it as validate does."""
    from optforge.cli_files import read_config_file

    file = read_config_file(config) if file is None else file
    chosen, used = _model_for(option, file)
    problems, stage = _check(file.document, chosen)
    dependence = model_dependence(file.document) if stage == "build" else ""
    on = _on_what(used, option or file.model, dependence, failed=bool(problems)) if stage == "build" else ""
    return _Checked(file, chosen, used, problems, on)


def _stack_file(config: Path, stack: str | None, steps: int | None) -> Any:
    """``config`` read for the command line; another stack's file is translated, its unexpressed fields noted."""
    import warnings

    from optforge.cli_files import read_config_file
    from optforge.config.stacks import StackWarning, as_document

    file = read_config_file(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StackWarning)
        document = as_document(file.document, stack, total_steps=steps)
    for warning in caught:
        _note(str(warning.message), stderr=True)
    return file if document is file.document else dataclasses.replace(file, document=document)


def _on_model(config: Path, option: str | None, file: Any = None) -> _Checked:
    """The checked file for plot and explain; its problems end the command, as validate reports them.

    Where the problems may come from the stand-in model, the last line says so, as validate's does.
    """
    checked = _checked(config, option, file)
    if checked.problems:
        _report(checked.problems, str(config))
        if checked.used == "stand-in" and checked.on:
            _console(stderr=True).print(_verdict_line(config, checked.problems, checked.on), soft_wrap=True)
        raise typer.Exit(1)
    return checked


@app.command(cls=_Command)
@_guarded
def plot(
    config: ConfigArgument,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            "-n",
            min=1,
            help="Number of optimizer steps to plot. Default: the run length the config gives "
            "(the schedule's total_steps, or a scheduler's epochs x steps_per_epoch), else 1000.",
            show_default=False,
        ),
    ] = None,
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
            "comma-separated; the last value repeats. Default: a metric that never improves.",
        ),
    ] = None,
    stack: StackOption = None,
) -> None:
    """Plot the learning rate of each param group (and other scheduled hyperparameters).

    Warmup and phase boundaries are marked. Without -o the plot is drawn in the terminal.
    """
    from optforge.plotting import plot_trace_png, plot_trace_terminal, trace_schedule

    values = _metric_values(metric)
    _require_plot_library("plotext" if output is None else "matplotlib")
    checked = _on_model(config, model, _stack_file(config, stack, steps))
    length = run_length(checked.file.document) if steps is None else None
    steps = steps or length or DEFAULT_PLOT_STEPS
    document = checked.file.document
    trace = trace_schedule(document, steps, checked.model, title=config.name, metric=values, flat_metric=True)
    console = _console()
    if output is None:
        size = shutil.get_terminal_size((100, 30))
        drawing = plot_trace_terminal(trace, size.columns, max(size.lines - 4, 15), color=console.is_terminal)
        typer.echo(drawing)
    else:
        console.print(f"wrote {plot_trace_png(trace, output)}")
    if length is not None:
        console.print(f"{steps:,} steps: the run length the config gives (--steps plots another number)")
    if trace.metric_assumed:
        _note(
            "the scheduler lowers the lr when its metric stops improving; plotted for a metric that never "
            "improves (--metric 1.0,0.9,0.9 gives the values it sees at each step)"
        )
    if trace.boundaries:
        console.print("boundaries at steps: " + ", ".join(map(str, trace.boundaries)))
    for name, values in [*(("lr of " + k, v) for k, v in trace.lrs.items()), *trace.others.items()]:
        console.print(
            f"{name}: {values[0]:.3g} at step 0, min {min(values):.3g}, max {max(values):.3g}, "
            f"{values[-1]:.3g} at step {steps - 1}"
        )
    if checked.used == "stand-in" and checked.on:
        _note(checked.on)


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
def explain(
    config: ConfigArgument, model: ModelOption = None, stack: StackOption = None, steps: RunStepsOption = None
) -> None:
    """Show the param group each parameter of a model lands in, with its lr, weight decay and why."""
    from optforge.explain import explain, table_cell

    checked = _on_model(config, model, _stack_file(config, stack, steps))
    table = explain(checked.model, checked.file.document)
    console = _console()
    for title, columns, rows in (
        ("parameters", table.columns, table.rows),
        ("groups", table.group_columns, table.group_rows),
    ):
        view = Table(title=title, title_justify="left")
        for column in columns:
            view.add_column(column, justify="right" if column in ("numel", "tensors") else "left")
        for row in rows:
            view.add_row(*(table_cell(value) for value in row))
        console.print(view)
    totals = table.totals
    model_name = {"--model": model, "file": checked.file.model}.get(
        checked.used, f"a one-layer stand-in model, {STAND_IN}"
    )
    console.print(
        f"{table.optimizer}: {totals['groups']} groups, {totals['tensors']} tensors, "
        f"{totals['trainable']:,} trainable parameters, {totals['frozen']:,} frozen, on {model_name}"
        + (", the model the file names" if checked.used == "file" else "")
    )
    if table.step_path:
        console.print(f"step path: {table.step_path}")
    if table.around_step:
        console.print(table.around_step)
    if checked.used == "stand-in" and checked.on:
        _note(checked.on)


@app.command(cls=_Command)
@_guarded
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the schema to this file.")] = None,
) -> None:
    """Print the JSON Schema of a config file (for editor completion and checks)."""
    from optforge.json_schema import json_schema

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


@app.command("lr-find", cls=_Command)
@_guarded
def lr_find(
    config: ConfigArgument,
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            help="module:function or file.py:function returning an iterable of batches.",
            show_default=False,
        ),
    ],
    model: ModelOption = None,
    loss: Annotated[
        str | None,
        typer.Option(
            "--loss",
            "-l",
            help="module:function taking (model, batch) and returning the loss. Default: model(*batch) is the loss.",
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", "-n", help="Steps of the sweep, at most.")] = 100,
    start: Annotated[float, typer.Option(help="The first learning rate.")] = 1e-7,
    end: Annotated[float, typer.Option(help="The learning rate the sweep heads for.")] = 10.0,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the plot to this PNG instead of drawing it.")
    ] = None,
) -> None:
    """Sweep the learning rate of a config on your model and data (an LR range test), and suggest one.

    The model is left as it was. Prints a summary and, on the last line, the suggested lr.
    """
    from optforge.cli_files import read_config_file
    from optforge.lr_find.command import sweep_command

    _require_plot_library("plotext" if output is None else "matplotlib")
    file = read_config_file(config)
    chosen, _ = _model_for(model, file)
    console = _console()
    with _progress(console) as progress:
        task = progress.add_task("lr-find", total=steps, status="building")

        def show(step: int, lr: float, raw: float, smoothed: float) -> None:
            progress.update(task, completed=step + 1, status=f"lr {lr:.2e}  loss {smoothed:.4g}")

        result = sweep_command(chosen, file.document, data, loss, steps=steps, start=start, end=end, on_step=show)
    if output is None:
        size = shutil.get_terminal_size((100, 30))
        typer.echo(result.plot_terminal(size.columns, max(size.lines - 8, 15), color=console.is_terminal))
    else:
        console.print(f"wrote {result.plot_png(output)}")
    console.print(result.summary())
    if result.suggestion is None:
        raise ConfigError("no loss of the sweep was finite: no lr to suggest", path="--loss" if loss else "--model")
    console.print(f"suggested lr: {result.suggestion:.3g} ({result.rule}: {result.reason})")


@app.command(cls=_Command)
@_guarded
def convert(config: ConfigArgument, stack: StackOption = None, steps: RunStepsOption = None) -> None:
    """Print the optforge document that builds what another training stack's file builds.

    Each field the document cannot carry is a comment line. Hugging Face's schedules need the run's
    length: give it with --steps N, or as max_steps in the file.
    """
    from optforge.convert import convert as convert_file

    typer.echo(convert_file(config, stack, total_steps=steps), nl=False)


def main() -> None:
    """Run the ``optforge`` command line."""
    app(prog_name="optforge")
