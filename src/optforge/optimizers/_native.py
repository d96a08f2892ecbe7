"""CPU kernels for the fused path: an elementwise update traced into a C loop and built by the system compiler.

An optimizer writes its update once, as ``kernel(*tensors, scalars)`` in torch
operations (see :mod:`optforge.optimizers._fused`). On CPU that function is run
once on symbolic values (:class:`_Value`), which record each operation as one
line of C; the lines become the body of a loop over the elements, run on
torch's thread count with OpenMP and vectorized by the compiler for the
CPU's instruction set (:func:`torch.backends.cpu.get_cpu_capability`).

Building takes the C compiler a fraction of a second, against several seconds
for ``torch.compile`` on a machine whose inductor cache is empty. The shared
library is cached on disk (``$OPTFORGE_CACHE_DIR``, else
``$XDG_CACHE_HOME/optforge``, else ``~/.cache/optforge``) under a hash of its
source, the compiler and its flags, so later processes only load it.

Every value is computed in ``float`` (``double`` for float64 tensors) and
rounded to the tensor's dtype once, when stored (torch's eager bfloat16 and
float16 operations round after each one); operations are not contracted into
fused multiply-adds, so in float32 and float64 each rounds as IEEE arithmetic
does (torch's vectorized ``sqrt`` may differ in the last bit). NaN, infinities
and signed zeros come out as torch's operations give them: ``sign`` is +0 for
NaN and for -0, and a comparison with NaN is false. Operations without a
translation here (``torch.maximum``, ``torch.clamp``, ...) raise ``TypeError``.

Example:
    >>> import torch
    >>> def axpy(y, x, s):
    ...     y.copy_(y + x * s[0])
    >>> print(c_loop_body(axpy, 2))
    const acc_t v0 = LOAD(x0[i]);
    const acc_t v1 = LOAD(x1[i]);
    const acc_t t0 = v1 * s0;
    const acc_t t1 = v0 + t0;
    x0[i] = STORE(t1);
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import uuid
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "CompileError",
    "NativeKernel",
    "c_loop_body",
    "c_source",
    "compiler_problem",
    "load_library",
    "native_kernel",
]

# Loops over fewer elements run on one thread: starting the others costs more than it saves
# (torch's own CPU kernels split work in grains of the same size).
PARALLEL_MIN_NUMEL = 32768

# Storage type, compute type and the conversions between them, per dtype.
_DTYPE_PRELUDES: dict[torch.dtype, str] = {
    torch.float32: """\
typedef float store_t;
typedef float acc_t;
#define LOAD(x) (x)
#define STORE(x) (x)
#define SQRT sqrtf
#define ABS fabsf
""",
    torch.float64: """\
typedef double store_t;
typedef double acc_t;
#define LOAD(x) (x)
#define STORE(x) (x)
#define SQRT sqrt
#define ABS fabs
""",
    # bfloat16 is the upper half of a float; rounding to nearest even, NaN kept quiet, as torch does
    torch.bfloat16: """\
