"""optforge.compat.timm against timm's create_optimizer_v2 and create_scheduler_v2, stepped as train.py steps them."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
from torch import nn

from optforge.compat.timm import build
from optforge.config.stacks.timm import TRAIN_DEFAULTS, translate
from optforge.errors import ConfigError

timm_optim = pytest.importorskip("timm.optim")
from timm.scheduler import create_scheduler_v2, scheduler_kwargs  # noqa: E402

UPDATES = 5


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)
        self.pos = nn.Parameter(torch.zeros(1, 8))

    def no_weight_decay(self):
        return {"pos"}


def _reference(model, args):
    ns = argparse.Namespace(**{**TRAIN_DEFAULTS, **args})
    lr = ns.lr or 0.0
    kwargs = {"opt": ns.opt, "lr": lr, "weight_decay": ns.weight_decay, "momentum": ns.momentum, **ns.opt_kwargs}
    if ns.opt_betas is not None:
        kwargs["betas"] = ns.opt_betas
    if not ns.lr:  # train.py: lr from lr_base and the global batch size
        ratio = ns.batch_size * ns.grad_accum_steps / ns.lr_base_size
        scale = ns.lr_base_scale or ("sqrt" if any(k in ns.opt for k in ("ada", "lamb")) else "linear")
        kwargs["lr"] = ns.lr_base * (math.sqrt(ratio) if scale == "sqrt" else ratio)
    optimizer = timm_optim.create_optimizer_v2(model, **kwargs)
    scheduler, _ = create_scheduler_v2(optimizer, **scheduler_kwargs(ns), updates_per_epoch=UPDATES)
    return optimizer, scheduler, ns


CASES = {
    "sgd_cosine": {"opt": "sgd", "lr": 0.1, "sched": "cosine", "epochs": 30, "warmup_epochs": 3},
    "adamw_cosine_updates": {
        "opt": "adamw",
        "lr": 1e-3,
        "sched": "cosine",
        "epochs": 20,
        "sched_on_updates": True,
        "warmup_prefix": True,
        "lr_cycle_limit": 2,
        "lr_cycle_mul": 1.5,
        "opt_betas": [0.9, 0.95],
    },
    "lamb_lr_base_tanh": {"opt": "lamb", "sched": "tanh", "epochs": 25, "batch_size": 64, "weight_decay": 0.02},
    "step": {"opt": "momentum", "lr": 0.05, "sched": "step", "epochs": 40, "decay_epochs": 7, "decay_rate": 0.5},
    "multistep_no_wd": {
        "opt": "sgd",
        "lr": 0.05,
        "sched": "multistep",
        "epochs": 40,
        "decay_milestones": [10, 25],
        "weight_decay": 0.0,
    },
    "poly_noise": {
        "opt": "adamw",
        "lr": 2e-3,
        "sched": "poly",
        "epochs": 30,
        "lr_noise": [0.4, 0.8],
        "lr_k_decay": 0.5,
    },
    "wsd_updates": {
        "opt": "adamw",
        "lr": 1e-3,
        "sched": "wsd",
        "epochs": 30,
        "decay_epochs": 8,
        "sched_on_updates": True,
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_optimizer_and_lrs_as_timm(case):
    args = CASES[case]
    ref, ref_sched, ns = _reference(Net(), args)
    model = Net()
    ours, sched = build(model, args, updates_per_epoch=UPDATES)  # the lrs are compared sorted: groups may reorder
    assert type(ours) is type(ref)
    assert len(ours.param_groups) == len(ref.param_groups)
    # Per-step lrs: train.py calls step_update(num_updates) after each update and step(epoch + 1) after each epoch.
    num_updates = 0
    for epoch in range(ns.epochs):
        for _ in range(UPDATES):
            ref_lrs = sorted(g["lr"] for g in ref.param_groups)
            our_lrs = sorted(g["lr"] for g in ours.param_groups)
            for a, b in zip(ref_lrs, our_lrs):
                assert math.isclose(b, a, rel_tol=1e-12, abs_tol=1e-300), (epoch, num_updates, b, a)
            num_updates += 1
            ref_sched.step_update(num_updates=num_updates)
            if ns.sched_on_updates:
                sched.step()
        ref_sched.step(epoch + 1)
        if not ns.sched_on_updates:
            sched.step()


def test_same_groups_as_timm():
    model_ref, model = Net(), Net()
    ref, _, _ = _reference(model_ref, {"opt": "adamw", "lr": 1e-3, "weight_decay": 0.05})
    ours, _ = build(model, {"opt": "adamw", "lr": 1e-3, "weight_decay": 0.05, "sched": "none"})
    names = {id(p): n for n, p in model.named_parameters()}
    ref_names = {id(p): n for n, p in model_ref.named_parameters()}
    expected = {frozenset(ref_names[id(p)] for p in g["params"]): g["weight_decay"] for g in ref.param_groups}
    got = {frozenset(names[id(p)] for p in g["params"]): g.get("weight_decay") for g in ours.param_groups}
    assert got == expected  # no decay for biases, 1-D parameters and model.no_weight_decay()
    for key in ("lr", "betas", "eps"):
        assert ours.defaults[key] == ref.defaults[key]


def test_clip_and_ema_and_namespace():
    args = argparse.Namespace(
        **{
            **TRAIN_DEFAULTS,
            "opt": "sgd",
            "lr": 0.1,
            "clip_grad": 1.0,
            "clip_mode": "agc",
            "model_ema": True,
            "model_ema_decay": 0.999,
            "model_ema_warmup": True,
        }
    )
    doc = translate(vars(args), {}).document
    assert doc["clip_grad"] == {"agc": 1.0}
    assert doc["ema"] == {"decay": 0.999, "warmup": True}
    with pytest.warns(UserWarning, match="last two"):
        build(Net(), args)


def test_bad_input_is_one_error_with_train_py_names():
    with pytest.raises(ConfigError) as err:
        translate({"opt": "adamw", "sched": "cosin", "clip_grad": 1.0, "clip_mode": "nrom", "lr_base_scale": "log"}, {})
    assert [p for p, _ in err.value.problems] == ["lr_base_scale", "sched", "clip_mode"]
    assert "cosine" in str(err.value)
