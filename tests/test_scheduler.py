"""LRShim and build_scheduler: closed-form lrs per group, hyperparameter schedules, exact resume."""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import pytest
import torch
from torch import nn

import optforge
from optforge.errors import ConfigError
from optforge.scheduler import LRShim, ScheduleChangedWarning, build_scheduler
from optforge.schedules import LearningRate, compute_lr

COSINE = {"cosine_decay": {"peak_value": 1e-2, "end_value": 1e-4, "warmup_steps": 5, "decay_steps": 40}}
RAMP = {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 4}}


def _params(n: int = 1) -> list[nn.Parameter]:
    return [nn.Parameter(torch.ones(3)) for _ in range(n)]


def _named_groups(*names: str, **extra: object) -> list[dict]:
    return [{"params": _params(), "name": name, **extra} for name in names]


def _train(optimizer: torch.optim.Optimizer, scheduler: LRShim, steps: int) -> list[list[float]]:
    lrs = []
    for _ in range(steps):
        lrs.append([float(group["lr"]) for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


def test_lr_at_every_step_is_compute_lr_of_that_step() -> None:
    opt = torch.optim.SGD(_params(), lr=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "scheduler stepped before optimizer" warning, no double step
        sched = LRShim(opt, {"ALL_PARAMS": COSINE})
        assert sched.last_epoch == 0
        lrs = _train(opt, sched, 50)
    assert [lr[0] for lr in lrs] == [compute_lr(COSINE, t) for t in range(50)]
    assert sched.last_epoch == 50
    assert sched.get_last_lr() == [compute_lr(COSINE, 50)]


def test_groups_match_by_name_in_any_order() -> None:
    opt = torch.optim.SGD(_named_groups("backbone", "head"), lr=0.5)
    LRShim(opt, {"head": {"constant": 0.2}, "backbone": {"constant": 0.1}})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]


def test_groups_without_names_match_by_order() -> None:
    opt = torch.optim.SGD([{"params": _params()}, {"params": _params()}], lr=0.5)
    LRShim(opt, {"first": {"constant": 0.1}, "second": {"constant": 0.2}})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]


def test_count_mismatch_is_a_config_error() -> None:
    opt = torch.optim.SGD([{"params": _params()}, {"params": _params()}], lr=0.5)
    with pytest.raises(ConfigError, match=r"1 learning-rate schedules \(ALL_PARAMS\) for 2 param groups.*by order"):
        LRShim(opt, {"ALL_PARAMS": RAMP})


def test_unknown_group_name_lists_the_groups() -> None:
    opt = torch.optim.SGD(_named_groups("backbone", "head"), lr=0.5)
    with pytest.raises(ConfigError) as info:
        LRShim(opt, {"backbone": RAMP, "haed": RAMP})
    assert info.value.path == "lr_dict.haed"
    assert "did you mean 'head'?" in str(info.value)
    assert "Valid choices: backbone, head" in str(info.value)


def test_missing_group_is_named() -> None:
    opt = torch.optim.SGD(_named_groups("backbone", "head"), lr=0.5)
    with pytest.raises(
        ConfigError, match=r"no learning-rate schedule for param group\(s\) head; groups: backbone, head"
    ):
        LRShim(opt, {"backbone": RAMP})


def test_bad_schedule_error_names_its_group() -> None:
    opt = torch.optim.SGD(_named_groups("backbone", "head"), lr=0.5)
    with pytest.raises(ConfigError) as info:
        LRShim(opt, {"backbone": RAMP, "head": {"cosine_decay": {"peak_value": 1.0}}})
    assert "lr_dict.head.cosine_decay.decay_steps: required field is missing" in str(info.value)


def test_lr_scale_multiplies_the_scheduled_lr() -> None:
    groups = [{"params": _params(), "name": f"layer{i}", "lr_scale": 0.5**i} for i in range(3)]
    opt = torch.optim.AdamW(groups, lr=1.0)
    sched = LRShim(opt, dict.fromkeys(["layer0", "layer1", "layer2"], RAMP))
    _train(opt, sched, 2)
    assert sched.get_last_lr() == [0.05, 0.025, 0.0125]


def test_bad_lr_scale() -> None:
    opt = torch.optim.SGD([{"params": _params(), "lr_scale": -1}], lr=0.5)
    with pytest.raises(ConfigError, match=r"param_groups\[0\]\.lr_scale: lr_scale must be a number >= 0, got -1"):
        LRShim(opt, {"all": RAMP})


def test_group_schedule_takes_precedence() -> None:
    groups = [*_named_groups("backbone"), {"params": _params(), "name": "head", "schedule": {"constant": 0.3}}]
    opt = torch.optim.SGD(groups, lr=0.5)
    LRShim(opt, {"backbone": {"constant": 0.1}, "head": {"constant": 0.2}})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3]
    opt = torch.optim.SGD(groups, lr=0.5)
    LRShim(opt, {"backbone": {"constant": 0.1}})  # a group with its own schedule needs no entry
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3]


