"""Cost of what runs around the step (clip_grad, ema, skip_nonfinite) next to torch's fused AdamW step.

On the GPT-2-small layout (148 tensors, 124M float32 parameters), every timed step of
torch's fused AdamW built with the keys under test is paired with one step of a plain
fused AdamW over the same parameters, alternating which runs first; the table gives the
median step of each and the median of the per-pair extra time.

Run: ``python benchmarks/bench_around_step.py [--device cuda] [--steps 10]`` (not a test).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_optimizers import gpt2_shapes

import optforge

CONFIGS = {
    "clip_grad max_norm": {"clip_grad": {"max_norm": 1.0}},
    "clip_grad agc": {"clip_grad": {"agc": 0.01}},
    "ema": {"ema": {"decay": 0.999}},
    "skip_nonfinite": {"skip_nonfinite": True},
    "all three (max_norm)": {"clip_grad": {"max_norm": 1.0}, "ema": {"decay": 0.999}, "skip_nonfinite": True},
}


def gpt2_small(device: str) -> list[torch.nn.Parameter]:
    params = [torch.nn.Parameter(torch.randn(shape, device=device) * 0.02) for shape in gpt2_shapes()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    return params


def timed(step, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    params = gpt2_small(args.device)
    adamw = {"name": "AdamW", "lr": 1e-4, "fused": True}
    print(f"{sum(p.numel() for p in params):,} parameters in {len(params)} tensors on {args.device}")
    print(f"{'keys':<24} {'fused ms':>9} {'with ms':>9} {'extra ms':>9} {'extra':>7}")
    for name, keys in CONFIGS.items():
        plain, _ = optforge.build(params, {"optimizer": adamw})
        around, _ = optforge.build(params, {"optimizer": adamw, **keys})
        plain.step()
        around.step()
        base, full, extra = [], [], []
        for index in range(args.steps):
            first, second = (plain, around) if index % 2 else (around, plain)
            times = {id(first): timed(first.step, args.device), id(second): timed(second.step, args.device)}
            base.append(times[id(plain)])
            full.append(times[id(around)])
            extra.append(times[id(around)] - times[id(plain)])
        median = statistics.median
        print(
            f"{name:<24} {median(base) * 1e3:9.1f} {median(full) * 1e3:9.1f} {median(extra) * 1e3:9.1f} "
            f"{median(extra) / median(base):7.0%}"
        )


if __name__ == "__main__":
    main()
