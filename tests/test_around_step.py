"""Clipping, EMA weights and skipped non-finite steps (``clip_grad:``, ``ema:``, ``skip_nonfinite:``).

The references are torch's own ``clip_grad_norm_`` / ``clip_grad_value_`` and
``torch.optim.swa_utils.AveragedModel``, and timm's ``adaptive_clip_grad`` and
``ModelEmaV3`` (dev-only oracles). optforge runs the same tensor operations in
the same order (``get_total_norm`` then ``clip_grads_with_norm_``, which is
``clip_grad_norm_``'s body; ``torch._foreach_lerp_`` with weight ``1 - decay``,
which is what both EMA references call), so the numbers are compared with
``torch.equal``: bit for bit.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import optforge
from optforge.builder import resolve
from optforge.cli import validate_config
from optforge.errors import ConfigError

timm_ema = pytest.importorskip("timm.utils.model_ema")
timm_agc = pytest.importorskip("timm.utils.agc")

SGD = {"name": "SGD", "lr": 0.05, "momentum": 0.9}


def net(batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(4, 8)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.ReLU(), nn.Linear(8, 2)]
    return nn.Sequential(*layers)


def backward(model: nn.Module, step: int, scale: float = 1.0) -> None:
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(16, 4, generator=gen) * scale
    (model(x) ** 2).mean().backward()


def build(model: nn.Module, **around: object) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    return optforge.build(model, {"optimizer": SGD, **around})


# --- clipping -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_by_norm_is_clip_grad_norm(norm_type: float) -> None:
    model = net()
    reference = copy.deepcopy(model)
    opt, _ = build(model, clip_grad={"max_norm": 0.1, "norm_type": norm_type})
    backward(model, 0, scale=10.0)
    backward(reference, 0, scale=10.0)
    opt.step()  # SGD leaves the clipped gradients in place
    expected_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.1, norm_type)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours.grad, theirs.grad)
    assert optforge.step_stats(opt).grad_norm == float(expected_norm) > 0.1


def test_clip_by_value_is_clip_grad_value() -> None:
    model = net()
    reference = copy.deepcopy(model)
    opt, _ = build(model, clip_grad={"max_value": 0.01})
    backward(model, 1, scale=10.0)
    backward(reference, 1, scale=10.0)
    expected_norm = torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()])
    opt.step()
    torch.nn.utils.clip_grad_value_(reference.parameters(), 0.01)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours.grad, theirs.grad)
    assert optforge.step_stats(opt).grad_norm == float(expected_norm)  # the 2-norm before clipping


def test_adaptive_clipping_is_timms() -> None:
    model = net()
    reference = copy.deepcopy(model)
    opt, _ = build(model, clip_grad={"agc": 0.01, "eps": 1e-3})
    backward(model, 2, scale=10.0)
    backward(reference, 2, scale=10.0)
    opt.step()
    timm_agc.adaptive_clip_grad(list(reference.parameters()), clip_factor=0.01, eps=1e-3)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours.grad, theirs.grad)


# --- EMA ------------------------------------------------------------------------------------------------------


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, each=None) -> None:
    for step in range(1, steps + 1):
        opt.zero_grad()
        backward(model, step)
        opt.step()
        if each is not None:
            each(step)


def test_ema_is_averaged_model() -> None:
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = net()
    opt, _ = build(model, ema={"decay": 0.99})
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    train(model, opt, 300, lambda step: averaged.update_parameters(model))
    ema = optforge.ema_model(opt)
    assert isinstance(ema, nn.Module)
    for ours, theirs in zip(ema.parameters(), averaged.module.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert not any(torch.equal(a, b) for a, b in zip(ema.parameters(), model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("ema", "timm_kwargs"),
    [
        ({"decay": 0.995}, {"decay": 0.995, "exclude_buffers": True}),
        ({"decay": 0.995, "buffers": "average"}, {"decay": 0.995}),
        (
            {"decay": 0.999, "warmup": True, "warmup_gamma": 2.0, "warmup_power": 0.75, "start_step": 10},
            {
                "decay": 0.999,
                "use_warmup": True,
                "warmup_gamma": 2.0,
                "warmup_power": 0.75,
                "update_after_step": 10,
                "exclude_buffers": True,
            },
        ),
        ({"decay": 0.9, "warmup": True, "every": 3, "buffers": "average"}, {"decay": 0.9, "use_warmup": True}),
    ],
)
def test_ema_is_timms_model_ema_v3(ema: dict, timm_kwargs: dict) -> None:
    model = net(batch_norm=True)
    opt, _ = build(model, ema=ema)
    reference = timm_ema.ModelEmaV3(model, **timm_kwargs)
    every = ema.get("every", 1)

    def update(step: int) -> None:
        if step % every == 0:
            reference.update(model, step=step)

    train(model, opt, 300, update)
    ours = optforge.ema_model(opt).state_dict()
    theirs = reference.module.state_dict()
    assert list(ours) == list(theirs)
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert optforge.step_stats(opt).steps == 300


def test_ema_over_a_parameter_list() -> None:
    model = net()
    opt, _ = optforge.build(list(model.parameters()), {"optimizer": SGD, "ema": {"decay": 0.9}})
    reference = timm_ema.ModelEmaV3(model, decay=0.9, exclude_buffers=True)
    train(model, opt, 50, lambda step: reference.update(model, step=step))
    ema = optforge.ema_model(opt)
    assert isinstance(ema, list)
    for ours, theirs in zip(ema, reference.module.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_parameters_added_to_the_optimizer_join_an_ema_over_a_parameter_list() -> None:
    first, second = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.ones(2))
    opt, _ = optforge.build([first], {"optimizer": {"name": "SGD", "lr": 1.0}, "ema": {"decay": 0.5}})
    first.grad = torch.ones(3)
    opt.step()  # the first update copies the weights
    opt.add_param_group({"params": [second]})
    first.grad, second.grad = torch.ones(3), torch.ones(2)
    opt.step()  # the average of the first moves halfway; the new tensor joins it at its value after this step
    averaged = optforge.ema_model(opt)
    assert [tensor.tolist() for tensor in averaged] == [[-1.5] * 3, [0.0] * 2]
    saved = opt.state_dict()
    fresh_first, fresh_second = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.ones(2))
    again, _ = optforge.build([fresh_first], {"optimizer": {"name": "SGD", "lr": 1.0}, "ema": {"decay": 0.5}})
    again.add_param_group({"params": [fresh_second]})
    again.load_state_dict(saved)
    assert [tensor.tolist() for tensor in optforge.ema_model(again)] == [[-1.5] * 3, [0.0] * 2]


def test_use_ema_swaps_and_restores_also_on_an_exception() -> None:
    model = net(batch_norm=True)
    opt, _ = build(model, ema={"decay": 0.9, "buffers": "average"})
    train(model, opt, 20)
    trained = copy.deepcopy(model.state_dict())
    averaged = optforge.ema_model(opt).state_dict()
    seen = {}

    def evaluate() -> None:
        with optforge.use_ema(opt):
            seen.update({name: value.clone() for name, value in model.state_dict().items()})
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        evaluate()
    for name, value in seen.items():
        assert torch.equal(value, averaged[name])
    for name, value in model.state_dict().items():
        assert torch.equal(value, trained[name])


# --- skipping non-finite steps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer",
    [SGD, {"name": "AdamW", "lr": 1e-2, "weight_decay": 0.1}, {"name": "AdamWScheduleFree", "lr": 1e-2}],
)
def test_a_nan_gradient_is_skipped_with_everything_left_as_it_was(optimizer: dict) -> None:
    model = net()
    config = {
        "optimizer": optimizer,
        "schedule": {"cosine_decay": {"peak_value": 1e-2, "warmup_steps": 5, "decay_steps": 50}},
        "skip_nonfinite": True,
        "clip_grad": {"max_norm": 1.0},
        "ema": {"decay": 0.9},
    }
    opt, sched = optforge.build(model, config)
    if hasattr(opt, "train"):  # Schedule-Free: steps in train mode
        opt.train()
    for step in range(1, 6):
        opt.zero_grad()
        backward(model, step)
        opt.step()
        sched.step()
    params = copy.deepcopy(list(model.parameters()))
    state = copy.deepcopy(opt.state_dict())
    lr, epoch = opt.param_groups[0]["lr"], sched.last_epoch

    opt.zero_grad()
    backward(model, 6)
    bad = next(model.parameters())
    bad.grad[0, 0] = float("nan")
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    sched.step()

    for before, after in zip(params, model.parameters(), strict=True):
        assert torch.equal(before, after)
    after_state = opt.state_dict()
    assert after_state["param_groups"] == state["param_groups"]
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after_state["state"][pid][key])), key
    for name, value in state["optforge_around_step"]["ema"].items():
        assert torch.equal(value, after_state["optforge_around_step"]["ema"][name])
    for grad, p in zip(grads, model.parameters(), strict=True):  # the gradients are given back
        assert torch.equal(grad.isnan(), p.grad.isnan())
        assert torch.equal(grad.nan_to_num(), p.grad.nan_to_num())
    assert (opt.param_groups[0]["lr"], sched.last_epoch) == (lr, epoch)
    stats = optforge.step_stats(opt)
    assert (stats.steps, stats.skipped) == (5, 1)
    assert math.isnan(stats.grad_norm)

    opt.zero_grad()
    backward(model, 7)
    opt.step()
    sched.step()
    assert sched.last_epoch == epoch + 1
    assert not torch.equal(params[0], next(model.parameters()))
    assert optforge.step_stats(opt).steps == 6


def test_a_step_the_grad_scaler_skips_does_not_advance_the_scheduler() -> None:
    model = net()
    opt, sched = optforge.build(
        model,
        {
            "optimizer": SGD,
            "schedule": {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}},
            "skip_nonfinite": True,
        },
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    opt.zero_grad()
    scaler.scale((model(torch.randn(4, 4)) ** 2).sum() * 1e30).backward()  # overflows: the scaler skips
    scaler.step(opt)
    scaler.update()
    sched.step()
    assert sched.last_epoch == 0
    assert optforge.step_stats(opt).skipped == 1


def test_a_fused_step_under_a_grad_scaler_is_clipped_on_the_true_gradients() -> None:
    """GradScaler leaves a fused optimizer's gradients scaled for its step; they are unscaled before clipping."""
    runs = {}
    for fused in (False, True):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        config = {"optimizer": {"name": "AdamW", "lr": 0.1, "fused": fused}, "clip_grad": {"max_norm": 1.0}}
        opt, _ = optforge.build(model, config)
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        norms = []
        for step in range(3):
            opt.zero_grad()
            x = torch.randn(8, 4, generator=torch.Generator().manual_seed(step))
            scaler.scale(model(x).pow(2).sum()).backward()
            scaler.step(opt)
            scaler.update()
            norms.append(float(optforge.step_stats(opt).grad_norm))
        runs[fused] = norms, [p.detach() for p in model.parameters()]
    (norms, weights), (fused_norms, fused_weights) = runs[False], runs[True]
    assert norms[0] > 1.0
    assert fused_norms == pytest.approx(norms, rel=1e-5)
    torch.testing.assert_close(fused_weights, weights)


