"""Cluster lifecycle: stop, start, down, autostop, and status refresh from the infra."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import click

from styx.errors import StyxError, UsageError
from styx.ops import common
from styx.ops.jobs_ops import save_history
from styx.ops.pipeline import Pipeline

if TYPE_CHECKING:
    from styx.providers.base import ClusterHandle, Provider
    from styx.state.db import Database
    from styx.state.records import ClusterRecord


def _targets(db: Database, names: list[str], all_clusters: bool) -> list[ClusterRecord]:
    from styx.state.clusters import list_clusters

    if all_clusters:
        return list(list_clusters(db))
    if not names:
        raise UsageError("No cluster was named.", "Name one or more clusters, or pass --all.")
    return [common.require_cluster(db, n) for n in names]


def lifecycle_cli(action: str, names: list[str], *, all_clusters: bool, yes: bool) -> int:
    """``styx stop|start|down``; each cluster is handled under its lock. ``down`` also stops
    the runtime of a local cluster the state database does not know (it was lost)."""
    db = common.database()
    pipe = Pipeline()
    failed = 0
    orphans: list[str] = []
    if action == "down":
        names, orphans = _split_orphans(db, names, all_clusters)
        for name in orphans:
            teardown_orphan(name, pipe)
        if orphans and not names and not all_clusters:
            return 0
    for record in _targets(db, names, all_clusters):
        try:
            {"stop": stop, "start": start, "down": teardown}[action](record.name, pipe)
        except StyxError as err:
            failed += 1
            from styx.cli.render import print_error_brief

            print_error_brief(record.name, err)
    return 1 if failed else 0


def _split_orphans(
    db: Database, names: list[str], all_clusters: bool
) -> tuple[list[str], list[str]]:
    """``names`` split into clusters the database knows and orphaned local runtimes."""
    from styx.providers.local_scan import orphaned_clusters
    from styx.state.clusters import list_clusters

    known = {r.name for r in list_clusters(db)}
    orphans = {name for name, _ in orphaned_clusters(known)}
    if all_clusters:
        return names, sorted(orphans)
    return [n for n in names if n not in orphans], [n for n in names if n in orphans]


def teardown_orphan(name: str, pipe: Pipeline) -> None:
    """Stop the runtime of a local cluster that the state database lost, and remove its
    folder."""
    from styx.providers.local import LocalProvider, orphan_handle

    handle = orphan_handle(name)
    if handle is None:
        return
    with pipe.stage("down", f"local cluster '{name}' (not in the state database)"):
        LocalProvider().terminate(handle)


def stop(name: str, pipe: Pipeline) -> None:
    from styx.state.clusters import set_cluster_status
    from styx.state.locks import cluster_lock
    from styx.state.records import ClusterStatus

    db = common.database()
    with cluster_lock(db, name, purpose="stop", timeout=60.0):
        record = common.require_cluster(db, name)
        if record.status is ClusterStatus.STOPPED:
            pipe.skip("stop", f"cluster '{name}' is already stopped")
            return
        with pipe.stage("stop", f"cluster '{name}'"):
            handle = common.handle_of(record)
            _save_history_if_possible(db, handle)
            common.provider_of(record).stop(handle)
            set_cluster_status(db, name, ClusterStatus.STOPPED, message="stopped by user")


def start(name: str, pipe: Pipeline) -> None:
    from styx.agent.protocol import AutostopConfig
    from styx.cluster import runtime
    from styx.state.clusters import set_cluster_status
    from styx.state.locks import cluster_lock
    from styx.state.records import ClusterStatus

    db = common.database()
    with cluster_lock(db, name, purpose="start", timeout=60.0):
        record = common.require_cluster(db, name)
        provider = common.provider_of(record)
        with pipe.stage("start", f"cluster '{name}'"):
            handle = provider.start(common.handle_of(record))
            auto = record.autostop or {}
            autostop = AutostopConfig(auto.get("idle_minutes"), bool(auto.get("down")))
            runtime.start(handle, provider, autostop=autostop)
            set_cluster_status(db, name, ClusterStatus.UP, message="started by user")


def teardown(name: str, pipe: Pipeline) -> None:
    """Remove the cluster's machines and everything Styx ran on them, then its record."""
    from styx.state.clusters import delete_cluster
    from styx.state.locks import cluster_lock

    db = common.database()
    with cluster_lock(db, name, purpose="down", timeout=60.0):
        record = common.require_cluster(db, name)
        with pipe.stage("down", f"cluster '{name}'"):
            handle, provider = common.handle_of(record), common.provider_of(record)
            if not _head_gone(record, handle, provider):  # a dead head would only time out
                _save_history_if_possible(db, handle)
            provider.terminate(handle)
            delete_cluster(db, name, message="torn down by user")


