"""Every piece of torch's private API optforge reads (``optforge.torch_internals``) is still there.

When one of these fails after a torch upgrade, the helper it names needs a new way in;
nothing else in optforge reaches into torch's private attributes.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from optforge import torch_internals
from optforge.torch_internals import clear_pending_grad_scale, pending_grad_scale, shard_offset
from tests.integrations._launch import run_ranks


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)


def test_the_hook_tables_are_the_ones_the_public_registration_fills() -> None:
    optimizer = _optimizer()
    calls = []
    registrations = {
        "state_dict_pre": optimizer.register_state_dict_pre_hook,
        "state_dict_post": optimizer.register_state_dict_post_hook,
        "load_state_dict_pre": optimizer.register_load_state_dict_pre_hook,
        "load_state_dict_post": optimizer.register_load_state_dict_post_hook,
    }
    assert set(registrations) == set(torch_internals.HOOK_TABLES)
    for kind, register in registrations.items():
        hook = lambda *args, kind=kind: calls.append(kind)  # noqa: E731
        register(hook)
        assert list(torch_internals.optimizer_hooks(optimizer, kind)) == [hook]


def test_setting_up_without_groups_gives_a_working_empty_optimizer() -> None:
    optimizer = torch.optim.Optimizer.__new__(torch.optim.SGD)
    torch_internals.set_up_without_groups(optimizer)
    assert optimizer.param_groups == []
    assert optimizer.state == {}
    assert optimizer._warned_capturable_if_run_uncaptured  # what Optimizer's capturable check reads
    assert "_warned_capturable_if_run_uncaptured" in inspect.getsource(torch.optim.Optimizer)
    handle = optimizer.register_step_pre_hook(lambda *args: None)  # the hook tables exist
    handle.remove()
    for kind in torch_internals.HOOK_TABLES:
        assert list(torch_internals.optimizer_hooks(optimizer, kind)) == []


def test_restoring_state_keeps_the_groups_and_the_bookkeeping() -> None:
    optimizer = _optimizer()
    state = optimizer.__getstate__()
    copy = torch.optim.Optimizer.__new__(torch.optim.SGD)
    torch_internals.restore_state(copy, state)
    assert copy.param_groups == optimizer.param_groups
    copy.register_load_state_dict_post_hook(lambda *args: None)


def test_the_unguarded_add_param_group_adds_a_group() -> None:
    plain = torch_internals.unguarded_add_param_group()
    assert plain is not None, "torch no longer wraps add_param_group: the helper may return None now"
    optimizer = _optimizer()
    plain(optimizer, {"params": [torch.nn.Parameter(torch.zeros(1))]})
    assert len(optimizer.param_groups) == 2


def test_lr_scheduler_step_with_an_epoch_reads_the_closed_form_method() -> None:
    assert torch_internals.CLOSED_FORM_METHOD in inspect.getsource(LRScheduler.step)


def test_grad_scaler_leaves_the_scale_on_a_fused_optimizer_and_none_once_unscaled() -> None:
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([param], lr=0.1, fused=True)
    seen = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(pending_grad_scale(opt)))
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    scaler.scale(param.sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
    scaler.scale(param.sum()).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    assert float(seen[0]) == 8.0
    assert seen[1] is None
    clear_pending_grad_scale(optimizer)
    assert pending_grad_scale(optimizer) is None


def shard_offsets(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    """``shard_offset`` of a 63 x 5 tensor placed three ways, and whether the local shards are where it says."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world_size,))
    whole = torch.arange(63.0 * 5).reshape(63, 5)
    out: dict[str, Any] = {}
    for name, placement in (("rows", Shard(0)), ("cols", Shard(1)), ("replicated", Replicate())):
        tensor = distribute_tensor(whole, mesh, [placement])
        offset = shard_offset(tensor)
        local = tensor.to_local()
        where = tuple(slice(start, start + size) for start, size in zip(offset, local.shape))
        out[name] = (offset, torch.equal(local, whole[where]))
    return out


def test_shard_offset_is_none_for_a_plain_tensor() -> None:
    assert shard_offset(torch.zeros(3, 2)) is None
    assert shard_offset(torch.nn.Parameter(torch.zeros(3))) is None


@pytest.mark.distributed
def test_shard_offset_is_where_each_rank_s_shard_starts(tmp_path: Path) -> None:
    ranks = run_ranks("tests.test_torch_internals:shard_offsets", tmp_path, world_size=2)
    # torch.chunk's split, as FSDP2 shards: 63 rows as 32 + 31, 5 columns as 3 + 2
    assert ranks[0] == {"rows": ((0, 0), True), "cols": ((0, 0), True), "replicated": ((0, 0), True)}
    assert ranks[1] == {"rows": ((32, 0), True), "cols": ((0, 3), True), "replicated": ((0, 0), True)}
