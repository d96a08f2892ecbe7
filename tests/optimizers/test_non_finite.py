"""NaN and infinities in gradients, parameters and state: every step path gives what the eager update gives."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from optforge.optimizers import (
    AdamWScheduleFree,
    Lion,
    RAdamScheduleFree,
    ScheduleFreeOptimizer,
    SGDScheduleFree,
    _fused,
    _native,
)

# each optimizer with the weight decay it is given: its update reads y (or p) only where decay is on
MAKERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "Lion": lambda params, wd, **impl: Lion(params, lr=1e-2, weight_decay=wd * 10, **impl),
    "AdamWScheduleFree": lambda params, wd, **impl: AdamWScheduleFree(
        params, lr=1e-2, weight_decay=wd, warmup_steps=2, **impl
    ),
    "SGDScheduleFree": lambda params, wd, **impl: SGDScheduleFree(params, lr=0.05, weight_decay=wd, **impl),
    # beta2=0.9: the first steps are SGD steps (no division by the second moment), the later ones adaptive
    "RAdamScheduleFree": lambda params, wd, **impl: RAdamScheduleFree(
        params, lr=1e-2, betas=(0.9, 0.9), weight_decay=wd, silent_sgd_phase=False, **impl
    ),
}
_needs_cc = pytest.mark.skipif(_native.compiler_problem() is not None, reason="needs a C compiler")
# path -> (flags, CPU backend of the fused path)
PATHS = {
    "foreach": ({"foreach": True}, None),
    "fused-c": ({"fused": True}, _fused._apply_native),
    "fused-torch.compile": ({"fused": True}, _fused._apply_compiled),
}
PATH_PARAMS = [pytest.param(path, marks=_needs_cc) if path == "fused-c" else path for path in PATHS]
BAD = [math.nan, math.inf, -math.inf]
# a large tensor and small ones (the torch.compile backend gathers those into one flat batch)
SHAPES = [(300, 300), (5, 7), (64,)]
# (tensor, flat index) of the poisoned elements
SPOTS = [(0, 3), (0, 45_001), (1, 2), (2, 63)]


def _poison(tensors: list[torch.Tensor], value: float) -> None:
    for which, index in SPOTS:
        tensors[which].view(-1)[index] = value


def _run(name: str, target: str, bad: float, wd: float, impl: dict) -> list[torch.Tensor]:
    """Three steps; before the second, ``bad`` goes into the gradients, the parameters or every state tensor."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
    opt = MAKERS[name](params, wd, **impl)
    if isinstance(opt, ScheduleFreeOptimizer):
        opt.train()
    for step in range(3):
        gen = torch.Generator().manual_seed(10 + step)
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        if step == 1:
            with torch.no_grad():
                if target == "grad":
                    _poison(grads, bad)
                elif target == "param":
                    _poison(list(params), bad)
                else:
                    for key in type(opt).STATE_TENSORS:
                        _poison([opt.state[p][key] for p in params], bad)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    return [p.detach().clone() for p in params] + [
        opt.state[p][key].clone() for key in type(opt).STATE_TENSORS for p in params
    ]


def assert_agree(expected: list[torch.Tensor], got: list[torch.Tensor], exact: bool) -> None:
    """NaN, +inf and -inf in the same places; the finite elements equal (``exact``: bit for bit) or within rounding."""
    for k, (e, g) in enumerate(zip(expected, got)):
        for kind in (torch.isnan, torch.isposinf, torch.isneginf):
            where = (kind(e) != kind(g)).view(-1).nonzero().flatten()[:5].tolist()
            assert not where, (
                f"tensor {k}: {kind.__name__} differs at {where} ({e.view(-1)[where]} vs {g.view(-1)[where]})"
            )
        finite = torch.isfinite(e)
        if exact:
            assert torch.equal(e[finite].view(torch.int32), g[finite].view(torch.int32)), f"tensor {k}"
        else:
            torch.testing.assert_close(g[finite], e[finite], rtol=1e-5, atol=1e-6, msg=f"tensor {k}")


@pytest.mark.parametrize("bad", BAD, ids=str)
@pytest.mark.parametrize("target", ["grad", "param", "state"])
@pytest.mark.parametrize("decay", [True, False], ids=["decay", "no-decay"])
@pytest.mark.parametrize("path", PATH_PARAMS)
@pytest.mark.parametrize("name", MAKERS)
def test_non_finite_values_give_the_eager_result_on_every_path(name, path, decay, target, bad, monkeypatch):
    """The per-tensor loop of torch operations is the reference: every path does with NaN and inf what it does."""
    flags, backend = PATHS[path]
    if backend is not None:
        monkeypatch.setitem(_fused._BACKENDS, "cpu", backend)
    wd = 0.01 if decay else 0.0
    expected = _run(name, target, bad, wd, {"foreach": False})
    got = _run(name, target, bad, wd, flags)
    assert_agree(expected, got, exact=path == "foreach")


@pytest.mark.parametrize("bad", BAD, ids=str)
@pytest.mark.parametrize("path", ["single", *PATH_PARAMS])
def test_lion_steps_over_a_non_finite_gradient_as_lion_pytorch_does(path, bad, monkeypatch):
    """sign(NaN) = 0: lion-pytorch leaves the parameter where weight decay put it; so does every path here."""
    lion_pytorch = pytest.importorskip("lion_pytorch")
    flags, backend = PATHS.get(path, ({"foreach": False}, None))
    if backend is not None:
        monkeypatch.setitem(_fused._BACKENDS, "cpu", backend)
    runs = []
    for make in (
        lambda ps: lion_pytorch.Lion(ps, lr=1e-2, weight_decay=0.1),
        lambda ps: Lion(ps, lr=1e-2, weight_decay=0.1, **flags),
    ):
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
        opt = make(params)
        for step in range(3):
            grads = [torch.randn(p.shape, generator=gen) for p in params]
            if step == 1:
                _poison(grads, bad)
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        runs.append([p.detach().clone() for p in params] + [opt.state[p]["exp_avg"].clone() for p in params])
    expected, got = runs
    assert all(torch.isfinite(p).all() for p in got[: len(SHAPES)])
    assert_agree(expected, got, exact=not path.startswith("fused"))
