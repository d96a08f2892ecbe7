"""Optional providers load on first use of their names, and say which extra to install."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import threading
from typing import Any

OPTIONAL_MODULES = ("timm", "pytorch_optimizer", "optforge.providers.timm", "optforge.providers.pytorch_optimizer")


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_providers_load_only_when_one_of_their_names_is_used() -> None:
    out = _python(
        f"""
        import json, sys, torch, optforge
        loaded = lambda: sorted(m for m in {OPTIONAL_MODULES!r} if m in sys.modules)
        steps = [loaded()]
        optforge.build_optimizer(torch.nn.Linear(2, 1), {{"name": "AdamW", "lr": 1e-3}})
        optforge.list_optimizers("adam*", provider="torch")
        steps.append(loaded())
        if {importlib.util.find_spec("pytorch_optimizer") is not None}:
            optforge.get_optimizer_entry("pytorch_optimizer.ranger")
            steps.append(loaded())
        print(json.dumps(steps))
        """
    )
    steps = json.loads(out)
    assert steps[:2] == [[], []]
    if len(steps) == 3:
        assert steps[2] == ["optforge.providers.pytorch_optimizer", "pytorch_optimizer"]


def test_a_name_of_a_missing_package_names_the_extra() -> None:
    names = {"timm.lamb": "timm", "timm_Lamb": "timm", "pytorch_optimizer.ranger": "pytorch-optimizer"}
    out = _python(
        f"""
        import optforge
        from optforge.registry import Provider
        Provider.is_installed = lambda self: self.package is None  # as if no optional package were installed
        for name in {list(names)!r}:
            try:
                optforge.get_optimizer_entry(name)
            except optforge.ConfigError as err:
                print(err)
        print(len(optforge.list_optimizers("timm*")), len(optforge.list_optimizers("pytorch_optimizer*")))
        """
    )
    *messages, counts = out.splitlines()
    assert len(messages) == len(names)
    for message, (name, extra) in zip(messages, names.items()):
        assert message.startswith(f"optimizer.name: {name!r} comes from the")
        assert f"pip install -e '.[{extra}]'" in message
    assert counts == "0 0"  # listings leave out providers that are not installed


# A provider whose loader registers its entry only once the test lets it.
_SLOW_TABLE: Any = None
_LOADER_STARTED = threading.Event()
_LOADER_MAY_FINISH = threading.Event()


def _slow_loader() -> None:
    from optforge.registry import OptimizerEntry

    _LOADER_STARTED.set()
    assert _LOADER_MAY_FINISH.wait(timeout=30)
    _SLOW_TABLE.add(OptimizerEntry("slow.Thing", "torch.optim:SGD"), overwrite=False)


def test_a_second_thread_waits_for_a_provider_that_is_loading() -> None:
    """A thread asking for a name while another thread loads its provider gets the entry, not 'unknown'."""
    global _SLOW_TABLE
    from optforge.named_registry import NamedRegistry, Provider

    _SLOW_TABLE = NamedRegistry("optimizer", hint="")
    _SLOW_TABLE.providers.register(Provider(name="slow", loader=f"{__name__}:_slow_loader", prefixes=("slow.",)))
    results: dict[str, Any] = {}

    def ask(who: str) -> None:
        try:
            results[who] = _SLOW_TABLE.get("slow.thing", path="optimizer.name").name
        except Exception as exc:  # the failure under test is an 'unknown optimizer' ConfigError
            results[who] = exc

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert _LOADER_STARTED.wait(timeout=30)
    second = threading.Thread(target=ask, args=("second",))
    second.start()
    second.join(timeout=0.5)  # it must wait for the load, not answer while the loader runs
    assert second.is_alive(), f"answered during the load: {results.get('second')!r}"
    _LOADER_MAY_FINISH.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert results == {"first": "slow.Thing", "second": "slow.Thing"}
    assert _SLOW_TABLE.providers.loaded == {"slow"}
