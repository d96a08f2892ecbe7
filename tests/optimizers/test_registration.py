"""optforge's optimizers in the registry, and the functional entry points."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import optforge
from optforge.optimizers import AdamWScheduleFree, Lion, ScheduleFreeWrapper, eval_mode


def test_provider_lists_every_optimizer():
    names = optforge.list_optimizers(provider="optforge")
    assert names == [
        "AdamW8bit",
        "AdamWScheduleFree",
        "AdamWScheduleFree8bit",
        "Lamb",
        "Lion",
        "Lion8bit",
        "RAdamScheduleFree",
        "RAdamScheduleFree8bit",
        "ScheduleFreeWrapper",
        "SGDScheduleFree",
    ]
    assert optforge.get_optimizer_entry("lion").decoupled_weight_decay
    assert optforge.get_optimizer_entry("ScheduleFreeWrapper").unavailable_reason()


@pytest.mark.parametrize("name", ["Lion", "AdamWScheduleFree", "RAdamScheduleFree", "SGDScheduleFree"])
def test_entries_build_and_step(name):
    model = torch.nn.Linear(3, 2)
    opt = optforge.get_optimizer_entry(name).create(model.parameters(), lr=0.01)
    assert type(opt).__name__ == name
    if hasattr(opt, "train"):
        opt.train()
    model(torch.ones(1, 3)).sum().backward()
    before = model.weight.detach().clone()
    for _ in range(5):  # RAdamScheduleFree skips its first 4 steps
        opt.step()
    assert not torch.equal(before, model.weight)


def test_eval_mode_accepts_the_reference_optimizers():
    schedulefree = pytest.importorskip("schedulefree")
    p = torch.nn.Parameter(torch.ones(2))
    opt = schedulefree.SGDScheduleFree([p], lr=0.1)
    opt.train()
    p.grad = torch.ones(2)
    opt.step()
    with eval_mode(opt):
        assert not opt.param_groups[0]["train_mode"]
    assert opt.param_groups[0]["train_mode"]


def _run(factory, init, grads):
    params = [torch.nn.Parameter(t.clone()) for t in init]
    opt = factory(params)
    if hasattr(opt, "train"):
        opt.train()
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in params]


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 17), min_size=1, max_size=4),
    lr=st.floats(0.0, 0.5),
    beta1=st.floats(0.05, 0.99),
    beta2=st.floats(0.0, 0.999),
    weight_decay=st.floats(0.0, 1.0),
    maximize=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_foreach_equals_loop_exactly(sizes, lr, beta1, beta2, weight_decay, maximize, seed):
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(n, generator=gen, dtype=torch.float64) for n in sizes]
    grads = [[torch.randn(n, generator=gen, dtype=torch.float64) for n in sizes] for _ in range(3)]
    kwargs = {"lr": lr, "betas": (beta1, beta2), "weight_decay": weight_decay, "maximize": maximize}
    for cls in (Lion, AdamWScheduleFree):
        loop = _run(lambda p, cls=cls: cls(p, foreach=False, **kwargs), init, grads)
        multi = _run(lambda p, cls=cls: cls(p, foreach=True, **kwargs), init, grads)
        for a, b in zip(loop, multi):
            assert torch.equal(a, b)


def test_wrapper_repr_and_groups_are_the_base_ones():
    base = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    opt = ScheduleFreeWrapper(base)
    assert opt.param_groups is base.param_groups
    assert "sf_momentum: 0.9" in repr(opt)
