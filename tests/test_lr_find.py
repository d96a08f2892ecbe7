"""The LR range test: its lrs, smoothing and rules against fastai's and Lightning's, and the model left as it was."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import optforge
from optforge import demo
from optforge.cli import app
from optforge.errors import ConfigError
from optforge.lr_find import LRFindResult, sweep_lrs
from optforge.lr_find.config_lr import group_peaks
from optforge.lr_find.suggest import fastai_window, minimum, steep, valley

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
SGD = {"name": "SGD", "lr": 0.1}


@pytest.fixture
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def regression(seed: int = 0, n: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=generator)
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


def mse(model: nn.Module, batch: Any) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch[0]), batch[1])


def scripted(values: list[float]) -> Any:
    """A loss function that returns ``values`` in turn (with a gradient through the model)."""
    calls = iter(values)

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        return sum(p.sum() for p in model.parameters()) * 0.0 + next(calls)

    return loss_fn


# --- oracles: fastai and Lightning --------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end", "steps"), [(1e-7, 10.0, 100), (1e-5, 1.0, 37)])
def test_the_lrs_are_fastais(start: float, end: float, steps: int) -> None:
    schedule = pytest.importorskip("fastai.callback.schedule")
    assert sweep_lrs(start, end, steps) == [schedule.SchedExp(start, end)(i / steps) for i in range(steps)]
    linear = [schedule.SchedLin(start, end)(i / steps) for i in range(steps)]
    np.testing.assert_allclose(sweep_lrs(start, end, steps, "linear"), linear, rtol=1e-14)  # rounding apart


@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_the_lrs_are_lightnings_but_for_its_second_point(mode: str) -> None:
    from lightning.pytorch.tuner.lr_finder import _ExponentialLR, _LinearLR

    start, end, steps = 1e-6, 1.0, 50
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=start)
    scheduler = (_ExponentialLR if mode == "exponential" else _LinearLR)(optimizer, end, steps)
    lightning = []
    for _ in range(steps):  # its callback records scheduler.lr before each batch, the scheduler steps after it
        lightning.append(scheduler.lr[0])
        optimizer.step()
        scheduler.step()
    ours = sweep_lrs(start, end, steps, mode)
    # Lightning's step k > 0 takes r = (k + 1) / steps: it skips fastai's second lr and ends on `end` itself.
    assert lightning[0] == ours[0]
    np.testing.assert_allclose(lightning[1:-1], ours[2:], rtol=1e-12)
    assert lightning[-1] == pytest.approx(end, rel=1e-12)


def test_the_smoothing_is_fastais_and_lightnings_up_to_its_extra_power() -> None:
    learner = pytest.importorskip("fastai.learner")
    from lightning.pytorch.tuner.lr_finder import _LRCallback

    raw = [2.0, 1.5, 1.7, 1.2, 1.1, 0.9, 1.0, 0.8, 0.85, 0.7, 0.75, 0.6]
    result = optforge.lr_find(nn.Linear(2, 1), SGD, [None], scripted(raw), steps=len(raw), stop_factor=math.inf)
    np.testing.assert_allclose(result.losses, raw, rtol=1e-6)  # the loss is a float32 tensor
    fastai = learner.AvgSmoothLoss(beta=0.98)
    expected = []
    for value in raw:
        fastai.accumulate(SimpleNamespace(loss=torch.tensor(value)))
        expected.append(float(fastai.value))
    np.testing.assert_allclose(result.smoothed, expected, rtol=1e-6)

    callback = _LRCallback(len(raw), early_stop_threshold=None)
    for step, value in enumerate(raw):  # Lightning's global_step has counted the step when its batch ends
        trainer = SimpleNamespace(
            fit_loop=SimpleNamespace(batch_idx=step),
            accumulate_grad_batches=1,
            global_step=step + 1,
            strategy=SimpleNamespace(broadcast=lambda flag: flag),
            should_stop=False,
        )
        callback.on_train_batch_end(trainer, None, torch.tensor(value), None, step)
    # The same running average; Lightning divides by 1 - β ** (n + 1) where fastai divides by 1 - β ** n.
    beta = 0.98
    ours_as_lightning = [s * (1 - beta ** (n + 1)) / (1 - beta ** (n + 2)) for n, s in enumerate(result.smoothed)]
    np.testing.assert_allclose(callback.losses, ours_as_lightning, rtol=1e-9)


def recorded_curves() -> list[tuple[list[float], list[float], int]]:
    """Curves to compare the rules on: a real sweep, and random ones of several lengths and shapes."""
    real = optforge.lr_find(nn.Linear(4, 1), SGD, regression(), mse, steps=80)
    assert real.stopped == "diverged"
    curves = [(real.lrs, real.smoothed, 80)]
    rng = np.random.default_rng(0)
    for case in range(40):
        n = int(rng.integers(20, 120))
        walk = (
            np.cumsum(rng.normal(0, 1, n)) if case % 2 else 3 - np.tanh(np.linspace(-3, 3, n)) + rng.normal(0, 0.2, n)
        )
        steps = n + int(rng.integers(0, 10))  # a sweep that stopped early
        curves.append((sweep_lrs(1e-6, 1.0, steps)[:n], [float(v) for v in walk], steps))
    return curves


def test_valley_and_minimum_are_fastais() -> None:
    schedule = pytest.importorskip("fastai.callback.schedule")
    for lrs, losses, steps in recorded_curves():
        # fastai's lr_find: the window [num_it // 10 : -5], cut at the first NaN, then the rule on it.
        window_lrs = torch.tensor(lrs[steps // 10 : -5], dtype=torch.float64)  # fastai's tensor() would round
        window = torch.tensor(losses[steps // 10 : -5], dtype=torch.float64)  # to float32: the same indices
        nan = torch.nonzero(torch.isnan(window))
        if len(nan):
            window_lrs, window = window_lrs[: int(nan.min())], window[: int(nan.min())]
        assert valley(lrs, losses, steps).lr == schedule.valley(window_lrs, window, steps)[0]
        assert minimum(lrs, losses, steps).lr == pytest.approx(
            schedule.minimum(window_lrs, window, steps)[0], rel=1e-12
        )


def test_steep_is_lightnings_rule_before_its_linear_spacing() -> None:
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    for lrs, losses, _ in recorded_curves():
        # Lightning 2.6.6 takes the gradient against the lrs' own spacing; before 2.5.3 it took np.gradient with
        # unit spacing. Handed evenly spaced lrs (the step numbers), 2.6.6 computes the older rule exactly.
        finder = _LRFinder("exponential", lrs[0], lrs[-1], len(lrs))
        finder.results = {"lr": [float(i) for i in range(len(losses))], "loss": losses}
        assert steep(lrs, losses).index == int(finder.suggestion(skip_begin=10, skip_end=1))


def test_the_rules_skip_the_non_finite_end_of_a_diverged_sweep() -> None:
    lrs = sweep_lrs(1e-5, 1.0, 30)
    losses = [2.0 - 0.05 * i for i in range(29)] + [math.inf]
    assert fastai_window(losses, 30) == range(3, 25)
    assert steep(lrs, losses).index < 29
    assert minimum(lrs, losses, 30).index == 24


# --- the sweep ----------------------------------------------------------------------------------------


class Net(nn.Module):
    """BatchNorm, dropout and a frozen layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
        self.frozen = nn.Linear(4, 1)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.frozen(x)


