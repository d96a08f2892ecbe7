r"""Schedule-Free training (Defazio et al., 2024, "The Road Less Scheduled"): modes, averaging, helpers.

Schedule-Free methods keep three sequences: the gradient point ``y``, the base
iterate ``z`` and the average ``x`` that is evaluated. With ``c_t`` the
averaging weight of step ``t``:

.. math::

    y_t &= (1 - \beta_1) z_t + \beta_1 x_t \\
    z_{t+1} &= z_t - \eta_t \, d_t \\
    x_{t+1} &= (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \qquad
    c_{t+1} = \frac{(t+1)^r \eta_{\max}^{p}}{\sum_{i \le t+1} i^r \eta_{\max,i}^{p}}

The parameters hold ``y`` in *train mode* and ``x`` in *eval mode*; the state
keeps ``z``. ``optimizer.train()`` and ``optimizer.eval()`` switch between
them; :func:`eval_mode` does it for a block; :func:`recompute_batchnorm_stats`
refreshes BatchNorm statistics at ``x``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from optforge.optimizers._common import CheckedStateLoading, StepPathChoice, as_real

__all__ = ["ScheduleFreeOptimizer", "eval_mode", "recompute_batchnorm_stats"]


class ScheduleFreeOptimizer(CheckedStateLoading, StepPathChoice, Optimizer):
    """Base of the Schedule-Free optimizers: train/eval modes and the averaging schedule.

    Each param group records its mode in ``group["train_mode"]`` (saved in the
    state dict), its step count in ``group["k"]`` and the learning rate the last
    step used (after warmup or rectification) in ``group["scheduled_lr"]``.
    """

    #: State key of the ``z`` sequence.
    z_key = "z"

    def _interpolation(self, group: dict[str, Any]) -> float:
        """The ``y = (1 - m) z + m x`` interpolation coefficient ``m`` of a group."""
        return group["betas"][0]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # A new group has no z yet, so its parameters are valid in either mode:
        # it joins the optimizer's current mode.
        if self.param_groups and "train_mode" not in param_group:
            param_group["train_mode"] = all(g["train_mode"] for g in self.param_groups)
        super().add_param_group(param_group)

    #: Per-group counters every Schedule-Free group starts with.
    COUNTERS: Mapping[str, Any] = MappingProxyType(
        {"k": 0, "train_mode": False, "weight_sum": 0.0, "lr_max": -1.0, "scheduled_lr": 0.0}
    )
    #: Flags that older checkpoints may lack, with the value they had then.
    FLAG_DEFAULTS: Mapping[str, Any] = MappingProxyType({"maximize": False, "foreach": None, "fused": None})

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in {**self.COUNTERS, **self.FLAG_DEFAULTS}.items():
                group.setdefault(key, value)

    @torch.no_grad()
    def _move(self, to_train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == to_train:
                continue
            m = self._interpolation(group)
            weight = 1 - m if to_train else 1 - 1 / m
            for p in group["params"]:
                z = self.state.get(p, {}).get(self.z_key)  # .get: no empty state for untouched params
                if z is not None:
                    p_real, z_real = as_real([p, z])
                    p_real.lerp_(z_real.to(p.device), weight)
            group["train_mode"] = to_train

    def train(self, mode: bool = True) -> ScheduleFreeOptimizer:
        """Switch the parameters to the gradient point ``y`` (``mode=False``: same as :meth:`eval`)."""
        self._move(bool(mode))
        return self

    def eval(self) -> ScheduleFreeOptimizer:
        """Switch the parameters to the average ``x``, the weights to evaluate and save."""
        self._move(False)
        return self

    @property
    def training(self) -> bool:
        """Whether every param group is in train mode."""
        return all(group["train_mode"] for group in self.param_groups)

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[ScheduleFreeOptimizer]:
        """Context manager: eval mode inside the block, the previous mode after it."""
        with eval_mode(self):
            yield self

    def scheduled_lrs(self) -> list[float]:
        """The learning rate each group's last step used (warmup or rectification applied)."""
        return [group["scheduled_lr"] for group in self.param_groups]

    def _check_train_mode(self) -> None:
        for index, group in enumerate(self.param_groups):
            if not group["train_mode"]:
                raise RuntimeError(
                    f"{type(self).__name__}.step() called while param group {index} is in eval mode; "
                    "call optimizer.train() before training steps (and optimizer.eval() before "
                    "evaluating or saving a checkpoint)"
                )

    @staticmethod
    def _advance(group: dict[str, Any], lr: float) -> float:
        """Record the step's lr, update the running maximum and weight sum; return ``c``."""
        k = group["k"]
        group["scheduled_lr"] = lr
        lr_max = group["lr_max"] = max(lr, group["lr_max"])
        weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        return weight / weight_sum if weight_sum != 0 else 0.0

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update (train mode only); ``closure`` re-evaluates the model and returns the loss."""
        self._check_train_mode()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
            group["k"] += 1
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError


def _groups_in_train_mode(optimizer: Any) -> list[bool]:
    return [bool(group.get("train_mode", getattr(optimizer, "train_mode", False))) for group in optimizer.param_groups]


@contextlib.contextmanager
def eval_mode(optimizer: Any) -> Iterator[Any]:
    """Run a block with a Schedule-Free optimizer in eval mode, then restore its mode.

    Works with any optimizer that has ``train()``/``eval()`` and records
    ``train_mode`` (optforge's and the ``schedulefree`` package's).

    Example:
        >>> import torch
        >>> from optforge.optimizers import SGDScheduleFree, eval_mode
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = SGDScheduleFree(model.parameters(), lr=0.1)
        >>> _ = opt.train()
        >>> model(torch.ones(1, 2)).sum().backward()
        >>> opt.step()
        >>> with eval_mode(opt):
        ...     print(opt.training)
        False
        >>> opt.training
        True
    """
    was_training = any(_groups_in_train_mode(optimizer))
    optimizer.eval()
    try:
        yield optimizer
    finally:
        if was_training:
            optimizer.train()


@torch.no_grad()
def recompute_batchnorm_stats(
    model: nn.Module,
    batches: Iterable[Any],
    optimizer: Any | None = None,
    *,
    num_batches: int | None = 50,
    forward: Callable[[nn.Module, Any], Any] | None = None,
) -> int:
    """Recompute BatchNorm running statistics at the averaged weights ``x``.

    Schedule-Free trains at ``y`` but evaluates at ``x``, so statistics gathered
    during training do not match the evaluated weights. This puts ``optimizer``
    (if given) in eval mode and leaves it there, resets every BatchNorm layer,
    and averages statistics over up to ``num_batches`` batches (the model runs in
    train mode, without gradients; its own mode is restored).

    Args:
        model: The model.
        batches: An iterable of inputs (or of ``(inputs, targets)``; only the
            first element is fed, unless ``forward`` is given).
        optimizer: A Schedule-Free optimizer, switched to eval mode first.
        num_batches: At most this many batches (``None``: all of them).
        forward: ``forward(model, batch)`` to run one batch in a custom way.

    Returns:
        The number of batches used.

    Example:
        >>> import torch
        >>> from optforge.optimizers import AdamWScheduleFree, recompute_batchnorm_stats
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> opt = AdamWScheduleFree(model.parameters(), lr=1e-2)
        >>> data = [torch.randn(8, 3) for _ in range(5)]
        >>> recompute_batchnorm_stats(model, data, opt)
        5
        >>> opt.training
        False
    """
    if optimizer is not None:
        optimizer.eval()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = {m: m.momentum for m in norms}
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    used = 0
    try:
        for batch in batches:
            if num_batches is not None and used >= num_batches:
                break
            if forward is not None:
                forward(model, batch)
            else:
                model(batch[0] if isinstance(batch, list | tuple) else batch)
            used += 1
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        model.train(was_training)
    return used
