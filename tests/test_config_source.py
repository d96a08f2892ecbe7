"""Reading configs: UTF-8 YAML only, no duplicate keys, string keys, no cycles or runaway nesting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import optforge
from optforge import config_source
from optforge.config_source import load_config, to_plain
from optforge.errors import ConfigError


def _problems(source: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(source)
    return dict(info.value.problems)


def _file(tmp_path: Path, content: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_numbers_in_exponent_form_are_floats(tmp_path: Path) -> None:
    path = _file(tmp_path, "lr: 1e-3\nwd: 5E-2\neps: .5\nsteps: 1_000\nbig: 1e+3\n")
    assert load_config(path) == {"lr": 0.001, "wd": 0.05, "eps": 0.5, "steps": 1000, "big": 1000.0}


def test_the_libyaml_parser_is_used_when_available() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    assert issubclass(config_source._Loader, yaml.CSafeLoader)


def test_duplicate_keys_are_errors_naming_each_place_and_line(tmp_path: Path) -> None:
    path = _file(tmp_path, "name: SGD\nlr: 0.1\nlr: 0.2\noptimizer:\n  a: 1\n  b: 2\n  a: 3\n")
    problems = _problems(path)
    assert problems == {
        "lr": "duplicate key (lines 2 and 3); YAML would keep the last: remove one",
        "optimizer.a": "duplicate key (lines 5 and 7); YAML would keep the last: remove one",
    }


def test_merge_keys_may_override_without_being_duplicates(tmp_path: Path) -> None:
    path = _file(tmp_path, "base: &b {lr: 1, wd: 2}\nopt:\n  <<: *b\n  lr: 3\n")
    assert load_config(path)["opt"] == {"lr": 3, "wd": 2}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: SGD\n".encode("utf-16"), "config file is encoded as UTF-16; save it as UTF-8"),
        ("name: SGD\n".encode("utf-32"), "config file is encoded as UTF-32; save it as UTF-8"),
        ("name: SGD\n".encode("utf-16-le"), "config file holds a NUL byte at offset 1"),
        (bytes(range(256)), "config file holds a NUL byte at offset 0: it is binary"),
        ("name: caf\xe9\n".encode("latin-1"), "config file is not UTF-8 text: byte 0xe9 at offset 9 (line 1)"),
        (b"name: SGD\nlr: [1, 2\n", "config file is not valid YAML"),
        (b"name: \x07\n", "config file is not valid YAML"),
    ],
    ids=["utf-16", "utf-32", "utf-16 without BOM", "binary", "latin-1", "bad YAML", "control character"],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = _file(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}"), str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    assert load_config(_file(tmp_path, "\ufeffname: SGD\n")) == {"name": "SGD"}


def test_missing_file_and_impossible_name(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nope.yaml") == {str(tmp_path / "nope.yaml"): "config file does not exist"}
    (message,) = _problems("x" * 5000).values()
    assert message.startswith("cannot read the config file")


def test_self_referential_yaml_is_an_error(tmp_path: Path) -> None:
    assert _problems(_file(tmp_path, "a: &x [1, *x]\n")) == {"a[1]": "refers to itself (a cyclic structure)"}


def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path: Path) -> None:
    path = _file(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    (where, message), *_ = _problems(path).items()
    assert where.startswith("a[0][0]")
    assert message == f"nested more than {config_source.MAX_DEPTH} levels deep"


def test_alias_bombs_are_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_source, "MAX_VALUES", 10_000)
    lines = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    for prev, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    (message,) = _problems(_file(tmp_path, "\n".join(lines) + "\n")).values()
    assert message == "the config holds more than 10,000 values (aliases expanded)"


def test_non_string_keys_are_errors_everywhere() -> None:
    problems = _problems({1: 2, "a": {None: 3, "b": [{(1, 2): 4}]}})
    assert problems == {
        "1": "keys must be strings, got int 1",
        "a.None": "keys must be strings, got NoneType None",
        "a.b[0].(1, 2)": "keys must be strings, got tuple (1, 2)",
    }


def test_yaml_booleans_as_keys_get_a_hint(tmp_path: Path) -> None:
    (message,) = _problems(_file(tmp_path, "on: 1\n")).values()
    assert (
        message == "keys must be strings, got bool True (YAML reads unquoted yes/no/on/off as booleans: quote the key)"
    )


def test_cyclic_mappings_and_deep_lists_from_python() -> None:
    cyclic: dict = {"name": "SGD"}
    cyclic["me"] = [cyclic]
    assert _problems(cyclic) == {"me[0]": "refers to itself (a cyclic structure)"}
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert list(_problems({"x": deep}).values()) == [f"nested more than {config_source.MAX_DEPTH} levels deep"]


def test_shared_values_are_not_cycles() -> None:
    shared = {"constant": 0.1}
    assert to_plain({"a": shared, "b": [shared, shared]}) == {"a": shared, "b": [shared, shared]}


def test_omegaconf_interpolation_errors_are_config_errors() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name": "SGD", "lr": "${missing}"})
    (message,) = _problems(cfg).values()
    assert message.startswith("cannot resolve the OmegaConf config")


def test_build_optimizer_reports_non_string_keys_with_their_place() -> None:
    import torch

    with pytest.raises(ConfigError) as info:
        optforge.build_optimizer(torch.nn.Linear(1, 1), {1: 2, "a": 3})
    assert info.value.problems == [("1", "keys must be strings, got int 1")]


def test_many_rows_load_with_floats_and_no_false_duplicates(tmp_path: Path) -> None:
    rows = "".join(f"  - {{a: {i}, b: 1e-3}}\n" for i in range(3000))
    data = load_config(_file(tmp_path, "name: SGD\nitems:\n" + rows))
    assert len(data["items"]) == 3000
    assert data["items"][5] == {"a": 5, "b": 0.001}
