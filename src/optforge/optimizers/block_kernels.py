"""CPU kernels for low-precision optimizer state: decode, update and encode each block in one pass, in C.

A traced elementwise loop (:mod:`optforge.optimizers._native`) cannot take a
block's maximum before it writes the block's codes, so these loops are written
by hand. Each kernel walks the blocks of every tensor of a step (the threads
split the blocks evenly), and per block: decodes the moments
(:mod:`optforge.optimizers.low_precision`), computes the update in float32 in
the order the eager code does, keeps the new moments in a 256-element buffer
on the stack, takes their maximum, and writes the codes with stochastic
rounding. Nothing is allocated: a step reads and writes each parameter,
gradient and code once. The random numbers are the same hash as
:func:`~optforge.optimizers.low_precision.noise`.

Parameters must be contiguous float32 CPU tensors; the rest go through the
eager update.

Example:
    >>> kernels_problem() is None or "compiler" in kernels_problem()
    True
"""

from __future__ import annotations

import ctypes
import threading
from array import array
from collections.abc import Sequence

import torch
from torch import Tensor

from optforge.optimizers import _native
from optforge.optimizers.low_precision import BLOCK, block_layout

__all__ = ["BlockKernels", "kernels", "kernels_problem", "metadata"]

_SOURCE = r"""
#include <math.h>
#include <float.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#define BLOCK %(block)d
#define PARALLEL_MIN %(parallel_min)d

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16; return x;
}
// the random number of element first + j of stream key, in 32-bit lanes only (what the loops over a block vectorize)
static inline uint32_t noise_at(uint32_t key, uint64_t first, uint32_t j) {
    const uint32_t low = (uint32_t)first + j;
    const uint32_t high = (uint32_t)(first >> 32) + (uint32_t)(low < (uint32_t)first);
    return mix32((low ^ key) + high * 0x9e3779b9u);
}
// unions, not memcpy: GCC vectorizes loops through these
static inline float f_of(uint32_t u) { union { uint32_t u; float f; } c = { u }; return c.f; }
static inline uint32_t u_of(float f) { union { float f; uint32_t u; } c = { f }; return c.u; }
static inline float sqrt_value(uint8_t c) {
    const uint32_t u = c, small = -(uint32_t)(u < 16u);
    const float linear = (float)(int32_t)u * 0x1p-19f, floating = f_of((u + 1776u) << 19);
    return f_of((u_of(linear) & small) | (u_of(floating) & ~small));
}
// y in [0, 1] (a block's root over its maximum), r: 19 random bits (the rounding offset in units of
// 2**-19 of the code's step). Integer compare and masks, not a select: GCC vectorizes this form.
static inline uint8_t sqrt_code(float y, uint32_t r) {
    const uint32_t bits = u_of(y) & 0x7fffffffu;
    const int32_t li = (int32_t)(y * 0x1p19f + (float)(int32_t)r * 0x1p-19f);  // y >= 0: truncation is floor
    const int32_t fl = (int32_t)((bits + r) >> 19) - 1776;
    const int32_t small = -(int32_t)(bits < 0x38000000u);  // y < 2**-15
    int32_t c = (li & small) | (fl & ~small);
    c = c > 255 ? 255 : c;
    c = c < 0 ? 0 : c;
    return (uint8_t)c;
}
// y in [-127, 127], r: a random number whose top 24 bits are the rounding offset
static inline int8_t signed_code(float y, uint32_t r) {
    const float x = y + (float)(int32_t)(r >> 8) * 0x1p-24f;
    int32_t q = (int32_t)x;
    q -= (int32_t)((float)q > x);  // floor (floorf does not vectorize here)
    q = q > 127 ? 127 : q;
    q = q < -127 ? -127 : q;
    return (int8_t)q;
}
static inline float bf16_load(uint16_t x) { return f_of((uint32_t)x << 16); }
static inline uint16_t bf16_store(float f, uint32_t r) {
    const uint16_t rounded = (uint16_t)((u_of(f) + (r >> 16)) >> 16);
    return f != f ? (uint16_t)0x7fc0 : rounded;
}
// a if mask is all ones, b if it is zero (in integer lanes: GCC vectorizes this where a float select defeats it)
static inline float choose(uint32_t mask, float a, float b) { return f_of((u_of(a) & mask) | (u_of(b) & ~mask)); }
static inline float clampf(float u, float b) { u = u > b ? b : u; return u < -b ? -b : u; }
#define SIGN(x) ((float)((x) > 0) - (float)((x) < 0))
// the random number of rounding to nearest: one half in both halves (AdamW's moments share one number)
#define NEAREST 0x80008000u
#define HIGH(r) ((r) & 0xffff0000u)
#define LOW19(r) (((r) & 0xffffu) << 3)
// the random number of rounding to nearest where a moment has a number of its own
#define HALF 0x80000000u

// meta: 8 int64 per tensor: rows, cols, blocks per row, index offset, key a, key b, key c, unused.
#define FOR_BLOCKS(ARITY) \
    int64_t total = 0, elements = 0; \
    for (int64_t t = 0; t < count; t++) { total += meta[8*t] * meta[8*t+2]; elements += meta[8*t] * meta[8*t+1]; } \
    _Pragma("omp parallel num_threads(threads) if(elements >= PARALLEL_MIN)") \
    { \
        int64_t parts = 1, part = 0; \
        PARTS \
        const int64_t begin = total / parts * part + (part < total %% parts ? part : total %% parts); \
        const int64_t end = begin + total / parts + (part < total %% parts ? 1 : 0); \
        int64_t first = 0; \
        for (int64_t t = 0; t < count && first < end; first += meta[8*t] * meta[8*t+2], t++) { \
            const int64_t nblk = meta[8*t] * meta[8*t+2]; \
            const int64_t lo = begin > first ? begin - first : 0; \
            const int64_t hi = end - first < nblk ? end - first : nblk; \
            if (lo >= hi) continue; \
            const int64_t cols = meta[8*t+1], nb = meta[8*t+2], offset = meta[8*t+3]; \
            const uint32_t ka = (uint32_t)meta[8*t+4], kb = (uint32_t)meta[8*t+5], kc = (uint32_t)meta[8*t+6]; \
            (void)kc; \
            void* const* x = (void* const*)(ptrs + ARITY * t); \
            for (int64_t blk = lo; blk < hi; blk++) { \
                const int64_t r = blk / nb, j0 = (blk %% nb) * BLOCK; \
                const int64_t n = cols - j0 < BLOCK ? cols - j0 : BLOCK; \
                const int64_t base = r * cols + j0;
#define END_BLOCKS }}}

#ifdef _OPENMP
#define PARTS parts = omp_get_num_threads(); part = omp_get_thread_num();
#else
#define PARTS
#endif

// One block of each kernel, in functions of their own: GCC vectorizes a loop that writes codes
// only outside the parallel region's body. A call per 256 elements costs nothing measurable.

// s: decay, lerp weight (1 - beta1), beta2, 1 - beta2, 1 / sqrt(bias correction 2), eps, -lr / bias correction 1,
//    bound * bias correction 1, sign (maximize: -1), stochastic (1) or nearest (0)
__attribute__((noinline)) static void adamw_8bit_block(
        const float* restrict s, float* restrict P, const float* restrict G, int8_t* restrict MQ,
        float* restrict MS, uint8_t* restrict VQ, float* restrict VS, int32_t n, uint32_t key, uint64_t first) {
    const float decay = s[0], w1 = s[1], b2 = s[2], c2 = s[3], ibc2s = s[4], eps = s[5], neg_step = s[6];
    const float bound = s[7], sgn = s[8];
    const uint32_t keep = s[9] > 0 ? 0xffffffffu : 0u;  // stochastic rounding, else to nearest
    const uint32_t low = w1 < 0.5f ? 0xffffffffu : 0u;
    const float coef = w1 < 0.5f ? w1 : -(1.0f - w1);
    const float dm = MS[0] / 127.0f, dw = VS[0] * (32.0f / 31.0f);
    float mb[BLOCK], wb[BLOCK];
    float am = 0.0f, aw = 0.0f;
    int badm = 0, badw = 0;
    #pragma omp simd reduction(max:am, aw) reduction(|:badm, badw)
    for (int32_t j = 0; j < n; j++) {
        const float g = G[j] * sgn;
        float m = (float)MQ[j] * dm;
        const float w0 = sqrt_value(VQ[j]) * dw;
        float v = w0 * w0;
        const float p = P[j] * decay;
        m = choose(low, m, g) + coef * (g - m);  // torch's lerp: m + w1 (g - m), or g - (1 - w1) (g - m)
        v = v * b2 + c2 * g * g;
        const float sq = sqrtf(v);
        const float u = clampf(m / (sq * ibc2s + eps), bound);
        P[j] = p + neg_step * u;
        mb[j] = m;
        wb[j] = sq;
        const float a = fabsf(m);
        am = a > am ? a : am;
        aw = sq > aw ? sq : aw;
        badm |= !(a <= FLT_MAX);
        badw |= !(sq <= FLT_MAX);
    }
    MS[0] = badm ? NAN : am;
    VS[0] = badw ? NAN : aw;
    const float im = (!badm && am > 0.0f) ? 127.0f / am : 0.0f;
    const float iw = (!badw && aw > 0.0f) ? (31.0f / 32.0f) / aw : 0.0f;
    if (badm) memset(mb, 0, sizeof(float) * (size_t)n);  // codes of a block with a NaN scale: zeros
    if (badw) memset(wb, 0, sizeof(float) * (size_t)n);
    #pragma omp simd
    for (int32_t j = 0; j < n; j++) {  // one random number per element: its high half rounds m, its low half w
        const uint32_t r = (noise_at(key, first, (uint32_t)j) & keep) | (NEAREST & ~keep);
        MQ[j] = signed_code(mb[j] * im, HIGH(r));
        VQ[j] = sqrt_code(wb[j] * iw, LOW19(r));
    }
}

// s: lr, decay, beta1, 1 - beta1, beta2, 1 - beta2, sign, stochastic
__attribute__((noinline)) static void lion_8bit_block(
        const float* restrict s, float* restrict P, const float* restrict G, int8_t* restrict MQ,
        float* restrict MS, int32_t n, uint32_t key, uint64_t first) {
    const float lr = s[0], decay = s[1], b1 = s[2], c1 = s[3], b2 = s[4], c2 = s[5], sgn = s[6];
    const uint32_t keep = s[7] > 0 ? 0xffffffffu : 0u;
    const float dm = MS[0] / 127.0f;
    float mb[BLOCK];
    float am = 0.0f;
    int bad = 0;
    #pragma omp simd reduction(max:am) reduction(|:bad)
    for (int32_t j = 0; j < n; j++) {
        const float g = G[j] * sgn;
        float m = (float)MQ[j] * dm;
        const float p = P[j] * decay;
        const float c = m * b1 + c1 * g;
        P[j] = p + (-lr) * SIGN(c);
        m = m * b2 + c2 * g;
        mb[j] = m;
        const float a = fabsf(m);
        am = a > am ? a : am;
        bad |= !(a <= FLT_MAX);
    }
    MS[0] = bad ? NAN : am;
    const float im = (!bad && am > 0.0f) ? 127.0f / am : 0.0f;
    if (bad) memset(mb, 0, sizeof(float) * (size_t)n);
    #pragma omp simd
    for (int32_t j = 0; j < n; j++) {
        const uint32_t r = (noise_at(key, first, (uint32_t)j) & keep) | (HALF & ~keep);
        MQ[j] = signed_code(mb[j] * im, r);
    }
}

// s: as adamw_8bit_block
__attribute__((noinline)) static void adamw_bf16_block(
        const float* restrict s, float* restrict P, const float* restrict G, uint16_t* restrict M,
        uint16_t* restrict V, int32_t n, uint32_t ka, uint32_t kb, uint64_t first) {
    const float decay = s[0], w1 = s[1], b2 = s[2], c2 = s[3], ibc2s = s[4], eps = s[5], neg_step = s[6];
    const float sgn = s[8];
    const uint32_t keep = s[9] > 0 ? 0xffffffffu : 0u;
    const uint32_t low = w1 < 0.5f ? 0xffffffffu : 0u;
    const float coef = w1 < 0.5f ? w1 : -(1.0f - w1);
    #pragma omp simd
    for (int32_t j = 0; j < n; j++) {
        const float g = G[j] * sgn;
        float m = bf16_load(M[j]), v = bf16_load(V[j]);
        const float p = P[j] * decay;
        m = choose(low, m, g) + coef * (g - m);  // torch's lerp: m + w1 (g - m), or g - (1 - w1) (g - m)
        v = v * b2 + c2 * g * g;
        P[j] = p + neg_step * (m / (sqrtf(v) * ibc2s + eps));
        M[j] = bf16_store(m, (noise_at(ka, first, (uint32_t)j) & keep) | (HALF & ~keep));
        V[j] = bf16_store(v, (noise_at(kb, first, (uint32_t)j) & keep) | (HALF & ~keep));
    }
}

// s: as lion_8bit_block
__attribute__((noinline)) static void lion_bf16_block(
        const float* restrict s, float* restrict P, const float* restrict G, uint16_t* restrict M,
        int32_t n, uint32_t key, uint64_t first) {
    const float lr = s[0], decay = s[1], b1 = s[2], c1 = s[3], b2 = s[4], c2 = s[5], sgn = s[6];
    const uint32_t keep = s[7] > 0 ? 0xffffffffu : 0u;
    #pragma omp simd
    for (int32_t j = 0; j < n; j++) {
        const float g = G[j] * sgn;
        const float m = bf16_load(M[j]);
        const float p = P[j] * decay;
        const float c = m * b1 + c1 * g;
        P[j] = p + (-lr) * SIGN(c);
        M[j] = bf16_store(m * b2 + c2 * g, (noise_at(key, first, (uint32_t)j) & keep) | (HALF & ~keep));
    }
}

// Schedule-Free AdamW/RAdam with an 8-bit second moment and float32 z.
// s: lr, ckp1, beta2, 1 - beta2, 1 / sqrt(bias correction 2), eps, weight decay, y coefficient, sign,
//    adaptive, decay on, bound, stochastic
__attribute__((noinline)) static void sf_adamw_8bit_block(
        const float* restrict s, float* restrict Y, const float* restrict G, float* restrict Z,
        uint8_t* restrict VQ, float* restrict VS, int32_t n, uint32_t key, uint64_t first) {
    const float lr = s[0], ckp1 = s[1], b2 = s[2], c2 = s[3], ibc2 = s[4], eps = s[5], wd = s[6];
    const float y_coef = s[7], sgn = s[8], bound = s[11];
    const uint32_t adaptive = s[9] > 0 ? 0xffffffffu : 0u, decay_on = s[10] > 0 ? 0xffffffffu : 0u;
    const uint32_t low = fabsf(ckp1) < 0.5f ? 0xffffffffu : 0u;
    const float coef = fabsf(ckp1) < 0.5f ? ckp1 : -(1.0f - ckp1);
    const uint32_t keep = s[12] > 0 ? 0xffffffffu : 0u;
    const float dw = VS[0] * (32.0f / 31.0f);
    float wb[BLOCK];
    float aw = 0.0f;
    int bad = 0;
    #pragma omp simd reduction(max:aw) reduction(|:bad)
    for (int32_t j = 0; j < n; j++) {
        const float g = G[j] * sgn;
        const float w0 = sqrt_value(VQ[j]) * dw;
        const float v = w0 * w0 * b2 + c2 * g * g;
        const float sq = sqrtf(v);
        const float normalized = clampf(g / (sq * ibc2 + eps), bound);
        float d = choose(adaptive, normalized, g);
        const float y = Y[j], z = Z[j];
        d = choose(decay_on, d + y * wd, d);
        const float diff = z - y;
        const float lerped = choose(low, y, z) + coef * diff;  // y + ckp1 (z - y), or z - (1 - ckp1) (z - y)
        Y[j] = lerped + d * y_coef;
        Z[j] = z - d * lr;
        wb[j] = sq;
        aw = sq > aw ? sq : aw;
        bad |= !(sq <= FLT_MAX);
    }
    VS[0] = bad ? NAN : aw;
    const float iw = (!bad && aw > 0.0f) ? (31.0f / 32.0f) / aw : 0.0f;
    if (bad) memset(wb, 0, sizeof(float) * (size_t)n);
    #pragma omp simd
    for (int32_t j = 0; j < n; j++) {
        const uint32_t r = (noise_at(key, first, (uint32_t)j) & keep) | (HALF & ~keep);
        VQ[j] = sqrt_code(wb[j] * iw, r >> 13);
    }
}

#define ARG(k, type) ((type*)x[k] + base)
#define SCALE(k) ((float*)x[k] + r * nb + j0 / BLOCK)
#define FIRST ((uint64_t)(offset + base))

void adamw_8bit(int64_t count, const int64_t* restrict ptrs, const int64_t* restrict meta,
                const float* restrict s, int threads) {
    FOR_BLOCKS(6)
        adamw_8bit_block(s, ARG(0, float), ARG(1, const float), ARG(2, int8_t), SCALE(3), ARG(4, uint8_t), SCALE(5),
                         (int32_t)n, ka, FIRST);
    END_BLOCKS
}

void lion_8bit(int64_t count, const int64_t* restrict ptrs, const int64_t* restrict meta,
               const float* restrict s, int threads) {
    FOR_BLOCKS(4)
        lion_8bit_block(s, ARG(0, float), ARG(1, const float), ARG(2, int8_t), SCALE(3), (int32_t)n, ka, FIRST);
    END_BLOCKS
}

// AdamW with bfloat16 moments (one "row" per tensor)
void adamw_bf16(int64_t count, const int64_t* restrict ptrs, const int64_t* restrict meta,
                const float* restrict s, int threads) {
    FOR_BLOCKS(4)
        adamw_bf16_block(s, ARG(0, float), ARG(1, const float), ARG(2, uint16_t), ARG(3, uint16_t), (int32_t)n,
                         ka, kb, FIRST);
    END_BLOCKS
}

// Lion with a bfloat16 momentum
void lion_bf16(int64_t count, const int64_t* restrict ptrs, const int64_t* restrict meta,
               const float* restrict s, int threads) {
    FOR_BLOCKS(3)
        lion_bf16_block(s, ARG(0, float), ARG(1, const float), ARG(2, uint16_t), (int32_t)n, ka, FIRST);
    END_BLOCKS
}

void sf_adamw_8bit(int64_t count, const int64_t* restrict ptrs, const int64_t* restrict meta,
                   const float* restrict s, int threads) {
    FOR_BLOCKS(5)
        sf_adamw_8bit_block(s, ARG(0, float), ARG(1, const float), ARG(2, float), ARG(3, uint8_t), SCALE(4),
                            (int32_t)n, ka, FIRST);
    END_BLOCKS
}
"""

