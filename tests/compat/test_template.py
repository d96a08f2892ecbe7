"""The training template's optimizer files and call sites, run unchanged.

The expected values are what the template's builder does (ANCHORS: registry class
over every trainable parameter, ``lr`` and ``args`` as keyword arguments; with
``group``, a first group of unmatched parameters, then one lr-divided group per
entry by name substring, first entry wins; then the checkpoint), written out here.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import optforge
from optforge.compat import template
from optforge.errors import ConfigError

# One file per optimizer the template ships, in its shape (YAML text as its files write it).
TEMPLATE_FILES: dict[str, str] = {
    "Adam": "name: Adam\nclass_name: Adam\nlr: 1e-3\nargs: {betas: [0.9, 0.999], weight_decay: 0}\n",
    "AdamW": "name: AdamW\nclass_name: AdamW\nlr: 1e-3\nargs: {betas: [0.9, 0.999], weight_decay: 0.05}\n",
    "AdamWScheduleFree": "name: sf\nclass_name: AdamWScheduleFree\nlr: 2.5e-3\nargs: {warmup_steps: 100}\n",
    "timm_Lamb": "name: lamb\nclass_name: timm_Lamb\nlr: 1e-3\nargs: {weight_decay: 0.01}\n",
    "Lion": "name: lion\nclass_name: Lion\nlr: 1e-4\nargs: {betas: [0.9, 0.99], weight_decay: 1e-2}\n",
    "Momentum": (
        "name: Momentum\nclass_name: Momentum\nlr: 1e-3\nargs: {momentum: 0.937, weight_decay: 4e-5, nesterov: false}\n"
    ),
    "NesterovMomentum": "name: nm\nclass_name: NesterovMomentum\nlr: 1e-2\nargs: null\n",
    "RAdamScheduleFree": "name: rsf\nclass_name: RAdamScheduleFree\nlr: 2.5e-3\nargs: null\n",
    "SGD": "name: SGD\nclass_name: SGD\nlr: 1e-2\nargs: {momentum: 0.0}\n",
}
COMMON_TAIL = "group: null\ncheckpoint: null\n"


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 8))
        self.decode_head = nn.Linear(8, 3)
        self.head = nn.Linear(8, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        return torch.cat([self.decode_head(h), self.head(h)], dim=1)


def _reference(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """What the template builds, from its description."""
    cls = optforge.get_optimizer_entry(cfg["class_name"])
    args = cfg.get("args") or {}
    params: Any = [p for p in model.parameters() if p.requires_grad]
    if cfg.get("group"):
        groups = [{"params": [], "lr": cfg["lr"]}] + [
            {"params": [], "lr": cfg["lr"] / g["divide"]} for g in cfg["group"]
        ]
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            hit = next((i + 1 for i, g in enumerate(cfg["group"]) if g["name"] in name), 0)
            groups[hit]["params"].append(p)
        params = groups
    kwargs = {**cls.defaults, **{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}}
    optimizer = cls.create(params, lr=cfg["lr"], **kwargs)
    if cfg.get("checkpoint"):
        optimizer.load_state_dict(torch.load(cfg["checkpoint"]))
    return optimizer


def _settings(optimizer: torch.optim.Optimizer) -> list[tuple[list[int], dict[str, Any]]]:
    ids = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    return [
        ([ids[id(p)] for p in g["params"]], {k: v for k, v in g.items() if k != "params"})
        for g in optimizer.param_groups
    ]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(TEMPLATE_FILES))
@pytest.mark.parametrize("source", ["path", "dict", "dictconfig"])
def test_every_template_file_builds_what_the_template_builds(tmp_path: Path, name: str, source: str) -> None:
    text = TEMPLATE_FILES[name] + COMMON_TAIL
    path = _write(tmp_path, name, text)
    cfg = optforge.load_config(path)
    given = {"path": path, "dict": cfg, "dictconfig": OmegaConf.create(cfg)}[source]
    model = Net()
    built = template.build_optimizer(given, model)
    expected = _reference(model, cfg)
    assert type(built) is type(expected)
    assert len(built.param_groups) == 1  # no weight-decay presets, no merging
    assert _settings(built) == _settings(expected)
    assert [id(p) for p in built.param_groups[0]["params"]] == [id(p) for p in model.parameters() if p.requires_grad]


def test_groups_follow_the_template_order_and_substring_rule() -> None:
    model = Net()
    cfg = {
        "name": "AdamW",
        "class_name": "AdamW",
        "lr": 1e-3,
        "args": {"weight_decay": 0.05},
        "group": [
            {"name": "head", "divide": 10},
            {"name": "backbone.3", "divide": 4},
            {"name": "nothing", "divide": 2},
        ],
        "checkpoint": None,
    }
    built = template.build_optimizer(cfg, model)
    assert _settings(built) == _settings(_reference(model, cfg))
    lrs = [g["lr"] for g in built.param_groups]
    assert lrs == [1e-3, 1e-4, 2.5e-4, 5e-4]
    # "head" is a substring of "decode_head": the template's rule, kept as it is.
    head_group = {id(p) for p in built.param_groups[1]["params"]}
    assert {id(p) for p in [*model.decode_head.parameters(), *model.head.parameters()]} == head_group
    assert built.param_groups[3]["params"] == []  # kept: same count as the template's saved states


def test_checkpoint_loads_and_continues_bit_identically(tmp_path: Path) -> None:
    cfg = {
        "name": "AdamW",
        "class_name": "AdamW",
        "lr": 1e-2,
        "args": {"weight_decay": 0.05},
        "group": [{"name": "head", "divide": 10}],
        "checkpoint": None,
    }

    def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            x = torch.randn(4, 6, generator=gen)
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()

    model = Net()
    original = _reference(model, cfg)
    train(model, original, 5, seed=1)
    saved = tmp_path / "optimizer.pth"
    torch.save(original.state_dict(), saved)
    resumed_model = Net()
    resumed_model.load_state_dict(model.state_dict())
    resumed = template.build_optimizer({**cfg, "checkpoint": str(saved)}, resumed_model)
    train(model, original, 5, seed=2)
    train(resumed_model, resumed, 5, seed=2)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_problems_name_the_field(tmp_path: Path) -> None:
    cfg = {"name": "SGD", "class_name": "SGD", "lr": 0.1, "args": None, "group": None}
    with pytest.raises(ConfigError, match=r"^optimizer\.checkpoint: optimizer checkpoint .* does not exist"):
        template.build_optimizer({**cfg, "checkpoint": str(tmp_path / "missing.pth")}, Net())
    other = torch.optim.SGD([{"params": [nn.Parameter(torch.ones(1))]}, {"params": [nn.Parameter(torch.ones(1))]}])
    torch.save(other.state_dict(), tmp_path / "two_groups.pth")
    with pytest.raises(ConfigError, match=r"^optimizer\.checkpoint: .* does not match the optimizer"):
        template.build_optimizer({**cfg, "checkpoint": str(tmp_path / "two_groups.pth")}, Net())
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"^optimizer\.checkpoint: cannot read"):
        template.build_optimizer({**cfg, "checkpoint": str(tmp_path / "junk.pth")}, Net())


def test_args_are_validated_with_their_path() -> None:
    cfg = {"name": "a", "class_name": "AdamW", "lr": 1e-3, "args": {"betas": [0.9, 1.5], "wieght_decay": 0.1}}
    with pytest.raises(ConfigError) as info:
        template.build_optimizer(cfg, Net())
    paths = [path for path, _ in info.value.problems]
    assert paths == ["optimizer.args.betas[1]", "optimizer.args.wieght_decay"]
    assert "did you mean 'weight_decay'" in str(info.value)


def test_class_name_is_case_insensitive_and_unknown_names_are_suggested() -> None:
    built = template.build_optimizer({"name": "x", "class_name": "adamw", "lr": 1e-3}, Net())
    assert type(built) is torch.optim.AdamW
    with pytest.raises(ConfigError, match=r"^optimizer\.class_name: unknown optimizer 'AdamWW'; did you mean"):
        template.build_optimizer({"name": "x", "class_name": "AdamWW", "lr": 1e-3}, Net())


def test_template_form_under_optimizer_key_and_through_build() -> None:
    model = Net()
    doc = {"optimizer": yaml_section(TEMPLATE_FILES["SGD"]), "schedule": {"constant": 0.01}}
    optimizer, scheduler = optforge.build(model, doc)
    assert type(optimizer) is torch.optim.SGD
    assert scheduler.get_last_lr() == [0.01]


def yaml_section(text: str) -> dict[str, Any]:
    """A section read as the template reads its files: OmegaConf's YAML, where 1e-3 is a float."""
    return OmegaConf.to_container(OmegaConf.create(textwrap.dedent(text)))


