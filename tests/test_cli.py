"""The optforge command line, run in-process with typer's CliRunner."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from optforge.cli import app, load_model, validate_config
from optforge.demo import example_path, make_model, resolve_run, train
from optforge.errors import ConfigError
from optforge.plotting import phase_boundaries, trace_schedule

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

WARMUP_COSINE = """\
optimizer:
  name: SGD
  lr: 0.1
  momentum: 0.9
schedule:
  linear_ramp_to_cosine:
    learning_rate: 0.1
    final_learning_rate: 0.001
    num_ramp_steps: 20
    final_num_steps: 100
"""

# Two problems at once: a misspelt hyperparameter and a schedule field of the wrong type.
TWO_PROBLEMS = """\
optimizer:
  name: AdamW
  lr: 0.001
  beta: [0.9, 0.99]
schedule:
  linear_ramp_to_cosine:
    learning_rate: 0.001
    final_learning_rate: 0.0
    num_ramp_steps: ten
    final_num_steps: 100
"""

TOWER_MODEL = """\
import dataclasses

import torch


@dataclasses.dataclass
class Sizes:
    features: int = 4

class TwoTowers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(Sizes().features, 4)
        self.towers = torch.nn.ModuleDict({"ctr": torch.nn.Linear(4, 1), "cvr": torch.nn.Linear(4, 1)})

def build():
    return TwoTowers()

