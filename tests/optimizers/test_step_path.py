"""Which implementation a step uses with no flags, its fallbacks, and that every choice computes the same update."""

from __future__ import annotations

import pytest
import torch

from optforge.optimizers import (
    Lion,
    ScheduleFreeOptimizer,
    SGDScheduleFree,
    _fused,
    _native,
)
from tests.optimizers._factories import OWN_FACTORIES

FACTORIES = OWN_FACTORIES
# a large tensor (one compiled call of its own) and small ones (gathered into a flat batch)
SHAPES = [(300, 300), (5, 7), (64,), (257, 3)]


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The automatic choice considers these small test models worth compiling."""
    monkeypatch.setitem(_fused.AUTO_FUSED_MIN_NUMEL, "cpu", 1000)


@pytest.fixture(params=["native", "compiled"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each CPU backend in turn: the C loop, and torch.compile (the CUDA backend, whose planning is device-agnostic)."""
    apply = {"native": _fused._apply_native, "compiled": _fused._apply_compiled}[request.param]
    monkeypatch.setitem(_fused._BACKENDS, "cpu", apply)
    return request.param


def _params(dtype: torch.dtype = torch.float32, shapes=SHAPES) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)) for s in shapes]


def _make(name: str, params, **impl) -> torch.optim.Optimizer:
    opt = FACTORIES[name](params, **impl)
    if isinstance(opt, ScheduleFreeOptimizer):
        opt.train()
    return opt


def _trajectory(name: str, dtype: torch.dtype, steps: int = 6, **impl) -> tuple[str, list[torch.Tensor]]:
    params = _params(dtype)
    opt = _make(name, params, **impl)
    path = opt.step_path.name
    for step in range(steps):
        gen = torch.Generator().manual_seed(100 + step)
        for p in params:
            p.grad = (0.3 * p.detach().double() + torch.randn(p.shape, generator=gen, dtype=torch.float64)).to(dtype)
        opt.step()
    states = [t.clone() for p in params for t in opt.state[p].values() if t.dim()]
    return path, [p.detach().clone() for p in params] + states


@pytest.mark.parametrize("name", FACTORIES)
def test_small_models_keep_the_eager_loop_on_cpu(name):
    opt = _make(name, _params(shapes=[(200, 300), (5, 7)]))
    assert opt.step_path.name == "single"
    assert "60,035 elements, fewer than the 65,536 that repay building kernels" in opt.step_path.reason


def test_models_from_65536_elements_take_the_fused_path_on_cpu():
    path = Lion(_params(shapes=[(256, 256)])).step_path
    assert path == ("fused", "automatic: 65,536 elements and kernels that build")


@pytest.mark.parametrize("name", FACTORIES)
def test_automatic_fused_path_matches_single_tensor_path_in_float32(name, low_threshold):
    path, got = _trajectory(name, torch.float32)
    ref_path, expected = _trajectory(name, torch.float32, foreach=False)
    assert (path, ref_path) == ("fused", "single")
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", FACTORIES)
def test_automatic_path_is_bit_identical_to_single_tensor_path_in_float64(name, low_threshold):
    path, got = _trajectory(name, torch.float64)
    _, expected = _trajectory(name, torch.float64, foreach=False)
    assert path == "single"
    assert all(torch.equal(g, e) for g, e in zip(got, expected))


