"""optforge.compat.torchtune against torchtune's own code: the same optimizer and lr at every step.

torchtune 0.6.1 does not import on this torch (its ``torchtune.modules`` needs a torchao that
is not installed), so the oracle is the installed ``torchtune/training/lr_schedulers.py``
itself, loaded from its file with the one name it imports from torchtune stubbed.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys
import types
import warnings

import pytest
import torch
from torch import nn

import optforge
from optforge.compat.torchtune import build
from optforge.config.stacks import StackWarning, recognise
from optforge.config.stacks.torchtune import COSINE_WITH_WARMUP, translate
from optforge.errors import ConfigError

_SPEC = importlib.util.find_spec("torchtune")
if _SPEC is None or _SPEC.origin is None:
    pytest.skip("torchtune is not installed", allow_module_level=True)
_SOURCE = pathlib.Path(_SPEC.origin).parent / "training" / "lr_schedulers.py"


@pytest.fixture(scope="module")
def torchtune_schedulers():
    """torchtune's lr_schedulers module, loaded from its installed file."""
    stub = types.ModuleType("torchtune.training.memory")
    stub.OptimizerInBackwardWrapper = type("OptimizerInBackwardWrapper", (), {})
    saved = {name: sys.modules.get(name) for name in ("torchtune.training.memory",)}
    sys.modules["torchtune.training.memory"] = stub
    try:
        spec = importlib.util.spec_from_file_location("_torchtune_lr_schedulers", _SOURCE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    return module


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)


OPTIMIZERS = {
    "adamw": {"_component_": "torch.optim.AdamW", "lr": 2e-5, "weight_decay": 0.01, "fused": False},
    "sgd": {"_component_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9},
    "timm-adopt": {"_component_": "timm.optim.Adopt", "lr": 1e-3},
}
SCHEDULES = [(100, 400, 0.5), (0, 300, 0.5), (30, 250, 1.5), (50, 40, 0.5)]


@pytest.mark.parametrize(("warmup", "total", "cycles"), SCHEDULES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_same_optimizer_and_lr_of_every_step(torchtune_schedulers, name, warmup, total, cycles):
    cfg = {
        "optimizer": dict(OPTIMIZERS[name]),
        "lr_scheduler": {"_component_": COSINE_WITH_WARMUP[0], "num_warmup_steps": warmup, "num_cycles": cycles},
    }
    kwargs = {key: value for key, value in cfg["optimizer"].items() if key != "_component_"}
    ref_model, model = _model(), _model()
    ref_cls = optforge.get_optimizer_entry(cfg["optimizer"]["_component_"]).resolve_class()
    ref_opt = ref_cls(ref_model.parameters(), **kwargs)  # the recipe: config.instantiate(cfg, model.parameters())
    ref_sched = torchtune_schedulers.get_cosine_schedule_with_warmup(
        ref_opt, num_warmup_steps=warmup, num_training_steps=total, num_cycles=cycles
    )
    opt, sched = build(model, cfg, num_training_steps=total)
    assert type(opt) is type(ref_opt)
    assert len(opt.param_groups) == 1
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters()]
    theirs = {k: v for k, v in ref_opt.param_groups[0].items() if k not in ("params", "initial_lr", "lr")}
    assert {k: opt.param_groups[0][k] for k in theirs} == theirs
    for step in range(max(total, 300) + 20):  # past the end too
        assert _close(opt.param_groups[0]["lr"], ref_opt.param_groups[0]["lr"]), (step, opt.param_groups[0]["lr"])
        opt.step()
        ref_opt.step()
        sched.step()
        ref_sched.step()


def test_torch_scheduler_gets_the_recipes_num_training_steps():
    cfg = {
        "optimizer": {"_component_": "torch.optim.SGD", "lr": 0.1},
        "lr_scheduler": {"_component_": "torch.optim.lr_scheduler.StepLR", "step_size": 3},
    }
    schedule = translate(cfg, {"num_training_steps": 50}).document["schedule"]
    assert schedule == {"name": "StepLR", "step_size": 3, "num_training_steps": 50}
    with pytest.raises(ConfigError) as err:  # the recipe would fail too: StepLR takes no num_training_steps
        build(_model(), cfg, num_training_steps=50)
    assert [path for path, _ in err.value.problems] == ["lr_scheduler.num_training_steps"]


def test_clipping_and_other_keys_in_one_warning():
    cfg = {
        "model": {"_component_": "torchtune.models.llama3_2.llama3_2_1b"},
        "batch_size": 4,
        "epochs": 1,
        "optimizer": {"_component_": "torch.optim.AdamW", "lr": 2e-5},
        "lr_scheduler": {"_component_": COSINE_WITH_WARMUP[1], "num_warmup_steps": 10},
        "clip_grad_norm": 1.0,
        "gradient_accumulation_steps": 8,
        "optimizer_in_bwd": False,
    }
    assert recognise(cfg).name == "torchtune"
    translation = translate(cfg, {"num_training_steps": 100})
    assert translation.document["clip_grad"] == {"max_norm": 1.0}
    assert [item.path for item in translation.unexpressed] == [
        "gradient_accumulation_steps",
        "model, batch_size, epochs, optimizer_in_bwd",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build(_model(), cfg, num_training_steps=100)
    assert len(caught) == 1
    assert "model, batch_size, epochs" in str(caught[0].message)
    assert translate({**cfg, "clip_grad_norm": "inf"}, {"num_training_steps": 100}).document.get("clip_grad") is None
    with pytest.warns(StackWarning):  # recognised by optforge.build, total_steps as num_training_steps
        optimizer, _scheduler = optforge.build(_model(), cfg, total_steps=100)
    assert optimizer.param_groups[0]["lr"] == 0.0


def test_bad_config_is_one_error_with_every_field_path():
    cfg = {
        "optimizer": {"_component_": "torch.optim.AdamW"},
        "lr_scheduler": {"_component_": COSINE_WITH_WARMUP[0], "num_warmup_steps": -1, "num_cycle": 1},
        "clip_grad_norm": "big",
    }
    with pytest.raises(ConfigError) as err:
        build(_model(), cfg)
    paths = [path for path, _ in err.value.problems]
    assert paths == [
        "num_training_steps",
        "lr_scheduler.num_cycle",
        "lr_scheduler.num_warmup_steps",
        "optimizer.lr",
        "clip_grad_norm",
    ]
    assert "num_cycles" in str(err.value)
    assert "'big'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build(_model(), {"optimizer": {"_component_": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 1.5]}})
    assert [path for path, _ in err.value.problems] == ["optimizer.betas[1]"]
