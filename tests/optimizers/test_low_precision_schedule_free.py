"""Low-precision state of the Schedule-Free optimizers, stochastic rounding of bf16 parameters, default groups."""

from __future__ import annotations

import copy

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from optforge.optimizers import AdamW, AdamWScheduleFree, Lion, RAdamScheduleFree, SGDScheduleFree

SF_ADAM = [
    pytest.param(lambda p, **kw: AdamWScheduleFree(p, lr=1e-2, weight_decay=0.01, warmup_steps=2, **kw), id="adamw"),
    pytest.param(
        lambda p, **kw: RAdamScheduleFree(p, lr=1e-2, betas=(0.9, 0.9), silent_sgd_phase=False, **kw), id="radam"
    ),
]
PATHS = [pytest.param({"foreach": False}, id="eager"), pytest.param({"fused": True}, id="fused")]


def _params(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter((torch.randn(shape, generator=gen) * 0.1).to(dtype)) for shape in [(64, 300), (300,)]]


def _run(opt, params, steps):
    opt.train()
    for step in steps:
        gen = torch.Generator().manual_seed(100 + step)
        for p in params:
            p.grad = (torch.randn(p.shape, generator=gen) * 0.01).to(p.dtype)
        opt.step()


@pytest.mark.parametrize("cls", [Lion, AdamW, AdamWScheduleFree, RAdamScheduleFree, SGDScheduleFree])
def test_default_groups_hold_only_hyperparameters_and_draw_no_seed(cls):
    model = torch.nn.Linear(4, 3)
    torch.manual_seed(0)
    opt = cls([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}])
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))  # the generator was not touched
    for group in opt.param_groups:
        assert "seed" not in group
        assert "state_precision" not in group
    low = cls(model.parameters(), state_precision="bf16")
    assert low.param_groups[0]["state_precision"] == "bf16"
    assert "seed" in low.param_groups[0]


@pytest.mark.parametrize("flags", PATHS)
@pytest.mark.parametrize("make", SF_ADAM)
def test_schedule_free_8bit_state_size_and_closeness_to_fp32(make, flags):
    params = _params()
    exact = [torch.nn.Parameter(p.detach().clone()) for p in params]
    start = [p.detach().clone() for p in params]
    opt, ref = make(params, state_precision="8bit", seed=1, **flags), make(exact)
    _run(opt, params, range(20))
    _run(ref, exact, range(20))
    state = opt.state[params[0]]
    assert sorted(state) == ["exp_avg_sq_codes", "exp_avg_sq_scales", "z"]
    assert state["z"].dtype == torch.float32
    assert state["exp_avg_sq_codes"].dtype == torch.uint8
    big = sum(t.numel() * t.element_size() for t in state.values()) / params[0].numel()
    assert big <= 5.05
    assert opt.state[params[1]]["exp_avg_sq"].dtype == torch.float32  # one dimension: not quantized
    for p, q, p0 in zip(params, exact, start):  # the distance travelled agrees within a few percent
        assert ((p - q).norm() / (q - p0).norm()).item() < 0.03


@pytest.mark.parametrize("make", SF_ADAM)
def test_schedule_free_fused_kernel_agrees_with_the_eager_update(make):
    runs = []
    for flags in ({"foreach": False}, {"fused": True}):
        params = _params()
        opt = make(params, state_precision="8bit", seed=3, **flags)
        _run(opt, params, range(5))
        runs.append((params, opt))
    (a, opt_a), (b, opt_b) = runs
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    codes_a, codes_b = opt_a.state[a[0]]["exp_avg_sq_codes"], opt_b.state[b[0]]["exp_avg_sq_codes"]
    assert (codes_a.int() - codes_b.int()).abs().max() <= 1


@pytest.mark.parametrize("precision", ["bf16", "8bit"])
@pytest.mark.parametrize("make", SF_ADAM)
def test_schedule_free_state_dict_round_trip_and_conversion(make, precision):
    params = _params()
    opt = make(params, state_precision=precision, fused=True)
    _run(opt, params, range(3))
    saved = copy.deepcopy(opt.state_dict())
    start = [p.detach().clone() for p in params]
    _run(opt, params, range(3, 6))
    again = [torch.nn.Parameter(t.clone()) for t in start]
    opt2 = make(again, state_precision=precision, fused=True)
    opt2.load_state_dict(saved)
    _run(opt2, again, range(3, 6))
    assert all(torch.equal(x, y) for x, y in zip(params, again))
    full = make([torch.nn.Parameter(t.clone()) for t in start])  # fp32: the codes are decoded on loading
    full.load_state_dict(saved)
    assert sorted(full.state[full.param_groups[0]["params"][0]]) == ["exp_avg_sq", "z"]
    assert "seed" not in full.param_groups[0]
    assert "state_precision" not in full.param_groups[0]