def test_automatic_choice_in_reduced_precision_is_fused(low_threshold):
    for dtype in (torch.bfloat16, torch.float16):
        path, got = _trajectory("Lion", dtype, steps=3)
        _, expected = _trajectory("Lion", dtype, steps=3, foreach=False)
        assert path == "fused"
        # one rounding per step instead of one per operation: the sign of the
        # interpolation differs only where it is within rounding of zero
        for g, e in zip(got, expected):
            close = torch.isclose(g.float(), e.float(), rtol=1e-2, atol=1e-2)
            assert close.float().mean() > 0.99


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"fused": False}, ("single", "fused=False")),
        ({"foreach": False}, ("single", "foreach=False")),
        ({"foreach": True}, ("foreach", "foreach=True")),
        ({"fused": True}, ("fused", "fused=True")),
        ({}, ("fused", None)),
    ],
)
def test_explicit_flags_are_honoured(flags, expected, low_threshold):
    opt = Lion(_params(), **flags)
    assert opt.step_path.name == expected[0]
    if expected[1] is not None:
        assert opt.step_path.reason == expected[1]
    else:
        assert opt.step_path.reason.startswith("automatic")


def test_disabled_torch_compile_falls_back(low_threshold, monkeypatch):
    import torch._dynamo

    with torch._dynamo.config.patch(disable=True):
        path = Lion(_params()).step_path
    assert path.name == "single"
    assert "disabled" in path.reason
    monkeypatch.setenv("TORCH_COMPILE_DISABLE", "1")
    path = Lion(_params()).step_path
    assert path.name == "single"
    assert "TORCH_COMPILE_DISABLE" in path.reason


def test_missing_compiler_falls_back(low_threshold, monkeypatch):
    monkeypatch.setenv("CC", "optforge-no-such-compiler")
    params = _params()
    opt = Lion(params, lr=1e-2)
    assert opt.step_path.name == "single"
    assert opt.step_path.reason == "automatic: no C compiler ($CC='optforge-no-such-compiler' not found)"
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert torch.equal(params[1].detach(), _params()[1].detach() - 1e-2)


def test_cpu_kernels_do_not_load_the_torch_compile_stack():
    """The CPU path never pays for inductor's compiler (seconds to import, more to start cold)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from optforge.optimizers import Lion; "
        "p = torch.nn.Parameter(torch.zeros(1 << 17)); o = Lion([p]); assert o.step_path.name == 'fused'; "
        "p.grad = torch.ones_like(p); o.step(); assert bool((p < 0).all()); "
        "print([m for m in ('torch._inductor.compile_fx', 'torch._inductor.codecache') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _params(torch.float64), "float64"),
        (lambda: [torch.nn.Parameter(torch.zeros(2000, dtype=torch.complex64))], "complex"),
        (lambda: [torch.nn.Parameter(torch.zeros(2000, device="meta"))], "meta"),
        (lambda: [torch.nn.Parameter(torch.zeros(2000, dtype=torch.int32), requires_grad=False)], "int32"),
    ],
    ids=["float64", "complex", "meta", "int"],
)
def test_unsupported_tensors_fall_back(make, reason, low_threshold):
    path = Lion(make()).step_path
    assert path.name == "single"
    assert reason in path.reason


@pytest.fixture
def one_rank_mesh(tmp_path):
    """A device mesh over a one-process gloo group, for DTensor parameters as FSDP2 makes them."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("flags", "path"),
    [({}, ("single", "automatic: DTensor parameters")), ({"fused": True}, ("fused", "fused=True"))],
)
def test_dtensor_parameters_take_the_eager_update(one_rank_mesh, flags, path, backend):
    """DTensors hold no elements of their own for a kernel to write (FSDP2's parameters are DTensors)."""
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    def shard(t: torch.Tensor) -> torch.Tensor:
        return distribute_tensor(t, one_rank_mesh, [Shard(0)])

    results = []
    for wrap in (shard, lambda t: t):
        weight = torch.nn.Parameter(wrap(torch.randn(512, 256, generator=torch.Generator().manual_seed(0))))
        opt = Lion([weight], lr=1e-2, weight_decay=0.1, **flags)
        for step in range(3):
            weight.grad = wrap(torch.randn(512, 256, generator=torch.Generator().manual_seed(step)))
            opt.step()
        results.append((opt.step_path, weight.full_tensor() if isinstance(weight, DTensor) else weight.detach()))
    assert results[0][0] == path
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-6, atol=1e-6)


