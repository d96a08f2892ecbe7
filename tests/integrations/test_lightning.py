"""Lightning: configure_optimizers steps the schedule per optimizer step; ScheduleFreeCallback manages modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import optforge
from optforge.distributed import schedule_free_training
from optforge.integrations.lightning import ScheduleFreeCallback, configure_optimizers

CONFIG = {
    "optimizer": {"name": "AdamW", "lr": 0.01},
    "schedule": {"cosine_decay": {"peak_value": 0.01, "warmup_steps": 3, "decay_steps": 8}},
}
SCHEDULE_FREE = {"name": "AdamWScheduleFree", "lr": 0.01, "warmup_steps": 2}


def dataset() -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, generator=gen)
    return TensorDataset(x, x.sum(dim=1, keepdim=True))


def new_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 1)


class Regression(pl.LightningModule):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.net = new_model()
        self.seen: list[tuple[str, float, bool]] = []  # (stage, lr, Schedule-Free train mode)

    def _record(self, stage: str) -> None:
        optimizer = self.trainer.optimizers[0]
        self.seen.append((stage, optimizer.param_groups[0]["lr"], schedule_free_training(optimizer)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self._record("train")
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._record("val")

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimizers(self, self.config)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(dataset(), batch_size=2)  # 4 optimizer steps per epoch

    def val_dataloader(self) -> DataLoader:
        return DataLoader(dataset(), batch_size=8)


def trainer(tmp_path: Path, **kwargs: Any) -> pl.Trainer:
    options = {
        "accelerator": "cpu",
        "max_epochs": 2,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
        **kwargs,
    }
    checkpoints = [c for c in options.get("callbacks", []) if isinstance(c, pl.callbacks.ModelCheckpoint)]
    options.setdefault("enable_checkpointing", bool(checkpoints))
    return pl.Trainer(**options)


def test_configure_optimizers_steps_the_schedule_per_optimizer_step(tmp_path: Path) -> None:
    module = Regression(CONFIG)
    trainer(tmp_path, limit_val_batches=0).fit(module)
    optimizer, scheduler = optforge.build(new_model(), CONFIG)
    want = []
    for _ in range(8):
        want.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert [lr for _, lr, _ in module.seen] == pytest.approx(want)
    assert len(set(want)) == 8, "the lr changes at every step of both epochs"


def test_schedule_free_callback_trains_in_train_mode_and_evaluates_in_eval_mode(tmp_path: Path) -> None:
    module = Regression(SCHEDULE_FREE)
    trainer(tmp_path, callbacks=[ScheduleFreeCallback()], val_check_interval=2).fit(module)
    stages = {(stage, training) for stage, _, training in module.seen}
    assert stages == {("train", True), ("val", False)}
    assert [stage for stage, _, _ in module.seen].count("val") >= 4, "validation ran mid-epoch and after"
    assert not schedule_free_training(module.trainer.optimizers[0]), "fit ends in eval mode"


def test_without_the_callback_a_schedule_free_optimizer_cannot_step(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="eval mode"):
        trainer(tmp_path, limit_val_batches=0).fit(Regression(SCHEDULE_FREE))


def test_mid_epoch_checkpoints_hold_the_averaged_weights(tmp_path: Path) -> None:
    """A checkpoint taken after step 1 is in eval mode and holds x, as a plain loop computes it."""
    every_step = pl.callbacks.ModelCheckpoint(tmp_path, filename="{step}", every_n_train_steps=1, save_top_k=-1)
    module = Regression(SCHEDULE_FREE)
    trainer(tmp_path, callbacks=[ScheduleFreeCallback(), every_step], limit_val_batches=0, max_steps=2).fit(module)
    checkpoint = torch.load(tmp_path / "step=1.ckpt", weights_only=False)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["train_mode"] is False

    model = new_model()
    optimizer = optforge.build_optimizer(model, SCHEDULE_FREE)
    optimizer.train()
    x, y = next(iter(DataLoader(dataset(), batch_size=2)))
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
    optimizer.eval()
    torch.testing.assert_close(checkpoint["state_dict"]["net.weight"], model.weight.detach())
    torch.testing.assert_close(checkpoint["state_dict"]["net.bias"], model.bias.detach())


def test_resuming_from_an_epoch_checkpoint_reproduces_the_run(tmp_path: Path) -> None:
    each_epoch = pl.callbacks.ModelCheckpoint(tmp_path, filename="{epoch}", save_top_k=-1)
    whole = Regression(SCHEDULE_FREE)
    trainer(tmp_path, callbacks=[ScheduleFreeCallback(), each_epoch], limit_val_batches=1).fit(whole)
    checkpoint = torch.load(tmp_path / "epoch=0.ckpt", weights_only=False)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["train_mode"] is False

    resumed = Regression(SCHEDULE_FREE)
    with torch.no_grad():
        resumed.net.weight.fill_(3.0)  # overwritten by the checkpoint
    resume_dir = tmp_path / "resume"
    trainer(resume_dir, callbacks=[ScheduleFreeCallback()], limit_val_batches=1).fit(
        resumed, ckpt_path=tmp_path / "epoch=0.ckpt"
    )
    assert [s for s in resumed.seen if s[0] == "train"] == [s for s in whole.seen if s[0] == "train"][4:]
    torch.testing.assert_close(resumed.net.weight, whole.net.weight, rtol=0, atol=0)
    torch.testing.assert_close(resumed.net.bias, whole.net.bias, rtol=0, atol=0)


def _weights(module: Regression) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.net.parameters()]


@pytest.mark.parametrize(
    ("clip_grad", "trainer_clipping"),
    [
        ({"max_norm": 0.05}, {"gradient_clip_val": 0.05}),
        ({"max_value": 0.01}, {"gradient_clip_val": 0.01, "gradient_clip_algorithm": "value"}),
    ],
    ids=["max_norm", "max_value"],
)
def test_clip_grad_clips_as_the_trainer_does(tmp_path: Path, clip_grad: dict, trainer_clipping: dict) -> None:
    """Under automatic optimization, clip_grad: is Lightning's own clipping, applied once."""
    ours = Regression({**CONFIG, "clip_grad": clip_grad})
    trainer(tmp_path / "ours", limit_val_batches=0).fit(ours)
    lightnings = Regression(CONFIG)
    trainer(tmp_path / "lightning", limit_val_batches=0, **trainer_clipping).fit(lightnings)
    unclipped = Regression(CONFIG)
    trainer(tmp_path / "none", limit_val_batches=0).fit(unclipped)
    torch.testing.assert_close(_weights(ours), _weights(lightnings), rtol=0, atol=0)
    assert not torch.equal(_weights(ours)[0], _weights(unclipped)[0])


