"""Config files as the command line reads them: the model a file names, schedule-only files, Hydra files.

:func:`read_config_file` turns a path into the document optforge builds, with
what the command line needs to know about it:

- a header comment ``# optforge: --model module:factory`` names the model the
  file's param-group rules are written for (a comment, so the file stays a
  valid config for :func:`optforge.build`); a ``file.py:factory`` there, or a
  module that is not installed, is found in the file's folder;
- a file holding only a schedule (a Hydra ``schedule/`` fragment, say) is
  checked as the ``schedule:`` section of a config;
- Hydra interpolations (``${optim.optimizer.lr}``) are resolved by composing
  the Hydra primary config found above the file, when hydra-core is installed;
  a Hydra primary config is checked through its node that holds ``optimizer:``.

Anything that goes wrong while reading is a :class:`~optforge.errors.ConfigError`.

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "towers.yaml").write_text("# optforge: --model optforge.demo:make_model\\n"
    ...                                         "optimizer: {name: Adam, lr: 0.001}\\n")
    >>> read_config_file(folder / "towers.yaml").model
    'optforge.demo:make_model'
    >>> _ = (folder / "cosine.yaml").write_text("cosine_decay: {peak_value: 0.1, decay_steps: 100}\\n")
    >>> config = read_config_file(folder / "cosine.yaml")
    >>> config.kind, config.document["optimizer"]
    ('schedule', {'name': 'SGD', 'lr': 1.0})
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optforge.errors import ConfigError

__all__ = ["ConfigFile", "read_config_file"]

# The header line that names a model: "# optforge: --model optforge.demo:make_model".
_HEADER = re.compile(r"^#\s*optforge:\s*(?P<args>.*)$")
_INTERPOLATION = re.compile(r"\$\{[^}]*\}")
_DOCUMENT_KEYS = ("optimizer", "schedule", "multi_task_learning_rates", "clip_grad", "ema", "skip_nonfinite")
# How far up from a Hydra fragment its primary config is looked for.
_HYDRA_LEVELS = 4


@dataclass(frozen=True)
class ConfigFile:
    """A config file, read for the command line.

    Attributes:
        path: The file.
        document: The config optforge builds (a schedule-only file sits beside a one-group SGD optimizer).
        model: The model the file names in its header (``module:factory``), if any.
        kind: ``"config"``, ``"schedule"`` (a file holding only a schedule) or ``"hydra"`` (a primary config).
        note: How the file was read, when it was not read as a plain config.
        synthetic_optimizer: Whether the optimizer section was supplied here rather than by the file.
    """

    path: Path
    document: dict[str, Any]
    model: str | None = None
    kind: str = "config"
    note: str = ""
    synthetic_optimizer: bool = False


def header_model(path: Path) -> str | None:
    """The ``--model`` of the file's leading ``# optforge: --model module:factory`` comment, if any."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8192).decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in head.splitlines():
        line = line.strip()
        if not line.startswith("#"):
            if line:
                break
            continue
        match = _HEADER.match(line)
        if match is None:
            continue
        try:
            args = shlex.split(match["args"], comments=True)
        except ValueError:
            continue
        for index, arg in enumerate(args):
            if arg.startswith("--model="):
                return arg.partition("=")[2]
            if arg in ("--model", "-m") and index + 1 < len(args):
                return args[index + 1]
    return None


def leaves(value: Any, kind: type) -> Iterator[Any]:
    """Every value of type ``kind`` in a nested document of mappings, lists and tuples (a bool is not an int).

    Example:
        >>> list(leaves({"a": [1, "x", True], "b": {"c": 2}}, int))
        [1, 2]
    """
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from leaves(item, kind)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from leaves(item, kind)


def _has_interpolations(document: Any) -> bool:
    return any(_INTERPOLATION.search(text) for text in leaves(document, str))


# The run a template scheduler file is checked for (epochs, iterations): lengths written as fractions scale to it.
TEMPLATE_RUN: tuple[int, int] = (100, 1000)