def test_non_contiguous_tensors_take_the_eager_update_inside_the_fused_path(low_threshold, backend):
    base = torch.randn(80, 50, generator=torch.Generator().manual_seed(3))
    results = []
    for p, flags in ((torch.nn.Parameter(base.t()), {}), (torch.nn.Parameter(base.t().contiguous()), {"fused": False})):
        big = torch.nn.Parameter(torch.ones(2000))
        opt = Lion([p, big], lr=1e-2, weight_decay=0.1, **flags)
        assert opt.step_path.name == ("fused" if not flags else "single")
        for step in range(3):
            gen = torch.Generator().manual_seed(step)
            p.grad = torch.randn(p.shape, generator=gen).contiguous()
            big.grad = torch.randn(big.shape, generator=gen)
            opt.step()
        results.append((p.detach().clone(), big.detach().clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_failed_compilation_falls_back_for_the_rest_of_the_process(low_threshold, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler today")

    monkeypatch.setattr(_fused, "_FAILED", {})
    monkeypatch.setattr(_native, "native_kernel", broken)
    params, reference = _params(), _params()
    opt, ref = Lion(params, lr=1e-2, fused=True), Lion(reference, lr=1e-2, foreach=False)
    assert Lion(_params()).step_path.name == "fused"
    for p, r in zip(params, reference):
        p.grad = torch.full_like(p, 0.5)
        r.grad = torch.full_like(r, 0.5)
    with pytest.warns(RuntimeWarning, match="no compiler today"):
        opt.step()
    ref.step()
    assert all(torch.equal(p, r) for p, r in zip(params, reference))
    path = Lion(_params()).step_path
    assert path.name == "single"
    assert "building kernels failed" in path.reason


def test_choice_is_per_group_and_follows_flag_changes(low_threshold):
    params = _params()
    opt = Lion([{"params": params[:1]}, {"params": params[1:], "fused": False}])
    assert opt.step_path.name == "mixed"
    assert "group 1: single (fused=False)" in opt.step_path.reason
    opt.param_groups[1]["fused"] = None
    opt.param_groups[1]["foreach"] = True
    assert [opt._group_path(g, g["params"]).name for g in opt.param_groups] == ["fused", "foreach"]


def test_step_inside_torch_compile_traces_the_multi_tensor_code(low_threshold):
    assert _fused.select_path(_params(), None, None, "single").name == "fused"

    @torch.compile(backend="eager", fullgraph=True)
    def inside(params):
        return 1 if _fused.select_path(params, None, None, "single").name == "foreach" else 0

    assert inside(_params()) == 1


def test_flatten_round_trips():
    tensors = [torch.arange(6.0).view(2, 3), torch.tensor([7.0]), torch.zeros(0), torch.arange(4.0).view(2, 2)]
    flat = _fused.flatten(tensors)
    assert flat.shape == (11,)
    assert flat.data_ptr() != tensors[0].data_ptr()
    targets = [torch.empty_like(t) for t in tensors]
    _fused.unflatten_into(flat * 2, targets)
    assert all(torch.equal(t * 2, u) for t, u in zip(tensors, targets))


@pytest.fixture
def compiled_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU kernels built by torch.compile, the CUDA backend, so that its code path runs without a GPU."""
    monkeypatch.setitem(_fused._BACKENDS, "cpu", _fused._apply_compiled)


def test_many_dtypes_and_layouts_never_hit_the_recompile_limit(compiled_on_cpu):
    """One graph per kernel, dtype and device: a process may use any mix of them."""
    import torch._dynamo

    layouts = [[(300, 300)], [(5, 7), (3, 4)], [(3,)], [(70000,)], [(2,), (1,)], [(260, 260), (9,)]]
    with torch._dynamo.config.patch(recompile_limit=1):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            for shapes in layouts:
                params = _params(dtype, shapes)
                for name in ("Lion", "SGDScheduleFree"):
                    opt = _make(name, params, fused=True)
                    for p in params:
                        p.grad = torch.ones_like(p)
                    opt.step()
                    assert all(torch.isfinite(p.float()).all() for p in params)


@pytest.mark.parametrize("name", FACTORIES)
def test_torch_compile_backend_matches_the_native_one(name, compiled_on_cpu, monkeypatch):
    _, compiled = _trajectory(name, torch.float32, steps=3, fused=True)
    monkeypatch.setitem(_fused._BACKENDS, "cpu", _fused._apply_native)
    _, native = _trajectory(name, torch.float32, steps=3, fused=True)
    for a, b in zip(compiled, native):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", FACTORIES)
def test_fused_step_counts_as_an_in_place_change_for_autograd(name, backend):
    """As with torch.optim, a step between forward and backward makes backward fail instead of using stale values."""
    model = torch.nn.Linear(300, 300)
    opt = _make(name, list(model.parameters()), fused=True)
    x = torch.randn(4, 300, requires_grad=True)
    model(x).sum().backward()
    versions = [p._version for p in model.parameters()]
    opt.step()
    assert all(p._version > v for p, v in zip(model.parameters(), versions))
    loss = (model(x) ** 2).sum()  # saves the weight for backward
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("name", ["Lion", "AdamWScheduleFree"])
def test_fused_path_survives_new_gradients_state_loads_and_swapped_storage(name, backend):
    """The fused path reuses its split of the tensors between steps; anything replaced must be picked up."""
    shapes = [(100,)] * 40 + [(70000,), (3, 5)]
    runs = []
    for impl in ({"fused": True}, {"foreach": False}):
        params = _params(torch.float32, shapes)
        opt = _make(name, params, **impl)
        for step in range(6):
            gen = torch.Generator().manual_seed(step)
            for p in params:  # new gradient tensors every step, as zero_grad(set_to_none=True) leaves them
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
            if step == 2:
                opt.load_state_dict(opt.state_dict())  # new state tensors
            if step == 3:
                params[5].data = params[5].data.clone()  # new storage behind a parameter
        runs.append([p.detach().clone() for p in params] + [t.clone() for p in params for t in opt.state[p].values()])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}])
def test_eager_paths_in_pieces_are_bit_identical(name, impl, monkeypatch):
    """Large tensors are updated in pieces (so temporaries stay small); the results must not change."""
    from optforge.optimizers import _common

    _, whole = _trajectory(name, torch.float32, steps=3, **impl)
    monkeypatch.setattr(_common, "_piece_limit", lambda tensors: 1000)
    assert len(_common.in_pieces([[torch.zeros(300, 300)]])[0]) == 90
    _, pieces = _trajectory(name, torch.float32, steps=3, **impl)
    assert all(torch.equal(a, b) for a, b in zip(whole, pieces))


@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}])
def test_in_place_schedule_free_sgd_updates_whole_tensors(impl, monkeypatch):
    """Without weight decay or maximize the eager update allocates nothing, so pieces would only cost time."""
    import importlib

    from optforge.optimizers import _common

    sgd_schedule_free = importlib.import_module(
        "optforge.optimizers.sgd_schedule_free"
    )  # the package exports a function
    monkeypatch.setattr(_common, "_piece_limit", lambda tensors: 1000)
    calls = []
    for name in ("in_pieces", "piece_groups"):
        original = getattr(sgd_schedule_free, name)
        monkeypatch.setattr(
            sgd_schedule_free, name, lambda *args, _original=original, **kwargs: calls.append(1) or _original(*args)
        )
    params = _params()
    for weight_decay, pieces_expected in ((0.0, False), (0.01, True)):
        calls.clear()
        opt = SGDScheduleFree(params, lr=0.05, weight_decay=weight_decay, **impl)
        opt.train()
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        assert bool(calls) is pieces_expected
