"""Optional providers load on first use of their names, and say which extra to install."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

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
