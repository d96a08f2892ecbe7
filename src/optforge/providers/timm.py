"""timm's optimizers (``pip install -e '.[timm]'``), loaded on first use.

Three kinds of names:

- ``timm.<name>``: every name of ``timm.optim.list_optimizers()``, with that
  name's bound defaults (``timm.clion`` is timm's ``Lion`` with ``caution=True``).
  Names whose timm entry has momentum also bind ``momentum=0.9``, as
  ``timm.optim.create_optimizer_v2`` does.
- ``timm.lookahead_<name>``: the same optimizer wrapped in timm's ``Lookahead``
  (``k=6``, ``alpha=0.5``), as ``create_optimizer_v2(opt="lookahead_<name>")``.
- ``timm_<ClassName>``: every optimizer class of ``timm.optim``, without bound
  defaults (``timm_Lamb``, ``timm_Adan``, ``timm_Kron``).

timm's apex (``fused*``) and bitsandbytes (``bnb*``) entries are listed but
unavailable without their package and a CUDA GPU.

Example:
    >>> timm_name("lamb"), timm_name("lamb", lookahead=True), timm_class_name("Lamb")
    ('timm.lamb', 'timm.lookahead_lamb', 'timm_Lamb')
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Mapping
from typing import Any

import torch

from optforge.registry import OptimizerEntry, register_optimizer

__all__ = ["cuda_package_reason", "register", "timm_class_name", "timm_name"]

# Bound by every timm entry that has momentum, as timm's own factory does.
_TIMM_MOMENTUM = 0.9

# Packages that timm's lazily named classes come from ("apex.optimizers.FusedSGD").
_EXTERNAL_PACKAGES = ("apex", "bitsandbytes")

# Hyperparameters that switch a class to decoupled (AdamW-style) weight decay.
_DECOUPLING_SWITCHES = ("decoupled_decay", "decoupled", "decoupled_weight_decay", "adam_w_mode")

# Classes whose weight decay is always decoupled (read from their sources).
_ALWAYS_DECOUPLED = frozenset(
    {
        "AdamW",
        "AdamWLegacy",
        "NAdamW",
        "SGDW",
        "Lion",
        "LaProp",
        "Adafactor",
        "AdafactorBigVision",
        "Adan",
        "AdamP",
        "SGDP",
        "Mars",
        "Muon",
        "FusedLAMB",
        "AdamW8bit",
        "Lion8bit",
    }
)

# Exported classes that wrap an optimizer instead of taking parameters.
_WRAPPERS: Mapping[str, str] = {
    "Lookahead": "wraps another optimizer instead of taking parameters; "
    "use timm.lookahead_<name> (e.g. timm.lookahead_adamw)",
}


def timm_name(name: str, *, lookahead: bool = False) -> str:
    """The optforge name of timm's registry name ``name``."""
    return f"timm.lookahead_{name}" if lookahead else f"timm.{name}"


def timm_class_name(class_name: str) -> str:
    """The optforge name of the ``timm.optim`` class ``class_name``."""
    return f"timm_{class_name}"


def cuda_package_reason(package: str) -> str | None:
    """Why an optimizer from ``package`` that needs CUDA cannot be built here, or ``None``.

    Example:
        >>> reason = cuda_package_reason("no_such_package")
        >>> reason.startswith("needs the 'no_such_package' package")
        True
    """
    missing = []
    if importlib.util.find_spec(package) is None:
        missing.append(f"the {package!r} package (not installed)")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (none available)")
    return "needs " + " and ".join(missing) if missing else None


def _lazy_class(dotted: str) -> str:
    """timm's ``"pkg.mod.Class"`` as the registry's lazy ``"pkg.mod:Class"``."""
    module, _, attr = dotted.rpartition(".")
    return f"{module}:{attr}"


def _signature_defaults(cls: Any) -> dict[str, Any]:
    if isinstance(cls, str):
        return {}  # not importable here; the bound defaults alone decide
    return {
        name: param.default
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if param.default is not inspect.Parameter.empty
    }


