"""CompositeOptimizer and the list form of ``optimizer:``: Muon + AdamW, SGD + Adam, one torch optimizer."""

from __future__ import annotations

import copy
import io
import math
import re
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import optforge
from optforge.composite_plan import muon_recipe
from optforge.errors import ConfigError
from optforge.optimizers.composite import CompositeOptimizer
from optforge.schedules import compute_lr, parse_schedule

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB, DIM = 32, 16
LR = 0.01


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.qkv, self.proj = nn.Linear(DIM, 3 * DIM), nn.Linear(DIM, DIM)
        self.fc1, self.fc2 = nn.Linear(DIM, 4 * DIM), nn.Linear(4 * DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, 2, DIM // 2).permute(2, 0, 3, 1, 4)
        attn = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, length, DIM))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class TinyLM(nn.Module):
    """A two-block transformer language model: embedding, blocks, final norm, output head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.blocks = nn.ModuleList(Block() for _ in range(2))
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def lm() -> TinyLM:
    torch.manual_seed(0)
    return TinyLM()


TOKENS = torch.randint(0, VOCAB, (4, 9), generator=torch.Generator().manual_seed(1))


def loss_of(model: nn.Module) -> torch.Tensor:
    logits = model(TOKENS[:, :-1])
    return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), TOKENS[:, 1:].reshape(-1))


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, scheduler: Any = None) -> list[float]:
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_of(model)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def by_hand(model: TinyLM, lr: float = LR, weight_decay: float = 0.1) -> list[torch.optim.Optimizer]:
    """The split muon_recipe makes, written out: Muon for the blocks' matrices, AdamW for the rest."""
    hidden = [p for n, p in model.named_parameters() if n.startswith("blocks.") and p.ndim == 2]
    rest = [(n, p) for n, p in model.named_parameters() if not any(p is h for h in hidden)]
    exempt = (".bias", "norm")
    decay = [p for n, p in rest if p.ndim > 1 and not any(e in n for e in exempt)]
    no_decay = [p for n, p in rest if p.ndim <= 1 or any(e in n for e in exempt)]
    muon = torch.optim.Muon(hidden, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
        eps=1e-8,
        weight_decay=weight_decay,
    )
    return [muon, adamw]