def everything(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    state = optimizer.state_dict()
    return {
        "params": {name: p.detach().clone() for name, p in model.named_parameters()},
        "grads": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
        "buffers": {name: b.clone() for name, b in model.named_buffers()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "modes": [m.training for m in model.modules()],
        "optimizer": {(i, k): v.clone() for i, s in state["state"].items() for k, v in s.items()},
        "groups": [dict(g.items()) for g in state["param_groups"]],
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state()[1].copy(),
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for key in ("params", "buffers", "optimizer"):
        assert before[key].keys() == after[key].keys()
        for name in before[key]:
            assert torch.equal(before[key][name], after[key][name]), (key, name)
    for name, grad in before["grads"].items():
        assert (grad is None and after["grads"][name] is None) or torch.equal(grad, after["grads"][name]), name
    assert before["requires_grad"] == after["requires_grad"]
    assert before["modes"] == after["modes"]
    assert before["groups"] == after["groups"]
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert before["python_rng"] == after["python_rng"]
    assert np.array_equal(before["numpy_rng"], after["numpy_rng"])


@pytest.fixture
def trained() -> tuple[Net, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for batch in regression()[:3]:
        optimizer.zero_grad()
        mse(model, batch).backward()
        optimizer.step()
    mse(model, regression()[4]).backward()  # gradients left on the parameters
    model.eval()
    return model, optimizer


@pytest.mark.parametrize("error", [None, RuntimeError, KeyboardInterrupt])
def test_nothing_changes(trained: tuple[Net, torch.optim.Optimizer], error: type[BaseException] | None) -> None:
    model, optimizer = trained
    before = everything(model, optimizer)
    calls = []

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        calls.append(model.training)
        if error is not None and len(calls) == 8:  # step 7
            raise error("from the loss")
        random.random(), np.random.rand()  # the loss may draw from any generator
        return mse(model, batch)

    config = {"name": "AdamW", "lr": 1e-3, "param_groups": [{"match": "body.0.*", "lr_scale": 0.1}]}
    if error is None:
        result = optforge.lr_find(model, config, regression(), loss_fn, steps=20)
        assert len(result.lrs) > 7
    else:
        with pytest.raises(error, match="from the loss"):
            optforge.lr_find(model, config, regression(), loss_fn, steps=20)
        assert len(calls) == 8
    assert all(calls)  # it swept in train mode
    assert_same(before, everything(model, optimizer))


def test_every_group_keeps_its_share_of_the_base_lr() -> None:
    model = demo.make_model()
    towers = demo.example_path("per-tower-schedules")
    peaks = group_peaks(model, towers)
    assert [round(p, 9) for p in peaks] == [2e-3, 3e-3, 1e-3]  # backbone, price, demand
    seen: list[list[float]] = []
    original = torch.optim.Adam.step

    def spy(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        seen.append([group["lr"] for group in self.param_groups])
        return original(self, *args, **kwargs)

    task = demo.make_task()
    batches = [(task.inputs[i : i + 64], task.targets[i : i + 64]) for i in range(0, 512, 64)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.Adam, "step", spy)
        result = optforge.lr_find(model, towers, batches, mse, steps=12)
    assert result.base_lr == pytest.approx(3e-3)
    for lr, group_lrs in zip(result.lrs, seen):
        np.testing.assert_allclose(group_lrs, [lr * 2 / 3, lr, lr / 3], rtol=1e-12)
    new = result.with_lr(0.03)
    np.testing.assert_allclose(group_peaks(model, new), [0.02, 0.03, 0.01], rtol=1e-9)


def test_with_lr_fills_the_peak_of_the_schedule() -> None:
    config = {
        "optimizer": {"name": "AdamW", "lr": 3e-3},
        "schedule": {"cosine_decay": {"peak_value": 3e-3, "end_value": 3e-5, "warmup_steps": 5, "decay_steps": 50}},
    }
    result = optforge.lr_find(nn.Linear(4, 1), config, regression(), mse, steps=40)
    new = result.with_lr()
    assert new["schedule"]["cosine_decay"]["peak_value"] == pytest.approx(result.suggestion)
    assert new["schedule"]["cosine_decay"]["end_value"] == pytest.approx(result.suggestion / 100)
    assert new["schedule"]["cosine_decay"]["warmup_steps"] == 5
    assert new["optimizer"]["lr"] == pytest.approx(result.suggestion)
    assert config["optimizer"]["lr"] == 3e-3  # the config itself is not changed
    with pytest.raises(ConfigError, match="lr"):
        result.with_lr(-1.0)


def test_a_composite_sweeps_its_parts_together() -> None:
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    config = {
        "optimizer": [
            {"part": "hidden", "name": "NesterovMomentum", "lr": 0.05, "params": {"match": ["0"], "ndim": 2}},
            {"name": "AdamW", "lr": 0.005},
        ]
    }
    result = optforge.lr_find(model, config, regression(), mse, steps=30)
    assert sorted(result.shares) == pytest.approx([0.1] * (len(result.shares) - 1) + [1.0])
    assert result.with_lr(0.5)["optimizer"][1]["lr"] == pytest.approx(0.05)


def test_schedule_free_sweeps_in_train_mode() -> None:
    result = optforge.lr_find(nn.Linear(4, 1), {"name": "AdamWScheduleFree", "lr": 1e-3}, regression(), mse, steps=40)
    assert len(result.lrs) > 20
    assert all(math.isfinite(v) for v in result.losses[:20])


def test_it_stops_after_the_step_that_diverges_or_is_not_finite() -> None:
    rising = [1.0] * 5 + [10.0 * 2**i for i in range(20)]
    result = optforge.lr_find(nn.Linear(2, 1), SGD, [None], scripted(rising), steps=25)
    assert result.stopped == "diverged"
    assert result.smoothed[-1] > 4 * min(result.smoothed)
    assert all(s <= 4 * min(result.smoothed) for s in result.smoothed[:-1])
    result = optforge.lr_find(nn.Linear(2, 1), SGD, [None], scripted([1.0] * 5 + [math.nan] * 5), steps=10)
    assert (result.stopped, len(result.lrs), math.isnan(result.losses[-1])) == ("non-finite", 6, True)


def test_accumulation_and_cycling() -> None:
    seen = []

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        seen.append(batch)
        return mse(model, regression()[batch])

    result = optforge.lr_find(nn.Linear(4, 1), SGD, iter(range(3)), loss_fn, steps=10, accumulate=2)
    assert len(result.lrs) * 2 == len(seen)
    assert seen[:8] == [0, 1, 2, 0, 1, 2, 0, 1]  # a one-pass iterator goes round again
    first = (mse(nn.Linear(4, 1), regression()[0]) for _ in ())  # an empty generator
    with pytest.raises(ConfigError, match="batches: gave no batch"):
        optforge.lr_find(nn.Linear(4, 1), SGD, first, loss_fn, steps=10)


def test_a_grad_scaler_steps_and_is_put_back() -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    before = scaler.state_dict()
    result = optforge.lr_find(nn.Linear(4, 1), SGD, regression(), mse, steps=30, scaler=scaler)
    plain = optforge.lr_find(nn.Linear(4, 1), SGD, regression(), mse, steps=30)
    assert result.lrs == plain.lrs[: len(result.lrs)]
    assert len(result.lrs) > 10
    assert scaler.state_dict() == before


def test_notes_for_a_short_or_noisy_curve() -> None:
    lrs = sweep_lrs(1e-5, 1.0, 100)
    short = LRFindResult(lrs=lrs[:14], losses=[1.0] * 14, smoothed=[1.0] * 14, stopped="diverged", steps=100)
    assert any("too short" in note for note in short.notes)
    rng = np.random.default_rng(0)
    trend = [2.0 - 0.005 * i for i in range(100)]
    raw = [t + float(rng.normal(0, 1.0)) for t in trend]
    noisy = LRFindResult(lrs=lrs, losses=raw, smoothed=trend, stopped="steps", steps=100)
    assert any("too noisy" in note for note in noisy.notes)
    clean = LRFindResult(lrs=lrs, losses=trend, smoothed=trend, stopped="steps", steps=100)
    assert clean.notes == []


def test_the_plots_mark_the_suggestion(tmp_path: Path) -> None:
    result = optforge.lr_find(nn.Linear(4, 1), SGD, regression(), mse, steps=60)
    path = result.plot_png(tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{result.rule}: {result.suggestion:.2g}" in result.plot_terminal(100, 25)
    with pytest.raises(ConfigError, match="--output"):
        result.plot_png(tmp_path / "sweep.nope")


# --- bad arguments --------------------------------------------------------------------------------------

GOOD: dict[str, Any] = {"start": 1e-7, "end": 10.0, "steps": 100, "mode": "exponential", "smoothing": 0.98,
                        "stop_factor": 4.0, "accumulate": 1}  # fmt: skip
BAD = {
    "start": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just("1e-3"), st.none(), st.just(math.inf)),
    "end": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.just(True)),
    "steps": st.one_of(st.integers(max_value=1), st.floats(), st.just("100"), st.just(True)),
    "mode": st.text().filter(lambda text: text not in ("exponential", "linear")),
    "smoothing": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0), st.just(math.nan), st.just([0.9])),
    "stop_factor": st.one_of(st.floats(max_value=1.0), st.just(math.nan), st.just("4")),
    "accumulate": st.one_of(st.integers(max_value=0), st.just(2.0), st.just(None)),
}


@settings(max_examples=15, deadline=None)
@given(data=st.data(), names=st.sets(st.sampled_from(sorted(BAD)), min_size=1, max_size=3))
def test_bad_arguments_are_one_config_error_naming_each(data: st.DataObject, names: set[str]) -> None:
    bad = {name: data.draw(BAD[name], label=name) for name in names}
    model = nn.Linear(2, 1)
    before = model.weight.clone()
    with pytest.raises(ConfigError) as caught:
        optforge.lr_find(model, SGD, [None], mse, **{**GOOD, **bad})
    assert names <= {path for path, _ in caught.value.problems}
    assert torch.equal(model.weight, before)


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        ({"model": "a model"}, "model"),
        ({"batches": 3}, "batches"),
        ({"batches": "abc"}, "batches"),
        ({"loss_fn": None}, "loss_fn"),
        ({"config": {"name": "SGDD", "lr": 0.1}}, "optimizer.name"),
        ({"loss_fn": lambda model, batch: 1.0}, "loss_fn"),
        ({"scaler": object()}, "scaler"),
    ],
)
def test_other_bad_arguments(arguments: dict[str, Any], path: str) -> None:
    call = {"model": nn.Linear(4, 1), "config": SGD, "batches": regression(), "loss_fn": mse, **arguments}
    with pytest.raises(ConfigError) as caught:
        optforge.lr_find(call.pop("model"), call.pop("config"), call.pop("batches"), call.pop("loss_fn"), **call)
    assert path in {p for p, _ in caught.value.problems}


