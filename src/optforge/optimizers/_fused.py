"""Single-pass ("fused") elementwise updates, and when to use them.

Each optimizer writes its whole update for one tensor as one elementwise
function ``kernel(*tensors, scalars)`` in torch operations that assigns its
results with ``copy_``. :func:`apply_fused` builds it once per dtype and runs it
by the backend of the device type (:data:`_BACKENDS`):

* CPU: the function is traced into a C loop that the system compiler builds in
  a fraction of a second (:mod:`optforge.optimizers._native`); one call updates
  every tensor of the step in place, the threads splitting the concatenated
  elements evenly, so each element is read and written once, with no gathering.
* CUDA: ``torch.compile`` generates a Triton kernel (shapes are dynamic, so every
  1-D size shares one graph), called on each large tensor and on batches of
  small tensors of one dtype, because per-call overhead, not bandwidth, bounds
  small tensors. Parameters and gradients are gathered into buffers allocated
  once (and parameters written back); the optimizer's own state tensors are
  re-homed once into one flat buffer per batch (``Tensor.set_``, so the tensors
  in ``optimizer.state`` stay the same objects) and updated in place. This split
  is planned once and reused while the same parameter and state tensors come back.

Hyperparameters travel in the ``scalars`` tensor, so a new learning rate never
triggers a rebuild. Tensors the kernel cannot take (non-contiguous, a dtype
without a kernel) go through the eager single-tensor update, and so does
everything when building fails.

:func:`select_path` decides which implementation a step uses; with no flag set
it picks the fused one where kernels can be built and the tensors are large
enough to repay building them (:data:`AUTO_FUSED_MIN_NUMEL`).
"""

from __future__ import annotations

import os
import sys
import types
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.graph import increment_version

from optforge.optimizers import _native

__all__ = [
    "AUTO_FUSED_DTYPES",
    "AUTO_FUSED_MIN_NUMEL",
    "FUSED_DTYPES",
    "SMALL_NUMEL",
    "StepPath",
    "apply_fused",
    "compile_kernel",
    "compile_problem",
    "flatten",
    "scalar_tensor",
    "select_path",
]

# The torch.compile backend groups tensors below this many elements into flat buffers...
SMALL_NUMEL = 1 << 16
# ...of at most this many elements: the size of the gather buffers, allocated
# once per optimizer (2 MiB for float32 parameters and gradients together).
# Fewer, larger batches mean fewer compiled calls (inductor's CPU kernels on
# 2,000 tensors of 4,096 elements: 2^16 -> 1.29x, 2^17 -> 1.15x, 2^18 -> 1.05x,
# 2^19 -> 1.05x the time of torch's fused AdamW, one thread).
BATCH_NUMEL = 1 << 18
#: With no flag set, the fused path is chosen for a param group of at least this
#: many elements, per device type: enough for the kernels to repay building them.
#: A CPU kernel builds in about 0.1 s, once per machine (then it loads from the
#: disk cache in milliseconds); at 65,536 float32 elements (one tensor, or 16 of
#: 4,096) a fused step of Lion, Schedule-Free SGD or AdamW takes 0.24-0.48x the
#: time of the eager loop (2 threads). On CUDA, ``torch.compile``
#: costs seconds once per process (less with a warm inductor cache), which a
#: step over 4M elements repays at once.
AUTO_FUSED_MIN_NUMEL: dict[str, int] = {"cpu": 1 << 16, "cuda": 1 << 22}
#: Dtypes the compiled kernels are built for.
FUSED_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
#: Dtypes for which the fused path is chosen automatically. Its results agree
#: with the eager paths' within rounding, not bit for bit, so float64, used where
#: exact reproduction matters, keeps the eager path unless ``fused=True``.
AUTO_FUSED_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32})


class StepPath(NamedTuple):
    """Which implementation an optimizer step uses, and why.

    ``name`` is ``"fused"`` (one compiled pass per tensor or batch of small
    tensors), ``"foreach"`` (torch's multi-tensor kernels) or ``"single"`` (a
    loop of per-tensor operations); ``"mixed"`` when param groups differ.
    """

    name: str
    reason: str


# ---------------------------------------------------------------- choosing the path
# Device type -> why building a kernel failed in this process; the fused path is not used again there.
_FAILED: dict[str, str] = {}


