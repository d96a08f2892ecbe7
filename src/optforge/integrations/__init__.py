"""optforge inside existing trainers.

- :mod:`optforge.integrations.lightning`: ``configure_optimizers`` and the
  ``ScheduleFreeCallback`` for Lightning (needs the ``lightning`` extra; only
  that module imports Lightning).
- Hydra and OmegaConf need no adapter: ``build`` and ``build_optimizer`` take a
  composed ``DictConfig`` as it is, and ``_target_: optforge.build_optimizer``
  (with ``_partial_: true``) instantiates them (see ``examples/hydra/``).
- Distributed training (DDP, FSDP2, ZeRO, checkpoints): :mod:`optforge.distributed`.
"""
