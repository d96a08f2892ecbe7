"""DeepSpeed configs against DeepSpeed itself: the engine's optimizer selection and its lr schedules.

The schedules' reference is ``deepspeed.runtime.lr_schedules`` on a torch optimizer, stepped as the
engine steps it (once per optimizer step, from its construction state). The optimizer's reference
is the engine's own ``_configure_basic_optimizer`` on a stand-in engine (no DeepSpeed engine is
started); its fused CUDA classes are replaced by recorders of the arguments they would hold.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import optforge
from optforge.compat import deepspeed as ds_compat
from optforge.config.stacks import StackWarning, recognise
from optforge.config.stacks import deepspeed as stack
from optforge.convert import convert
from optforge.errors import ConfigError

pytest.importorskip("deepspeed")
lr_schedules = pytest.importorskip("deepspeed.runtime.lr_schedules")
engine = pytest.importorskip("deepspeed.runtime.engine")
ds_config = pytest.importorskip("deepspeed.runtime.config")
ds_adam = pytest.importorskip("deepspeed.ops.adam")
ds_lion = pytest.importorskip("deepspeed.ops.lion")
ds_lamb = pytest.importorskip("deepspeed.ops.lamb")

STEPS = 320
ROOT = Path(__file__).resolve().parents[2]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def _trace(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int = STEPS) -> list[tuple[float, Any]]:
    values = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        values.append((group["lr"], tuple(group["betas"]) if "betas" in group else group.get("momentum")))
        optimizer.step()
        scheduler.step()
    return values


def _ours(config: dict[str, Any], **kwargs: Any) -> tuple[torch.optim.Optimizer, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StackWarning)
        return ds_compat.build(_model(), config, **kwargs)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)


def _assert_same_trace(ours: list[tuple[float, Any]], theirs: list[tuple[float, Any]]) -> None:
    for step, ((lr, mom), (ref_lr, ref_mom)) in enumerate(zip(ours, theirs, strict=True)):
        assert _close(lr, ref_lr), (step, lr, ref_lr)
        if isinstance(ref_mom, tuple):
            assert all(_close(a, b) for a, b in zip(mom, ref_mom, strict=True)), (step, mom, ref_mom)
        else:
            assert mom == ref_mom, (step, mom, ref_mom)


ADAMW = {"type": "AdamW", "params": {"lr": 2e-3, "weight_decay": 0.01}}

SCHEDULES = {
    "warmup-log": ("WarmupLR", {"warmup_num_steps": 50}),
    "warmup-log-bounds": ("WarmupLR", {"warmup_min_lr": 1e-5, "warmup_max_lr": 3e-3, "warmup_num_steps": 37}),
    "warmup-linear": ("WarmupLR", {"warmup_num_steps": 50, "warmup_type": "linear", "warmup_min_lr": 1e-5}),
    "warmup-one-step": ("WarmupLR", {"warmup_num_steps": 1}),  # DeepSpeed makes it 2
    "decay-log": ("WarmupDecayLR", {"total_num_steps": 250, "warmup_num_steps": 40, "warmup_min_lr": 1e-5}),
    "decay-linear": (
        "WarmupDecayLR",
        {"total_num_steps": 250, "warmup_num_steps": 40, "warmup_type": "linear", "warmup_max_lr": 2e-3},
    ),
    "decay-total-before-warmup": ("WarmupDecayLR", {"total_num_steps": 30, "warmup_num_steps": 40}),
    "cosine-log": ("WarmupCosineLR", {"total_num_steps": 250, "warmup_num_steps": 40, "warmup_min_ratio": 0.1}),
    "cosine-linear-to-zero": (
        "WarmupCosineLR",
        {"total_num_steps": 250, "warmup_num_steps": 40, "warmup_type": "linear", "cos_min_ratio": 0.0},
    ),
    "cosine-total-before-warmup": ("WarmupCosineLR", {"total_num_steps": 20, "warmup_num_steps": 40}),
    "one-cycle-decay": (
        "OneCycle",
        {
            "cycle_min_lr": 1e-4,
            "cycle_max_lr": 1e-2,
            "cycle_first_step_size": 60,
            "cycle_second_step_size": 90,
            "decay_step_size": 20,
            "decay_lr_rate": 0.5,
            "decay_mom_rate": 0.01,
            "cycle_min_mom": 0.85,
            "cycle_max_mom": 0.95,
        },
    ),
    "one-cycle-stairs": (
        "OneCycle",
        {
            "cycle_min_lr": 1e-4,
            "cycle_max_lr": 1e-2,
            "cycle_first_step_size": 60,
            "cycle_first_stair_count": 6,
            "cycle_second_stair_count": 4,
            "decay_step_size": 10,
            "decay_lr_rate": 0.1,
        },
    ),
    "one-cycle-symmetric-stairs": (
        "OneCycle",
        {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-2, "cycle_first_step_size": 50, "cycle_first_stair_count": 5},
    ),
    "one-cycle-no-momentum": (
        "OneCycle",
        {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-2, "cycle_first_step_size": 100, "cycle_momentum": False},
    ),
    "range-test": ("LRRangeTest", {"lr_range_test_min_lr": 1e-4, "lr_range_test_step_size": 25}),
    "range-test-stairs": (
        "LRRangeTest",
        {
            "lr_range_test_min_lr": 1e-4,
            "lr_range_test_step_size": 30,
            "lr_range_test_step_rate": 3.0,
            "lr_range_test_staircase": True,
        },
    ),
}


@pytest.mark.parametrize("case", SCHEDULES)
def test_the_lrs_and_betas_of_deepspeeds_schedulers(case: str) -> None:
    name, params = SCHEDULES[case]
    config = {"optimizer": ADAMW, "scheduler": {"type": name, "params": params}}
    ref_opt = torch.optim.AdamW(_model().parameters(), lr=2e-3, weight_decay=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_sched = getattr(lr_schedules, name)(ref_opt, **params)
    theirs = _trace(ref_opt, ref_sched)
    _assert_same_trace(_trace(*_ours(config)), theirs)


def test_one_cycle_leaves_an_optimizer_without_betas_alone() -> None:
    params = {"cycle_min_lr": 1e-3, "cycle_max_lr": 1e-1, "cycle_first_step_size": 40}
    config = {
        "optimizer": {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}},
        "scheduler": {"type": "OneCycle", "params": params},
    }
    ref_opt = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    ref_sched = lr_schedules.OneCycle(ref_opt, **params)
    with pytest.warns(StackWarning, match="cycle_momentum"):
        optimizer, scheduler = ds_compat.build(_model(), config)
    _assert_same_trace(_trace(optimizer, scheduler), _trace(ref_opt, ref_sched))


def test_a_torch_scheduler_by_name() -> None:
    config = {"optimizer": ADAMW, "scheduler": {"type": "StepLR", "params": {"step_size": 30, "gamma": 0.5}}}
    ref_opt = torch.optim.AdamW(_model().parameters(), lr=2e-3, weight_decay=0.01)
    theirs = _trace(ref_opt, torch.optim.lr_scheduler.StepLR(ref_opt, step_size=30, gamma=0.5))
    _assert_same_trace(_trace(*_ours(config)), theirs)


class _Recorder(torch.optim.Optimizer):
    """Stands in for a fused CUDA class: holds the arguments the real class would, bound to its signature."""

    real: type = object

    def __init__(self, params: Any, **kwargs: Any) -> None:
        bound = inspect.signature(self.real).bind(params, **kwargs)
        bound.apply_defaults()
        self.arguments = {k: v for k, v in bound.arguments.items() if k != "params"}
        super().__init__(params, {"lr": self.arguments["lr"]})


def _engine_optimizer(section: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> torch.optim.Optimizer:
    """What DeepSpeedEngine._configure_basic_optimizer builds from ``section`` (no ZeRO offload)."""
    recorders = {}
    for module, name in ((ds_adam, "FusedAdam"), (ds_lion, "FusedLion"), (ds_lamb, "FusedLamb")):
        recorders[name] = type(name, (_Recorder,), {"real": getattr(module, name)})
        monkeypatch.setattr(module, name, recorders[name])
    kind = section["type"]
    kind = kind.lower() if kind.lower() in ds_config.DEEPSPEED_OPTIMIZERS else kind
    stand_in = types.SimpleNamespace(
        optimizer_params=lambda: section.get("params"),
        optimizer_name=lambda: kind,
        zero_use_cpu_optimizer=lambda: False,
    )
    stand_in.get_optimizer_configuration = functools.partial(
        engine.DeepSpeedEngine.get_optimizer_configuration, stand_in
    )
    return engine.DeepSpeedEngine._configure_basic_optimizer(stand_in, list(_model().parameters()))


# What optforge builds in place of each fused class: the same update on torch's (or optforge's) class.
FUSED = {
    ("FusedAdam", True): torch.optim.AdamW,
    ("FusedAdam", False): torch.optim.Adam,
    ("FusedLion", None): optforge.optimizers.Lion,
    ("FusedLamb", None): optforge.optimizers.Lamb,
}

OPTIMIZERS = {
    "adam-is-adamw": {"type": "Adam", "params": {"lr": 1e-3, "betas": [0.8, 0.99], "eps": 1e-7}},
    "adam-l2": {"type": "Adam", "params": {"lr": 1e-3, "adam_w_mode": False, "weight_decay": 0.1}},
    "adamw-stays-adamw": {"type": "AdamW", "params": {"adam_w_mode": False}},
    "adamw-defaults": {"type": "adamw"},
    "torch-adamw": {"type": "AdamW", "params": {"torch_adam": True, "lr": 3e-4}},
    "torch-adam": {"type": "ADAM", "params": {"torch_adam": True, "adam_w_mode": False, "amsgrad": True}},
    "lion": {"type": "Lion", "params": {"lr": 1e-4, "betas": [0.95, 0.98], "weight_decay": 0.1}},
    "lion-defaults": {"type": "lion"},
    "lamb": {
        "type": "Lamb",
        "params": {"lr": 2e-3, "betas": [0.8, 0.99], "weight_decay": 0.01, "max_coeff": 5.0, "min_coeff": 0.1},
    },
    "lamb-eps-inside": {"type": "LAMB", "params": {"eps_inside_sqrt": True, "bias_correction": False, "eps": 1e-6}},
    "lamb-defaults": {"type": "lamb"},
    "adagrad": {"type": "Adagrad", "params": {"lr": 0.05, "lr_decay": 1e-3}},
    "sgd": {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9, "nesterov": True}},
    "rmsprop": {"type": "RMSprop", "params": {"lr": 0.01, "alpha": 0.9}},
    "nadam": {"type": "NAdam", "params": {"lr": 2e-3}},
}


def _settings(group: dict[str, Any], keys: Any) -> dict[str, Any]:
    return {k: tuple(group[k]) if k == "betas" else group[k] for k in keys}


@pytest.mark.parametrize("case", OPTIMIZERS)
def test_the_engines_optimizer(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    section = OPTIMIZERS[case]
    theirs = _engine_optimizer(section, monkeypatch)
    ours, _ = _ours({"optimizer": section})
    assert len(ours.param_groups) == len(theirs.param_groups) == 1
    assert len(ours.param_groups[0]["params"]) == len(list(_model().parameters()))
    if isinstance(theirs, _Recorder):
        arguments = dict(theirs.arguments)
        if "bias_correction" not in ours.param_groups[0]:
            assert arguments.pop("bias_correction", True) is True  # torch's classes always correct the bias
        assert arguments.pop("amsgrad", False) is False
        assert arguments.pop("max_grad_norm", 0.0) == 0.0  # the engine refuses it (gradient_clipping instead)
        arguments.pop("set_grad_none", None)
        assert type(ours) is FUSED[type(theirs).__name__, arguments.pop("adam_w_mode", None)]
        assert _settings(ours.param_groups[0], arguments) == _settings(arguments, arguments)
    else:
        assert type(ours) is type(theirs)
        keys = [k for k in theirs.param_groups[0] if k not in ("params", "initial_lr")]
        assert _settings(ours.param_groups[0], keys) == _settings(theirs.param_groups[0], keys)


def test_the_tables_match_the_installed_packages() -> None:
    params = [torch.nn.Parameter(torch.zeros(2, 2))]
    optimizers = {
        name: cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
    }
    assert set(stack.TORCH_OPTIMIZERS) == set(optimizers)
    for name, (lr, betas) in stack.TORCH_OPTIMIZERS.items():
        defaults = optimizers[name](params).defaults
        assert (defaults["lr"], "betas" in defaults) == (lr, betas), name
    for name, keys in stack.TORCH_ADAM_KEYS.items():
        assert set(keys) == set(inspect.signature(getattr(torch.optim, name)).parameters) - {"params"}
    schedulers = {
        name
        for name, cls in vars(torch.optim.lr_scheduler).items()
        if isinstance(cls, type)
        and issubclass(cls, torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau)
        and name not in ("LRScheduler", "_LRScheduler")
    }
    assert set(stack.TORCH_SCHEDULERS) == schedulers
    for name, entry in stack.SCHEDULERS.items():
        signature = inspect.signature(getattr(lr_schedules, name)).parameters
        defaults = {k: None if v is stack.GROUP_LR else v for k, v in entry.arguments.items()}
        real = {k: p.default for k, p in signature.items() if k != "optimizer"}
        assert defaults == {k: stack.REQUIRED if v is inspect.Parameter.empty else v for k, v in real.items()}, name
    assert set(stack.OPTIMIZERS) == set(ds_config.DEEPSPEED_OPTIMIZERS)


def test_clipping_follows_gradient_clipping() -> None:
    document = ds_compat.translate({"optimizer": ADAMW}).document
    assert document["clip_grad"] == {"max_norm": 1.0}  # absent: DeepSpeed 0.19.8 clips at 1.0
    assert "clip_grad" not in ds_compat.translate({"optimizer": ADAMW, "gradient_clipping": 0.0}).document
    clipped = ds_compat.translate({"optimizer": ADAMW, "gradient_clipping": 0.3}).document
    assert clipped["clip_grad"] == {"max_norm": 0.3}


def test_the_engines_sections_are_named_in_one_warning() -> None:
    config = {
        "train_batch_size": 64,
        "gradient_accumulation_steps": 4,
        "zero_optimization": {"stage": 2},
        "bf16": {"enabled": True},
        "optimizer": ADAMW,
    }
    with pytest.warns(StackWarning) as caught:
        ds_compat.build(_model(), config)
    messages = [str(w.message) for w in caught if issubclass(w.category, StackWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("train_batch_size, gradient_accumulation_steps, zero_optimization, bf16:")


def test_bad_input_is_one_error_with_deepspeeds_paths() -> None:
    config = {
        "optimizer": {"type": "AdamWW", "params": {"lr": 1e-3}},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_num_step": 10, "warmup_max_lr": "auto"}},
        "gradient_clipping": "auto",
    }
    with pytest.raises(ConfigError) as caught:
        ds_compat.build(_model(), config)
    paths = [path for path, _ in caught.value.problems]
    assert paths == [
        "scheduler.params.warmup_max_lr",
        "gradient_clipping",
        "optimizer.type",
        "scheduler.params.warmup_num_step",
    ]
    text = str(caught.value)
    for expected in ("learning_rate", "max_grad_norm", "did you mean 'adamw'", "did you mean 'warmup_num_steps'"):
        assert expected in text


@pytest.mark.parametrize(
    ("config", "path", "match"),
    [
        (
            {"scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 0}}},
            "scheduler.params.warmup_num_steps",
            ">= 1",
        ),
        (
            {"optimizer": {"type": "AdamW", "params": {"max_grad_norm": 1.0}}},
            "optimizer.params.max_grad_norm",
            "gradient_clipping",
        ),
        (
            {"optimizer": {"type": "Lamb", "params": {"amsgrad": True}}},
            "optimizer.params.amsgrad",
            "does not support AMSGrad",
        ),
        (
            {"optimizer": {"type": "Adam", "params": {"bias_correction": False}}},
            "optimizer.params.bias_correction",
            "bias",
        ),
        ({"scheduler": {"type": "WarmupDecayLR"}}, "scheduler.params.total_num_steps", "needs total_num_steps"),
        (
            {"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.1}}},
            "scheduler.params.cycle_max_lr",
            "needs",
        ),
        (
            {"scheduler": {"type": "WarmupLR", "params": {"last_batch_iteration": 10}}},
            "scheduler.params.last_batch_iteration",
            "state_dict",
        ),
        (
            {"optimizer": {"type": "SGD", "params": {"lr": 0.1, "momentun": 0.9}}},
            "optimizer.params.momentun",
            "momentum",
        ),
        ({"optimizer": {"type": "AdamW", "params": {"weight_decay": -1.0}}}, "optimizer.params.weight_decay", ""),
    ],
)
def test_each_kind_of_bad_input(config: dict[str, Any], path: str, match: str) -> None:
    config = {"optimizer": ADAMW, **config}
    with pytest.raises(ConfigError) as caught:
        ds_compat.build(_model(), config)
    assert [p for p, _ in caught.value.problems] == [path]
    assert match in str(caught.value)


def test_total_num_steps_auto_comes_from_the_run() -> None:
    params = {"total_num_steps": "auto", "warmup_num_steps": 10}
    config = {"optimizer": ADAMW, "scheduler": {"type": "WarmupDecayLR", "params": params}}
    with pytest.raises(ConfigError, match="num_training_steps"):
        ds_compat.build(_model(), config)
    ref_opt = torch.optim.AdamW(_model().parameters(), lr=2e-3, weight_decay=0.01)
    theirs = _trace(ref_opt, lr_schedules.WarmupDecayLR(ref_opt, 100, warmup_num_steps=10), 150)
    _assert_same_trace(_trace(*_ours(config, total_num_steps=100), 150), theirs)


def test_optforge_build_fills_the_auto_from_total_steps() -> None:
    params = {"total_num_steps": "auto", "warmup_num_steps": 10, "warmup_type": "linear"}
    config = {"optimizer": ADAMW, "scheduler": {"type": "WarmupCosineLR", "params": params}}
    ref_opt = torch.optim.AdamW(_model().parameters(), lr=2e-3, weight_decay=0.01)
    theirs = _trace(ref_opt, lr_schedules.WarmupCosineLR(ref_opt, 100, warmup_num_steps=10, warmup_type="linear"), 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StackWarning)
        built = optforge.build(_model(), config, total_steps=100, stack="deepspeed")
    _assert_same_trace(_trace(*built, 100), theirs)
    # WarmupDecayLR reaches its end one step after total_num_steps (its first step() repeats the start):
    # a run of exactly that many steps never gets there, which optforge's run-length check reports.
    decay = {"optimizer": ADAMW, "scheduler": {"type": "WarmupDecayLR", "params": {**params, "warmup_type": "log"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StackWarning)
        with pytest.raises(ConfigError, match="beyond total_steps"):
            optforge.build(_model(), decay, total_steps=100, stack="deepspeed")


def test_the_converted_document_builds_what_compat_builds() -> None:
    config = {
        "train_micro_batch_size_per_gpu": 8,
        "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "weight_decay": 0.05}},
        "scheduler": {"type": "OneCycle", "params": SCHEDULES["one-cycle-decay"][1]},
        "gradient_clipping": 0.5,
    }
    text = convert(config, "deepspeed")
    assert text.splitlines()[1].startswith("# train_micro_batch_size_per_gpu: ")
    ref_opt, ref_sched = _ours(config)
    opt, sched = optforge.build(_model(), yaml.safe_load(text))
    assert type(opt) is type(ref_opt)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in ref_opt.param_groups
    ]
    assert _trace(opt, sched) == _trace(ref_opt, ref_sched)
    assert yaml.safe_load(text)["clip_grad"] == {"max_norm": 0.5}


def test_deepspeed_configs_are_recognised_and_optforge_documents_are_not() -> None:
    assert recognise({"optimizer": ADAMW}).name == "deepspeed"
    assert recognise({"train_batch_size": 8, "zero_optimization": {"stage": 1}}).name == "deepspeed"
    assert recognise({"optim": "adamw_torch", "learning_rate": 1e-3}).name == "huggingface"
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        chosen = recognise(yaml.safe_load(path.read_text()))
        assert chosen is None or chosen.name != "deepspeed", path.name


def test_import_optforge_imports_no_stack() -> None:
    import subprocess
    import sys

    code = "import sys, optforge.compat.deepspeed; print('deepspeed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