typedef uint16_t store_t;
typedef float acc_t;
static inline float LOAD(uint16_t x) { uint32_t u = (uint32_t)x << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t STORE(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if (f != f) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
#define SQRT sqrtf
#define ABS fabsf
""",
    torch.float16: """\
typedef _Float16 store_t;
typedef float acc_t;
#define LOAD(x) ((float)(x))
#define STORE(x) ((_Float16)(x))
#define SQRT sqrtf
#define ABS fabsf
""",
}

# One call updates every tensor of a step: element i of tensor t of argument k is
# ((store_t*)ptrs[k * count + t])[i]. The threads split the concatenated elements
# evenly, so one parallel region serves large tensors and many small ones alike.
_SOURCE = """\
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
{prelude}
// torch's sign: +0 for NaN and for both zeros
#define SIGN(x) ((acc_t)((x) > 0) - (acc_t)((x) < 0))

void {name}(int64_t count, const int64_t* restrict ptrs, const int64_t* restrict sizes,
            const acc_t* restrict s, int threads) {{
{scalars}
    int64_t total = 0;
    for (int64_t t = 0; t < count; t++) total += sizes[t];
    #pragma omp parallel num_threads(threads) if(total >= {parallel_min})
    {{
#ifdef _OPENMP
        const int64_t parts = omp_get_num_threads(), part = omp_get_thread_num();
#else
        const int64_t parts = 1, part = 0;
#endif
        const int64_t begin = total / parts * part + (part < total % parts ? part : total % parts);
        const int64_t end = begin + total / parts + (part < total % parts ? 1 : 0);
        int64_t offset = 0;
        for (int64_t t = 0; t < count && offset < end; offset += sizes[t], t++) {{
            const int64_t lo = begin > offset ? begin - offset : 0;
            const int64_t hi = end - offset < sizes[t] ? end - offset : sizes[t];
            if (lo >= hi) continue;
{pointers}
            #pragma omp simd
            for (int64_t i = lo; i < hi; i++) {{
{body}
            }}
        }}
    }}
}}
"""


# ---------------------------------------------------------------- tracing the kernel into C
class _Loop:
    """The C statements of one loop iteration, in the order the kernel performed them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.scalars: set[int] = set()
        self._count = 0

    def emit(self, expression: str, is_flag: bool = False) -> _Value:
        name = f"t{self._count}"
        self._count += 1
        self.lines.append(f"const {'int' if is_flag else 'acc_t'} {name} = {expression};")
        return _Value(self, name, is_flag)


def _operand(value: object) -> str:
    if isinstance(value, _Value):
        return value.name
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"((acc_t){float(value)!r})"
    raise TypeError(f"a fused kernel cannot use {type(value).__name__} values in C")


class _Value:
    """A number (or a 0/1 flag) in the loop body, named by the C local that holds it."""

    __slots__ = ("is_flag", "loop", "name")

    def __init__(self, loop: _Loop, name: str, is_flag: bool = False) -> None:
        self.loop, self.name, self.is_flag = loop, name, is_flag

    def _binary(self, other: object, op: str, reverse: bool = False, is_flag: bool = False) -> _Value:
        left, right = _operand(self), _operand(other)
        if reverse:
            left, right = right, left
        return self.loop.emit(f"{left} {op} {right}", is_flag)

    def __add__(self, other: object) -> _Value:
        return self._binary(other, "+")

    def __radd__(self, other: object) -> _Value:
        return self._binary(other, "+", reverse=True)

    def __sub__(self, other: object) -> _Value:
        return self._binary(other, "-")

    def __rsub__(self, other: object) -> _Value:
        return self._binary(other, "-", reverse=True)

    def __mul__(self, other: object) -> _Value:
        return self._binary(other, "*")

    def __rmul__(self, other: object) -> _Value:
        return self._binary(other, "*", reverse=True)

    def __truediv__(self, other: object) -> _Value:
        return self._binary(other, "/")

    def __rtruediv__(self, other: object) -> _Value:
        return self._binary(other, "/", reverse=True)

    def __lt__(self, other: object) -> _Value:
        return self._binary(other, "<", is_flag=True)

    def __gt__(self, other: object) -> _Value:
        return self._binary(other, ">", is_flag=True)

    def __neg__(self) -> _Value:
        return self.loop.emit(f"-{self.name}")

    def __bool__(self) -> bool:
        raise TypeError("a fused kernel cannot branch on tensor values; use torch.where")

    def abs(self) -> _Value:
        return self.loop.emit(f"ABS({self.name})")

    def sqrt(self) -> _Value:
        return self.loop.emit(f"SQRT({self.name})")

    def sign(self) -> _Value:
        return self.loop.emit(f"SIGN({self.name})")

    def copy_(self, value: _Value) -> _Value:
        raise TypeError("a fused kernel can only write its tensor arguments")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        translate = _TORCH_FUNCTIONS.get(func)
        if translate is None or kwargs:
            raise TypeError(f"a fused kernel cannot use {getattr(func, '__name__', func)} in C")
        return translate(*args)


class _Element(_Value):
    """Element ``i`` of tensor argument ``index``; ``copy_`` stores into it, and later reads see the new value."""

    __slots__ = ("index",)

    def __init__(self, loop: _Loop, index: int) -> None:
        super().__init__(loop, f"v{index}")
        self.index = index
        loop.lines.append(f"const acc_t v{index} = LOAD(x{index}[i]);")

    def copy_(self, value: _Value) -> _Value:
        self.loop.lines.append(f"x{self.index}[i] = STORE({_operand(value)});")
        self.name = _operand(value)
        return self


class _Scalars:
    """The ``scalars`` argument: ``s[k]`` is hyperparameter ``k``, read once before the loop."""

    def __init__(self, loop: _Loop) -> None:
        self.loop = loop

    def __getitem__(self, index: int) -> _Value:
        self.loop.scalars.add(index)
        return _Value(self.loop, f"s{index}")


def _where(condition: _Value, then: object, otherwise: object) -> _Value:
    # torch.where takes only a boolean condition; C would take any number as one, NaN as true
    if not (isinstance(condition, _Value) and condition.is_flag):
        raise TypeError("a fused kernel's torch.where needs a comparison (x < y, x > y) as its condition")
    return condition.loop.emit(f"{condition.name} ? {_operand(then)} : {_operand(otherwise)}")


_TORCH_FUNCTIONS: dict[Callable[..., object], Callable[..., _Value]] = {
    torch.sign: _Value.sign,
    torch.sqrt: _Value.sqrt,
    torch.abs: _Value.abs,
    torch.where: _where,
    Tensor.sign: _Value.sign,
    Tensor.sqrt: _Value.sqrt,
    Tensor.abs: _Value.abs,
}


def _trace(kernel: Callable[..., None], arity: int) -> _Loop:
    loop = _Loop()
    kernel(*[_Element(loop, k) for k in range(arity)], _Scalars(loop))
    return loop


def c_loop_body(kernel: Callable[..., None], arity: int) -> str:
    """The C statements for one element of ``kernel(x0, ..., x{arity-1}, s)`` (see the module example)."""
    return "\n".join(_trace(kernel, arity).lines)


def c_source(kernel: Callable[..., None], arity: int, dtype: torch.dtype, name: str) -> str:
    """A C translation unit defining ``void name(count, ptrs, sizes, s, threads)`` for tensors of ``dtype``."""
    loop = _trace(kernel, arity)
    return _SOURCE.format(
        prelude=_DTYPE_PRELUDES[dtype],
        name=name,
        scalars="\n".join(f"    const acc_t s{k} = s[{k}];" for k in sorted(loop.scalars)),
        parallel_min=PARALLEL_MIN_NUMEL,
        pointers="\n".join(
            f"            store_t* restrict x{k} = (store_t*)(intptr_t)ptrs[{k} * count + t];" for k in range(arity)
        ),
        body="\n".join(f"                {line}" for line in loop.lines),
    )


# ---------------------------------------------------------------- building and caching
class CompileError(RuntimeError):
    """The C compiler rejected a kernel (its message is attached)."""


def _compiler() -> list[str] | None:
    """The C compiler command: ``$CC``, else the first of cc, gcc and clang on the PATH."""
    command = shlex.split(os.environ.get("CC", ""))
    if command:
        return command if shutil.which(command[0]) else None
    for candidate in ("cc", "gcc", "clang"):
        path = shutil.which(candidate)
        if path:
            return [path]
    return None


def compiler_problem() -> str | None:
    """Why CPU kernels cannot be built in this environment, or ``None``.

    Example:
        >>> compiler_problem() is None or "compiler" in compiler_problem()
        True
    """
    if _compiler() is None:
        cc = os.environ.get("CC")
        return f"no C compiler ($CC={cc!r} not found)" if cc else "no C compiler (cc, gcc or clang) on the PATH"
    return None


def _isa_flags() -> list[str]:
    """Instruction-set flags for the vector units torch itself uses on this CPU."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512"):
        return ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mfma", "-mf16c"]
    if capability == "AVX2":
        return ["-mavx2", "-mfma", "-mf16c"]
    return []


def _cache_dir() -> Path:
    """The kernel cache, created if needed; a private temporary directory when it cannot be."""
    configured = os.environ.get("OPTFORGE_CACHE_DIR")
    if configured:
        root = Path(configured)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "optforge"
    directory = root / "cpu-kernels"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return _private_dir()
    return directory


@functools.cache
def _private_dir() -> Path:
    """A directory only this process's user can write, so no one else can plant a library in it."""
    return Path(tempfile.mkdtemp(prefix="optforge-kernels-"))


def _identity(command: Sequence[str]) -> str:
    """The compiler binary's path, size and modification time: a new compiler means new libraries."""
    path = os.path.realpath(shutil.which(command[0]) or command[0])
    stat = os.stat(path)
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _build(source: str, name: str) -> Path:
    """Compile ``source`` into the cache (unless it is there already); the shared library's path."""
    command = _compiler()
    if command is None:
        raise CompileError(compiler_problem())
    flags = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=off", *_isa_flags()]
    key = hashlib.sha256("\0".join([source, _identity(command), *command, *flags]).encode()).hexdigest()[:24]
    directory = _cache_dir()
    target = directory / f"{name}-{key}.so"
    if target.is_file():
        return target
    unique = f"{name}-{key}.{os.getpid()}.{uuid.uuid4().hex}"
    source_path = directory / f"{unique}.c"
    source_path.write_text(source)
    partial = directory / f"{unique}.so"
    errors = []
    try:
        # OpenMP first; a compiler without it (e.g. clang without libomp) still builds a one-thread loop
        for extra in (["-fopenmp"], []):
            result = subprocess.run(
                [*command, *flags, *extra, "-o", str(partial), str(source_path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                os.replace(partial, target)  # atomic: other processes see the whole library or none
                return target
            errors.append(result.stderr.strip())
    finally:
        source_path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    raise CompileError(f"{' '.join(command)} failed: {errors[0][:2000]}")


def load_library(source: str, name: str) -> ctypes.CDLL:
    """The shared library built from the C ``source`` (cached on disk like the traced kernels).

    For kernels written by hand in C, whose loops a traced elementwise body cannot
    express (block-wise reductions, see :mod:`optforge.optimizers.block_kernels`).

    Raises:
        CompileError: no C compiler, or it rejected the source.
    """
    path = _build(source, name)
    try:
        return ctypes.CDLL(str(path))
    except OSError:  # a damaged cache entry: build it again
        path.unlink(missing_ok=True)
        return ctypes.CDLL(str(_build(source, name)))


class NativeKernel:
    """A loaded C kernel: ``kernel(tensor_lists, scalars)`` updates contiguous CPU tensors of one dtype.

    ``tensor_lists[k][t]`` is argument ``k`` of the kernel for tensor ``t``; the
    tensors of one ``t`` have the same number of elements. All of them are
    updated in one call, on ``torch.get_num_threads()`` threads.
    """

    def __init__(self, function: Callable[..., None]) -> None:
        self._function = function

    def __call__(self, tensor_lists: Sequence[Sequence[Tensor]], scalars: Tensor) -> None:
        pointers = array("q", [t.data_ptr() for tensors in tensor_lists for t in tensors])
        sizes = array("q", [t.numel() for t in tensor_lists[0]])
        self._function(
            len(sizes),
            pointers.buffer_info()[0],
            sizes.buffer_info()[0],
            scalars.data_ptr(),
            torch.get_num_threads(),
        )


_LOADED: dict[tuple[Callable[..., None], torch.dtype], NativeKernel] = {}
_LOCK = threading.Lock()


def native_kernel(kernel: Callable[..., None], dtype: torch.dtype) -> NativeKernel:
    """``kernel`` built for CPU tensors of ``dtype`` (once per process; from the disk cache when it is there).

    Raises:
        CompileError: no C compiler, or it rejected the kernel.
    """
    key = (kernel, dtype)
    loaded = _LOADED.get(key)
    if loaded is not None:
        return loaded
    with _LOCK:
        if key not in _LOADED:
            arity = kernel.__code__.co_argcount - 1
            name = f"optforge_{kernel.__name__.strip('_')}_{str(dtype).removeprefix('torch.')}"
            source = c_source(kernel, arity, dtype, name)
            library = load_library(source, name)
            function = getattr(library, name)
            function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
            function.restype = None
            _LOADED[key] = NativeKernel(function)
    return _LOADED[key]
