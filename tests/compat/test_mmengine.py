"""optforge.compat.mmengine against mmengine itself: the same groups, hyperparameters and lr at every step."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from optforge.compat.mmengine import build
from optforge.config.stacks.mmengine import translate
from optforge.errors import ConfigError

mm_optim = pytest.importorskip("mmengine.optim")
from mmengine.registry import PARAM_SCHEDULERS  # noqa: E402

EPOCH_LENGTH, EPOCHS = 7, 12
ITERS = EPOCH_LENGTH * EPOCHS


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3)
        self.dw = nn.Conv2d(4, 4, 3, groups=4)
        self.bn = nn.BatchNorm2d(4)
        self.backbone = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 4, bias=False))
        self.attn = nn.MultiheadAttention(4, 2)
        self.head = nn.Linear(4, 2)
        self.scale = nn.Parameter(torch.ones(4))
        self.frozen = nn.Parameter(torch.ones(2), requires_grad=False)


def _constructor(optim_wrapper):
    cfg = copy.deepcopy(dict(optim_wrapper))
    return mm_optim.DefaultOptimWrapperConstructor(cfg, cfg.pop("paramwise_cfg", None))


def _reference(model, optim_wrapper, schedulers):
    wrapper = _constructor(optim_wrapper)(model)
    built = []
    for cfg in copy.deepcopy(schedulers):
        cfg.setdefault("end", EPOCHS if cfg.get("by_epoch", True) else ITERS)
        built.append(PARAM_SCHEDULERS.build(cfg, default_args={"optimizer": wrapper, "epoch_length": EPOCH_LENGTH}))
    return wrapper, built


def _settings(optimizer, names):
    """Each parameter's group settings (lr and weight decay included), by name."""
    out = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            out[names[id(param)]] = {k: v for k, v in group.items() if k not in ("params", "name", "lr_scale")}
    return out


def _lrs_by_param(optimizer, names):
    return {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}