def _save_history_if_possible(db: Database, handle: ClusterHandle) -> None:
    """Keep the cluster's job history, unless the state database cannot take it now (a full
    disk): the machines must go anyway, and the error comes with the record's own update."""
    from styx.errors import StateError

    with contextlib.suppress(StateError):
        save_history(db, handle)


def _head_gone(record: ClusterRecord, handle: ClusterHandle, provider: Provider) -> bool:
    """Whether a DEGRADED cluster's head machine is known to be gone (a terminated instance)."""
    from styx.state.records import ClusterStatus

    if record.status is not ClusterStatus.DEGRADED or not handle.nodes:
        return False
    try:
        return handle.head.name in provider.gone_nodes(handle)
    except Exception:  # the infra cannot tell now: try the agent as usual
        return False


def autostop_cli(names: list[str], idle_minutes: int | None, *, down: bool) -> int:
    """``styx autostop``: set (or cancel, with None) on each cluster's agent and record it."""
    from styx import sdk

    for name in names:
        sdk.autostop(name, idle_minutes, down=down)
        if idle_minutes is None:
            click.echo(f"Autostop cancelled for '{name}'.")
        else:
            what = "torn down" if down else "stopped"
            click.echo(f"'{name}' will be {what} after {idle_minutes} idle minute(s).")
    return 0


def autostop_fired(name: str, *, down: bool) -> None:
    """Run by a local cluster's agent when autostop fires: record first, then stop."""
    from styx.state.clusters import delete_cluster, get_cluster, set_cluster_status
    from styx.state.records import ClusterStatus

    db = common.database()
    record = get_cluster(db, name)
    if record is None:
        return
    handle, provider = common.handle_of(record), common.provider_of(record)
    save_history(db, handle)
    if down:
        delete_cluster(db, name, message="autostop: torn down when idle")
        provider.terminate(handle)
    else:
        set_cluster_status(db, name, ClusterStatus.STOPPED, message="autostop: stopped when idle")
        provider.stop(handle)


def refresh(db: Database, record: ClusterRecord) -> ClusterRecord:
    """Ask the infra and the agent how the cluster really is, and record what changed.

    Unreachable nodes or a silent agent make the cluster DEGRADED, with a message that says
    which; the message is the cluster's latest event (``styx status -r`` prints it).
    """
    from styx.cluster import runtime
    from styx.state.clusters import get_cluster, set_cluster_status
    from styx.state.records import ClusterStatus

    provider, handle = common.provider_of(record), common.handle_of(record)
    if record.status is ClusterStatus.STOPPED or not handle.nodes:
        return record  # stopped, or a launch interrupted before its nodes were known: INIT
    lost = provider.unreachable_nodes(handle)
    if lost:
        status = ClusterStatus.DEGRADED
        msg = f"node(s) {', '.join(lost)} cannot be reached"
    elif not provider.is_up(handle):
        status, msg = ClusterStatus.STOPPED, "the infra reports the nodes are not running"
    elif (info := runtime.ping(handle)) is None:
        status, msg = ClusterStatus.DEGRADED, "the nodes are up but the agent does not answer"
    elif info.ray_down is not None:
        status = ClusterStatus.DEGRADED
        msg = f"the runtime is down ({info.ray_down}); `styx start {record.name}` repairs it"
    else:
        status, msg = ClusterStatus.UP, "agent answers"
    if status is not record.status:  # unless another command changed it meanwhile
        set_cluster_status(
            db, record.name, status, expected=record.status, message=f"refresh: {msg}"
        )
    return get_cluster(db, record.name) or record


def degraded_reason(db: Database, name: str) -> str | None:
    """Why a cluster is DEGRADED: the message of its latest status event."""
    from styx.state.clusters import list_events

    events = [
        e
        for e in list_events(db, name)
        if e.to_status is not None and e.to_status.value == "DEGRADED"
    ]
    return events[-1].message if events else None