def test_param_group_dicts_are_used_as_given() -> None:
    model = Net()
    groups = template.param_groups_weight_decay(model, 0.05)
    built = template.build_optimizer({"name": "a", "class_name": "AdamW", "lr": 1e-3, "args": None}, groups)
    assert [g["weight_decay"] for g in built.param_groups] == [0.0, 0.05]


def test_param_groups_weight_decay_matches_the_helper_description() -> None:
    model = Net()
    no_decay, decay = template.param_groups_weight_decay(model, 0.1, ["backbone.0.weight"])
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} == {
        "backbone.0.weight",
        "backbone.0.bias",
        "backbone.1.weight",
        "backbone.1.bias",
        "backbone.3.bias",
        "decode_head.bias",
        "head.bias",
    }
    assert {names[id(p)] for p in decay["params"]} == {"backbone.3.weight", "decode_head.weight", "head.weight"}
    assert (no_decay["weight_decay"], decay["weight_decay"]) == (0.0, 0.1)


def test_get_param_group_takes_the_section_or_its_group_list() -> None:
    model = Net()
    section = {"group": [{"name": "head", "divide": 5}]}
    from_section = template.get_param_group(model, section, 0.5)
    from_list = template.get_param_group(model, OmegaConf.create(section["group"]), 0.5)
    assert [g["lr"] for g in from_section] == [g["lr"] for g in from_list] == [0.5, 0.1]
    assert [len(g["params"]) for g in from_section] == [6, 4]
    assert template.get_param_group(model, {"group": None}, 0.5)[0]["lr"] == 0.5
    with pytest.raises(ConfigError, match=r"optimizer\.group\[0\]\.divide"):
        template.get_param_group(model, [{"name": "head", "divide": 0}], 0.5)


