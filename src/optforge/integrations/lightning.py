"""Lightning: optimizers and schedulers from an optforge config, and Schedule-Free modes.

:func:`configure_optimizers` returns what ``LightningModule.configure_optimizers``
returns, with the scheduler stepped after every optimizer step (optforge
schedules count optimizer steps). :class:`ScheduleFreeCallback` keeps
Schedule-Free optimizers in train mode for training steps and in eval mode for
validation, testing, prediction and every checkpoint, so the saved and
evaluated weights are the averaged ones.

Example:
    >>> import torch
    >>> from optforge.integrations.lightning import configure_optimizers
    >>> model = torch.nn.Linear(2, 1)
    >>> cfg = {"optimizer": {"name": "AdamW", "lr": 1e-3},
    ...        "schedule": {"cosine_decay": {"peak_value": 1e-3, "warmup_steps": 10, "decay_steps": 100}}}
    >>> out = configure_optimizers(model, cfg)
    >>> type(out["optimizer"]).__name__, out["lr_scheduler"]["interval"]
    ('AdamW', 'step')
"""

from __future__ import annotations

import types
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn

from optforge.around_step import clip_gradients, release_clipping
from optforge.builder import build
from optforge.config import ClipGrad
from optforge.config_source import load_config
from optforge.distributed import schedule_free_training, set_schedule_free_mode
from optforge.errors import ConfigError
from optforge.lr_schedulers import is_metric_driven, section_options

__all__ = ["ScheduleFreeCallback", "configure_optimizers"]


def configure_optimizers(module: nn.Module, config: Any, *, params: Any = None) -> dict[str, Any]:
    """The ``configure_optimizers`` return value for an optforge config.

    Args:
        module: The ``LightningModule`` (or any module) whose parameters to optimize.
        config: Any config :func:`optforge.build` takes (mapping, ``DictConfig``,
            YAML path, typed config).
        params: Parameters or param-group dicts to use instead of ``module``'s.

    Returns:
        ``{"optimizer": ..., "lr_scheduler": {"scheduler": ..., "interval": "step", "frequency": 1}}``.
        Lightning steps the scheduler after each optimizer step (after the
        accumulated step with ``accumulate_grad_batches``). A scheduler-by-name
        section sets its own ``interval`` (``step`` or ``epoch``), ``frequency``
        and, for a metric-driven scheduler such as ``ReduceLROnPlateau``, the
        ``monitor`` metric Lightning steps it with.

    Raises:
        ConfigError: for a bad config, a metric-driven scheduler without ``monitor``,
            or ``clip_grad:`` beside Lightning's own clipping.

    With automatic optimization, ``clip_grad:`` is Lightning's clipping: after
    ``backward`` (and the unscaling under AMP, and the accumulated micro-batches),
    after ``on_before_optimizer_step``, before the step. The 2-norm and ``max_value``
    go through ``LightningModule.clip_gradients``, as ``Trainer(gradient_clip_val=...)``
    does; other norms, ``agc`` and ``per_part`` clip the same parameters with
    optforge's own code. It is set on the module's ``configure_gradient_clipping``,
    so a module that overrides it, or a ``Trainer`` given ``gradient_clip_val``,
    is refused.

    Schedules count optimizer steps; for a schedule over the whole run, put the
    run's length in the config (``schedule: {lr: ..., total_steps: ...}``, e.g.
    from ``self.trainer.estimated_stepping_batches``).
    """
    optimizer, scheduler = build(module if params is None else params, config)
    if isinstance(module, pl.LightningModule) and module.automatic_optimization:
        clip = release_clipping(optimizer)
        if clip is not None:
            _clip_in_lightning(module, clip)
    section = load_config(config).get("schedule")
    options = section_options(section)
    settings: dict[str, Any] = {
        "scheduler": scheduler,
        "interval": options.get("interval", "step"),
        "frequency": options.get("frequency", 1),
        "name": "lr",
    }
    if is_metric_driven(scheduler):
        if not options.get("monitor"):
            raise ConfigError(
                f"{type(scheduler).__name__} steps on a metric: name the logged metric Lightning passes it "
                "(monitor: val_loss)",
                path="schedule.monitor",
            )
        settings.update(monitor=options["monitor"], reduce_on_plateau=True)
    return {"optimizer": optimizer, "lr_scheduler": settings}


