"""8-bit and bfloat16 optimizer state under FSDP2: the same on 1 and 2 ranks, through DCP, and on resume.

Every rank trains on the whole batch, so the reduce-scattered gradient (the mean of equal
gradients) is the one-rank gradient exactly: any difference between the runs would come
from the optimizer's state, its codes or its random numbers.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import optforge
from optforge.distributed import load_checkpoint, save_checkpoint, set_schedule_free_mode
from optforge.optimizers.low_precision import is_quantized
from tests.integrations._launch import run_ranks

BEFORE, AFTER = 4, 4  # steps before and after the checkpoint (RAdam steps the weights from step 5 on)
SCHEDULE_FREE = {"warmup_steps": 2, "weight_decay": 0.01}
# "-fused": the C kernels, on each rank's shard (the default is the eager update).
CONFIGS: dict[str, dict[str, Any]] = {
    "AdamW8bit": {"name": "AdamW8bit", "lr": 0.01, "weight_decay": 0.1},
    "AdamW8bit-fused": {"name": "AdamW8bit", "lr": 0.01, "weight_decay": 0.1, "fused": True},
    "AdamW-bf16-fused": {"name": "AdamW8bit", "lr": 0.01, "state_precision": "bf16", "fused": True},
    "Lion8bit": {"name": "Lion8bit", "lr": 3e-3, "weight_decay": 0.1},
    "Lion8bit-fused": {"name": "Lion8bit", "lr": 3e-3, "weight_decay": 0.1, "fused": True},
    "AdamWScheduleFree8bit-fused": {"name": "AdamWScheduleFree8bit", "lr": 0.01, "fused": True, **SCHEDULE_FREE},
    "RAdamScheduleFree8bit": {"name": "RAdamScheduleFree8bit", "lr": 0.01, "weight_decay": 0.01},
}
EIGHT_BIT = [name for name in CONFIGS if "8bit" in name]


def model() -> nn.Module:
    """Two weights the 8-bit path quantizes (63 rows: a 2-way shard is uneven; 300 columns: 2 blocks a row)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(300, 63), nn.Tanh(), nn.Linear(63, 128), nn.Tanh(), nn.Linear(128, 1))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 300, generator=gen)
    return x, x[:, :1].sin()


