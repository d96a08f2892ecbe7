"""The scheduler registry: one data entry per learning-rate scheduler, looked up by name.

Names are case-insensitive. A scheduler class, or a function ``f(optimizer, **arguments)``
returning one, may also be named by its import path
(``torch.optim.lr_scheduler.StepLR``, ``mypackage.schedules.make``); its arguments are
checked against its signature as a registered entry's are. Entries come from providers: ``torch`` (every
``torch.optim.lr_scheduler`` scheduler, found by scanning the module),
``optforge`` (the training template's ``PolynomialLRDecay`` and
``CosineAnnealingWarmupReduceRestarts``) and ``timm``, loaded the first time a
``timm_<Class>`` or ``timm.<name>`` name is asked for (``import optforge`` does
not import timm).

Example:
    >>> import torch, optforge
    >>> get_scheduler_entry("cosineannealinglr").resolve_class() is torch.optim.lr_scheduler.CosineAnnealingLR
    True
    >>> @optforge.register_scheduler(name="Halving")
    ... class Halving(torch.optim.lr_scheduler.StepLR):
    ...     def __init__(self, optimizer, step_size: int = 10):
    ...         super().__init__(optimizer, step_size, gamma=0.5)
    >>> optforge.list_schedulers("halv*")
    ['Halving']
    >>> unregister_scheduler("Halving")
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from optforge.errors import ConfigError, truncate
from optforge.lr_schedulers.entry import SchedulerEntry
from optforge.named_registry import NamedRegistry, Provider
from optforge.registry import is_optimizer_name

__all__ = [
    "SchedulerProvider",
    "get_scheduler_entry",
    "is_scheduler_name",
    "list_schedulers",
    "register_scheduler",
    "register_scheduler_provider",
    "scheduler_entries",
    "unregister_scheduler",
]


# The providers of schedulers are described as those of optimizers are.
SchedulerProvider = Provider


def _is_scheduler_class(target: Any) -> bool:
    """A torch ``LRScheduler``, or another class with a ``step`` that is neither an optimizer nor a module."""
    if not inspect.isclass(target):
        return False
    if issubclass(target, torch.optim.lr_scheduler.LRScheduler):
        return True
    return callable(getattr(target, "step", None)) and not issubclass(target, (torch.optim.Optimizer, torch.nn.Module))


def _entry_for_path(name: str, target: Any, path: str) -> SchedulerEntry:
    """The entry of a scheduler class, or a function returning a scheduler, named by its import path.

    Raises:
        ConfigError: when ``target`` is neither a class nor a function.
    """
    if not (inspect.isfunction(target) or _is_scheduler_class(target)):
        raise ConfigError(
            f"{name!r} is not a scheduler class or a function making one, got {truncate(target)}",
            path=path,
        )
    description = (inspect.getdoc(target) or "").strip().split("\n", 1)[0].strip()
    return SchedulerEntry(name=name, cls=target, provider="import", description=description)


_REGISTRY: NamedRegistry[SchedulerEntry] = NamedRegistry(
    "scheduler",
    hint="See optforge.list_schedulers() or `optforge list --schedulers` for every name",
    from_path=_entry_for_path,
)
_ENTRIES = _REGISTRY.entries  # canonical name -> entry


def register_scheduler_provider(provider: Provider) -> None:
    """Add a provider; its entries are registered when it is first needed."""
    _REGISTRY.providers.register(provider)


def register_scheduler(
    cls: type | str | None = None,
    *,
    name: str | None = None,
    aliases: Iterable[str] = (),
    provider: str = "user",
    description: str = "",
    overwrite: bool = False,
    **fields: Any,
) -> Any:
    """Register a scheduler class; usable as a decorator or a plain call.

    Args:
        cls: The scheduler class (built as ``cls(optimizer, **arguments)``), or a
            lazy ``"module:attr"``. Omit it to use the function as a decorator.
        name: The name to register under; defaults to the class name.
        aliases: Other names for the same entry.
        provider: Who supplies it, shown in listings.
        description: One line for listings; defaults to the docstring's first line.
        overwrite: Replace an entry of the same name instead of raising.
        **fields: Other :class:`~optforge.lr_schedulers.SchedulerEntry` fields
            (``metric=True``, ``defaults={...}``, ``length_args=(...)``, ``factory=...``).

    Returns:
        The class when used as a decorator, else the new entry.

    Example:
        >>> import torch
        >>> entry = register_scheduler(torch.optim.lr_scheduler.ExponentialLR, name="Decay99",
        ...                            defaults={"gamma": 0.99})
        >>> get_scheduler_entry("decay99").defaults["gamma"]
        0.99
        >>> unregister_scheduler("Decay99")
    """
    if cls is None:

        def decorator(klass: type) -> type:
            register_scheduler(
                klass,
                name=name,
                aliases=aliases,
                provider=provider,
                description=description,
                overwrite=overwrite,
                **fields,
            )
            return klass

        return decorator
    name, description = _REGISTRY.naming(cls, name, description)
    entry = SchedulerEntry(
        name=name, cls=cls, provider=provider, description=description, aliases=tuple(aliases), **fields
    )
    _REGISTRY.add(entry, overwrite=overwrite)
    return entry


def unregister_scheduler(name: str) -> None:
    """Remove a registered scheduler (by name or alias)."""
    _REGISTRY.remove(name)


def get_scheduler_entry(name: str, *, path: str = "schedule.name") -> SchedulerEntry:
    """The registry entry for ``name`` (case-insensitive); loads its provider if needed.

    Raises:
        ConfigError: for an unknown name (with the closest names), or a timm name
            when timm is not installed.

    Example:
        >>> get_scheduler_entry("CosineAnealingLR", path="schedule.name")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: schedule.name: unknown scheduler 'CosineAnealingLR'; did you mean ...
    """
    try:
        return _REGISTRY.get(name, path=path)
    except ConfigError:
        if isinstance(name, str) and is_optimizer_name(name):
            raise ConfigError(
                f"{name!r} is an optimizer, not a learning-rate scheduler: give it as the optimizer "
                f"section's name (optimizer: {{name: {name}, ...}})",
                path=path,
            ) from None
        raise


def is_scheduler_name(name: str) -> bool:
    """Whether ``name`` is a registered scheduler (providers load as for a lookup).

    Example:
        >>> is_scheduler_name("reducelronplateau"), is_scheduler_name("AdamW")
        (True, False)
    """
    return _REGISTRY.knows(name)


def scheduler_entries(pattern: str = "*", *, provider: str | None = None) -> list[SchedulerEntry]:
    """Registered entries whose name matches the glob ``pattern`` (case-insensitive); loads installed providers."""
    return _REGISTRY.matching(pattern, provider=provider)


def list_schedulers(pattern: str = "*", *, provider: str | None = None) -> list[str]:
    """Names of the registered schedulers matching the glob ``pattern``.

    Example:
        >>> list_schedulers("cosine*", provider="torch")
        ['CosineAnnealingLR', 'CosineAnnealingWarmRestarts']
    """
    return [entry.name for entry in scheduler_entries(pattern, provider=provider)]


register_scheduler_provider(
    SchedulerProvider(name="torch", loader="optforge.lr_schedulers.providers:register_torch", builtin=True)
)
register_scheduler_provider(
    SchedulerProvider(name="optforge", loader="optforge.lr_schedulers.providers:register_optforge", builtin=True)
)
register_scheduler_provider(
    SchedulerProvider(
        name="timm",
        loader="optforge.lr_schedulers.providers:register_timm",
        prefixes=("timm_", "timm."),
        package="timm",
    )
)
