"""optforge's Lamb: against a reference written here from DeepSpeed's FusedLamb kernel, known values, conformance.

DeepSpeed's kernel (``deepspeed/ops/csrc/lamb/fused_lamb_cuda_kernel.cu``) runs on CUDA only, so the
reference below is an independent transcription of its arithmetic, element by element in Python floats:
moments without bias correction, ``denom = sqrt(v) + eps`` (``sqrt(v + eps)`` with eps under the root),
``update = m / denom + decay * p``, the trust ratio ``||p|| / ||update||`` clamped to
``[min_coeff, max_coeff]`` (1 where either norm is 0), and the step size ``lr * sqrt(1 - b2^t) / (1 - b1^t)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

import optforge
from optforge.errors import ConfigError
from optforge.optimizers import Lamb
from tests.optimizers import test_conformance as conformance


def _reference_kernel(
    p: list[float], m: list[float], v: list[float], g: list[float], step: int, **h: Any
) -> tuple[list[float], list[float], list[float]]:
    """Reference (written from DeepSpeed's kernel, not optforge's code): one FusedLamb step of one tensor."""
    b1, b2 = h["betas"]
    m = [b1 * mj + (1 - b1) * gj for mj, gj in zip(m, g)]
    v = [b2 * vj + (1 - b2) * gj * gj for vj, gj in zip(v, g)]
    denom = [math.sqrt(vj + h["eps"]) if h["eps_inside_sqrt"] else math.sqrt(vj) + h["eps"] for vj in v]
    update = [mj / dj + h["weight_decay"] * pj for mj, dj, pj in zip(m, denom, p)]
    w_norm, u_norm = math.sqrt(sum(x * x for x in p)), math.sqrt(sum(x * x for x in update))
    coeff = 1.0
    if w_norm != 0 and u_norm != 0:
        coeff = min(max(w_norm / u_norm, h["min_coeff"]), h["max_coeff"])
    step_size = h["lr"] * math.sqrt(1 - b2**step) / (1 - b1**step) if h["bias_correction"] else h["lr"]
    return [pj - step_size * coeff * uj for pj, uj in zip(p, update)], m, v


SETTINGS = {
    "defaults": {},
    "decay-and-clamps": {"lr": 0.02, "betas": (0.8, 0.95), "weight_decay": 0.1, "min_coeff": 0.5, "max_coeff": 2.0},
    "eps-inside-no-correction": {"eps": 1e-4, "eps_inside_sqrt": True, "bias_correction": False, "lr": 0.01},
    "tight-max": {"lr": 0.05, "max_coeff": 0.05, "min_coeff": 0.0},  # every ratio clamped from above
    "high-min": {"lr": 0.05, "min_coeff": 50.0, "max_coeff": 100.0},  # every ratio clamped from below
}
DEFAULTS = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "bias_correction": True,
    "eps_inside_sqrt": False,
    "min_coeff": 0.01,
    "max_coeff": 10.0,
}


@pytest.mark.parametrize("case", SETTINGS)
def test_matches_the_reference_transcribed_from_deepspeeds_kernel(case: str) -> None:
    h = {**DEFAULTS, **SETTINGS[case]}
    gen = torch.Generator().manual_seed(1)
    shapes = [(4, 3), (7,), (3,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes]
    with torch.no_grad():
        params[2].zero_()  # ||p|| = 0: ratio 1
    opt = Lamb(params, **h)
    ref = [(p.detach().flatten().tolist(), [0.0] * p.numel(), [0.0] * p.numel()) for p in params]
    for step in range(1, 8):
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            ref[i] = _reference_kernel(*ref[i], p.grad.flatten().tolist(), step, **h)
        opt.step()
        for p, (rp, rm, rv) in zip(params, ref):
            for ours, theirs in ((p, rp), (opt.state[p]["exp_avg"], rm), (opt.state[p]["exp_avg_sq"], rv)):
                torch.testing.assert_close(ours.detach().flatten(), torch.tensor(theirs, dtype=torch.float64))


def _one_step(p: list[float], g: list[float], **h: Any) -> list[float]:
    param = torch.nn.Parameter(torch.tensor(p, dtype=torch.float64))
    param.grad = torch.tensor(g, dtype=torch.float64)
    Lamb([param], **h).step()
    return param.detach().tolist()


def test_known_values() -> None:
    # First step, eps 0: m / sqrt(v) = sign(g) / sqrt(1 - b2) * (1 - b1) ... = sign(g) * sqrt(10) for the defaults;
    # the step size lr * sqrt(1 - b2) / (1 - b1) times that is lr * sign(g): the Adam step, times the ratio.
    ratio = 5.0 / math.sqrt(20.0)  # ||(3, 4)|| / ||(sqrt(10), -sqrt(10))||
    got = _one_step([3.0, 4.0], [1.0, -1.0], lr=0.1, eps=0.0)
    assert got == pytest.approx([3.0 - 0.1 * ratio, 4.0 + 0.1 * ratio], rel=1e-14)
    # the same step clamped: ratio 1.118 above max_coeff 0.5, below min_coeff 2
    assert _one_step([3.0, 4.0], [1.0, -1.0], lr=0.1, eps=0.0, max_coeff=0.5) == pytest.approx([2.95, 4.05], rel=1e-14)
    got = _one_step([3.0, 4.0], [1.0, -1.0], lr=0.1, eps=0.0, min_coeff=2.0)
    assert got == pytest.approx([2.8, 4.2], rel=1e-14)
    # zero parameters: the ratio is 1, not 0 (and not min_coeff)
    assert _one_step([0.0, 0.0], [1.0, -1.0], lr=0.1, eps=0.0) == pytest.approx([-0.1, 0.1], rel=1e-14)
    # zero gradient and no decay: the update is 0 and nothing moves
    assert _one_step([3.0, 4.0], [0.0, 0.0], lr=0.1) == [3.0, 4.0]


def test_bad_arguments_are_config_errors() -> None:
    p = [torch.nn.Parameter(torch.zeros(2))]
    for kwargs, path in (
        ({"max_coeff": 0.001}, "max_coeff"),
        ({"min_coeff": -1.0}, "min_coeff"),
        ({"eps": -1.0}, "eps"),
        ({"betas": (0.9, 1.0)}, "betas[1]"),
        ({"lr": torch.tensor([0.1, 0.2])}, "lr"),
    ):
        with pytest.raises(ConfigError) as caught:
            Lamb(p, **kwargs)
        assert caught.value.problems[0][0] == path


def test_registered_and_built_by_name() -> None:
    entry = optforge.get_optimizer_entry("Lamb")
    assert entry.decoupled_weight_decay
    model = torch.nn.Linear(3, 2)
    opt = optforge.build(model, {"optimizer": {"name": "Lamb", "lr": 0.01, "max_coeff": 2.0}})[0]
    assert type(opt) is Lamb
    assert opt.param_groups[0]["max_coeff"] == 2.0


def _factory(params: Any, **impl: Any) -> torch.optim.Optimizer:
    return Lamb(params, lr=1e-2, weight_decay=0.01, **impl)


# torch.optim's promises (test_conformance.py) on Lamb's one implementation, the per-tensor loop.
CHECKS: list[Callable[..., None]] = [
    conformance.test_step_with_closure_returns_loss,
    conformance.test_params_without_grad_untouched_and_stateless,
    conformance.test_non_contiguous_params_match_contiguous,
    conformance.test_maximize_equals_minimizing_the_negation,
    conformance.test_add_param_group_mid_run,
    conformance.test_lr_change_takes_effect_next_step,
    conformance.test_one_element_tensor_lr_steps_like_a_float_lr,
    conformance.test_state_dict_round_trip_continues_bit_identically,
    conformance.test_load_state_dict_across_dtypes,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__.removeprefix("test_"))
def test_conformance(check: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conformance.FACTORIES, "Lamb", _factory)
    monkeypatch.setitem(conformance.IMPLS, "loop", {})
    check("Lamb", "loop")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes_keep_dtype(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conformance.FACTORIES, "Lamb", _factory)
    monkeypatch.setitem(conformance.IMPLS, "loop", {})
    conformance.test_other_dtypes_keep_dtype("Lamb", "loop", dtype)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_work_independently(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conformance.FACTORIES, "Lamb", _factory)
    monkeypatch.setitem(conformance.IMPLS, "loop", {})
    conformance.test_copies_work_independently("Lamb", "loop", how)