def test_a_step_given_a_closure_evaluates_it_once_then_clips_and_skips() -> None:
    model = net()
    opt, _ = build(model, clip_grad={"max_norm": 1.0}, skip_nonfinite=True)
    x = torch.randn(4, 4)
    calls = []

    def closure() -> torch.Tensor:
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = (model(x) ** 2).sum() * 100
        loss.backward()
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    loss = opt.step(closure)
    assert calls == [True]
    assert float(loss) > 0
    assert optforge.step_stats(opt).grad_norm > 1.0
    reference = copy.deepcopy(model)
    for p, start in zip(reference.parameters(), before):
        p.data.copy_(start)
    reference.zero_grad()
    (reference(x) ** 2).sum().mul(100).backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    for p in reference.parameters():
        p.data.add_(p.grad, alpha=-0.05)  # the first step of SGD (lr 0.05, momentum 0.9)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)

    def nan_closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(x).sum() * float("nan")
        loss.backward()
        return loss

    kept = [p.detach().clone() for p in model.parameters()]
    opt.step(closure=nan_closure)
    assert optforge.step_stats(opt).skipped == 1
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), kept))


def test_an_optimizer_that_reevaluates_its_closure_cannot_be_clipped() -> None:
    config = {"optimizer": {"name": "LBFGS", "lr": 0.1}, "clip_grad": {"max_norm": 1.0}, "skip_nonfinite": True}
    with pytest.raises(ConfigError) as info:
        optforge.build(net(), config)
    assert [path for path, _ in info.value.problems] == ["clip_grad", "skip_nonfinite"]