def _step_needs_closure(cls: Any) -> bool:
    if isinstance(cls, str):
        return False
    closure = inspect.signature(cls.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def _capabilities(cls: Any, defaults: Mapping[str, Any], *, second_order: bool) -> dict[str, Any]:
    """The registry flags of ``cls`` under the bound ``defaults``."""
    class_name = cls.rpartition(":")[2] if isinstance(cls, str) else cls.__name__
    settings = {**_signature_defaults(cls), **defaults}
    capabilities: dict[str, Any] = {
        "decoupled_weight_decay": class_name in _ALWAYS_DECOUPLED
        or any(settings.get(switch) is True for switch in _DECOUPLING_SWITCHES),
        "needs_create_graph": second_order,
        "needs_closure": _step_needs_closure(cls),
    }
    if isinstance(cls, str):
        package = cls.partition(".")[0]
        if package in _EXTERNAL_PACKAGES:
            capabilities["unavailable"] = functools.partial(cuda_package_reason, package)
    return capabilities


def _with_lookahead(base: OptimizerEntry, params: Any, **hyperparameters: Any) -> torch.optim.Optimizer:
    from timm.optim import Lookahead

    return Lookahead(base.create(params, **hyperparameters))


def _registry_infos() -> dict[str, tuple[Any, list[str]]]:
    """timm's registry: each entry by its name, with the other names that reach it."""
    import timm.optim

    infos: dict[str, tuple[Any, list[str]]] = {}
    for listed in timm.optim.list_optimizers():
        info = timm.optim.get_optimizer_info(listed)
        infos.setdefault(info.name, (info, []))
        if listed != info.name:
            infos[info.name][1].append(listed)
    return infos


def _optimizer_classes(infos: Mapping[str, tuple[Any, list[str]]]) -> dict[str, type]:
    """``timm.optim``'s exported optimizer classes, and those its registry uses."""
    import timm.optim

    classes = {
        name: obj
        for name, obj in vars(timm.optim).items()
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer
    }
    for info, _ in infos.values():
        if isinstance(info.opt_class, type):
            classes.setdefault(info.opt_class.__name__, info.opt_class)
    return classes


def _register_names(info: Any, aliases: list[str]) -> None:
    cls = _lazy_class(info.opt_class) if isinstance(info.opt_class, str) else info.opt_class
    defaults = {**({"momentum": _TIMM_MOMENTUM} if info.has_momentum else {}), **(info.defaults or {})}
    capabilities = _capabilities(cls, defaults, second_order=info.second_order)
    base = register_optimizer(
        cls,
        name=timm_name(info.name),
        defaults=defaults,
        aliases=[timm_name(alias) for alias in aliases],
        provider="timm",
        description=info.description,
        **capabilities,
    )
    register_optimizer(
        cls,
        name=timm_name(info.name, lookahead=True),
        defaults=defaults,
        aliases=[timm_name(alias, lookahead=True) for alias in aliases],
        provider="timm",
        description=f"{info.description}; wrapped in Lookahead (k=6, alpha=0.5)",
        factory=functools.partial(_with_lookahead, base),
        **capabilities,
    )


def _register_class(name: str, cls: type, infos: Mapping[str, tuple[Any, list[str]]]) -> None:
    using = [info for info, _ in infos.values() if info.opt_class is cls]
    plain = [info for info in using if not info.defaults]
    docstring = (cls.__doc__ or "").strip().split("\n", 1)[0].strip()
    description = (plain or using)[0].description if using else docstring or f"timm.optim.{name}"
    capabilities = _capabilities(cls, {}, second_order=any(info.second_order for info in using))
    if name in _WRAPPERS:
        capabilities["unavailable"] = _WRAPPERS[name]
    register_optimizer(cls, name=timm_class_name(name), provider="timm", description=description, **capabilities)


def register() -> None:
    """Register every timm registry name (plain and Lookahead) and every timm optimizer class."""
    infos = _registry_infos()
    for info, aliases in infos.values():
        _register_names(info, aliases)
    for name, cls in _optimizer_classes(infos).items():
        _register_class(name, cls, infos)
