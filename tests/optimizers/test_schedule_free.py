"""Schedule-Free optimizers against the schedulefree 1.4.1 oracle, and their modes."""

from __future__ import annotations

import copy

import pytest
import torch

from optforge.errors import ConfigError
from optforge.optimizers import (
    AdamWScheduleFree,
    RAdamScheduleFree,
    ScheduleFreeWrapper,
    SGDScheduleFree,
    eval_mode,
    recompute_batchnorm_stats,
)

schedulefree = pytest.importorskip("schedulefree")

SHAPES = [(6, 5), (11,), (2, 3, 4), (1,)]

# (ours, reference, shared kwargs, second-group overrides)
CASES = {
    "adamw": (
        AdamWScheduleFree,
        schedulefree.AdamWScheduleFree,
        {"lr": 1e-2, "weight_decay": 0.05, "warmup_steps": 20, "r": 0.5, "weight_lr_power": 1.5},
        {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "warmup_steps": 0},
    ),
    "sgd": (
        SGDScheduleFree,
        schedulefree.SGDScheduleFree,
        {"lr": 0.05, "weight_decay": 0.01, "warmup_steps": 10, "r": 1.0},
        {"lr": 0.02, "momentum": 0.7, "weight_lr_power": 0.0},
    ),
    "radam": (
        RAdamScheduleFree,
        schedulefree.RAdamScheduleFree,
        {"lr": 1e-2, "weight_decay": 0.05, "r": 0.5},
        {"lr": 3e-3, "betas": (0.8, 0.99), "silent_sgd_phase": False},
    ),
}


def _initial(dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for shape in SHAPES]


def _trajectory(make_opt, dtype: torch.dtype, steps: int = 200, state_key: str = "z") -> list[torch.Tensor]:
    """Train with an outside lr scheduler, switching to eval mode (and back) now and then."""
    params = [torch.nn.Parameter(t.clone()) for t in _initial(dtype)]
    opt = make_opt(params)
    # the reference wrapper is no Optimizer: its scheduler drives the base optimizer
    target = opt if isinstance(opt, torch.optim.Optimizer) else opt.base
    sched = torch.optim.lr_scheduler.LambdaLR(target, lambda s: 1.0 / (1.0 + 0.01 * s))
    opt.train()
    for step in range(steps):
        gen = torch.Generator().manual_seed(1000 + step)
        for p in params:
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(dtype)
            p.grad = 0.3 * p.detach() + noise
        opt.step()
        sched.step()
        if step % 50 == 49:
            opt.eval()
            opt.train()
    opt.eval()
    return [p.detach().clone() for p in params] + [opt.state[p][state_key].clone() for p in params]


def _make(name: str, ours: bool, impl: dict | None = None):
    ours_cls, ref_cls, kwargs, overrides = CASES[name]

    def make(params):
        groups = [{"params": params[:2]}, {"params": params[2:], **overrides}]
        return ours_cls(groups, **kwargs, **(impl or {})) if ours else ref_cls(groups, **kwargs)

    return make


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}])
def test_matches_schedulefree_exactly_in_float64(name, impl):
    expected = _trajectory(_make(name, False), torch.float64)
    got = _trajectory(_make(name, True, impl), torch.float64)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("impl", [{"foreach": False}, {"fused": True}])
def test_matches_schedulefree_in_float32(name, impl):
    expected = _trajectory(_make(name, False), torch.float32)
    got = _trajectory(_make(name, True, impl), torch.float32)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}], ids=["single", "foreach"])
def test_eager_paths_match_schedulefree_exactly_on_large_tensors_on_threads(impl, name, dtype):
    """As the module docstrings say: bit for bit in float32 and float64, also on tensors split among threads."""
    ours_cls, ref_cls, kwargs, _ = CASES[name]
    shapes = [(1_100_007,), (45_001,), (300, 300), (11,)]  # odd sizes: thread shares and pieces end anywhere
    runs = []
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        for make in (lambda ps: ref_cls(ps, **kwargs), lambda ps: ours_cls(ps, **kwargs, **impl)):
            gen = torch.Generator().manual_seed(0)
            params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)) for s in shapes]
            opt = make(params)
            opt.train()
            for _ in range(4):
                for p in params:
                    noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                    p.grad = (0.3 * p.detach().double() + noise).to(dtype)
                opt.step()
            opt.eval()
            runs.append([p.detach().clone() for p in params] + [opt.state[p]["z"].clone() for p in params])
    finally:
        torch.set_num_threads(before)
    for e, g in zip(*runs):
        assert torch.equal(e, g)


