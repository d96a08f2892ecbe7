"""The optforge command line, run in-process with typer's CliRunner."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from optforge.cli import app, load_model, validate_config
from optforge.demo import example_path, make_model, resolve_run, train
from optforge.errors import ConfigError
from optforge.plotting import phase_boundaries, trace_schedule

ROOT = Path(__file__).resolve().parents[1]
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
    assert err.endswith("bad.yaml: 2 problems")
    lines = result.stderr.splitlines()
    assert len(lines) == 3  # one line per problem, then the count
    assert not any(line.startswith("error") for line in lines)


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
    assert "--model optforge.demo:make_model" in " ".join(result.stderr.split())


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


def test_plot_writes_exactly_the_path_given_or_refuses_it(config_file: Path, tmp_path: Path) -> None:
    tmp_path = tmp_path / "plots"
    tmp_path.mkdir()
    bare = tmp_path / "lrplot"
    result = invoke("plot", config_file, "-o", bare)
    assert result.exit_code == 0, result.output
    assert_png(bare)
    assert f"wrote {bare}" in result.stdout
    assert not bare.with_suffix(".png").exists()
    svg = tmp_path / "lr.svg"
    assert invoke("plot", config_file, "-o", svg).exit_code == 0
    assert svg.read_text().lstrip().startswith("<?xml")
    refused = {
        tmp_path: "is a directory",
        tmp_path / "lr.docx": "cannot write a '.docx' file; give a name ending in one of",
    }
    if Path("/dev/full").exists():
        refused[Path("/dev/full")] = "cannot write '/dev/full'"
    for path, message in refused.items():
        result = invoke("plot", config_file, "-o", path)
        assert result.exit_code == 1, path
        assert result.stderr.startswith("--output: ")
        assert message in result.stderr
        assert "wrote" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.svg", "lrplot"]
    assert not Path(f"{tmp_path}.png").exists()


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


def test_explain_without_a_model_uses_the_stand_in_and_says_so(config_file: Path) -> None:
    result = invoke("explain", config_file)
    assert result.exit_code == 0, result.output
    assert "SGD: 1 groups, 2 tensors, 2 trainable parameters" in result.stdout
    assert "on a one-layer stand-in model, torch.nn.Linear(1, 1)" in " ".join(result.stdout.split())


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
    assert "pip install -e '.[plot]'" in result.stderr
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


# --- start-up: help and version without torch ----------------------------------------------


def test_help_and_version_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from optforge.cli import main\n"
        "for args in (['--help'], ['--version'], ['validate', '--help']):\n"
        "    sys.argv = ['optforge', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code in (0, None), exit.code\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert "Usage: optforge" in result.stdout
    assert result.stdout.strip().endswith("torch imported: False")


def test_python_m_optforge_prints_the_version() -> None:
    import optforge

    result = subprocess.run(
        [sys.executable, "-m", "optforge", "--version"], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == f"optforge {optforge.__version__}"


def test_the_package_exports_load_on_first_use() -> None:
    import optforge

    assert sorted(optforge.__all__) == sorted(optforge._EXPORTS)
    for name in optforge.__all__:
        assert getattr(optforge, name) is getattr(importlib.import_module(optforge._EXPORTS[name]), name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        optforge.nope  # noqa: B018


def test_the_version_matches_the_project_metadata() -> None:
    import tomllib

    import optforge

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == optforge.__version__
    assert any(dependency.startswith("numpy") for dependency in project["dependencies"])


# --- list: the optional providers only when asked ---------------------------------------------


def test_list_leaves_optional_providers_out_unless_asked() -> None:
    from optforge.cli import _optional_providers

    optional = [provider.name for provider in _optional_providers()]
    result = invoke("list")
    assert result.exit_code == 0, result.output
    providers = {line.split("│")[2].strip() for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert providers - {""} == {"torch", "optforge"}  # "" on the wrapped lines of long descriptions
    if optional:
        assert f"Not listed: the optional providers {', '.join(optional)}" in " ".join(result.stdout.split())
        everything = invoke("list", "--all")
        listed = {line.split("│")[2].strip() for line in everything.stdout.splitlines() if line.startswith("│ ")}
        assert everything.exit_code == 0, everything.output
        assert set(optional) <= listed
        assert "Not listed" not in everything.stdout


def test_list_does_not_import_the_optional_providers() -> None:
    code = (
        "import sys\n"
        "from optforge.cli import main\n"
        "sys.argv = ['optforge', 'list']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "print(sorted({'timm', 'pytorch_optimizer', 'torchvision'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert result.stdout.strip().endswith("[]")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="needs timm")
def test_list_searches_the_optional_providers_when_nothing_else_matches() -> None:
    result = invoke("list", "adan")
    assert result.exit_code == 0, result.output
    assert "timm.adan" in result.stdout


# --- problems: one line each, values cut short, never a traceback ---------------------------------


def problem_lines(result: Any) -> list[str]:
    return result.stderr.splitlines()


def test_a_huge_bad_value_is_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text('optimizer: {name: AdamW, lr: "' + "x" * 1_000_000 + '"}\n')
    result = invoke("validate", path)
    assert result.exit_code == 1
    first, count = problem_lines(result)
    assert first.startswith("optimizer.lr: ")
    assert len(first) < 500  # cut short, by the CLI or by the message itself
    assert count == f"{path}: 1 problem"


def test_a_problem_on_several_lines_prints_on_one(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("optimizer:\n  name: AdamW\n  lr: [1, 2\n")
    result = invoke("validate", path)
    assert result.exit_code == 1
    first, count = problem_lines(result)
    assert first.startswith(str(path))  # the file, perhaps with the line: "FILE:4: ..."
    assert "is not valid YAML" in first
    assert count.endswith("1 problem")


def _binary(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 8)


def _utf16(path: Path) -> None:
    path.write_bytes(WARMUP_COSINE.encode("utf-16"))


def _deep(path: Path) -> None:
    path.write_text("optimizer: " + "[" * 5000 + "]" * 5000 + "\n")


def _deep_mapping(path: Path) -> None:
    path.write_text("optimizer: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n")


@pytest.mark.parametrize("write", [_binary, _utf16, _deep, _deep_mapping], ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("command", ["validate", "plot", "explain"])
def test_odd_files_are_one_problem_line_and_status_1(tmp_path: Path, write: Any, command: str) -> None:
    path = tmp_path / "odd.yaml"
    write(path)
    result = invoke(command, path, *(["-o", tmp_path / "lr.png"] if command == "plot" else []))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # reported, not raised
    lines = problem_lines(result)
    assert lines[0].startswith(f"{path}: ") or lines[0].startswith("optimizer")
    assert len(lines) == (2 if command == "validate" else 1)
    assert all(len(line) < 500 for line in lines)
    assert "Traceback" not in result.output


def test_an_odd_file_prints_no_traceback_from_the_real_command(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    _binary(path)
    result = subprocess.run(
        [sys.executable, "-m", "optforge", "validate", str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0].startswith(f"{path}: ")
    assert result.stdout == ""


def test_duplicate_keys_are_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("optimizer: {name: AdamW, lr: 0.001}\noptimizer: {name: SGD, lr: 0.1}\n")
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "duplicate" in result.stderr.lower()
    assert len(problem_lines(result)) == 2


def test_an_unexpected_error_is_one_line_unless_the_traceback_is_asked_for(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optforge.plotting

    def broken(*args: Any, **kwargs: Any) -> None:
        raise TypeError("x" * 10_000)

    monkeypatch.setattr(optforge.plotting, "trace_schedule", broken)
    result = invoke("plot", config_file, "-o", config_file.parent / "lr.png")
    assert result.exit_code == 1
    (line,) = problem_lines(result)
    assert line.startswith(f"{config_file}: unexpected TypeError: xxx")
    assert len(line) < 500
    monkeypatch.setenv("OPTFORGE_TRACEBACK", "1")
    result = invoke("plot", config_file, "-o", config_file.parent / "lr.png")
    assert isinstance(result.exception, TypeError)


# --- models: named in the file, the stand-in and when it matters -------------------------------


def test_a_file_names_its_model_in_a_header(tmp_path: Path, model_file: Path) -> None:
    path = tmp_path / "towers.yaml"
    path.write_text(
        f"# optforge: --model {model_file}:build\n"
        "optimizer: {name: Adam, lr: 0.001}\n"
        "multi_task_learning_rates: {tower_learning_rates: {ctr: {constant: 0.001}, cvr: {constant: 0.002}}}\n"
    )
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert f"built on {model_file}:build, the model the file names" in " ".join(result.stdout.split())
    result = invoke("explain", path)
    assert result.exit_code == 0, result.output
    assert "towers.cvr.weight" in result.stdout
    result = invoke("validate", path, "--model", "optforge.demo:make_model")  # the flag wins
    assert result.exit_code == 1
    assert "'ctr' matches no parameter" in " ".join(result.stderr.split())


def test_a_bad_model_header_names_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bad-model.yaml"
    path.write_text("# optforge: --model optforge.demo:nothing\noptimizer: {name: SGD, lr: 0.1}\n")
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path} header (# optforge: --model): 'optforge.demo' has no attribute")


@pytest.mark.parametrize(
    ("text", "mattered"),
    [
        (WARMUP_COSINE, False),
        ("optimizer: {name: AdamW, lr: 0.01, param_groups: [{match: bias, lr_scale: 2.0}]}\n", True),
        (
            "optimizer: {name: AdamW, lr: 0.01}\nschedule: {default: {constant: 0.01}, no_decay: {constant: 0.0}}\n",
            True,
        ),
    ],
)
def test_the_stand_in_note_only_when_the_stand_in_mattered(tmp_path: Path, text: str, mattered: bool) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert ("stand-in" in result.stdout) is mattered


def test_a_rule_that_needs_a_model_says_which_flag_and_which_model(tmp_path: Path) -> None:
    path = tmp_path / "layer-decay.yaml"
    path.write_text("\n".join(example_path("layer-decay").read_text().splitlines()[1:]))  # without its header
    result = invoke("validate", path)
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())
    assert "optimizer.layer_decay: found no blocks to decay" in err
    assert "check it on yours with --model module:factory" in err
    assert "(the shipped examples use --model optforge.demo:make_model)" in err
    result = invoke("plot", path, "-o", tmp_path / "lr.png")
    assert result.exit_code == 1
    assert "--model optforge.demo:make_model" in " ".join(result.stderr.split())


def test_no_stand_in_note_for_a_missing_file(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert "stand-in" not in result.output


# --- schedule-only files -----------------------------------------------------------------------


def test_a_schedule_only_file_is_checked_as_a_schedule(tmp_path: Path) -> None:
    path = tmp_path / "cosine.yaml"
    path.write_text("cosine_decay: {peak_value: 0.1, warmup_steps: 10, decay_steps: 100}\n")
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert "a schedule-only file, checked as the schedule: section of a config" in " ".join(result.stdout.split())
    path.write_text("cosine_decay: {peak_value: 0.1, warmup_steps: 10, decay_step: 100}\n")
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "\nschedule.cosine_decay.decay_step: unknown key; did you mean 'decay_steps'?" in result.stderr
    out = invoke("plot", path.with_name("ok.yaml"), "-o", tmp_path / "lr.png")
    assert out.exit_code == 1  # no such file


def test_an_interpolation_without_its_hydra_config_says_so(tmp_path: Path) -> None:
    path = tmp_path / "constant.yaml"
    path.write_text("constant: ${optim.optimizer.lr}\n")
    result = invoke("validate", path)
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())
    assert "interpolations resolve only in a composed Hydra config" in err


# --- the lr that a schedule overrides -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            "optimizer: {name: AdamW, lr: 1.0e-3}\nschedule: {cosine_decay: {peak_value: 0.3, decay_steps: 100}}\n",
            "optimizer.lr: warning: 0.001 differs from the schedule's peak 0.3",
        ),
        (
            "adam: {lr: 0.1}\nlearning_rate: {piecewise_constant: "
            "{learning_rate_boundaries: [10], learning_rate_values: [0.01, 0.001]}}\n",
            "adam.lr: warning: 0.1 differs from the schedule's peak 0.01",
        ),
        ("optimizer: {name: SGD, lr: 0.5}\nschedule: {lr: 0.25, total_steps: 100}\n", "optimizer.lr: warning: 0.5"),
        (WARMUP_COSINE, None),
        ("optimizer: {name: AdamW}\nschedule: {constant: 0.1}\n", None),
        ("optimizer: {name: AdamW, lr: 0.1}\nschedule: {default: {constant: 0.2}, no_decay: {constant: 0.1}}\n", None),
    ],
)
def test_validate_warns_when_the_schedule_overrides_a_different_lr(
    tmp_path: Path, text: str, warning: str | None
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    if warning is None:
        assert result.stderr == ""
    else:
        assert result.stderr.startswith(warning)
        assert "so this value is never used" in " ".join(result.stderr.split())


# --- plots: boundary markers at their steps, legends off the curves --------------------------------


def marker_columns(drawing: str) -> tuple[int, int, list[int]]:
    """The plot area's first and last columns, and the columns of the vertical marker lines."""
    top = next(line for line in drawing.splitlines() if "┌" in line)
    left, right = top.index("┌") + 1, top.index("┐") - 1
    return left, right, [column for column, char in enumerate(top) if char == "┬"]