class Checked(Regression):
    """Records the gradients' norm right after Lightning's clipping."""

    def __init__(self, config: Any, norm_type: float) -> None:
        super().__init__(config)
        self.norm_type, self.norms = norm_type, []

    def configure_optimizers(self) -> dict[str, Any]:
        settings = configure_optimizers(self, self.config)
        clip = self.configure_gradient_clipping

        def checked(optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None) -> None:
            clip(optimizer, gradient_clip_val, gradient_clip_algorithm)
            grads = [p.grad for p in self.net.parameters()]
            self.norms.append(float(torch.nn.utils.get_total_norm(grads, self.norm_type)))

        self.configure_gradient_clipping = checked  # type: ignore[method-assign]
        return settings


@pytest.mark.parametrize(
    ("clip_grad", "norm_type", "most"),
    [
        ({"max_norm": 0.05, "norm_type": float("inf")}, float("inf"), 0.05),
        ({"agc": 0.001}, 2.0, 0.01),
    ],
    ids=["inf-norm", "agc"],
)
def test_clipping_lightning_has_no_setting_for_runs_at_lightnings_point(
    tmp_path: Path, clip_grad: dict, norm_type: float, most: float
) -> None:
    module = Checked({**CONFIG, "clip_grad": clip_grad}, norm_type)
    trainer(tmp_path, limit_val_batches=0, max_epochs=1).fit(module)
    assert len(module.norms) == 4
    assert max(module.norms) <= most + 1e-6
    assert optforge.step_stats(module.trainer.optimizers[0]).grad_norm > most


def test_clip_grad_and_trainer_clipping_together_are_refused(tmp_path: Path) -> None:
    module = Regression({**CONFIG, "clip_grad": {"max_norm": 0.05}})
    with pytest.raises(optforge.ConfigError, match="gradient_clip_val"):
        trainer(tmp_path, limit_val_batches=0, gradient_clip_val=0.05).fit(module)


def test_a_module_clipping_on_its_own_is_refused_clip_grad() -> None:
    class OwnClipping(Regression):
        def configure_gradient_clipping(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
            pass

    config = {**CONFIG, "clip_grad": {"max_norm": 1.0}}
    with pytest.raises(optforge.ConfigError, match="configure_gradient_clipping"):
        configure_optimizers(OwnClipping(config), config)


class Poisoned(Regression):
    """Its loss is NaN at the third training step."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == 2 else loss


def _hand_loop(config: Any, skipped: tuple[int, ...] = (), scale: float = 1.0) -> list[torch.Tensor]:
    """The weights after one epoch of ``config`` trained by hand, leaving out the batches ``skipped``."""
    model = new_model()
    optimizer, scheduler = optforge.build(model, config)
    for index, (x, y) in enumerate(DataLoader(dataset(), batch_size=2)):
        if index in skipped:
            continue
        optimizer.zero_grad()
        (nn.functional.mse_loss(model(x), y) * scale).backward()
        optimizer.step()
        scheduler.step()
    return [p.detach() for p in model.parameters()]


def test_skip_nonfinite_skips_a_nan_step_under_automatic_optimization(tmp_path: Path) -> None:
    config = {**CONFIG, "skip_nonfinite": True}
    poisoned = Poisoned(config)
    trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(poisoned)
    stats = optforge.step_stats(poisoned.trainer.optimizers[0])
    assert (stats.steps, stats.skipped) == (3, 1)
    # As if the NaN batch were not there: the weights, the optimizer state and the schedule skip it.
    torch.testing.assert_close(_weights(poisoned), _hand_loop(config, skipped=(2,)))


class Manual(Regression):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(super().training_step(batch, batch_idx) * 100)
        optimizer.step()
        self.lr_schedulers().step()


def test_clip_grad_clips_under_manual_optimization(tmp_path: Path) -> None:
    module = Manual({**CONFIG, "clip_grad": {"max_norm": 0.05}})
    trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(module)
    stats = optforge.step_stats(module.trainer.optimizers[0])
    assert stats.steps == 4
    assert float(stats.grad_norm) > 0.05  # the norm before clipping
    torch.testing.assert_close(_weights(module), _hand_loop({**CONFIG, "clip_grad": {"max_norm": 0.05}}, scale=100))
