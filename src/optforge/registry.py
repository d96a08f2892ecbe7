"""The optimizer registry: one data entry per optimizer, looked up by name.

Names are case-insensitive. Any optimizer class may also be named by its import path
(``torch.optim.AdamW``, ``mypackage.optim.Fancy``): it is imported when the name is
looked up, and a class registered already keeps its entry. Entries come from *providers*: ``torch`` (every
``torch.optim`` optimizer and the ``Momentum``/``NesterovMomentum`` presets),
``optforge`` (our own optimizers) and optional third-party providers that load
lazily, the first time one of their names (``timm.lamb``) is asked for.

Example:
    >>> import torch
    >>> import optforge
    >>> optforge.get_optimizer_class("adamw") is torch.optim.AdamW
    True
    >>> @optforge.register_optimizer(name="MySGD", defaults={"momentum": 0.5}, aliases=["my_sgd"])
    ... class MySGD(torch.optim.SGD):
    ...     pass
    >>> dict(optforge.get_optimizer_entry("my_sgd").defaults)
    {'momentum': 0.5}
    >>> optforge.unregister_optimizer("MySGD")
    >>> [optforge.get_optimizer_entry(path).name for path in ("torch.optim.AdamW", "torch.optim.adamw.AdamW")]
    ['AdamW', 'AdamW']
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from optforge.errors import ConfigError, truncate
from optforge.named_registry import NamedRegistry, Provider

__all__ = [
    "OptimizerEntry",
    "Provider",
    "get_optimizer_class",
    "get_optimizer_entry",
    "has_train_eval_modes",
    "is_optimizer_name",
    "list_optimizers",
    "optimizer_entries",
    "optimizer_providers",
    "register_optimizer",
    "register_provider",
    "unregister_optimizer",
]


# What an optimizer's constructor may take as its first argument (``OptimizerEntry.takes``).
ENTRY_TAKES: tuple[str, ...] = ("params", "module", "named_parameters")


@dataclass(frozen=True)
class OptimizerEntry:
    """One registered optimizer.

    Attributes:
        name: The canonical name, as listed (``"AdamW"``, ``"timm.lamb"``).
        cls: The optimizer class, or a lazy ``"module:attr"`` string.
        provider: Who supplies it (``"torch"``, ``"optforge"``, ``"timm"``, ``"user"``...).
        defaults: Hyperparameters bound by this entry; a config may override them.
        description: One line for listings.
        aliases: Other names that reach this entry.
        needs_closure: ``step()`` must be given a closure (LBFGS).
        needs_create_graph: gradients must come from ``backward(create_graph=True)``.
        decoupled_weight_decay: weight decay is decoupled from the gradient
            (AdamW-style); param-group presets use it to exclude biases and norms.
        needs_sparse_grad: only takes sparse gradients (SparseAdam).
        matrix_params_only: only takes 2-D parameters (Muon); building it over
            others is a ConfigError that suggests a composite optimizer.
        takes: What the constructor's first argument is: ``"params"`` (tensors or
            group dicts), ``"module"`` (the ``nn.Module`` itself) or
            ``"named_parameters"`` (``(name, parameter)`` pairs); an entry that
            does not take ``"params"`` is built from a model only.
        updates_in_backward: updates parameters inside backward
            (``optimizer.fused_backward(loss, lr)``) rather than in ``step()`` (LOMO).
        unavailable: Why the entry cannot be built on this machine, or ``None``.
            A callable is evaluated when the entry is built.
        factory: Builds the optimizer as ``factory(params, **hyperparameters)``
            instead of calling ``cls`` (for wrappers such as Lookahead); the
            hyperparameters are still validated against ``cls``'s signature.
        has_train_eval_modes: the optimizer has Schedule-Free ``train()``/``eval()``
            modes; ``None`` reads it from the class (see :func:`has_train_eval_modes`).
    """

    name: str
    cls: type[torch.optim.Optimizer] | str
    provider: str = "user"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()
    needs_closure: bool = False
    needs_create_graph: bool = False
    decoupled_weight_decay: bool = False
    needs_sparse_grad: bool = False
    matrix_params_only: bool = False
    takes: str = "params"
    updates_in_backward: bool = False
    unavailable: str | Callable[[], str | None] | None = None
    factory: Callable[..., torch.optim.Optimizer] | None = None
    has_train_eval_modes: bool | None = None

    def __post_init__(self) -> None:
        if self.takes not in ENTRY_TAKES:
            raise ConfigError(f"unknown value {self.takes!r}; valid choices: {', '.join(ENTRY_TAKES)}", path="takes")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def resolve_class(self) -> type[torch.optim.Optimizer]:
        """The optimizer class, importing it if it was registered lazily."""
        if isinstance(self.cls, str):
            module_name, _, attr = self.cls.partition(":")
            return getattr(importlib.import_module(module_name), attr)
        return self.cls

    def hyperparameters(self) -> tuple[dict[str, inspect.Parameter], bool]:
        """The hyperparameters ``cls`` takes (all but ``params``), and whether it takes any name.

        A ``**kwargs`` that ``__init__`` ignores, or only reads with
        ``kwargs.get("name")``/``kwargs["name"]``, does not open the set: those
        names are added, and any other name stays an error instead of being
        silently dropped.
        """
        init = self.resolve_class().__init__
        accepted: dict[str, inspect.Parameter] = {}
        var_keyword: str | None = None
        try:  # annotations written as strings (``from __future__ import annotations``) become types
            signature = inspect.signature(init, eval_str=True)
        except Exception:  # a name the defining module does not bind at run time: keep them as text
            signature = inspect.signature(init)
        for index, (pname, param) in enumerate(signature.parameters.items()):
            if index == 0 or pname == "params" or (index == 1 and self.takes != "params"):
                continue  # self, and the parameters (or the model) themselves
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                var_keyword = pname
            elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
                accepted[pname] = param
        if var_keyword is None:
            return accepted, False
        read = _keys_read_from(init, var_keyword)
        if read is None:
            return accepted, True
        for key in read:
            accepted.setdefault(key, inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY))
        return accepted, False

    def create(self, params: Any, **hyperparameters: Any) -> torch.optim.Optimizer:
        """Instantiate the optimizer over ``params`` (no validation: see ``build_optimizer``)."""
        if self.factory is not None:
            return self.factory(params, **hyperparameters)
        return self.resolve_class()(params, **hyperparameters)

    def unavailable_reason(self) -> str | None:
        """Why this entry cannot be built here, or ``None`` when it can."""
        if callable(self.unavailable):
            return self.unavailable()
        return self.unavailable


def has_train_eval_modes(optimizer: Any) -> bool:
    """Whether an optimizer entry (by its flag), class or instance (by its methods) has ``train()``/``eval()`` modes.

    Example:
        >>> has_train_eval_modes(get_optimizer_entry("SGDScheduleFree")), has_train_eval_modes(torch.optim.SGD)
        (True, False)
    """
    if isinstance(optimizer, OptimizerEntry):
        if optimizer.has_train_eval_modes is not None:
            return optimizer.has_train_eval_modes
        optimizer = optimizer.resolve_class()
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def _keys_read_from(function: Callable[..., Any], mapping_name: str) -> tuple[str, ...] | None:
    """The constant keys ``function`` reads from its ``**mapping_name``, or ``None`` if it uses it otherwise.

    ``None`` (the mapping is passed on, iterated, or the source is unavailable)
    means any key may be meaningful.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None
    body = tree.body[0]
    if not isinstance(body, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    parents = {child: node for node in ast.walk(body) for child in ast.iter_child_nodes(node)}
    keys: list[str] = []
    for node in ast.walk(body):
        if not (isinstance(node, ast.Name) and node.id == mapping_name):
            continue
        parent = parents.get(node)
        if isinstance(parent, (ast.arguments, ast.arg)):
            continue
        call = parents.get(parent) if isinstance(parent, ast.Attribute) else None
        if (
            isinstance(parent, ast.Attribute)
            and parent.attr in {"get", "pop"}
            and isinstance(call, ast.Call)
            and call.args
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
        ):
            keys.append(call.args[0].value)
        elif (
            isinstance(parent, ast.Subscript)
            and isinstance(parent.slice, ast.Constant)
            and isinstance(parent.slice.value, str)
        ):
            keys.append(parent.slice.value)
        elif (
            isinstance(parent, ast.Compare)
            and isinstance(parent.left, ast.Constant)
            and isinstance(parent.left.value, str)
            and all(isinstance(op, (ast.In, ast.NotIn)) for op in parent.ops)
        ):
            keys.append(parent.left.value)  # "name" in kwargs
        else:
            return None
    return tuple(dict.fromkeys(keys))


def _entry_for_path(name: str, target: Any, path: str) -> OptimizerEntry:
    """The entry of an optimizer class named by its import path (``torch.optim.AdamW``).

    Raises:
        ConfigError: when ``target`` is not an optimizer class.
    """
    if not (inspect.isclass(target) and issubclass(target, torch.optim.Optimizer)):
        raise ConfigError(
            f"{name!r} is not an optimizer class (a subclass of torch.optim.Optimizer), got {truncate(target)}",
            path=path,
        )
    description = (target.__doc__ or "").strip().split("\n", 1)[0].strip()
    return OptimizerEntry(name=name, cls=target, provider="import", description=description)


_REGISTRY: NamedRegistry[OptimizerEntry] = NamedRegistry(
    "optimizer", hint="See optforge.list_optimizers() or `optforge list` for every name", from_path=_entry_for_path
)
_ENTRIES = _REGISTRY.entries  # canonical name -> entry
_PROVIDERS = _REGISTRY.providers.by_name


def optimizer_providers() -> list[Provider]:
    """Every provider of optimizers, loaded or not (``Provider.builtin`` tells the ones loaded by default).

    Example:
        >>> [provider.name for provider in optimizer_providers() if provider.builtin]
        ['torch', 'optforge']
    """
    return list(_PROVIDERS.values())


def register_provider(provider: Provider) -> None:
    """Add a provider; its entries are registered when it is first needed."""
    _REGISTRY.providers.register(provider)


def register_optimizer(
    cls: type[torch.optim.Optimizer] | str | None = None,
    *,
    name: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    aliases: Iterable[str] = (),
    provider: str = "user",
    description: str = "",
    overwrite: bool = False,
    **capabilities: Any,
) -> Any:
    """Register an optimizer class; usable as a decorator or a plain call.

    Args:
        cls: The optimizer class (or a lazy ``"module:attr"``). Omit it to use
            the function as a decorator.
        name: The name to register under; defaults to the class name.
        defaults: Hyperparameters bound to this name (a preset).
        aliases: Other names for the same entry.
        provider: Who supplies the optimizer, shown in listings.
        description: One line for listings; defaults to the docstring's first line.
        overwrite: Replace an entry of the same name instead of raising.
        **capabilities: Other :class:`OptimizerEntry` fields
            (``needs_closure=True``, ``decoupled_weight_decay=True``, ...).

    Returns:
        The class when used as a decorator, else the new :class:`OptimizerEntry`.

    Example:
        >>> import torch, optforge
        >>> entry = optforge.register_optimizer(torch.optim.SGD, name="HeavyBall", defaults={"momentum": 0.99})
        >>> optforge.get_optimizer_entry("heavyball").name
        'HeavyBall'
        >>> optforge.unregister_optimizer("HeavyBall")
    """
    if cls is None:

        def decorator(klass: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
            register_optimizer(
                klass,
                name=name,
                defaults=defaults,
                aliases=aliases,
                provider=provider,
                description=description,
                overwrite=overwrite,
                **capabilities,
            )
            return klass

        return decorator

    name, description = _REGISTRY.naming(cls, name, description)
    entry = OptimizerEntry(
        name=name,
        cls=cls,
        provider=provider,
        defaults=dict(defaults or {}),
        description=description,
        aliases=tuple(aliases),
        **capabilities,
    )
    _REGISTRY.add(entry, overwrite=overwrite)
    return entry


def unregister_optimizer(name: str) -> None:
    """Remove a registered optimizer (by name or alias)."""
    _REGISTRY.remove(name)


def get_optimizer_entry(name: str, *, path: str = "optimizer.name") -> OptimizerEntry:
    """The registry entry for ``name`` (case-insensitive); loads its provider if needed.

    Raises:
        ConfigError: for an unknown name (with the closest names), or a name of a
            provider whose package is not installed (with the extra to install).
    """
    return _REGISTRY.get(name, path=path)


def is_optimizer_name(name: str) -> bool:
    """Whether ``name`` is a registered optimizer (providers load as for a lookup).

    Example:
        >>> is_optimizer_name("adamw"), is_optimizer_name("StepLR")
        (True, False)
    """
    return _REGISTRY.knows(name)


def get_optimizer_class(name_or_config: Any) -> type[torch.optim.Optimizer]:
    """The optimizer class for a name or for any optimizer config.

    Example:
        >>> import torch, optforge
        >>> optforge.get_optimizer_class({"adam": {"lr": 0.1}}) is torch.optim.Adam
        True
    """
    if isinstance(name_or_config, str):
        return get_optimizer_entry(name_or_config).resolve_class()
    from optforge.config import parse_document

    section = parse_document(name_or_config).optimizer
    if section is None:
        raise ConfigError("a composite optimizer (a list of parts) has no single optimizer class", path="optimizer")
    return get_optimizer_entry(section.name, path=section.name_path).resolve_class()


def optimizer_entries(pattern: str = "*", *, provider: str | None = None) -> list[OptimizerEntry]:
    """Registered entries whose name matches the glob ``pattern`` (case-insensitive).

    Installed optional providers are loaded so their names are listed too.
    """
    return _REGISTRY.matching(pattern, provider=provider)


def list_optimizers(pattern: str = "*", *, provider: str | None = None) -> list[str]:
    """Names of the registered optimizers matching the glob ``pattern``.

    Example:
        >>> import optforge
        >>> optforge.list_optimizers("adam*", provider="torch")
        ['Adam', 'Adamax', 'AdamW']
    """
    return [entry.name for entry in optimizer_entries(pattern, provider=provider)]


register_provider(Provider(name="torch", loader="optforge.providers.torch_optim:register", builtin=True))
register_provider(
    Provider(
        name="timm",
        loader="optforge.providers.timm:register",
        prefixes=("timm.", "timm_"),
        package="timm",
        extra="timm",
    )
)
register_provider(
    Provider(
        name="pytorch_optimizer",
        loader="optforge.providers.pytorch_optimizer:register",
        prefixes=("pytorch_optimizer.",),
        package="pytorch_optimizer",
        extra="pytorch-optimizer",
    )
)
register_provider(
    Provider(
        name="transformers",
        loader="optforge.providers.transformers:register",
        prefixes=("transformers.",),
        package="transformers",
        extra="transformers",
    )
)
register_provider(Provider(name="optforge", loader="optforge.optimizers:register", builtin=True))
