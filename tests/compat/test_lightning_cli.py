"""optforge.compat.lightning_cli against Lightning's own instantiation of the same sections.

LightningCLI builds ``instantiate_class(model.parameters(), optimizer_init)`` and
``instantiate_class(optimizer, lr_scheduler_init)`` and hands them to the trainer through
``LightningCLI.configure_optimizers``, which steps the scheduler once per epoch.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import optforge
from optforge.compat.lightning_cli import build
from optforge.config.stacks import StackWarning, recognise
from optforge.config.stacks.lightning import translate
from optforge.errors import ConfigError

cli = pytest.importorskip("lightning.pytorch.cli")

EPOCHS = 300


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def _section(class_path, **init_args):
    return {"class_path": class_path, "init_args": init_args}


CASES = {
    "adamw-cosine": (
        _section("torch.optim.AdamW", lr=3e-3, weight_decay=0.05, betas=[0.9, 0.95]),
        _section("torch.optim.lr_scheduler.CosineAnnealingLR", T_max=120, eta_min=1e-5),
    ),
    "sgd-step": (
        _section("torch.optim.SGD", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        _section("torch.optim.lr_scheduler.StepLR", step_size=30, gamma=0.5),
    ),
    "radam-multistep-full-module-path": (
        _section("torch.optim.radam.RAdam", lr=1e-3),
        _section("torch.optim.lr_scheduler.MultiStepLR", milestones=[50, 120, 200], gamma=0.3),
    ),
    "adam-onecycle": (
        _section("torch.optim.Adam", lr=1e-3),
        _section("torch.optim.lr_scheduler.OneCycleLR", max_lr=0.01, total_steps=EPOCHS),
    ),
    "timm-lamb-exponential": (
        _section("timm.optim.Lamb", lr=2e-3, weight_decay=0.02),
        _section("torch.optim.lr_scheduler.ExponentialLR", gamma=0.99),
    ),
    "optforge-lion-linear": (
        _section("optforge.optimizers.lion.Lion", lr=1e-4, weight_decay=0.1),
        _section("torch.optim.lr_scheduler.LinearLR", start_factor=0.1, total_iters=40),
    ),
    "bare-optimizer": ("torch.optim.Adagrad", None),
}


def _reference(model, optimizer_init, scheduler_init):
    if isinstance(optimizer_init, str):
        optimizer_init = {"class_path": optimizer_init}
    optimizer = cli.instantiate_class(model.parameters(), optimizer_init)
    scheduler = None if scheduler_init is None else cli.instantiate_class(optimizer, scheduler_init)
    configured = cli.LightningCLI.configure_optimizers(None, optimizer, scheduler)
    return optimizer, scheduler, configured


def _hyperparameters(optimizer):
    return [{k: v for k, v in group.items() if k not in ("params", "initial_lr")} for group in optimizer.param_groups]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_optimizer_groups_and_lr_of_every_epoch(case):
    optimizer_init, scheduler_init = CASES[case]
    config = {"optimizer": optimizer_init}
    if scheduler_init is not None:
        config["lr_scheduler"] = scheduler_init
    ref_opt, ref_sched, configured = _reference(_model(), optimizer_init, scheduler_init)
    model = _model()
    opt, sched = build(model, config)

    assert type(opt) is type(ref_opt)
    assert [len(g["params"]) for g in opt.param_groups] == [len(g["params"]) for g in ref_opt.param_groups]
    assert [id(p) for g in opt.param_groups for p in g["params"]] == [id(p) for p in model.parameters()]
    ours = _hyperparameters(opt)
    theirs = _hyperparameters(ref_opt)
    assert ours[0].keys() >= theirs[0].keys()
    assert [{k: g[k] for k in theirs[0]} for g in ours] == theirs
    if scheduler_init is None:
        assert configured is ref_opt
        return
    assert configured == ([ref_opt], [ref_sched])  # no interval given: Lightning's default, once per epoch
    assert translate(config, {}).document["schedule"]["interval"] == "epoch"
    for epoch in range(EPOCHS):
        for ours_group, ref_group in zip(opt.param_groups, ref_opt.param_groups):
            assert _close(ours_group["lr"], ref_group["lr"]), (epoch, ours_group["lr"], ref_group["lr"])
        for o in (opt, ref_opt):
            o.step()
        sched.step()
        ref_sched.step()


def test_lightning_plateau_takes_its_monitor_and_steps_on_the_metric():
    optimizer_init = _section("torch.optim.SGD", lr=0.1)
    scheduler_init = _section("lightning.pytorch.cli.ReduceLROnPlateau", monitor="val_loss", patience=2, factor=0.5)
    ref_opt, ref_sched, configured = _reference(_model(), optimizer_init, scheduler_init)
    config = {"optimizer": optimizer_init, "lr_scheduler": scheduler_init}
    schedule = translate(config, {}).document["schedule"]
    assert configured["lr_scheduler"]["monitor"] == schedule["monitor"] == "val_loss"
    opt, sched = build(_model(), config)
    losses = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.9, 0.91, 0.92, 0.93] * 5
    for loss in losses:
        sched.step(loss)
        ref_sched.step(loss)
        assert _close(opt.param_groups[0]["lr"], ref_opt.param_groups[0]["lr"])
    assert opt.param_groups[0]["lr"] < 0.1


def test_clipping_from_the_trainer_and_other_keys_in_one_warning():
    config = {
        "seed_everything": 1,
        "model": {"class_path": "my.Model", "init_args": {"hidden": 8}},
        "data": {"batch_size": 4},
        "trainer": {
            "max_epochs": 5,
            "gradient_clip_val": 0.5,
            "gradient_clip_algorithm": "value",
            "accumulate_grad_batches": 4,
        },
        "optimizer": _section("torch.optim.SGD", lr=0.1),
    }
    assert recognise(config).name == "lightning"
    translation = translate(config, {})
    assert translation.document["clip_grad"] == {"max_value": 0.5}
    assert [item.path for item in translation.unexpressed] == [
        "trainer.accumulate_grad_batches",
        "trainer.max_epochs, seed_everything, model, data",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer, _ = build(_model(), config)
    assert len(caught) == 1
    assert "trainer.accumulate_grad_batches" in str(caught[0].message)
    assert "seed_everything, model, data" in str(caught[0].message)
    assert optimizer.param_groups[0]["lr"] == 0.1
    norm = {**config, "trainer": {"gradient_clip_val": 1.0}}
    assert translate(norm, {}).document["clip_grad"] == {"max_norm": 1.0}
    with pytest.warns(StackWarning):  # recognised by optforge.build itself
        optimizer, _ = optforge.build(_model(), norm)
    assert type(optimizer) is torch.optim.SGD


def test_bad_file_is_one_error_with_every_field_path():
    config = {
        "optimizer": {"class_path": "torch.optim.SGD", "init_arg": {"lr": 0.1}},
        "lr_scheduler": _section("lightning.pytorch.cli.ReduceLROnPlateau", patience=2),
        "trainer": {"gradient_clip_val": 1.0, "gradient_clip_algorithm": "nrom"},
    }
    with pytest.raises(ConfigError) as err:
        build(_model(), config)
    paths = [path for path, _ in err.value.problems]
    assert paths == ["optimizer.init_arg", "lr_scheduler.init_args.monitor", "trainer.gradient_clip_algorithm"]
    assert "init_args" in str(err.value)
    assert "'nrom'" in str(err.value)
    assert "norm, value" in str(err.value)


def test_bad_arguments_are_reported_at_their_init_args():
    config = {
        "optimizer": _section("torch.optim.SGD", lr=0.1, momentx=0.9),
        "lr_scheduler": _section("torch.optim.lr_scheduler.StepLR", step_size=10),
    }
    with pytest.raises(ConfigError) as err:
        build(_model(), config)
    assert [path for path, _ in err.value.problems] == ["optimizer.init_args.momentx"]
    assert "momentum" in str(err.value)
    for class_path, where in (
        ("torch.optim.Adamm", "optimizer.class_path"),
        ("torch.nn.Linear", "optimizer.class_path"),
    ):
        with pytest.raises(ConfigError) as err:
            build(_model(), {"optimizer": _section(class_path, lr=0.1)})
        assert [path for path, _ in err.value.problems] == [where]
    with pytest.raises(ConfigError) as err:
        build(
            _model(),
            {
                "optimizer": _section("torch.optim.SGD", lr=0.1),
                "lr_scheduler": _section("torch.optim.lr_scheduler.StepLR", step_sz=3),
            },
        )
    assert next(path for path, _ in err.value.problems).startswith("lr_scheduler.init_args.step_s")


def test_without_an_optimizer_section_the_model_decides():
    with pytest.raises(ConfigError) as err:
        translate({"lr_scheduler": _section("torch.optim.lr_scheduler.StepLR", step_size=1)}, {})
    assert [path for path, _ in err.value.problems] == ["optimizer"]