def test_registry_get_and_contains() -> None:
    assert template.OPTIMIZER_REGISTRY.get("AdamW") is torch.optim.AdamW
    assert template.OPTIMIZER_REGISTRY.get("momentum") is torch.optim.SGD
    assert "timm_Lamb" in template.OPTIMIZER_REGISTRY
    assert "NoSuchOptimizer" not in template.OPTIMIZER_REGISTRY
    with pytest.raises(ConfigError, match="unknown optimizer 'Adamw2'"):
        template.OPTIMIZER_REGISTRY.get("Adamw2")


def test_explain_shows_the_groups_the_template_form_builds() -> None:
    model = Net()
    cfg = {"name": "a", "class_name": "AdamW", "lr": 1e-3, "group": [{"name": "head", "divide": 10}]}
    table = optforge.explain(model, cfg)
    built = template.build_optimizer(cfg, model)
    plan = optforge.plan_param_groups(model, optforge.builder.resolve_optimizer_spec(cfg))
    assert [len(g["params"]) for g in plan.groups] == [len(g["params"]) for g in built.param_groups]
    assert [g["lr"] for g in plan.groups] == [g["lr"] for g in built.param_groups]
    assert "template form" in str(table)
    group_column = table.columns.index("group")
    assert {row[group_column] for row in table.rows} == {"group0", "group1", None}  # None: the frozen layer


