"""Other training stacks' config files, each translated into an optforge document.

A stack is one module here and one row of :data:`STACKS`. Its ``recognises(data)`` says
whether a whole file is written for that stack (``False`` where the shape is ambiguous:
the caller then names the stack, ``--from NAME`` on the command line), and its
``translate(data, run)`` returns the optforge document that builds the same optimizer,
the same param groups, the same lr at every step and the same clipping, together with
every field of the stack's file that the document cannot express (each becomes a
warning at build time and a comment line in ``optforge convert``). ``run`` holds the
facts of the run the stack's trainer would supply (for example ``num_training_steps``);
each stack lists the names it reads in ``run_keys``.

Translating reads data only: no model, no torch, no import of the other stack.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from optforge.config.stacks import deepspeed, huggingface, lightning, mmengine, timm, torchtune
from optforge.config.stacks.base import Stack, Translation, Unexpressed
from optforge.errors import ConfigError, truncate

__all__ = [
    "STACKS",
    "Stack",
    "StackWarning",
    "Translation",
    "Unexpressed",
    "as_document",
    "recognise",
    "stack_named",
    "translate_stack",
]


class StackWarning(UserWarning):
    """A field of another stack's file that the optforge document does not carry."""


# One row per stack, in the order they are tried by recognise().
STACKS: tuple[Stack, ...] = (
    Stack(
        "huggingface",
        "Hugging Face TrainingArguments",
        huggingface.recognises,
        huggingface.translate,
        run_keys=("num_training_steps",),
        run_from={"num_training_steps": "total_steps"},
    ),
    Stack(
        "mmengine",
        "mmengine optim_wrapper and param_scheduler",
        mmengine.recognises,
        mmengine.translate,
        run_keys=("max_epochs", "max_iters", "epoch_length"),
        run_from={"max_iters": "total_steps", "epoch_length": "steps_per_epoch"},
    ),
    Stack(
        "timm",
        "timm train.py arguments",
        timm.recognises,
        timm.translate,
        run_keys=("updates_per_epoch",),
        run_from={"updates_per_epoch": "steps_per_epoch"},
    ),
    Stack("lightning", "LightningCLI optimizer and lr_scheduler", lightning.recognises, lightning.translate),
    Stack(
        "torchtune",
        "torchtune recipe optimizer and lr_scheduler",
        torchtune.recognises,
        torchtune.translate,
        run_keys=("num_training_steps",),
        run_from={"num_training_steps": "total_steps"},
    ),
    Stack(
        "deepspeed",
        "DeepSpeed config",
        deepspeed.recognises,
        deepspeed.translate,
        run_keys=("total_num_steps",),
        run_from={"total_num_steps": "total_steps"},
    ),
)

# Other names a stack is asked for by.
ALIASES: Mapping[str, str] = {"hf": "huggingface", "transformers": "huggingface"}


def stack_named(name: str) -> Stack:
    """The stack called ``name`` (or one of its :data:`ALIASES`).

    Raises:
        ConfigError: for an unknown name, listing the known ones.

    Example:
        >>> stack_named("hf").title
        'Hugging Face TrainingArguments'
    """
    name = ALIASES.get(name, name)
    for stack in STACKS:
        if stack.name == name:
            return stack
    raise ConfigError(
        f"unknown stack {truncate(name)}; expected one of: {', '.join(stack.name for stack in STACKS) or '(none)'}",
        path="from",
    )


def recognise(data: Mapping[str, Any]) -> Stack | None:
    """The one stack whose files look like ``data``, or ``None`` (none, or more than one)."""
    matches = [stack for stack in STACKS if stack.recognises(data)]
    return matches[0] if len(matches) == 1 else None


def translate_stack(data: Mapping[str, Any], stack: str | None = None, **facts: Any) -> Translation | None:
    """The translation of ``data``: by the stack named ``stack``, else by the one that recognises it.

    ``facts`` are the run's facts under optforge's names (``total_steps``), handed to the
    stack under its own (:attr:`Stack.run_from`). ``None`` when no stack is named and none
    recognises ``data`` (an optforge document).

    Raises:
        ConfigError: for an unknown stack, or every problem of the stack's file.
    """
    chosen = stack_named(stack) if stack is not None else recognise(data)
    if chosen is None:
        return None
    run = {key: facts.get(chosen.run_from.get(key, key)) for key in chosen.run_keys}
    return chosen.translate(data, {key: value for key, value in run.items() if value is not None})


def as_document(data: Any, stack: str | None = None, **facts: Any) -> Any:
    """``data`` as an optforge document: translated when it is a stack's file, with one warning per
    field the document does not carry; anything else unchanged.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     doc = as_document({"optim": "sgd", "lr_scheduler_type": "constant", "seed": 1})
        >>> doc["optimizer"]["name"], [str(w.message) for w in caught]
        ('SGD', ["seed: 1: the Trainer's, not the optimizer's: optforge does not read it"])
    """
    if not isinstance(data, Mapping) or (stack is None and "optimizer" in data and recognise(data) is None):
        if stack is not None and not isinstance(data, Mapping):
            raise ConfigError(f"a {stack} file is a mapping, got {type(data).__name__}", path="from")
        return data
    translation = translate_stack(data, stack, **facts)
    if translation is None:
        return data
    for field in translation.unexpressed:
        warnings.warn(f"{field.path}: {truncate(field.value)}: {field.reason}", StackWarning, stacklevel=3)
    return translation.document
