"""Run a function on several ranks (gloo, CPU), each in its own process, and collect what each returns.

``run_ranks("tests.integrations.test_ddp:train", tmp_path, steps=3)`` starts one
``python -m tests.integrations._launch`` process per rank; they meet through a file
store in ``tmp_path`` (no port to pick, so no port clash). Each calls
``train(rank, world_size, workdir, **kwargs)`` inside an initialized process group
and saves its return value. A rank that fails or a run past ``timeout`` ends all
ranks and fails the test with each rank's error output.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_ranks(target: str, workdir: Path, *, world_size: int = 2, timeout: float = 90.0, **kwargs: Any) -> list[Any]:
    """Run ``target`` (``"module:function"``) on ``world_size`` ranks; the return values, by rank."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kwargs.json").write_text(json.dumps(kwargs))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",  # the ranks share the machine's cores
    }
    procs, logs = [], []
    for rank in range(world_size):
        log = (workdir / f"rank{rank}.log").open("w")
        logs.append(log)
        cmd = [sys.executable, "-m", "tests.integrations._launch", target, str(rank), str(world_size), str(workdir)]
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    failed = None
    try:
        while any(p.poll() is None for p in procs):
            failed = next((p for p in procs if p.returncode not in (None, 0)), None)
            if failed is not None or time.monotonic() > deadline:
                time.sleep(1.0 if failed is not None else 0)  # let the other ranks report their own error
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    if any(code != 0 for code in codes):
        timed_out = failed is None and time.monotonic() > deadline
        reason = f"timed out after {timeout:.0f} s" if timed_out else "a rank failed"
        outputs = "\n".join(
            f"--- rank {rank} (exit {code}) ---\n{(workdir / f'rank{rank}.log').read_text()[-4000:]}"
            for rank, code in enumerate(codes)
        )
        raise AssertionError(f"{target} on {world_size} ranks: {reason}\n{outputs}")
    return [torch.load(workdir / f"result{rank}.pt", weights_only=False) for rank in range(world_size)]


def _main(target: str, rank: int, world_size: int, workdir: Path) -> None:
    import torch.distributed as dist

    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    kwargs = json.loads((workdir / "kwargs.json").read_text())
    dist.init_process_group(
        "gloo",
        init_method=f"file://{workdir / 'store'}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        result = function(rank, world_size, workdir, **kwargs)
        torch.save(result, workdir / f"result{rank}.pt")
        # Every rank is done communicating before any tears its connections down;
        # otherwise gloo may abort a rank whose peer closed first.
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
