"""Shared fixtures: small real models to build optimizers over."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
import torch
from torch import nn

# CPU kernels built by the tests go to a cache of their own, shared by the test processes, not the user's
os.environ.setdefault("OPTFORGE_CACHE_DIR", os.path.join(tempfile.gettempdir(), "optforge-test-kernels"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test: tiny models step fastest so, and the shared cores stay free."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mlp() -> nn.Module:
    """A two-layer perceptron with a LayerNorm: weights, biases and norm parameters."""
    return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 1))


def regression_batch(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed synthetic regression batch for the mlp fixture."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=gen)
    y = x[:, :1] * 0.5 - x[:, 1:2] + 0.1
    return x, y
