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


AROUND = {
    "optimizer": {"name": "AdamW", "lr": 0.01},
    "clip_grad": {"max_norm": 0.05},
    "ema": {"decay": 0.9},
    "skip_nonfinite": True,
}


def sharded_around_runs(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    """Train with clip_grad, ema and skip_nonfinite over the sharded model; its weights and its EMA, gathered."""
    import optforge

    x, y = data()
    x, y = rank_share(x, rank, world_size), rank_share(y, rank, world_size)
    model = fully_sharded_model(world_size)
    optimizer, _ = optforge.build(model, AROUND)
    norms = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        norms.append(float(optforge.step_stats(optimizer).grad_norm))
    ema = optforge.ema_model(optimizer)  # tensors sharded as the parameters: FSDP2 models cannot be copied
    assert [type(tensor).__name__ for tensor in ema] == ["DTensor"] * len(ema)
    names = {id(param): name.removeprefix("module.") for name, param in model.named_parameters()}
    stepped = [param for group in optimizer.param_groups for param in group["params"]]  # the order of the average
    averaged = {names[id(param)]: tensor.full_tensor() for param, tensor in zip(stepped, ema, strict=True)}
    return {"weights": full_params(model), "ema": averaged, "norms": norms}


def test_clipping_and_the_ema_of_a_sharded_model_equal_the_unsharded_run(tmp_path: Path) -> None:
    import optforge

    model = tiny_model()
    optimizer, _ = optforge.build(model, AROUND)
    x, y = data()
    norms = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        norms.append(float(optforge.step_stats(optimizer).grad_norm))
    assert max(norms) > AROUND["clip_grad"]["max_norm"]  # the clipping acts
    want = {"weights": full_params(model), "ema": full_params(optforge.ema_model(optimizer))}
    for got in run_ranks("tests.integrations.test_fsdp:sharded_around_runs", tmp_path):
        assert got["norms"] == pytest.approx(norms, rel=1e-5)
        assert_same_params(got["weights"], want["weights"], rtol=1e-5, atol=1e-6)
        for key, tensor in want["ema"].items():
            torch.testing.assert_close(got["ema"][key], tensor, rtol=1e-5, atol=1e-6)