def _compile_disabled() -> str | None:
    """Why the user has turned JIT compilation off, or ``None``; does not import torch._dynamo for it."""
    if os.environ.get("TORCH_COMPILE_DISABLE", "0") == "1":
        return "torch.compile is disabled (TORCH_COMPILE_DISABLE=1)"
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None and dynamo.config.disable:
        return "torch.compile is disabled (torch._dynamo.config.disable)"
    return None


def compile_problem(device_type: str) -> str | None:
    """Why fused kernels cannot be built for ``device_type`` in this process, or ``None``.

    Example:
        >>> compile_problem("mps")
        "no fused kernels for device type 'mps'"
    """
    if device_type not in _BACKENDS:
        return f"no fused kernels for device type {device_type!r}"
    if device_type in _FAILED:
        return _FAILED[device_type]
    disabled = _compile_disabled()
    if disabled is not None:
        return disabled
    if device_type == "cpu":
        return _native.compiler_problem()
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python or platform"
    from torch.utils._triton import has_triton

    return None if has_triton() else "Triton, which torch.compile needs for CUDA, is not installed"


def _in_storage(cls: type) -> bool:
    """Whether tensors of class ``cls`` hold their elements in storage of their own.

    Subclasses that dispatch operations themselves (DTensor, the parameters of
    FSDP2, and other wrapper tensors) have no data pointer a kernel could use.
    """
    return cls.__torch_dispatch__ is Tensor.__torch_dispatch__


def _unsuitable(params: Sequence[Tensor]) -> str | None:
    """Why ``params`` should not take the fused path automatically, or ``None``."""
    if not params:
        return "no parameters"
    device_types = set()
    numel = 0
    for p in params:
        if p.is_complex():
            return "complex parameters"
        if p.layout != torch.strided:
            return f"{p.layout} parameters"
        if not _in_storage(type(p)):
            return f"{type(p).__name__} parameters"
        if p.dtype not in AUTO_FUSED_DTYPES:
            return f"{str(p.dtype).removeprefix('torch.')} parameters"
        device_types.add(p.device.type)
        if p.is_contiguous():
            numel += p.numel()
    if "meta" in device_types:
        return "meta tensors"
    threshold = max(AUTO_FUSED_MIN_NUMEL.get(device_type, 0) for device_type in device_types)
    if numel < threshold:
        return f"{numel:,} elements, fewer than the {threshold:,} that repay building kernels"
    for device_type in sorted(device_types):
        problem = compile_problem(device_type)
        if problem is not None:
            return problem
    return None


def select_path(params: Sequence[Tensor], foreach: bool | None, fused: bool | None, default: str) -> StepPath:
    """The implementation a step over ``params`` uses, given the ``foreach`` / ``fused`` flags.

    An explicit flag wins (``fused=True`` falls back to the multi-tensor code
    inside a ``torch.compile`` graph, which traces it instead). With neither
    flag set: the fused path when :func:`compile_problem` finds nothing in the
    way and the group has at least :data:`AUTO_FUSED_MIN_NUMEL` contiguous
    elements, all of them float32, bfloat16 or float16, else ``default`` (``"foreach"`` or ``"single"``,
    torch.optim's choice for the device).

    Example:
        >>> select_path([torch.zeros(3)], None, None, "single")
        StepPath(name='single', reason='automatic: 3 elements, fewer than the 65,536 that repay building kernels')
        >>> select_path([torch.zeros(3)], None, False, "single").reason
        'fused=False'
    """
    compiling = bool(torch.compiler.is_compiling())
    if fused:
        if compiling:
            return StepPath("foreach", "fused=True inside torch.compile: the multi-tensor code is traced")
        return StepPath("fused", "fused=True")
    if foreach is not None:
        return StepPath("foreach" if foreach else "single", f"foreach={foreach}")
    if fused is not None:
        return StepPath(default, "fused=False")
    if compiling:
        return StepPath("foreach", "automatic: inside torch.compile the multi-tensor code is traced")
    problem = _unsuitable(params)
    if problem is not None:
        return StepPath(default, f"automatic: {problem}")
    numel = sum(p.numel() for p in params)
    return StepPath("fused", f"automatic: {numel:,} elements and kernels that build")


