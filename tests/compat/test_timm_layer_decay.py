"""optforge.compat.timm with ``layer_decay`` against timm's create_optimizer_v2 on a small ViT."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from optforge.compat.timm import build, layer_ids
from optforge.config.stacks.timm import TRAIN_DEFAULTS, translate
from optforge.errors import ConfigError

timm = pytest.importorskip("timm")
from timm.optim import create_optimizer_v2  # noqa: E402
from timm.scheduler import create_scheduler_v2, scheduler_kwargs  # noqa: E402

UPDATES = 4


def _vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2)


def _by_param(optimizer, model, key, default=None):
    """``group[key]`` of each parameter's group, by the parameter's name."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g.get(key, default) for g in optimizer.param_groups for p in g["params"]}


@pytest.mark.parametrize(
    "args",
    [
        {"opt": "adamw", "lr": 1e-3, "weight_decay": 0.05, "layer_decay": 0.75, "sched": "cosine", "epochs": 12},
        {
            "opt": "sgd",
            "lr": 0.1,
            "weight_decay": 0.0,
            "layer_decay": 0.5,
            "sched": "step",
            "epochs": 10,
            "decay_epochs": 3,
            "warmup_epochs": 2,
        },
        {"opt": "lamb", "lr": 2e-3, "layer_decay": 0.9, "sched": "cosine", "epochs": 8, "sched_on_updates": True},
    ],
    ids=["adamw-cosine", "sgd-step-no-wd", "lamb-updates"],
)
def test_same_layer_groups_scales_and_lrs_as_timm(args):
    ns = argparse.Namespace(**{**TRAIN_DEFAULTS, **args})
    ref_model, model = _vit(), _vit()
    ref = create_optimizer_v2(
        ref_model, opt=ns.opt, lr=ns.lr, weight_decay=ns.weight_decay, momentum=ns.momentum, layer_decay=ns.layer_decay
    )
    ref_sched, _ = create_scheduler_v2(ref, **scheduler_kwargs(ns), updates_per_epoch=UPDATES)
    ours, sched = build(model, args, updates_per_epoch=UPDATES)
    assert type(ours) is type(ref)
    assert _by_param(ours, model, "weight_decay") == _by_param(ref, ref_model, "weight_decay")
    scales, ref_scales = _by_param(ours, model, "lr_scale", 1.0), _by_param(ref, ref_model, "lr_scale")
    assert scales.keys() == ref_scales.keys()  # the same parameters
    for name, scale in ref_scales.items():
        assert math.isclose(scales[name], scale, rel_tol=1e-12), name
    assert sorted(set(ref_scales.values())) == [ns.layer_decay**k for k in (3, 2, 1, 0)]  # stem, two blocks, head
    num_updates = 0
    for epoch in range(ns.epochs):
        for _ in range(UPDATES):
            expected, got = _by_param(ref, ref_model, "lr"), _by_param(ours, model, "lr")
            for name, lr in expected.items():
                assert math.isclose(got[name], lr, rel_tol=1e-12, abs_tol=1e-300), (epoch, name, got[name], lr)
            num_updates += 1
            ref_sched.step_update(num_updates=num_updates)
            if ns.sched_on_updates:
                sched.step()
        ref_sched.step(epoch + 1)
        if not ns.sched_on_updates:
            sched.step()


def test_layer_ids_are_timms_and_the_translation_needs_them():
    ids = layer_ids(_vit())
    assert ids["patch_embed.proj.weight"] == 0
    assert ids["blocks.0.mlp.fc1.bias"] == 1
    assert ids["norm.weight"] == 2
    assert ids["head.weight"] == 3
    with pytest.raises(ConfigError) as err:
        translate({"opt": "adamw", "sched": "cosine", "layer_decay": 0.7, "layer_decay_min_scale": 0.1}, {})
    assert [path for path, _ in err.value.problems] == ["layer_decay_min_scale", "layer_decay"]
    with pytest.raises(ConfigError) as err:
        build(_vit(), {"opt": "adamw", "sched": "cosine", "layer_decay": 1.5})
    assert [path for path, _ in err.value.problems] == ["layer_decay"]
