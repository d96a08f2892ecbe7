"""Instantiate one optimizer from a resolved spec: its parameters, its groups, its constructor.

:func:`build_from_spec` is what :func:`optforge.build_optimizer` does once a config is
checked, and what each part of a composite does over its own parameters.

Example:
    >>> import torch
    >>> from optforge.resolution import resolve_optimizer_spec
    >>> optimizer = build_from_spec(torch.nn.Linear(2, 1), resolve_optimizer_spec({"name": "SGD", "lr": 0.1}))
    >>> type(optimizer).__name__, optimizer.param_groups[0]["lr"]
    ('SGD', 0.1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from optforge.config import Problems
from optforge.distributed import zero_factory
from optforge.errors import ConfigError, format_path, misspelling_of
from optforge.hyperparameters import check_hyperparameters
from optforge.param_groups import ParamInfo, form_groups, param_groups_for
from optforge.resolution import OptimizerSpec
from optforge.schedules import make_schedule
from optforge.state_check import read_state_file

__all__ = ["build_from_spec", "check_matrix_params", "collect_params", "listed_params", "matrix_problem"]


def _trainable(tensors: Iterable[Any], path: str) -> list[torch.Tensor]:
    params = []
    for index, tensor in enumerate(tensors):
        if isinstance(tensor, tuple) and len(tensor) == 2 and isinstance(tensor[0], str):
            tensor = tensor[1]  # (name, parameter) pairs, as from named_parameters()
        if not isinstance(tensor, torch.Tensor):
            raise ConfigError(f"expected a tensor, got {type(tensor).__name__}", path=format_path(path, index))
        if tensor.requires_grad:
            params.append(tensor)
    return params


def collect_params(model_or_params: Any) -> list[dict[str, Any]] | list[torch.Tensor]:
    """The trainable parameters (or groups) of a module, a tensor iterable or group dicts.

    Parameters with ``requires_grad=False`` are left out; groups keep their own settings.

    Raises:
        ConfigError: when nothing trainable is left.
    """
    if isinstance(model_or_params, nn.Module):
        params: list[Any] = [p for p in model_or_params.parameters() if p.requires_grad]
    elif isinstance(model_or_params, torch.Tensor):
        params = _trainable([model_or_params], "params")
    else:
        items = list(model_or_params)
        if items and all(isinstance(item, Mapping) for item in items):
            params = []
            for index, group in enumerate(items):
                if "params" not in group:
                    raise ConfigError("a param group needs a 'params' key", path=f"param_groups[{index}]")
                tensors = group["params"]
                tensors = [tensors] if isinstance(tensors, torch.Tensor) else tensors
                params.append({**group, "params": _trainable(tensors, f"param_groups[{index}].params")})
            if not any(group["params"] for group in params):
                params = []
        else:
            params = _trainable(items, "params")
    if not params:
        raise ConfigError(
            "no trainable parameters: the model or parameter list is empty, or every parameter has requires_grad=False"
        )
    return params


def _check_groups(spec: OptimizerSpec, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate the hyperparameters that explicit groups set, as the config's are.

    Other keys are kept, as torch keeps them, unless one is a typo of a hyperparameter
    (``lrr`` for ``lr``): that would be silently ignored, so it is an error.
    """
    checked = []
    problems = Problems()
    accepted, _ = spec.entry.hyperparameters()
    for index, group in enumerate(groups):
        for key in group:
            if key in accepted or key == "params" or not isinstance(key, str):
                continue
            meant = misspelling_of(key, accepted)
            if meant is not None:
                problems.add(
                    f"param_groups[{index}].{key}",
                    f"not a hyperparameter of {spec.entry.name}; did you mean {meant!r}? A group keeps "
                    "other keys as labels, but this one looks like a typo",
                )
        settings = {key: value for key, value in group.items() if key in accepted}
        try:
            valid = check_hyperparameters(spec.entry, settings, f"param_groups[{index}]")
        except ConfigError as exc:
            problems.extend(exc)
            continue
        checked.append({**group, **valid})
    problems.raise_if_any()
    return checked


def _hyperparameters(spec: OptimizerSpec) -> dict[str, Any]:
    """The keyword arguments of the constructor; a section whose lr comes from its schedule starts at step 0."""
    if spec.lr_from_schedule and spec.learning_rate is not None:
        return {**spec.hyperparameters, "lr": make_schedule(spec.learning_rate)(0)}
    return dict(spec.hyperparameters)


