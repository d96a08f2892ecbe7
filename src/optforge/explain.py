"""``explain``: which group each parameter lands in, with its lr and weight decay, and why.

Example:
    >>> import torch, optforge
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3))
    >>> table = optforge.explain(model, {"name": "AdamW", "lr": 0.01, "weight_decay": 0.1})
    >>> print(table)
    parameter  group     lr    weight_decay  shape  numel  placed_by
    ---------  --------  ----  ------------  -----  -----  ---------------------
    0.weight   default   0.01  0.1           3x2        6
    0.bias     no_decay  0.01  0             3          3  no_weight_decay: bias
    1.weight   no_decay  0.01  0             3          3  no_weight_decay: norm
    1.bias     no_decay  0.01  0             3          3  no_weight_decay: bias
    <BLANKLINE>
    group     tensors  numel  lr    weight_decay
    --------  -------  -----  ----  ------------
    default         1      6  0.01  0.1
    no_decay        3      9  0.01  0
    <BLANKLINE>
    AdamW: 2 groups, 4 tensors, 15 trainable parameters, 0 frozen
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from optforge.around_step import describe
from optforge.builder import resolve_optimizer_spec
from optforge.composite_plan import composite_document, composite_group_plan
from optforge.config import Problems, read_around_step
from optforge.config_source import read_config
from optforge.errors import ConfigError
from optforge.optimizers._common import StepPathChoice, default_foreach
from optforge.optimizers._fused import combine, select_path
from optforge.optimizers.low_precision import LowPrecisionState
from optforge.param_groups import GroupPlan, plan_param_groups
from optforge.resolution import OptimizerSpec

__all__ = ["ParamTable", "explain"]

# Columns whose cells are numbers, right-aligned in the text table.
_NUMERIC = frozenset({"numel", "tensors"})


def table_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[table_cell(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if name in _NUMERIC else value.ljust(width)
            for name, value, width in zip(columns, values, widths)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)])


@dataclass(frozen=True)
class ParamTable:
    """Every parameter of a model with its group, lr, weight decay, shape, size and what placed it.

    A renderer needs only ``columns``/``rows`` (one row per parameter) and
    ``group_columns``/``group_rows`` (one row per group); ``totals`` sums them up.

    Attributes:
        optimizer: The optimizer's registry name.
        columns: Names of the parameter-table columns.
        rows: One tuple per parameter, in model order; frozen ones have group ``None``.
        group_columns: Names of the group-table columns.
        group_rows: One tuple per group, in optimizer order.
        totals: ``groups``, ``tensors``, ``trainable`` and ``frozen`` counts.
        step_path: For optforge's own optimizers, the implementation a step
            uses and why (``"fused (automatic: ...)"``); ``""`` for the others.
        around_step: What runs around each step (``clip_grad:``, ``ema:``,
            ``skip_nonfinite:``), in words; ``""`` for nothing.
        state_bytes: For optforge's optimizers with ``state_precision``, the
            optimizer state's bytes per trainable parameter (``"2.03 B/param
            (8bit)"``); ``""`` for the others.
    """

    optimizer: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    group_columns: tuple[str, ...]
    group_rows: tuple[tuple[Any, ...], ...]
    totals: dict[str, int]
    step_path: str = ""
    around_step: str = ""
    state_bytes: str = ""

    def __str__(self) -> str:
        t = self.totals
        summary = (
            f"{self.optimizer}: {t['groups']} groups, {t['tensors']} tensors, "
            f"{t['trainable']:,} trainable parameters, {t['frozen']:,} frozen"
        )
        if self.step_path:
            summary += f"\nstep path: {self.step_path}"
        if self.state_bytes:
            summary += f"\noptimizer state: {self.state_bytes}"
        if self.around_step:
            summary += f"\n{self.around_step}"
        return "\n\n".join(
            [_text_table(self.columns, self.rows), _text_table(self.group_columns, self.group_rows), summary]
        )

    def records(self) -> list[dict[str, Any]]:
        """The parameter rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row)) for row in self.rows]


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape) or "scalar"


