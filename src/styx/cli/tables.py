"""Tables that read well: clusters and jobs, rendered with rich."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

_STATUS_STYLE = {
    "UP": "green",
    "STOPPED": "yellow",
    "INIT": "cyan",
    "DEGRADED": "red",
    "SUCCEEDED": "green",
    "RUNNING": "cyan",
    "PENDING": "dim",
    "SETTING_UP": "cyan",
    "FAILED": "red",
    "FAILED_SETUP": "red",
    "FAILED_DRIVER": "red",
    "CANCELLED": "yellow",
}


def _status(value: str) -> str:
    style = _STATUS_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _duration(start: float | None, end: float | None) -> str:
    if not start:
        return "-"
    s = (end or time.time()) - start
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m {int(s % 60)}s"


def _resources(res: Any, num_nodes: int) -> str:
    if not isinstance(res, dict):
        return f"{num_nodes}x"
    parts = []
    for key in ("cpus", "memory", "accelerators", "instance_type"):
        if res.get(key) not in (None, "", {}, []):
            value = res[key]
            parts.append(f"{key}={value}" if key != "accelerators" else str(value))
    return f"{num_nodes}x(" + ", ".join(parts) + ")" if parts else f"{num_nodes}x"


def _autostop(value: Any) -> str:
    if not isinstance(value, dict) or value.get("idle_minutes") is None:
        return "-"
    return f"{value['idle_minutes']}m" + (" (down)" if value.get("down") else "")


def cluster_table(records: Sequence[Any]) -> None:
    console = Console(highlight=False)
    if not records:
        console.print("No clusters. Launch one with: styx launch TASK.yaml")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("NAME", "INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED", "LAST USE"):
        table.add_column(
            col, no_wrap=True, overflow="ellipsis", max_width=40 if col == "LAST USE" else None
        )
    for r in records:
        table.add_row(
            r.name,
            r.provider,
            _resources(r.launched_resources, r.num_nodes),
            _status(r.status.value),
            _autostop(r.autostop),
            _ago(r.launched_at),
            r.last_use or "-",
        )
    console.print(table)


def job_table(cluster: str, jobs: Sequence[Any]) -> None:
    console = Console(highlight=False)
    console.print(f"[bold]Job queue of '{cluster}'[/]")
    if not jobs:
        console.print("  No jobs.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("ID", "NAME", "USER", "SUBMITTED", "STARTED", "DURATION", "RESOURCES", "STATUS"):
        table.add_column(col, no_wrap=True)
    for j in jobs:
        demand = j.demand
        res = (
            f"{j.num_nodes}x[CPU:{demand.cpus:g}"
            + (f", {demand.accelerator or 'GPU'}:{demand.gpus:g}" if demand.gpus else "")
            + "]"
        )
        table.add_row(
            str(j.job_id),
            j.name or "-",
            j.user or "-",
            _ago(j.submitted_at),
            _ago(j.started_at),
            _duration(j.started_at, j.ended_at),
            res,
            _status(j.status.value),
        )
    console.print(table)