def _trainer_clipping(module: pl.LightningModule) -> Any:
    trainer = module._trainer
    return None if trainer is None else trainer.gradient_clip_val


def _refuse_both(value: Any) -> ConfigError:
    return ConfigError(
        f"the config clips the gradients and so does Trainer(gradient_clip_val={value!r}); keep one of them "
        "(remove clip_grad: from the config, or gradient_clip_val from the Trainer)",
        path="clip_grad",
    )


def _clip_in_lightning(module: pl.LightningModule, clip: ClipGrad) -> None:
    """Set ``clip`` as the module's ``configure_gradient_clipping``."""
    if is_overridden("configure_gradient_clipping", module, pl.LightningModule):
        raise ConfigError(
            f"{type(module).__name__} overrides configure_gradient_clipping, where Lightning clips the gradients; "
            "clip there (self.clip_gradients) and remove clip_grad: from the config, or remove the override",
            path="clip_grad",
        )
    if _trainer_clipping(module) is not None:
        raise _refuse_both(_trainer_clipping(module))
    by_lightning = not clip.per_part and (
        clip.max_value is not None
        or (clip.max_norm is not None and clip.norm_type == 2.0 and not clip.error_if_nonfinite)
    )

    def configure_gradient_clipping(
        self: pl.LightningModule,
        optimizer: Any,
        gradient_clip_val: Any = None,
        gradient_clip_algorithm: Any = None,
    ) -> None:
        if gradient_clip_val is not None:
            raise _refuse_both(gradient_clip_val)
        if by_lightning:
            value, algorithm = (clip.max_norm, "norm") if clip.max_value is None else (clip.max_value, "value")
            self.clip_gradients(optimizer, gradient_clip_val=value, gradient_clip_algorithm=algorithm)
        else:
            clip_gradients(optimizer, clip, list(self.trainer.precision_plugin.main_params(optimizer)))

    module.configure_gradient_clipping = types.MethodType(configure_gradient_clipping, module)  # type: ignore[method-assign]


class ScheduleFreeCallback(pl.Callback):
    """Puts Schedule-Free optimizers in eval mode outside training steps, and back to train mode for them.

    Train mode before each training batch; eval mode for validation, testing and
    prediction, at the end of each training epoch and of ``fit``, and for every
    checkpoint. A checkpoint saved in the middle of training (such as by
    ``ModelCheckpoint(every_n_train_steps=...)``) is re-made in eval mode, so
    every checkpoint holds the averaged weights and records eval mode; resuming
    from one puts the optimizer back in train mode before the next step. Other
    optimizers are left alone.

    Example:
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[ScheduleFreeCallback()], logger=False, enable_progress_bar=False,
        ...                      enable_checkpointing=False, enable_model_summary=False)
    """

    @staticmethod
    def _set_mode(trainer: pl.Trainer, train: bool) -> None:
        for optimizer in trainer.optimizers:
            set_schedule_free_mode(optimizer, train)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._set_mode(trainer, True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._set_mode(trainer, False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._set_mode(trainer, False)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._set_mode(trainer, False)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._set_mode(trainer, False)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._set_mode(trainer, False)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if not any(schedule_free_training(optimizer) for optimizer in trainer.optimizers):
            return
        # The checkpoint was taken in train mode (weights y): take its weights and
        # optimizer states again in eval mode. The next training batch switches back.
        self._set_mode(trainer, False)
        checkpoint["state_dict"] = trainer.strategy.lightning_module_state_dict()
        if "optimizer_states" in checkpoint:
            checkpoint["optimizer_states"] = [trainer.strategy.optimizer_state(opt) for opt in trainer.optimizers]
