"""``optforge convert``'s document builds what each stack's ``optforge.compat`` builder builds.

For each stack: the converted YAML, read back and built with ``optforge.build``, gives the
same optimizer class, the same settings for every parameter and the same lr at every step
as ``optforge.compat.<stack>.build`` on the same model.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import yaml
from torch import nn

import optforge
from optforge.compat import lightning_cli, mmengine, timm, torchtune
from optforge.convert import convert

STEPS = 120


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3)
        self.dw = nn.Conv2d(4, 4, 3, groups=4)
        self.bn = nn.BatchNorm2d(4)
        self.body = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        self.head = nn.Linear(8, 2)


def _mmengine(model):
    optim_wrapper = {
        "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        "paramwise_cfg": {"norm_decay_mult": 0.0, "dwconv_decay_mult": 0.5, "custom_keys": {"head": {"lr_mult": 5.0}}},
        "clip_grad": {"max_norm": 10.0},
    }
    schedulers = [
        {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "begin": 0, "end": 20},
        {"type": "CosineRestartLR", "periods": [5, 7], "restart_weights": [1.0, 0.5], "eta_min": 1e-4},
    ]
    file = {"optim_wrapper": optim_wrapper, "param_scheduler": schedulers}
    facts = {"max_epochs": 12, "total_steps": STEPS, "steps_per_epoch": 10}
    built = mmengine.build(model, optim_wrapper, schedulers, max_epochs=12, max_iters=STEPS, epoch_length=10)
    return file, facts, built


def _timm(model):
    args = {
        "opt": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "sched": "cosine",
        "epochs": 12,
        "warmup_epochs": 2,
        "sched_on_updates": True,
        "clip_grad": 1.0,
    }
    return args, {"steps_per_epoch": 10}, timm.build(model, args, updates_per_epoch=10)


def _lightning(model):
    file = {
        "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 3e-3, "weight_decay": 0.01}},
        "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.CosineAnnealingLR", "init_args": {"T_max": 50}},
        "trainer": {"gradient_clip_val": 0.5, "max_epochs": 3},
    }
    return file, {}, lightning_cli.build(model, file)


def _torchtune(model):
    file = {
        "optimizer": {"_component_": "torch.optim.AdamW", "lr": 2e-5, "weight_decay": 0.01},
        "lr_scheduler": {
            "_component_": "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
            "num_warmup_steps": 15,
        },
        "clip_grad_norm": 1.0,
        "epochs": 1,
    }
    return file, {"total_steps": STEPS}, torchtune.build(model, file, num_training_steps=STEPS)


STACKS = {"mmengine": _mmengine, "timm": _timm, "lightning": _lightning, "torchtune": _torchtune}
CLIPPING = {
    "mmengine": {"max_norm": 10.0},
    "timm": {"max_norm": 1.0},
    "lightning": {"max_norm": 0.5},
    "torchtune": {"max_norm": 1.0},
}


def _settings(optimizer, model):
    """Each parameter's group settings (its lr included), by the parameter's name."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: {k: v for k, v in g.items() if k not in ("params", "name")}
        for g in optimizer.param_groups
        for p in g["params"]
    }


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_converted_document_builds_the_same_optimizer_and_schedule(stack):
    ref_model, model = Net(), Net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fields the documents do not carry
        file, facts, (ref, ref_sched) = STACKS[stack](ref_model)
        text = convert(file, stack, **facts)
    assert text.startswith("# Converted from ")
    document = yaml.safe_load(text)
    assert document["clip_grad"] == CLIPPING[stack]
    ours, sched = optforge.build(model, document)
    assert type(ours) is type(ref)
    assert _settings(ours, model) == _settings(ref, ref_model)  # every parameter's settings, its lr included
    lrs = set()
    for step in range(STEPS):
        got, want = _settings(ours, model), _settings(ref, ref_model)
        for name, settings in want.items():
            a, b = got[name]["lr"], settings["lr"]
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300), (stack, step, name, a, b)
        lrs.add(round(want["head.weight"]["lr"], 12))
        ours.step()
        ref.step()
        sched.step()
        ref_sched.step()
    assert len(lrs) > 10  # the schedule moves
