"""Cluster lifecycle: stop, start, down, autostop, and status refresh from the infra.

Operations only: they return what happened (and report stages through the caller's
:class:`~styx.ops.pipeline.Pipeline`); the CLI renders it (:mod:`styx.cli.cmd_cluster`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from styx.errors import RemoteError, StyxError, UsageError
from styx.ops import common
from styx.ops.jobs_ops import save_history
from styx.ops.pipeline import Pipeline

if TYPE_CHECKING:
    from styx.providers.base import ClusterHandle, Provider
    from styx.state.db import Database
    from styx.state.records import ClusterRecord

#: A callback told of each cluster an operation over many clusters could not handle.
OnError = Callable[[str, StyxError], None]


def _targets(db: Database, names: list[str], all_clusters: bool) -> list[ClusterRecord]:
    from styx.state.clusters import list_clusters

    if all_clusters:
        return list(list_clusters(db))
    if not names:
        raise UsageError("No cluster was named.", "Name one or more clusters, or pass --all.")
    return [common.require_cluster(db, n) for n in names]


def lifecycle(
    action: str,
    names: list[str],
    *,
    all_clusters: bool,
    pipe: Pipeline,
    on_error: OnError | None = None,
    confirm: Callable[[list[str]], None] | None = None,
) -> list[tuple[str, StyxError]]:
    """``stop``, ``start`` or ``down`` each named cluster (or every one), each under its lock.

    ``down`` also stops the runtime of a local cluster the state database does not know (it
    was lost). A cluster that fails does not stop the others: its error is passed to
    ``on_error`` as it happens, and every failure is returned (empty: all done). An unknown
    name fails the whole call first (ClusterNotFound), before anything is changed. Then
    ``confirm`` (when given) is called with the names about to change, before any change; it
    raises to change nothing. It is not called when there is nothing to change.
    """
    db = common.database()
    failures: list[tuple[str, StyxError]] = []
    orphans: list[str] = []
    if action == "down":
        names, orphans = _split_orphans(db, names, all_clusters)
    only_orphans = bool(orphans) and not names and not all_clusters
    records = [] if only_orphans else _targets(db, names, all_clusters)
    if confirm is not None and (orphans or records):
        confirm([*orphans, *(r.name for r in records)])
    for name in orphans:
        teardown_orphan(name, pipe)
    act = {"stop": stop, "start": start, "down": teardown}[action]
    for record in records:
        try:
            act(record.name, pipe)
        except StyxError as err:
            failures.append((record.name, err))
            if on_error is not None:
                on_error(record.name, err)
    return failures


def _split_orphans(
    db: Database, names: list[str], all_clusters: bool
) -> tuple[list[str], list[str]]:
    """``names`` split into clusters the database knows and orphaned runtimes."""
    from styx.providers import orphans as found
    from styx.state.clusters import list_clusters

    known = {r.name for r in list_clusters(db)}
    orphans = {o.name for o in found.find(known)}
    if all_clusters:
        return names, sorted(orphans)
    return [n for n in names if n not in orphans], [n for n in names if n in orphans]


def teardown_orphan(name: str, pipe: Pipeline) -> None:
    """Stop the runtime of a cluster that the state database lost, and remove what Styx
    made for it."""
    from styx.providers import orphans

    for orphan in orphans.find(set()):
        if orphan.name == name:
            with pipe.stage("down", f"{orphan.infra} cluster '{name}' (not in the state database)"):
                orphans.teardown(orphan)


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
            from styx.ops import storage

            storage.release(handle, common.provider_of(record))  # cached writes reach the bucket
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
        if record.status is ClusterStatus.UP and _runtime_answers(record, provider):
            pipe.skip("start", f"cluster '{name}' is already up")
            return
        with pipe.stage("start", f"cluster '{name}'"):
            handle = provider.start(common.handle_of(record))
            auto = record.autostop or {}
            autostop = AutostopConfig(auto.get("idle_minutes"), bool(auto.get("down")))
            runtime.start(handle, provider, autostop=autostop)
            if handle.extra.get("container"):  # the task's image, as the launch ran it
                from styx.cluster.container import ContainerSpec
                from styx.ops.stages import start_containers

                spec = ContainerSpec.from_json(handle.extra["container"])
                start_containers(handle, provider, spec, None)
            if handle.extra.get("bucket_mounts"):
                from styx.ops import storage

                storage.remount(handle, provider)
            set_cluster_status(db, name, ClusterStatus.UP, message="started by user")
        from styx.ops.stages import record_use

        record_use(db, name)


def _runtime_answers(record: ClusterRecord, provider: Provider) -> bool:
    """Whether the UP cluster's agent answers with its Ray runtime up: nothing to start. A
    silent agent or a dead Ray is what ``start`` repairs."""
    from styx.cluster import runtime

    handle = common.handle_of(record)
    if not handle.nodes:
        return False
    try:
        info = runtime.ping(provider.agent_socket(handle))
    except StyxError:
        return False
    return info is not None and info.ray_down is None


def teardown(name: str, pipe: Pipeline, *, keep_storage: bool = False) -> None:
    """Remove the cluster's machines and everything Styx ran on them, then its record; then
    the buckets Styx made for its ``persistent: false`` storage (unless ``keep_storage``: a
    managed job that recovers elsewhere still needs them)."""
    from styx.state.locks import cluster_lock

    db = common.database()
    with cluster_lock(db, name, purpose="down", timeout=60.0):
        record = common.require_cluster(db, name)
        with pipe.stage("down", f"cluster '{name}'"):
            handle, provider = common.handle_of(record), common.provider_of(record)
            gone = _head_gone(record, handle, provider)
            if not gone:  # a dead head would only time out
                _save_history_if_possible(db, handle)
            teardown_handle(db, name, handle, provider, message="torn down by user",
                            keep_storage=keep_storage, flush=not gone)  # fmt: skip


def teardown_handle(
    db: Database,
    name: str,
    handle: ClusterHandle,
    provider: Provider,
    *,
    message: str,
    keep_storage: bool = False,
    flush: bool = True,
) -> None:
    """Terminate the cluster's machines (after its bucket mounts are flushed and released)
    and delete its record; then its ``persistent: false`` buckets, unless ``keep_storage``."""
    from styx.ops import storage
    from styx.state.clusters import delete_cluster

    if flush:
        storage.release(handle, provider)
    provider.terminate(handle)
    delete_cluster(db, name, message=message)
    if not keep_storage:
        storage.after_down(db, name)


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


def set_autostop(name: str, idle_minutes: int | None, *, down: bool = False) -> None:
    """Tell the UP cluster's agent to stop (``down``: tear down) the cluster after
    ``idle_minutes`` idle minutes, or cancel autostop with None; the setting is recorded with
    the cluster. ClusterNotUp when the cluster is not UP."""
    from styx.state.clusters import update_cluster

    db = common.database()
    _, handle = common.require_up(db, name)
    with common.agent_client(handle) as client:
        client.set_autostop(idle_minutes, down=down)
    update_cluster(
        db,
        name,
        autostop=None if idle_minutes is None else {"idle_minutes": idle_minutes, "down": down},
    )


def refresh(db: Database, record: ClusterRecord) -> ClusterRecord | None:
    """Ask the infra and the agent how the cluster really is, and record what changed; None
    when the infra no longer has any of its nodes (the record is then removed). An infra API
    that does not answer leaves the record as it is.

    Unreachable nodes or a silent agent make the cluster DEGRADED, with a message that says
    which; the message is the cluster's latest event (``styx status -r`` prints it).
    """
    from styx.cluster import runtime
    from styx.state.clusters import get_cluster, set_cluster_status
    from styx.state.records import ClusterStatus

    provider, handle = common.provider_of(record), common.handle_of(record)
    if record.status is ClusterStatus.STOPPED or not handle.nodes:
        return record  # stopped, or a launch interrupted before its nodes were known: INIT
    try:
        gone = provider.gone_nodes(handle)
        if len(gone) == len(handle.nodes):
            return _gone(db, record, handle, provider)
        lost = provider.unreachable_nodes(handle)
    except RemoteError:
        # The infra's API does not answer (an API-server outage): that says nothing about the
        # nodes, and a healthy cluster must never be marked down for it.
        return record
    if lost:
        status = ClusterStatus.DEGRADED
        msg = f"node(s) {', '.join(lost)} cannot be reached"
    elif not provider.is_up(handle):
        status, msg = ClusterStatus.STOPPED, "the infra reports the nodes are not running"
    elif (info := runtime.ping(provider.agent_socket(handle))) is None:
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


def _gone(db: Database, record: ClusterRecord, handle: ClusterHandle, provider: Provider) -> None:
    """Every node is gone by the infra's word (autostop's down from the head, or the infra
    removed them): clean what is left of ours, and forget the cluster, as SkyPilot's
    ``status -r`` does."""
    from styx.state.clusters import delete_cluster

    with contextlib.suppress(StyxError):
        provider.terminate(handle)
    delete_cluster(db, record.name, message="refresh: the infra no longer has its nodes")
    return None


def degraded_reason(db: Database, name: str) -> str | None:
    """Why a cluster is DEGRADED: the message of its latest status event."""
    from styx.state.clusters import list_events

    events = [
        e
        for e in list_events(db, name)
        if e.to_status is not None and e.to_status.value == "DEGRADED"
    ]
    return events[-1].message if events else None
