"""Cost of compute_lr per call and of LRShim.step() with many param groups.

Run: ``python benchmarks/bench_schedules.py`` (prints microseconds; not a test).
"""

from __future__ import annotations

import itertools
import statistics
import timeit

import torch

from optforge.scheduler import LRShim
from optforge.schedules import LearningRate, compute_lr, make_schedule, parse_schedule

CONFIGS = {
    "constant": {"constant": 1e-3},
    "linear_ramp_to_cosine": {
        "linear_ramp_to_cosine": {
            "learning_rate": 1e-3,
            "final_learning_rate": 1e-5,
            "num_ramp_steps": 500,
            "final_num_steps": 10_000,
        }
    },
    "cosine_decay+warmup": {
        "cosine_decay": {"peak_value": 1e-3, "end_value": 1e-5, "warmup_steps": 500, "decay_steps": 10_000}
    },
    "warmup_stable_decay": {
        "warmup_stable_decay": {
            "peak_value": 1e-3,
            "warmup_steps": 500,
            "decay_steps": 10_000,
            "cooldown_steps": 2_000,
            "shape": "1-sqrt",
        }
    },
    "cosine_restarts": {
        "cosine_restarts": {"peak_value": 1e-3, "cycle_steps": 100, "cycle_mult": 1.5, "peak_decay": 0.8}
    },
    "join(3 phases)": {
        "join": {
            "phases": [
                {"steps": 500, "schedule": {"linear_ramp_to_constant": {"learning_rate": 1e-3, "num_ramp_steps": 500}}},
                {"steps": 5_000, "schedule": {"constant": 1e-3}},
                {"schedule": {"cosine_decay": {"peak_value": 1e-3, "decay_steps": 4_500}}},
            ]
        }
    },
}


def per_call_us(fn, number: int, repeat: int = 5) -> float:
    """Median microseconds per call over ``repeat`` runs of ``number`` calls."""
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def bench_one(name: str, config: dict) -> None:
    """One row: compute_lr on a typed model and on a mapping, the compiled function, a pydantic parse."""
    typed = LearningRate.model_validate(config)
    schedule = make_schedule(config)
    steps = itertools.count()
    typed_us = per_call_us(lambda: compute_lr(typed, next(steps) % 12_000), 100_000)
    mapping_us = per_call_us(lambda: compute_lr(config, next(steps) % 12_000), 20_000)
    fn_us = per_call_us(lambda: schedule(next(steps) % 12_000), 100_000)
    parse_us = per_call_us(lambda: parse_schedule(config), 2_000)
    print(f"{name:24} {typed_us:12.2f} {mapping_us:9.2f} {fn_us:12.2f} {parse_us:15.2f}")


def bench_compute_lr() -> None:
    print(f"{'schedule':24} {'typed model':>12} {'mapping':>9} {'compiled fn':>12} {'pydantic parse':>15}  (us/call)")
    for name, config in CONFIGS.items():
        bench_one(name, config)


def bench_lrshim_step(groups: int = 100) -> None:
    params = [torch.nn.Parameter(torch.zeros(4)) for _ in range(groups)]
    param_groups = [{"params": [p], "name": f"layer{i}", "lr_scale": 0.9**i} for i, p in enumerate(params)]
    config = CONFIGS["cosine_decay+warmup"]
    for label, extra in [("lr only", None), ("lr + beta1 + weight_decay", True)]:
        optimizer = torch.optim.AdamW(param_groups, lr=1e-3)
        names = [group["name"] for group in param_groups]
        hyper = None
        if extra:
            beta1 = {"linear_decay": {"peak_value": 0.95, "end_value": 0.85, "decay_steps": 10_000}}
            wd = {"cosine_decay": {"peak_value": 0.1, "end_value": 0.01, "decay_steps": 10_000}}
            hyper = {"beta1": dict.fromkeys(names, beta1), "weight_decay": dict.fromkeys(names, wd)}
        scheduler = LRShim(optimizer, dict.fromkeys(names, config), hyper)
        optimizer.step()  # torch warns when the scheduler steps before the optimizer ever has
        us = per_call_us(scheduler.step, 2_000)
        print(f"LRShim.step() with {groups} param groups, {label}: {us:.1f} us ({us / groups:.2f} us per group)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    bench_compute_lr()
    bench_lrshim_step()
