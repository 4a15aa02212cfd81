"""``styx status``: the clusters table, read from the state database (``-r`` asks the infra)."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("clusters", nargs=-1)
@click.option("-r", "--refresh", is_flag=True, help="Ask the infra and each cluster's agent first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(clusters: tuple[str, ...], refresh: bool, as_json: bool) -> int:
    """Show clusters: name, infra, resources, status, autostop and when they were launched."""
    from styx.ops import common
    from styx.state.clusters import list_clusters

    db = common.database()
    records = list_clusters(db, names=list(clusters) if clusters else None)
    if refresh:
        from styx.ops.cluster_ops import refresh as refresh_one

        records = [r for r in (refresh_one(db, rec) for rec in records) if r is not None]
    if not clusters:
        _note_orphans({r.name for r in records})
    missing = [n for n in dict.fromkeys(clusters) if n not in {r.name for r in records}]
    if missing and not records:
        raise _not_found(missing)
    if as_json:
        rows = [
            {
                "name": r.name,
                "status": r.status.value,
                "infra": r.provider,
                "num_nodes": r.num_nodes,
                "resources": r.launched_resources,
                "autostop": r.autostop,
                "launched_at": r.launched_at,
                "last_use": r.last_use,
            }
            for r in records
        ]
        click.echo(json.dumps(rows, indent=2))
        if missing:
            raise _not_found(missing)
        return 0
    from styx.cli.tables import cluster_table

    cluster_table(records)
    if refresh:
        from styx.ops.cluster_ops import degraded_reason

        for r in records:
            if r.status.value == "DEGRADED":
                why = degraded_reason(db, r.name) or "unknown"
                click.echo(click.style(f"Cluster '{r.name}' is DEGRADED: {why}.", fg="red"))
                click.echo(f"  Run `styx down {r.name}` to free its hosts, or relaunch it.")
    if missing:
        raise _not_found(missing)
    return 0


def _not_found(names: list[str]) -> Exception:
    """ClusterNotFound naming every cluster asked for that does not exist."""
    from styx.errors import ClusterNotFound

    listed = ", ".join(f"'{n}'" for n in names)
    return ClusterNotFound(
        f"Cluster {listed} does not exist."
        if len(names) == 1
        else f"Clusters {listed} do not exist."
    )


def _note_orphans(known: set[str]) -> None:
    """Name clusters whose folder (and maybe runtime) the state database lost."""
    from styx.providers.orphans import find

    for orphan in find(known):
        name = orphan.name
        what = "its agent and Ray still run" if orphan.running else "its runtime is not running"
        click.echo(
            click.style(
                f"{orphan.infra.capitalize()} cluster '{name}' is not in the state database, but "
                f"{what} ({orphan.where}). `styx down {name}` stops it and removes it.",
                fg="yellow",
            ),
            err=True,
        )