_SIGNATURE = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
_NAMES = ("adamw_8bit", "lion_8bit", "adamw_bf16", "lion_bf16", "sf_adamw_8bit")


def source() -> str:
    """The C translation unit of every block kernel."""
    return _SOURCE % {"block": BLOCK, "parallel_min": _native.PARALLEL_MIN_NUMEL}


class BlockKernels:
    """The loaded kernels: ``kernels.run(name, tensor_lists, meta, scalars)``."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._functions = {}
        for name in _NAMES:
            function = getattr(library, name)
            function.argtypes = _SIGNATURE
            function.restype = None
            self._functions[name] = function

    def run(self, name: str, tensor_lists: Sequence[Sequence[Tensor]], meta: Sequence[int], scalars: Tensor) -> None:
        """Update every tensor of ``tensor_lists`` (``[k][t]``: argument ``k`` of tensor ``t``) in one call."""
        count = len(tensor_lists[0])
        pointers = array("q", [tensor_lists[k][t].data_ptr() for t in range(count) for k in range(len(tensor_lists))])
        rows = array("q", meta)
        self._functions[name](
            count, pointers.buffer_info()[0], rows.buffer_info()[0], scalars.data_ptr(), torch.get_num_threads()
        )


def metadata(param: Tensor, offset: int, keys: Sequence[int], *, blocked: bool) -> list[int]:
    """The kernel's 8 numbers for one tensor: its blocks (``blocked``: rows of the parameter; else one row) and keys."""
    if blocked:
        rows, cols, nb = block_layout(param.shape)
    else:
        rows, cols, nb = 1, param.numel(), -(-param.numel() // BLOCK)
    padded = [*keys, 0, 0, 0][:3]
    return [rows, cols, nb, offset, *padded, 0]


_LOCK = threading.Lock()
_LOADED: list[BlockKernels] = []
_FAILED: list[str] = []


def kernels_problem() -> str | None:
    """Why the block kernels cannot be used here, or ``None``."""
    return _FAILED[0] if _FAILED else _native.compiler_problem()


def kernels() -> BlockKernels | None:
    """The block kernels (built once per machine, loaded once per process), or ``None`` where they cannot be built."""
    if _LOADED:
        return _LOADED[0]
    if kernels_problem() is not None:
        return None
    with _LOCK:
        if not _LOADED and not _FAILED:
            try:
                _LOADED.append(BlockKernels(_native.load_library(source(), "optforge_block_kernels")))
            except _native.CompileError as error:
                _FAILED.append(str(error))
    return _LOADED[0] if _LOADED else None