PARAMWISE = {
    "none": None,
    "norm_bias_flat": {"norm_decay_mult": 0.0, "bias_decay_mult": 0.5, "bias_lr_mult": 2.0, "flat_decay_mult": 0.1},
    "bias_only": {"bias_lr_mult": 2.0},
    "dwconv": {"dwconv_decay_mult": 0.2, "bias_decay_mult": 0.5, "flat_decay_mult": 0.3, "bias_lr_mult": 3.0},
    "dwconv_norm": {"dwconv_decay_mult": 0.0, "norm_decay_mult": 0.1},
    "custom_keys": {
        "custom_keys": {
            "backbone": {"lr_mult": 0.1, "decay_mult": 0.5},
            "backbone.0": {"lr_mult": 0.3},
            "head": {"lr_mult": 10.0, "momentum": 0.5},
            ".scale": {"decay_mult": 0.0},
            "in_proj": {"lr": 0.05},
        },
        "norm_decay_mult": 0.0,
    },
}
SCHEDULES = {
    "warmup_cosine_converted": [
        {"type": "LinearLR", "start_factor": 1 / 3, "by_epoch": False, "begin": 0, "end": 20},
        {"type": "CosineAnnealingLR", "by_epoch": True, "begin": 1, "eta_min": 1e-4, "convert_to_iter_based": True},
    ],
    "warmup_cosine_by_epoch": [
        {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "begin": 0, "end": 10},
        {"type": "CosineAnnealingLR", "by_epoch": True, "begin": 0, "T_max": 12, "eta_min_ratio": 0.01},
    ],
    "constant_then_multistep": [
        {"type": "ConstantLR", "factor": 0.5, "by_epoch": False, "begin": 0, "end": 15},
        {"type": "MultiStepLR", "milestones": [4, 8, 8], "gamma": 0.3, "by_epoch": True},
    ],
    "poly_iters": [{"type": "PolyLR", "eta_min": 1e-5, "power": 0.9, "by_epoch": False, "begin": 5}],
    "step_exponential": [
        {"type": "StepLR", "step_size": 2, "gamma": 0.7, "convert_to_iter_based": True, "end": 8},
        {"type": "ExponentialLR", "gamma": 0.99, "by_epoch": False, "begin": 30},
    ],
    "constant_one_step": [{"type": "ConstantLR", "factor": 0.25, "by_epoch": True, "begin": 2, "end": 3}],
    "onecycle_iters": [{"type": "OneCycleLR", "eta_max": 0.5, "by_epoch": False, "pct_start": 0.25}],
    "onecycle_three_phase_linear_then_step": [
        {
            "type": "OneCycleLR",
            "eta_max": 0.3,
            "total_steps": 60,
            "by_epoch": False,
            "end": 61,
            "three_phase": True,
            "anneal_strategy": "linear",
            "div_factor": 10.0,
            "final_div_factor": 100.0,
        },
        {"type": "StepLR", "step_size": 3, "gamma": 0.5, "by_epoch": False, "begin": 61},
    ],
    "warmup_onecycle_converted_cosine_ratio": [
        {"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "begin": 0, "end": 5},
        {"type": "OneCycleLR", "eta_max": 0.4, "by_epoch": True, "begin": 1, "end": 8, "convert_to_iter_based": True},
        {"type": "CosineAnnealingLR", "by_epoch": False, "begin": 56, "eta_min_ratio": 0.1},
    ],
    "cosine_restart_iters": [
        {
            "type": "CosineRestartLR",
            "periods": [20, 30, 25],
            "restart_weights": [1.0, 0.6, 0.3],
            "eta_min": 1e-4,
            "by_epoch": False,
        },
    ],
    "warmup_cosine_restart_by_epoch": [
        {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "begin": 0, "end": 10},
        {"type": "CosineRestartLR", "periods": [4, 5], "restart_weights": [1, 0.5], "eta_min_ratio": 0.05},
    ],
    "cosine_restart_converted": [
        {
            "type": "CosineRestartLR",
            "periods": [3, 6],
            "restart_weights": [1, 0.8],
            "eta_min": 0.0,
            "convert_to_iter_based": True,
            "begin": 1,
        },
    ],
}


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("paramwise", sorted(PARAMWISE))
def test_same_optimizer_and_lrs_as_mmengine(paramwise, schedule):
    optim_wrapper = {
        "type": "OptimWrapper",
        "optimizer": {"type": "SGD", "lr": 0.2, "momentum": 0.9, "weight_decay": 1e-3},
        "clip_grad": {"max_norm": 5.0},
    }
    if PARAMWISE[paramwise] is not None:
        optim_wrapper["paramwise_cfg"] = PARAMWISE[paramwise]
    model = Net()
    names = {id(p): n for n, p in model.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mmengine's "scheduler.step() before optimizer.step()" at construction
        ref_wrapper, ref_schedulers = _reference(model, optim_wrapper, SCHEDULES[schedule])
    ref = ref_wrapper.optimizer
    ours, scheduler = build(
        model, optim_wrapper, SCHEDULES[schedule], max_epochs=EPOCHS, max_iters=ITERS, epoch_length=EPOCH_LENGTH
    )
    assert type(ours) is type(ref)
    ref_settings, our_settings = _settings(ref, names), _settings(ours, names)
    # Without paramwise_cfg mmengine also hands the frozen parameter to the optimizer (which never updates it).
    frozen = {"frozen"} if paramwise == "none" else set()
    assert set(our_settings) == set(ref_settings) - frozen  # the same parameters (merged groups: another order)
    for name in frozen:
        del ref_settings[name]
    for name, settings in ref_settings.items():
        mine = our_settings[name]
        for key, value in settings.items():
            if key in ("initial_lr", "max_lr", "min_lr", "lr_mult", "decay_mult"):  # mmengine's bookkeeping
                continue
            if isinstance(value, float) and not isinstance(value, bool):
                assert mine[key] == pytest.approx(value, rel=1e-12, abs=0), (name, key)
            else:
                assert mine[key] == value, (name, key)
    for step in range(ITERS):
        expected, got = _lrs_by_param(ref, names), _lrs_by_param(ours, names)
        for name, lr in expected.items():
            if name in frozen:
                continue
            assert math.isclose(got[name], lr, rel_tol=1e-12, abs_tol=1e-300), (step, name, got[name], lr)
        ref.step()
        ours.step()
        for sched in ref_schedulers:
            if not sched.by_epoch:
                sched.step()
        if (step + 1) % EPOCH_LENGTH == 0:
            for sched in ref_schedulers:
                if sched.by_epoch:
                    sched.step()
        scheduler.step()


def test_same_updates_as_mmengine_per_parameter_groups():
    """Merged groups step the parameters exactly as mmengine's one group per parameter does."""
    optim_wrapper = {
        "optimizer": {"type": "AdamW", "lr": 1e-2, "weight_decay": 0.05},
        "paramwise_cfg": {**PARAMWISE["custom_keys"], "custom_keys": dict(PARAMWISE["custom_keys"]["custom_keys"])},
    }
    optim_wrapper["paramwise_cfg"]["custom_keys"]["head"] = {"lr_mult": 10.0, "betas": (0.8, 0.9)}
    ref_model, our_model = Net(), Net()
    ref = _constructor(optim_wrapper)(ref_model).optimizer
    ours, _ = build(our_model, optim_wrapper)
    assert len(ref.param_groups) > len(ours.param_groups)
    for _ in range(5):
        for model in (ref_model, our_model):
            for param in model.parameters():
                if param.requires_grad:
                    param.grad = torch.sin(torch.arange(param.numel(), dtype=param.dtype)).reshape(param.shape)
        ref.step()
        ours.step()
    for (name, a), b in zip(ref_model.named_parameters(), our_model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15, msg=name)


def test_clip_grad_and_without_paramwise():
    model = Net()
    optimizer, _ = build(
        model, {"optimizer": {"type": "Adam", "lr": 1e-3}, "clip_grad": {"type": "value", "clip_value": 0.5}}
    )
    assert type(optimizer) is torch.optim.Adam
    assert len(optimizer.param_groups) == 1
    doc = translate(
        {"optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1}, "clip_grad": {"max_norm": 1.0, "norm_type": 2}}}, {}
    ).document
    assert doc["clip_grad"] == {"max_norm": 1.0, "norm_type": 2}
    assert doc["optimizer"]["no_weight_decay"] is False


def test_bad_input_is_one_error_with_mmengine_paths():
    bad = {
        "optim_wrapper": {
            "optimizer": {"type": "SDG", "lr": 0.1},
            "paramwise_cfg": {"norm_decay_mul": 0.0, "custom_keys": {"head": {"decay_mult": 0.1}}},
            "clip_grad": {"max_nrom": 1.0},
        },
        "param_scheduler": [{"type": "LinearLR", "by_epoch": False}, {"type": "CosineLR"}],
    }
    with pytest.raises(ConfigError) as err:
        translate(bad, {})
    paths = [path for path, _ in err.value.problems]
    assert paths == [
        "optim_wrapper.optimizer.type",
        "optim_wrapper.paramwise_cfg.norm_decay_mul",
        "optim_wrapper.paramwise_cfg.custom_keys.head.decay_mult",
        "optim_wrapper.clip_grad.max_nrom",
        "param_scheduler[0].end",
        "param_scheduler[1].type",
    ]
    message = str(err.value)
    assert "'SDG'" in message
    assert "SGD" in message
    assert "norm_decay_mult" in message


def test_errors_of_the_built_document_carry_mmengine_paths():
    with pytest.raises(ConfigError) as err:
        build(Net(), {"optimizer": {"type": "SGD", "lr": 0.1, "momentun": 0.9}})
    assert err.value.problems[0][0] == "optim_wrapper.optimizer.momentun"
    # mmengine copies any key of a custom_keys entry into the group; one the optimizer lacks is an error here.
    wrapper = {"optimizer": {"type": "AdamW", "lr": 0.1}, "paramwise_cfg": {"custom_keys": {"head": {"momentum": 0.5}}}}
    with pytest.raises(ConfigError) as err:
        build(Net(), wrapper)
    assert err.value.problems[0][0] == "optim_wrapper.paramwise_cfg.custom_keys.head.momentum"


def test_unexpressed_fields_are_named_in_one_warning():
    with pytest.warns(UserWarning, match="accumulative_counts") as record:
        build(Net(), {"optimizer": {"type": "SGD", "lr": 0.1}, "accumulative_counts": 4, "dtype": "float16"})
    assert len(record) == 1
    assert "dtype" in str(record[0].message)


@pytest.mark.parametrize(
    "plateau",
    [
        {"type": "ReduceOnPlateauLR", "monitor": "loss", "patience": 2, "factor": 0.5, "cooldown": 1},
        {
            "type": "ReduceOnPlateauLR",
            "monitor": "acc",
            "rule": "greater",
            "threshold_rule": "abs",
            "threshold": 0.01,
            "patience": 1,
            "min_value": 0.01,
            "factor": 0.3,
        },
    ],
    ids=["loss", "greater-abs-min"],
)
def test_reduce_on_plateau_as_mmengine_steps_it(plateau):
    optim_wrapper = {"optimizer": {"type": "SGD", "lr": 0.2, "momentum": 0.9}}
    model = Net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_wrapper, (ref_sched,) = _reference(model, optim_wrapper, [{**plateau, "end": math.inf}])
    ours, sched = build(model, optim_wrapper, [plateau], max_epochs=EPOCHS)
    ref = ref_wrapper.optimizer
    metric = plateau["monitor"]
    values = [1.0, 0.9, 0.95, 0.96, 0.97, 0.99, 0.85, 0.86, 0.87, 0.9, 0.91, 0.5, 0.6, 0.7, 0.8, 0.81] * 3
    lrs = set()
    for value in values:  # the runner: step() after each train epoch, step(metrics) after each validation
        ref_sched.step()
        ref_sched.step({metric: value})
        sched.step(value)
        for ours_group, ref_group in zip(ours.param_groups, ref.param_groups):
            assert math.isclose(ours_group["lr"], ref_group["lr"], rel_tol=1e-12), (value, ours_group["lr"])
        lrs.add(ref.param_groups[0]["lr"])
    assert len(lrs) > 2


def test_reduce_on_plateau_only_alone():
    with pytest.raises(ConfigError) as err:
        translate(
            {
                "optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1}},
                "param_scheduler": [
                    {"type": "LinearLR", "by_epoch": False, "end": 5},
                    {"type": "ReduceOnPlateauLR", "rule": "lower", "by_epoch": False},
                ],
            },
            {},
        )
    assert [path for path, _ in err.value.problems] == ["param_scheduler[1].type"]
    with pytest.raises(ConfigError) as err:
        translate(
            {
                "optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1}},
                "param_scheduler": {"type": "ReduceOnPlateauLR", "rule": "lower", "by_epoch": False, "patiense": 3},
            },
            {},
        )
    paths = [path for path, _ in err.value.problems]
    assert paths == ["param_scheduler[0].patiense", "param_scheduler[0].by_epoch", "param_scheduler[0].rule"]