@pytest.mark.parametrize("width", [72, 150])
def test_the_terminal_marker_sits_at_its_step(width: int) -> None:
    from optforge.plotting import plot_trace_terminal

    trace = trace_schedule(example_path("adamw-warmup-cosine"), 300)
    assert trace.boundaries == [30]
    drawing = plot_trace_terminal(trace, width, 24)
    left, right, markers = marker_columns(drawing)
    expected = left + 30 / 299 * (right - left)
    assert len(markers) == 1
    assert abs(markers[0] - expected) <= 1, (markers, expected, drawing)
    rows = [line for line in drawing.splitlines() if len(line) > markers[0] and line[markers[0]] == "│"]
    assert len(rows) >= 8  # the line runs down the plot
    assert "warmup end" in drawing


def test_the_terminal_legend_sits_where_the_curves_are_not() -> None:
    from optforge.plotting import plot_trace_terminal

    drawing = plot_trace_terminal(trace_schedule(example_path("adamw-warmup-cosine"), 300), 100, 25)
    lines = drawing.splitlines()
    box = [row for row, line in enumerate(lines) if "┌" in line and line.index("┌") > 20]
    assert box, drawing  # the legend box starts right of the warmup, away from the peak
    start = box[0]
    end = next(row for row in range(start, len(lines)) if "┘" in lines[row] and "└" in lines[row])
    first, last = lines[start].index("┌"), lines[start].index("┐")
    curve = set("▖▗▘▙▚▛▜▝▞▟▀▄▌▐█")
    for line in lines[start + 1 : end]:
        inside = line[first + 1 : last].replace("▚ ", "  ", 1)  # the legend's own sample of the curve
        assert not curve & set(inside), drawing


