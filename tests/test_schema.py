"""The JSON Schema of config files agrees with the validator.

Every shipped example is valid under both; every typo and bad value of the
table is rejected by both; every valid variant is accepted by both. The
validator is :func:`optforge.cli.validate_config`, or ``optforge validate FILE``
for the files that are not documents (the template's scheduler file, a file
holding only a schedule).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from optforge.cli import app, load_model, validate_config
from optforge.cli_files import header_model
from optforge.demo import make_model
from optforge.json_schema import json_schema
from optforge.schedules import LearningRate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json_schema()
CHECKER = jsonschema.Draft202012Validator(SCHEMA)

# The shipped examples that are whole files (Hydra's primary config and its schedule fragments, which
# hold ${...} interpolations, are whole only once Hydra composes them).
EXAMPLES = sorted(
    [
        *(ROOT / "examples").glob("*.yaml"),
        *(ROOT / "src" / "optforge" / "examples").glob("*.yaml"),
        *(ROOT / "examples" / "hydra" / "optim" / "optimizer").glob("*.yaml"),
    ]
)


def table(text: str) -> dict[str, Any]:
    """The configs of a YAML table, by their keys (each given once)."""
    configs = yaml.safe_load(text)
    keys = [line.partition(":")[0] for line in text.splitlines() if line[:1].strip()]
    assert len(keys) == len(configs), "a key is given twice"
    return configs


# Typos and bad values, by what is wrong: each config is rejected by both.
INVALID = table(
    r"""
misspelt schedule name:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}
misspelt constant:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {constnat: 0.1}
misspelt constant, named groups:
  optimizer: {name: AdamW, lr: 0.001}
  schedule: {constnat: 0.001}
misspelt schedule key:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_valu: 0.1, decay_steps: 100}}
misspelt length key:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: 0.1, decay_step: 100}}
misspelt schedule of a group:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {group0: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}}
optimiser at the top:
  optimiser: {name: AdamW, lr: 0.001}
scheduler at the top:
  optimizer: {name: SGD, lr: 0.1}
  scheduler: {constant: 0.1}
schedul at the top:
  optimizer: {name: SGD, lr: 0.1}
  schedul: {constant: 0.1}
string constant:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {constant: abc}
lr a string in the full form:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: abc}
lr a string in a schedule:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {linear_ramp_to_constant: {learning_rate: abc, num_ramp_steps: 10}}
number written as a string:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: '1e-3', decay_steps: 100}}
bool constant:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {constant: true}
bool step count:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: 0.1, decay_steps: true}}
negative constant:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {constant: -0.1}
fractional step count:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: 0.1, decay_steps: 10.5}}
zero decay_steps:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: 0.1, decay_steps: 0}}
two schedules:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {constant: 0.1, cosine_decay: {peak_value: 0.1, decay_steps: 100}}
no schedule set:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {constant: null}
unknown shape:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {one_cycle: {peak_value: 0.1, warmup_steps: 10, decay_steps: 100, shape: cos}}
decay_rate of 1.5:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {exponential_decay: {peak_value: 0.1, decay_rate: 1.5, transition_steps: 10}}
misspelt epochs:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {steps_per_epoch: 10, lr: {cosine_decay: {peak_value: 0.1, decay_steps: {epoch: 2}}}}
fraction a string:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {total_steps: 100, lr: {cosine_decay: {peak_value: 0.1, decay_steps: {fraction: half}}}}
fraction above 1:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {total_steps: 100, lr: {cosine_decay: {peak_value: 0.1, decay_steps: {fraction: 2}}}}
length with two units:
  optimizer: {name: SGD, lr: 0.1}
  schedule:
    steps_per_epoch: 10
    total_steps: 100
    lr: {cosine_decay: {peak_value: 0.1, decay_steps: {fraction: 1, epochs: 2}}}