def test_bad_group_schedule_names_the_group() -> None:
    opt = torch.optim.SGD([{"params": _params(), "schedule": {"constnt": 0.3}}], lr=0.5)
    with pytest.raises(
        ConfigError, match=r"param_groups\[0\]\.schedule\.constnt: unknown key; did you mean 'constant'"
    ):
        LRShim(opt, {"all": RAMP})


def test_tensor_lr_is_updated_in_place() -> None:
    model = nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(0.01), fused=True)
    lr_tensor = opt.param_groups[0]["lr"]
    sched = LRShim(opt, {"all": COSINE})
    for step in range(1, 8):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] is lr_tensor
        assert lr_tensor.item() == pytest.approx(compute_lr(COSINE, step))
    assert isinstance(sched.get_last_lr()[0], torch.Tensor)


def test_beta1_schedule_keeps_beta2() -> None:
    opt = torch.optim.AdamW(_params(), lr=0.1, betas=(0.9, 0.95))
    beta1 = {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": 10}}
    sched = LRShim(opt, {"all": RAMP}, {"beta1": {"all": beta1}})
    assert opt.param_groups[0]["betas"] == (0.95, 0.95)
    _train(opt, sched, 5)
    assert opt.param_groups[0]["betas"] == (pytest.approx(0.9), 0.95)


def test_momentum_and_weight_decay_schedules() -> None:
    opt = torch.optim.SGD(_named_groups("a", "b"), lr=0.1, momentum=0.9, weight_decay=0.0)
    wd = {"linear_decay": {"peak_value": 0.1, "end_value": 0.0, "decay_steps": 4}}
    sched = LRShim(opt, {"a": RAMP, "b": RAMP}, {"momentum": {"b": {"constant": 0.5}}, "weight_decay": {"a": wd}})
    _train(opt, sched, 2)
    a, b = opt.param_groups
    assert (a["momentum"], b["momentum"]) == (0.9, 0.5)  # groups left out keep their value
    assert (a["weight_decay"], b["weight_decay"]) == (pytest.approx(0.05), 0.0)


def test_momentum_on_adam_points_to_beta1() -> None:
    opt = torch.optim.AdamW(_params(), lr=0.1)
    with pytest.raises(ConfigError) as info:
        LRShim(opt, {"all": RAMP}, {"momentum": {"all": {"constant": 0.9}}})
    assert "has no 'momentum' to schedule as momentum; optimizers with betas schedule beta1" in str(info.value)


def test_unknown_hyperparameter() -> None:
    opt = torch.optim.AdamW(_params(), lr=0.1)
    with pytest.raises(ConfigError, match="unknown hyperparameter to schedule 'beta_1'; did you mean 'beta1'"):
        LRShim(opt, {"all": RAMP}, {"beta_1": {"all": {"constant": 0.9}}})


def test_state_dict_holds_only_the_step_and_a_fingerprint() -> None:
    opt = torch.optim.SGD(_named_groups("a", "b"), lr=0.1)
    sched = LRShim(opt, {"a": RAMP, "b": COSINE})
    _train(opt, sched, 3)
    state = sched.state_dict()
    assert set(state) == {"step", "fingerprint"}
    assert state["step"] == 3
    assert set(state["fingerprint"]) == {"a", "b"}


def _data(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(3)
    return [(torch.randn(16, 6, generator=gen), torch.randn(16, 1, generator=gen)) for _ in range(steps)]


def _make(schedule: dict) -> tuple[nn.Module, torch.optim.Optimizer, LRShim]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    groups = [
        {"params": list(model[0].parameters()), "name": "body"},
        {"params": list(model[2].parameters()), "name": "head", "lr_scale": 2.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01)
    return model, opt, build_scheduler(opt, schedule)


def _run(model: nn.Module, opt: torch.optim.Optimizer, sched: LRShim, batches: list) -> list[list[float]]:
    lrs = []
    for x, y in batches:
        lrs.append([float(g["lr"]) for g in opt.param_groups] + [g["betas"][0] for g in opt.param_groups])
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return lrs


RESUME_SCHEDULE = {
    "lr": {
        "body": COSINE,
        "head": {
            "warmup_stable_decay": {"peak_value": 5e-3, "warmup_steps": 3, "decay_steps": 40, "cooldown_steps": 10}
        },
    },
    "beta1": {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": 40}},
}


@pytest.mark.parametrize("optimizer_first", [True, False], ids=["optimizer-then-scheduler", "scheduler-then-optimizer"])
def test_resume_matches_an_uninterrupted_run_exactly(optimizer_first: bool) -> None:
    batches = _data(30)
    straight_model, straight_opt, straight_sched = _make(RESUME_SCHEDULE)
    straight = _run(straight_model, straight_opt, straight_sched, batches)

    model, opt, sched = _make(RESUME_SCHEDULE)
    first = _run(model, opt, sched, batches[:12])
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    resumed_model, resumed_opt, resumed_sched = _make(RESUME_SCHEDULE)
    resumed_model.load_state_dict(checkpoint["model"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if optimizer_first:
            resumed_opt.load_state_dict(checkpoint["opt"])
            resumed_sched.load_state_dict(checkpoint["sched"])
        else:
            resumed_sched.load_state_dict(checkpoint["sched"])
            resumed_opt.load_state_dict(checkpoint["opt"])
        second = _run(resumed_model, resumed_opt, resumed_sched, batches[12:])

    assert first + second == straight  # lr of each group and beta1, step by step
    assert resumed_sched.state_dict() == straight_sched.state_dict()
    for got, want in zip(resumed_model.parameters(), straight_model.parameters(), strict=True):
        assert torch.equal(got, want)


def test_edited_schedule_is_honoured_with_a_warning() -> None:
    model, opt, sched = _make(RESUME_SCHEDULE)
    _run(model, opt, sched, _data(10))
    state = copy.deepcopy(sched.state_dict())
    edited = copy.deepcopy(RESUME_SCHEDULE)
    edited["lr"]["head"] = {"constant": 1e-4}
    _, new_opt, new_sched = _make(edited)
    with pytest.warns(
        ScheduleChangedWarning, match=r"param group\(s\) head changed since the checkpoint; continuing at step 10"
    ):
        new_sched.load_state_dict(state)
    assert new_sched.last_epoch == 10
    assert new_sched.get_last_lr() == [compute_lr(COSINE, 10), 2 * 1e-4]
    assert new_opt.param_groups[1]["lr"] == 2e-4


def test_loading_a_torch_scheduler_state_reads_its_step() -> None:
    opt = torch.optim.SGD(_params(), lr=0.1)
    sched = LRShim(opt, {"all": COSINE})
    sched.load_state_dict({"last_epoch": 7, "base_lrs": [0.1], "_step_count": 8})
    assert sched.get_last_lr() == [compute_lr(COSINE, 7)]
    with pytest.raises(ValueError, match="not a scheduler state"):
        sched.load_state_dict({"epoch": 3})


def test_build_scheduler_none_keeps_each_groups_lr() -> None:
    groups = [{"params": _params(), "lr": 0.1}, {"params": _params(), "lr": 0.2, "lr_scale": 0.5}]
    opt = torch.optim.SGD(groups, lr=1.0)
    sched = build_scheduler(opt, None)
    _train(opt, sched, 3)
    assert sched.get_last_lr() == [0.1, 0.1]


@pytest.mark.parametrize(
    "config",
    [
        COSINE,
        LearningRate.model_validate(COSINE),
        {"lr": COSINE},
        {"lr": {"a": COSINE, "b": COSINE}},
        {"a": COSINE, "b": COSINE},
    ],
    ids=["one-schedule", "typed", "full-form", "full-form-per-group", "per-group"],
)
def test_build_scheduler_forms(config: object) -> None:
    opt = torch.optim.SGD(_named_groups("a", "b"), lr=1.0)
    sched = build_scheduler(opt, config)
    _train(opt, sched, 7)
    assert sched.get_last_lr() == [compute_lr(COSINE, 7)] * 2


def test_build_scheduler_full_form_with_epochs_and_hyperparameters() -> None:
    opt = torch.optim.SGD(_params(), lr=1.0, momentum=0.9, weight_decay=0.1)
    doc = {
        "steps_per_epoch": 10,
        "total_steps": 100,
        "lr": {"cosine_decay": {"peak_value": 0.1, "warmup_steps": {"epochs": 1}, "decay_steps": {"fraction": 1.0}}},
        "momentum": {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": {"epochs": 5}}},
        "weight_decay": 0.05,
    }
    sched = build_scheduler(opt, doc)
    _train(opt, sched, 10)
    group = opt.param_groups[0]
    assert group["lr"] == 0.1  # end of a one-epoch warmup
    assert group["momentum"] == pytest.approx(0.93)
    assert group["weight_decay"] == 0.05


def test_build_scheduler_accepts_omegaconf() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    opt = torch.optim.SGD(_params(), lr=1.0)
    sched = build_scheduler(opt, omegaconf.OmegaConf.create({"lr": RAMP}))
    assert sched.get_last_lr() == [0.0]


@pytest.mark.parametrize(
    ("config", "kwargs", "fragments"),
    [
        (
            {"lr": COSINE, "momentun": 0.9},
            {},
            ["schedule.momentun", "did you mean 'momentum'?", "Valid choices:", "weight_decay"],
        ),
        (
            {"cosine_decy": {"peak_value": 1.0}},
            {},
            ["schedule.cosine_decy", "unknown schedule", "did you mean 'cosine_decay'?"],
        ),
        (
            {"lr": {"cosine_decay": {"peak_value": 1.0, "decay_steps": {"epochs": 2}}}},
            {},
            ["schedule.lr.cosine_decay.decay_steps", "needs steps_per_epoch"],
        ),
        (
            {"steps_per_epoch": 10, "lr": COSINE},
            {"steps_per_epoch": 20},
            ["schedule.steps_per_epoch", "is 10 here but 20 was passed"],
        ),
        ({"total_steps": -5, "lr": COSINE}, {}, ["schedule.total_steps", "must be a positive integer, got -5"]),
        (
            {"lr": {"a": COSINE, "c": COSINE}},
            {},
            ["schedule.lr.c", "unknown param group name 'c'", "Valid choices: a, b"],
        ),
        ({"lr": COSINE, "beta1": 0.9}, {}, ["schedule.beta1", "has no 'betas' to schedule as beta1"]),
        ("cosine", {}, ["schedule:", "expected a schedule, a number, or a mapping"]),
    ],
)
def test_build_scheduler_errors(config: object, kwargs: dict, fragments: list[str]) -> None:
    opt = torch.optim.SGD(_named_groups("a", "b"), lr=1.0, momentum=0.9)
    with pytest.raises(ConfigError) as info:
        build_scheduler(opt, config, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_build_with_the_typed_design_config() -> None:
    model = nn.Linear(3, 1)
    config = {"sgd": {"lr": 0.1, "momentum": 0.9}, "learning_rate": RAMP}
    opt, sched = optforge.build(model, config)
    assert isinstance(sched, LRShim)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    assert _train(opt, sched, 5) == [[compute_lr(RAMP, t)] for t in range(5)]
    assert opt.param_groups[0]["lr"] == 0.1


def test_build_with_a_schedule_section() -> None:
    model = nn.Linear(3, 1)
    opt, sched = optforge.build(model, {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"lr": COSINE}})
    _train(opt, sched, 6)
    assert sched.get_last_lr() == [compute_lr(COSINE, 6)] * len(opt.param_groups)


# Param groups added while training (add_param_group: unfreezing a backbone).


def test_an_added_group_with_its_own_schedule_follows_it() -> None:
    opt = torch.optim.SGD(_named_groups("head"), lr=0.5)
    sched = LRShim(opt, {"head": COSINE})
    _train(opt, sched, 3)
    opt.add_param_group({"params": _params(), "name": "backbone", "lr": 0.5, "schedule": RAMP, "lr_scale": 0.5})
    backbone = opt.param_groups[1]
    assert backbone["initial_lr"] == 0.5
    assert backbone["lr"] == 0.5 * compute_lr(RAMP, 3)  # set at once, for the step it joins at
    assert sched.get_last_lr() == [compute_lr(COSINE, 3), 0.5 * compute_lr(RAMP, 3)]
    lrs = _train(opt, sched, 4)
    assert lrs == [[compute_lr(COSINE, t), 0.5 * compute_lr(RAMP, t)] for t in range(3, 7)]
    assert sched.base_lrs == [0.5, 0.5]
    assert set(sched.state_dict()["fingerprint"]) == {"head", "backbone"}


def test_an_added_group_follows_the_schedule_shared_by_every_group() -> None:
    opt = torch.optim.AdamW(_params(), lr=0.5)
    sched = build_scheduler(opt, {"lr": COSINE, "beta1": {"constant": 0.8}})
    _train(opt, sched, 2)
    opt.add_param_group({"params": _params(), "lr": 0.1, "lr_scale": 2.0})
    assert _train(opt, sched, 3) == [[compute_lr(COSINE, t), 2.0 * compute_lr(COSINE, t)] for t in range(2, 5)]
    assert opt.param_groups[1]["betas"] == (0.8, 0.999)


def test_an_added_group_keeps_its_lr_without_a_schedule_section() -> None:
    opt = torch.optim.SGD(_params(), lr=0.5)
    sched = build_scheduler(opt, None)
    _train(opt, sched, 2)
    opt.add_param_group({"params": _params(), "lr": 0.03})
    assert _train(opt, sched, 2) == [[0.5, 0.03]] * 2


def test_an_added_group_of_a_composite_part_follows_the_parts_schedule() -> None:
    from optforge.optimizers.composite import CompositeOptimizer

    opt = CompositeOptimizer({"sgd": torch.optim.SGD(_params(), lr=0.1), "adam": torch.optim.Adam(_params())})
    sched = LRShim(opt, {"sgd": COSINE, "adam": RAMP})
    _train(opt, sched, 2)
    opt.add_param_group({"params": _params()}, part="sgd")  # goes after the sgd part's group, before adam's
    assert [group["part"] for group in opt.param_groups] == ["sgd", "sgd", "adam"]
    lrs = _train(opt, sched, 3)
    assert lrs == [[compute_lr(COSINE, t), compute_lr(COSINE, t), compute_lr(RAMP, t)] for t in range(2, 5)]


def test_an_added_group_without_a_schedule_is_refused_when_added() -> None:
    opt = torch.optim.SGD(_named_groups("head"), lr=0.5)
    sched = LRShim(opt, {"head": COSINE})
    _train(opt, sched, 2)
    with pytest.raises(ConfigError, match=r"param group 'backbone' added .* has no schedule.*'schedule'") as info:
        opt.add_param_group({"params": _params(), "name": "backbone"})
    assert info.value.path == "param_groups[1]"
    assert len(opt.param_groups) == 1  # not added
    with pytest.raises(ConfigError, match=r"param_groups\[1\]\.schedule\.constnt: unknown key"):
        opt.add_param_group({"params": _params(), "name": "backbone", "schedule": {"constnt": 0.1}})
    assert len(opt.param_groups) == 1
    assert _train(opt, sched, 2) == [[compute_lr(COSINE, t)] for t in (2, 3)]


def test_a_group_added_behind_the_schedulers_back_is_refused_at_the_next_step() -> None:
    opt = torch.optim.SGD(_named_groups("head"), lr=0.5)
    sched = LRShim(opt, {"head": COSINE})
    torch.optim.Optimizer.add_param_group(opt, {"params": _params(), "name": "backbone"})
    opt.step()
    with pytest.raises(ConfigError, match=r"param group 'backbone' added .* has no schedule"):
        sched.step()


def test_state_round_trips_after_a_group_was_added() -> None:
    def make() -> tuple[torch.optim.Optimizer, LRShim]:
        opt = torch.optim.AdamW(_named_groups("head"), lr=0.5)
        return opt, LRShim(opt, {"head": COSINE}, {"beta1": {"head": {"constant": 0.9}}})

    backbone = {"name": "backbone", "schedule": RAMP, "lr_scale": 0.5}
    opt, sched = make()
    _train(opt, sched, 3)
    opt.add_param_group({"params": _params(), **backbone})
    _train(opt, sched, 3)
    saved = copy.deepcopy({"opt": opt.state_dict(), "sched": sched.state_dict()})
    straight = _train(opt, sched, 5)

    resumed_opt, resumed = make()
    resumed_opt.add_param_group({"params": _params(), **backbone})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fingerprints match
        resumed_opt.load_state_dict(saved["opt"])
        resumed.load_state_dict(saved["sched"])
    assert resumed.state_dict() == saved["sched"]
    assert _train(resumed_opt, resumed, 5) == straight


# Pickling and deep copies, with the optimizer.


def _stepped_pair() -> tuple[torch.optim.Optimizer, LRShim]:
    opt = torch.optim.AdamW(_named_groups("body", "head"), lr=0.5)
    beta1 = {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": 20}}
    sched = LRShim(opt, {"body": COSINE, "head": RAMP}, {"beta1": {"head": beta1}})
    _train(opt, sched, 3)
    return opt, sched


@pytest.mark.parametrize(
    "clone", [lambda pair: pickle.loads(pickle.dumps(pair)), copy.deepcopy], ids=["pickle", "deepcopy"]
)
def test_a_copy_with_its_optimizer_continues_identically_and_keeps_its_own_load_hook(clone) -> None:
    opt, sched = _stepped_pair()
    copied_opt, copied = clone((opt, sched))
    assert copied.optimizer is copied_opt
    assert copied.state_dict() == sched.state_dict()
    rows = [[g["lr"] for g in o.param_groups] + [g["betas"] for g in o.param_groups] for o in (opt, copied_opt)]
    assert rows[0] == rows[1]
    for _ in range(4):
        for o, s in ((opt, sched), (copied_opt, copied)):
            o.step()
            s.step()
        assert [g["lr"] for g in copied_opt.param_groups] == [g["lr"] for g in opt.param_groups]
        assert copied_opt.param_groups[1]["betas"] == opt.param_groups[1]["betas"]

    _train(copied_opt, copied, 2)  # the copy is now 2 steps ahead
    state = copied_opt.state_dict()
    for group in state["param_groups"]:
        group["lr"] = 123.0
    copied_opt.load_state_dict(state)  # the copy's hook re-applies the copy's lrs
    assert copied.get_last_lr() == [compute_lr(COSINE, 9), compute_lr(RAMP, 9)]
    assert [g["lr"] for g in copied_opt.param_groups] == copied.get_last_lr()
    opt.load_state_dict(state)  # only the original's hook runs on the original
    assert [g["lr"] for g in opt.param_groups] == [compute_lr(COSINE, 7), compute_lr(RAMP, 7)]


def test_a_pickled_scheduler_keeps_watching_for_added_groups() -> None:
    opt, sched = pickle.loads(pickle.dumps(_stepped_pair()))
    with pytest.raises(ConfigError, match="has no schedule"):
        opt.add_param_group({"params": _params(), "name": "extra"})
    opt.add_param_group({"params": _params(), "name": "extra", "schedule": {"constant": 0.2}})
    assert sched.get_last_lr()[-1] == 0.2


def test_a_group_added_to_a_typed_config_build_follows_its_learning_rate() -> None:
    opt, sched = optforge.build(nn.Linear(3, 1), {"sgd": {"lr": 0.1}, "learning_rate": RAMP})
    _train(opt, sched, 2)
    opt.add_param_group({"params": _params()})
    assert _train(opt, sched, 2) == [[compute_lr(RAMP, t)] * 2 for t in (2, 3)]


SCHEDULE_BESIDE_TOTAL = {"cosine_decay": {"peak_value": 0.1, "decay_steps": {"fraction": 1.0}}}


@pytest.mark.parametrize(
    ("schedule", "path", "message"),
    [
        (
            {"total_steps": 10000, **SCHEDULE_BESIDE_TOTAL},
            "schedule.cosine_decay",
            "unknown key 'cosine_decay': a schedule beside total_steps goes under lr: "
            "schedule: {total_steps: 10000, lr: {cosine_decay: {...}}}",
        ),
        (
            {"steps_per_epoch": 100, "momentum": {"constant": 0.9}, **SCHEDULE_BESIDE_TOTAL},
            "schedule.cosine_decay",
            "unknown key 'cosine_decay': a schedule beside steps_per_epoch, momentum goes under lr: "
            "schedule: {steps_per_epoch: 100, momentum: {...}, lr: {cosine_decay: {...}}}",
        ),
        (
            {"total_steps": 10000, "CosineAnnealingLR": {"T_max": 10000}},
            "schedule.CosineAnnealingLR",
            "unknown key 'CosineAnnealingLR': a scheduler by name goes in the section itself, its name under "
            "name: and total_steps beside its arguments: schedule: {name: CosineAnnealingLR, ..., total_steps: 10000}",
        ),
        (
            {"total_steps": 10000, "name": {"CosineAnnealingLR": {"T_max": 10000}}},
            "schedule.name",
            "unknown key 'name': a scheduler by name goes in the section itself, its name under "
            "name: and total_steps beside its arguments: schedule: {name: CosineAnnealingLR, ..., total_steps: 10000}",
        ),
    ],
)
def test_a_schedule_beside_total_steps_is_told_to_go_under_lr(schedule: dict, path: str, message: str) -> None:
    config = {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": schedule}
    with pytest.raises(ConfigError) as info:
        optforge.build(nn.Linear(2, 1), config)
    assert info.value.problems == [(path, message)]
    with pytest.raises(ConfigError) as direct:  # build_scheduler on its own says the same
        build_scheduler(torch.optim.SGD(_params(), lr=0.1), schedule)
    assert direct.value.problems == [(path, message)]


def test_the_step_that_works_builds() -> None:
    config = {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"total_steps": 10000, "lr": SCHEDULE_BESIDE_TOTAL}}
    _, scheduler = optforge.build(nn.Linear(2, 1), config)
    assert scheduler.get_last_lr() == [0.1]


def test_a_misspelt_schedule_beside_total_steps_is_named() -> None:
    config = {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"total_steps": 100, "cosine_decy": {}}}
    with pytest.raises(ConfigError) as info:
        optforge.build(nn.Linear(2, 1), config)
    ((path, message),) = info.value.problems
    assert path == "schedule.cosine_decy"
    assert message.startswith("unknown key 'cosine_decy'; did you mean the schedule 'cosine_decay'? ")
    assert message.endswith(
        "a schedule beside total_steps goes under lr: schedule: {total_steps: 100, lr: {cosine_decay: {...}}}"
    )
