"""What ``optforge lr-find`` runs: the data and loss functions it names, and the sweep over them.

``--data module:function`` (or ``file.py:function``) returns an iterable of batches;
``--loss module:function`` takes ``(model, batch)`` and returns the loss. Without
``--loss`` the model returns it: ``model(*batch)`` for a tuple or list batch, else
``model(batch)``.

Example:
    >>> fn = load_function("optforge.lr_find.command:model_loss", path="--loss")
    >>> import torch
    >>> fn(torch.nn.Identity(), torch.tensor(2.0)).item()
    2.0
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from optforge.errors import ConfigError
from optforge.lr_find.result import LRFindResult
from optforge.lr_find.sweep import lr_find

__all__ = ["load_function", "model_loss", "sweep_command"]


def load_function(spec: str, *, path: str) -> Callable[..., Any]:
    """The function named by ``module:function`` or ``path/to/file.py:function``, found from the current directory.

    Raises:
        ConfigError: at ``path`` (the option's name) when it cannot be imported or is not callable.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"expected module:function or file.py:function, got {spec!r}", path=path)
    saved = list(sys.path)
    sys.path.insert(0, str(Path.cwd()))
    try:
        if target.endswith(".py"):
            file = Path(target)
            name = f"_optforge_lr_find_{file.stem}"
            module_spec = importlib.util.spec_from_file_location(name, file)
            if module_spec is None or module_spec.loader is None or not file.is_file():
                raise ConfigError(f"no Python file {target!r}", path=path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise ConfigError(f"cannot import {target!r}: {exc}", path=path) from None
    finally:
        sys.path[:] = saved
    function = getattr(module, attr, None)
    if not callable(function):
        public = sorted(name for name in vars(module) if not name.startswith("_"))
        raise ConfigError(f"{target!r} has no function {attr!r}; it has: {', '.join(public)}", path=path)
    return function


def model_loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """The loss when the model computes it: ``model(*batch)`` for a tuple or list, else ``model(batch)``."""
    return model(*batch) if isinstance(batch, tuple | list) else model(batch)


def sweep_command(
    model: torch.nn.Module,
    document: Any,
    data: str,
    loss: str | None,
    *,
    steps: int,
    start: float,
    end: float,
    on_step: Callable[[int, float, float, float], None] | None = None,
) -> LRFindResult:
    """Load ``--data`` and ``--loss`` and sweep ``document`` on ``model``."""
    make_batches = load_function(data, path="--data")
    loss_fn = model_loss if loss is None else load_function(loss, path="--loss")
    batches = make_batches()
    return lr_find(model, document, batches, loss_fn, steps=steps, start=start, end=end, on_step=on_step)