string among values:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {piecewise_constant: {learning_rate_boundaries: [10], learning_rate_values: [0.1, x]}}
misspelt nested schedule:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {warmup: {warmup_steps: 10, schedule: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}}}
misspelt phase key:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {join: {phases: [{schedule: {constant: 0.1}, step: 10}, {schedule: {constant: 0.01}}]}}
no phases:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {join: {phases: []}}
misspelt full-form key:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: {constant: 0.1}, momentun: {constant: 0.9}}
total_steps a string:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: {constant: 0.1}, total_steps: '100'}
total_steps 0:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: {constant: 0.1}, total_steps: 0}
steps_per_epoch a bool:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: {constant: 0.1}, steps_per_epoch: true}
schedule a bool:
  optimizer: {name: SGD, lr: 0.1}
  schedule: true
schedule a string:
  optimizer: {name: SGD, lr: 0.1}
  schedule: cosine
schedule a list:
  optimizer: {name: SGD, lr: 0.1}
  schedule: [{constant: 0.1}]
a group without a schedule:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {group0: null}
template's schedulers as the schedule:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {epoch_scheduler: {name: s, class_name: StepLR, args: {step_size: 3}}, iter_scheduler: null}
misspelt key of a scheduler:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: s, class_name: StepLR, args: {step_size: 3}, intervall: epoch}
scheduler args a list:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {class_name: StepLR, args: [3]}
scheduler class_name a number:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: StepLR, class_name: 5, args: {step_size: 3}}
unknown interval:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {class_name: StepLR, args: {step_size: 3}, interval: hourly}
frequency 0:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {class_name: StepLR, args: {step_size: 3}, frequency: 0}
monitor a number:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {class_name: ReduceLROnPlateau, args: {}, monitor: 5}
warmup factor without warmup:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {class_name: ReduceLROnPlateau, args: {}, warmup_start_factor: 0.5}
schedule given twice:
  optimizer: {adam: {lr: 0.1}, learning_rate: {constant: 0.1}}
  schedule: {constant: 0.1}
towers given twice:
  optimizer:
    adam: {lr: 0.1}
    multi_task_learning_rates:
      tower_learning_rates: {price: {constant: 0.1}}
      backbone_learning_rate: {constant: 0.05}
  multi_task_learning_rates:
    tower_learning_rates: {price: {constant: 0.1}}
    backbone_learning_rate: {constant: 0.05}
no_weight_decay a string:
  optimizer: {name: AdamW, lr: 0.001, no_weight_decay: {bias: 'yes'}}
misspelt no_weight_decay key:
  optimizer: {name: AdamW, lr: 0.001, no_weight_decay: {biass: true}}
no_weight_decay a number:
  optimizer: {name: AdamW, lr: 0.001, no_weight_decay: 1}
no_weight_decay names a string:
  optimizer: {name: AdamW, lr: 0.001, no_weight_decay: {names: '*.bias'}}
layer_decay 1.5:
  optimizer: {name: AdamW, lr: 0.001, layer_decay: 1.5}
layer_decay 0:
  optimizer: {name: AdamW, lr: 0.001, layer_decay: 0}
layer_decay a string:
  optimizer: {name: AdamW, lr: 0.001, layer_decay: '0.8'}
zero a string:
  optimizer: {name: AdamW, lr: 0.001, zero: 'yes'}
param_groups a mapping:
  optimizer: {name: SGD, lr: 0.1, param_groups: {match: '*.bias'}}
lr_scale a string:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{match: '*.bias', lr_scale: '2'}]}
regex a string:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{match: '.*bias', regex: 'yes'}]}
regex without match:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{ndim: 1, regex: true}]}
rule without a selector:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{lr_scale: 2}]}
ndim 1.5:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{ndim: 1.5}]}
layer -1:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{match: '*.bias', layer: -1}]}
layer without layer_decay:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{match: 'blocks.0.*', layer: 0}]}
misspelt schedule of a rule:
  optimizer: {name: SGD, lr: 0.1, param_groups: [{match: '*.bias', schedule: {constnt: 0.1}}]}
optimizer name a number:
  optimizer: {name: 5, lr: 0.1}
optimizer a string:
  optimizer: AdamW
typed, misspelt key:
  adam: {lr: 0.1, beta: [0.9, 0.99]}
typed, two optimizers:
  adam: {lr: 0.1}
  sgd: {lr: 0.1}
typed, lr a string:
  adam: {lr: '0.1'}
typed, beta of 1.5:
  adam: {lr: 0.1, betas: [0.9, 1.5]}
typed, three betas:
  adam: {lr: 0.1, betas: [0.9, 0.9, 0.9]}
