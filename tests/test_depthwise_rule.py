"""The ``depthwise`` selector of a param-group rule: parameters of an nn.Conv2d with in_channels == groups."""

from __future__ import annotations

import pytest
from torch import nn

import optforge
from optforge.errors import ConfigError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pointwise = nn.Conv2d(3, 8, 1)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8)
        self.grouped = nn.Conv2d(8, 16, 3, groups=4)  # grouped, not depthwise
        self.multiplier = nn.Conv2d(8, 16, 3, groups=8)  # depthwise with a channel multiplier
        self.head = nn.Linear(16, 2)


def _groups(config):
    model = Net()
    names = {id(p): n for n, p in model.named_parameters()}
    optimizer, _ = optforge.build(model, {"optimizer": config})
    return {frozenset(names[id(p)] for p in g["params"]): g["weight_decay"] for g in optimizer.param_groups}


def test_true_selects_the_depthwise_convolutions_and_false_the_rest():
    base = {"name": "SGD", "lr": 0.1, "weight_decay": 1e-4, "no_weight_decay": False}
    groups = _groups({**base, "param_groups": [{"depthwise": True, "weight_decay": 0.0}]})
    depthwise = frozenset({"depthwise.weight", "depthwise.bias", "multiplier.weight", "multiplier.bias"})
    assert groups[depthwise] == 0.0
    assert len(groups) == 2
    groups = _groups({**base, "param_groups": [{"depthwise": False, "ndim": 4, "weight_decay": 0.5}]})
    assert groups[frozenset({"pointwise.weight", "grouped.weight"})] == 0.5


def test_a_depthwise_rule_that_selects_nothing_is_an_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2))
    config = {"name": "SGD", "lr": 0.1, "param_groups": [{"depthwise": True, "lr_scale": 0.1}]}
    with pytest.raises(ConfigError) as err:
        optforge.build(model, {"optimizer": config})
    assert [path for path, _ in err.value.problems] == ["optimizer.param_groups[0].depthwise"]
    optional = {**config, "param_groups": [{"depthwise": True, "lr_scale": 0.1, "optional": True}]}
    optimizer, _ = optforge.build(model, {"optimizer": optional})
    assert len(optimizer.param_groups) == 1
    with pytest.raises(ConfigError) as err:
        optforge.build(model, {"optimizer": {**config, "param_groups": [{"depthwise": "yes"}]}})
    assert [path for path, _ in err.value.problems] == ["optimizer.param_groups[0].depthwise"]
