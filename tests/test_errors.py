"""Messages stay short whatever the value, and never fail on odd keys."""

from __future__ import annotations

import pytest

from optforge.errors import MAX_MESSAGE, CheckpointError, ConfigError, truncate, unknown_choice


def test_truncate_keeps_short_values_whole() -> None:
    assert truncate(0.5) == "0.5"
    assert truncate("adamw") == "'adamw'"
    assert truncate([1, 2]) == "[1, 2]"


@pytest.mark.parametrize("limit", [20, 80])
def test_truncate_bounds_long_deep_and_cyclic_values(limit: int) -> None:
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    cyclic: dict = {}
    cyclic["self"] = cyclic
    for value in ("x" * 5_000_000, deep, cyclic, list(range(10**5)), 10**4000):
        assert len(truncate(value, limit)) <= limit


def test_truncate_survives_a_failing_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert truncate(Broken()).startswith("<Broken instance at 0x")


def test_a_huge_value_in_a_message_is_cut() -> None:
    err = ConfigError(f"bad value {'x' * 5_000_000!r}", path="optimizer.lr")
    assert len(str(err)) < MAX_MESSAGE + 100
    assert "characters cut" in str(err)
    (problem,) = err.problems
    assert problem[0] == "optimizer.lr"


def test_unknown_choice_with_keys_that_are_not_strings() -> None:
    err = unknown_choice("schedule.x", 3, [1, "cosine", None, "cosine_decay"])
    assert str(err).startswith("schedule.x: unknown value 3.")
    assert "Valid choices: 1, cosine, cosine_decay, None" in str(err)


def test_checkpoint_error_is_an_exception_but_not_a_config_error() -> None:
    assert issubclass(CheckpointError, Exception)
    assert not issubclass(CheckpointError, ValueError)