def check_template_schedulers(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The problems of a template scheduler file (``{epoch_scheduler, iter_scheduler}``), built on a throwaway SGD.

    Example:
        >>> problems = check_template_schedulers({"epoch_scheduler": {"name": "s", "class_name": "StepLR",
        ...                                       "args": {"step_sise": 0.3}}, "iter_scheduler": None})
        >>> [path for path, _ in problems]
        ['epoch_scheduler.args.step_sise', 'epoch_scheduler.args.step_size']
    """
    import torch

    from optforge.errors import ConfigError
    from optforge.lr_schedulers import build_template_schedulers

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        build_template_schedulers(document, optimizer, *TEMPLATE_RUN)
    except ConfigError as error:
        return error.problems
    return []


def is_schedule_only(document: Mapping[str, Any]) -> bool:
    """Whether ``document`` is a schedule section: one schedule, or the full form with a schedule in it.

    A flat optimizer section without its ``name`` (``{lr: 0.1, momentum: 0.9}``) is not one.

    Example:
        >>> is_schedule_only({"cosine_decay": {"peak_value": 0.1, "decay_steps": 100}})
        True
        >>> is_schedule_only({"lr": {"constant": 0.1}, "total_steps": 100}), is_schedule_only({"lr": 0.1})
        (True, False)
    """
    from optforge.config import SCHEDULE_KEYS, ClosedForm, read_schedule_section
    from optforge.schedules import LearningRate

    if not document or not all(isinstance(key, str) for key in document):
        return False
    if set(document) <= set(LearningRate.model_fields):
        return True
    section = read_schedule_section(document)
    full_form = isinstance(section, ClosedForm) and section.full_form and set(document) <= set(SCHEDULE_KEYS)
    return full_form and any(isinstance(value, Mapping) for value in document.values())


def _yaml_mapping(path: Path) -> Mapping[str, Any] | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, Mapping) else None


def _defaults_groups(document: Mapping[str, Any]) -> set[str]:
    """The config groups a Hydra ``defaults:`` list selects (``optim/schedule``)."""
    groups = set()
    for item in document.get("defaults") or ():
        if isinstance(item, Mapping):
            for key in item:
                groups.add(str(key).removeprefix("override ").split("@")[0].strip().lstrip("/"))
    return groups


def _primary_for(path: Path) -> tuple[Path, str] | None:
    """The Hydra primary config whose ``defaults:`` list has the group ``path`` belongs to, and that group."""
    folder = path.resolve().parent
    for root in list(folder.parents)[: _HYDRA_LEVELS - 1]:
        group = folder.relative_to(root).as_posix()
        for candidate in sorted(root.glob("*.yaml")):
            document = _yaml_mapping(candidate)
            if document is not None and group in _defaults_groups(document):
                return candidate, group
    return None


def _compose(primary: Path, overrides: list[str]) -> Any:
    """The config Hydra composes from ``primary`` with ``overrides``."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(primary.parent.resolve()), version_base=None):
        return compose(config_name=primary.stem, overrides=overrides)


def _optforge_part(node: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(node, resolve=True)
    return {key: plain[key] for key in _DOCUMENT_KEYS if isinstance(plain, Mapping) and key in plain}


def _hydra_missing() -> bool:
    return importlib.util.find_spec("hydra") is None


def _from_fragment(path: Path, document: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """A schedule fragment with interpolations, resolved in the composed Hydra config (``None`` when it cannot be)."""
    found = _primary_for(path)
    if found is None or _hydra_missing():
        return None
    primary, group = found
    try:
        composed = _compose(primary, [f"{group}={path.stem}"])
        parent = ".".join(group.split("/")[:-1])
        from omegaconf import OmegaConf

        node = OmegaConf.select(composed, parent) if parent else composed
        resolved = _optforge_part(node)
    except Exception as exc:  # Hydra's own errors: report them as this file's problem
        raise ConfigError(f"Hydra could not compose {primary.name} with {group}={path.stem}: {exc}") from None
    if "schedule" not in resolved or "optimizer" not in resolved:
        return None
    note = f"a schedule-only file of the Hydra group {group}, checked in {primary.name} with {group}={path.stem}"
    return resolved, note


def _from_primary(path: Path) -> tuple[dict[str, Any], str]:
    """The optforge node of a Hydra primary config, composed with its defaults."""
    if _hydra_missing():
        raise ConfigError(
            "a Hydra config (it has a defaults list): install hydra-core (`pip install -e '.[hydra]'`) to check it"
        )
    try:
        composed = _compose(path, [])
    except Exception as exc:  # Hydra's own errors
        raise ConfigError(f"Hydra could not compose this config: {exc}") from None
    nodes = [key for key, value in composed.items() if hasattr(value, "keys") and "optimizer" in value]
    if not nodes:
        raise ConfigError("a Hydra config with no node holding an optimizer: section, so nothing to check")
    return _optforge_part(composed[nodes[0]]), f"checked its node {nodes[0]}, as Hydra composes it"


def read_config_file(path: str | Path) -> ConfigFile:
    """Read ``path`` for the command line (see the module docstring).

    Raises:
        ConfigError: for a file that cannot be read or parsed, whatever the reason.
    """
    from optforge.config_source import load_config
    from optforge.lr_schedulers.section import TEMPLATE_DOCUMENT_KEYS

    path = Path(path)
    try:
        document = load_config(path)
    except ConfigError:
        raise
    except Exception as exc:  # the loader's own failures on odd files: still one line, no traceback
        raise ConfigError(f"cannot read this file as a YAML config: {type(exc).__name__}: {exc}") from None
    model = header_model(path)
    if isinstance(document.get("defaults"), list):
        resolved, note = _from_primary(path)
        return ConfigFile(path, resolved, model, "hydra", note)
    if document and set(document) <= set(TEMPLATE_DOCUMENT_KEYS):
        note = (
            "the training template's scheduler file, checked as its build_lr_scheduler builds it, for a run of "
            f"{TEMPLATE_RUN[0]} epochs of {TEMPLATE_RUN[1]} iterations"
        )
        return ConfigFile(path, document, model, "template-schedulers", note)
    if not is_schedule_only(document):
        return ConfigFile(path, document, model)
    note = "a schedule-only file, checked as the schedule: section of a config"
    if _has_interpolations(document):
        fragment = _from_fragment(path, document)
        if fragment is not None:
            resolved, where = fragment
            return ConfigFile(path, resolved, model, "schedule", where)
        note += (
            "; its ${...} interpolations resolve only in a composed Hydra config "
            "(none was found above it, or hydra-core is not installed)"
        )
    optimizer = {"name": "SGD", "lr": 1.0}  # the schedule sets every step's lr
    return ConfigFile(
        path, {"optimizer": optimizer, "schedule": document}, model, "schedule", note, synthetic_optimizer=True
    )