def combine(paths: Sequence[StepPath]) -> StepPath:
    """One :class:`StepPath` for several param groups (``"mixed"`` when they differ).

    Example:
        >>> combine([StepPath("fused", "fused=True"), StepPath("single", "foreach=False")]).name
        'mixed'
    """
    if not paths:
        return StepPath("single", "no param groups")
    if len(set(paths)) == 1:
        return paths[0]
    if len({path.name for path in paths}) == 1:
        return StepPath(paths[0].name, "; ".join(f"group {i}: {p.reason}" for i, p in enumerate(paths)))
    return StepPath("mixed", "; ".join(f"group {i}: {p.name} ({p.reason})" for i, p in enumerate(paths)))


# ---------------------------------------------------------------- building kernels
def _fail(device_type: str, error: Exception) -> None:
    """Turn the fused path off for ``device_type`` in this process, and say why."""
    _FAILED[device_type] = f"building kernels failed in this process ({type(error).__name__})"
    warnings.warn(
        f"optforge: building a fused kernel failed ({type(error).__name__}: {str(error)[:300]}); "
        f"the optimizers use their eager implementations on {device_type} from now on",
        RuntimeWarning,
        stacklevel=5,
    )


def compile_kernel(kernel: Callable[..., None], name: str) -> Callable[..., None]:
    """``kernel`` under a code object of its own named ``name``, compiled by ``torch.compile``.

    Each gets a code object of its own, so torch.compile's recompile limit,
    which counts graphs per code object, never trips however many dtypes,
    devices and optimizers a process uses. Shapes are dynamic, so every 1-D
    size shares one graph.
    """
    code = kernel.__code__.replace(co_name=name, co_qualname=name)
    clone = types.FunctionType(code, kernel.__globals__, name, kernel.__defaults__, kernel.__closure__)
    return torch.compile(clone, dynamic=True, fullgraph=True)


_COMPILED: dict[tuple[Callable[..., None], torch.dtype, str], Callable[..., None]] = {}


def _compiled(kernel: Callable[..., None], dtype: torch.dtype, device_type: str) -> Callable[..., None]:
    """``kernel`` compiled by ``torch.compile`` for one dtype and device type, once per process."""
    key = (kernel, dtype, device_type)
    fn = _COMPILED.get(key)
    if fn is None:
        fn = _COMPILED[key] = compile_kernel(
            kernel, f"{kernel.__name__}_{str(dtype).removeprefix('torch.')}_{device_type}"
        )
    return fn


def _run_compiled(kernel: Callable[..., None], tensors: Sequence[Tensor], scalars: Tensor) -> bool:
    """Run the compiled ``kernel``; ``False`` (and the fused path off for the device) if compiling fails."""
    device_type = tensors[0].device.type
    if device_type in _FAILED:
        return False
    try:
        # 1-D aliases that are not views and do not require grad: one graph serves every tensor and flat buffer
        _compiled(kernel, tensors[0].dtype, device_type)(*[_alias_1d(t) for t in tensors], scalars)
    except Exception as error:  # a compiler or backend failure happens before any tensor is written
        _fail(device_type, error)
        return False
    return True


