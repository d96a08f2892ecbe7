"""Another training stack's file as the optforge document that builds the same thing, in YAML.

Every field the document cannot carry is a comment line above it, with what the stack
does with it; ``optforge convert FILE --from NAME`` prints the same text.

Example:
    >>> text = convert({"optim": "sgd", "learning_rate": 0.1, "lr_scheduler_type": "constant", "seed": 3})
    >>> print(text)  # doctest: +ELLIPSIS
    # Converted from Hugging Face TrainingArguments.
    # seed: 3: the Trainer's, not the optimizer's: optforge does not read it
    optimizer:
      name: SGD
      lr: 0.1
    ...
"""

from __future__ import annotations

from typing import Any

import yaml

from optforge.config.stacks import stack_named, translate_stack
from optforge.config_source import read_config
from optforge.errors import ConfigError, truncate

__all__ = ["convert"]


def convert(source: Any, stack: str | None = None, **facts: Any) -> str:
    """The YAML text of the optforge document translated from ``source`` (a mapping or a path).

    ``stack`` names the stack where the file's shape does not; ``facts`` are the run's facts
    under optforge's names (``total_steps``).

    Raises:
        ConfigError: for a file no stack recognises, or every problem of the stack's file.
    """
    data = read_config(source)
    translation = translate_stack(data, stack, **facts) if isinstance(data, dict) else None
    if translation is None:
        raise ConfigError("no stack recognises this file; name it with --from NAME", path="from")
    lines = [f"# Converted from {stack_named(translation.stack).title}."]
    lines += [f"# {field.path}: {truncate(field.value)}: {field.reason}" for field in translation.unexpressed]
    body = yaml.safe_dump(translation.document, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body
