r"""Optimizer state in 8 bits or bfloat16: block-wise codes, stochastic rounding, and state loading.

A moment of a parameter with at least :data:`MIN_QUANTIZED_NUMEL` elements and
two or more dimensions is stored as 8-bit codes with one float32 scale per
block. The parameter is viewed as ``rows x cols`` (``cols`` the product of all
but the first dimension) and each row is cut into blocks of :data:`BLOCK`
elements, the last one shorter when ``cols`` is no multiple of it. Blocks never
cross a row, so sharding along the first dimension (FSDP2's) leaves every
block as it is, and the rule that decides what is quantized reads the whole
parameter's shape, not a shard's.

Two codes, both arithmetic (no table lookup):

* **signed linear** (first moment): ``code = x / absmax * 127`` in
  ``[-127, 127]`` (``int8``); absolute error at most ``absmax / 127`` per element
  with stochastic rounding, ``absmax / 254`` with rounding to nearest.
* **sqrt code** (second moment): ``w = sqrt(v)`` divided by the block's
  maximum (times 31/32) is stored as an unsigned 8-bit float with 4 exponent
  and 4 mantissa bits (``uint8``): relative error at most 1/16 (1/32 to
  nearest) for ``w`` down to ``2**-15`` of the block's maximum, absolute error
  at most ``2**-19`` of it below.

Stochastic rounding rounds up with probability ``(x - down) / (up - down)``,
so the stored value is unbiased. Its random numbers are a hash of
``(seed, step, tensor, element)`` (:func:`noise`): the same under
``torch.manual_seed`` on every run, every thread count and every sharding.
A block holding an infinity or NaN stores a NaN scale and reads back as NaN.

Example:
    >>> import torch
    >>> x = torch.linspace(-1, 1, 300).reshape(1, 300)
    >>> codes, scales = quantize_signed(x)
    >>> codes.dtype, tuple(scales.shape)
    (torch.int8, (1, 2))
    >>> bool((dequantize_signed(codes, scales) - x).abs().max() <= 1 / 254)
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from optforge.errors import ConfigError
from optforge.optimizers._common import CheckedStateLoading
from optforge.state_check import check_state_dict
from optforge.torch_internals import shard_offset

__all__ = [
    "BLOCK",
    "MIN_QUANTIZED_NUMEL",
    "PIECE_NUMEL",
    "PRECISIONS",
    "LowPrecisionState",
    "bf16_stochastic",
    "block_layout",
    "check_precision",
    "decode",
    "dequantize_signed",
    "dequantize_sqrt",
    "draw_seed",
    "encode",
    "init_moment",
    "is_quantized",
    "keeps_full_precision",
    "lerp_exact",
    "local_item",
    "local_shard",
    "noise",
    "quantize_signed",
    "quantize_sqrt",
    "read_moment",
    "row_pieces",
    "sqrt_exact",
    "stream_key",
    "write_moment",
]

#: Elements per block of a row.
BLOCK = 256
#: Parameters with fewer elements (or one dimension) keep full-precision moments under ``8bit``:
#: their scales and the per-tensor work would cost more than they save.
MIN_QUANTIZED_NUMEL = 4096
#: The values of ``state_precision``.
PRECISIONS = ("fp32", "bf16", "8bit")

_MASK = 0xFFFFFFFF
_SQRT_TOP = 31.0 / 32.0  # the largest value of the sqrt code: a block's maximum maps here
_SQRT_BIAS = 1776  # ((127 - 16) << 4): exponent offset between float32 bits and the code
_SUBNORMAL = 2.0**-15  # below this, the sqrt code is linear with step 2**-19


def check_precision(value: Any, *, allowed: tuple[str, ...] = PRECISIONS, why: str = "") -> str:
    """Raise ``ConfigError`` unless ``value`` is one of ``allowed``.

    Example:
        >>> check_precision("4bit")
        Traceback (most recent call last):
        ...
        optforge.errors.ConfigError: state_precision: must be one of fp32, bf16, 8bit, got '4bit'
    """
    if value not in allowed:
        raise ConfigError(f"must be one of {', '.join(allowed)}, got {value!r}{why}", path="state_precision")
    return str(value)


def draw_seed() -> int:
    """A seed for the stochastic rounding, drawn from torch's default generator (fixed by ``torch.manual_seed``)."""
    return int(torch.randint(0, 2**62, (1,)).item())


