"""The training template's scheduler document: ``{epoch_scheduler: section | null, iter_scheduler: section | null}``.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> doc = {"epoch_scheduler": {"name": "steps", "class_name": "MultiStepLR",
    ...                            "args": {"milestones": [0.5, 0.75], "gamma": 0.1}, "checkpoint": None},
    ...        "iter_scheduler": None}
    >>> iter_sched, epoch_sched = build_template_schedulers(doc, opt, epoch=40, max_iter=4000)
    >>> iter_sched is None, sorted(epoch_sched.milestones)
    (True, [20, 30])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from optforge.config import Problems
from optforge.config_source import to_plain
from optforge.errors import ConfigError, format_path, unknown_choice
from optforge.lr_schedulers.section import TEMPLATE_DOCUMENT_KEYS, SchedulerSpec, build_from_spec, parse_section
from optforge.lr_schedulers.template_rules import warn_notes

__all__ = ["build_template_schedulers"]


def build_template_schedulers(
    cfg: Any, optimizer: torch.optim.Optimizer, epoch: int, max_iter: int, *, path: str = ""
) -> tuple[Any, Any]:
    """Build the template's ``(iter_scheduler, epoch_scheduler)`` pair, as its ``build_lr_scheduler`` does.

    The epoch scheduler is built for a run of ``num_loop = epoch`` steps, the
    iteration scheduler for ``num_loop = max_iter``; before building, the
    template's rewrites apply, by ``class_name`` as written
    (:data:`~optforge.lr_schedulers.template_rules.TEMPLATE_RULES`: a float
    ``MultiStepLR`` milestone or ``StepLR`` ``step_size <= 1`` is a fraction of
    ``num_loop``, a missing ``LinearLR`` ``total_iters`` is ``num_loop``...),
    nested ``schedulers`` included; timm's schedulers get their arguments as
    written. One :class:`~optforge.lr_schedulers.TemplateRuleWarning` lists the
    values the template does not read as they look (a fraction timm reads as
    epochs). ``{fraction: x}`` lengths are fractions of ``num_loop``.

    Step the epoch scheduler once after every epoch and the iteration scheduler
    after every iteration, with ``step()`` (``step(metric)`` for a metric-driven
    one): the lrs are those of the template's trainer, which calls
    ``step(epoch=k, metric=loss)`` (``optforge.compat.template`` takes that call).

    Args:
        cfg: The document (mapping or ``DictConfig``); a missing or null key builds no scheduler.
        optimizer: The optimizer both schedule.
        epoch: The run's epochs.
        max_iter: The iterations the iteration scheduler is stepped over.
        path: The document's config path, for messages.

    Returns:
        ``(iter_scheduler, epoch_scheduler)``, each ``None`` when not configured.

    Raises:
        ConfigError: with every problem of both sections at once.
    """
    document = to_plain(cfg)
    if not isinstance(document, Mapping):
        raise ConfigError(f"expected a mapping with epoch_scheduler and iter_scheduler, got {type(document).__name__}")
    for key in document:
        if key not in TEMPLATE_DOCUMENT_KEYS:
            raise unknown_choice(format_path(path, str(key)), key, TEMPLATE_DOCUMENT_KEYS, what="key")
    problems = Problems()
    for name, value in (("epoch", epoch), ("max_iter", max_iter)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            problems.add(name, f"must be a positive integer, got {value!r}")
    problems.raise_if_any()
    runs = {
        "epoch_scheduler": (epoch, {"total_steps": epoch, "steps_per_epoch": 1}),
        "iter_scheduler": (
            max_iter,
            {"total_steps": max_iter, "steps_per_epoch": max_iter // epoch if max_iter % epoch == 0 else None},
        ),
    }
    specs: dict[str, SchedulerSpec | None] = {}
    notes: list[tuple[str, str]] = []
    for key in ("epoch_scheduler", "iter_scheduler"):
        section = document.get(key)
        if section is None:
            specs[key] = None
            continue
        num_loop, context = runs[key]
        specs[key] = parse_section(section, format_path(path, key), context, problems, num_loop=num_loop, notes=notes)
    warn_notes(notes, stacklevel=2)
    problems.raise_if_any()
    built = {key: None if spec is None else build_from_spec(optimizer, spec) for key, spec in specs.items()}
    return built["iter_scheduler"], built["epoch_scheduler"]