typed, misspelt schedule:
  adam: {lr: 0.1}
  learning_rate: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}
typed, misspelt optimizer:
  optimizer: {adamm: {lr: 0.1}, learning_rate: {constant: 0.1}}
template, lr a string:
  class_name: SGD
  lr: '0.1'
template, lr given twice:
  class_name: SGD
  lr: 0.1
  args: {lr: 0.2}
template, misspelt group key:
  class_name: SGD
  lr: 0.1
  group: [{name: x, divde: 2}]
template, misspelt key:
  class_name: SGD
  lr: 0.1
  chekpoint: null
template, divide 0:
  class_name: SGD
  lr: 0.1
  group: [{name: x, divide: 0}]
template, name a number:
  optimizer: {name: 5, class_name: SGD, lr: 0.1}
recap, misspelt beta:
  optimizer: {adam: {beta1: 0.9}, single_task_learning_rate: {constant: 0.1}}
recap, misspelt schedule:
  optimizer: {adam: {beta_1: 0.9}, single_task_learning_rate: {constnt: 0.1}}
towers, misspelt key:
  optimizer: {name: SGD, lr: 0.1}
  multi_task_learning_rates: {tower_learning_rate: {a: {constant: 0.1}}}
towers, none:
  optimizer: {name: SGD, lr: 0.1}
  multi_task_learning_rates: {tower_learning_rates: {}}
towers, misspelt schedule:
  optimizer: {name: SGD, lr: 0.1}
  multi_task_learning_rates: {tower_learning_rates: {a: {constnt: 0.1}}}
composite, no parts:
  optimizer: []
composite, misspelt selector:
  optimizer: [{name: SGD, lr: 0.1, params: {mach: '*.weight'}}, {name: AdamW, lr: 0.001}]
composite, empty selector:
  optimizer: [{name: SGD, lr: 0.1, params: {}}, {name: AdamW, lr: 0.001}]
composite, part a string:
  optimizer: [AdamW]
composite, part name a number:
  optimizer: [{name: SGD, lr: 0.1, part: 5}]
composite, part name with a slash:
  optimizer: [{name: SGD, lr: 0.1, part: a/b}]
composite, misspelt schedule:
  optimizer: [{name: SGD, lr: 0.1}]
  schedule: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}
composite, misspelt schedule of a part:
  optimizer: [{name: SGD, lr: 0.1, params: {ndim: 2}}, {name: AdamW, lr: 0.001}]
  schedule: {lr: {sgd: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}, adamw: {constant: 0.001}}}
a list at the top: [{name: SGD, lr: 0.1, params: {ndim: [2]}}, {name: AdamW, lr: 0.001}]
an empty list at the top: []
a number at the top: 0.1
"""
)

# Valid variants of every form, written for optforge.demo:make_model: each is accepted by both.
VALID = table(
    r"""
flat: {name: AdamW, lr: 0.001}
flat, name only: {name: SGD}
flat, no rules: {name: SGD, lr: 0.1, param_groups: null}
flat, name in lower case: {name: adamw, lr: 0.001}
flat, options:
  {name: AdamW, lr: 0.001, betas: [0.9, 0.95], no_weight_decay: {bias: false, names: ['stem.*']}, zero: false}
flat, no_weight_decay true: {name: AdamW, lr: 0.001, no_weight_decay: true, layer_decay: 1}
flat, layer decay: {name: AdamW, lr: 0.001, layer_decay: 0.8, no_weight_decay: null, param_groups: null}
typed:
  adam: {lr: 0.01}
  learning_rate: {constant: 0.01}
typed, integer lr:
  adam: {lr: 1, betas: [0.8, 0.9], eps: 1.0e-8}
typed, no schedule:
  sgd: {lr: 0.1, momentum: 0.9}
  adam: null
  learning_rate: null
typed, adagrad:
  adagrad: {lr: 0.1}
  learning_rate: {cosine_decay: {peak_value: 0.1, decay_steps: 100}}
template:
  name: Momentum
  class_name: Momentum
  lr: 0.02
  args: {momentum: 0.9}
  group: [{name: towers, divide: 4}]
  checkpoint: null
