"""Low-precision optimizer state: the block-wise codes, stochastic rounding, and AdamW / Lion with them."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import optforge
from optforge.errors import ConfigError
from optforge.optimizers import AdamW, Lion
from optforge.optimizers.block_kernels import kernels
from optforge.optimizers.low_precision import (
    BLOCK,
    bf16_stochastic,
    block_layout,
    dequantize_signed,
    dequantize_sqrt,
    is_quantized,
    noise,
    quantize_signed,
    quantize_sqrt,
)

PATHS = [pytest.param({"foreach": False}, id="eager"), pytest.param({"fused": True}, id="fused")]


def _per_element(scales: torch.Tensor, cols: int) -> torch.Tensor:
    return scales.repeat_interleave(BLOCK, dim=1)[:, :cols]


@settings(max_examples=20, deadline=None)
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 700),
    log_scale=st.floats(-30, 30),
    seed=st.integers(0, 2**31),
    stochastic=st.booleans(),
)
def test_signed_code_error_per_block(rows, cols, log_scale, seed, stochastic):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=gen) * 2.0**log_scale
    random = noise(seed, 0, x.numel()) if stochastic else None
    codes, scales = quantize_signed(x, random)
    assert codes.dtype == torch.int8
    assert scales.shape == (rows, -(-cols // BLOCK))
    error = (dequantize_signed(codes, scales) - x).abs()
    limit = _per_element(scales, cols) * ((1 / 127) if stochastic else (0.5 / 127)) * (1 + 1e-5)
    assert bool((error <= limit + 1e-45).all())


@settings(max_examples=20, deadline=None)
@given(
    cols=st.integers(1, 700),
    spread=st.floats(0, 40),
    seed=st.integers(0, 2**31),
    stochastic=st.booleans(),
)
def test_sqrt_code_relative_error_per_block(cols, spread, seed, stochastic):
    gen = torch.Generator().manual_seed(seed)
    w = torch.exp2(-spread * torch.rand(2, cols, generator=gen))
    random = noise(seed, 0, w.numel()) if stochastic else None
    codes, scales = quantize_sqrt(w, random)
    decoded = dequantize_sqrt(codes, scales)
    top = _per_element(scales, cols)
    normal = w >= top * 2.0**-15 * (32 / 31) * (1 + 1e-6)  # the code's float range
    relative = ((decoded - w).abs() / w)[normal]
    assert bool((relative <= (1 / 16 if stochastic else 1 / 32) * (1 + 1e-4)).all())
    absolute = (decoded - w).abs()[~normal]
    assert bool((absolute <= top[~normal] * 2.0**-19 * (32 / 31) * (1 + 1e-4)).all())


def test_zeros_denormals_and_non_finite_blocks():
    x = torch.zeros(2, 3 * BLOCK)
    x[0, BLOCK : 2 * BLOCK] = 1e-40  # denormals: a block of its own scale
    x[1, 5] = float("nan")
    x[1, BLOCK + 1] = float("inf")
    for quantize, dequantize in ((quantize_signed, dequantize_signed), (quantize_sqrt, dequantize_sqrt)):
        codes, scales = quantize(x.abs() if quantize is quantize_sqrt else x)
        out = dequantize(codes, scales)
        assert torch.equal(out[0, :BLOCK], torch.zeros(BLOCK))  # zeros stay exactly zero
        assert torch.allclose(out[0, BLOCK : 2 * BLOCK], torch.full((BLOCK,), 1e-40), rtol=1 / 16, atol=0)
        assert out[1, :BLOCK].isnan().all()
        assert out[1, BLOCK : 2 * BLOCK].isnan().all()
        assert torch.equal(out[1, 2 * BLOCK :], torch.zeros(BLOCK))  # its neighbours are untouched


def test_stochastic_rounding_is_unbiased_and_reproducible():
    value = torch.tensor(0.3337)
    x = torch.full((1, 200_000), value.item())
    x[0, 0] = 1.0  # the block maximum, so the other elements fall between codes
    codes, scales = quantize_signed(x, noise(11, 0, x.numel()))
    mean = dequantize_signed(codes, scales)[0, 1:].mean()
    ulp = 1 / 127
    assert abs(mean.item() - value.item()) < 1e-2 * ulp  # sampling error of 2e5 draws, not bias
    again, _ = quantize_signed(x, noise(11, 0, x.numel()))
    assert torch.equal(codes, again)
    # many roundings of one value: mean within 1e-3 ulp
    y = torch.full((400_000,), 1.0 + 2.0**-10)
    rounded = bf16_stochastic(y, noise(5, 0, y.numel())).float()
    assert abs(rounded.mean().item() - y[0].item()) < 1e-3 * 2.0**-7 * 8
    assert torch.equal(rounded, bf16_stochastic(y, noise(5, 0, y.numel())).float())


def test_size_rule_reads_the_whole_shape():
    assert is_quantized(torch.zeros(1000, 1001), "8bit")
    assert block_layout((1000, 1001)) == (1000, 1001, 4)  # last block of each row is 233 elements
    assert not is_quantized(torch.zeros(100_000), "8bit")  # one dimension: full precision
    assert not is_quantized(torch.zeros(60, 60), "8bit")  # under 4,096 elements
    assert not is_quantized(torch.zeros(1000, 1001), "bf16")


def _params(shapes=((64, 300), (1000, 33), (7,), (3, 5)), dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]


def _grads(params, step):
    gen = torch.Generator().manual_seed(1000 + step)
    for p in params:
        p.grad = (0.5 * p.detach().float() + torch.randn(p.shape, generator=gen)).to(p.dtype)


def _run(opt, params, steps):
    for step in steps:
        _grads(params, step)
        opt.step()


@pytest.mark.parametrize("flags", [{"foreach": False}, {"foreach": True}, {"fused": True}])
def test_fp32_adamw_is_torch_adamw(flags):
    a, b = _params(), _params()
    ours = AdamW(a, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1, **flags)
    theirs = torch.optim.AdamW(b, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1, **flags)
    _run(ours, a, range(5))
    _run(theirs, b, range(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(torch.equal(ours.state[x]["exp_avg_sq"], theirs.state[y]["exp_avg_sq"]) for x, y in zip(a, b))


@pytest.mark.parametrize("flags", PATHS)
@pytest.mark.parametrize("precision", ["bf16", "8bit"])
@pytest.mark.parametrize("cls", [AdamW, Lion])
def test_first_step_from_zero_state_is_the_fp32_step(cls, precision, flags):
    a, b = _params(), _params()
    low = cls(a, lr=1e-2, weight_decay=0.1, state_precision=precision, **flags)
    full = cls(b, lr=1e-2, weight_decay=0.1, foreach=False)
    _run(low, a, range(1))
    _run(full, b, range(1))
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "8bit"])
@pytest.mark.parametrize("cls", [AdamW, Lion])
def test_later_steps_stay_near_the_fp32_steps(cls, precision):
    lr = 1e-3
    a, b = _params(), _params()
    low = cls(a, lr=lr, state_precision=precision, seed=3)
    full = cls(b, lr=lr)
    _run(low, a, range(20))
    _run(full, b, range(20))
    for x, y in zip(a, b):
        diff = (x - y).abs()
        # each step moves an element by at most the clamp bound times lr; most by far less
        assert diff.max() <= 20 * lr * 8
        assert diff.mean() <= 20 * lr * 0.1


@pytest.mark.skipif(kernels() is None, reason="no C compiler")
@pytest.mark.parametrize("precision", ["bf16", "8bit"])
@pytest.mark.parametrize("cls", [AdamW, Lion])
def test_fused_kernels_agree_with_the_eager_update(cls, precision):
    a, b = _params(), _params()
    fused = cls(a, lr=1e-2, state_precision=precision, seed=5, fused=True)
    eager = cls(b, lr=1e-2, state_precision=precision, seed=5, foreach=False)
    _run(fused, a, range(3))
    _run(eager, b, range(3))
    for x, y in zip(a, b):
        close = torch.isclose(x, y, rtol=1e-5, atol=1e-6)
        assert close.float().mean() > 0.999  # a float difference can flip one code (one step of 1/127)
        torch.testing.assert_close(x, y, rtol=0, atol=2e-2)


@pytest.mark.parametrize("flags", PATHS)
@pytest.mark.parametrize("precision", ["bf16", "8bit"])
@pytest.mark.parametrize("cls", [AdamW, Lion])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_round_trip_is_bit_identical(cls, precision, flags, dtype):
    params = _params(dtype=dtype)
    opt = cls(params, lr=1e-2, state_precision=precision, **flags)
    _run(opt, params, range(3))
    saved = copy.deepcopy(opt.state_dict())
    start = [p.detach().clone() for p in params]
    _run(opt, params, range(3, 6))

    params2 = [torch.nn.Parameter(t.clone()) for t in start]
    opt2 = cls(params2, lr=1e-2, state_precision=precision, **flags)
    opt2.load_state_dict(saved)
    for index, q in enumerate(params2):
        for key, value in saved["state"][index].items():
            assert opt2.state[q][key].dtype == value.dtype  # codes, scales, bf16 moments as saved
    _run(opt2, params2, range(3, 6))
    assert all(torch.equal(x, y) for x, y in zip(params, params2))


def test_fp32_state_converts_to_8bit_and_back():
    params = _params()
    full = AdamW(params, lr=1e-2)
    _run(full, params, range(3))
    low = AdamW(params, lr=1e-2, state_precision="8bit")
    low.load_state_dict(copy.deepcopy(full.state_dict()))
    assert low.param_groups[0]["state_precision"] == "8bit"
    big = params[0]
    assert sorted(low.state[big]) == [
        "exp_avg_codes",
        "exp_avg_scales",
        "exp_avg_sq_codes",
        "exp_avg_sq_scales",
        "step",
    ]
    back = AdamW(params, lr=1e-2)
    back.load_state_dict(copy.deepcopy(low.state_dict()))
    assert back.state[big]["exp_avg"].dtype == torch.float32
    exact = full.state[big]["exp_avg"]
    scale = exact.abs().max()
    torch.testing.assert_close(back.state[big]["exp_avg"], exact, rtol=0, atol=float(scale) / 127)
    root = back.state[big]["exp_avg_sq"].sqrt()
    torch.testing.assert_close(root, full.state[big]["exp_avg_sq"].sqrt(), rtol=1 / 16, atol=1e-12)


def test_loading_another_optimizers_state_is_refused():
    params = _params()
    lion = Lion(params, lr=1e-2, state_precision="8bit")
    _run(lion, params, range(1))
    adamw = AdamW(params, lr=1e-2, state_precision="8bit")
    with pytest.raises(ConfigError, match="another optimizer"):
        adamw.load_state_dict(copy.deepcopy(lion.state_dict()))


def test_bad_combinations_are_config_errors():
    with pytest.raises(ConfigError, match="one of fp32, bf16, 8bit"):
        Lion([torch.nn.Parameter(torch.zeros(2))], state_precision="int8")
    model = torch.nn.Linear(4, 4)
    with pytest.raises(ConfigError, match="state_precision"):
        optforge.build_optimizer(model, {"name": "SGD", "lr": 0.1, "state_precision": "8bit"})


def test_registry_entries_and_float_lr_under_a_scheduler():
    names = optforge.list_optimizers(provider="optforge")
    assert {"AdamW8bit", "Lion8bit"} <= set(names)
    model = torch.nn.Linear(128, 64)
    opt = optforge.build_optimizer(model, {"name": "AdamW8bit", "lr": 1e-3})
    assert isinstance(opt, AdamW)
    assert opt.param_groups[0]["state_precision"] == "8bit"
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 / (1 + step))
    for _ in range(3):
        model(torch.randn(4, 128)).pow(2).mean().backward()
        opt.step()
        scheduler.step()
    assert type(opt.param_groups[0]["lr"]) is float
    assert "exp_avg_codes" in opt.state[model.weight]


def test_seed_makes_runs_reproducible():
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        params = _params()
        opt = AdamW(params, lr=1e-2, state_precision="8bit")
        _run(opt, params, range(3))
        results.append([p.detach().clone() for p in params])
    assert all(torch.equal(x, y) for x, y in zip(*results))


@pytest.mark.parametrize("cls", [AdamW, Lion])
def test_error_does_not_drift_on_a_noisy_quadratic(cls):
    """Loss above the optimum of a noisy quadratic: within 1% of the fp32 run's at step 100 and at step 1,000."""
    gen = torch.Generator().manual_seed(0)
    curvature = torch.exp2(torch.linspace(-4, 2, 64 * 256)).view(64, 256)
    noises = [torch.randn(64, 256, generator=gen) * 0.1 for _ in range(50)]
    optimum = -torch.stack(noises).mean(0) / curvature
    lr = 1e-3 if cls is AdamW else 3e-4
    losses = {}
    for precision in ("fp32", "8bit"):
        p = torch.nn.Parameter(torch.ones(64, 256))
        opt = cls([p], lr=lr, weight_decay=0.0, state_precision=precision, seed=1)
        for step in range(1000):
            p.grad = curvature * p.detach() + noises[step % 50]
            opt.step()
            if step + 1 in (100, 1000):
                losses[precision, step + 1] = (0.5 * curvature * (p.detach() - optimum) ** 2).sum().item()
    early = abs(losses["8bit", 100] / losses["fp32", 100] - 1)
    late = abs(losses["8bit", 1000] / losses["fp32", 1000] - 1)
    assert early < 0.01
    assert late < 0.01
    assert late < 3 * early + 2e-3