@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}])
def test_wrapper_matches_schedulefree_exactly(impl):
    def ours(params):
        base = torch.optim.SGD(params, lr=0.05, **impl)
        return ScheduleFreeWrapper(base, momentum=0.8, weight_decay_at_y=0.1, r=0.5, weight_lr_power=1.0)

    def ref(params):
        base = torch.optim.SGD(params, lr=0.05)
        return schedulefree.ScheduleFreeWrapper(base, momentum=0.8, weight_decay_at_y=0.1, r=0.5, weight_lr_power=1.0)

    expected = _trajectory(ref, torch.float64, steps=100)
    got = _trajectory(ours, torch.float64, steps=100, state_key="sf_z")
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


def test_wrapper_works_with_stateful_base_and_round_trips():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = ScheduleFreeWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    opt.train()
    data = torch.randn(16, 4)
    for _ in range(5):
        opt.zero_grad()
        model(data).pow(2).mean().backward()
        opt.step()
    assert set(opt.state[model.weight]) == {"step", "exp_avg", "exp_avg_sq", "sf_z"}
    clone = copy.deepcopy((model, opt))
    loaded_model = copy.deepcopy(model)
    loaded = ScheduleFreeWrapper(torch.optim.Adam(loaded_model.parameters(), lr=1e-2))
    loaded.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert loaded.training
    assert loaded.param_groups is loaded.base.param_groups
    for m, o in [(model, opt), (loaded_model, loaded), clone]:
        o.zero_grad()
        m(data).pow(2).mean().backward()
        o.step()
        o.eval()
    assert torch.equal(model.weight, loaded_model.weight)
    assert torch.equal(model.weight, clone[0].weight)


def test_wrapper_shares_groups_with_base():
    params = [torch.nn.Parameter(torch.ones(3))]
    base = torch.optim.SGD(params, lr=0.1)
    opt = ScheduleFreeWrapper(base)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": 0.2})
    assert len(base.param_groups) == 2
    assert base.param_groups[1]["sf_momentum"] == 0.9
    with pytest.raises(TypeError, match=r"wraps a torch\.optim\.Optimizer"):
        ScheduleFreeWrapper(params)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", CASES)
def test_same_defaults_as_schedulefree(name):
    ours_cls, ref_cls = CASES[name][:2]
    p = [torch.nn.Parameter(torch.zeros(1))]
    ref = ref_cls(p).defaults
    ours = ours_cls(p).defaults
    for key, value in ref.items():
        if key != "foreach":
            assert ours[key] == (tuple(value) if isinstance(value, list) else value), key


def _stepped(opt_cls=AdamWScheduleFree, **kwargs):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    groups = [{"params": model[0].parameters()}, {"params": list(model[1].parameters()) + list(model[2].parameters())}]
    opt = opt_cls(groups, **kwargs)
    opt.train()
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("group", [0, 1])
def test_step_outside_train_mode_raises_for_any_group(group):
    model, opt = _stepped()
    opt.param_groups[group]["train_mode"] = False
    with pytest.raises(RuntimeError, match=f"param group {group} is in eval mode"):
        opt.step()
    fresh = SGDScheduleFree(model.parameters())
    with pytest.raises(RuntimeError, match=r"call optimizer.train\(\)"):
        fresh.step()


