"""Shared fixtures: small real models to build optimizers over."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import torch
from torch import nn

# CPU kernels built by the tests go to a private cache of each test process, not the user's, and go with it
if "OPTFORGE_CACHE_DIR" not in os.environ:
    os.environ["OPTFORGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="optforge-test-kernels-")
    atexit.register(shutil.rmtree, os.environ["OPTFORGE_CACHE_DIR"], ignore_errors=True)


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