template, class_name and lr: {class_name: SGD, lr: 0.1, name: null, args: null, group: null}
recap:
  adam: {beta_1: 0.8}
  single_task_learning_rate: {constant: 0.1}
  multi_task_learning_rates: null
recap, towers:
  adam: {}
  multi_task_learning_rates:
    tower_learning_rates: {price: {constant: 0.1}}
    backbone_learning_rate: {constant: 0.05}
document:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: 0.1, decay_steps: 100}}
schedule a number:
  optimizer: {name: SGD, lr: 0.1}
  schedule: 0.1
schedule an integer:
  optimizer: {name: SGD, lr: 0.1}
  schedule: 1
schedule null:
  optimizer: {name: SGD, lr: 0.1}
  schedule: null
schedule with null fields:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {constant: 0.1, cosine_decay: null}
whole-number float step counts:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: 1, decay_steps: 100.0}}
lengths in steps:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {cosine_decay: {peak_value: 0.1, warmup_steps: {steps: 0}, decay_steps: {steps: 100}}}
full form:
  optimizer: {name: SGD, lr: 0.1}
  schedule:
    steps_per_epoch: 10
    lr: {cosine_decay: {peak_value: 0.1, warmup_steps: {epochs: 1}, decay_steps: {epochs: 5}}}
    momentum: {linear_decay: {peak_value: 0.95, end_value: 0.85, decay_steps: 50}}
full form, lr a number:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: 0.1, total_steps: 100}
full form, nulls:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: null, momentum: null, total_steps: null}
full form, momentum only:
  optimizer: {name: SGD, lr: 0.1, momentum: 0.9}
  schedule: {momentum: 0.5}
full form, fractions:
  optimizer: {name: SGD, lr: 0.1}
  schedule:
    total_steps: 1000
    lr: {cosine_decay: {peak_value: 0.1, warmup_steps: {fraction: 0.1}, decay_steps: {fraction: 1.0}}}
full form, betas:
  optimizer: {name: AdamW, lr: 0.001}
  schedule: {lr: {constant: 0.001}, beta1: {constant: 0.9}, beta2: 0.99, weight_decay: {constant: 0.01}}
a schedule per unnamed group:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {group0: {constant: 0.1}}
a schedule per named group:
  optimizer: {name: AdamW, lr: 0.001}
  schedule: {default: {cosine_decay: {peak_value: 0.001, decay_steps: 100}}, no_decay: 0.001}
a schedule per group in the full form:
  optimizer: {name: AdamW, lr: 0.001}
  schedule: {lr: {default: {constant: 0.001}, no_decay: {constant: 0.0005}}}
every shape:
  optimizer: {name: SGD, lr: 0.1}
  schedule:
    join:
      phases:
        - {schedule: {linear_ramp_to_constant: {learning_rate: 0.1, num_ramp_steps: 10}}, steps: 10}
        - schedule: {piecewise_constant: {learning_rate_boundaries: [5], learning_rate_values: [0.1, 0.05]}}
          steps: 10
        - schedule: {polynomial_decay: {peak_value: 0.05, decay_steps: 20, power: 2}}
        - schedule: {exponential_decay: {peak_value: 0.05, decay_rate: 0.5, transition_steps: 5, staircase: true}}
          steps: 10
        - {schedule: {step_decay: {peak_value: 0.05, decay_rate: 0.5, transition_steps: 5}}, steps: 10}
        - {schedule: {multistep_decay: {peak_value: 0.05, decay_rate: 0.5, milestones: [2, 4]}}, steps: 10}
        - {schedule: {inverse_sqrt: {peak_value: 0.05, timescale: 10}}, steps: 10}
        - {schedule: {cosine_restarts: {peak_value: 0.05, cycle_steps: 5, cycle_mult: 2}}, steps: 10}
        - schedule: {one_cycle: {peak_value: 0.05, warmup_steps: 3, decay_steps: 10, shape: linear}}
        - schedule: {warmup_stable_decay: {peak_value: 0.05, decay_steps: 10, cooldown_steps: 3, shape: 1-sqrt}}
        - schedule:
            linear_ramp_to_cosine:
              {learning_rate: 0.1, final_learning_rate: 0.01, num_ramp_steps: 2, final_num_steps: 10}
        - schedule:
            warmup: {warmup_steps: 3, prefix: false, schedule: {linear_decay: {peak_value: 0.05, decay_steps: 10}}}
