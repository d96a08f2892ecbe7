"""The LR range test: sweep the learning rate of a config on a model and pick one from the loss curve.

:func:`lr_find` runs the sweep (:mod:`~optforge.lr_find.sweep`) and returns an
:class:`LRFindResult` (:mod:`~optforge.lr_find.result`), whose suggestion comes from one
of the rules of :mod:`~optforge.lr_find.suggest`; :mod:`~optforge.lr_find.config_lr`
finds each group's share of the lr and fills a new lr into the config.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Linear(3, 1)
    >>> batches = [torch.randn(16, 3) for _ in range(4)]
    >>> result = optforge.lr_find(model, {"name": "Adam", "lr": 1e-3}, batches,
    ...                           lambda m, x: m(x).pow(2).mean(), steps=20)
    >>> len(result.lrs) <= 20, result.rule in ("valley", "steep", "minimum", "lowest")
    (True, True)
"""

from optforge.lr_find.result import DEFAULT_RULE, LRFindResult
from optforge.lr_find.suggest import RULES, Suggestion
from optforge.lr_find.sweep import lr_find, sweep_lrs

__all__ = ["DEFAULT_RULE", "RULES", "LRFindResult", "Suggestion", "lr_find", "sweep_lrs"]