@pytest.mark.parametrize("epochs", [200, 37])
def test_build_lr_scheduler_takes_the_template_scheduler_file(epochs: int) -> None:
    cfg = OmegaConf.create(
        "epoch_scheduler:\n  name: step\n  class_name: MultiStepLR\n  checkpoint: null\n"
        "  args: {milestones: [0.5, 0.75], gamma: 0.1}\niter_scheduler: null\n"
    )
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    iter_scheduler, epoch_scheduler = template.build_lr_scheduler(cfg, optimizer, epochs, 1000)
    reference_optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    reference = torch.optim.lr_scheduler.MultiStepLR(
        reference_optimizer, milestones=[round(0.5 * epochs), round(0.75 * epochs)], gamma=0.1
    )
    assert iter_scheduler is None
    for _ in range(epochs):
        assert epoch_scheduler.get_last_lr() == reference.get_last_lr()
        optimizer.step()
        reference_optimizer.step()
        epoch_scheduler.step()
        reference.step()


def test_schedulers_step_as_the_template_trainer_steps_them() -> None:
    cfg = {
        "epoch_scheduler": {
            "name": "plateau",
            "class_name": "ReduceLROnPlateau",
            "checkpoint": None,
            "args": {"mode": "min", "factor": 0.5, "patience": 1},
        },
        "iter_scheduler": {"name": "warm", "class_name": "LinearLR", "checkpoint": None, "args": {"start_factor": 0.1}},
    }
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    iter_scheduler, epoch_scheduler = template.build_lr_scheduler(cfg, optimizer, 6, 10)
    assert isinstance(epoch_scheduler.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert iter_scheduler.total_iters == 10  # a missing total_iters is the run's length
    for it in range(1, 11):
        optimizer.step()
        iter_scheduler.step(epoch=it)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    for k, loss in enumerate([1.0] * 5, start=1):  # patience 1: halved after epochs 3 and 5
        epoch_scheduler.step(epoch=k, metric=loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="goes back"):
        iter_scheduler.step(epoch=3)


def test_the_metric_reaches_plateau_schedulers_nested_in_a_chained_scheduler() -> None:
    # The template's ChainedScheduler passes step(epoch=k, metric=loss) on to each nested scheduler in its range.
    cfg = {
        "epoch_scheduler": {
            "name": "warm then plateau",
            "class_name": "ChainedScheduler",
            "checkpoint": None,
            "args": {
                "step_ranges": [[0, 4], [4, 1000]],
                "schedulers": [
                    {"name": "warm", "class_name": "LinearLR", "args": {"start_factor": 0.25, "total_iters": 3}},
                    {"name": "plateau", "class_name": "ReduceLROnPlateau", "args": {"factor": 0.5, "patience": 1}},
                ],
            },
        },
        "iter_scheduler": None,
    }
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    _, epoch_scheduler = template.build_lr_scheduler(cfg, optimizer, 20, 100)
    lrs = []
    for k in range(1, 10):
        optimizer.step()
        epoch_scheduler.step(epoch=k, metric=1.0)  # never improves: halved every second judgement after the first
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == [0.5, 0.75, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_a_plateau_judges_the_metric_once_per_call_whatever_the_epoch() -> None:
    cfg = {
        "epoch_scheduler": {
            "name": "p",
            "class_name": "ReduceLROnPlateau",
            "checkpoint": None,
            "args": {"factor": 0.5, "patience": 0},
        },
        "iter_scheduler": None,
    }
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    _, epoch_scheduler = template.build_lr_scheduler(cfg, optimizer, 20, 100)
    epoch_scheduler.step(epoch=0, metric=1.0)  # the template's plot script starts at epoch 0
    epoch_scheduler.step(epoch=5, metric=1.0)  # one judgement, as the template's step ignores the epoch
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_the_module_examples_run_without_warnings() -> None:
    """Its examples step the optimizer before the scheduler, as a training loop must (torch warns otherwise)."""
    import doctest
    import warnings

    import optforge.compat.template as module

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
    assert [str(w.message) for w in caught] == []