def _load_optimizer_checkpoint(optimizer: torch.optim.Optimizer, file: str, path: str) -> None:
    """Load a saved optimizer state into a freshly built ``optimizer``; any failure is a ConfigError."""
    state = read_state_file(file, path, "optimizer")
    if "state" not in state or "param_groups" not in state:
        raise ConfigError(f"{file!r} holds no optimizer state dict (keys 'state' and 'param_groups')", path=path)
    try:
        optimizer.load_state_dict(state)
    except Exception as exc:  # torch raises ValueError, KeyError or RuntimeError for a mismatched state
        raise ConfigError(f"optimizer checkpoint {file!r} does not match the optimizer: {exc}", path=path) from None


def _build_over_model(model: Any, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """Build an entry whose constructor takes the model (``entry.takes``: LOMO, AdamMini) rather than parameters."""
    name, takes = spec.entry.name, spec.entry.takes
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{name} takes the model itself (its {takes.replace('_', ' ')}), not a list of parameters: "
            f"pass the nn.Module; got {type(model).__name__}",
            path=format_path(spec.path, "name"),
        )
    asked = [key for key, value in spec.options.items() if value not in (None, False)]
    if asked or spec.towers is not None:
        where = format_path(spec.path, asked[0]) if asked else spec.towers_path
        raise ConfigError(f"{name} groups the model's parameters itself; remove this key", path=where)
    target = model if takes == "module" else [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    try:
        return spec.entry.create(target, **spec.hyperparameters)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} rejected the config: {exc}", path=spec.path) from exc


def build_from_spec(model_or_params: Any, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """Instantiate a validated spec over ``model_or_params``."""
    if spec.entry.takes != "params":
        return _build_over_model(model_or_params, spec)
    if spec.groups_as_written:
        params: Any = form_groups(model_or_params, spec)  # no presets, no merging: what those systems build
    else:
        params = param_groups_for(model_or_params, spec)  # groups made by rules, for a model
    if params is None:
        params = collect_params(model_or_params)
        if params and isinstance(params[0], dict):
            params = _check_groups(spec, params)
    check_matrix_params(model_or_params, params, spec)  # 2-D-only optimizers (Muon) over other shapes

    create = zero_factory(spec)  # spec.entry.create, or a ZeRO wrap of it with zero: true
    try:
        optimizer = create(params, **_hyperparameters(spec))
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:  # what constructors raise for bad values
        raise ConfigError(f"{spec.entry.name} rejected the config: {exc}", path=spec.path) from exc
    section = spec.section
    if section is not None and section.template is not None and section.template.checkpoint is not None:
        _load_optimizer_checkpoint(optimizer, section.template.checkpoint, format_path(spec.path, "checkpoint"))
    return optimizer


def _shape(param: torch.Tensor) -> str:
    return "x".join(map(str, param.shape)) or "scalar"


def listed_params(infos: Sequence[ParamInfo], limit: int = 6) -> str:
    """The first ``limit`` parameters by name and shape, for messages."""
    shown = ", ".join(f"{info.name} ({_shape(info.param)})" for info in infos[:limit])
    return shown + (f" and {len(infos) - limit} more" if len(infos) > limit else "")


def matrix_problem(name: str, bad: Sequence[ParamInfo], path: str, *, composite: bool) -> tuple[str, str]:
    if composite:
        advice = "narrow this part's params: with ndim: 2 and leave the others to a later part"
    else:
        advice = (
            f"give it the 2-D weights and the rest to another optimizer in one composite: optimizer: "
            f"[{{name: {name}, params: {{ndim: 2}}}}, {{name: AdamW}}] (optforge.muon_recipe "
            "picks the hidden layers' weights)"
        )
    return path, f"{name} takes 2-D parameters only, but got {len(bad)} other(s): {listed_params(bad)}; {advice}"


def check_matrix_params(model_or_params: Any, params: Sequence[Any], spec: OptimizerSpec) -> None:
    """Refuse a 2-D-only optimizer (``matrix_params_only``) over parameters of other shapes.

    Raises:
        ConfigError: naming the parameters of other shapes and suggesting the composite form.

    Example:
        >>> import torch
        >>> from optforge.resolution import resolve_optimizer_spec
        >>> check_matrix_params(None, [torch.zeros(3)], resolve_optimizer_spec({"name": "Muon"}))
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: optimizer.name: Muon takes 2-D parameters only, but got 1 other(s): ...
    """
    if not spec.entry.matrix_params_only:
        return
    tensors = [p for item in params for p in (item["params"] if isinstance(item, Mapping) else [item])]
    names = {}
    if isinstance(model_or_params, nn.Module):
        names = {id(p): name for name, p in model_or_params.named_parameters()}
    bad = [ParamInfo(names.get(id(p), "a parameter"), (), p, ()) for p in tensors if p.ndim != 2]
    if bad:
        path, message = matrix_problem(spec.entry.name, bad, format_path(spec.path, "name"), composite=False)
        raise ConfigError(message, path=path)