def test_the_png_marks_boundaries_above_the_plot_and_keeps_the_legend_beside_it() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from optforge.plotting import trace_figure

    trace = trace_schedule(example_path("per-tower-schedules"), 300, make_model(), title="towers")
    fig = trace_figure(trace)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (ax,) = fig.axes
    frame = ax.get_window_extent(renderer)
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] == [30]
    (label,) = [text for text in ax.texts if text.get_text() == "warmup end"]
    assert label.get_window_extent(renderer).y0 >= frame.y1 - 1  # above the plot, not on the curves
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= frame.x1  # beside the plot
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["backbone", "price", "demand"]


def test_the_demo_progress_shows_no_numbers_before_the_first_step() -> None:
    from rich.console import Console

    from optforge.cli import _progress

    console = Console(record=True, width=120, force_terminal=False)
    progress = _progress(console)
    progress.add_task("run", total=10, status="building")
    console.print(progress.make_tasks_table(progress.tasks))
    text = console.export_text()
    assert "nan" not in text
    assert "building" in text


def test_the_cli_page_shows_problems_as_validate_prints_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = re.search(r"## Problems, one line each.*?```text\n(.*?)```", page, re.S)
    assert shown, "docs/cli.md has no example of the problem lines"
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text(TWO_PROBLEMS)
    result = invoke("validate", "bad.yaml")
    assert result.exit_code == 1
    assert result.stderr == shown.group(1)