def scalar_tensor(values: Sequence[float], like: Tensor) -> Tensor:
    """Hyperparameters as one tensor: float64 for float64 tensors, else float32 (the CPU opmath type)."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.tensor(list(values), dtype=dtype, device=like.device)


# ---------------------------------------------------------------- flat buffers
def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """The elements of contiguous ``tensors`` (one dtype and device) concatenated into a new 1-D tensor.

    Example:
        >>> flatten([torch.ones(2, 2), torch.zeros(1)])
        tensor([1., 1., 1., 1., 0.])
    """
    return torch.cat([t.view(-1) for t in tensors])


def unflatten_into(flat: Tensor, tensors: Sequence[Tensor]) -> None:
    """Copy consecutive pieces of ``flat`` back into ``tensors`` (the inverse of :func:`flatten`).

    Example:
        >>> a, b = torch.zeros(2, 2), torch.zeros(1)
        >>> unflatten_into(torch.arange(5.0), [a, b])
        >>> a, b
        (tensor([[0., 1.],
                [2., 3.]]), tensor([4.]))
    """
    pieces = torch.split(flat, [t.numel() for t in tensors])
    torch._foreach_copy_(list(tensors), [piece.view_as(t) for piece, t in zip(pieces, tensors)])


def _alias_1d(t: Tensor, numel: int | None = None) -> Tensor:
    """A 1-D tensor over the first ``numel`` (default all) elements of contiguous ``t``: not a view, no grad."""
    count = t.numel() if numel is None else numel
    return t.new_empty(0).set_(t.untyped_storage(), t.storage_offset(), (count,), (1,))


def _flat_alias(tensors: Sequence[Tensor]) -> Tensor | None:
    """A 1-D tensor aliasing ``tensors`` when they lie back to back in one storage, else None."""
    first = tensors[0]
    storage = first.untyped_storage()
    size = first.element_size()
    expected = first.data_ptr()
    for t in tensors:
        if t.data_ptr() != expected or t.untyped_storage().data_ptr() != storage.data_ptr():
            return None
        expected += t.numel() * size
    start = first.storage_offset()
    count = (expected - first.data_ptr()) // size
    if (start + count) * size > storage.nbytes():
        return None
    return first.new_empty(0).set_(storage, start, (count,), (1,))


def _rehome(tensors: Sequence[Tensor]) -> Tensor:
    """Move ``tensors`` into one new flat buffer, keeping the tensor objects; return the buffer."""
    flat = flatten(tensors)
    storage, offset = flat.untyped_storage(), 0
    for t in tensors:
        t.set_(storage, offset, t.size(), t.stride())
        offset += t.numel()
    return flat


def _batches(
    small: dict[tuple[torch.dtype, torch.device], list[int]], tensors: Sequence[Tensor]
) -> list[tuple[tuple[torch.dtype, torch.device], list[int]]]:
    """Split each group of small-tensor indices into runs of at most ``BATCH_NUMEL`` elements."""
    out: list[tuple[tuple[torch.dtype, torch.device], list[int]]] = []
    for key, indices in small.items():
        batch: list[int] = []
        total = 0
        for i in indices:
            numel = tensors[i].numel()
            if batch and total + numel > BATCH_NUMEL:
                out.append((key, batch))
                batch, total = [], 0
            batch.append(i)
            total += numel
        out.append((key, batch))
    return out


@dataclass
class _Plan:
    """How one step splits its tensors: large ones, batches of small ones (with their state buffers), the rest."""

    ids: tuple[int, ...]  # the parameters and state tensors the plan was made for
    dtype: torch.dtype | None  # the one dtype of every tensor, None when they differ
    large: list[int] = field(default_factory=list)
    # (indices, flat state buffers by list position, sizes when every tensor is 1-D, else None)
    batches: list[tuple[list[int], dict[int, Tensor], list[int] | None]] = field(default_factory=list)
    eager: list[int] = field(default_factory=list)
    # reused buffers that parameters and gradients of a batch are gathered into, by (list position, dtype, device)
    workspace: dict[tuple[int, torch.dtype, torch.device], Tensor] = field(default_factory=dict)
    capacity: int = 0  # elements of the largest batch
    # per (batch, list position): the gather buffer it was split over and its 1-D pieces, one per tensor
    pieces: dict[tuple[int, int], tuple[int, tuple[Tensor, ...]]] = field(default_factory=dict)

    def pieces_of(self, batch: int, position: int, flat: Tensor, sizes: list[int]) -> tuple[Tensor, ...]:
        """``flat`` split into ``sizes``, made once per batch while the gather buffer stays the same."""
        key = (batch, position)
        cached = self.pieces.get(key)
        if cached is None or cached[0] != flat.data_ptr():
            cached = self.pieces[key] = (flat.data_ptr(), torch.split(flat, sizes))
        return cached[1]

    def gather(self, position: int, members: list[Tensor], flat_1d: bool) -> Tensor:
        """``members`` concatenated into this plan's buffer for ``position`` (no allocation after the first step)."""
        first = members[0]
        key = (position, first.dtype, first.device)
        numel = sum(t.numel() for t in members)
        buffer = self.workspace.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = self.workspace[key] = first.new_empty(max(numel, self.capacity))
        out = _alias_1d(buffer, numel)
        torch.cat(members if flat_1d else [t.view(-1) for t in members], out=out)
        return out


# id of the first state tensor of an optimizer's state list -> (a reference to it, the plan of its last step);
# the entry goes when the tensor does
_PLANS: dict[int, tuple[weakref.ref[Tensor], _Plan]] = {}


def _stable_ids(tensor_lists: Sequence[Sequence[Tensor]], owned: Sequence[int]) -> tuple[int, ...]:
    return tuple(id(t) for position in (0, *owned) for t in tensor_lists[position])