def test_registry_entries_build_schedule_free_8bit():
    model = torch.nn.Linear(64, 64)
    for name in ("AdamWScheduleFree8bit", "RAdamScheduleFree8bit"):
        opt = optforge.build_optimizer(model, {"name": name, "lr": 1e-3})
        assert opt.param_groups[0]["state_precision"] == "8bit"


def test_sgd_schedule_free_refuses_8bit_and_keeps_z_in_bf16():
    model = torch.nn.Linear(4, 3)
    with pytest.raises(ConfigError, match="z, the iterate itself: it cannot be held in 8 bits"):
        SGDScheduleFree(model.parameters(), state_precision="8bit")
    with pytest.raises(ConfigError, match="cannot be held in 8 bits"):
        SGDScheduleFree([{"params": model.parameters(), "state_precision": "8bit"}])
    params = _params()
    opt = SGDScheduleFree(params, lr=0.1, state_precision="bf16", seed=0)
    _run(opt, params, range(3))
    assert opt.state[params[0]]["z"].dtype == torch.bfloat16
    saved = copy.deepcopy(opt.state_dict())
    fresh = SGDScheduleFree([torch.nn.Parameter(p.detach().clone()) for p in params], lr=0.1, state_precision="bf16")
    fresh.load_state_dict(saved)
    assert fresh.state[fresh.param_groups[0]["params"][0]]["z"].dtype == torch.bfloat16


def _tiny_updates(dtype, **kwargs):
    torch.manual_seed(7)
    p = torch.nn.Parameter(torch.ones(50_000, dtype=dtype))
    opt = SGDScheduleFree([p], lr=1e-4, momentum=0.9, **kwargs)
    opt.train()
    for _ in range(20):
        p.grad = torch.ones_like(p)
        opt.step()
    return p.detach().float(), opt.state[p]["z"].float()


def test_stochastic_rounding_of_bf16_parameters_is_unbiased_and_reproducible():
    y_exact, z_exact = _tiny_updates(torch.float32)
    y_nearest, _ = _tiny_updates(torch.bfloat16)  # rounded to nearest, each update is lost
    y, z = _tiny_updates(torch.bfloat16, stochastic_rounding=True, state_precision="bf16")
    assert torch.equal(y_nearest, torch.ones_like(y_nearest))
    # an update is 1/40 to 1/80 of a bfloat16 ulp (2**-7 below 1); the mean still follows the exact one
    assert abs(y.mean().item() - y_exact.mean().item()) < 5e-5
    assert abs(z.mean().item() - z_exact.mean().item()) < 5e-5
    y_again, z_again = _tiny_updates(torch.bfloat16, stochastic_rounding=True, state_precision="bf16")
    assert torch.equal(y, y_again)
    assert torch.equal(z, z_again)


def test_explain_reports_the_state_bytes_per_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.LayerNorm(512))
    table = optforge.explain(model, {"name": "AdamW8bit", "lr": 1e-3})
    assert table.state_bytes == "2.07 B/param (8bit)"  # 2 + 2/256 * 4 codes and scales, 1-D tensors at 8 B
    assert "optimizer state: 2.07 B/param (8bit)" in str(table)
    assert optforge.explain(model, {"name": "Lion", "lr": 1e-4}).state_bytes == "4.00 B/param (fp32)"
    assert optforge.explain(model, {"name": "SGD", "lr": 0.1}).state_bytes == ""


def test_char_lm_trains_as_well_with_8bit_and_bf16_state():
    from benchmarks.train_char_lm import Setup, runs, stdlib_text, train

    setup = Setup(width=32, layers=1, heads=2, context=32, batch=16, steps=60, chars=60_000, eval_every=60)
    text = stdlib_text(setup.chars)
    makes = runs()
    base = train(makes["AdamW fp32"], setup, text)[-1]
    assert base < 3.3  # it learned something (ln 128 = 4.85 at the start)
    for name in ("AdamW 8bit", "AdamW bf16"):
        assert abs(train(makes[name], setup, text)[-1] - base) / base < 0.02, name
