"""Hugging Face TrainingArguments against transformers itself: the Trainer's optimizer, groups and lrs.

The reference is ``Trainer.create_optimizer_and_scheduler(T)`` run on a Trainer that holds only
what that method reads (a full Trainer needs accelerate), stepped as the Trainer steps it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import optforge
from optforge.compat import hf
from optforge.config.stacks import StackWarning
from optforge.errors import ConfigError

transformers = pytest.importorskip("transformers")

STEPS = 300


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Linear(8, 8)
        self.ln2 = nn.RMSNorm(8)  # decays: the Trainer exempts LayerNorm by type and "rmsnorm" by name only
        self.post_attention_layernorm = nn.Linear(8, 8, bias=False)  # "layernorm" in its name


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.ln_f = nn.LayerNorm(8)
        self.norm = nn.BatchNorm1d(8)  # exempt by the (?:^|\.)norm(?:$|\.) pattern
        self.q_norm = nn.Linear(8, 8)  # exempt by _norm(?:$|\.)
        self.scale = nn.Parameter(torch.ones(8))  # 1-D at the top level: decays
        self.head = nn.Linear(8, 3)
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


def _training_args(fields: dict[str, Any]) -> Any:
    """TrainingArguments with ``fields``, their defaults and the enums __post_init__ makes (it needs accelerate)."""
    args = object.__new__(transformers.TrainingArguments)
    for field in dataclasses.fields(transformers.TrainingArguments):
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        setattr(args, field.name, fields.get(field.name, default))
    args.optim = transformers.training_args.OptimizerNames(args.optim)
    args.lr_scheduler_type = transformers.SchedulerType(args.lr_scheduler_type)
    args.lr_scheduler_kwargs = args.lr_scheduler_kwargs or {}
    return args


def _reference(fields: dict[str, Any], steps: int) -> tuple[torch.optim.Optimizer, Any, nn.Module]:
    torch.manual_seed(0)
    model = Tiny()
    args = _training_args(fields)
    trainer = transformers.Trainer.__new__(transformers.Trainer)
    trainer.args, trainer.model = args, model
    trainer.optimizer, trainer.lr_scheduler, trainer.optimizer_cls_and_kwargs = None, None, None
    trainer.create_optimizer_and_scheduler(steps)
    return trainer.optimizer, trainer.lr_scheduler, model


def _ours(fields: dict[str, Any], steps: int) -> tuple[torch.optim.Optimizer, Any, nn.Module]:
    torch.manual_seed(0)
    model = Tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StackWarning)
        return (*hf.build(model, fields, steps), model)


def _lrs(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[list[float]]:
    lrs = []
    for _ in range(steps + 1):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


def _names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    names = {id(p): name for name, p in model.named_parameters()}
    return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def _settings(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k not in ("params", "lr", "initial_lr", "name", "lr_scale")}


def _assert_same(fields: dict[str, Any], steps: int = STEPS) -> None:
    ref_opt, ref_sched, ref_model = _reference(fields, steps)
    opt, sched, model = _ours(fields, steps)
    assert type(opt) is type(ref_opt)
    assert _names(model, opt) == _names(ref_model, ref_opt)
    assert [_settings(g) for g in opt.param_groups] == [_settings(g) for g in ref_opt.param_groups]
    ours, theirs = _lrs(opt, sched, steps), _lrs(ref_opt, ref_sched, steps)
    for step, (mine, ref) in enumerate(zip(ours, theirs)):
        for a, b in zip(mine, ref, strict=True):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0), (step, a, b)


BASE = {"learning_rate": 3e-4, "weight_decay": 0.1, "warmup_steps": 30}

CASES = {
    "linear": {},
    "linear-no-warmup": {"warmup_steps": 0},
    "linear-ratio": {"warmup_steps": 0.07},
    "linear-float-count": {"warmup_steps": 12.9},
    "cosine": {"lr_scheduler_type": "cosine"},
    "cosine-cycles": {"lr_scheduler_type": "cosine", "lr_scheduler_kwargs": {"num_cycles": 1.5}},
    "restarts": {"lr_scheduler_type": "cosine_with_restarts", "lr_scheduler_kwargs": {"num_cycles": 3}},
    "polynomial": {"lr_scheduler_type": "polynomial", "lr_scheduler_kwargs": {"lr_end": 1e-5, "power": 2.0}},
    "polynomial-default": {"lr_scheduler_type": "polynomial"},
    "constant": {"lr_scheduler_type": "constant", "warmup_steps": 0},
    "constant-with-warmup": {"lr_scheduler_type": "constant_with_warmup"},
    "inverse-sqrt": {"lr_scheduler_type": "inverse_sqrt"},
    "inverse-sqrt-timescale": {"lr_scheduler_type": "inverse_sqrt", "lr_scheduler_kwargs": {"timescale": 7}},
    "inverse-sqrt-no-warmup": {"lr_scheduler_type": "inverse_sqrt", "warmup_steps": 0},
    "cosine-min-lr": {"lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr": 1e-5}},
    "cosine-min-lr-rate": {"lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr_rate": 0.1}},
    "warmup-min-lr": {"lr_scheduler_type": "cosine_warmup_with_min_lr", "lr_scheduler_kwargs": {"min_lr_rate": 0.1}},
    "warmup-min-lr-rate": {
        "lr_scheduler_type": "cosine_warmup_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr": 3e-6, "warmup_lr_rate": 0.2},
    },
    "warmup-min-lr-one-step": {
        "lr_scheduler_type": "cosine_warmup_with_min_lr",
        "warmup_steps": 1,
        "lr_scheduler_kwargs": {"min_lr_rate": 0.05, "warmup_lr_rate": 0.2},
    },
    "wsd": {"lr_scheduler_type": "warmup_stable_decay", "lr_scheduler_kwargs": {"num_decay_steps": 60}},
    "wsd-shapes": {
        "lr_scheduler_type": "warmup_stable_decay",
        "lr_scheduler_kwargs": {
            "num_decay_steps": 50,
            "num_stable_steps": 100,
            "warmup_type": "1-sqrt",
            "decay_type": "1-sqrt",
            "min_lr_ratio": 0.1,
        },
    },
    "wsd-cosine-warmup": {
        "lr_scheduler_type": "warmup_stable_decay",
        "lr_scheduler_kwargs": {"num_decay_steps": 90, "warmup_type": "cosine", "decay_type": "linear"},
    },
    "sgd": {"optim": "sgd", "optim_args": "momentum=0.9,nesterov=True,dampening=0"},
    "adagrad": {"optim": "adagrad", "optim_args": "lr_decay=0.01, eps=1e-9"},
    "rmsprop": {"optim": "rmsprop", "optim_args": "alpha=0.95,centered=true,momentum=0.5"},
    "adamw-torch": {"optim": "adamw_torch", "adam_beta1": 0.8, "adam_beta2": 0.95, "adam_epsilon": 1e-6},
    "adamw-fused-default": {"lr_scheduler_type": "cosine"},
    "adafactor": {"optim": "adafactor", "lr_scheduler_type": "cosine"},
}


@pytest.mark.parametrize("case", CASES)
def test_the_trainers_optimizer_groups_and_lrs(case: str) -> None:
    _assert_same({**BASE, **CASES[case]})


def test_clipping_follows_max_grad_norm() -> None:
    assert hf.translate({**BASE, "max_grad_norm": 0.5}, 100).document["clip_grad"] == {"max_norm": 0.5}
    assert hf.translate(BASE, 100).document["clip_grad"] == {"max_norm": 1.0}  # the field's default
    assert "clip_grad" not in hf.translate({**BASE, "max_grad_norm": 0}, 100).document


def test_silently_dropped_fields_become_warnings() -> None:
    fields = {
        **BASE,
        "optim": "sgd",
        "optim_args": "weight_decay=0.3,foo=1",
        "lr_scheduler_type": "constant_with_warmup",
        "lr_scheduler_kwargs": {"num_cycles": 2},
        "gradient_accumulation_steps": 4,
        "seed": 7,
    }
    paths = [field.path for field in hf.translate(fields, 100).unexpressed]
    assert paths == [
        "optim_args.weight_decay",
        "optim_args.foo",
        "lr_scheduler_kwargs.num_cycles",
        "gradient_accumulation_steps",
        "seed",
    ]
    with pytest.warns(StackWarning, match="optim_args.foo"):
        optforge.build(Tiny(), fields, total_steps=100)


def test_bad_input_is_one_error_with_the_stacks_paths() -> None:
    fields = {
        "optim": "adamw_torhc",
        "lr_scheduler_type": "cosine",
        "lr_scheduler_kwargs": {"num_cylces": 2},
        "learning_rat": 1e-3,
        "adam_beta1": "0.9",
    }
    with pytest.raises(ConfigError) as caught:
        hf.build(Tiny(), fields, 100)
    paths = [path for path, _ in caught.value.problems]
    assert paths == ["learning_rat", "optim", "lr_scheduler_kwargs.num_cylces"]
    text = str(caught.value)
    assert "did you mean 'learning_rate'" in text
    assert "adamw_torch" in text
    assert "num_cycles" in text


def test_an_optimizer_from_another_package_names_it() -> None:
    with pytest.raises(ConfigError, match="optim: 'adamw_bnb_8bit' builds an optimizer of bitsandbytes"):
        hf.build(Tiny(), {"optim": "adamw_bnb_8bit"}, 100)


def test_the_run_length_comes_from_the_call_or_max_steps() -> None:
    with pytest.raises(ConfigError, match="num_training_steps"):
        hf.build(Tiny(), {"optim": "sgd", "lr_scheduler_type": "linear"})
    assert hf.translate({"optim": "sgd", "max_steps": 50}).document["schedule"]["total_steps"] == 50
    assert hf.translate({"optim": "sgd", "max_steps": 50}, 80).document["schedule"]["total_steps"] == 80


def test_training_arguments_object() -> None:
    fields = {"lr_scheduler_type": "cosine", "warmup_steps": 0.1, "learning_rate": 1e-3, "seed": 3}
    translated = hf.translate(_training_args(fields), 200)
    assert translated.document == hf.translate(fields, 200).document
    assert [field.path for field in translated.unexpressed] == ["seed"]


def test_import_optforge_imports_no_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, optforge, optforge.compat.hf, optforge.convert; "
        "print(sorted(m for m in ('transformers', 'deepspeed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _train(
    optimizer: torch.optim.Optimizer, scheduler: Any, model: nn.Module, steps: int, clip: float | None = None
) -> list[float]:
    """``steps`` steps on a fixed regression batch, as the Trainer takes them (clipping by the total norm
    before each step where ``clip`` is given; optforge's optimizer clips in its own step); the lr of each step."""
    generator = torch.Generator().manual_seed(1)
    inputs, targets = torch.randint(0, 11, (16,), generator=generator), torch.randn(16, 3, generator=generator)
    lrs = []
    for _ in range(steps):
        hidden = model.embed(inputs)
        for block in model.blocks:
            hidden = block.post_attention_layernorm(block.ln2(block.attn(hidden)))
        loss = (model.head(model.q_norm(model.ln_f(hidden)) * model.scale) - targets).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_adafactor_trains_as_the_trainers() -> None:
    fields = {**BASE, "optim": "adafactor", "lr_scheduler_type": "cosine"}
    ref_opt, ref_sched, ref_model = _reference(fields, 60)
    opt, sched, model = _ours(fields, 60)
    assert type(opt) is transformers.optimization.Adafactor
    assert opt.defaults["scale_parameter"] is False
    assert opt.defaults["relative_step"] is False
    assert _train(opt, sched, model, 60) == _train(ref_opt, ref_sched, ref_model, 60, clip=1.0)
    # The clipping norms sum the same gradients in another order (by group, not by module): float rounding.
    for (name, mine), (_, theirs) in zip(model.named_parameters(), ref_model.named_parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7, msg=name)


def test_reduce_lr_on_plateau_follows_the_metric_as_the_trainers() -> None:
    fields = {
        **BASE,
        "lr_scheduler_type": "reduce_lr_on_plateau",
        "lr_scheduler_kwargs": {"factor": 0.5, "patience": 2, "threshold": 0.01},
    }
    ref_opt, ref_sched, _ = _reference(fields, STEPS)
    with pytest.warns(StackWarning, match="warmup_steps: 30: the Trainer's reduce_lr_on_plateau has no warmup"):
        opt, sched = hf.build(Tiny(), fields, STEPS)
    assert type(ref_sched) is torch.optim.lr_scheduler.ReduceLROnPlateau
    assert type(sched).__name__ == "ReduceLROnPlateau"
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.86, 0.87, 0.88, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    ours, theirs = [], []
    for metric in metrics:  # the Trainer steps it with each evaluation's metric
        sched.step(metric)
        ref_sched.step(metric)
        ours.append([group["lr"] for group in opt.param_groups])
        theirs.append([group["lr"] for group in ref_opt.param_groups])
    assert ours == theirs
    assert ours[-1][0] < BASE["learning_rate"] / 4


SCHEDULE_FREE = {
    "adamw": {"optim": "schedule_free_adamw", "warmup_steps": 10, "adam_beta1": 0.95},
    "adamw-r": {"optim": "schedule_free_adamw", "warmup_steps": 5, "optim_args": "r=0.5,weight_lr_power=1.0"},
    "sgd": {"optim": "schedule_free_sgd", "warmup_steps": 8, "learning_rate": 0.05},
    "radam": {"optim": "schedule_free_radam", "warmup_steps": 0},
}


@pytest.mark.parametrize("case", SCHEDULE_FREE)
def test_schedule_free_optimizers_train_as_the_trainers(case: str) -> None:
    pytest.importorskip("schedulefree")
    fields = {**BASE, "lr_scheduler_type": "constant", **SCHEDULE_FREE[case]}
    ref_opt, ref_sched, ref_model = _reference(fields, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StackWarning)  # constant's dropped warmup_steps
        opt, sched, model = _ours(fields, 40)
    assert type(opt).__name__ == type(ref_opt).__name__
    assert _names(model, opt) == _names(ref_model, ref_opt)
    keys = ("lr", "betas", "momentum", "eps", "weight_decay", "warmup_steps", "r", "weight_lr_power")
    for mine, theirs in zip(opt.param_groups, ref_opt.param_groups, strict=True):
        assert {k: mine.get(k) for k in keys} == {k: theirs.get(k) for k in keys}
    opt.train()
    ref_opt.train()
    assert _train(opt, sched, model, 40) == _train(ref_opt, ref_sched, ref_model, 40, clip=1.0)
    for mode in ("train", "eval"):  # the training point and the averaged point the model is evaluated at
        getattr(opt, mode)()
        getattr(ref_opt, mode)()
        for (name, mine), (_, theirs) in zip(model.named_parameters(), ref_model.named_parameters(), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7, msg=f"{mode} {name}")


def test_schedule_free_warmup_as_a_ratio_is_an_error() -> None:
    with pytest.raises(ConfigError, match="warmup_steps: 'schedule_free_adamw' takes warmup_steps as the optimizer"):
        hf.build(Tiny(), {"optim": "schedule_free_adamw", "warmup_steps": 0.1, "lr_scheduler_type": "constant"}, 100)