def test_plot_of_a_plateau_assumes_a_stalled_metric_unless_given_one(tmp_path: Path) -> None:
    path = tmp_path / "plateau.yaml"
    path.write_text("optimizer: {name: SGD, lr: 0.1}\nschedule: {name: ReduceLROnPlateau, factor: 0.5, patience: 2}\n")
    result = invoke("plot", path, "-n", "20", "-o", tmp_path / "lr.png")
    assert result.exit_code == 0, result.stderr
    assert "plotted for a metric that never improves" in " ".join(result.stdout.split())
    assert "lr of group0: 0.1 at step 0" in result.stdout  # it halves after every 3 steps without progress
    assert "0.00156 at step 19" in result.stdout
    result = invoke("plot", path, "-n", "20", "-o", tmp_path / "lr.png", "--metric", "1,0.9,0.9,0.9")
    assert result.exit_code == 0, result.stderr
    assert "lr of group0: 0.1 at step 0" in result.stdout
    assert "0.00313 at step 19" in result.stdout
    assert invoke("validate", path).stderr == ""  # a scheduler by name needs no model: no stand-in note


def test_validate_reads_the_template_scheduler_files(tmp_path: Path) -> None:
    path = tmp_path / "cosine.yaml"
    path.write_text(
        "epoch_scheduler:\n  name: cos\n  class_name: timm_CosineLRScheduler\n  checkpoint: null\n"
        "  args: {t_initial: 1.0, lr_min: 1.0e-5, warmup_t: 3, warmup_lr_init: 1.0e-5}\niter_scheduler: null\n"
    )
    result = invoke("validate", path)
    assert result.exit_code == 0, result.stderr
    assert "training template's scheduler file" in result.stdout + result.stderr
    path.write_text(path.read_text().replace("lr_min", "lr_mn"))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert problem_lines(result)[0].startswith(
        "epoch_scheduler.args.lr_mn: unknown argument for timm_CosineLRScheduler"
    )


