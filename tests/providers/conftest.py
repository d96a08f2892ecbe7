"""Fixtures for the provider tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tests.providers._training import Run, run


@pytest.fixture
def run_entry(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """:func:`run`, with ``torch.compile`` as the identity.

    timm's Kron compiles its kernels when built; compiling on CPU takes tens of
    seconds and is not what these tests check.
    """
    monkeypatch.setattr(torch, "compile", lambda fn=None, **kwargs: fn)
    return run
