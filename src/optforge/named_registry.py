"""A table of named entries, looked up case-insensitively by name or alias, whose providers load lazily.

Both registries (optimizers and LR schedulers) are a :class:`NamedRegistry`.
Its :class:`Providers` load the sources of entries the first time they are
needed: built-in ones on first use of the registry, optional ones (timm,
pytorch-optimizer) when a name with one of their prefixes is asked for, so
``import optforge`` imports none of them.

Example:
    >>> providers = Providers("optimizer")
    >>> providers.register(Provider(name="timm", loader="optforge.providers.timm:register", prefixes=("timm.",),
    ...                             package="timm", extra="timm"))
    >>> providers.for_name("timm.lamb").name, providers.for_name("AdamW") is None
    ('timm', True)
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from optforge.errors import ConfigError, unknown_choice

__all__ = ["NamedRegistry", "Provider", "Providers"]

# A name that may be an import path: dotted Python identifiers (``torch.optim.AdamW``).
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


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
        self._loading: set[str] = set()  # providers whose loader is running, on the thread holding the lock
        self.lock = threading.RLock()

    def register(self, provider: Provider) -> None:
        """Add a provider; its entries are registered when it is first needed."""
        self.by_name[provider.name] = provider

    def load(self, provider: Provider) -> None:
        """Register ``provider``'s entries, once (a loader that fails may be tried again).

        ``loaded`` names a provider only once all its entries are registered. Another
        thread asking meanwhile waits on the lock; the loading thread itself, asked again
        by its loader, returns at once.
        """
        with self.lock:
            if provider.name in self.loaded or provider.name in self._loading:
                return
            self._loading.add(provider.name)
            try:
                module_name, _, attr = provider.loader.partition(":")
                getattr(importlib.import_module(module_name), attr)()
                self.loaded.add(provider.name)
            finally:
                self._loading.discard(provider.name)

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


class Named(Protocol):
    """What a registry entry has: its canonical name, other names and provider."""

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    @property
    def provider(self) -> str: ...


EntryT = TypeVar("EntryT", bound=Named)


class NamedRegistry(Generic[EntryT]):
    """Entries by canonical name, found by any of their names in any case, and the providers that add them.

    Attributes:
        what: What the registry holds (``"optimizer"``), for messages.
        hint: Where to see every name, appended to an unknown name's message.
        entries: Every entry, by canonical name.
        lookup: The canonical name of each lower-case name and alias.
        providers: The providers of the entries.
        from_path: Makes the entry of an object named by its import path
            (``module.Class``; called with the name, the object and the config path),
            for a name that is neither registered nor a provider's; ``None`` for a
            registry that takes no import paths. An object that is registered already,
            with nothing bound, keeps its entry.

    Example:
        >>> from optforge.registry import OptimizerEntry
        >>> table = NamedRegistry("optimizer", hint="")
        >>> table.add(OptimizerEntry("AdamW", "torch.optim:AdamW", aliases=("adam_w",)), overwrite=False)
        >>> table.get("ADAM_W", path="optimizer.name").name
        'AdamW'
    """

    def __init__(self, what: str, *, hint: str, from_path: Callable[[str, Any, str], EntryT] | None = None) -> None:
        self.what = what
        self.hint = hint
        self.entries: dict[str, EntryT] = {}
        self.lookup: dict[str, str] = {}
        self.providers = Providers(what)
        self.from_path = from_path
        self._by_path: dict[str, EntryT] = {}  # entries made for import paths, not listed

    def _article(self) -> str:
        return "an" if self.what[:1] in "aeiou" else "a"

    def naming(self, cls: Any, name: str | None, description: str) -> tuple[str, str]:
        """The name and description to register ``cls`` under.

        Where not given, they are its class name and its docstring's first line; a
        lazy ``"module:attr"`` string has neither, so it must come with a name.
        Anything else that cannot be called is not an entry.
        """
        if not isinstance(cls, str) and not callable(cls):
            raise ConfigError(
                f"{self._article()} {self.what} must be a class or a factory, got {type(cls).__name__}", path="cls"
            )
        if name is None:
            if isinstance(cls, str):
                raise ConfigError(f"a lazily registered {self.what} needs an explicit name", path="name")
            name = cls.__name__
        if not description and not isinstance(cls, str):
            description = (cls.__doc__ or "").strip().split("\n", 1)[0].strip()
        return name, description

    def add(self, entry: EntryT, *, overwrite: bool) -> None:
        """Register ``entry`` under its name and aliases; a name already taken is an error unless ``overwrite``."""
        with self.providers.lock:
            keys = [entry.name.lower(), *(alias.lower() for alias in entry.aliases)]
            if not overwrite:
                for key in keys:
                    if key in self.lookup:
                        raise ConfigError(
                            f"{self._article()} {self.what} named {key!r} is already registered "
                            f"({self.lookup[key]}); pass overwrite=True to replace it",
                            path="name",
                        )
            elif entry.name in self.entries:
                self._drop(entry.name)
            self.entries[entry.name] = entry
            for key in keys:
                self.lookup[key] = entry.name

    def _drop(self, canonical: str) -> None:
        entry = self.entries.pop(canonical)
        for key in [entry.name.lower(), *(alias.lower() for alias in entry.aliases)]:
            if self.lookup.get(key) == canonical:
                del self.lookup[key]

    def remove(self, name: str) -> None:
        """Remove the entry registered as ``name`` (its canonical name or an alias)."""
        with self.providers.lock:
            canonical = self.lookup.get(name.lower())
            if canonical is None:
                raise unknown_choice("name", name, self.entries, what=self.what)
            self._drop(canonical)

    def get(self, name: str, *, path: str) -> EntryT:
        """The entry for ``name`` (case-insensitive), loading its provider if needed.

        Raises:
            ConfigError: for a name that is not a string, an unknown name (with the
                closest names), or a name of a provider whose package is not installed.
        """
        if not isinstance(name, str):
            raise ConfigError(f"the {self.what} name must be a string, got {type(name).__name__} {name!r}", path=path)
        self.providers.ensure_builtins()
        key = name.lower()
        if key not in self.lookup:
            self.providers.load_for(name, path)
        if key not in self.lookup:
            found = self._for_path(name, path)
            if found is not None:
                return found
            names = [*self.entries, *(alias for entry in self.entries.values() for alias in entry.aliases)]
            hint = self.hint + (", or give an importable path (module.Class)" if self.from_path else "")
            raise unknown_choice(path, name, names, what=self.what, hint=hint)
        return self.entries[self.lookup[key]]

    def _for_path(self, name: str, path: str) -> EntryT | None:
        """The entry for an import path (``torch.optim.AdamW``): the registered entry of that very
        object with nothing bound, else one made by ``from_path``; ``None`` when ``name`` names no
        importable object.

        Raises:
            ConfigError: when the module exists but fails to import, or ``from_path`` rejects the object.
        """
        if self.from_path is None or not _IMPORT_PATH.fullmatch(name):
            return None
        if name in self._by_path:
            return self._by_path[name]
        module_name, _, attr = name.rpartition(".")
        try:
            if importlib.util.find_spec(module_name) is None:
                return None
            target = getattr(importlib.import_module(module_name), attr, None)
        except Exception as err:
            missing = getattr(err, "name", None)
            if isinstance(err, ImportError) and missing and f"{module_name}.".startswith(f"{missing}."):
                return None  # no such module
            raise ConfigError(f"{name!r}: its module {module_name} does not import here: {err}", path=path) from None
        if target is None:
            return None
        lazy = f"{module_name}:{attr}"
        for entry in self.entries.values():
            cls = getattr(entry, "cls", None)
            if (cls is target or cls == lazy) and not getattr(entry, "defaults", None):
                return entry
        entry = self.from_path(name, target, path)
        self._by_path[name] = entry
        return entry

    def knows(self, name: str) -> bool:
        """Whether ``name`` is registered, loading its provider as :meth:`get` does (never raises)."""
        try:
            self.get(name, path="")
        except ConfigError:
            return False
        return True

    def matching(self, pattern: str = "*", *, provider: str | None = None) -> list[EntryT]:
        """Entries whose name matches the glob ``pattern`` (case-insensitive), torch's first; loads installed
        providers so their names are listed too.

        Raises:
            ConfigError: for an unknown ``provider``.
        """
        self.providers.load_installed(provider)
        known = {entry.provider for entry in self.entries.values()} | set(self.providers.by_name)
        if provider is not None and provider not in known:
            raise unknown_choice("provider", provider, known, what="provider")
        pattern = pattern.lower()
        return sorted(
            (
                entry
                for entry in self.entries.values()
                if fnmatch.fnmatchcase(entry.name.lower(), pattern) and provider in (None, entry.provider)
            ),
            key=lambda entry: (entry.provider != "torch", entry.provider, entry.name.lower()),
        )