class Both:
    """Steps several optimizers as a hand-written wrapper would."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad()

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()


def assert_same_model(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def recipe_optimizer(model: nn.Module) -> CompositeOptimizer:
    opt = optforge.build_optimizer(model, {"optimizer": muon_recipe(lr=LR)})
    assert isinstance(opt, CompositeOptimizer)
    return opt


# --- the Muon recipe trains as Muon and AdamW stepped by hand ---------------------------------------------------


def test_muon_recipe_splits_hidden_matrices_from_the_rest() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = [names[id(p)] for g in opt.parts["muon"].param_groups for p in g["params"]]
    assert muon == [f"blocks.{i}.{m}.weight" for i in range(2) for m in ("qkv", "proj", "fc1", "fc2")]
    assert opt.parts["muon"].defaults["adjust_lr_fn"] == "match_rms_adamw"
    adamw = {names[id(p)] for g in opt.parts["adamw"].param_groups for p in g["params"]}
    assert {"embed.weight", "head.weight", "head.bias", "norm.weight", "blocks.0.qkv.bias"} <= adamw
    assert len(muon) + len(adamw) == len(list(model.parameters()))
    assert [g["name"] for g in opt.param_groups] == ["muon/default", "adamw/default", "adamw/no_decay"]


def test_muon_adamw_trajectory_equals_the_two_optimizers_stepped_by_hand() -> None:
    model, reference = lm(), lm()
    losses = train(model, recipe_optimizer(model), 6)
    want = train(reference, Both(by_hand(reference)), 6)
    assert losses == want
    assert losses[-1] < losses[0]
    assert_same_model(model, reference)


def test_param_groups_are_the_parts_group_dicts() -> None:
    opt = recipe_optimizer(lm())
    part_groups = [g for part in opt.parts.values() for g in part.param_groups]
    assert len(opt.param_groups) == len(part_groups)
    assert all(a is b for a, b in zip(opt.param_groups, part_groups))
    opt.param_groups[0]["lr"] = 0.5
    assert opt.parts["muon"].param_groups[0]["lr"] == 0.5


def test_step_evaluates_the_closure_once_and_returns_its_loss() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    calls = []

    def closure() -> torch.Tensor:
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = loss_of(model)
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert calls == [True]
    assert torch.isfinite(loss)
    assert all(opt.state[p] for g in opt.param_groups for p in g["params"])


def test_zero_grad_clears_every_part() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    loss_of(model).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_state_is_keyed_by_parameter_and_lives_in_the_parts() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    train(model, opt, 1)
    muon_param = opt.parts["muon"].param_groups[0]["params"][0]
    assert opt.state[muon_param] is opt.parts["muon"].state[muon_param]
    assert model.embed.weight in opt.state
    assert "exp_avg" in opt.state[model.embed.weight]
    assert len(opt.state) == len(list(model.parameters()))
    with pytest.raises(KeyError):
        opt.state[torch.zeros(1)]
    opt.state.clear()
    assert not opt.state
    assert not opt.parts["adamw"].state


def test_step_hooks_run_around_the_composite_step() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    seen: list[str] = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    opt.parts["muon"].register_step_post_hook(lambda o, args, kwargs: seen.append("muon"))
    train(model, opt, 2)
    assert seen == ["pre", "muon", "post"] * 2


def test_grad_scaler_steps_the_composite() -> None:
    model, reference = lm(), lm()
    opt = recipe_optimizer(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for _ in range(3):
        opt.zero_grad()
        scaler.scale(loss_of(model)).backward()
        scaler.step(opt)
        scaler.update()
    train(reference, Both(by_hand(reference)), 3)
    assert_same_model(model, reference)  # power-of-two scaling is exact


def test_add_param_group_goes_to_the_named_part() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    extra = nn.Parameter(torch.ones(3, 3))
    opt.add_param_group({"params": [extra], "lr": 0.1}, part="adamw")
    assert opt.param_groups[-1]["params"] == [extra]
    assert opt.param_groups[-1]["part"] == "adamw"
    assert opt.parts["adamw"].param_groups[-1] is opt.param_groups[-1]
    extra.grad = torch.ones(3, 3)
    opt.step()
    assert "exp_avg" in opt.state[extra]
    assert not torch.equal(extra, torch.ones(3, 3))
    with pytest.raises(ValueError, match="say which part"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2))]})
    with pytest.raises(ValueError, match="unknown part 'adam'"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2))]}, part="adam")
    with pytest.raises(ValueError, match="already in part 'adamw'"):
        opt.add_param_group({"params": [extra]}, part="muon")


def test_constructor_rejects_shared_parameters_and_bad_parts() -> None:
    w = nn.Parameter(torch.ones(2, 2))
    with pytest.raises(ValueError, match="in parts 'a' and 'b'"):
        CompositeOptimizer({"a": torch.optim.SGD([w], lr=0.1), "b": torch.optim.Adam([w])})
    with pytest.raises(ValueError, match="without '/'"):
        CompositeOptimizer({"a/b": torch.optim.SGD([w], lr=0.1)})
    with pytest.raises(TypeError, match="must be a torch optimizer"):
        CompositeOptimizer({"a": "SGD"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="at least one part"):
        CompositeOptimizer({})


def test_deepcopy_keeps_the_parts() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    train(model, opt, 1)
    clone = copy.deepcopy(opt)
    assert list(clone.parts) == ["muon", "adamw"]
    assert clone.param_groups[0] is clone.parts["muon"].param_groups[0]
    assert len(clone.state) == len(opt.state)


# --- schedulers --------------------------------------------------------------------------------------------------


def test_torch_cosine_annealing_drives_every_part() -> None:
    model, reference = lm(), lm()
    opt = recipe_optimizer(model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=1e-4)
    hand = by_hand(reference)
    hand_schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=1e-4) for o in hand]
    for _ in range(4):
        train(model, opt, 1, scheduler)
        train(reference, Both(hand), 1)
        for s in hand_schedulers:
            s.step()
        want = [g["lr"] for o in hand for g in o.param_groups]
        assert [g["lr"] for g in opt.param_groups] == want
        assert [g["lr"] for part in opt.parts.values() for g in part.param_groups] == want
    assert opt.param_groups[0]["lr"] < LR
    assert_same_model(model, reference)


COSINE = {"cosine_decay": {"peak_value": LR, "warmup_steps": 2, "decay_steps": 8, "end_value": 1e-4}}
MUON_COSINE = {"cosine_decay": {"peak_value": 0.02, "warmup_steps": 1, "decay_steps": 8}}


def test_lrshim_with_per_part_schedules_sets_every_group_of_each_part() -> None:
    model = lm()
    opt, scheduler = optforge.build(
        model, {"optimizer": muon_recipe(lr=LR), "schedule": {"lr": {"muon": MUON_COSINE, "adamw": COSINE}}}
    )
    assert isinstance(scheduler, optforge.LRShim)
    for step in range(1, 5):
        train(model, opt, 1, scheduler)
        muon_lr = compute_lr(parse_schedule(MUON_COSINE), step)
        adamw_lr = compute_lr(parse_schedule(COSINE), step)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([muon_lr, adamw_lr, adamw_lr])


def test_lrshim_with_per_group_schedules() -> None:
    opt = recipe_optimizer(lm())
    constant = {"constant": 0.003}
    scheduler = optforge.LRShim(opt, {"muon/default": MUON_COSINE, "adamw/default": COSINE, "adamw/no_decay": constant})
    opt.step()
    scheduler.step()
    assert opt.parts["adamw"].param_groups[1]["lr"] == 0.003
    assert opt.parts["muon"].param_groups[0]["lr"] == pytest.approx(compute_lr(parse_schedule(MUON_COSINE), 1))


def test_one_schedule_drives_the_recipe_whose_parts_share_an_lr() -> None:
    model = lm()
    opt, scheduler = optforge.build(model, {"optimizer": muon_recipe(lr=LR), "schedule": COSINE})
    train(model, opt, 3, scheduler)
    want = compute_lr(parse_schedule(COSINE), 3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([want] * 3)


def test_one_schedule_over_parts_of_different_lrs_is_an_error() -> None:
    parts = [{"name": "Muon", "lr": 0.02, "params": {"match": "blocks.*", "ndim": 2}}, {"name": "AdamW", "lr": 3e-4}]
    with pytest.raises(ConfigError, match=r"schedule: one schedule sets the same lr in every part.*muon 0\.02"):
        optforge.build(lm(), {"optimizer": parts, "schedule": COSINE})


def test_without_a_schedule_each_part_keeps_its_lr() -> None:
    parts = [{"name": "Muon", "lr": 0.02, "params": {"match": "blocks.*", "ndim": 2}}, {"name": "AdamW", "lr": 3e-4}]
    model = lm()
    opt, scheduler = optforge.build(model, {"optimizer": parts})
    train(model, opt, 2, scheduler)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 3e-4, 3e-4]


# --- state dicts -------------------------------------------------------------------------------------------------


def _saved(obj: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_state_dict_round_trip_continues_identically() -> None:
    model = lm()
    opt, scheduler = optforge.build(model, {"optimizer": muon_recipe(lr=LR), "schedule": COSINE})
    train(model, opt, 3, scheduler)
    saved = _saved({"model": model.state_dict(), "opt": opt.state_dict(), "sched": scheduler.state_dict()})

    resumed = lm()
    resumed.load_state_dict(saved["model"])
    opt2, scheduler2 = optforge.build(resumed, {"optimizer": muon_recipe(lr=LR), "schedule": COSINE})
    opt2.load_state_dict(saved["opt"])
    scheduler2.load_state_dict(saved["sched"])
    again = opt2.state_dict()
    assert again["param_groups"] == saved["opt"]["param_groups"]
    for key, state in saved["opt"]["state"].items():
        for name, value in state.items():
            assert torch.equal(again["state"][key][name], value), (key, name)
    assert all(a is b for a, b in zip(opt2.param_groups, [g for p in opt2.parts.values() for g in p.param_groups]))

    assert train(model, opt, 3, scheduler) == train(resumed, opt2, 3, scheduler2)
    assert_same_model(model, resumed)


def test_state_dict_numbers_parameters_in_group_order_with_their_part() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    train(model, opt, 1)
    state = opt.state_dict()
    ids = [i for g in state["param_groups"] for i in g["params"]]
    assert ids == list(range(len(list(model.parameters()))))
    assert sorted(state["state"]) == ids
    assert [g["part"] for g in state["param_groups"]] == ["muon", "adamw", "adamw"]


def test_a_state_of_another_layout_is_refused_and_nothing_changes() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    train(model, opt, 2)
    before = copy.deepcopy(opt.state_dict())
    plain = torch.optim.AdamW(model.parameters()).state_dict()
    with pytest.raises(ValueError, match=r"another layout.*\(no part\): 1 group.*muon: 1 group \(8 params\)"):
        opt.load_state_dict(plain)
    swapped = copy.deepcopy(before)
    swapped["param_groups"][0]["part"] = "adamw"
    with pytest.raises(ValueError, match="another layout"):
        opt.load_state_dict(swapped)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert all(torch.equal(after["state"][k]["exp_avg"], v["exp_avg"]) for k, v in before["state"].items() if k >= 8)


def test_a_part_that_fails_to_load_leaves_every_part_as_it_was() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    train(model, opt, 1)
    state = opt.state_dict()
    groups_before = list(opt.param_groups)
    muon_state = opt.parts["muon"].state
    broken = copy.deepcopy(state)
    broken["parts"] = {"adamw": {"state": "not a mapping"}}
    with pytest.raises((TypeError, ValueError, AttributeError)):
        opt.load_state_dict(broken)
    assert opt.parts["muon"].state is muon_state
    assert all(a is b for a, b in zip(opt.param_groups, groups_before))


def test_load_state_dict_hooks_and_lrshim_reapply_after_loading() -> None:
    model = lm()
    opt, scheduler = optforge.build(model, {"optimizer": muon_recipe(lr=LR), "schedule": COSINE})
    train(model, opt, 2, scheduler)
    state = opt.state_dict()
    loaded: list[str] = []
    opt.register_load_state_dict_pre_hook(lambda o, sd: loaded.append("pre"))
    opt.register_load_state_dict_post_hook(lambda o: loaded.append("post"))
    for group in opt.param_groups:
        group["lr"] = 123.0
    opt.load_state_dict(state)
    assert loaded == ["pre", "post"]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([compute_lr(parse_schedule(COSINE), 2)] * 3)


# --- a recommender: SGD for embedding tables, Adam for the rest, task towers -------------------------------------


class Recommender(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tables = nn.ModuleDict({"user": nn.EmbeddingBag(50, 8, mode="sum"), "item": nn.EmbeddingBag(40, 8)})
        self.backbone = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.towers = nn.ModuleDict({"ctr": nn.Linear(16, 1), "cvr": nn.Linear(16, 1)})

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.tables["user"](users), self.tables["item"](items)], dim=1)
        h = self.backbone(x)
        return torch.cat([self.towers["ctr"](h), self.towers["cvr"](h)], dim=1)


def recommender() -> Recommender:
    torch.manual_seed(0)
    return Recommender()


TOWERS = {
    "tower_learning_rates": {
        "ctr": {"linear_ramp_to_constant": {"learning_rate": 0.004, "num_ramp_steps": 4}},
        "cvr": {
            "linear_ramp_to_cosine": {
                "learning_rate": 0.002,
                "final_learning_rate": 1e-4,
                "num_ramp_steps": 2,
                "final_num_steps": 6,
            }
        },
    },
    "backbone_learning_rate": {"constant": 0.001},
}
SYSTEM_A = {
    "optimizer": [
        {"sgd": {"lr": 0.05}, "learning_rate": {"constant": 0.05}, "params": {"module_type": "EmbeddingBag"}},
        {"adam": {"lr": 0.001, "eps": 1e-7}},
    ],
    "multi_task_learning_rates": TOWERS,
}


def rec_loss(model: Recommender) -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    users, items = torch.randint(0, 50, (16, 3), generator=gen), torch.randint(0, 40, (16, 2), generator=gen)
    return model(users, items).pow(2).mean()


def test_system_a_composite_follows_the_tower_schedules() -> None:
    model, reference = recommender(), recommender()
    opt, scheduler = optforge.build(model, SYSTEM_A)
    assert {g["name"]: g["part"] for g in opt.param_groups} == {
        "sgd/default": "sgd",
        "adam/backbone": "adam",
        "adam/ctr": "adam",
        "adam/cvr": "adam",
    }
    tables = [p for n, p in reference.named_parameters() if n.startswith("tables.")]
    groups = [
        [p for n, p in reference.named_parameters() if n.startswith(prefix)]
        for prefix in ("backbone.", "towers.ctr.", "towers.cvr.")
    ]
    sgd = torch.optim.SGD(tables, lr=0.05)
    adam = torch.optim.Adam([{"params": g} for g in groups], eps=1e-7)
    schedules = [
        parse_schedule(s) for s in (TOWERS["backbone_learning_rate"], *TOWERS["tower_learning_rates"].values())
    ]
    for step in range(6):
        for group, schedule in zip(adam.param_groups, schedules):
            group["lr"] = compute_lr(schedule, step)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05] + [g["lr"] for g in adam.param_groups])
        for o, m in ((opt, model), (Both([sgd, adam]), reference)):
            o.zero_grad()
            rec_loss(m).backward()
            o.step()
        scheduler.step()
    assert_same_model(model, reference)


def test_towers_that_apply_to_no_part_are_an_error() -> None:
    config = copy.deepcopy(SYSTEM_A)
    config["optimizer"][1]["learning_rate"] = {"constant": 0.001}
    with pytest.raises(ConfigError, match="multi_task_learning_rates: applies to no part"):
        optforge.build(recommender(), config)


def test_module_type_selector_needs_a_known_type() -> None:
    config = copy.deepcopy(SYSTEM_A)
    config["optimizer"][0]["params"] = {"module_type": "EmbedingBag"}
    with pytest.raises(ConfigError, match=r"optimizer\[0\]\.params\.module_type: unknown module type 'EmbedingBag'"):
        optforge.build(recommender(), config)


# --- config errors -----------------------------------------------------------------------------------------------


def test_every_parameter_must_land_in_a_part() -> None:
    parts = [{"name": "Muon", "params": {"match": "blocks.*", "ndim": 2}}]
    with pytest.raises(ConfigError, match=r"^optimizer: 21 trainable parameter\(s\) are in no part: embed\.weight"):
        optforge.build_optimizer(lm(), {"optimizer": parts})


def test_a_part_that_selects_nothing_names_its_params() -> None:
    parts = [
        {"name": "AdamW", "params": {"match": "head"}},
        {"name": "SGD", "params": {"match": "head.*"}},
        {"name": "Adam"},
    ]
    with pytest.raises(
        ConfigError, match=r"optimizer\[1\]\.params: selects only parameters already taken by optimizer\[0\]"
    ):
        optforge.build_optimizer(lm(), {"optimizer": parts})
    parts = [{"name": "AdamW"}, {"name": "SGD", "lr": 0.1}]
    with pytest.raises(ConfigError, match=r"optimizer\[1\]\.params: this part has no params: selector"):
        optforge.build_optimizer(lm(), {"optimizer": parts})
    parts = [{"name": "AdamW", "params": {"match": "hed"}}, {"name": "SGD", "lr": 0.1}]
    with pytest.raises(
        ConfigError, match=r"optimizer\[0\]\.params\.match: selects no trainable parameter.*did you mean 'head'"
    ):
        optforge.build_optimizer(lm(), {"optimizer": parts})


def test_all_problems_of_all_parts_come_in_one_error() -> None:
    parts = [
        {"name": "AdamWW", "params": {"ndim": 2}},
        {"name": "SGD", "momentum": -1, "params": {"mach": "head"}},
        {"name": "LBFGS"},
    ]
    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(lm(), {"optimizer": parts})
    paths = [path for path, _ in info.value.problems]
    assert paths == ["optimizer[0].name", "optimizer[1].momentum", "optimizer[1].params.mach", "optimizer[2].name"]
    assert "did you mean 'AdamW'" in str(info.value)
    assert "closure" in str(info.value)


def test_part_names() -> None:
    model = lm()
    parts = [{"name": "AdamW", "params": {"match": "head"}}, {"name": "AdamW", "lr": 0.1}]
    opt = optforge.build_optimizer(model, {"optimizer": parts})
    assert list(opt.parts) == ["adamw0", "adamw1"]
    parts = [{"name": "AdamW", "part": "head", "params": {"match": "head"}}, {"name": "AdamW", "part": "body"}]
    assert list(optforge.build_optimizer(model, {"optimizer": parts}).parts) == ["head", "body"]
    parts = [{"name": "AdamW", "part": "x", "params": {"match": "head"}}, {"name": "AdamW", "part": "x"}]
    with pytest.raises(ConfigError, match=r"optimizer\[1\]\.part: part name 'x' is used twice"):
        optforge.build_optimizer(model, {"optimizer": parts})
    with pytest.raises(ConfigError, match=r"optimizer\[0\]\.part: a part name is a non-empty string without '/'"):
        optforge.build_optimizer(model, {"optimizer": [{"name": "SGD", "part": "a/b"}]})


def test_rules_inside_a_part_apply_to_its_parameters() -> None:
    model = lm()
    parts = [
        {
            "name": "Muon",
            "lr": 0.02,
            "params": {"match": "blocks.*", "ndim": 2},
            "param_groups": [{"match": "blocks.*.fc*", "lr_scale": 0.5, "name": "mlp"}],
        },
        {"name": "AdamW", "lr": 1e-3, "layer_decay": 0.5},
    ]
    opt = optforge.build_optimizer(model, {"optimizer": parts})
    names = [g["name"] for g in opt.param_groups]
    assert names[:2] == ["muon/default", "muon/mlp"]
    assert opt.param_groups[1]["lr"] == 0.01
    head = next(g for g in opt.param_groups if any(p is model.head.weight for p in g["params"]))
    embed = next(g for g in opt.param_groups if any(p is model.embed.weight for p in g["params"]))
    assert head["lr"] == 1e-3
    assert embed["lr"] == pytest.approx(1e-3 * 0.5**3)
    parts[0]["param_groups"] = [{"match": "head", "lr_scale": 0.5}]
    with pytest.raises(ConfigError, match=r"optimizer\[0\]\.param_groups\[0\]: matches no parameter of this part"):
        optforge.build_optimizer(model, {"optimizer": parts})


def test_unknown_selector_keys_and_group_dicts_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"optimizer\[0\]\.params\.name: unknown key in a params selector"):
        optforge.build_optimizer(lm(), [{"name": "SGD", "lr": 0.1, "params": {"name": "head"}}, {"name": "SGD"}])
    groups = [{"params": list(lm().parameters())}]
    with pytest.raises(ConfigError, match="not param-group dicts"):
        optforge.build_optimizer(groups, [{"name": "SGD", "lr": 0.1}])


def test_parameters_without_a_model() -> None:
    model = lm()
    parts = [{"name": "Muon", "params": {"ndim": 2}}, {"name": "AdamW"}]
    opt = optforge.build_optimizer(list(model.parameters()), {"optimizer": parts})
    assert sum(len(g["params"]) for g in opt.parts["muon"].param_groups) == 10  # with the embedding and head
    named = [{"name": "Muon", "params": {"match": "blocks.*", "ndim": 2}}, {"name": "AdamW"}]
    opt = optforge.build_optimizer(list(model.named_parameters()), {"optimizer": named})
    assert sum(len(g["params"]) for g in opt.parts["muon"].param_groups) == 8
    with pytest.raises(ConfigError, match=r"optimizer\[0\]\.params\.match: match needs parameter names"):
        optforge.build_optimizer(list(model.parameters()), {"optimizer": named})


def test_yaml_file_and_omegaconf_configs(tmp_path: Any) -> None:
    from omegaconf import OmegaConf

    path = tmp_path / "muon.yaml"
    path.write_text(
        "optimizer:\n"
        "  - {name: Muon, lr: 0.02, params: {match: 'blocks.*', ndim: 2}}\n"
        "  - {name: AdamW, lr: 3.0e-4, weight_decay: 0.1}\n"
    )
    parts = tmp_path / "parts.yaml"
    parts.write_text(path.read_text().removeprefix("optimizer:\n").replace("  - ", "- "))
    for config in (str(path), OmegaConf.load(path), parts, OmegaConf.load(parts)):
        opt = optforge.build_optimizer(lm(), config)
        assert [g["lr"] for g in opt.param_groups] == [0.02, 3e-4, 3e-4]


def test_frozen_parameters_are_left_out() -> None:
    model = lm()
    model.embed.weight.requires_grad_(False)
    opt = recipe_optimizer(model)
    assert all(p is not model.embed.weight for g in opt.param_groups for p in g["params"])


# --- 2-D-only optimizers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Muon", "pytorch_optimizer.spectralsphere"])
def test_a_matrix_only_optimizer_over_other_shapes_suggests_the_composite_form(name: str) -> None:
    pytest.importorskip("pytorch_optimizer")
    with pytest.raises(
        ConfigError,
        match=re.escape(f"optimizer.name: {name} takes 2-D parameters only") + r".*"
        r"norm1\.weight \(16\).*optimizer: \[\{name: " + re.escape(name),
    ):
        optforge.build_optimizer(lm(), {"name": name})
    parts = [{"name": name, "params": {"match": "blocks.*"}}, {"name": "AdamW"}]
    with pytest.raises(ConfigError, match=r"optimizer\[0\]\.params: .* takes 2-D parameters only.*with ndim: 2"):
        optforge.build_optimizer(lm(), parts)


def test_matrix_only_over_matrices_builds() -> None:
    model = nn.Linear(4, 4, bias=False)
    assert isinstance(optforge.build_optimizer(model, {"name": "Muon"}), torch.optim.Muon)


# --- optimizers that take the model ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lomo", "adalomo", "adammini"])
def test_optimizers_that_take_the_model_build_from_it_and_train(name: str) -> None:
    pytest.importorskip("pytorch_optimizer")
    entry = optforge.get_optimizer_entry(f"pytorch_optimizer.{name}")
    assert entry.takes == "module"
    assert entry.unavailable_reason() is None
    assert "model" not in entry.hyperparameters()[0]
    model = lm()
    config: dict[str, Any] = {"name": entry.name, "lr": 1e-2}
    if name == "adammini":
        config.update(num_embeds=DIM, num_heads=2)
    opt = optforge.build_optimizer(model, config)
    assert isinstance(opt, entry.resolve_class())
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(3):
        loss = loss_of(model)
        losses.append(loss.item())
        if entry.updates_in_backward:
            opt.fused_backward(loss, lr=1e-2)
        else:
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert all(math.isfinite(x) for x in losses)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    with pytest.raises(ConfigError, match=r"optimizer\.name: .* takes the model itself .* got list"):
        optforge.build_optimizer(list(lm().parameters()), {"name": entry.name})
    with pytest.raises(ConfigError, match=r"optimizer\[0\]\.name: .* takes the whole model"):
        optforge.build_optimizer(lm(), [{"name": entry.name}])


# --- explain -----------------------------------------------------------------------------------------------------


def test_explain_shows_each_parameters_part() -> None:
    table = optforge.explain(lm(), {"optimizer": muon_recipe(lr=LR)})
    rows = {row["parameter"]: row for row in table.records()}
    assert rows["blocks.0.qkv.weight"]["group"] == "muon/default"
    assert rows["blocks.0.qkv.weight"]["placed_by"] == "part muon (optimizer[0].params)"
    assert rows["head.bias"]["group"] == "adamw/no_decay"
    assert rows["head.bias"]["placed_by"] == "part adamw (the rest), no_weight_decay: bias"
    assert rows["embed.weight"]["weight_decay"] == 0.1
    assert "Muon + AdamW: 3 groups" in str(table)


# --- command line and Lightning ----------------------------------------------------------------------------------


def test_validate_checks_the_parts_with_or_without_a_model() -> None:
    from optforge.cli import validate_config

    parts = [{"name": "Muon", "params": {"match": "blocks.*", "ndim": 2}}, {"name": "AdamW", "lr": -1}]
    assert [path for path, _ in validate_config({"optimizer": parts})] == ["optimizer[1].lr"]
    parts[1]["lr"] = 1e-3
    assert validate_config({"optimizer": parts}) == []
    assert validate_config({"optimizer": parts}, lm()) == []
    parts[0]["params"]["match"] = "block"
    assert [path for path, _ in validate_config({"optimizer": parts}, lm())] == ["optimizer[0].params.match"]


def test_lightning_trains_the_composite_as_a_hand_loop() -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from optforge.integrations.lightning import configure_optimizers

    config = {"optimizer": muon_recipe(lr=LR), "schedule": COSINE}

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = lm()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return loss_of(self.net)

        def configure_optimizers(self) -> dict[str, Any]:
            return configure_optimizers(self, config)

    module = Module()
    trainer = pl.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=1))
    assert isinstance(trainer.optimizers[0], CompositeOptimizer)
    reference = lm()
    opt, scheduler = optforge.build(reference, config)
    train(reference, opt, 4, scheduler)
    assert_same_model(module.net, reference)


def test_plot_traces_each_parts_schedule() -> None:
    from optforge.plotting import trace_schedule

    parts = [{"name": "Muon", "lr": 0.02, "params": {"match": "blocks.*", "ndim": 2}}, {"name": "AdamW", "lr": 3e-4}]
    config = {"optimizer": parts, "schedule": {"lr": {"muon": MUON_COSINE, "adamw": COSINE}}}
    trace = trace_schedule(config, 8, lm())
    assert list(trace.lrs) == ["muon/default", "adamw/default, adamw/no_decay"]
    assert trace.lrs["muon/default"][1] == pytest.approx(compute_lr(parse_schedule(MUON_COSINE), 1))


def test_loading_a_part_directly_keeps_the_composite_in_step() -> None:
    model = lm()
    opt = recipe_optimizer(model)
    train(model, opt, 2)
    adamw_state = copy.deepcopy(opt.parts["adamw"].state_dict())
    opt.parts["adamw"].load_state_dict(adamw_state)  # torch replaces the part's group dicts
    assert all(a is b for a, b in zip(opt.param_groups, [g for p in opt.parts.values() for g in p.param_groups]))
    assert [g["part"] for g in opt.param_groups] == ["muon", "adamw", "adamw"]
    assert opt.state[model.head.weight] is opt.parts["adamw"].state[model.head.weight]


SELECTORS = [
    {"match": "blocks.*"},
    {"match": "blocks.0"},
    {"match": ["head", "embed"]},
    {"match": r"blocks\.\d\.(qkv|proj)\..*", "regex": True},
    {"ndim": 1},
    {"ndim": 2},
    {"match": "blocks.*", "ndim": 2},
    {"module_type": "LayerNorm"},
    {"module_type": "Linear", "ndim": 1},
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(range(len(SELECTORS))), min_size=1, max_size=4), st.booleans())
def test_every_parameter_lands_in_the_first_part_that_selects_it(chosen: list[int], rest: bool) -> None:
    from optforge.composite_plan import plan_composite
    from optforge.param_groups import ParamGroupRule, Rule, param_infos, rule_matches
    from optforge.param_groups.selectors import compile_patterns

    model = lm()
    parts: list[dict[str, Any]] = [{"name": "SGD", "lr": 0.1, "params": SELECTORS[i]} for i in chosen]
    if rest:
        parts.append({"name": "AdamW"})
    infos = param_infos(model)
    rules = []
    for i in chosen:
        config = ParamGroupRule(**SELECTORS[i])
        patterns = () if config.match is None else compile_patterns(config.match, config.regex, "x")
        rules.append(Rule(0, "x", config, {}, patterns))
    want: dict[int, int] = {}  # parameter -> index of its part
    fresh_per_part = [0] * len(parts)
    for info in infos:
        first = next((k for k, rule in enumerate(rules) if rule_matches(rule, info)), len(rules) if rest else None)
        if first is not None:
            want[id(info.param)] = first
            fresh_per_part[first] += 1
    empty = {f"optimizer[{k}]" for k, count in enumerate(fresh_per_part) if count == 0}
    if empty or len(want) < len(infos):
        with pytest.raises(ConfigError) as info:
            plan_composite(model, parts)
        paths = {path for path, _ in info.value.problems}
        assert all(path == "optimizer" or path.split(".")[0] in empty for path in paths), info.value
        assert ("optimizer" in paths) == (len(want) < len(infos)), info.value
        return
    plans = plan_composite(model, parts)
    got = {id(info.param): index for index, plan in enumerate(plans) for info in plan.infos}
    assert got == want