# --- checkpoints, copies, composites ---------------------------------------------------------------------


def test_state_dict_round_trip_restores_the_ema() -> None:
    model = net(batch_norm=True)
    opt, _ = build(model, ema={"decay": 0.9}, skip_nonfinite=True)
    train(model, opt, 30)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    fresh = copy.deepcopy(model)
    opt2, _ = build(fresh, ema={"decay": 0.9}, skip_nonfinite=True)
    opt2.load_state_dict(saved)
    for (name, a), b in zip(
        optforge.ema_model(opt).state_dict().items(), optforge.ema_model(opt2).state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert optforge.step_stats(opt2).steps == 30

    wrong, _ = build(nn.Linear(4, 2), ema={"decay": 0.9})
    with pytest.raises(ValueError, match="EMA"):
        wrong.load_state_dict(saved)


def test_deepcopy_keeps_the_hooks_and_state() -> None:
    model = net()
    opt, sched = build(model, ema={"decay": 0.5}, clip_grad={"max_norm": 0.5}, skip_nonfinite=True)
    train(model, opt, 3)
    opt2, sched2 = copy.deepcopy((opt, sched))
    assert sched2.optimizer is opt2
    live2 = optforge.ema_model(opt2)
    before = [p.clone() for p in optforge.ema_model(opt).parameters()]
    params2 = [p for group in opt2.param_groups for p in group["params"]]
    for p in params2:
        p.grad = torch.ones_like(p) * 100
    opt2.step()
    assert optforge.step_stats(opt2).steps == 4
    assert optforge.step_stats(opt).steps == 3
    assert optforge.step_stats(opt2).grad_norm > 0.5
    assert not all(torch.equal(a, b) for a, b in zip(before, live2.parameters(), strict=True))
    for a, b in zip(before, optforge.ema_model(opt).parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_composite_optimizer_runs_them_too() -> None:
    model = net()
    config = {
        "optimizer": [{"name": "SGD", "lr": 0.1, "params": {"match": "0.*"}}, {"name": "AdamW", "lr": 0.01}],
        "clip_grad": {"max_norm": 0.1},
        "ema": {"decay": 0.9},
    }
    opt, _ = optforge.build(model, config)
    reference = timm_ema.ModelEmaV3(model, decay=0.9, exclude_buffers=True)
    train(model, opt, 10, lambda step: reference.update(model, step=step))
    for ours, theirs in zip(optforge.ema_model(opt).parameters(), reference.module.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert optforge.step_stats(opt).steps == 10


# --- config ---------------------------------------------------------------------------------------------------


def test_validate_reports_ema_decay() -> None:
    problems = validate_config({"optimizer": SGD, "ema": {"decay": 1.5}, "clip_grad": {"max_norm": -1}})
    assert [path for path, _ in problems] == ["clip_grad.max_norm", "ema.decay"]
    with pytest.raises(ConfigError) as caught:
        resolve({"optimizer": SGD, "ema": {"decay": 1.5, "warmpu": True}})
    assert [path for path, _ in caught.value.problems] == ["ema.decay", "ema.warmpu"]
    assert "did you mean 'warmup'" in str(caught.value)


def test_clip_grad_takes_exactly_one_mode() -> None:
    with pytest.raises(ConfigError, match="exactly one of max_norm, max_value, agc"):
        resolve({"optimizer": SGD, "clip_grad": {"max_norm": 1.0, "max_value": 1.0}})
    with pytest.raises(ConfigError, match="eps applies to agc"):
        resolve({"optimizer": SGD, "clip_grad": {"max_norm": 1.0, "eps": 1.0}})


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-3, 3), st.booleans(), st.just("1.0")
)
CLIP = st.one_of(
    st.fixed_dictionaries({"max_norm": NUMBERS}, optional={"norm_type": NUMBERS, "error_if_nonfinite": NUMBERS}),
    st.fixed_dictionaries({"max_value": NUMBERS}),
    st.fixed_dictionaries({"agc": NUMBERS}, optional={"eps": NUMBERS, "per_part": st.booleans()}),
    st.dictionaries(st.sampled_from(["max_norm", "max_value", "agc", "nrom"]), NUMBERS, max_size=3),
)
EMA = st.fixed_dictionaries(
    {"decay": NUMBERS},
    optional={
        "warmup": st.booleans(),
        "warmup_gamma": NUMBERS,
        "warmup_power": NUMBERS,
        "start_step": st.integers(-1, 3),
        "every": st.integers(-1, 3),
        "buffers": st.sampled_from(["copy", "average", "mean"]),
    },
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(clip=st.none() | CLIP, ema=st.none() | EMA, skip=st.none() | st.booleans() | st.just("yes"))
def test_any_clip_and_ema_config_builds_or_is_one_config_error(clip, ema, skip) -> None:
    config = {"optimizer": SGD, "clip_grad": clip, "ema": ema, "skip_nonfinite": skip}
    model = nn.Linear(3, 2)
    try:
        opt, sched = optforge.build(model, config)
    except ConfigError as error:
        problems = error.problems
    else:
        problems = []
    if problems:
        assert all(path.split(".")[0] in ("clip_grad", "ema", "skip_nonfinite") for path, _ in problems)
        return
    for _ in range(3):
        model(torch.randn(2, 3)).sum().backward()
        opt.step()
        sched.step()
    if clip is not None or ema is not None or skip:
        stats = optforge.step_stats(opt)
        assert stats.steps + stats.skipped == 3
    if ema is not None:
        assert isinstance(optforge.ema_model(opt), nn.Module)


def test_per_part_clips_each_part_of_a_composite_on_its_own() -> None:
    model = net()
    reference = copy.deepcopy(model)
    config = {
        "optimizer": [
            {"part": "first", "name": "SGD", "lr": 0.1, "params": {"match": "0.*"}},
            {"part": "rest", "name": "SGD", "lr": 0.1},
        ],
        "clip_grad": {"max_norm": 0.05, "per_part": True},
    }
    opt, _ = optforge.build(model, config)
    backward(model, 3, scale=10.0)
    backward(reference, 3, scale=10.0)
    opt.step()
    first = [reference[0].weight, reference[0].bias]
    rest = [reference[2].weight, reference[2].bias]
    expected = {
        "first": float(torch.nn.utils.clip_grad_norm_(first, 0.05)),
        "rest": float(torch.nn.utils.clip_grad_norm_(rest, 0.05)),
    }
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours.grad, theirs.grad)
    assert optforge.step_stats(opt).grad_norm == expected

    copied = copy.deepcopy(opt)  # a composite's copy keeps its hooks too
    backward(model, 4)
    copied.step()
    assert optforge.step_stats(copied).steps == 2
    assert optforge.step_stats(opt).steps == 1


def test_per_part_needs_a_composite() -> None:
    with pytest.raises(ConfigError, match="composite") as caught:
        build(net(), clip_grad={"max_norm": 1.0, "per_part": True})
    assert caught.value.problems[0][0] == "clip_grad.per_part"


def test_explain_shows_what_runs_around_the_step() -> None:
    config = {"optimizer": SGD, "clip_grad": {"agc": 0.01}, "ema": {"decay": 0.99, "warmup": True}}
    text = str(optforge.explain(net(), config))
    assert "before the step: clip the gradients adaptively (agc 0.01, eps 0.001)" in text
    assert "after the step: EMA of the weights, decay 0.99, warmup (gamma 1, power 0.667), after every step" in text
    assert optforge.explain(net(), {"optimizer": SGD}).around_step == ""


# --- DDP (2 ranks, gloo) ----------------------------------------------------------------------------------

DDP_CONFIG = {
    "optimizer": {"name": "AdamW", "lr": 1e-2},
    "schedule": {"cosine_decay": {"peak_value": 1e-2, "warmup_steps": 2, "decay_steps": 20}},
    "clip_grad": {"max_norm": 0.5},
    "ema": {"decay": 0.9},
    "skip_nonfinite": True,
}


def ddp_rank(rank: int, world_size: int, workdir: object) -> dict[str, object]:
    """One rank: DDP over its half of each batch; a NaN in rank 0's loss at step 3 reaches every rank."""
    model = nn.parallel.DistributedDataParallel(net())
    opt, sched = optforge.build(model, DDP_CONFIG)
    for step in range(1, 7):
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(step)).chunk(world_size)[rank]
        loss = (model(x) ** 2).mean() * (float("nan") if step == 3 and rank == 0 else 1.0)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    stats = optforge.step_stats(opt)
    ema = optforge.ema_model(opt)
    return {"ema": ema.state_dict(), "steps": stats.steps, "skipped": stats.skipped, "epoch": sched.last_epoch}