not_a_model = 3
"""


def invoke(*args: str | Path) -> object:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width >= 400
    assert height >= 200


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "warmup.yaml"
    path.write_text(WARMUP_COSINE)
    return path


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "towers.py"
    path.write_text(TOWER_MODEL)
    return path


def test_importing_the_cli_leaves_plot_libraries_unloaded() -> None:
    code = (
        "import sys, optforge.cli, optforge.demo, optforge.plotting; "
        "print(sorted({'matplotlib', 'plotext'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_arguments_prints_the_commands() -> None:
    result = invoke()
    for command in ("list", "validate", "plot", "explain", "schema", "demo"):
        assert command in result.output


def test_list_shows_name_provider_and_description() -> None:
    result = invoke("list", "adam*", "--provider", "torch")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│ ")]
    names = [row.split("│")[1].strip() for row in rows if row.split("│")[1].strip()]
    assert names == ["Adam", "Adamax", "AdamW"]
    assert "torch" in result.output
    assert "Implements AdamW algorithm" in result.output


def test_list_plain_word_matches_inside_names() -> None:
    result = invoke("list", "momentum")
    assert result.exit_code == 0, result.output
    names = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert {"Momentum", "NesterovMomentum"} <= names
    assert "SGD" not in names


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--provider", "torchh"], "provider: unknown provider 'torchh'; did you mean 'torch'?"),
        (["zzz*"], "pattern: no optimizer matches 'zzz*'"),
    ],
)
def test_list_reports_bad_filters(args: list[str], expected: str) -> None:
    result = invoke("list", *args)
    assert result.exit_code == 1
    assert expected in " ".join(result.stderr.split())


def test_validate_accepts_a_good_config(config_file: Path) -> None:
    result = invoke("validate", config_file)
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


def test_validate_prints_every_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TWO_PROBLEMS)
    result = invoke("validate", path)
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())
    assert "optimizer.beta: unknown hyperparameter for AdamW; did you mean 'betas'?" in err
    assert "schedule.linear_ramp_to_cosine.num_ramp_steps:" in err
    assert "2 problem(s)" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("optimizer: {name: AdamWW, lr: 0.1}\n", "optimizer.name: unknown optimizer 'AdamWW'; did you mean 'AdamW'?"),
        ("optimizer: [1, 2\n", "is not valid YAML"),
        ("optimizer: {name: 'adamw[fused]', lr: 0.1}\n", "optimizer.name: unknown optimizer 'adamw[fused]'"),
        ("optimizer: {name: SGD, lr: 0.1}\nshedule: {constant: 0.1}\n", "shedule: unknown top-level key"),
    ],
)
def test_validate_rejects(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert expected in " ".join(result.stderr.split())


def test_validate_missing_file(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_validate_without_a_model_builds_per_group_schedules_on_the_stand_in(tmp_path: Path) -> None:
    # AdamW puts the stand-in's bias in a no-decay group: a schedule per group name validates.
    path = tmp_path / "groups.yaml"
    path.write_text(
        "optimizer: {name: AdamW, lr: 0.01}\nschedule: {default: {constant: 0.01}, no_decay: {constant: 0.02}}\n"
    )
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    path.write_text("optimizer: {name: AdamW, lr: 0.01}\nschedule: {defaults: {constant: 0.01}}\n")
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "schedule.defaults: unknown param group name 'defaults'; did you mean 'default'?" in result.stderr
    assert "pass --model" in result.stderr


def test_validate_with_a_model(config_file: Path, model_file: Path) -> None:
    result = invoke("validate", config_file, "--model", f"{model_file}:build")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_colon", "expected module:factory"),
        ("optforge.no_such_module:x", "cannot import 'optforge.no_such_module'"),
        ("optforge.demo:nothing", "'optforge.demo' has no attribute 'nothing'"),
        ("{file}:not_a_model", "gave int, not a torch.nn.Module"),
        ("{dir}/missing.py:build", "no Python file"),
    ],
)
def test_load_model_errors(model_file: Path, spec: str, expected: str) -> None:
    with pytest.raises(ConfigError, match="--model") as info:
        load_model(spec.format(file=model_file, dir=model_file.parent))
    assert expected in str(info.value)


def test_load_model_from_a_file_and_a_module(model_file: Path) -> None:
    assert type(load_model(f"{model_file}:build")).__name__ == "TwoTowers"
    assert type(load_model("optforge.demo:make_model")).__name__ == "DemoNet"


def test_validate_config_returns_problems_instead_of_raising() -> None:
    assert validate_config({"optimizer": {"name": "SGD", "lr": 0.1}}) == []
    assert validate_config({"optimizer": {"name": "SGD", "lr": -1.0}})[0][0].startswith("optimizer")


def test_plot_writes_a_png(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots" / "lr.png"
    result = invoke("plot", config_file, "--steps", "150", "-o", out)
    assert result.exit_code == 0, result.output
    assert_png(out)
    assert "boundaries at steps: 20" in result.stdout
    assert "lr of group0: 0 at step 0, min 0, max 0.1, 0.001 at step 149" in result.stdout


def test_plot_reports_other_scheduled_hyperparameters(tmp_path: Path) -> None:
    path = tmp_path / "momentum.yaml"
    path.write_text(
        "optimizer: {name: SGD, lr: 0.1, momentum: 0.9}\n"
        "schedule:\n"
        "  lr: {constant: 0.1}\n"
        "  momentum: {linear_decay: {peak_value: 0.95, end_value: 0.85, decay_steps: 50}}\n"
    )
    out = tmp_path / "lr.png"
    result = invoke("plot", path, "--steps", "60", "-o", out)
    assert result.exit_code == 0, result.output
    assert "momentum (group0): 0.95 at step 0, min 0.85, max 0.95, 0.85 at step 59" in result.stdout
    assert_png(out)
    result = invoke("plot", path, "--steps", "60")
    assert result.exit_code == 0, result.output
    assert "momentum (group0)" in result.stdout.split("0.850┤")[0]  # the lower panel, with its legend
    assert result.stdout.count("┌") >= 4  # two panels, each with a legend box
    assert "0.150┤" in result.stdout  # the constant lr of 0.1 sits mid-axis, not on a collapsed one


def test_plot_draws_in_the_terminal(config_file: Path) -> None:
    result = invoke("plot", config_file, "--steps", "150")
    assert result.exit_code == 0, result.output
    assert "warmup end" in result.stdout
    assert "step" in result.stdout
    assert "┌" in result.stdout


def test_plot_rejects_zero_steps(config_file: Path) -> None:
    result = invoke("plot", config_file, "--steps", "0")
    assert result.exit_code == 2
    assert "--steps" in result.output


def test_plot_reports_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TWO_PROBLEMS)
    result = invoke("plot", path, "--steps", "10")
    assert result.exit_code == 1
    assert "optimizer.beta" in result.stderr


def test_trace_follows_the_schedule(config_file: Path) -> None:
    trace = trace_schedule(config_file, 120)
    lrs = trace.lrs["group0"]
    assert trace.steps == list(range(120))
    assert lrs[0] == 0.0
    assert lrs[10] == pytest.approx(0.05)
    assert lrs[20] == pytest.approx(0.1)
    assert lrs[100:] == pytest.approx([0.001] * 20)
    assert trace.boundaries == [20]


def test_trace_names_each_group_and_keeps_hyperparameters_that_change() -> None:
    import torch

    from optforge.plotting import ScheduleTrace, _numeric_settings

    groups = [{"params": [], "name": "head", "lr": 0.1, "betas": (0.9, 0.99), "foreach": None, "amsgrad": False}]
    assert _numeric_settings(groups[0]) == {"betas[0]": 0.9, "betas[1]": 0.99}
    model = torch.nn.Linear(2, 2)
    trace = trace_schedule({"optimizer": {"name": "SGD", "lr": 0.5, "momentum": 0.9}}, 5, model)
    assert isinstance(trace, ScheduleTrace)
    assert trace.lrs == {"group0": [0.5] * 5}
    assert trace.others == {}  # momentum never changes


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([min(1.0, step / 10) for step in range(40)], [10]),
        ([1.0] * 10 + [0.1] * 10 + [0.01] * 10, [10, 20]),
        ([0.5] * 20, []),
        ([1.0 - step / 50 for step in range(50)], []),
        ([0.1, 0.2], []),
    ],
)
def test_phase_boundaries(values: list[float], expected: list[int]) -> None:
    assert phase_boundaries(values) == expected


def test_schema_prints_json() -> None:
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["title"] == "optforge config"
    assert "optimizer" in schema["$defs"]["ConfigDocument"]["properties"]


def test_schema_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = invoke("schema", "-o", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["$defs"]


def test_demo_trains_and_summarises() -> None:
    result = invoke("demo", "--steps", "120")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "AdamW from adamw-warmup-cosine.yaml, 120 steps" in out
    for label in ("training loss", "final loss", "learning rate", "time per step"):
        assert label in out
    first, last = map(float, re.search(r"training loss +([\d.]+) at the first step, ([\d.]+)", out).groups())
    assert last < first / 3


def test_demo_compare_prints_a_table_and_writes_the_loss_plot(tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    result = invoke("demo", "--steps", "60", "--compare", "sgd,Adam", "--compare", "typed-adam-piecewise", "-o", out)
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert [row.split("│")[1].strip() for row in table] == [
        "adamw-warmup-cosine",
        "SGD",
        "Adam",
        "typed-adam-piecewise",
    ]
    assert_png(out)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--compare", "adamww"], "compare: unknown optimizer 'adamww'; did you mean 'AdamW'?"),
        (["--config", "no-such-example"], "config: unknown example 'no-such-example'"),
    ],
)
def test_demo_reports_bad_names(args: list[str], expected: str) -> None:
    result = invoke("demo", "--steps", "5", *args)
    assert result.exit_code == 1
    assert expected in " ".join(result.stderr.split())


def test_demo_runs_a_config_file(config_file: Path) -> None:
    result = invoke("demo", "--config", config_file, "--steps", "30")
    assert result.exit_code == 0, result.output
    assert "SGD from warmup.yaml, 30 steps" in result.stdout


def test_train_is_reproducible_and_records_each_step() -> None:
    first = train(example_path("adamw-warmup-cosine"), 40, seed=3)
    second = train(example_path("adamw-warmup-cosine"), 40, seed=3)
    assert first.losses == second.losses
    assert first.final_loss == second.final_loss
    assert len(first.lrs) == 40
    assert first.lrs[0] == 0.0
    assert first.lrs[30] == pytest.approx(3e-3)
    assert train(example_path("adamw-warmup-cosine"), 40, seed=4).losses != first.losses


def test_resolve_run_prefers_examples_then_files_then_optimizers(config_file: Path) -> None:
    assert resolve_run("typed-adam-piecewise", config_file) == (
        "typed-adam-piecewise",
        example_path("typed-adam-piecewise"),
    )
    assert resolve_run(str(config_file), example_path("adamw-warmup-cosine")) == ("warmup", config_file)
    label, doc = resolve_run("adam", config_file)
    assert label == "Adam"
    assert doc["optimizer"] == {"name": "Adam", "lr": 0.1}
    assert doc["schedule"]["linear_ramp_to_cosine"]["num_ramp_steps"] == 20


def test_demo_model_names_its_towers() -> None:
    names = [name for name, _ in make_model().named_parameters()]
    assert any(".price." in name for name in names)
    assert any(".demand." in name for name in names)
    assert any(name.startswith("blocks.1.") for name in names)


def test_explain_shows_each_parameter_and_group() -> None:
    result = invoke("explain", example_path("layer-decay"), "--model", "optforge.demo:make_model")
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│ ")}
    assert "no_weight_decay: bias" in rows["stem.bias"]
    assert "towers.price.weight" in rows
    assert "trainable parameters" in out
    model = make_model()
    assert f"{sum(p.numel() for p in model.parameters()):,} trainable parameters, 0 frozen" in out


def test_explain_needs_a_model(config_file: Path) -> None:
    result = invoke("explain", config_file)
    assert result.exit_code == 2
    assert "--model" in result.output


def test_explain_reports_a_rule_that_matches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "towers.yaml"
    path.write_text(
        "optimizer: {name: Adam, lr: 0.001}\n"
        "multi_task_learning_rates: {tower_learning_rates: {clicks: {constant: 0.001}}}\n"
    )
    result = invoke("explain", path, "--model", "optforge.demo:make_model")
    assert result.exit_code == 1
    assert "multi_task_learning_rates.tower_learning_rates.clicks" in result.stderr
    assert "matches no parameter" in " ".join(result.stderr.split())


def test_trace_merges_groups_with_the_same_curve() -> None:
    trace = trace_schedule(example_path("layer-decay"), 40, make_model())
    assert list(trace.lrs) == [
        "layer0, layer0/no_decay",
        "layer1/no_decay, layer1",
        "layer2/no_decay, layer2",
        "layer3, layer3/no_decay",
    ]
    peaks = [max(values) for values in trace.lrs.values()]
    assert peaks == pytest.approx([3e-3 * 0.75**3, 3e-3 * 0.75**2, 3e-3 * 0.75, 3e-3])


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["plot", "{config}", "--steps", "5"], "plotext"),
        (["plot", "{config}", "--steps", "5", "-o", "{dir}/lr.png"], "matplotlib"),
        (["demo", "--steps", "5", "-o", "{dir}/loss.png"], "matplotlib"),
    ],
)
def test_plots_without_their_library_say_what_to_install(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], missing: str
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else find_spec(name, *a))
    result = invoke(*(arg.format(config=config_file, dir=config_file.parent) for arg in args))
    assert result.exit_code == 1
    assert f"this needs {missing}, which is not installed" in result.stderr
    assert "pip install 'optforge[plot]'" in result.stderr
    assert not list(config_file.parent.glob("*.png"))


def test_train_passes_a_closure_to_optimizers_that_need_one() -> None:
    result = train({"optimizer": {"name": "LBFGS", "lr": 0.5, "max_iter": 5}}, steps=5)
    assert result.optimizer == "LBFGS"
    assert result.final_loss < result.losses[0]


def test_train_switches_optimizers_with_modes_to_train_then_eval() -> None:
    import torch

    import optforge

    calls: list[str] = []

    class ModalSGD(torch.optim.SGD):
        def train(self) -> None:
            calls.append("train")

        def eval(self) -> None:
            calls.append("eval")

    optforge.register_optimizer(ModalSGD, name="ModalSGD")
    try:
        train({"optimizer": {"name": "ModalSGD", "lr": 0.01}}, steps=3)
    finally:
        optforge.unregister_optimizer("ModalSGD")
    assert calls == ["train", "eval"]
