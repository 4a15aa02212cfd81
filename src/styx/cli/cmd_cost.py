"""``styx cost-report``: what clusters, managed jobs and DAG runs have cost so far.

The numbers come from :mod:`styx.ops.cost`; this module only lays them out.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from styx.ops.cost import ClusterCost, CostReport, Total


@click.command("cost-report")
@click.option(
    "-a", "--all", "show_all", is_flag=True, help="Also list the clusters of managed jobs."
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Only what was up in the last DAYS days.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every cluster, with intervals).")
def cost_report(show_all: bool, days: int, as_json: bool) -> int:
    """Show what clusters (live and torn down), managed jobs and DAG runs have cost.

    Prices are the ones the optimizer used at launch; a cluster is billed from its launch to
    its teardown, except while STOPPED. This machine and SSH pools cost 0 unless the config
    sets ``local.hourly_price`` or ``ssh.hourly_price`` (per node and hour).
    """
    from styx.ops import cost

    # The table lists managed jobs' clusters only with --all: their resources are not needed.
    report = cost.cost_report(days=days, job_resources=show_all or as_json)
    if as_json:
        click.echo(json.dumps(cost.to_json(report), indent=2))
        return 0
    _render(report, show_all, days)
    return 0


_CLUSTER_HEADERS = ("NAME", "LAUNCHED", "DURATION", "INFRA", "RESOURCES", "STATUS", "$/H", "COST")


def _render(report: CostReport, show_all: bool, days: int) -> None:
    from styx.cli.tables import render

    clusters = [c for c in report.clusters if show_all or c.managed_job_id is None]
    hidden = len(report.clusters) - len(clusters)
    if clusters or not report.jobs:
        click.echo(click.style("Clusters", bold=True))
        if clusters:
            render(_CLUSTER_HEADERS, [_cluster_row(c, show_all) for c in clusters])
        else:
            click.echo(f"  No clusters up in the last {days} days.")
    if report.jobs:
        click.echo(("\n" if clusters else "") + click.style("Managed jobs", bold=True))
        render(
            ("ID", "NAME", "STATUS", "CLUSTERS", "DURATION", "COST"),
            [(str(j.id), j.name, j.status, *_sum_cells(j.total)) for j in report.jobs],
        )
    if report.dag_runs:
        click.echo(click.style("\nDAG runs", bold=True))
        render(
            ("ID", "NAME", "STATUS", "JOBS", "CLUSTERS", "DURATION", "COST"),
            [
                (str(r.id), r.name, r.status, str(r.jobs), *_sum_cells(r.total))
                for r in report.dag_runs
            ],
        )
    click.echo("\n" + _total_line(report.total, hidden, days))


def _cluster_row(c: ClusterCost, show_all: bool) -> tuple[str, ...]:
    name = c.name
    if show_all and c.managed_job_id is not None:
        name += f" (job {c.managed_job_id})"
    return (
        name,
        _ago(c.launched_at),
        _duration(c.seconds),
        c.infra,
        _resources(c.resources, c.num_nodes),
        c.status,
        "-" if c.hourly_price is None else _money(c.hourly_price),
        _money(c.cost),
    )


def _sum_cells(t: Total) -> tuple[str, str, str]:
    """Clusters, duration and cost of a sum; ``+`` marks a sum with unpriced clusters left out."""
    if t.clusters and t.unpriced == t.clusters:
        cost = "-"
    else:
        cost = _money(t.cost) + ("+" if t.unpriced else "")
    return str(t.clusters), _duration(t.seconds), cost


def _total_line(t: Total, hidden: int, days: int) -> str:
    line = f"Total: {_money(t.cost)} over {t.clusters} cluster(s), last {days} days"
    if hidden:
        line += f"; {hidden} of them managed jobs' (--all lists them)"
    if t.unpriced:
        line += f"; {t.unpriced} without a known price, not counted"
    return line + "."


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or value >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            return f"{s // size}{unit} {(s % size) // subsize}{sub}"
    return f"{s // 60}m {s % 60}s"


def _ago(ts: float) -> str:
    s = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _resources(res: Any, num_nodes: int) -> str:
    """``2x(m5.large)``, ``1x(cpus=4+, A100:8)``, or ``1x`` when nothing was asked for."""
    if not isinstance(res, dict):
        return f"{num_nodes}x"
    parts = []
    if res.get("instance_type"):
        parts.append(str(res["instance_type"]))
    else:
        for key in ("cpus", "memory"):
            if res.get(key) not in (None, ""):
                parts.append(f"{key}={res[key]}")
    accels = res.get("accelerators")
    if isinstance(accels, dict):
        parts.extend(
            f"{k}:{v:g}" if isinstance(v, float | int) else str(k) for k, v in accels.items()
        )
    elif accels:
        parts.append(str(accels))
    if res.get("use_spot"):
        parts.append("spot")
    return f"{num_nodes}x(" + ", ".join(parts) + ")" if parts else f"{num_nodes}x"