def _uniform_dtype(tensor_lists: Sequence[Sequence[Tensor]]) -> torch.dtype | None:
    """The one dtype of all tensors if the kernels take it and them (plain, contiguous, one device); else None."""
    kinds = {(t.dtype, type(t)) for tl in tensor_lists for t in tl}
    dtypes = {dtype for dtype, _ in kinds}
    if (
        len(dtypes) == 1
        and dtypes <= FUSED_DTYPES
        and all(_in_storage(cls) for _, cls in kinds)
        and all(all(map(Tensor.is_contiguous, tl)) for tl in tensor_lists)
        and len({t.device for t in tensor_lists[0]}) == 1
    ):
        return next(iter(dtypes))
    return None


def _kernel_takes(tensors: Sequence[Tensor]) -> bool:
    """Whether a kernel can update one parameter's ``tensors``: one fused dtype and device, plain, contiguous."""
    first = tensors[0]
    return first.dtype in FUSED_DTYPES and all(
        t.dtype == first.dtype and t.device == first.device and t.is_contiguous() and _in_storage(type(t))
        for t in tensors
    )


def _make_plan(tensor_lists: Sequence[Sequence[Tensor]], owned: Sequence[int], dtype: torch.dtype | None) -> _Plan:
    """Classify every index; move the small tensors' state into one flat buffer per batch."""
    plan = _Plan(_stable_ids(tensor_lists, owned), dtype)
    firsts = tensor_lists[0]
    small: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, first in enumerate(firsts):
        numel = first.numel()
        if numel == 0:
            continue
        if dtype is None and not _kernel_takes([tl[i] for tl in tensor_lists]):  # the common case skips the checks
            plan.eager.append(i)
            continue
        if numel >= SMALL_NUMEL:
            plan.large.append(i)
        else:
            small.setdefault((first.dtype, first.device), []).append(i)
    for _, indices in _batches(small, firsts):
        if sum(firsts[i].numel() for i in indices) < 2:  # size 0/1 would need graphs of their own
            plan.eager.extend(indices)
            continue
        buffers = {}
        for position in owned:
            members = [tensor_lists[position][i] for i in indices]
            buffers[position] = _flat_alias(members)
            if buffers[position] is None:
                buffers[position] = _rehome(members)
        flat = all(firsts[i].dim() == 1 for i in indices)
        plan.batches.append((indices, buffers, [firsts[i].numel() for i in indices] if flat else None))
        plan.capacity = max(plan.capacity, sum(firsts[i].numel() for i in indices))
    return plan


def _plan(tensor_lists: Sequence[Sequence[Tensor]], owned: Sequence[int]) -> _Plan:
    """The plan of the previous step when the same tensors come back (the usual case), else a new one."""
    anchor = tensor_lists[owned[0]][0] if owned and tensor_lists[owned[0]] else None
    entry = _PLANS.get(id(anchor)) if anchor is not None else None
    cached = entry[1] if entry is not None and entry[0]() is anchor else None
    if cached is not None and cached.dtype is not None and cached.ids == _stable_ids(tensor_lists, owned):
        # parameters and state are the ones planned for: only the gradients are new
        changing = [tl for position, tl in enumerate(tensor_lists) if position != 0 and position not in owned]
        if all({t.dtype for t in tl} == {cached.dtype} and all(map(Tensor.is_contiguous, tl)) for tl in changing):
            return cached
    dtype = _uniform_dtype(tensor_lists)
    plan = _make_plan(tensor_lists, owned, dtype)
    if anchor is not None and dtype is not None:
        if entry is None or entry[0]() is not anchor:
            weakref.finalize(anchor, _PLANS.pop, id(anchor), None)
        _PLANS[id(anchor)] = (weakref.ref(anchor), plan)
    return plan


@dataclass(frozen=True)
class _Step:
    """The work of one fused step (see :func:`apply_fused` for the fields)."""

    kernel: Callable[..., None]
    tensor_lists: Sequence[Sequence[Tensor]]
    written: Sequence[int]
    make_scalars: Callable[[Tensor], Tensor]
    owned: Sequence[int]


