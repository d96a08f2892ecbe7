"""Lion against the lion-pytorch oracle, and its own behaviour."""

from __future__ import annotations

import pytest
import torch

from optforge.errors import ConfigError
from optforge.optimizers import Lion

lion_pytorch = pytest.importorskip("lion_pytorch")

SHAPES = [(6, 5), (11,), (2, 3, 4), (1,)]


def _initial(dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for shape in SHAPES]


def _groups(params: list[torch.nn.Parameter]) -> list[dict]:
    return [
        {"params": params[:2]},
        {"params": params[2:], "lr": 3e-3, "weight_decay": 0.5, "betas": (0.95, 0.98)},
    ]


def _trajectory(make_opt, dtype: torch.dtype, steps: int = 300) -> list[torch.Tensor]:
    params = [torch.nn.Parameter(t.clone()) for t in _initial(dtype)]
    opt = make_opt(_groups(params))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + 0.01 * s))
    for step in range(steps):
        gen = torch.Generator().manual_seed(1000 + step)
        for p in params:
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(dtype)
            p.grad = 0.3 * p.detach() + noise
        opt.step()
        sched.step()
    return [p.detach().clone() for p in params] + [opt.state[p]["exp_avg"].clone() for p in params]


def _reference(groups):
    return lion_pytorch.Lion(groups, lr=1e-3, weight_decay=0.1)


@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}])
def test_matches_lion_pytorch_exactly_in_float64(impl):
    expected = _trajectory(_reference, torch.float64)
    got = _trajectory(lambda g: Lion(g, lr=1e-3, weight_decay=0.1, **impl), torch.float64)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}, {"fused": True}])
def test_matches_lion_pytorch_in_float32(impl):
    expected = _trajectory(_reference, torch.float32)
    got = _trajectory(lambda g: Lion(g, lr=1e-3, weight_decay=0.1, **impl), torch.float32)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}])
def test_matches_lion_pytorch_exactly_in_reduced_precision(impl, dtype):
    expected = _trajectory(_reference, dtype, steps=50)
    got = _trajectory(lambda g: Lion(g, lr=1e-3, weight_decay=0.1, **impl), dtype, steps=50)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


def _trajectory_on_threads(make_opt, dtype: torch.dtype, shapes, threads: int) -> list[torch.Tensor]:
    """Three steps over ``shapes`` with torch on ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)) for s in shapes]
        opt = make_opt(_groups(params))
        for _ in range(3):
            for p in params:
                p.grad = (0.3 * p.detach().double() + torch.randn(p.shape, generator=gen, dtype=torch.float64)).to(
                    dtype
                )
            opt.step()
    finally:
        torch.set_num_threads(before)
    return [p.detach().clone() for p in params] + [opt.state[p]["exp_avg"].clone() for p in params]


# tensors torch splits among threads at odd offsets; in all 1,230,008 elements, so pieces are not 2^14 long
LARGE = [(1_100_007,), (45_001,), (300, 300), (11,)]
# no tensor above torch's 32,768-element grain; in all 1,148,808 elements, so pieces are not 2^14 long
AT_MOST_32768 = [(32_768,)] * 34 + [(181, 181), (45, 43)]


@pytest.mark.parametrize(
    ("dtype", "shapes", "threads"),
    [
        pytest.param(dtype, shapes, threads, id=f"{str(dtype).removeprefix('torch.')}-{label}-{threads}-threads")
        for dtype, label, shapes, threads in [
            (torch.float32, "large", LARGE, 3),
            (torch.float64, "large", LARGE, 3),
            (torch.float32, "large", LARGE, 1),
            (torch.float64, "large", LARGE, 1),
            (torch.bfloat16, "large", LARGE, 1),
            (torch.float16, "large", LARGE, 1),
            (torch.bfloat16, "at-most-32768", AT_MOST_32768, 3),
            (torch.float16, "at-most-32768", AT_MOST_32768, 3),
        ]
    ],
)
@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}], ids=["single", "foreach"])
def test_bit_identical_to_lion_pytorch_where_the_docstring_says(impl, dtype, shapes, threads):
    """float32 and float64 always; bfloat16 and float16 on one thread or with no tensor above 32,768 elements."""
    expected = _trajectory_on_threads(_reference, dtype, shapes, threads)
    got = _trajectory_on_threads(lambda g: Lion(g, lr=1e-3, weight_decay=0.1, **impl), dtype, shapes, threads)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


def test_fused_matches_loop_on_large_and_grouped_tensors():
    gen = torch.Generator().manual_seed(1)
    # one tensor above the grouping threshold; small ones filling more than one flat batch
    shapes = [(300, 300), (5, 7), (64,), (257, 3), *[(64, 64)] * 70]
    init = [torch.randn(s, generator=gen) for s in shapes]
    results = []
    for impl in ({"foreach": False}, {"fused": True}):
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = Lion(params, lr=1e-2, weight_decay=0.1, maximize=True, **impl)
        for step in range(5):
            g = torch.Generator().manual_seed(step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        results.append([p.detach().clone() for p in params] + [opt.state[p]["exp_avg"].clone() for p in params])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_same_defaults_as_lion_pytorch():
    p = [torch.nn.Parameter(torch.zeros(1))]
    ours, ref = Lion(p).defaults, lion_pytorch.Lion(p).defaults
    assert (ours["lr"], ours["betas"], ours["weight_decay"]) == (ref["lr"], tuple(ref["betas"]), ref["weight_decay"])


def test_update_is_sign_of_interpolation():
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0, 1.0]))
    opt = Lion([p], lr=0.1, betas=(0.5, 0.9))
    opt.state[p]["exp_avg"] = torch.tensor([1.0, -1.0, 1.0])
    p.grad = torch.tensor([-3.0, -3.0, 0.5])
    opt.step()
    # c = 0.5 m + 0.5 g = [-1, -2, 0.75]
    assert torch.equal(p.detach(), torch.tensor([1.1, 1.1, 0.9]))
    assert torch.allclose(opt.state[p]["exp_avg"], torch.tensor([0.6, -1.2, 0.95]))


def test_complex_params_update_each_real_component():
    z = torch.nn.Parameter(torch.tensor([1 + 2j, -1 - 1j], dtype=torch.complex64))
    r = torch.nn.Parameter(torch.view_as_real(z.detach()).clone())
    opt_z, opt_r = Lion([z], lr=0.1), Lion([r], lr=0.1)
    for step in range(3):
        g = torch.randn(2, 2, generator=torch.Generator().manual_seed(step))
        z.grad, r.grad = torch.view_as_complex(g.clone()), g.clone()
        opt_z.step()
        opt_r.step()
    assert torch.equal(torch.view_as_real(z.detach()), r.detach())


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"lr": -1.0}, "lr"),
        ({"betas": (1.0, 0.99)}, "betas[0]"),
        ({"betas": (0.9, -0.1)}, "betas[1]"),
        ({"betas": (0.9,)}, "betas"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"lr": float("nan")}, "lr"),
        ({"foreach": True, "fused": True}, "fused"),
    ],
)
def test_invalid_hyperparameters(kwargs, path):
    with pytest.raises(ConfigError) as info:
        Lion([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    assert info.value.path == path