def test_train_eval_are_idempotent_inverses():
    model, opt = _stepped()
    y = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    x = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    assert all(torch.equal(a, p) for a, p in zip(x, model.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(x, y))
    opt.train()
    opt.train()
    for a, p in zip(y, model.parameters()):
        torch.testing.assert_close(p.detach(), a, rtol=1e-6, atol=1e-6)


def test_eval_mode_context_restores_mode_even_on_error():
    _model, opt = _stepped()
    seen = []

    def fail() -> None:
        seen.append(opt.training)
        raise KeyError("boom")

    with pytest.raises(KeyError), opt.eval_mode():
        fail()
    assert seen == [False]
    assert opt.training
    opt.eval()
    with eval_mode(opt):
        pass
    assert not opt.training  # it was in eval mode before


def test_mode_is_saved_and_restored():
    model, opt = _stepped()
    with opt.eval_mode():
        state = copy.deepcopy(opt.state_dict())
        weights = copy.deepcopy(model.state_dict())
    assert all(not g["train_mode"] for g in state["param_groups"])
    model2, opt2 = _stepped()
    model2.load_state_dict(weights)
    opt2.load_state_dict(state)
    assert not opt2.training
    opt2.train()
    for a, b in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_scheduled_lr_is_readable():
    _, opt = _stepped(AdamWScheduleFree, lr=0.1, warmup_steps=10)
    assert opt.scheduled_lrs() == pytest.approx([0.03, 0.03])
    assert opt.param_groups[0]["scheduled_lr"] == pytest.approx(0.03)


def test_recompute_batchnorm_stats_uses_averaged_weights():
    model, opt = _stepped(SGDScheduleFree, lr=0.5)
    batches = [torch.randn(8, 3) for _ in range(4)]
    used = recompute_batchnorm_stats(model, batches, opt, num_batches=3)
    assert used == 3
    assert not opt.training
    bn = model[1]
    with torch.no_grad():
        hidden = model[0](torch.cat(batches[:3]))  # model[0] now holds x
    torch.testing.assert_close(bn.running_mean, hidden.mean(0))
    assert bn.momentum == 0.1
    assert model.training


def test_add_param_group_joins_current_mode():
    _model, opt = _stepped()
    extra = torch.nn.Parameter(torch.ones(2))
    opt.add_param_group({"params": [extra]})
    assert opt.param_groups[-1]["train_mode"]
    extra.grad = torch.ones(2)
    opt.step()
    assert "z" in opt.state[extra]


@pytest.mark.parametrize(
    ("cls", "kwargs", "path"),
    [
        (AdamWScheduleFree, {"lr": -1.0}, "lr"),
        (AdamWScheduleFree, {"betas": (0.0, 0.999)}, "betas[0]"),
        (AdamWScheduleFree, {"betas": (0.9, 1.0)}, "betas[1]"),
        (AdamWScheduleFree, {"eps": -1e-8}, "eps"),
        (AdamWScheduleFree, {"warmup_steps": -1}, "warmup_steps"),
        (AdamWScheduleFree, {"warmup_steps": 1.5}, "warmup_steps"),
        (AdamWScheduleFree, {"r": -1.0}, "r"),
        (AdamWScheduleFree, {"weight_lr_power": -2.0}, "weight_lr_power"),
        (RAdamScheduleFree, {"weight_decay": -1.0}, "weight_decay"),
        (SGDScheduleFree, {"momentum": 0.0}, "momentum"),
        (SGDScheduleFree, {"momentum": 1.0}, "momentum"),
        (SGDScheduleFree, {"lr": -0.1}, "lr"),
    ],
)
def test_invalid_hyperparameters(cls, kwargs, path):
    with pytest.raises(ConfigError) as info:
        cls([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


def test_wrapper_settings_are_keyword_only():
    """schedulefree's positional order differs: a positional call must not silently swap settings."""
    base = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(TypeError):
        ScheduleFreeWrapper(base, 0.01, 0.95)  # type: ignore[misc]
    opt = ScheduleFreeWrapper(base, weight_decay_at_y=0.01, momentum=0.95)
    assert (opt.param_groups[0]["sf_momentum"], opt.param_groups[0]["sf_weight_decay_at_y"]) == (0.95, 0.01)


def test_wrapper_invalid_momentum():
    with pytest.raises(ConfigError, match=r"momentum: must be in \(0.0, 1.0\)"):
        ScheduleFreeWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), momentum=1.0)


def test_mode_switches_create_no_state_for_params_never_stepped() -> None:
    from optforge.optimizers import AdamWScheduleFree

    w = torch.nn.Parameter(torch.ones(3))
    opt = AdamWScheduleFree([w], lr=0.1)
    opt.train()
    opt.eval()
    opt.train()
    assert len(opt.state) == 0  # a checkpoint loader must see a fresh optimizer as stateless


@pytest.mark.parametrize("name", ["AdamWScheduleFree", "SGDScheduleFree", "RAdamScheduleFree"])
def test_pickles_without_newer_group_keys_load_with_their_defaults(name: str) -> None:
    import optforge.optimizers as sf

    w = torch.nn.Parameter(torch.ones(2))
    opt = getattr(sf, name)([w], lr=0.1)
    state = opt.__getstate__()
    for group in state["param_groups"]:
        for key in ("k", "train_mode", "weight_sum", "lr_max", "scheduled_lr", "maximize", "foreach", "fused"):
            del group[key]
    opt.__setstate__(state)
    group = opt.param_groups[0]
    assert (group["k"], group["train_mode"], group["lr_max"], group["maximize"], group["fused"]) == (
        0,
        False,
        -1.0,
        False,
        None,
    )
    if name == "RAdamScheduleFree":
        del group["silent_sgd_phase"]
        opt.__setstate__(opt.__getstate__())
        assert opt.param_groups[0]["silent_sgd_phase"] is True
