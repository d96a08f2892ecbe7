"""Time ``optimizer.step()`` for optforge's optimizers against torch.optim and the peer packages.

For every algorithm it runs optforge's default (no flags: the path chosen
automatically, named in the table) and fused paths, and each peer package's
default (and fused path where one exists). Each step is timed between steps of
torch's ``AdamW(fused=True)`` on the same parameters, and the table reports the
median of those per-step ratios, which holds up on a shared machine far better
than absolute times. It also reports the first-step overhead (state creation
and compilation), the transient memory of a step, and the effective bandwidth:
the bytes an ideal single pass moves (e.g. 20 B per float32 element for Lion)
over the step time, as a fraction of a streaming probe measured in the same run
(a device-to-device copy on CUDA, an in-place add on CPU).

Run ``python benchmarks/bench_optimizers.py`` (both layouts),
``--quick`` (smaller layouts, fewer steps) or ``--device cuda``. See
``benchmarks/README.md``.
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
from dataclasses import dataclass, field, replace

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
        return {"gpt2-small/4 (148 tensors, 12M)": gpt2_shapes(d=384, vocab=12564), "500x4096": [(4096,)] * 500}
    return {"gpt2-small (148 tensors, 124M)": gpt2_shapes(), "2000x4096": [(4096,)] * 2000}


# ---------------------------------------------------------------- what runs
@dataclass(frozen=True)
class Entry:
    """One optimizer configuration: who provides it, how to build it, and its single-pass bytes per element."""

    name: str
    package: str | None
    factory: Factory
    bytes_per_element: int  # reads + writes of one ideal pass, float32


def _build(cls_path: str, schedule_free: bool = False, **kwargs) -> Factory:
    module_name, _, attr = cls_path.rpartition(".")

    def make(params):
        opt = getattr(importlib.import_module(module_name), attr)(params, **kwargs)
        if schedule_free:
            opt.train()
        return opt

    return make


def _wrapper(params):
    from optforge.optimizers import ScheduleFreeWrapper

    opt = ScheduleFreeWrapper(torch.optim.SGD(params, lr=1e-3))
    opt.train()
    return opt


REFERENCE = "torch AdamW fused"


def entries() -> list[Entry]:
    """Every configuration, reference first; ``default`` means no implementation flag."""
    lion = {"lr": 1e-4, "weight_decay": 0.1}
    adamw = {"lr": 1e-3, "weight_decay": 0.01}
    sgd = {"lr": 1e-2, "weight_decay": 0.01}
    of = "optforge.optimizers."
    return [
        Entry(REFERENCE, None, _build("torch.optim.AdamW", lr=1e-3, fused=True), 28),
        Entry("torch AdamW default", None, _build("torch.optim.AdamW", lr=1e-3), 28),
        Entry("torch SGD momentum default", None, _build("torch.optim.SGD", lr=1e-3, momentum=0.9), 20),
        # Lion: 3 reads (p, g, m) + 2 writes (p, m)
        Entry("optforge Lion default", None, _build(of + "Lion", **lion), 20),
        Entry("optforge Lion fused", None, _build(of + "Lion", fused=True, **lion), 20),
        Entry("optforge Lion single", None, _build(of + "Lion", foreach=False, **lion), 20),
        Entry("lion-pytorch Lion default", "lion_pytorch", _build("lion_pytorch.Lion", **lion), 20),
        Entry("lion-pytorch Lion foreach", "lion_pytorch", _build("lion_pytorch.foreach.Lion", **lion), 20),
        Entry("timm Lion default", "timm", _build("timm.optim.Lion", **lion), 20),
        Entry("pytorch_optimizer Lion default", "pytorch_optimizer", _build("pytorch_optimizer.Lion", **lion), 20),
        # Schedule-Free AdamW: 4 reads (y, g, z, v) + 3 writes (y, z, v)
        Entry("optforge AdamWScheduleFree default", None, _build(of + "AdamWScheduleFree", True, **adamw), 28),
        Entry(
            "optforge AdamWScheduleFree fused", None, _build(of + "AdamWScheduleFree", True, fused=True, **adamw), 28
        ),
        Entry(
            "schedulefree AdamWScheduleFree default",
            "schedulefree",
            _build("schedulefree.AdamWScheduleFree", True, **adamw),
            28,
        ),
        Entry("optforge RAdamScheduleFree default", None, _build(of + "RAdamScheduleFree", True, **adamw), 28),
        Entry(
            "optforge RAdamScheduleFree fused", None, _build(of + "RAdamScheduleFree", True, fused=True, **adamw), 28
        ),
        Entry(
            "schedulefree RAdamScheduleFree default",
            "schedulefree",
            _build("schedulefree.RAdamScheduleFree", True, **adamw),
            28,
        ),
        # Schedule-Free SGD: 3 reads (y, g, z) + 2 writes (y, z)
        Entry("optforge SGDScheduleFree default", None, _build(of + "SGDScheduleFree", True, **sgd), 20),
        Entry("optforge SGDScheduleFree fused", None, _build(of + "SGDScheduleFree", True, fused=True, **sgd), 20),
        Entry(
            "schedulefree SGDScheduleFree default",
            "schedulefree",
            _build("schedulefree.SGDScheduleFree", True, **sgd),
            20,
        ),
        # the wrapper's averaging (p, g, buf of SGD; z) is not a single pass: bytes of the ideal one
        Entry("optforge ScheduleFreeWrapper(SGD) default", None, _wrapper, 28),
    ]


# ---------------------------------------------------------------- transient memory
# glibc maps and unmaps every allocation of 4 KiB or more in the memory pass, so
# that resident memory (RSS) tracks live tensors; these must be set at start-up.
_EXACT_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4096", "MALLOC_TRIM_THRESHOLD_": "4096"}


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name):
                return int(line.split()[1])
    raise OSError(field_name)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def transient_bytes(step: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory during ``step()`` above the level before it, or None where it cannot be told."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    if not _reset_peak_rss():
        return None
    before = _rss_kib("VmRSS:")
    step()
    return max(0, _rss_kib("VmHWM:") - before) * 1024


# ---------------------------------------------------------------- timing
@dataclass
class Result:
    name: str
    path: str
    first_ms: float
    state_bytes: int
    bytes_per_step: int
    times_ms: list[float]
    ratios: list[float] = field(default_factory=list)
    transient: int | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)


def merge(runs: list[Result]) -> Result:
    """One optimizer's results over repeats: every step's time and ratio pooled, first step of the first run."""
    first = runs[0]
    return replace(
        first,
        times_ms=[t for r in runs for t in r.times_ms],
        ratios=[x for r in runs for x in r.ratios],
    )


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))


def make_params(shapes: list[tuple[int, ...]], device: torch.device | str = "cpu") -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter((torch.randn(shape, generator=gen) * 0.02).to(device))
        p.grad = (torch.randn(shape, generator=gen) * 1e-3).to(device)
        params.append(p)
    return params


def _timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    def timed(step: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return timed


def probe_bandwidth(device: torch.device, numel: int = 1 << 26, repeats: int = 10) -> float:
    """Bytes per second of a streaming probe over float32 buffers, best of ``repeats``.

    On CUDA the probe is a device-to-device copy (``dst.copy_(src)``: 8 B per
    element). On CPU it is an in-place ``a.add_(b)`` (12 B per element): a copy
    there also reads the destination before writing it (write-allocate), which an
    optimizer step, writing what it has just read, does not pay.
    """
    a = torch.randn(numel, device=device)
    b = torch.randn(numel, device=device)
    timed = _timer(device)
    if device.type == "cuda":
        best = min(timed(lambda: a.copy_(b)) for _ in range(repeats))
        return 2 * numel * 4 / best
    best = min(timed(lambda: a.add_(b)) for _ in range(repeats))
    return 3 * numel * 4 / best


def _path_of(opt: torch.optim.Optimizer) -> str:
    path = getattr(opt, "step_path", None)
    if path is not None:
        return path.name
    group = opt.param_groups[0]
    if group.get("fused"):
        return "fused"
    return {True: "foreach", False: "single"}.get(group.get("foreach"), "default")


def time_one(
    entry: Entry,
    params: list[torch.nn.Parameter],
    steps: int,
    reference: torch.optim.Optimizer | None,
    device: torch.device,
) -> Result:
    """Median step time, and per-step ratios to ``reference`` (fused AdamW) stepping in between.

    Each timed step is paired with one reference step, and the pairs alternate
    which of the two runs first, so that whatever one step leaves behind for the
    next (warm caches, sleeping threads) favours neither side.
    """
    timed = _timer(device)
    opt = entry.factory(params)
    first = timed(opt.step)
    times, ratios = [], []
    for i in range(steps):
        if reference is None:
            times.append(timed(opt.step))
            continue
        if i % 2:
            ref = timed(reference.step)
            own = timed(opt.step)
        else:
            own = timed(opt.step)
            ref = timed(reference.step)
        times.append(own)
        ratios.append(own / ref)
    numel = sum(p.numel() for p in params)
    result = Result(
        entry.name,
        _path_of(opt),
        first * 1e3,
        _state_bytes(opt),
        numel * entry.bytes_per_element,
        [t * 1e3 for t in times],
        ratios,
    )
    del opt
    gc.collect()
    return result


def memory_one(factory: Factory, params: list[torch.nn.Parameter], device: torch.device) -> int | None:
    opt = factory(params)
    opt.step()
    opt.step()
    transient = transient_bytes(opt.step, device)
    del opt
    gc.collect()
    return transient


@contextlib.contextmanager
def compile_cache(cold: bool) -> Iterator[None]:
    """Fresh, empty kernel caches (inductor's and optforge's), so first-step times include building every kernel."""
    if not cold:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="optforge-bench-kernels-") as path:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(path, "inductor")
        os.environ["OPTFORGE_CACHE_DIR"] = os.path.join(path, "optforge")
        yield


def _fmt_bytes(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.1f} MiB"


def report(layout: str, results: list[Result], copy_bytes_per_s: float, layout_device: str) -> None:
    print(f"\n## {layout}\n")
    probe = "device-to-device copy" if "cuda" in layout_device else "in-place add_ (a += b)"
    print(f"bandwidth probe, {probe}: {copy_bytes_per_s / 1e9:.1f} GB/s\n")
    print(
        "| optimizer | path | median ms | vs AdamW fused (interleaved) | first step ms | overhead s "
        "| transient | transient / state | GB/s | of probe |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = f"{statistics.median(r.ratios):.2f}x" if r.ratios else "1.00x"
        overhead = max(0.0, (r.first_ms - r.median_ms) / 1e3)
        share = "-" if r.transient is None or not r.state_bytes else f"{r.transient / r.state_bytes:.1%}"
        bandwidth = r.bytes_per_step / (r.median_ms / 1e3)
        print(
            f"| {r.name} | {r.path} | {r.median_ms:.1f} | {ratio} | {r.first_ms:.0f} | {overhead:.2f} "
            f"| {_fmt_bytes(r.transient)} | {share} | {bandwidth / 1e9:.1f} | {bandwidth / copy_bytes_per_s:.0%} |"
        )


def measure_in_child(args: argparse.Namespace, layout: str, names: list[str]) -> dict[str, int | None]:
    """Transient memory of each optimizer, measured in a fresh process with exact allocation."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", layout, "--names", json.dumps(names)]
    command += ["--device", args.device]
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
    device = torch.device(args.device)
    shapes = layouts(args.quick)[args.memory_child]
    factories = {entry.name: entry.factory for entry in entries()}
    params = make_params(shapes, device)
    out = {name: memory_one(factories[name], params, device) for name in json.loads(args.names)}
    print(json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 timed steps and smaller layouts")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per optimizer (default 15)")
    parser.add_argument("--only", default="", help="comma-separated substrings of optimizer names to run")
    parser.add_argument("--layout", choices=["all", "gpt2", "small"], default="all")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--no-memory", action="store_true", help="skip the transient-memory pass")
    parser.add_argument("--warm-cache", action="store_true", help="reuse the kernel caches (first step faster)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timing passes, each over newly allocated parameters and state; steps of all passes are pooled",
    )
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--names", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.quick else 15)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args)
    device = torch.device(args.device)
    wanted = [s.strip().lower() for s in args.only.split(",") if s.strip()]
    chosen = [
        entry
        for entry in entries()
        if (entry.package is None or importlib.util.find_spec(entry.package) is not None)
        and (not wanted or any(w in entry.name.lower() for w in wanted) or entry.name == REFERENCE)
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, load average {load:.2f}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    all_layouts = layouts(args.quick)
    selected = list(all_layouts.items())
    if args.layout != "all":
        selected = [selected[0] if args.layout == "gpt2" else selected[1]]
    results: dict[str, list[Result]] = {}
    copies: dict[str, float] = {}
    with compile_cache(cold=not args.warm_cache):
        for layout, shapes in selected:
            copies[layout] = 0.0
            runs: list[list[Result]] = []
            for repeat in range(max(1, args.repeats)):
                # new buffers in each pass: how fast a buffer streams depends on where it lands in memory
                params = make_params(shapes, device)
                copies[layout] = max(copies[layout], probe_bandwidth(device))  # the quietest moment
                reference = chosen[0].factory(params)
                reference.step()
                runs.append([])
                for entry in chosen:
                    # the probe's buffers land somewhere new each time, and the machine's bandwidth drifts:
                    # probing before every optimizer and keeping the best approaches what the machine can stream
                    copies[layout] = max(copies[layout], probe_bandwidth(device))
                    result = time_one(entry, params, steps, None if entry.name == REFERENCE else reference, device)
                    runs[-1].append(result)
                    print(
                        f"  {layout} pass {repeat + 1}: {entry.name} ({result.path}): {result.median_ms:.1f} ms, "
                        f"{statistics.median(result.ratios) if result.ratios else 1.0:.2f}x",
                        file=sys.stderr,
                    )
                del params, reference
                gc.collect()
            copies[layout] = max(copies[layout], probe_bandwidth(device))
            results[layout] = [merge(list(column)) for column in zip(*runs)]
        if not args.no_memory:
            for layout, _ in selected:
                transients = measure_in_child(args, layout, [r.name for r in results[layout]])
                for result in results[layout]:
                    result.transient = transients.get(result.name)
    for layout, layout_results in results.items():
        report(layout, layout_results, copies[layout], device.type)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
