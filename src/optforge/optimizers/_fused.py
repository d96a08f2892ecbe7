"""Single-pass ("fused") elementwise updates built with ``torch.compile``.

Each optimizer writes its whole update for one tensor as one elementwise
function ``kernel(*tensors, scalars)`` that assigns its results with ``copy_``.
:func:`apply_fused` compiles it once per dtype (shapes are dynamic, so every
1-D size shares one graph) and calls it on

* each large contiguous tensor, flattened, so the update reads and writes
  every element once, near memory bandwidth;
* all small tensors of one dtype at once, because per-call overhead, not
  bandwidth, bounds small tensors. Parameters and gradients are concatenated
  into flat buffers (and parameters copied back); the optimizer's own state
  tensors are re-homed once into one flat buffer (``Tensor.set_``, so the
  tensors in ``optimizer.state`` stay the same objects) and updated in place.

Hyperparameters travel in the ``scalars`` tensor, so a new learning rate never
triggers a recompile. Non-contiguous tensors go through an eager fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch._C._nn import flatten_dense_tensors as _flatten_dense_tensors
from torch._C._nn import unflatten_dense_tensors as _unflatten_dense_tensors

__all__ = ["SMALL_NUMEL", "apply_fused", "scalar_tensor"]

# Tensors below this many elements are grouped into flat buffers...
SMALL_NUMEL = 1 << 16
# ...of at most this many elements, which bounds the temporary memory and keeps
# each batch in cache between gathering it and updating it.
BATCH_NUMEL = 1 << 18

_COMPILED: dict[Callable[..., None], Callable[..., None]] = {}


def _compiled(kernel: Callable[..., None]) -> Callable[..., None]:
    fn = _COMPILED.get(kernel)
    if fn is None:
        fn = torch.compile(kernel, dynamic=True, fullgraph=True)
        _COMPILED[kernel] = fn
    return fn


def scalar_tensor(values: Sequence[float], like: Tensor) -> Tensor:
    """Hyperparameters as one tensor: float64 for float64 tensors, else float32 (the CPU opmath type)."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.tensor(list(values), dtype=dtype, device=like.device)


def _flat_alias(tensors: Sequence[Tensor]) -> Tensor | None:
    """A 1-D tensor aliasing ``tensors`` when they lie back to back in one storage, else None."""
    first = tensors[0]
    storage = first.untyped_storage()
    size = first.element_size()
    expected = first.data_ptr()
    for t in tensors:
        if t.data_ptr() != expected:
            return None
        expected += t.numel() * size
    start = first.storage_offset()
    if (start + (expected - first.data_ptr()) // size) * size > storage.nbytes():
        return None
    flat = first.new_empty(0)
    return flat.set_(storage, start, ((expected - first.data_ptr()) // size,), (1,))


def _rehome(tensors: Sequence[Tensor]) -> Tensor:
    """Move ``tensors`` into one new flat buffer, keeping the tensor objects; return the buffer."""
    flat = _flatten_dense_tensors(list(tensors))
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
        written: Which lists the kernel writes (copied back for grouped tensors).
        make_scalars: Builds the scalars tensor for a representative tensor (dtype, device).
        fallback: Eager update for tensors the kernel cannot take (non-contiguous).
        owned: Lists of optimizer state, which may be moved into flat buffers.
    """
    compiled = _compiled(kernel)
    eager: list[int] = []
    small: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    scalars: dict[tuple[torch.dtype, torch.device], Tensor] = {}
    firsts = tensor_lists[0]
    numels = [t.numel() for t in firsts]
    uniform = (
        all(all(map(Tensor.is_contiguous, tl)) for tl in tensor_lists)
        and len({t.dtype for tl in tensor_lists for t in tl}) == 1
        and len({t.device for t in firsts}) == 1
    )
    for i, numel in enumerate(numels):
        if numel == 0:
            continue
        if not uniform:  # the common case skips these per-tensor checks
            tensors = [tl[i] for tl in tensor_lists]
            if not all(t.is_contiguous() for t in tensors) or any(t.dtype != firsts[i].dtype for t in tensors):
                eager.append(i)
                continue
        key = (firsts[i].dtype, firsts[i].device)
        if numel >= SMALL_NUMEL:
            if key not in scalars:
                scalars[key] = make_scalars(firsts[i])
            compiled(*(tl[i].view(-1) for tl in tensor_lists), scalars[key])
        else:
            small.setdefault(key, []).append(i)
    for key, indices in _batches(small, tensor_lists[0]):
        if sum(numels[i] for i in indices) < 2:  # size 0/1 would need graphs of their own
            eager.extend(indices)
            continue
        flats: list[Tensor] = []
        for position, tl in enumerate(tensor_lists):
            members = [tl[i] for i in indices]
            flat = _flat_alias(members) if position in owned else None
            if flat is None:
                flat = _rehome(members) if position in owned else _flatten_dense_tensors(members)
            flats.append(flat)
        if key not in scalars:
            scalars[key] = make_scalars(flats[0])
        compiled(*flats, scalars[key])
        for w in written:
            if w not in owned:
                members = [tensor_lists[w][i] for i in indices]
                torch._foreach_copy_(members, _unflatten_dense_tensors(flats[w], members))
    if eager:
        fallback([[tl[i] for i in sorted(eager)] for tl in tensor_lists])


def lerp(start: Tensor, end: Tensor, weight: Tensor) -> Tensor:
    """``torch.lerp``'s formula (exact at both ends) with a 0-d tensor weight of another dtype."""
    diff = end - start
    return torch.where(weight.abs() < 0.5, start + weight * diff, end - diff * (1 - weight))
