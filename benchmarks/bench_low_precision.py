"""Time and size optimizer steps with low-precision state on a GPT-2-small layout, beside torch's fused AdamW.

Every optimizer steps the same float32 parameters (148 tensors, 124M
parameters at ``--scale 1``). Each of its steps is paired with one step of
``torch.optim.AdamW(fused=True)`` on the same parameters, the pairs alternating
which runs first, and the table reports the median ratio of the pairs (on a
shared machine the ratio holds up far better than absolute times), the median
step time, the first step (state creation, kernel build or compilation), the
optimizer state's bytes per parameter, and the transient memory of one step.

Transient memory is the peak resident memory (``VmHWM`` after resetting it
through ``/proc/self/clear_refs``) during one step minus the resident memory
before it, measured in a child process started with glibc's mmap threshold at
4 KiB, so that every allocation of a page or more is mapped and unmapped and
resident memory tracks live tensors (Python's ``tracemalloc`` sees none of
torch's allocations).

torchao's ``AdamW8bit`` (where it imports) runs on CPU through
``torch.compile``: its first step compiles for about a minute, so it is timed
over ``--torchao-steps`` steps only.

Run ``python benchmarks/bench_low_precision.py`` (``--scale 0.5`` for a layout
of a quarter of the size, ``--steps``, ``--threads``, ``--no-torchao``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_optimizers import gpt2_shapes, make_params, transient_bytes

from optforge.optimizers import AdamW, Lion

Factory = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]
_MAPPED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4096", "MALLOC_TRIM_THRESHOLD_": "4096"}


def entries(with_torchao: bool) -> dict[str, Factory]:
    """The optimizers compared, by name (torchao's only where it imports)."""
    table: dict[str, Factory] = {
        "torch AdamW fused": lambda p: torch.optim.AdamW(p, lr=1e-4, fused=True),
        "optforge AdamW 8bit": lambda p: AdamW(p, lr=1e-4, state_precision="8bit", fused=True, seed=0),
        "optforge AdamW bf16": lambda p: AdamW(p, lr=1e-4, state_precision="bf16", fused=True, seed=0),
        "optforge Lion fp32": lambda p: Lion(p, lr=1e-5, fused=True),
        "optforge Lion 8bit": lambda p: Lion(p, lr=1e-5, state_precision="8bit", fused=True, seed=0),
        "optforge Lion bf16": lambda p: Lion(p, lr=1e-5, state_precision="bf16", fused=True, seed=0),
    }
    if with_torchao:
        try:
            from torchao.optim import AdamW8bit
        except Exception as error:  # any import failure: skip it, and say why
            print(f"torchao AdamW8bit skipped: {type(error).__name__}: {error}")
        else:
            table["torchao AdamW8bit"] = lambda p: AdamW8bit(p, lr=1e-4)
    return table


def _tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor holds; a wrapper subclass (torchao's quantized state) counts the tensors inside it."""
    if hasattr(t, "__tensor_flatten__") and type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter:
        names, _ = t.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(t, name)) for name in names)
    return t.numel() * t.element_size()


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's state (codes, scales, moments, step counts)."""
    return sum(_tensor_bytes(t) for s in opt.state.values() for t in s.values() if torch.is_tensor(t))


def _timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def time_one(factory: Factory, params: list[torch.nn.Parameter], reference: torch.optim.Optimizer, steps: int) -> dict:
    """First step, then ``steps`` steps each paired with a reference step (alternating order)."""
    opt = factory(params)
    first = _timed(opt.step)
    own, ratios = [], []
    for i in range(steps):
        if i % 2:
            ref = _timed(reference.step)
            mine = _timed(opt.step)
        else:
            mine = _timed(opt.step)
            ref = _timed(reference.step)
        own.append(mine)
        ratios.append(mine / ref)
    numel = sum(p.numel() for p in params)
    result = {
        "first_ms": first * 1e3,
        "median_ms": statistics.median(own) * 1e3,
        "ratio": statistics.median(ratios),
        "state_bytes_per_param": state_bytes(opt) / numel,
        "steps": steps,
    }
    del opt
    gc.collect()
    return result


def memory_child(args: argparse.Namespace) -> int:
    """In a child with mapped allocations: the transient bytes of one step of each optimizer (JSON on stdout)."""
    torch.set_num_threads(args.threads)
    params = make_params(_shapes(args.scale))
    out = {}
    for name, factory in entries(with_torchao=False).items():
        opt = factory(params)
        opt.step()
        opt.step()
        out[name] = transient_bytes(opt.step, torch.device("cpu"))
        del opt
        gc.collect()
    print(json.dumps(out))
    return 0


def _shapes(scale: float) -> list[tuple[int, ...]]:
    d = max(64, int(768 * scale) // 64 * 64)
    return gpt2_shapes(d=d, vocab=max(1024, int(50257 * scale)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="width and vocabulary scale of the GPT-2 layout")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per optimizer")
    parser.add_argument("--torchao-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torchao", action="store_true")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return memory_child(args)
    torch.set_num_threads(args.threads)
    shapes = _shapes(args.scale)
    params = make_params(shapes)
    numel = sum(p.numel() for p in params)
    print(
        f"layout: GPT-2 small x{args.scale} ({len(shapes)} tensors, {numel / 1e6:.1f}M params), float32, "
        f"{args.threads} threads, torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}"
    )
    reference = torch.optim.AdamW(params, lr=1e-4, fused=True)
    reference.step()
    results = {}
    for name, factory in entries(with_torchao=not args.no_torchao).items():
        steps = args.torchao_steps if name.startswith("torchao") else args.steps
        results[name] = time_one(factory, params, reference, steps)
        print(f"  {name}: {results[name]['ratio']:.2f}x", flush=True)
    child = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--memory-child",
            "--scale",
            str(args.scale),
            "--threads",
            str(args.threads),
        ],
        env={**os.environ, **_MAPPED_MALLOC},
        capture_output=True,
        text=True,
        check=False,
    )
    memory = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else {}
    if child.returncode:
        print(f"transient memory not measured: {child.stderr.strip()[-500:]}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print()
    print(
        "| optimizer | step / torch fused AdamW | median step ms | first step ms | state B/param | transient MB/step |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        transient = memory.get(name)
        shown = "-" if transient is None else f"{transient / 2**20:.1f}"
        steps = f" ({r['steps']} steps)" if name.startswith("torchao") else ""
        print(
            f"| {name}{steps} | {r['ratio']:.2f}x | {r['median_ms']:.1f} | {r['first_ms']:.0f} | "
            f"{r['state_bytes_per_param']:.3f} | {shown} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
