"""Providers: the sources of a registry's entries, each loaded the first time one of its names is needed.

Both registries (optimizers and LR schedulers) keep their providers in a
:class:`Providers`: built-in ones load on first use of the registry, optional
ones (timm, pytorch-optimizer) when a name with one of their prefixes is asked
for, so ``import optforge`` imports none of them.

Example:
    >>> providers = Providers("optimizer")
    >>> providers.register(Provider(name="timm", loader="optforge.providers.timm:register", prefixes=("timm.",),
    ...                             package="timm", extra="timm"))
    >>> providers.for_name("timm.lamb").name, providers.for_name("AdamW") is None
    ('timm', True)
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass

from optforge.errors import ConfigError

__all__ = ["Provider", "Providers"]


@dataclass(frozen=True)
class Provider:
    """A source of registry entries, loaded on first use.

    Attributes:
        name: The provider's name (``"timm"``).
        loader: ``"module:function"``; the function takes no argument and
            registers the provider's entries.
        prefixes: Name prefixes that belong to this provider (``"timm."``);
            asking for such a name loads the provider.
        package: The import name of the package it needs (``None`` for none).
        extra: The optforge extra that installs that package.
        builtin: Loaded whenever the registry is first used.
    """

    name: str
    loader: str
    prefixes: tuple[str, ...] = ()
    package: str | None = None
    extra: str | None = None
    builtin: bool = False

    def is_installed(self) -> bool:
        """Whether the package it needs can be imported."""
        return self.package is None or importlib.util.find_spec(self.package) is not None


class Providers:
    """The providers of one registry, and which of them have loaded.

    Attributes:
        what: What the registry holds (``"optimizer"``), for messages.
        by_name: Every provider, by name.
        loaded: The names of the providers that have loaded.
        lock: Held while a provider loads, and by the registry while it changes.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.by_name: dict[str, Provider] = {}
        self.loaded: set[str] = set()
        self.lock = threading.RLock()

    def register(self, provider: Provider) -> None:
        """Add a provider; its entries are registered when it is first needed."""
        self.by_name[provider.name] = provider

    def load(self, provider: Provider) -> None:
        """Register ``provider``'s entries, once (a loader that fails may be tried again)."""
        with self.lock:
            if provider.name in self.loaded:
                return
            self.loaded.add(provider.name)
            try:
                module_name, _, attr = provider.loader.partition(":")
                getattr(importlib.import_module(module_name), attr)()
            except BaseException:
                self.loaded.discard(provider.name)
                raise

    def ensure_builtins(self) -> None:
        """Load every built-in provider not loaded yet."""
        for provider in list(self.by_name.values()):
            if provider.builtin and provider.name not in self.loaded:
                self.load(provider)

    def load_installed(self, only: str | None = None) -> None:
        """Load every installed provider (or only the one named ``only``), for listings."""
        self.ensure_builtins()
        for provider in list(self.by_name.values()):
            if provider.name not in self.loaded and provider.is_installed() and only in (None, provider.name):
                self.load(provider)

    def for_name(self, name: str) -> Provider | None:
        """The provider whose prefix ``name`` starts with, if any."""
        lowered = name.lower()
        for provider in self.by_name.values():
            if any(lowered.startswith(prefix.lower()) for prefix in provider.prefixes):
                return provider
        return None

    def load_for(self, name: str, path: str) -> None:
        """Load the provider of ``name`` if it has one that has not loaded.

        Raises:
            ConfigError: when that provider's package is not installed, naming the extra to install.
        """
        provider = self.for_name(name)
        if provider is None or provider.name in self.loaded:
            return
        if not provider.is_installed():
            raise ConfigError(
                f"{name!r} comes from the {provider.name!r} provider, whose package "
                f"{provider.package!r} is not installed; install it with "
                f"`pip install -e '.[{provider.extra or provider.name}]'` in the optforge clone",
                path=path,
            )
        self.load(provider)