def _apply_native(step: _Step) -> list[int]:
    """CPU: every tensor the kernel takes, in one call of its C loop per dtype; the indices left to the eager update."""
    tensor_lists = step.tensor_lists
    by_dtype: dict[torch.dtype, list[int] | None] = {}
    eager: list[int] = []
    dtype = _uniform_dtype(tensor_lists)
    if dtype is not None:
        by_dtype[dtype] = None  # every index
    else:
        for i, first in enumerate(tensor_lists[0]):
            if first.device.type == "cpu" and _kernel_takes([tl[i] for tl in tensor_lists]):
                by_dtype.setdefault(first.dtype, []).append(i)
            else:
                eager.append(i)
    for dtype, indices in by_dtype.items():
        lists = tensor_lists if indices is None else [[tl[i] for i in indices] for tl in tensor_lists]
        try:
            update = _native.native_kernel(step.kernel, dtype)
        except Exception as error:  # no compiler, or it failed: nothing has been written yet
            _fail("cpu", error)
            return list(range(len(tensor_lists[0])))
        update(lists, step.make_scalars(lists[0][0]))
    return eager


def _apply_compiled(step: _Step) -> list[int]:
    """torch.compile (CUDA): a call per large tensor and per batch of small ones; indices left to the eager update."""
    kernel, tensor_lists = step.kernel, step.tensor_lists
    plan = _plan(tensor_lists, step.owned)
    eager = list(plan.eager)
    scalars: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def scalars_for(like: Tensor) -> Tensor:
        key = (like.dtype, like.device)
        if key not in scalars:
            scalars[key] = step.make_scalars(like)
        return scalars[key]

    for i in plan.large:
        tensors = [tl[i] for tl in tensor_lists]
        if not _run_compiled(kernel, tensors, scalars_for(tensors[0])):
            eager.append(i)
    for batch, (indices, buffers, sizes) in enumerate(plan.batches):
        flats = [
            buffers[position]
            if position in buffers
            else plan.gather(position, [tl[i] for i in indices], sizes is not None)
            for position, tl in enumerate(tensor_lists)
        ]
        if not _run_compiled(kernel, flats, scalars_for(flats[0])):
            eager.extend(indices)
            continue
        for w in step.written:
            if w in buffers:
                continue
            if sizes is not None:
                pieces = plan.pieces_of(batch, w, flats[w], sizes)
                torch._foreach_copy_([tensor_lists[w][i] for i in indices], pieces)
            else:
                unflatten_into(flats[w], [tensor_lists[w][i] for i in indices])
    return eager


# How each device type runs a kernel over a step's tensors (others try torch.compile).
_BACKENDS: dict[str, Callable[[_Step], list[int]]] = {"cpu": _apply_native, "cuda": _apply_compiled}


def apply_fused(
    kernel: Callable[..., None],
    tensor_lists: Sequence[Sequence[Tensor]],
    written: Sequence[int],
    make_scalars: Callable[[Tensor], Tensor],
    fallback: Callable[[list[list[Tensor]]], None],
    owned: Sequence[int] = (),
) -> None:
    """Apply ``kernel`` to every index of ``tensor_lists`` (params, grads, states...).

    Args:
        kernel: ``kernel(*flat_tensors, scalars)``, updating in place with ``copy_``.
        tensor_lists: Lists of equal length; entry ``i`` of each belongs to one parameter.
        written: Which lists the kernel writes (copied back for gathered tensors).
        make_scalars: Builds the scalars tensor for a representative tensor (dtype, device).
        fallback: Eager update for tensors the kernel cannot take (non-contiguous,
            a dtype without a kernel, or all of them when building fails).
        owned: Lists of optimizer state, which may be moved into flat buffers (CUDA).
    """
    if not tensor_lists[0]:
        return
    device_type = tensor_lists[0][0].device.type
    if device_type in _FAILED:
        eager = list(range(len(tensor_lists[0])))
    else:
        with torch.no_grad():
            work = _Step(kernel, tensor_lists, written, make_scalars, owned)
            eager = _BACKENDS.get(device_type, _apply_compiled)(work)
        # the kernels write through raw pointers or aliases: count the writes as torch's in-place ops do,
        # so that autograd still notices a parameter changed under a pending backward
        increment_version([t for w in written for t in tensor_lists[w]])
    if eager:
        fallback([[tl[i] for i in sorted(eager)] for tl in tensor_lists])


def lerp(start: Tensor, end: Tensor, weight: Tensor) -> Tensor:
    """``torch.lerp``'s formula (exact at both ends) with a 0-d tensor weight of another dtype."""
    diff = end - start
    return torch.where(weight.abs() < 0.5, start + weight * diff, end - diff * (1 - weight))
