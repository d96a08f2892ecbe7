"""``optforge.compat.hf``: the short name of :mod:`optforge.compat.huggingface`."""

from optforge.compat.huggingface import build, fields_of, translate

__all__ = ["build", "fields_of", "translate"]
