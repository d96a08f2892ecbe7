"""CPU kernels traced into C: the translation, the rounding of each dtype, the disk cache and its failures."""

from __future__ import annotations

import importlib
import subprocess

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.optimizers import _fused, _native

pytestmark = pytest.mark.skipif(_native.compiler_problem() is not None, reason="needs a C compiler")


def _kernel(module: str, name: str):
    return getattr(importlib.import_module(f"optforge.optimizers.{module}"), name)


# each kernel and the number of its scalars
KERNELS = {
    "lion": (_kernel("lion", "_lion_kernel"), 7),
    "sgd_schedule_free": (_kernel("sgd_schedule_free", "_sgd_schedule_free_kernel"), 6),
    "adamw_schedule_free": (_kernel("adamw_schedule_free", "_adam_schedule_free_kernel"), 11),
}
# lr, ckp1 or 1 - lr * wd, beta2, 1 - beta2, 1/sqrt(bc2) or beta2, eps or 1 - beta2 or decay on (sgd),
# weight decay or +-1, y_coef, +-1, adaptive, decay on: plausible values for each kernel's first scalars
SCALARS = [0.01, 0.3, 0.99, 0.01, 1.3, 1e-8, 0.1, -0.02, -1.0, 1.0, 1.0]


def _tensors(arity: int, dtype: torch.dtype, n: int = 100_003) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(arity)]
    tensors[-1] = tensors[-1].abs()  # a second moment where a kernel has one
    return [t.to(dtype) for t in tensors]


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_kernel_computes_what_the_torch_kernel_computes(name, dtype):
    kernel, count = KERNELS[name]
    arity = kernel.__code__.co_argcount - 1
    native, eager = _tensors(arity, dtype), _tensors(arity, dtype)
    scalars = _fused.scalar_tensor(SCALARS[:count], native[0])
    _native.native_kernel(kernel, dtype)([[t] for t in native], scalars)
    kernel(*eager, scalars)  # the same function, run by torch operation by operation
    for a, b in zip(native, eager):
        # torch's vectorized sqrt may differ from the correctly rounded one in the last bit, which
        # the interpolation of values of order one carries into results near zero as an absolute error
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(a, b, rtol=4 * eps, atol=4 * eps)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_kernels_compute_in_float_and_round_once(name, dtype):
    kernel, count = KERNELS[name]
    arity = kernel.__code__.co_argcount - 1
    native = _tensors(arity, dtype)
    upcast = [t.float() for t in native]
    scalars = _fused.scalar_tensor(SCALARS[:count], native[0])
    _native.native_kernel(kernel, dtype)([[t] for t in native], scalars)
    kernel(*upcast, scalars)
    for a, b in zip(native, upcast):
        mismatched = (a != b.to(dtype)) & ~(a.isnan() & b.isnan())
        # one in a few thousand may sit on the other side of a rounding boundary after a last-bit sqrt difference
        assert mismatched.float().mean() < 1e-3


def _scale(y: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> None:
    y.copy_(x * s[0])


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=50),
    factor=st.floats(min_value=-4, max_value=4, allow_nan=False, width=32),
    dtype=st.sampled_from([torch.bfloat16, torch.float16]),
)
def test_storing_rounds_to_nearest_even_as_torch_does(values, factor, dtype):
    x = torch.tensor(values, dtype=torch.float32).to(dtype)
    y = torch.empty_like(x)
    _native.native_kernel(_scale, dtype)([[y], [x]], torch.tensor([factor]))
    expected = (x.float() * torch.tensor(factor)).to(dtype)
    assert torch.equal(y.isnan(), expected.isnan())
    assert torch.equal(y[~y.isnan()], expected[~expected.isnan()])