@pytest.mark.distributed
def test_ddp_ranks_skip_together_and_keep_the_same_ema(tmp_path) -> None:
    from tests.integrations._launch import run_ranks

    results = run_ranks("tests.test_around_step:ddp_rank", tmp_path)
    assert [(r["steps"], r["skipped"], r["epoch"]) for r in results] == [(5, 1, 5)] * 2
    assert isinstance(next(iter(results[0]["ema"])), str)
    assert list(results[0]["ema"]) == list(net().state_dict())  # the wrapped model's names, no "module."
    for name, value in results[0]["ema"].items():
        assert torch.equal(value, results[1]["ema"][name])


@pytest.mark.parametrize("build_one", [optforge.build, optforge.build_optimizer], ids=["build", "build_optimizer"])
def test_a_composite_lists_its_parts_and_around_step_problems_in_one_error(build_one: object) -> None:
    config = {
        "optimizer": [
            {"part": "first", "name": "SGD", "lr": -1.0, "params": {"match": "0.*"}},
            {"part": "rest", "name": "SGD", "lr": 0.1},
        ],
        "clip_grad": {"max_norm": -1.0},
        "ema": {"decay": 2.0},
    }
    with pytest.raises(ConfigError) as caught:
        build_one(net(), config)  # type: ignore[operator]
    paths = [path for path, _ in caught.value.problems]
    assert any(path.startswith("optimizer[0]") for path in paths), paths
    assert any(path.startswith("clip_grad") for path in paths), paths
    assert any(path.startswith("ema") for path in paths), paths