def table_from_plan(plan: GroupPlan, optimizer: str) -> ParamTable:
    """The :class:`ParamTable` of a :class:`~optforge.param_groups.GroupPlan`."""
    by_name = {group["name"]: group for group in plan.groups}

    def setting(group: dict[str, Any] | None, key: str) -> Any:
        return None if group is None else group.get(key, plan.defaults.get(key))

    rows = []
    for placement in plan.placements:
        info, group = placement.info, by_name.get(placement.group or "")
        name = info.name + "".join(f" (= {alias})" for alias in info.aliases[1:])
        rows.append(
            (
                name,
                placement.group,
                setting(group, "lr"),
                setting(group, "weight_decay"),
                _shape(info.param.shape),
                info.param.numel(),
                ", ".join(placement.reasons),
            )
        )
    group_rows = tuple(
        (
            group["name"],
            len(group["params"]),
            sum(p.numel() for p in group["params"]),
            setting(group, "lr"),
            setting(group, "weight_decay"),
        )
        for group in plan.groups
    )
    trainable = sum(row[2] for row in group_rows)
    totals = {
        "groups": len(group_rows),
        "tensors": len(rows),
        "trainable": trainable,
        "frozen": sum(p.info.param.numel() for p in plan.placements if p.group is None),
    }
    return ParamTable(
        optimizer,
        ("parameter", "group", "lr", "weight_decay", "shape", "numel", "placed_by"),
        tuple(rows),
        ("group", "tensors", "numel", "lr", "weight_decay"),
        group_rows,
        totals,
    )


def explain(model: nn.Module, config: Any) -> ParamTable:
    """Show where every parameter of ``model`` lands under ``config``, without building anything.

    Args:
        model: The model.
        config: Any optimizer config or config document (see :func:`optforge.build_optimizer`).

    Returns:
        A :class:`ParamTable`; ``print`` it for a plain-text table.

    Raises:
        ConfigError: for the errors building would raise.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"explain needs a model (an nn.Module), got {type(model).__name__}")
    config = read_config(config)  # a YAML path is read once
    document = composite_document(config)
    around = _around_step(config)
    if document is not None:  # a list of parts: each parameter's part shows in its group name and placed_by
        return dataclasses.replace(table_from_plan(*composite_group_plan(model, document)), around_step=around)
    spec = resolve_optimizer_spec(config)
    plan = plan_param_groups(model, spec)
    table = table_from_plan(plan, spec.entry.name)
    return dataclasses.replace(
        table, step_path=_step_path(spec, plan), around_step=around, state_bytes=_state_bytes(spec, plan)
    )


def _around_step(config: Any) -> str:
    """What the document's ``clip_grad:``, ``ema:`` and ``skip_nonfinite:`` run around the step, in words."""
    if not isinstance(config, Mapping) or "optimizer" not in config:
        return ""
    problems = Problems()
    around = read_around_step(config, problems)
    problems.raise_if_any()
    return describe(around)


def _state_bytes(spec: OptimizerSpec, plan: GroupPlan) -> str:
    """The optimizer state's bytes per trainable parameter, for optimizers with ``state_precision`` (else ``""``)."""
    cls = spec.entry.resolve_class()
    if not issubclass(cls, LowPrecisionState):
        return ""
    total, count, precisions = 0, 0, set()
    for group in plan.groups:
        params = [param for param in group["params"] if param.requires_grad]
        precision = group.get("state_precision", plan.defaults.get("state_precision", "fp32"))
        precisions.add(precision)
        total += cls.state_bytes(params, precision)
        count += sum(param.numel() for param in params)
    return f"{total / max(count, 1):.2f} B/param ({', '.join(sorted(precisions))})"


def _step_path(spec: OptimizerSpec, plan: GroupPlan) -> str:
    """The step path optforge's own optimizers would take over the plan's groups (``""`` for others)."""
    if not issubclass(spec.entry.resolve_class(), StepPathChoice):
        return ""
    paths = []
    for group in plan.groups:
        params = [param for param in group["params"] if param.requires_grad]
        foreach, fused = (group.get(key, plan.defaults.get(key)) for key in ("foreach", "fused"))
        default = "foreach" if foreach is None and default_foreach(params) else "single"
        paths.append(select_path(params, foreach, fused, default))
    path = combine(paths)
    return f"{path.name} ({path.reason})"
