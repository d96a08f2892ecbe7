"""Optimizer and scheduler classes named by their import path in another stack's file, as optforge names.

A class of ``torch.optim`` or ``torch.optim.lr_scheduler`` becomes its registry name
(``torch.optim.AdamW`` is ``AdamW``); any other path stays as written, and optforge's
registries import it when the document is built (a path is a name there too).

Example:
    >>> optforge_name("torch.optim.AdamW"), optforge_name("torch.optim.lr_scheduler.StepLR")
    ('AdamW', 'StepLR')
    >>> optforge_name("timm.optim.Lamb")
    'timm.optim.Lamb'
"""

from __future__ import annotations

import re

__all__ = ["TORCH_MODULES", "optforge_name"]

# The modules whose classes optforge registers under their class names.
TORCH_MODULES: tuple[str, ...] = ("torch.optim", "torch.optim.lr_scheduler")
_TORCH_CLASS = re.compile("|".join(rf"{re.escape(module)}\.([A-Z]\w*)" for module in TORCH_MODULES))


def optforge_name(path: str) -> str:
    """The optforge name of the class at ``path``: a torch class's registry name, else the path itself."""
    match = _TORCH_CLASS.fullmatch(path)
    return next(group for group in match.groups() if group) if match else path
