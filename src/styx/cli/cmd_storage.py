"""``styx storage``: the storage objects (named buckets) Styx made or mounts: ls, delete, and
the state of a cluster's bucket mounts."""

from __future__ import annotations

import json

import click


@click.group()
def storage() -> None:
    """Storage objects: the buckets of file mounts with a name (and local folders uploaded)."""


@storage.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def ls(as_json: bool) -> int:
    """List storage objects: name, store, bucket, status, who uses them."""
    from styx.cli.tables import _ago, render
    from styx.ops import common
    from styx.ops import storage as ops

    records = ops.ls(common.database())
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        click.echo("No storage objects.")
        return 0
    rows = [
        [r.name, _ago(r.updated_at), r.store, r.url, r.status,
         "yes" if r.persistent else "no", ", ".join(r.clusters) or "-",
         ", ".join(r.sources) or "-", r.last_use or "-"]
        for r in records
    ]  # fmt: skip
    headers = ["NAME", "UPDATED", "STORE", "BUCKET", "STATUS", "PERSISTENT", "CLUSTERS",
               "SOURCE", "COMMAND"]  # fmt: skip
    render(headers, rows)
    return 0


@storage.command("delete")
@click.argument("names", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Delete every storage object.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(names: tuple[str, ...], all_: bool, yes: bool) -> int:
    """Delete storage objects: the buckets Styx made (with every object in them); for buckets
    Styx did not make, only the record goes."""
    from styx.cli.confirm import confirm
    from styx.errors import UsageError
    from styx.ops import common
    from styx.ops import storage as ops

    if bool(names) == all_:
        raise UsageError(
            "Give storage names or --all, not both and not neither.",
            "Run `styx storage delete NAME...` or `styx storage delete --all`.",
            code="invalid-usage",
        )
    what = "every storage object" if all_ else ", ".join(names)
    confirm(f"Deleting {what}, and the buckets Styx made for them. Proceed?", yes=yes,
            destructive=True)  # fmt: skip
    for name, done in ops.delete(common.database(), names, all_=all_):
        click.echo(f"Storage {name!r}: {done}.")
    return 0


@storage.command("mounts")
@click.argument("cluster")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def mounts(cluster: str, as_json: bool) -> int:
    """Show a cluster's bucket mounts on each node: mounted or gone, and the cached writes not
    yet uploaded to the bucket."""
    import dataclasses

    from styx.cli.tables import render
    from styx.cluster import bucket_mounts as ops_states
    from styx.ops import common
    from styx.ops import storage as ops

    record = common.require_cluster(common.database(), cluster)
    found = ops.mount_states(common.handle_of(record), common.provider_of(record))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(m) for m in found], indent=2))
        return 0
    if not found:
        click.echo(f"Cluster {cluster!r} has no bucket mounts.")
        return 0

    def state(m: ops_states.MountState) -> list[str]:
        if not m.reachable:
            return ["UNREACHABLE", "?", "?"]
        return ["MOUNTED" if m.mounted else "GONE", str(m.pending_files), str(m.pending_bytes)]

    rows = [[m.node, m.dest, *state(m)] for m in found]
    render(["NODE", "PATH", "STATE", "PENDING FILES", "PENDING BYTES"], rows)
    return 0
