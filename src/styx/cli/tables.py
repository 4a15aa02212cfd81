"""Tables that read well: clusters and jobs.

Rendered by a small column formatter rather than rich's Table: a queue has hundreds of rows and
rich spends ~0.5 ms per row laying them out, which would dominate `styx queue`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import click

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


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], *, max_width: int = 40) -> None:
    """Print aligned columns (2 spaces apart) with a bold header; STATUS cells are coloured.

    On a terminal, cells wider than ``max_width`` are cut with an ellipsis; piped (to a file,
    ``grep``, a script), every value is printed whole. Control characters in a cell are shown
    escaped, so that a value cannot break the table's lines.
    """
    limit = max_width if _stdout_is_terminal() else None
    cut = [[_cell(c, limit) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cut]) for i, h in enumerate(headers)]
    status_col = headers.index("STATUS") if "STATUS" in headers else -1
    header = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    lines = [click.style(header, bold=True)]
    for row in cut:
        cells = []
        for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
            text = cell.ljust(w)
            if i == status_col and cell in _STATUS_STYLE:
                text = click.style(text, **_STYLE_ARGS[_STATUS_STYLE[cell]])
            cells.append(text)
        lines.append("  ".join(cells).rstrip())
    click.echo("\n".join(lines))  # click keeps the colours only on a terminal


def _cell(value: str, limit: int | None) -> str:
    if not value.isprintable():
        value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


_STYLE_ARGS: dict[str, dict[str, Any]] = {
    "green": {"fg": "green"},
    "yellow": {"fg": "yellow"},
    "cyan": {"fg": "cyan"},
    "red": {"fg": "red"},
    "dim": {"dim": True},
}


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


def _infra(res: Any, provider: str) -> str:
    """Where the cluster is: ``aws/us-east-1/us-east-1a``, ``ssh/lab``, else the provider."""
    infra = res.get("infra") if isinstance(res, dict) else None
    return str(infra) if isinstance(infra, str) and infra.startswith(provider) else provider


def _autostop(value: Any) -> str:
    if not isinstance(value, dict) or value.get("idle_minutes") is None:
        return "-"
    return f"{value['idle_minutes']}m" + (" (down)" if value.get("down") else "")


def cluster_table(records: Sequence[Any]) -> None:
    if not records:
        click.echo("No clusters. Launch one with: styx launch TASK.yaml")
        return
    headers = ("NAME", "INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED", "LAST USE")
    rows = [
        (
            r.name,
            _infra(r.launched_resources, r.provider),
            _resources(r.launched_resources, r.num_nodes),
            r.status.value,
            _autostop(r.autostop),
            _ago(r.launched_at),
            r.last_use or "-",
        )
        for r in records
    ]
    render(headers, rows)


def job_table(cluster: str, jobs: Sequence[Any]) -> None:
    click.echo(click.style(f"Job queue of '{cluster}'", bold=True))
    if not jobs:
        click.echo("  No jobs.")
        return
    headers = ("ID", "NAME", "USER", "SUBMITTED", "STARTED", "DURATION", "RESOURCES", "STATUS")
    rows = []
    for j in jobs:
        d = j.demand
        gpu = f", {d.accelerator or 'GPU'}:{d.gpus:g}" if d.gpus else ""
        rows.append(
            (
                str(j.job_id),
                j.name or "-",
                j.user or "-",
                _ago(j.submitted_at),
                _ago(j.started_at),
                _duration(j.started_at, j.ended_at),
                f"{j.num_nodes}x[CPU:{d.cpus:g}{gpu}]",
                j.status.value,
            )
        )
    render(headers, rows)
