"""Make any optimizer Schedule-Free: the base optimizer steps ``z``, the wrapper averages.

Numerically identical to ``schedulefree.ScheduleFreeWrapper`` 1.4.1 given the
same keyword arguments, but a real ``torch.optim.Optimizer``: its state dict
(base state, ``z`` and the mode) round-trips, it pickles and deep-copies, takes
step hooks, and every param group checks its mode. Every argument after the base
optimizer is keyword-only: schedulefree's positional order is
``(base, weight_decay_at_y, momentum, weight_lr_power, r)``, so a positional call
written for one would silently swap settings in the other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from optforge.optimizers._common import CheckedStateLoading, as_real, check_grad, check_range
from optforge.optimizers._fused import StepPath
from optforge.optimizers.schedule_free import ScheduleFreeOptimizer
from optforge.ranges import OPEN_UNIT
from optforge.state_check import check_state_dict
from optforge.torch_internals import restore_state

__all__ = ["ScheduleFreeWrapper"]


def _swap(a: Tensor, b: Tensor) -> None:
    """Exchange the contents of two tensors of one shape, without a temporary where possible."""
    if a.is_contiguous() and b.is_contiguous():
        a_bytes, b_bytes = a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8)
        a_bytes.bitwise_xor_(b_bytes)
        b_bytes.bitwise_xor_(a_bytes)
        a_bytes.bitwise_xor_(b_bytes)
    else:
        tmp = a.clone()
        a.copy_(b)
        b.copy_(tmp)


class ScheduleFreeWrapper(ScheduleFreeOptimizer):
    """Wrap a base optimizer so that it runs Schedule-Free.

    The wrapper shares the base optimizer's param groups and state. Its settings
    live in each group (``sf_momentum``, ``sf_weight_decay_at_y``, ``sf_r``,
    ``sf_weight_lr_power``) with its counters (``sf_k``, ``sf_lr_max``,
    ``sf_weight_sum``), and ``z`` in each parameter's state as ``sf_z``. The
    averaging uses ``group["lr"]`` (times ``group["d"]`` when the base
    optimizer estimates a step size ``d``).

    Args:
        base: The optimizer to wrap; drop its momentum, the wrapper supplies it.
            The arguments after it are keyword-only.
        momentum: Interpolation ``y = (1 - momentum) z + momentum x``, in (0, 1).
        weight_decay_at_y: Decay computed at ``y`` and multiplied by lr, >= 0
            (decay set on ``base`` is computed at ``z`` instead).
        r: Polynomial weighting of the average, >= 0.
        weight_lr_power: Average weights proportional to ``lr_max ** weight_lr_power``, >= 0.

    Example:
        >>> import torch
        >>> from optforge.optimizers import ScheduleFreeWrapper
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = ScheduleFreeWrapper(torch.optim.RMSprop(model.parameters(), lr=1e-3), momentum=0.9)
        >>> _ = opt.train()
        >>> model(torch.ones(2, 3)).sum().backward()
        >>> opt.step()
        >>> sorted(opt.state[model.weight])
        ['sf_z', 'square_avg', 'step']
    """

    z_key = "sf_z"

    def __init__(
        self,
        base: Optimizer,
        *,
        momentum: float = 0.9,
        weight_decay_at_y: float = 0.0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ) -> None:
        if not isinstance(base, Optimizer):
            raise TypeError(f"ScheduleFreeWrapper wraps a torch.optim.Optimizer, got {type(base).__name__}")
        check_range(momentum, "momentum", OPEN_UNIT)
        check_range(weight_decay_at_y, "weight_decay_at_y")
        check_range(r, "r")
        check_range(weight_lr_power, "weight_lr_power")
        self.base = base
        defaults = {
            "sf_momentum": momentum,
            "sf_weight_decay_at_y": weight_decay_at_y,
            "sf_r": r,
            "sf_weight_lr_power": weight_lr_power,
            "sf_k": 0,
            "sf_lr_max": 0.0,
            "sf_weight_sum": 0.0,
            "train_mode": False,
            "scheduled_lr": 0.0,
        }
        self._sharing = False
        super().__init__(base.param_groups, defaults)
        self._share()

    def _share(self) -> None:
        # One list of groups and one state for both: the base steps what the wrapper prepared.
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self._sharing = True
        if isinstance(self.base, CheckedStateLoading):  # its state holds z too: its loads must take it
            self.base._wrapper_state = (self.z_key,)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["base"] = self.base
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_state(self, state)
        if "base" in state:
            self._share()

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["sf_momentum"]

    @property
    def step_path(self) -> StepPath:
        """The averaging runs per tensor; the base optimizer picks its own implementation."""
        return StepPath("single", f"the averaging loops over tensors; {type(self.base).__name__} steps z its own way")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not self._sharing:  # groups of ``base`` taken over by __init__
            Optimizer.add_param_group(self, param_group)
            return
        if self.param_groups and "train_mode" not in param_group:
            param_group["train_mode"] = self.training
        for key, value in self.defaults.items():
            param_group.setdefault(key, value)
        self.base.add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load base state, ``z``, counters and modes (the base optimizer's rules apply).

        A group may lack the wrapper's own entries (they take their defaults),
        not its ``lr``.

        Raises:
            ConfigError: for a state of another layout, a group without ``lr``
                or a ``z`` of another shape, before anything is loaded.
        """
        # the base optimizer keeps entries of its own, and checks them itself if it is optforge's
        check_state_dict(self, state_dict, (), exact=False, group_keys=self.GROUP_KEYS, optional=(self.z_key,))
        self.base.load_state_dict(state_dict)
        self._share()
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def scheduled_lrs(self) -> list[float]:
        """The lr each group's last step averaged with (``group["lr"]``, times ``d`` if present)."""
        return [group["scheduled_lr"] for group in self.param_groups]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Step ``z`` with the base optimizer and update the average; train mode only."""
        self._check_train_mode()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # z of parameters seen for the first time joins their state after the base
        # step, so that the base optimizer still finds an empty state to initialize.
        new_zs: dict[Tensor, Tensor] = {}
        for group in self.param_groups:
            momentum, decay, lr = group["sf_momentum"], group["sf_weight_decay_at_y"], float(group["lr"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                check_grad(type(self).__name__, p.grad)
                z_full = self.state[p].get(self.z_key) if p in self.state else None
                if z_full is None:
                    z_full = new_zs[p] = torch.clone(p, memory_format=torch.preserve_format).detach()
                y, z = as_real([p, z_full])
                if decay != 0.0:
                    z.sub_(y, alpha=lr * decay)
                    y.sub_(y, alpha=lr * decay * (1 - momentum))
                y.lerp_(z, 1 - 1 / momentum)  # y -> x
                _swap(z, y)  # p holds z for the base step, the state holds x
        self.base.step()
        for p, z_full in new_zs.items():
            self.state[p][self.z_key] = z_full
        for group in self.param_groups:
            k = group["sf_k"]
            lr = float(group["lr"]) * float(group.get("d", 1.0))
            group["scheduled_lr"] = lr
            lr_max = group["sf_lr_max"] = max(lr, group["sf_lr_max"])
            weight = ((k + 1) ** group["sf_r"]) * (lr_max ** group["sf_weight_lr_power"])
            weight_sum = group["sf_weight_sum"] = group["sf_weight_sum"] + weight
            ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                x, z = as_real([p, self.state[p][self.z_key]])
                _swap(z, x)  # back: p holds x, the state holds z
                x.lerp_(z, ckp1)
                x.lerp_(z, 1 - group["sf_momentum"])  # x -> y
            group["sf_k"] = k + 1
        return loss