def test_help_shows_no_value_after_flags() -> None:
    for command in ("list", "validate", "plot", "explain", "schema", "demo"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, command
        assert "<bool>" not in result.output, command
        help_line = next(line for line in result.output.splitlines() if "--help" in line)
        assert "Show this message and exit." in help_line
    listing = CliRunner().invoke(app, ["list", "--help"], env={"COLUMNS": "120"}).output
    assert "listed only when nothing else" in " ".join(listing.split())
    assert not any(line.strip().endswith("only when") for line in listing.splitlines())


# --- validate, plot and explain agree on the model and on the verdict ---------------------------

COMPOSITE = """\
optimizer:
  - {{name: SGD, lr: 0.1, params: {{match: "{glob}"}}}}
  - {{name: AdamW, lr: 0.1}}
"""


def verdicts(path: Path, *args: str | Path) -> dict[str, Any]:
    """The result of validate, plot (to a PNG) and explain on one file."""
    return {
        "validate": invoke("validate", path, *args),
        "plot": invoke("plot", path, "-n", "20", "-o", path.with_suffix(".png"), *args),
        "explain": invoke("explain", path, *args),
    }


def test_a_composite_whose_selector_the_stand_in_cannot_check_is_not_called_valid(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(COMPOSITE.format(glob="blokcs.*"))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "valid" not in result.stdout
    last = " ".join(result.stderr.splitlines()[-1].split())
    assert last.startswith(f"{path}: 1 problem on a one-layer stand-in model, torch.nn.Linear(1, 1)")
    assert "params: selectors" in last
    assert "--model module:factory" in last
    assert "# optforge: --model module:factory" in last
    path.write_text("# optforge: --model optforge.demo:make_model\n" + COMPOSITE.format(glob="blokcs.*"))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "did you mean 'blocks'?" in result.stderr
    assert "stand-in" not in result.output


def test_a_correct_composite_gets_one_verdict_from_each_command_and_passes_on_its_model(tmp_path: Path) -> None:
    path = tmp_path / "muon.yaml"
    path.write_text(COMPOSITE.format(glob="blocks.*"))
    results = verdicts(path)
    assert {name: result.exit_code for name, result in results.items()} == dict.fromkeys(results, 1)
    for name, result in results.items():
        last = " ".join(result.stderr.splitlines()[-1].split())
        assert "stand-in model, torch.nn.Linear(1, 1)" in last, name
        assert "--model module:factory" in last, name
    path.write_text("# optforge: --model optforge.demo:make_model\n" + COMPOSITE.format(glob="blocks.*"))
    for name, result in verdicts(path).items():
        assert result.exit_code == 0, (name, result.output)
        assert "stand-in" not in result.output, name


@pytest.mark.parametrize(
    "text",
    [
        WARMUP_COSINE,
        TWO_PROBLEMS,
        COMPOSITE.format(glob="blokcs.*"),
        "optimizer: {name: AdamW, lr: 0.001}\nschedule: {cosine_decay: {peak_valu: 0.001, decay_steps: 100}}\n",
        "optimizer: {name: AdamW, lr: 0.01, param_groups: [{match: bias, lr_scale: 2.0}]}\n",
        "optimizer: {name: AdamW, lr: 0.01, layer_decay: 0.75}\n",
        "optimizer: {name: AdamW, lr: 0.01}\nschedule: {defaults: {constant: 0.01}}\n",
    ],
)
def test_validate_plot_and_explain_agree(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    codes = {name: result.exit_code for name, result in verdicts(path).items()}
    assert len(set(codes.values())) == 1, codes


@pytest.mark.parametrize(
    "text",
    [
        "optimizer: {name: AdamW, lr: 0.001}\nschedule: {cosine_decy: {peak_value: 0.001, decay_steps: 100}}\n",
        "optimizer: {name: AdamW, lr: 0.001}\nschedule: {cosine_decay: {peak_valu: 0.001, decay_steps: 100}}\n",
        COMPOSITE.format(glob="blocks.*")
        + "schedule: {lr: {sgd: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}, adamw: {constant: 0.1}}}\n",
        COMPOSITE.format(glob="blocks.*") + "schedule: {cosnie_decay: {peak_value: 0.1, decay_steps: 100}}\n",
    ],
)
def test_no_stand_in_note_on_a_schedule_typo(tmp_path: Path, text: str) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    for name, result in verdicts(path).items():
        assert result.exit_code == 1, name
        assert "stand-in" not in result.output, name
        assert "--model" not in result.output, name


def test_explain_gives_no_model_advice_where_the_model_does_not_matter(config_file: Path, tmp_path: Path) -> None:
    result = invoke("explain", config_file)
    assert result.exit_code == 0, result.output
    assert "--model" not in result.output
    rules = tmp_path / "rules.yaml"
    rules.write_text("optimizer: {name: AdamW, lr: 0.01, param_groups: [{match: bias, lr_scale: 2.0}]}\n")
    result = invoke("explain", rules)
    assert result.exit_code == 0, result.output
    assert "--model module:factory" in " ".join(result.stdout.split())


def test_valid_on_the_stand_in_says_so_on_the_valid_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("optimizer: {name: AdamW, lr: 0.01, param_groups: [{match: bias, lr_scale: 2.0}]}\n")
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[0]
    assert line.startswith(f"{path}: valid on a one-layer stand-in model, torch.nn.Linear(1, 1)")
    assert "param_groups rules" in line
    assert "--model module:factory" in line
    assert "# optforge: --model module:factory" in line


# --- plot: the run length the config gives ------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "last"),
    [
        ("{total_steps: 300, lr: {cosine_decay: {peak_value: 0.1, decay_steps: {fraction: 1.0}}}}", 299),
        ("{name: OneCycleLR, max_lr: 0.1, total_steps: 120}", 119),
        ("{name: OneCycleLR, max_lr: 0.1, epochs: 3, steps_per_epoch: 40}", 119),
        ("{cosine_decay: {peak_value: 0.1, decay_steps: 100}}", 999),
    ],
)
def test_plot_plots_the_run_length_the_config_gives(tmp_path: Path, schedule: str, last: int) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"optimizer: {{name: SGD, lr: 0.1}}\nschedule: {schedule}\n")
    result = invoke("plot", path, "-o", tmp_path / "lr.png")
    assert result.exit_code == 0, result.output
    assert f"at step {last}\n" in result.stdout
    result = invoke("plot", path, "-o", tmp_path / "lr.png", "--steps", "50")
    assert result.exit_code == 0, result.output
    assert "at step 49\n" in result.stdout


# --- the model a file names: relative to the file ---------------------------------------------


@pytest.mark.parametrize("spec", ["models.py:build", "optforge_test_models_beside:build"])
def test_a_header_model_is_found_beside_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    module = spec.partition(":")[0].removesuffix(".py")
    (folder / f"{module}.py").write_text(TOWER_MODEL)
    path = folder / "towers.yaml"
    path.write_text(
        f"# optforge: --model {spec}\n"
        "optimizer: {name: Adam, lr: 0.001}\n"
        "multi_task_learning_rates: {tower_learning_rates: {ctr: {constant: 0.001}, cvr: {constant: 0.002}}}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    before = list(sys.path)
    try:
        for name, result in verdicts(path).items():
            assert result.exit_code == 0, (name, result.output)
        assert sys.path == before
    finally:
        sys.modules.pop("optforge_test_models_beside", None)


def test_a_model_on_the_command_line_is_found_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here.py").write_text(TOWER_MODEL)
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "towers.yaml"
    path.write_text(
        "optimizer: {name: Adam, lr: 0.001}\n"
        "multi_task_learning_rates: {tower_learning_rates: {ctr: {constant: 0.001}, cvr: {constant: 0.002}}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert invoke("validate", path, "--model", "here.py:build").exit_code == 0
    result = invoke("validate", path, "--model", "configs/here.py:build")
    assert result.exit_code == 1
    assert result.stderr.startswith("--model: no Python file")


# --- validate of a flat config stays light ------------------------------------------------------


def test_validate_of_a_flat_config_does_not_load_the_compiler(tmp_path: Path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text(
        "optimizer: {name: AdamW, lr: 0.001}\nschedule: {cosine_decay: {peak_value: 0.001, decay_steps: 1000}}\n"
    )
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from optforge.cli import app\n"
        f"result = CliRunner().invoke(app, ['validate', {str(path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_the_cli_page_shows_the_stand_in_line_as_validate_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = re.search(r"## Models on the command line.*?```text\n(.*?)```", page, re.S)
    assert shown, "docs/cli.md shows no stand-in line"
    monkeypatch.chdir(tmp_path)
    Path("muon.yaml").write_text(COMPOSITE.format(glob="blocks.*"))
    result = invoke("validate", "muon.yaml")
    assert result.exit_code == 1
    assert result.stderr == textwrap.dedent(shown.group(1))
