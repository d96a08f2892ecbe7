"""FSDP2 (``fully_shard``): optimizers step DTensor-sharded parameters exactly as unsharded ones."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

from tests.integrations._common import (
    OPTIMIZERS,
    assert_same_params,
    data,
    full_params,
    rank_share,
    reference,
    tiny_model,
)
from tests.integrations._launch import run_ranks

pytestmark = pytest.mark.distributed

STEPS = 8  # RAdamScheduleFree skips its first steps (rectification), so more than 5


def fully_sharded_model(world_size: int) -> nn.Module:
    """The tiny model with each linear layer and the root sharded over all ranks."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = tiny_model()
    mesh = init_device_mesh("cpu", (world_size,))
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def _train_all_ranks_agree(model: nn.Module, optimizer: torch.optim.Optimizer, x: Any, y: Any) -> str | None:
    """Train ``STEPS`` steps; after each step the ranks agree whether any failed (so none waits for the other)."""
    error = None
    try:
        if hasattr(optimizer, "train"):
            optimizer.train()
    except Exception:
        error = traceback.format_exc(limit=-3)
    for _ in range(STEPS):
        if error is None:
            try:
                optimizer.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            except Exception:
                error = traceback.format_exc(limit=-3)
        failed = torch.tensor([error is not None], dtype=torch.int32)
        dist.all_reduce(failed, op=dist.ReduceOp.MAX)
        if failed.item():
            return error or "failed on another rank"
    if hasattr(optimizer, "eval"):
        optimizer.eval()
    return None


def sharded_runs(rank: int, world_size: int, workdir: Path, names: list[str]) -> dict[str, Any]:
    x, y = data()
    x, y = rank_share(x, rank, world_size), rank_share(y, rank, world_size)
    results: dict[str, Any] = {}
    for name in names:
        model = fully_sharded_model(world_size)
        assert all(type(p).__name__ == "DTensor" for p in model.parameters())
        optimizer = OPTIMIZERS[name](list(model.parameters()))
        error = _train_all_ranks_agree(model, optimizer, x, y)
        results[name] = error if error is not None else full_params(model)
    return results


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_ranks(
        "tests.integrations.test_fsdp:sharded_runs", tmp_path_factory.mktemp("fsdp"), names=list(OPTIMIZERS)
    )


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fully_sharded_run_equals_unsharded_run(sharded: list[dict[str, Any]], name: str) -> None:
    want = reference(name, STEPS)
    for rank_result in sharded:
        got = rank_result[name]
        assert not isinstance(got, str), f"{name} failed on DTensor parameters:\n{got}"
        assert_same_params(got, want, rtol=1e-5, atol=1e-6)