@pytest.mark.parametrize("name", ["AdamW8bit", "Lion8bit", "AdamWScheduleFree8bit", "RAdamScheduleFree8bit"])
def test_low_precision_state_on_complex_parameters_is_a_config_error_at_build_time(name: str) -> None:
    complex_param = torch.nn.Parameter(torch.zeros(64, 128, dtype=torch.complex64))
    real_param = torch.nn.Parameter(torch.zeros(64, 128))
    with pytest.raises(ConfigError, match="complex"):
        optforge.build_optimizer([real_param, complex_param], {"name": name, "lr": 1e-3})
    optforge.build_optimizer([real_param], {"name": name, "lr": 1e-3})


def test_a_refused_param_group_leaves_the_optimizer_as_it_was() -> None:
    real_param = torch.nn.Parameter(torch.zeros(64, 128))
    optimizer = optforge.build_optimizer([real_param], {"name": "AdamW8bit", "lr": 1e-3})
    groups = copy.deepcopy(optimizer.param_groups)
    with pytest.raises(ConfigError, match="complex"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(64, 128, dtype=torch.complex64))]})
    assert len(optimizer.param_groups) == len(groups)
    assert [g["params"][0] is real_param for g in optimizer.param_groups] == [True]
    assert {k: v for k, v in optimizer.param_groups[0].items() if k != "params"} == {
        k: v for k, v in groups[0].items() if k != "params"
    }


def test_a_refused_load_leaves_the_optimizer_as_it_was():
    params = _params()
    adamw = AdamW(params, lr=1e-2, state_precision="8bit", seed=3)
    _run(adamw, params, range(2))
    lion = Lion(params, lr=1e-2, state_precision="8bit")
    _run(lion, params, range(1))
    before = copy.deepcopy(adamw.state_dict())
    with pytest.raises(ConfigError, match="another optimizer"):
        adamw.load_state_dict(copy.deepcopy(lion.state_dict()))
    after = adamw.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert after["state"].keys() == before["state"].keys()
    for pid, entry in before["state"].items():
        assert after["state"][pid].keys() == entry.keys()
        for key, value in entry.items():
            saved = after["state"][pid][key]
            assert saved.dtype == value.dtype
            assert torch.equal(saved, value)
