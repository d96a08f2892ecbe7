"""What torch.optim's optimizers promise, checked for every optforge optimizer and implementation."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
import torch

from optforge.errors import ConfigError
from optforge.optimizers import (
    AdamWScheduleFree,
    Lion,
    RAdamScheduleFree,
    ScheduleFreeOptimizer,
    ScheduleFreeWrapper,
    SGDScheduleFree,
)
from tests.optimizers._factories import OWN_FACTORIES


def _wrapper(params, **impl):
    return ScheduleFreeWrapper(torch.optim.SGD(params, lr=0.05, **impl), weight_decay_at_y=0.01)


FACTORIES: dict[str, Callable[..., torch.optim.Optimizer]] = {**OWN_FACTORIES, "ScheduleFreeWrapper": _wrapper}
IMPLS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
CASES = [
    pytest.param(name, impl, id=f"{name}-{impl}")
    for name in FACTORIES
    for impl in IMPLS
    if not (name == "ScheduleFreeWrapper" and impl == "fused")
]
EAGER_CASES = [case for case in CASES if case.values[1] != "fused"]


def make(name: str, impl: str, params) -> torch.optim.Optimizer:
    opt = FACTORIES[name](params, **IMPLS[impl])
    if isinstance(opt, ScheduleFreeOptimizer):
        opt.train()
    return opt


def fill_grads(params, step: int, scale: float = 1.0) -> None:
    gen = torch.Generator().manual_seed(step)
    for p in params:
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        if p.is_complex():
            noise = torch.view_as_complex(torch.randn((*p.shape, 2), generator=gen, dtype=torch.float64))
        p.grad = (0.5 * p.detach() + noise.to(p.dtype)) * scale


def run(opt, params, steps: range) -> None:
    for step in steps:
        fill_grads(params, step)
        opt.step()


def new_params(dtype=torch.float32, shapes=((4, 3), (5,))) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)) for s in shapes]


def snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_step_with_closure_returns_loss(name, impl):
    params = new_params()
    opt = make(name, impl, params)

    def closure():
        opt.zero_grad()
        loss = sum((p**2).sum() for p in params)
        loss.backward()
        return loss

    before = snapshot(params)
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert loss.item() == pytest.approx(sum((b**2).sum().item() for b in before))
    assert not all(torch.equal(b, p) for b, p in zip(before, params))


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_params_without_grad_untouched_and_stateless(name, impl):
    params = new_params()
    frozen = torch.nn.Parameter(torch.ones(3))
    empty = torch.nn.Parameter(torch.zeros(0, 4))
    opt = make(name, impl, [*params, frozen, empty])
    for step in range(3):
        fill_grads(params, step)
        empty.grad = torch.zeros(0, 4)
        opt.step()
    assert torch.equal(frozen, torch.ones(3))
    assert len(opt.state[frozen]) == 0
    assert empty.shape == (0, 4)


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_non_contiguous_params_match_contiguous(name, impl):
    base = torch.randn(6, 5, generator=torch.Generator().manual_seed(3))
    strided = torch.nn.Parameter(base.t())  # non-contiguous view layout
    dense = torch.nn.Parameter(base.t().contiguous())
    assert not strided.is_contiguous()
    results = []
    for p in (strided, dense):
        opt = make(name, impl, [p])
        run(opt, [p], range(4))
        results.append(p.detach().clone())
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("name", "impl"), CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes_keep_dtype(name, impl, dtype):
    if impl == "fused" and dtype == torch.float64 and name != "Lion":
        pytest.skip("one compiled float64 kernel is enough to cover the dtype dispatch")
    params = new_params(dtype)
    opt = make(name, impl, params)
    run(opt, params, range(3))
    assert all(p.dtype == dtype and torch.isfinite(p.float()).all() for p in params)
    assert all(t.dtype == dtype for p in params for t in opt.state[p].values() if t.is_floating_point() and t.dim())


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_maximize_equals_minimizing_the_negation(name, impl):
    if name == "ScheduleFreeWrapper":
        pytest.skip("maximize belongs to the base optimizer")
    results = []
    for maximize, scale in ((True, -1.0), (False, 1.0)):
        params = new_params()
        opt = make(name, impl, params)
        for group in opt.param_groups:
            group["maximize"] = maximize
        for step in range(4):
            fill_grads(params, step, scale)
            opt.step()
        results.append(snapshot(params))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("name", "impl"), EAGER_CASES)
def test_add_param_group_mid_run(name, impl):
    params = new_params()
    opt = make(name, impl, params[:1])
    run(opt, params[:1], range(2))
    opt.add_param_group({"params": params[1:], "lr": 1e-3})
    before = snapshot(params)
    run(opt, params, range(2, 3))
    assert not torch.equal(before[1], params[1])
    assert len(opt.state[params[1]]) > 0
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize(("name", "impl"), EAGER_CASES)
def test_lr_change_takes_effect_next_step(name, impl):
    params = new_params()
    opt = make(name, impl, params)
    run(opt, params, range(3))
    for group in opt.param_groups:
        group["lr"] = 0.0
    if isinstance(opt, ScheduleFreeOptimizer):
        z_before = [opt.state[p][opt.z_key].clone() for p in params]
        run(opt, params, range(3, 4))
        assert all(torch.equal(z, opt.state[p][opt.z_key]) for z, p in zip(z_before, params))
    else:
        run(opt, params, range(3, 4))
    if name == "Lion":
        before = snapshot(params)
        run(opt, params, range(4, 5))
        assert all(torch.equal(b, p) for b, p in zip(before, params))


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_one_element_tensor_lr_steps_like_a_float_lr(name, impl):
    results = []
    for lr in (0.05, torch.tensor([0.05]), torch.tensor(0.05)):
        params = new_params()
        opt = make(name, impl, params)
        for group in opt.param_groups:
            group["lr"] = lr.clone() if torch.is_tensor(lr) else lr
        run(opt, params, range(3))
        results.append(snapshot(params))
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


@pytest.mark.parametrize("name", [n for n in FACTORIES if n != "ScheduleFreeWrapper"])
def test_constructors_take_a_one_element_tensor_lr(name):
    cls = {"Lion": Lion, "AdamWScheduleFree": AdamWScheduleFree, "SGDScheduleFree": SGDScheduleFree}.get(
        name, RAdamScheduleFree
    )
    params = new_params()
    opt = cls(params, lr=torch.tensor([0.01]))
    if isinstance(opt, ScheduleFreeOptimizer):
        opt.train()
    run(opt, params, range(2))
    assert all(torch.isfinite(p).all() for p in params)
    with pytest.raises(ConfigError, match="1-element tensor"):
        cls(params, lr=torch.tensor([0.01, 0.02]))


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_state_dict_round_trip_continues_bit_identically(name, impl):
    params = new_params()
    opt = make(name, impl, params)
    run(opt, params, range(3))
    saved_params = snapshot(params)
    saved_state = copy.deepcopy(opt.state_dict())
    run(opt, params, range(3, 6))
    expected = snapshot(params)

    params2 = [torch.nn.Parameter(t.clone()) for t in saved_params]
    opt2 = FACTORIES[name](params2, **IMPLS[impl])
    opt2.load_state_dict(saved_state)
    run(opt2, params2, range(3, 6))
    for a, b in zip(expected, params2):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("name", "impl"), EAGER_CASES)
def test_load_state_dict_across_dtypes(name, impl):
    params = new_params(torch.float32)
    opt = make(name, impl, params)
    run(opt, params, range(3))
    params64 = [torch.nn.Parameter(p.detach().double()) for p in params]
    opt64 = FACTORIES[name](params64, **IMPLS[impl])
    opt64.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert all(t.dtype == torch.float64 for p in params64 for t in opt64.state[p].values() if t.dim())
    run(opt64, params64, range(3, 5))
    run(opt, params, range(3, 5))
    for a, b in zip(params, params64):
        torch.testing.assert_close(a.detach().double(), b.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "impl"), CASES)
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_work_independently(name, impl, how):
    params = new_params()
    opt = make(name, impl, params)
    run(opt, params, range(2))
    if how == "deepcopy":
        params2, opt2 = copy.deepcopy((params, opt))
    else:
        params2, opt2 = pickle.loads(pickle.dumps((params, opt)))
    assert opt2.param_groups[0]["params"][0] is params2[0]
    run(opt, params, range(2, 4))
    run(opt2, params2, range(2, 4))
    for a, b in zip(params, params2):
        assert torch.equal(a, b)
        assert a.data_ptr() != b.data_ptr()


@pytest.mark.parametrize(("name", "impl"), EAGER_CASES)
def test_step_hooks_run(name, impl):
    params = new_params()
    opt = make(name, impl, params)
    calls = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    post = opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    run(opt, params, range(1))
    pre.remove()
    post.remove()
    run(opt, params, range(1, 2))
    assert calls == ["pre", "post"]


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_sparse_gradients_rejected(name, impl):
    p = torch.nn.Parameter(torch.ones(4, 2))
    opt = make(name, impl, [p])
    p.grad = torch.ones(4, 2).to_sparse()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_complex_params_update_each_real_component(name, impl):
    init = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(5))
    z = torch.nn.Parameter(torch.view_as_complex(init.clone()))
    r = torch.nn.Parameter(init.clone())
    opt_r = make(name, impl, [r])
    if opt_r.defaults.get("state_precision", "fp32") != "fp32":  # low-precision codes hold real numbers
        with pytest.raises(ConfigError, match="complex"):
            make(name, impl, [z])
        return
    opt_z = make(name, impl, [z])
    for step in range(4):
        g = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(step))
        z.grad, r.grad = torch.view_as_complex(g.clone()), g.clone()
        opt_z.step()
        opt_r.step()
    if isinstance(opt_z, ScheduleFreeOptimizer):
        opt_z.eval()
        opt_r.eval()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=1e-6, atol=1e-7)
    assert z.dtype == torch.complex64


@pytest.mark.parametrize("name", list(FACTORIES))
def test_compiled_step_matches_eager_without_recompiling_each_step(name):
    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
    results = []
    for compiled in (False, True):
        params = new_params()
        opt = make(name, "single", params)
        step = torch.compile(opt.step, backend="eager") if compiled else opt.step
        for i in range(10):
            fill_grads(params, i)
            for group in opt.param_groups:  # an outside schedule changes lr every step
                group["lr"] = 1e-2 / (1 + i)
            step()
        results.append(snapshot(params))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # a few graphs while step counts, warmup and lr become dynamic; not one per step
    assert 1 <= counters["stats"]["unique_graphs"] <= 6


def test_compiled_step_with_inductor():
    torch._dynamo.reset()
    model = torch.nn.Linear(4, 2)
    opt = Lion(model.parameters(), lr=1e-2)
    step = torch.compile(opt.step)
    eager_model = copy.deepcopy(model)
    eager_opt = Lion(eager_model.parameters(), lr=1e-2)
    for i in range(3):
        for m in (model, eager_model):
            fill_grads(list(m.parameters()), i)
        step()
        eager_opt.step()
    for a, b in zip(model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