scheduler by name:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: StepLR, step_size: 3, interval: epoch}
scheduler by name in lower case:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: steplr, step_size: 3}
scheduler by name, a length:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: StepLR, step_size: {fraction: 0.5}, total_steps: 10}
scheduler by name, args:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: StepLR, args: {step_size: 3}}
scheduler in the template form:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: decay, class_name: StepLR, args: {step_size: 3}, interval: epoch, frequency: 2,
             checkpoint: null}
scheduler in the template form, no label:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: null, class_name: StepLR, args: {step_size: 3}, steps_per_epoch: null}
nested schedulers:
  optimizer: {name: SGD, lr: 0.1}
  schedule:
    name: SequentialLR
    schedulers: [{name: LinearLR, start_factor: 0.1, total_iters: 5}, {name: CosineAnnealingLR, T_max: 95}]
    milestones: [5]
metric-driven scheduler with a warmup:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {name: ReduceLROnPlateau, monitor: val_loss, warmup_steps: 10, warmup_start_factor: 0.1}
template-form warmup in epochs:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {class_name: ReduceLROnPlateau, args: {}, warmup_steps: {epochs: 1}, steps_per_epoch: 10}
rules:
  optimizer:
    name: SGD
    lr: 0.1
    momentum: 0.9
    param_groups:
      - {match: ['*.bias'], name: biases, lr_scale: 2, weight_decay: 0}
      - {module_type: Linear, ndim: [2], schedule: {constant: 0.05}}
rules, regex and frozen:
  optimizer:
    name: SGD
    lr: 0.1
    layer_decay: 0.8
    param_groups: [{match: 'blocks\.0\..*', regex: true, layer: 0}, {match: towers.demand.*, frozen: true}]
towers:
  optimizer: {name: SGD, lr: 0.1}
  multi_task_learning_rates:
    tower_learning_rates: {price: {constant: 0.1}}
    backbone_learning_rate: {constant: 0.05}
all three keys:
  optimizer: {name: SGD, lr: 0.1}
  schedule: {lr: {constant: 0.1}, momentum: null}
  multi_task_learning_rates: null
typed under optimizer:
  optimizer: {sgd: {lr: 0.1}, learning_rate: {cosine_decay: {peak_value: 0.1, decay_steps: 100}}}
  schedule: null
typed with towers:
  optimizer:
    adam: {lr: 0.1}
    multi_task_learning_rates:
      tower_learning_rates: {price: {constant: 0.1}}
      backbone_learning_rate: {constant: 0.05}
recap under optimizer:
  optimizer:
    adam: {beta_1: 0.9, beta_2: 0.99, epsilon: 1.0e-8}
    single_task_learning_rate: {cosine_decay: {peak_value: 0.1, decay_steps: 100}}
recap with towers:
  optimizer:
    adam: {}
    multi_task_learning_rates:
      tower_learning_rates: {price: {constant: 0.1}}
      backbone_learning_rate: {constant: 0.05}
template under optimizer:
  optimizer: {class_name: SGD, lr: 0.1, args: {momentum: 0.9}}
  schedule: {constant: 0.1}
composite:
  optimizer: [{name: SGD, lr: 0.1, params: {ndim: 2}, part: matrices}, {name: AdamW, lr: 0.001}]
composite, a schedule per part:
  optimizer: [{name: SGD, lr: 0.1, params: {match: '*.weight'}}, {name: AdamW, lr: 0.001}]
  schedule: {lr: {sgd: {constant: 0.1}, adamw: {constant: 0.001}}}
composite, towers:
  optimizer: [{name: SGD, lr: 0.1}]
  multi_task_learning_rates:
    tower_learning_rates: {price: {constant: 0.1}}
    backbone_learning_rate: {constant: 0.05}
composite, typed part:
  optimizer: [{sgd: {lr: 0.1}, learning_rate: {constant: 0.1}, params: {ndim: 2}}, {name: AdamW, lr: 0.001}]
composite, template part:
  optimizer: [{class_name: SGD, lr: 0.1, params: {ndim: 2}}, {name: AdamW, lr: 0.001, params: null}]
