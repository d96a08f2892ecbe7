"""Parameter groups from rules: lr scales, weight-decay exclusion, layer decay and task towers.

A flat optimizer config may hold, beside the hyperparameters:

- ``param_groups``: an ordered list of rules. Each rule selects parameters by
  ``match`` (globs, or a regex with ``regex: true``), ``module_type`` and/or
  ``ndim`` and sets hyperparameters, ``lr_scale``, ``name``, ``schedule``,
  ``layer`` or ``frozen: true``. The first rule that matches a parameter wins.
- ``no_weight_decay``: presets that set ``weight_decay: 0`` for biases, norm
  parameters, 1-D parameters, embeddings and named parameters; on by default
  for optimizers with decoupled weight decay (AdamW).
- ``layer_decay``: scale each block's lr by ``layer_decay ** (depth from the top)``.

A config document may also hold ``multi_task_learning_rates`` beside ``optimizer``:
one group (with its own schedule) per task tower, and the backbone.

Rules apply when a model (an ``nn.Module``) is given; param-group dicts passed
in are used as they are. Groups with identical settings are merged.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    >>> cfg = {"name": "AdamW", "lr": 0.01, "weight_decay": 0.1,
    ...        "param_groups": [{"match": "2", "lr_scale": 10, "name": "head"}]}
    >>> opt = optforge.build_optimizer(model, cfg)
    >>> for g in opt.param_groups:
    ...     print(g["name"], g["lr"], g["weight_decay"], len(g["params"]))
    default 0.01 0.1 1
    no_decay 0.01 0.0 3
    head 0.1 0.1 1
    head/no_decay 0.1 0.0 1
"""

from optforge.config.rules import Globs, MultiTaskLearningRates, NoWeightDecay, ParamGroupRule
from optforge.param_groups.infos import ParamInfo, param_infos
from optforge.param_groups.layer_decay import BLOCK_CONTAINERS
from optforge.param_groups.plan import (
    OPTION_KEYS,
    GroupPlan,
    Placement,
    effective_defaults,
    form_groups,
    group_schedules,
    make_param_groups,
    param_groups_for,
    plan_param_groups,
    uses_rules,
)
from optforge.param_groups.selectors import (
    Rule,
    check_module_types,
    compile_patterns,
    parse_rules,
    place_rules,
    rule_matches,
    rule_matches_nothing,
)
from optforge.param_groups.template import template_groups
from optforge.param_groups.towers import place_towers, tower_groups
from optforge.param_groups.weight_decay import (
    EMBEDDING_TYPES,
    NO_WEIGHT_DECAY_PRESETS,
    NORM_TYPES,
)

__all__ = [
    "BLOCK_CONTAINERS",
    "EMBEDDING_TYPES",
    "NORM_TYPES",
    "NO_WEIGHT_DECAY_PRESETS",
    "OPTION_KEYS",
    "Globs",
    "GroupPlan",
    "MultiTaskLearningRates",
    "NoWeightDecay",
    "ParamGroupRule",
    "ParamInfo",
    "Placement",
    "Rule",
    "check_module_types",
    "compile_patterns",
    "effective_defaults",
    "form_groups",
    "group_schedules",
    "make_param_groups",
    "param_groups_for",
    "param_infos",
    "parse_rules",
    "place_rules",
    "place_towers",
    "plan_param_groups",
    "rule_matches",
    "rule_matches_nothing",
    "template_groups",
    "tower_groups",
    "uses_rules",
]