def test_unknown_rule() -> None:
    result = LRFindResult(lrs=[1.0, 2.0], losses=[1.0, 1.0], smoothed=[1.0, 1.0], stopped="steps", steps=2)
    with pytest.raises(ConfigError, match="rule: unknown rule 'valey'; did you mean 'valley'"):
        result.suggest("valey")


# --- the command line ------------------------------------------------------------------------------------

TASK = """
import torch
from optforge.demo import make_task

def batches():
    task = make_task(0)
    return [(task.inputs[i:i + 64], task.targets[i:i + 64]) for i in range(0, 1024, 64)]

def loss(model, batch):
    return torch.nn.functional.mse_loss(model(batch[0]), batch[1])

class WithLoss(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(8, 2)

    def forward(self, x, y):
        return torch.nn.functional.mse_loss(self.layer(x), y)
"""


@pytest.fixture
def task_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "adamw.yaml").write_text("optimizer: {name: AdamW, lr: 1.0e-3}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_command_sweeps_and_writes_the_plot(task_dir: Path) -> None:
    args = ["lr-find", "adamw.yaml", "--model", "optforge.demo:make_model", "--data", "task.py:batches"]
    result = CliRunner().invoke(app, [*args, "--loss", "task.py:loss", "--steps", "60", "-o", "sweep.png"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("suggested lr: ")
    assert float(last.split()[2]) > 0
    assert "wrote sweep.png" in result.output
    assert (task_dir / "sweep.png").stat().st_size > 1000
    # Without --loss the model returns the loss.
    result = CliRunner().invoke(
        app, ["lr-find", "adamw.yaml", "-m", "task.py:WithLoss", "-d", "task.py:batches", "-n", "30"]
    )
    assert result.exit_code == 0, result.output
    assert "LR range test" in result.output


def test_the_console_script(task_dir: Path) -> None:
    script = Path(sys.executable).with_name("optforge")
    command = [str(script), "lr-find", "adamw.yaml", "-m", "optforge.demo:make_model", "-d", "task.py:batches"]
    done = subprocess.run([*command, "-l", "task.py:loss", "-n", "40"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("suggested lr: ")
    done = subprocess.run([*command[:-1], "task.py:nothing"], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "--data: 'task.py' has no function 'nothing'" in done.stderr


# --- DDP ---------------------------------------------------------------------------------------------------


def ranks(rank: int, world_size: int, workdir: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(nn.Linear(4, 1))
    before = model.module.weight.detach().clone()
    share = regression(seed=rank)  # each rank its own data
    result = optforge.lr_find(model, SGD, share, mse, steps=40)
    return {"lrs": result.lrs, "smoothed": result.smoothed, "suggestion": result.suggestion,
            "unchanged": torch.equal(before, model.module.weight)}  # fmt: skip


@pytest.mark.distributed
def test_ddp_gives_every_rank_the_same_result(tmp_path: Path) -> None:
    from tests.integrations._launch import run_ranks

    first, second = run_ranks("tests.test_lr_find:ranks", tmp_path)
    assert first == second
    assert first["unchanged"]
    assert len(first["lrs"]) > 10