composite, recap part:
  optimizer:
    - {adam: {}, single_task_learning_rate: {constant: 0.1}, params: {ndim: 2, regex: false}}
    - {name: AdamW, lr: 0.001}
"""
)

# Files that are no document, as ``optforge validate FILE`` reads them.
VALID_FILES = table(
    r"""
template schedulers:
  epoch_scheduler: {name: s, class_name: MultiStepLR, args: {milestones: [0.5, 0.75]}, checkpoint: null}
  iter_scheduler: null
template iteration scheduler:
  iter_scheduler: {name: warmup, class_name: LinearLR, args: {start_factor: 0.1}}
one schedule:
  cosine_decay: {peak_value: 0.1, decay_steps: 100}
full form:
  lr: {constant: 0.1}
  total_steps: 100
"""
)
INVALID_FILES = table(
    r"""
template schedulers, misspelt key:
  epoch_scheduler: {name: s, class_name: StepLR, args: {step_size: 3}, chekpoint: null}
template schedulers, misspelt file key:
  epoch_schedular: {name: s, class_name: StepLR, args: {step_size: 3}}
one schedule, misspelt key:
  cosine_decay: {peak_valu: 0.1, decay_steps: 100}
one schedule, misspelt name:
  cosnie_decay: {peak_value: 0.1, decay_steps: 100}
full form, misspelt key:
  lr: {constant: 0.1}
  totl_steps: 100
full form without a schedule:
  lr: 0.1
"""
)

DEMO_MODEL = make_model()


def schema_problems(config: Any) -> list[str]:
    """What the schema finds wrong with ``config``, one line a problem."""
    return [f"{error.json_path}: {error.message}" for error in CHECKER.iter_errors(config)]


def rows(table: dict[str, Any]) -> list[Any]:
    """The table's configs as parameters named by their keys."""
    return [pytest.param(config, id=key) for key, config in table.items()]


def test_the_tables_are_full() -> None:
    assert len(INVALID) >= 80
    assert len(VALID) >= 50


def test_the_schema_is_a_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_optforge_schema_prints_it() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(SCHEMA))


def test_the_examples_are_found() -> None:
    assert len(EXAMPLES) >= 19
    assert {"template-momentum", "typed-adam-piecewise", "adamw", "lion"} <= {path.stem for path in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_example_is_valid_under_both(path: Path) -> None:
    model = header_model(path)
    assert validate_config(path, load_model(model) if model else None) == []
    assert schema_problems(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("config", rows(INVALID))
def test_the_schema_rejects_every_typo(config: Any) -> None:
    assert schema_problems(config), "the schema accepts it"


@pytest.mark.parametrize("config", rows(INVALID))
def test_the_validator_rejects_every_typo(config: Any) -> None:
    assert validate_config(copy.deepcopy(config)), "validate_config accepts it"
    assert validate_config(copy.deepcopy(config), DEMO_MODEL), "validate_config accepts it on the demo model"


@pytest.mark.parametrize("config", rows(VALID))
def test_every_valid_variant_is_valid_under_both(config: Any) -> None:
    assert validate_config(copy.deepcopy(config), DEMO_MODEL) == []
    assert schema_problems(config) == []


@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])  # param groups without names, and with them
@pytest.mark.parametrize("schedule", list(LearningRate.model_fields))
def test_a_schedule_name_with_two_letters_swapped_is_rejected_by_both(schedule: str, optimizer: str) -> None:
    typo = schedule[0] + schedule[2] + schedule[1] + schedule[3:]
    for value in (0.1, {"peak_value": 0.1, "decay_steps": 100}):
        config = {"optimizer": {"name": optimizer, "lr": 0.1}, "schedule": {typo: value}}
        assert validate_config(config), config
        assert schema_problems(config), config


@pytest.mark.parametrize(
    ("config", "valid"),
    [
        *(pytest.param(config, True, id=key) for key, config in VALID_FILES.items()),
        *(pytest.param(config, False, id=key) for key, config in INVALID_FILES.items()),
    ],
)
def test_files_that_are_no_document_agree_with_optforge_validate(config: Any, valid: bool, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == (0 if valid else 1), result.output
    assert (schema_problems(config) == []) is valid
