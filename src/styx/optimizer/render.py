"""The considered-resources table that ``launch --dryrun`` prints: the choice and runners-up."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from styx.optimizer.types import Candidate, Objective, Plan, TaskPlan
from styx.spec.quantities import num

if TYPE_CHECKING:
    from rich.console import RenderableType

COLUMNS = (
    "INFRA",
    "INSTANCE",
    "vCPUs",
    "MEM(GB)",
    "ACCELERATORS",
    "SPOT",
    "$/H",
    "COST ($)",
    "CHOSEN",
)


def _money(value: float) -> str:
    if math.isnan(value):
        return "?"
    return f"{value:.2f}" if value >= 0.01 or value == 0 else f"{value:.4f}"


def candidate_row(c: Candidate, hours: float, chosen: bool) -> tuple[str, ...]:
    """One table row: where, what, prices (per node-hour and for the estimated run)."""
    return (
        c.location,
        c.instance_type or "-",
        "-" if c.cpus is None else str(num(c.cpus)),
        "-" if c.memory_gb is None else str(num(round(c.memory_gb, 1))),
        f"{c.accelerator}:{num(c.accelerator_count)}" if c.accelerator else "-",
        "yes" if c.use_spot else "-",
        _money(c.hourly_price),
        _money(c.cluster_hourly_price * hours),
        "✔" if chosen else "",
    )


def task_rows(plan: TaskPlan) -> list[tuple[str, ...]]:
    """The chosen candidate's row, then the runners-up's."""
    rows = [candidate_row(plan.chosen, plan.hours, True)]
    rows.extend(candidate_row(c, plan.hours, False) for c in plan.runners_up)
    return rows


def _title(plan: Plan, task: TaskPlan) -> str:
    nodes = task.chosen.num_nodes
    head = f"Considered resources ({nodes} node{'s' if nodes != 1 else ''})"
    if len(plan.tasks) > 1:
        head = f"Task {task.task_name or task.task_index}: " + head[0].lower() + head[1:]
    return head


def summary(plan: Plan) -> str:
    """One line: objective, estimated total cost and time, egress, how the DAG was solved."""
    hours = plan.total_seconds / 3600.0
    parts = [
        f"Objective: {plan.objective.value}",
        f"estimated cost ${_money(plan.total_cost)}",
        f"time {hours:.2f} h",
    ]
    if len(plan.tasks) > 1 or plan.egress_cost or plan.egress_seconds:
        parts.append(f"egress ${_money(plan.egress_cost)} / {plan.egress_seconds:.0f} s")
    if len(plan.tasks) > 1:
        parts.append(f"solved by {plan.method}")
    return "; ".join(parts) + "."


def render_plan(plan: Plan) -> RenderableType:
    """A rich renderable: one table per task, the chosen row marked, then the summary."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = []
    for task in plan.tasks:
        table = Table(title=_title(plan, task), title_justify="left", box=None, header_style="bold")
        for name in COLUMNS:
            table.add_column(name, justify="right" if name in ("$/H", "COST ($)") else "left")
        for i, row in enumerate(task_rows(task)):
            table.add_row(*row, style="bold green" if i == 0 else None)
        parts.append(table)
    parts.append(Text(summary(plan), style="dim"))
    parts.extend(Text(note, style="yellow") for note in plan.notes)
    return Group(*parts)


def plan_text(plan: Plan) -> str:
    """The same content as :func:`render_plan`, as plain aligned text."""
    lines: list[str] = []
    for task in plan.tasks:
        rows = [COLUMNS, *task_rows(task)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
        lines.append(_title(plan, task) + ":")
        lines.extend(
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        )
        lines.append("")
    lines.append(summary(plan))
    lines.extend(plan.notes)
    return "\n".join(lines)


__all__ = ["Objective", "plan_text", "render_plan", "summary"]
