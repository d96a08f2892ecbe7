"""``CompositeOptimizer``: one torch optimizer made of several, each owning a part of the parameters.

Muon takes only the 2-D weights of hidden layers, so a model trained with it needs a
second optimizer (AdamW) for embeddings, the output head and 1-D parameters; a
recommender trains its embedding tables with SGD and the dense part with Adam.
:class:`CompositeOptimizer` makes such a set one ``torch.optim.Optimizer``:

- ``param_groups`` is the list of the parts' group dicts, the same dict objects,
  each tagged with its part's name under ``"part"`` (and named ``<part>/<index>``
  when it has no ``"name"``): a torch ``LRScheduler``, a ``GradScaler`` or a
  trainer that sets ``group["lr"]`` sets it in the part.
- ``state`` is keyed by parameter, as in every torch optimizer; each entry lives
  in the ``state`` of the part that owns the parameter.
- ``step(closure)`` evaluates the closure once, then steps every part;
  ``zero_grad`` clears every part's gradients.
- ``state_dict()`` has the layout of a plain optimizer's (parameters numbered in
  ``param_groups`` order), so ``torch.distributed.checkpoint`` and FSDP2 read it
  by parameter name; ``load_state_dict`` checks that the state has this
  optimizer's parts and groups before it changes anything, then loads each part.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    >>> hidden = model[1].weight
    >>> rest = [p for p in model.parameters() if p is not hidden]
    >>> opt = CompositeOptimizer({
    ...     "muon": torch.optim.Muon([hidden], lr=0.02, adjust_lr_fn="match_rms_adamw"),
    ...     "adamw": torch.optim.AdamW(rest, lr=0.02),
    ... })
    >>> [(g["part"], len(g["params"])) for g in opt.param_groups]
    [('muon', 1), ('adamw', 4)]
    >>> opt.param_groups[0] is opt.parts["muon"].param_groups[0]
    True
    >>> model(torch.tensor([1, 2])).sum().backward()
    >>> opt.step()
    >>> sorted(opt.state[hidden]), sorted(opt.state[model[2].weight])
    (['momentum_buffer'], ['exp_avg', 'exp_avg_sq', 'step'])
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from itertools import chain
from typing import Any

import torch
from torch.optim import Optimizer

from optforge.registry import has_train_eval_modes
from optforge.torch_internals import optimizer_hooks, set_up_without_groups

__all__ = ["CompositeOptimizer"]

# Keys of a part's own state dict that are not the state or the groups (kept per part).
_PACKED = ("state", "param_groups")


class _PartsState(MutableMapping[Any, Any]):
    """The composite's ``state``: a view whose entry for a parameter is its part's entry.

    Reading the entry of a parameter that has none creates it in its part, as the
    ``defaultdict`` of a torch optimizer does; a key that no part owns is a ``KeyError``.
    """

    def __init__(self, composite: CompositeOptimizer) -> None:
        self._composite = weakref.ref(composite)

    def _parts(self) -> Mapping[str, Optimizer]:
        composite = self._composite()
        return {} if composite is None else composite.parts

    def _part_of(self, key: Any) -> Optimizer | None:
        composite = self._composite()
        if composite is None:
            return None
        if isinstance(key, torch.Tensor):
            name = composite._owners.get(key)
            if name is None:
                composite._sync()  # a group added to a part directly
                name = composite._owners.get(key)
            return None if name is None else composite.parts[name]
        return next((part for part in composite.parts.values() if key in part.state), None)

    def __getitem__(self, key: Any) -> Any:
        part = self._part_of(key)
        if part is None:
            raise KeyError(key)
        return part.state[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        part = self._part_of(key)
        if part is None:
            raise KeyError(f"{type(key).__name__} is not a parameter of any part of this optimizer")
        part.state[key] = value

    def __delitem__(self, key: Any) -> None:
        part = self._part_of(key)
        if part is None or key not in part.state:
            raise KeyError(key)
        del part.state[key]

    def __contains__(self, key: object) -> bool:
        return any(key in part.state for part in self._parts().values())

    def __iter__(self) -> Iterator[Any]:
        return chain.from_iterable(list(part.state) for part in self._parts().values())

    def __len__(self) -> int:
        return sum(len(part.state) for part in self._parts().values())

    def clear(self) -> None:
        for part in self._parts().values():
            part.state.clear()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.items())!r})"


def _layout(groups: list[dict[str, Any]]) -> list[tuple[Any, int]]:
    return [(group.get("part"), len(group["params"])) for group in groups]


def _describe(layout: list[tuple[Any, int]]) -> str:
    """``muon: 1 group (4 params), adamw: 2 groups (3, 2 params)`` for a layout."""
    parts: dict[Any, list[int]] = {}
    for part, size in layout:
        parts.setdefault(part, []).append(size)
    return ", ".join(
        f"{part if part is not None else '(no part)'}: {len(sizes)} group{'s' * (len(sizes) != 1)} "
        f"({', '.join(map(str, sizes))} params)"
        for part, sizes in parts.items()
    )


class CompositeOptimizer(Optimizer):
    """Several optimizers, each over its own parameters, acting as one.

    Args:
        parts: The optimizers by part name, in order. A name is a non-empty string
            without ``/``; no parameter may be in two parts.

    Attributes:
        parts: The optimizers by part name. Step, load and add groups through the
            composite, which keeps ``param_groups`` and ``state`` in step with them.

    Raises:
        TypeError: for a part that is not a torch optimizer (or is itself composite).
        ValueError: for no part, a bad part name, or a parameter in two parts.
    """

    def __init__(self, parts: Mapping[str, Optimizer]) -> None:
        torch._C._log_api_usage_once("python.optimizer")
        parts = dict(parts)
        if not parts:
            raise ValueError("a composite optimizer needs at least one part")
        owners: dict[torch.Tensor, str] = {}
        for name, part in parts.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"a part name must be a non-empty string without '/', got {name!r}")
            if not isinstance(part, Optimizer) or isinstance(part, CompositeOptimizer):
                raise TypeError(f"part {name!r} must be a torch optimizer (not a composite), got {type(part).__name__}")
            for group in part.param_groups:
                for param in group["params"]:
                    if owners.setdefault(param, name) != name:
                        raise ValueError(
                            f"a parameter of shape {tuple(param.shape)} is in parts {owners[param]!r} "
                            f"and {name!r}; each parameter belongs to one part"
                        )
        self._setup(parts)

    def _setup(self, parts: dict[str, Optimizer]) -> None:
        set_up_without_groups(self)  # what Optimizer.__init__ sets up; the groups are the parts'.
        self.parts: dict[str, Optimizer] = parts
        self._owners: dict[torch.Tensor, str] = {}
        self.state = _PartsState(self)  # type: ignore[assignment]
        self._sync()
        composite = weakref.ref(self)

        def resync(_part: Optimizer) -> None:
            # Loading a part's state replaces its group dicts: the composite lists the new ones.
            alive = composite()
            if alive is not None:
                alive._sync()

        self._part_hooks = [part.register_load_state_dict_post_hook(resync) for part in parts.values()]

    def _sync(self) -> None:
        """List the parts' group dicts (tagged with their part) in ``param_groups``, in part order."""
        groups = []
        for name, part in self.parts.items():
            for index, group in enumerate(part.param_groups):
                group["part"] = name
                group.setdefault("name", f"{name}/{index}")  # schedulers match groups by unique names
                groups.append(group)
        self.param_groups[:] = groups
        self._owners = {param: group["part"] for group in groups for param in group["params"]}

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "parts": self.parts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "parts" not in state:
            raise ValueError("not the pickled state of a CompositeOptimizer: it has no 'parts'")
        self._setup(dict(state["parts"]))
        self.defaults.update(state.get("defaults", {}))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Evaluate ``closure`` once (if given), then step every part; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts.values():
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every part's parameters."""
        for part in self.parts.values():
            part.zero_grad(set_to_none=set_to_none)

    def train(self) -> CompositeOptimizer:
        """Put the parts that have a train mode (Schedule-Free optimizers) in it."""
        for part in self.parts.values():
            if has_train_eval_modes(part):
                part.train()
        return self

    def eval(self) -> CompositeOptimizer:
        """Put the parts that have an eval mode (Schedule-Free optimizers) in it."""
        for part in self.parts.values():
            if has_train_eval_modes(part):
                part.eval()
        return self

    def add_param_group(self, param_group: dict[str, Any], part: str | None = None) -> None:
        """Add ``param_group`` to the part named ``part`` (or ``param_group["part"]``).

        The group goes after that part's other groups. With one part, ``part`` may be left out.

        Raises:
            ValueError: for a missing or unknown part, or a parameter that another part holds.
        """
        name = part if part is not None else param_group.get("part")
        if name is None and len(self.parts) == 1:
            name = next(iter(self.parts))
        if name not in self.parts:
            what = "say which part takes the group" if name is None else f"unknown part {name!r}"
            raise ValueError(f"{what}: add_param_group(group, part=...) with one of {', '.join(self.parts)}")
        params = param_group["params"]
        param_group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
        for item in param_group["params"]:
            tensor = item[1] if isinstance(item, tuple) else item
            owner = self._owners.get(tensor)
            if owner is not None and owner != name:
                raise ValueError(f"a parameter of shape {tuple(tensor.shape)} is already in part {owner!r}")
        self.parts[name].add_param_group(param_group)
        self._sync()

    def state_dict(self) -> dict[str, Any]:
        """The parts' states in one dict of the layout of a torch optimizer's.

        Parameters are numbered in ``param_groups`` order across the parts, and
        each group keeps its ``"part"``; what a part's own state dict holds besides
        ``state`` and ``param_groups`` is kept under ``"parts"``.
        """
        for pre_hook in optimizer_hooks(self, "state_dict_pre"):
            pre_hook(self)
        state: dict[Any, Any] = {}
        groups: list[dict[str, Any]] = []
        extras: dict[str, dict[str, Any]] = {}
        offset = 0
        for name, part in self.parts.items():
            packed = part.state_dict()
            ids = dict.fromkeys(i for group in packed["param_groups"] for i in group["params"])
            renumber = {old: offset + index for index, old in enumerate(ids)}
            offset += len(renumber)
            other = {key: value for key, value in packed["state"].items() if key not in renumber}
            state.update({renumber[key]: value for key, value in packed["state"].items() if key in renumber})
            groups += [{**group, "params": [renumber[i] for i in group["params"]]} for group in packed["param_groups"]]
            extra = {key: value for key, value in packed.items() if key not in _PACKED}
            if other:
                extra["state"] = other
            if extra:
                extras[name] = extra
        state_dict: dict[str, Any] = {"state": state, "param_groups": groups}
        if extras:
            state_dict["parts"] = extras
        for post_hook in optimizer_hooks(self, "state_dict_post"):
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    @torch._disable_dynamo
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict` into every part.

        Raises:
            ValueError: when the state is not of this optimizer's layout (other parts,
                other groups, other group sizes); nothing is changed then.
        """
        state_dict = dict(state_dict)
        for pre_hook in optimizer_hooks(self, "load_state_dict_pre"):
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        saved = state_dict.get("param_groups")
        if not isinstance(saved, list) or not isinstance(state_dict.get("state"), Mapping):
            raise ValueError(f"not an optimizer state: expected 'state' and 'param_groups', got {sorted(state_dict)}")
        theirs, ours = _layout(saved), _layout(self.param_groups)
        if theirs != ours:
            raise ValueError(
                f"the state is of another layout and was not loaded: it has {_describe(theirs)}; "
                f"this optimizer has {_describe(ours)}"
            )
        extras = state_dict.get("parts") or {}
        before = {name: (part.state, part.param_groups) for name, part in self.parts.items()}
        start = 0
        try:
            for name, part in self.parts.items():
                count = len(part.param_groups)
                groups = [dict(group) for group in saved[start : start + count]]
                start += count
                ids = {i for group in groups for i in group["params"]}
                extra = dict(extras.get(name, {}))
                state = {key: value for key, value in state_dict["state"].items() if key in ids}
                state.update(extra.pop("state", {}))
                part.load_state_dict({"state": state, "param_groups": groups, **extra})
        except Exception:
            for name, (state, groups) in before.items():
                self.parts[name].state, self.parts[name].param_groups = state, groups
            self._sync()
            raise
        self._sync()
        for post_hook in optimizer_hooks(self, "load_state_dict_post"):
            post_hook(self)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for name, part in self.parts.items():
            body = repr(part).replace("\n", "\n    ")
            lines.append(f"  {name}: {body}")
        return "\n".join([*lines, ")"])