def _axpy(y: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> None:
    y.copy_(y + x * s[0])


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=12),
    threads=st.integers(min_value=1, max_value=5),
)
def test_one_call_updates_every_element_of_every_tensor_once(sizes, threads):
    """The threads split the concatenated elements; every tensor boundary and thread share must line up."""
    ys = [torch.arange(n, dtype=torch.float32) for n in sizes]
    xs = [torch.full((n,), float(k + 1)) for k, n in enumerate(sizes)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _native.native_kernel(_axpy, torch.float32)([ys, xs], torch.tensor([2.0]))
    finally:
        torch.set_num_threads(before)
    for k, (y, n) in enumerate(zip(ys, sizes)):
        assert torch.equal(y, torch.arange(n, dtype=torch.float32) + 2.0 * (k + 1))


def test_kernels_run_on_torchs_thread_count(monkeypatch):
    calls = []
    kernel = _native.native_kernel(_scale, torch.float32)
    monkeypatch.setattr(kernel, "_function", lambda *args: calls.append(args))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    kernel([[torch.zeros(5)], [torch.ones(5)]], torch.tensor([2.0]))
    assert len(calls) == 1
    assert calls[0][0] == 1  # one tensor
    assert calls[0][-1] == 3  # threads
    source = _native.c_source(_scale, 2, torch.float32, "scale")
    assert f"#pragma omp parallel num_threads(threads) if(total >= {_native.PARALLEL_MIN_NUMEL})" in source


def test_operations_without_a_c_translation_are_refused():
    def exponential(y: torch.Tensor, s: torch.Tensor) -> None:
        y.copy_(torch.exp(y))

    def branching(y: torch.Tensor, s: torch.Tensor) -> None:
        if y > s[0]:
            y.copy_(y * 2)

    with pytest.raises(TypeError, match="cannot use exp"):
        _native.c_source(exponential, 1, torch.float32, "exponential")
    with pytest.raises(TypeError, match=r"torch\.where"):
        _native.c_source(branching, 1, torch.float32, "branching")


def test_reads_after_a_write_see_the_new_value():
    def twice(y: torch.Tensor, s: torch.Tensor) -> None:
        y.copy_(y * s[0])
        y.copy_(y * s[0])

    y = torch.full((10,), 3.0)
    _native.native_kernel(twice, torch.float32)([[y]], torch.tensor([2.0]))
    assert torch.equal(y, torch.full((10,), 12.0))


def _fresh(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_native, "_LOADED", {})


def test_built_kernels_are_loaded_from_the_disk_cache(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path)
    _native.native_kernel(_scale, torch.float32)
    libraries = list((tmp_path / "cpu-kernels").iterdir())
    assert [p.suffix for p in libraries] == [".so"]  # no source or partial files left behind
    monkeypatch.setattr(_native, "_LOADED", {})

    def no_compiler(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(subprocess, "run", no_compiler)
    y = torch.zeros(4)
    _native.native_kernel(_scale, torch.float32)([[y], [torch.ones(4)]], torch.tensor([5.0]))
    assert torch.equal(y, torch.full((4,), 5.0))


def test_a_damaged_cache_entry_is_built_again(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path)
    name = "optforge_scale_float32"
    library = _native._build(_native.c_source(_scale, 2, torch.float32, name), name)  # built, never loaded
    damaged = library.with_suffix(".damaged")
    damaged.write_bytes(b"not a shared library")
    damaged.replace(library)
    y = torch.zeros(4)
    _native.native_kernel(_scale, torch.float32)([[y], [torch.ones(4)]], torch.tensor([2.0]))
    assert torch.equal(y, torch.full((4,), 2.0))


def test_an_unwritable_cache_falls_back_to_a_temporary_directory(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fresh(monkeypatch, blocker)  # the cache directory would have to live under a file
    y = torch.zeros(4)
    _native.native_kernel(_scale, torch.float32)([[y], [torch.ones(4)]], torch.tensor([3.0]))
    assert torch.equal(y, torch.full((4,), 3.0))


def test_a_failing_compiler_raises_compile_error_with_its_message(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", "false")
    with pytest.raises(_native.CompileError, match="false failed"):
        _native.native_kernel(_scale, torch.float32)
    assert list((tmp_path / "cpu-kernels").iterdir()) == []


def test_a_missing_compiler_is_named(monkeypatch):
    monkeypatch.setenv("CC", "optforge-no-such-compiler --flag")
    assert _native.compiler_problem() == "no C compiler ($CC='optforge-no-such-compiler --flag' not found)"
    with pytest.raises(_native.CompileError, match="no C compiler"):
        _native._build("int x;", "nothing")


def _special_ops(sign, absolute, root, larger, picked, difference, x, y, s):
    sign.copy_(torch.sign(x))
    absolute.copy_(x.abs())
    root.copy_(torch.sqrt(x))
    larger.copy_(torch.where(x > y, x, y))
    picked.copy_(torch.where(x < y, x - y, x * y))
    difference.copy_(x * s[0] - y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_special_values_give_torchs_bits(dtype):
    """NaN, infinities and signed zeros: sign(NaN) and sign(-0) are +0, comparisons with NaN are false."""
    specials = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 4.0, -4.0, 0.25, 2.25, 2.0**-140]
    pairs = torch.tensor([(a, b) for a in specials for b in specials], dtype=torch.float64).to(dtype)
    x, y = pairs[:, 0].repeat(3).contiguous(), pairs[:, 1].repeat(3).contiguous()  # vector loops and a tail
    outputs = [torch.empty_like(x) for _ in range(6)]
    scalars = _fused.scalar_tensor([1.0], x)
    _native.native_kernel(_special_ops, dtype)([[t] for t in [*outputs, x, y]], scalars)
    expected = [torch.empty_like(x) for _ in range(6)]
    _special_ops(*expected, x, y, scalars)
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
    for name, got, want in zip(["sign", "abs", "sqrt", "where >", "where <", "arithmetic"], outputs, expected):
        assert torch.equal(got.isnan(), want.isnan()), name
        kept = ~want.isnan()
        assert torch.equal(got[kept].view(bits), want[kept].view(bits)), name


def test_where_needs_a_comparison():
    """In C any non-zero number (NaN too) is true; torch.where takes only a boolean condition."""

    def kernel(y, x, s):
        y.copy_(torch.where(x, x, s[0]))

    with pytest.raises(TypeError, match="comparison"):
        _native.c_loop_body(kernel, 2)


@pytest.mark.parametrize("function", [torch.maximum, torch.minimum, torch.fmax, torch.clamp])
def test_functions_without_a_translation_are_refused(function):
    """No C stand-in with other NaN rules (C's fmax drops a NaN, torch.maximum keeps it)."""

    def kernel(y, x, s):
        y.copy_(function(x, s[0]))

    with pytest.raises(TypeError, match=function.__name__):
        _native.c_loop_body(kernel, 2)