def build(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    return optforge.build_optimizer(params, {**CONFIGS[name], "seed": 1234})


def train(net: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    x, y = data()
    set_schedule_free_mode(optimizer, True)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def whole(tensor: Any) -> Any:
    """A tensor gathered whole when it is a DTensor, detached and cloned; anything else as it is."""
    if not isinstance(tensor, torch.Tensor):
        return tensor
    return (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().clone()


def snapshot(net: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Parameters and per-parameter state, gathered whole, by parameter name."""
    names = {id(p): name for name, p in net.named_parameters()}
    return {
        "params": {name: whole(p) for name, p in net.named_parameters()},
        "state": {names[id(p)]: {k: whole(v) for k, v in s.items()} for p, s in optimizer.state.items()},
    }


def sharded_model(world_size: int) -> nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    net = model()
    mesh = init_device_mesh("cpu", (world_size,))
    for layer in net:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    return fully_shard(net, mesh=mesh)


def sharded_runs(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    """Per optimizer: the state after ``BEFORE`` steps, then after a DCP round trip into a fresh run, then
    ``AFTER`` more steps of the loaded run."""
    results: dict[str, Any] = {}
    for name in CONFIGS:
        net = sharded_model(world_size)
        optimizer = build(name, list(net.parameters()))
        train(net, optimizer, BEFORE)
        result = {"saved": snapshot(net, optimizer), "path": optimizer.step_path.name}
        save_checkpoint(workdir / name, net, optimizer, eval_mode=False)  # as trained: no rounding of eval
        torch.manual_seed(7)
        fresh = sharded_model(world_size)
        with torch.no_grad():
            for param in fresh.parameters():
                param.normal_()
        fresh_optimizer = build(name, list(fresh.parameters()))
        load_checkpoint(workdir / name, fresh, fresh_optimizer)
        result["loaded"] = snapshot(fresh, fresh_optimizer)
        result["local_codes"] = {
            type(value).__name__ for s in fresh_optimizer.state.values() for key, value in s.items() if "codes" in key
        }
        train(fresh, fresh_optimizer, AFTER)
        result["resumed"] = snapshot(fresh, fresh_optimizer)
        results[name] = result
    results["column_sharded"] = column_sharded(world_size)
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[dict[str, Any]]]:
    return {
        world_size: run_ranks(
            "tests.integrations.test_fsdp_low_precision:sharded_runs",
            tmp_path_factory.mktemp(f"fsdp{world_size}"),
            world_size=world_size,
        )
        for world_size in (1, 2)
    }


def assert_identical(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["params"].keys() == want["params"].keys()
    for key, tensor in want["params"].items():
        torch.testing.assert_close(got["params"][key], tensor, rtol=0, atol=0, msg=lambda m, k=key: f"{k}: {m}")
    assert got["state"].keys() == want["state"].keys()
    for param, entry in want["state"].items():
        assert got["state"][param].keys() == entry.keys(), param
        for key, value in entry.items():
            assert torch.equal(got["state"][param][key], value), f"{param}.{key}"
            assert got["state"][param][key].dtype == value.dtype, f"{param}.{key}"


def test_the_model_has_quantized_and_full_precision_weights() -> None:
    params = dict(model().named_parameters())
    assert [name for name, p in params.items() if is_quantized(p, "8bit")] == ["0.weight", "2.weight"]


@pytest.mark.distributed
@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_ranks_step_and_store_the_state_of_one_bit_for_bit(runs: dict[int, Any], name: str) -> None:
    one = runs[1][0][name]
    assert one["path"] == ("fused" if name.endswith("-fused") else "single")
    state = one["saved"]["state"]
    if "8bit" in name:
        assert {k for k in state["0.weight"] if k.endswith("_codes")}, "the 8-bit path did not run"
        assert not any(k.endswith("_codes") for k in state["4.weight"])
    else:
        assert state["0.weight"]["exp_avg"].dtype == torch.bfloat16
    initial = dict(model().named_parameters())
    assert all(not torch.equal(one["resumed"]["params"][k], p.detach()) for k, p in initial.items())
    for rank_result in runs[2]:
        for stage in ("saved", "loaded", "resumed"):
            assert_identical(rank_result[name][stage], one[stage])


@pytest.mark.distributed
@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_dcp_round_trip_brings_the_codes_and_scales_back_exactly(runs: dict[int, Any], name: str) -> None:
    for world_size, results in runs.items():
        for rank_result in results:
            result = rank_result[name]
            assert_identical(result["loaded"], result["saved"])
            if "8bit" in name:
                assert result["local_codes"] == {"DTensor"}, world_size  # the loaded state stays sharded


@pytest.mark.distributed
def test_a_low_precision_group_refuses_parameters_sharded_on_another_dimension(runs: dict[int, Any]) -> None:
    for results in runs.values():
        for rank_result in results:
            assert "state_precision: 8bit state is kept in blocks of rows" in rank_result["column_sharded"]
            assert "Shard(dim=1)" in rank_result["column_sharded"]


def column_sharded(world_size: int) -> str:
    """The error of an 8-bit optimizer over a parameter sharded on dim 1."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world_size,))
    param = nn.Parameter(distribute_tensor(torch.zeros(64, 128), mesh, [Shard(1)]))
    with pytest.raises(optforge.ConfigError) as error:
        build("AdamW8bit", [param])
    return str(error.value)


# ---------------------------------------------------------------- resume in one process
def _run(name: str, steps: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    net = model()
    optimizer = build(name, list(net.parameters()))
    train(net, optimizer, steps)
    return net, optimizer


@pytest.mark.parametrize("name", EIGHT_BIT)
def test_training_resumed_from_a_saved_state_dict_equals_the_uninterrupted_run(name: str) -> None:
    net, optimizer = _run(name, BEFORE + AFTER)
    want = snapshot(net, optimizer)

    net, optimizer = _run(name, BEFORE)
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    del net, optimizer
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    torch.manual_seed(99)  # a fresh optimizer draws another seed: the saved one must win
    fresh = model()
    fresh.load_state_dict(saved["model"])
    fresh_optimizer = optforge.build_optimizer(list(fresh.parameters()), CONFIGS[name])
    fresh_optimizer.load_state_dict(saved["optimizer"])
    assert "exp_avg_sq_codes" in fresh_optimizer.state[fresh[0].weight] or name.startswith("Lion")
    train(fresh, fresh_optimizer, AFTER)
    assert_identical(snapshot(fresh, fresh_optimizer), want)
