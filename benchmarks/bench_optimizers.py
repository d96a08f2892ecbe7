"""Time ``optimizer.step()`` for optforge's optimizers against torch.optim and peer packages.

Run ``python benchmarks/bench_optimizers.py`` (all layouts and optimizers) or
``python benchmarks/bench_optimizers.py --quick`` (fewer steps, a quarter-size
model). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

Factory = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]


def gpt2_shapes(layers: int = 12, d: int = 768, vocab: int = 50257, ctx: int = 1024) -> list[tuple[int, ...]]:
    """The parameter shapes of GPT-2 small (148 tensors, 124M parameters with the defaults)."""
    shapes: list[tuple[int, ...]] = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return [*shapes, (d,), (d,)]


def layouts(quick: bool) -> dict[str, list[tuple[int, ...]]]:
    if quick:
        return {"gpt2-small/4 (148 tensors)": gpt2_shapes(d=384, vocab=12564), "500x4096": [(4096,)] * 500}
    return {"gpt2-small (148 tensors, 124M)": gpt2_shapes(), "2000x4096": [(4096,)] * 2000}


def _sf(cls_path: str, **kwargs) -> Factory:
    module_name, _, attr = cls_path.rpartition(".")

    def make(params):
        opt = getattr(importlib.import_module(module_name), attr)(params, **kwargs)
        opt.train()
        return opt

    return make


def _plain(cls_path: str, **kwargs) -> Factory:
    module_name, _, attr = cls_path.rpartition(".")
    return lambda params: getattr(importlib.import_module(module_name), attr)(params, **kwargs)


def _wrapper(params):
    from optforge.optimizers import ScheduleFreeWrapper

    opt = ScheduleFreeWrapper(torch.optim.SGD(params, lr=1e-3))
    opt.train()
    return opt


def candidates() -> dict[str, tuple[str | None, Factory]]:
    """Benchmark name -> (package it needs or None, factory)."""
    lion = {"lr": 1e-4, "weight_decay": 0.1}
    sf_adamw = {"lr": 1e-3, "weight_decay": 0.01}
    sf_sgd = {"lr": 1e-2, "weight_decay": 0.01}
    out: dict[str, tuple[str | None, Factory]] = {
        "torch AdamW fused": (None, _plain("torch.optim.AdamW", lr=1e-3, fused=True)),
        "torch AdamW foreach": (None, _plain("torch.optim.AdamW", lr=1e-3, foreach=True)),
        "torch SGD momentum foreach": (None, _plain("torch.optim.SGD", lr=1e-3, momentum=0.9, foreach=True)),
        "optforge Lion single": (None, _plain("optforge.optimizers.Lion", foreach=False, **lion)),
        "optforge Lion foreach": (None, _plain("optforge.optimizers.Lion", foreach=True, **lion)),
        "optforge Lion fused": (None, _plain("optforge.optimizers.Lion", fused=True, **lion)),
        "lion-pytorch Lion": ("lion_pytorch", _plain("lion_pytorch.Lion", **lion)),
        "lion-pytorch Lion foreach": ("lion_pytorch", _plain("lion_pytorch.foreach.Lion", **lion)),
        "timm Lion": ("timm", _plain("timm.optim.Lion", foreach=False, **lion)),
        "timm Lion foreach": ("timm", _plain("timm.optim.Lion", foreach=True, **lion)),
        "optforge AdamWScheduleFree single": (
            None,
            _sf("optforge.optimizers.AdamWScheduleFree", foreach=False, **sf_adamw),
        ),
        "optforge AdamWScheduleFree foreach": (
            None,
            _sf("optforge.optimizers.AdamWScheduleFree", foreach=True, **sf_adamw),
        ),
        "optforge AdamWScheduleFree fused": (
            None,
            _sf("optforge.optimizers.AdamWScheduleFree", fused=True, **sf_adamw),
        ),
        "schedulefree AdamW": ("schedulefree", _sf("schedulefree.AdamWScheduleFree", foreach=False, **sf_adamw)),
        "schedulefree AdamW foreach": (
            "schedulefree",
            _sf("schedulefree.AdamWScheduleFree", foreach=True, **sf_adamw),
        ),
        "optforge RAdamScheduleFree fused": (
            None,
            _sf("optforge.optimizers.RAdamScheduleFree", fused=True, **sf_adamw),
        ),
        "optforge SGDScheduleFree single": (None, _sf("optforge.optimizers.SGDScheduleFree", foreach=False, **sf_sgd)),
        "optforge SGDScheduleFree foreach": (None, _sf("optforge.optimizers.SGDScheduleFree", foreach=True, **sf_sgd)),
        "optforge SGDScheduleFree fused": (None, _sf("optforge.optimizers.SGDScheduleFree", fused=True, **sf_sgd)),
        "schedulefree SGD": ("schedulefree", _sf("schedulefree.SGDScheduleFree", foreach=False, **sf_sgd)),
        "schedulefree SGD foreach": ("schedulefree", _sf("schedulefree.SGDScheduleFree", foreach=True, **sf_sgd)),
        "optforge ScheduleFreeWrapper(SGD)": (None, _wrapper),
    }
    return out


# ---------------------------------------------------------------- transient memory
# glibc maps and unmaps every allocation of 4 KiB or more in the memory pass, so
# that resident memory (RSS) tracks live tensors; these must be set at start-up.
_EXACT_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4096", "MALLOC_TRIM_THRESHOLD_": "4096"}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise OSError(field)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def transient_bytes(step: Callable[[], object]) -> int | None:
    """Peak resident memory above the level before ``step()``, or None where Linux cannot tell."""
    gc.collect()
    if not _reset_peak_rss():
        return None
    before = _rss_kib("VmRSS:")
    step()
    return max(0, _rss_kib("VmHWM:") - before) * 1024


# ---------------------------------------------------------------- timing
@dataclass
class Result:
    name: str
    median_ms: float
    first_ms: float
    state_bytes: int
    transient: int | None = None
    reference_ms: float | None = None


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))


def make_params(shapes: list[tuple[int, ...]]) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=gen) * 0.02)
        p.grad = torch.randn(shape, generator=gen) * 1e-3
        params.append(p)
    return params


def _timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def time_one(
    factory: Factory, params: list[torch.nn.Parameter], steps: int, reference: torch.optim.Optimizer | None
) -> Result:
    """Median step time; ``reference`` (fused AdamW) steps in between, timed too, for a same-moment ratio."""
    opt = factory(params)
    first = _timed(opt.step)
    times, reference_times = [], []
    for _ in range(steps):
        times.append(_timed(opt.step))
        if reference is not None:
            reference_times.append(_timed(reference.step))
    result = Result("", statistics.median(times) * 1e3, first * 1e3, _state_bytes(opt))
    if reference_times:
        result.reference_ms = statistics.median(reference_times) * 1e3
    del opt
    gc.collect()
    return result


def memory_one(factory: Factory, params: list[torch.nn.Parameter]) -> int | None:
    opt = factory(params)
    opt.step()
    opt.step()
    transient = transient_bytes(opt.step)
    del opt
    gc.collect()
    return transient


@contextlib.contextmanager
def compile_cache(cold: bool) -> Iterator[None]:
    """A fresh, empty inductor cache, so first-step times include the full compilation."""
    if not cold:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="optforge-bench-inductor-") as path:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
        yield


def _fmt_bytes(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MiB"


def report(layout: str, results: list[Result]) -> None:
    by_name = {r.name: r for r in results}
    fused = by_name.get("torch AdamW fused")
    foreach = by_name.get("torch AdamW foreach")
    print(f"\n## {layout}\n")
    print(
        "| optimizer | median ms | vs AdamW fused | vs AdamW fused, interleaved | vs AdamW foreach "
        "| first step ms | overhead s | transient | transient / state |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        vs_fused = f"{r.median_ms / fused.median_ms:.2f}x" if fused else "-"
        interleaved = f"{r.median_ms / r.reference_ms:.2f}x" if r.reference_ms else "1.00x"
        vs_foreach = f"{r.median_ms / foreach.median_ms:.2f}x" if foreach else "-"
        overhead = (r.first_ms - r.median_ms) / 1e3
        share = "-" if r.transient is None or not r.state_bytes else f"{r.transient / r.state_bytes:.0%}"
        print(
            f"| {r.name} | {r.median_ms:.1f} | {vs_fused} | {interleaved} | {vs_foreach} | {r.first_ms:.0f} "
            f"| {overhead:.2f} | {_fmt_bytes(r.transient)} | {share} |"
        )


def measure_in_child(args: argparse.Namespace, layout: str, names: list[str]) -> dict[str, int | None]:
    """Transient memory of each optimizer, measured in a fresh process with exact allocation."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", layout, "--names", json.dumps(names)]
    if args.quick:
        command.append("--quick")
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, env={**os.environ, **_EXACT_MALLOC}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_child(args: argparse.Namespace) -> int:
    shapes = layouts(args.quick)[args.memory_child]
    factories = {name: factory for name, (_, factory) in candidates().items()}
    params = make_params(shapes)
    out = {name: memory_one(factories[name], params) for name in json.loads(args.names)}
    print(json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 timed steps and smaller layouts")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per optimizer (default 15)")
    parser.add_argument("--only", default="", help="comma-separated substrings of optimizer names to run")
    parser.add_argument("--layout", choices=["all", "gpt2", "small"], default="all")
    parser.add_argument("--no-memory", action="store_true", help="skip the transient-memory pass")
    parser.add_argument("--warm-cache", action="store_true", help="reuse the inductor cache (first step faster)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--names", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.quick else 15)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args)
    wanted = [s.strip().lower() for s in args.only.split(",") if s.strip()]
    chosen = {
        name: factory
        for name, (package, factory) in candidates().items()
        if (package is None or importlib.util.find_spec(package) is not None)
        and (not wanted or any(w in name.lower() for w in wanted) or name.startswith("torch AdamW"))
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    all_layouts = layouts(args.quick)
    selected = list(all_layouts.items())
    if args.layout != "all":
        selected = [selected[0] if args.layout == "gpt2" else selected[1]]
    with compile_cache(cold=not args.warm_cache):
        results = {}
        for layout, shapes in selected:
            params = make_params(shapes)
            results[layout] = []
            reference = chosen["torch AdamW fused"](params)
            reference.step()
            for name, factory in chosen.items():
                result = time_one(factory, params, steps, None if name == "torch AdamW fused" else reference)
                result.name = name
                results[layout].append(result)
                print(f"  {layout}: {name}: {result.median_ms:.1f} ms", file=sys.stderr)
            del params, reference
            gc.collect()
        if not args.no_memory:
            for layout, _ in selected:
                transients = measure_in_child(args, layout, [r.name for r in results[layout]])
                for result in results[layout]:
                    result.transient = transients.get(result.name)
    for layout, layout_results in results.items():
        report(layout, layout_results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