def keeps_full_precision(param: Tensor, precision: str) -> bool:
    """Whether ``param``'s moments stay in its own dtype (and take the full-precision update) under ``precision``.

    So they do under ``fp32``, for complex parameters (which a low-precision group refuses
    when it is added: the codes are real), and under ``8bit`` for parameters the size rule
    leaves unquantized.

    Example:
        >>> keeps_full_precision(torch.zeros(8192), "8bit"), keeps_full_precision(torch.zeros(8192), "bf16")
        (True, False)
    """
    return precision == "fp32" or param.is_complex() or (precision == "8bit" and not is_quantized(param, precision))


def is_quantized(param: Tensor, precision: str) -> bool:
    """Whether ``param``'s moments are stored as 8-bit codes under ``precision``.

    The rule reads the parameter's full shape (a DTensor's global one), so it is
    the same however the parameter is sharded.

    Example:
        >>> is_quantized(torch.zeros(1000, 1001), "8bit"), is_quantized(torch.zeros(8192), "8bit")
        (True, False)
    """
    return precision == "8bit" and param.dim() >= 2 and param.numel() >= MIN_QUANTIZED_NUMEL and not param.is_complex()


def block_layout(shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
    """``(rows, cols, blocks per row)`` of a tensor of ``shape``.

    Example:
        >>> block_layout((1000, 1001))
        (1000, 1001, 4)
    """
    rows = shape[0] if len(shape) else 1
    cols = math.prod(shape[1:]) if len(shape) > 1 else 1
    return rows, cols, -(-cols // BLOCK)


# ---------------------------------------------------------------- random numbers
def _mix32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def _mix32_(x: Tensor) -> Tensor:
    """:func:`_mix32` on an int64 tensor of values below 2**32 (in place)."""
    x.bitwise_xor_(x >> 16).mul_(0x7FEB352D).bitwise_and_(_MASK)
    x.bitwise_xor_(x >> 15).mul_(0x846CA68B).bitwise_and_(_MASK)
    return x.bitwise_xor_(x >> 16)


def stream_key(seed: int, step: int, tensor: int, stream: int) -> int:
    """The 32-bit key of one stream of random numbers: a hash of seed, step, tensor and stream.

    Example:
        >>> stream_key(0, 1, 0, 0) != stream_key(0, 2, 0, 0)
        True
    """
    x = _mix32((seed & _MASK) ^ _mix32((seed >> 32) & _MASK))
    x = _mix32(x ^ (step & _MASK))
    return _mix32(x ^ ((tensor * 4 + stream) & _MASK))


def noise(key: int, start: int, count: int, device: torch.device | str = "cpu") -> Tensor:
    """32-bit random numbers (int64) for elements ``start .. start + count - 1`` of the stream ``key``.

    Element ``i``'s number is ``mix32((i mod 2**32 xor key) + (i >> 32) * 0x9E3779B9)`` (mod
    ``2**32``), ``mix32`` a bijective 32-bit integer hash: one hash per element.

    Element ``i``'s number depends only on ``key`` and ``i``, so any piece of a
    tensor gets the numbers the whole tensor would. The C kernels compute the same.

    Example:
        >>> torch.equal(noise(7, 0, 10)[4:], noise(7, 4, 6))
        True
    """
    index = torch.arange(start, start + count, dtype=torch.int64, device=device)
    high = (index >> 32).mul_(0x9E3779B9)
    return _mix32_(index.bitwise_and_(_MASK).bitwise_xor_(key).add_(high).bitwise_and_(_MASK))


# ---------------------------------------------------------------- codes
def _blocks(x: Tensor) -> Tensor:
    """``x`` (rows x cols) padded with zeros to whole blocks, as (rows, blocks, BLOCK)."""
    rows, cols = x.shape
    pad = -cols % BLOCK
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.view(rows, -1, BLOCK)


def _scales(blocks: Tensor) -> tuple[Tensor, Tensor]:
    """Per-block maximum of ``|x|`` (NaN where a block holds an infinity or NaN), and whether it is finite."""
    amax = blocks.abs().amax(dim=-1)
    finite = torch.isfinite(amax)
    return torch.where(finite, amax, torch.nan), finite


def _inverse(scales: Tensor, finite: Tensor, top: float) -> Tensor:
    good = finite & (scales > 0)
    return torch.where(good, torch.div(torch.full_like(scales, top), scales), 0.0).unsqueeze(-1)


def quantize_signed(x: Tensor, random: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Codes (int8, shape of ``x``) and scales (float32, rows x blocks) of a float32 ``rows x cols`` tensor.

    ``random`` holds one 32-bit number per element (:func:`noise`): stochastic
    rounding; ``None`` rounds to nearest.
    """
    rows, cols = x.shape
    blocks = _blocks(x.float())
    scales, finite = _scales(blocks)
    y = blocks * _inverse(scales, finite, 127.0)
    y = torch.where(finite.unsqueeze(-1), y, 0.0).view(rows, -1)[:, :cols]
    u = 0.5 if random is None else (random.view(rows, cols) >> 8).float().mul_(2.0**-24)
    codes = torch.floor(y + u).clamp_(-127, 127).to(torch.int8)
    return codes, scales


def dequantize_signed(codes: Tensor, scales: Tensor) -> Tensor:
    """The float32 values of :func:`quantize_signed`'s codes."""
    cols = codes.shape[1]
    step = (scales / 127.0).repeat_interleave(BLOCK, dim=1)[:, :cols]
    return codes.float() * step


def quantize_sqrt(w: Tensor, random: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Codes (uint8) and scales of a non-negative float32 ``rows x cols`` tensor (the root of a second moment)."""
    rows, cols = w.shape
    blocks = _blocks(w.float())
    scales, finite = _scales(blocks)
    y = blocks * _inverse(scales, finite, _SQRT_TOP)
    y = torch.where(finite.unsqueeze(-1), y, 0.0).view(rows, -1)[:, :cols].contiguous()
    r = torch.full_like(y, 1 << 18, dtype=torch.int64) if random is None else random.view(rows, cols) >> 13
    linear = torch.floor(y * 2.0**19 + r.float() * 2.0**-19).to(torch.int64)
    bits = y.view(torch.int32).to(torch.int64)
    floating = ((bits + r) >> 19) - _SQRT_BIAS
    codes = torch.where(y < _SUBNORMAL, linear, floating).clamp_(0, 255).to(torch.uint8)
    return codes, scales


def dequantize_sqrt(codes: Tensor, scales: Tensor) -> Tensor:
    """The float32 values ``w`` of :func:`quantize_sqrt`'s codes."""
    cols = codes.shape[1]
    c = codes.to(torch.int32)
    floating = ((c + _SQRT_BIAS) << 19).view(torch.float32)
    value = torch.where(c < 16, c.float() * 2.0**-19, floating)
    step = (scales * (32.0 / 31.0)).repeat_interleave(BLOCK, dim=1)[:, :cols]
    return value * step


def bf16_stochastic(x: Tensor, random: Tensor) -> Tensor:
    """``x`` (float32) rounded to bfloat16, up with probability proportional to the distance to the lower value.

    Example:
        >>> x = torch.full((20000,), 1.0 + 2.0**-10)  # 1/8 of a bfloat16 ulp above 1
        >>> round(bf16_stochastic(x, noise(3, 0, x.numel())).float().mean().item(), 4)
        1.001
    """
    bits = x.float().contiguous().view(torch.int32).to(torch.int64).bitwise_and_(_MASK)
    rounded = ((bits + (random.view(x.shape) >> 16)) >> 16).bitwise_and_(0xFFFF) << 16
    signed = torch.where(rounded >= 1 << 31, rounded - (1 << 32), rounded).to(torch.int32)
    out = signed.view(torch.float32).to(torch.bfloat16)
    return torch.where(torch.isnan(x), x.to(torch.bfloat16), out)


# ---------------------------------------------------------------- state in an optimizer
class LowPrecisionState(CheckedStateLoading):
    """Mixin for optimizers whose moments may be stored in bfloat16 or as 8-bit codes.

    A subclass names its moments and their codes in ``MOMENTS`` (``"signed"``
    or ``"sqrt"``). Under ``state_precision: 8bit`` a quantized moment ``name``
    is stored as ``name_codes`` and ``name_scales``; every other moment keeps
    its name (bfloat16 under ``bf16``, float32 for parameters too small to
    quantize, the parameter's dtype under ``fp32``).

    ``load_state_dict`` keeps codes, scales and bfloat16 moments exactly as
    saved (torch's own loading would cast them to the parameter's dtype), and
    converts a state saved at another precision to this optimizer's: codes are
    decoded, moments are encoded rounding to nearest. ``state_precision`` is
    the loading optimizer's, not the saved one's.

    Groups at ``fp32`` hold only the optimizer's hyperparameters: a group
    gets ``state_precision`` and ``seed`` keys only when it keeps
    low-precision state, and no seed is drawn (torch's generator is left
    untouched) until one does.
    """

    MOMENTS: ClassVar[Mapping[str, str]] = {}
    #: Other per-parameter entries a saved state may hold (``step``).
    EXTRA_STATE: ClassVar[tuple[str, ...]] = ("step",)
    GROUP_KEYS: ClassVar[tuple[str, ...]] = ("lr",)
    #: Per-parameter tensors shaped like the parameter that every saved state holds (Schedule-Free's ``z``).
    REQUIRED_STATE: ClassVar[tuple[str, ...]] = ()
    state: Any
    param_groups: list[dict[str, Any]]

    @classmethod
    def state_bytes(cls, params: list[Tensor], precision: str) -> int:
        """Bytes of the moments (and ``z``) this optimizer keeps for ``params`` under ``precision``.

        Per-tensor step counters (4 bytes each) are not counted.

        Example:
            >>> from optforge.optimizers import AdamW
            >>> AdamW.state_bytes([torch.zeros(1024, 1024)], "8bit") / 2**20  # codes: 2 B, scales: 1/32 B
            2.03125
        """
        total = 0
        for p in params:
            for _ in cls.MOMENTS:
                if is_quantized(p, precision):
                    rows, _, blocks = block_layout(p.shape)
                    total += p.numel() + rows * blocks * 4
                else:
                    total += p.numel() * (p.element_size() if keeps_full_precision(p, precision) else 2)
            total += len(cls.REQUIRED_STATE) * p.numel() * p.element_size()
        return total

    def _precision_defaults(self, state_precision: Any, seed: int | None) -> dict[str, Any]:
        """The group defaults for ``state_precision`` and ``seed``: none at ``fp32``."""
        check_precision(state_precision)
        self._rounding_seed = None if seed is None else int(seed)
        if state_precision == "fp32":
            return {}
        return {"state_precision": state_precision, "seed": self._seed()}

    def _seed(self) -> int:
        if getattr(self, "_rounding_seed", None) is None:
            self._rounding_seed = draw_seed()
        return self._rounding_seed  # type: ignore[return-value]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group as the optimizer does, then check its ``state_precision``; a refused group is not kept."""
        super().add_param_group(param_group)  # type: ignore[misc]
        groups = self.param_groups  # type: ignore[attr-defined]
        try:
            self._check_group_precision(groups[-1])
        except ConfigError:
            groups.pop()
            raise

    def _check_group_precision(self, group: dict[str, Any]) -> None:
        """Refuse a group's bad ``state_precision`` (complex parameters keep fp32 state: the codes are real);
        give a low-precision group a seed."""
        precision = check_precision(group.get("state_precision", "fp32"))
        if precision == "fp32":
            return
        complex_params = [index for index, p in enumerate(group["params"]) if p.is_complex()]
        if complex_params:
            raise ConfigError(
                f"{precision} state holds real numbers, but params {complex_params[:5]} of this group are complex; "
                "use state_precision: fp32 for complex parameters (a param group of their own)",
                path="state_precision",
            )
        placed = [index for index, p in enumerate(group["params"]) if not _rows_shardable(p)]
        if placed:
            placements = list(group["params"][placed[0]].placements)
            raise ConfigError(
                f"{precision} state is kept in blocks of rows, but params {placed[:5]} of this group are DTensors "
                f"placed {placements}; shard them on dim 0 only (FSDP2's fully_shard) or replicate them",
                path="state_precision",
            )
        group.setdefault("seed", self._seed())

    def _moment_keys(self) -> set[str]:
        return {f"{name}{suffix}" for name in self.MOMENTS for suffix in ("", "_codes", "_scales")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Check ``state_dict``, load it, and bring its moments to this optimizer's precision.

        Raises:
            ConfigError: naming every mismatch, before anything is loaded.
        """
        plain = (*self.MOMENTS, *getattr(self, "_wrapper_state", ()))  # a ScheduleFreeWrapper's z
        check_state_dict(self, state_dict, self.REQUIRED_STATE, exact=False, group_keys=self.GROUP_KEYS, optional=plain)  # type: ignore[arg-type]
        self._check_codes(state_dict)
        own = [{k: group[k] for k in ("state_precision", "seed") if k in group} for group in self.param_groups]
        saved: dict[int, dict[str, Tensor]] = {}
        for saved_group, live in zip(state_dict["param_groups"], self.param_groups):
            for pid, param in zip(saved_group["params"], live["params"]):
                entry = state_dict["state"].get(pid, {})
                saved[id(param)] = {k: v for k, v in entry.items() if k in self._moment_keys()}
        Optimizer.load_state_dict(self, state_dict)  # type: ignore[arg-type]  # checked above, in full
        for group, keys in zip(self.param_groups, own):
            precision = keys.get("state_precision", "fp32")
            if precision == "fp32":  # an fp32 group holds only hyperparameters, whatever was saved
                group.pop("seed", None)
                group.pop("state_precision", None)
                group.update(keys)
            else:  # the saved seed (a resumed run rounds as the original would), this optimizer's precision
                group["state_precision"] = precision
                group.setdefault("seed", keys["seed"])
            for param in group["params"]:
                state = self.state.get(param)
                if state:
                    for key, value in saved[id(param)].items():
                        state[key] = value.detach().to(device=param.device, copy=True)
                    self._convert(param, state, precision)

    def _check_codes(self, state_dict: dict[str, Any]) -> None:
        problems = []
        for saved_group, live in zip(state_dict["param_groups"], self.param_groups):
            for pid, param in zip(saved_group["params"], live["params"]):
                entry = state_dict["state"].get(pid) or {}
                for name, kind in self.MOMENTS.items():
                    problem = _code_problem(entry, name, kind, param)
                    if problem:
                        problems.append((f"state[{pid}].{name}", problem))
                known = self._moment_keys() | set(self.EXTRA_STATE) | set(getattr(self, "_wrapper_state", ()))
                extra = sorted(str(key) for key in set(entry) - known)
                if extra:
                    message = f"unexpected {', '.join(extra)}: the state of another optimizer?"
                    problems.append((f"state[{pid}]", message))
        if problems:
            raise ConfigError.from_problems(problems)

    def _convert(self, param: Tensor, state: dict[str, Any], precision: str) -> None:
        quantized = is_quantized(param, precision)
        for name, kind in self.MOMENTS.items():
            if f"{name}_codes" in state:
                if quantized:
                    continue
                codes, scales = state.pop(f"{name}_codes"), state.pop(f"{name}_scales")
                state[name] = decode(codes, scales, kind).view(param.shape)
            value = state.pop(name)
            if quantized:
                codes, scales = encode(value.float().reshape(block_layout(param.shape)[:2]), kind)
                state[f"{name}_codes"], state[f"{name}_scales"] = codes.view(param.shape), scales
            else:
                full = keeps_full_precision(param, precision)
                state[name] = value.to(param.dtype if full else torch.bfloat16)


def encode(x: Tensor, kind: str, random: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Codes and scales of a ``rows x cols`` moment (``kind`` ``"sqrt"``: a second moment, encoded as its root)."""
    return quantize_signed(x, random) if kind == "signed" else quantize_sqrt(sqrt_exact(x.clamp(min=0)), random)


def decode(codes: Tensor, scales: Tensor, kind: str) -> Tensor:
    """The float32 moment of :func:`encode`'s codes (shape ``rows x cols``)."""
    rows = scales.shape[0]
    flat = codes.reshape(rows, -1)
    return dequantize_signed(flat, scales) if kind == "signed" else dequantize_sqrt(flat, scales).square()


def _code_problem(entry: Mapping[str, Any], name: str, kind: str, param: Tensor) -> str | None:
    codes, scales = entry.get(f"{name}_codes"), entry.get(f"{name}_scales")
    if codes is None and scales is None:
        return None if name in entry or not entry else "missing (neither the moment nor its codes)"
    dtype = torch.int8 if kind == "signed" else torch.uint8
    rows, _, blocks = block_layout(param.shape)
    if not isinstance(codes, Tensor) or codes.dtype != dtype or codes.shape != param.shape:
        return f"codes must be a {dtype} tensor of shape {list(param.shape)}"
    if not isinstance(scales, Tensor) or scales.dtype != torch.float32 or tuple(scales.shape) != (rows, blocks):
        return f"scales must be a torch.float32 tensor of shape {[rows, blocks]}"
    if name in entry:
        return "holds both codes and a full-precision moment"
    return None


# ---------------------------------------------------------------- the eager update, a few rows at a time
#: Elements per piece of the eager update: its float32 temporaries stay a few MiB.
PIECE_NUMEL = 1 << 18


def init_moment(param: Tensor, state: dict[str, Any], name: str, kind: str, precision: str) -> None:
    """A zero moment ``name`` of ``param`` in ``state`` at ``precision`` (see :class:`LowPrecisionState`).

    A DTensor parameter gets DTensor moments placed as it is (scales too: their rows are the parameter's).
    """
    if is_quantized(param, precision):
        rows, _, blocks = block_layout(param.shape)
        dtype = torch.int8 if kind == "signed" else torch.uint8
        state[f"{name}_codes"] = torch.zeros_like(param, dtype=dtype, memory_format=torch.contiguous_format)
        local, _ = local_shard(param)
        scales = torch.zeros(local.shape[0], blocks, dtype=torch.float32, device=local.device)
        state[f"{name}_scales"] = _placed_like(param, scales, (rows, blocks))
    elif keeps_full_precision(param, precision):
        state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
    else:
        state[name] = torch.zeros_like(param, dtype=torch.bfloat16, memory_format=torch.contiguous_format)


def local_shard(tensor: Tensor) -> tuple[Tensor, int]:
    """``tensor``'s local part and the row of the whole tensor where it starts.

    A DTensor's local shard (``to_local()``, which shares its storage) and its global
    row offset; any other tensor, itself and 0.

    Example:
        >>> x = torch.zeros(4, 3)
        >>> local_shard(x)[0] is x, local_shard(x)[1]
        (True, 0)
    """
    offset = shard_offset(tensor)
    if offset is None:
        return tensor, 0
    return tensor.to_local(), offset[0] if offset else 0


def local_item(item: tuple[int, Tensor, Tensor, dict[str, Any]]) -> tuple[int, Tensor, Tensor, dict[str, Any], int]:
    """``(tensor, param, grad, state)`` of a step on local tensors, and the global index of its first element.

    For a DTensor parameter (sharded on dim 0): its shard, its gradient's and a dict of
    its state's shards (which share the DTensors' storage, so the update writes into
    them). The random numbers of its elements are then the ones of the whole tensor.
    A plain parameter comes back as it is, at index 0.
    """
    tensor, param, grad, state = item
    local, row = local_shard(param)
    if local is param:
        return tensor, param, grad, state, 0
    shards = {key: local_shard(value)[0] if isinstance(value, Tensor) else value for key, value in state.items()}
    return tensor, local, local_shard(grad)[0], shards, row * block_layout(param.shape)[1]


def _placed_like(param: Tensor, local: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``local`` as the local shard of a tensor of ``shape`` placed as DTensor ``param``; ``local`` for a plain one."""
    if shard_offset(param) is None:
        return local
    stride = tuple(math.prod(shape[i + 1 :]) for i in range(len(shape)))
    return type(param).from_local(
        local, param.device_mesh, param.placements, run_check=False, shape=torch.Size(shape), stride=stride
    )


def _rows_shardable(param: Tensor) -> bool:
    """Whether ``param`` is no DTensor, or one replicated or sharded on dim 0 (in whole rows) on every mesh dim."""
    if shard_offset(param) is None:
        return True
    return all(p.is_replicate() or (type(p).__name__ == "Shard" and p.is_shard(0)) for p in param.placements)


def sqrt_exact(x: Tensor) -> Tensor:
    """The correctly rounded square root of float32 ``x``, as C's ``sqrtf`` (torch's float32 CPU ``sqrt`` is not).

    Through float64, whose root rounds to the same float32 (53 >= 2 * 24 + 2 bits).

    Example:
        >>> sqrt_exact(torch.tensor([4.0, 2.0]))
        tensor([2.0000, 1.4142])
    """
    return x.double().sqrt_().float()


def lerp_exact(start: Tensor, end: Tensor, weight: float) -> Tensor:
    """torch's ``lerp`` (``start + w (end - start)``, or ``end - (1 - w) (end - start)`` for ``|w| >= 0.5``).

    One rounding per operation, as the C kernels compute it (torch's own kernel
    may fuse a multiply-add). Returns a new tensor.

    Example:
        >>> lerp_exact(torch.zeros(2), torch.ones(2), 0.25)
        tensor([0.2500, 0.2500])
    """
    diff = torch.sub(end, start)
    if abs(weight) < 0.5:
        return diff.mul_(weight).add_(start)
    complement = 1.0 - torch.tensor(weight, dtype=torch.float32)  # 1 - w in float32, as the kernels take it
    return diff.mul_(-complement.item()).add_(end)


def row_pieces(param: Tensor) -> list[tuple[int, int]]:
    """Row ranges of ``param`` (as ``rows x cols``) of about :data:`PIECE_NUMEL` elements, at least one row each."""
    rows, cols, _ = block_layout(param.shape)
    step = max(1, PIECE_NUMEL // max(cols, 1))
    return [(r, min(rows, r + step)) for r in range(0, rows, step)]


def read_moment(state: dict[str, Any], name: str, kind: str, rows: tuple[int, int], shape: torch.Size) -> Tensor:
    """Rows ``rows`` of moment ``name`` in float32 (a view of the state where it is float32 already)."""
    lo, hi = rows
    if f"{name}_codes" in state:
        r, cols, _ = block_layout(shape)
        codes = state[f"{name}_codes"].view(r, cols)[lo:hi]
        return decode(codes, state[f"{name}_scales"][lo:hi], kind)
    value = state[name].view(block_layout(shape)[:2])[lo:hi]
    return value if value.dtype == torch.float32 else value.float()


def write_moment(
    state: dict[str, Any],
    name: str,
    kind: str,
    rows: tuple[int, int],
    shape: torch.Size,
    value: Tensor,
    random: Tensor | None,
    root: Tensor | None = None,
) -> None:
    """Store float32 ``value`` as rows ``rows`` of moment ``name``; ``root``: its square root, where computed.

    ``random`` (:func:`noise` of the rows' elements) rounds stochastically; ``None`` to nearest.
    """
    lo, hi = rows
    r, cols, _ = block_layout(shape)
    if f"{name}_codes" in state:
        if kind == "signed":
            codes, scales = quantize_signed(value, random)
        else:
            codes, scales = quantize_sqrt(sqrt_exact(value.clamp(min=0)) if root is None else root, random)
        state[f"{name}_codes"].view(r, cols)[lo:hi] = codes
        state[f"{name}_scales"][lo:hi] = scales
        return
    target = state[name].view(r, cols)[lo:hi]
    if target.dtype == torch.bfloat16 and random is not None:
        target.copy_(bf16_stochastic(value, random))
    elif target.data_ptr() != value.data_ptr():
        target.copy_(value)
