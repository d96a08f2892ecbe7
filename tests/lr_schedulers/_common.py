"""Helpers shared by the scheduler-by-name tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def make_optimizer(lr: float = 0.1, groups: int = 2) -> torch.optim.Optimizer:
    """SGD with momentum over ``groups`` one-parameter groups at lrs ``lr``, ``lr / 2``, ..."""
    torch.manual_seed(0)
    params = [{"params": [nn.Parameter(torch.ones(2))], "lr": lr / (i + 1)} for i in range(groups)]
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def lrs_of(optimizer: torch.optim.Optimizer) -> list[float]:
    return [float(group["lr"]) for group in optimizer.param_groups]


def run(
    optimizer: torch.optim.Optimizer, step: Callable[[int], Any], steps: int, *, start: int = 0
) -> list[list[float]]:
    """The lrs each of ``steps`` optimizer steps uses, calling ``step(k)`` after step ``k``."""
    out = []
    for k in range(start, start + steps):
        out.append(lrs_of(optimizer))
        optimizer.zero_grad()
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.full_like(p, 0.01)
        optimizer.step()
        step(k)
    return out


def metric_at(k: int) -> float:
    """A validation loss that improves, then plateaus, then improves again: plateaus trigger."""
    if k < 30:
        return 1.0 / (k + 1)
    if k < 90:
        return 1.0 / 31 + 0.001 * (k % 3)
    return 1.0 / (k - 58)


def fit_recording_lrs(
    tmp_path: Any, schedule: dict[str, Any], max_epochs: int, *, step_each_batch: bool = False, **trainer: Any
) -> list[float]:
    """Fit a one-layer Lightning module with SGD (lr 0.1) and ``schedule`` for ``max_epochs`` epochs of two
    batches, its ``val_loss`` never improving; the lr of every training step. With ``step_each_batch`` the
    module also steps its scheduler after each batch (a warmup per optimizer step)."""
    import pytest

    pl = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from optforge.integrations.lightning import configure_optimizers

    data = TensorDataset(torch.randn(16, 2), torch.randn(16, 1))
    seen: list[float] = []

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            seen.append(self.optimizers().param_groups[0]["lr"])
            return torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            if step_each_batch:
                self.lr_schedulers().step()

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_loss", torch.tensor(1.0))  # never improves: the plateau cuts the lr

        def configure_optimizers(self) -> dict[str, Any]:
            return configure_optimizers(self, {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": schedule})

        def train_dataloader(self) -> DataLoader:
            return DataLoader(data, batch_size=8)

        def val_dataloader(self) -> DataLoader:
            return DataLoader(data, batch_size=8)

    fit = pl.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **trainer,
    )
    fit.fit(Module())
    return seen
