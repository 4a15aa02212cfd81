"""A replica's cluster: launched, located and torn down through the user operations.

Blocking calls (each runs in a thread of the controller). A replica is an ordinary Styx
cluster named ``styx-sv-<service>-<id>``, launched through the optimizer like any task, with
``STYX_SERVE_REPLICA_ID`` in its environment; its endpoint is the head node's address and the
service's port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Launched:
    """Where a replica came up."""

    host: str
    infra: str | None


def replica_task(
    spec: dict[str, Any], replica_id: int, *, use_spot: bool, port: int | None = None
) -> Any:
    """The task a replica runs: the service's, with its id in the environment, spot or
    on-demand as the replica policy chose, and the service's ``port`` among the ports its
    infra opens (a security group, a firewall rule), as SkyServe does."""
    from styx.spec.task import Task

    data = dict(spec)
    data["envs"] = {**dict(data.get("envs") or {}), "STYX_SERVE_REPLICA_ID": str(replica_id)}
    resources = data.get("resources")
    if isinstance(resources, list):
        data["resources"] = [_adjusted(dict(r), use_spot, port) for r in resources]
    else:
        data["resources"] = _adjusted(dict(resources or {}), use_spot, port)
    return Task.from_dict(data)


def _adjusted(resources: dict[str, Any], use_spot: bool, port: int | None) -> dict[str, Any]:
    out = dict(resources)
    for key in ("any_of", "ordered"):
        if key in out:
            out[key] = [_adjusted(dict(r), use_spot, None) for r in out[key]]
    out["use_spot"] = use_spot
    if port is not None and not _covers(out.get("ports"), port):
        given = out.get("ports")
        listed = [] if given is None else list(given) if isinstance(given, list) else [given]
        out["ports"] = [*listed, port]
    return out


def _covers(ports: Any, port: int) -> bool:
    """Whether a ``resources.ports`` value (a port, "a-b", or a list of those) has ``port``."""
    items = ports if isinstance(ports, list) else [] if ports is None else [ports]
    for item in items:
        lo, _, hi = str(item).partition("-")
        if lo.strip().isdigit() and int(lo) <= port <= int(hi.strip() or lo):
            return True
    return False


def task_uses_spot(spec: dict[str, Any]) -> bool:
    """Whether the service's task asks for spot instances."""
    from styx.spec.task import Task

    return any(c.use_spot for c in Task.from_dict(spec).resources.candidates())


def launch(
    cluster: str, spec: dict[str, Any], replica_id: int, *, use_spot: bool, port: int | None = None
) -> Launched:
    """Launch the replica's cluster and start the service on it (detached). Raises the
    StyxError of a launch that failed; a half-made cluster is torn down first."""
    from styx.errors import StyxError
    from styx.ops import common
    from styx.ops.launch import launch as launch_task
    from styx.state.clusters import get_cluster

    task = replica_task(spec, replica_id, use_spot=use_spot, port=port)
    started = time.monotonic()
    try:
        launch_task(task, cluster, detach=True, quiet=True)
    except StyxError:
        down(cluster)
        raise
    record = get_cluster(common.database(), cluster)
    if record is None:  # torn down under us (the service went down meanwhile)
        from styx.errors import ClusterNotFound

        raise ClusterNotFound(f"The replica's cluster {cluster!r} went away while it launched.")
    handle = common.handle_of(record)
    from styx.spec.resources import Resources

    launched = Resources.from_dict(dict(record.launched_resources or {}))
    infra = "/".join(str(p) for p in (launched.cloud, launched.region) if p) or None
    log.info("%s: launched on %s in %.1f s", cluster, handle.head.ip, time.monotonic() - started)
    return Launched(handle.head.ip, infra)


def down(cluster: str) -> None:
    """Tear the replica's cluster down; nothing happens when it does not exist."""
    from styx.errors import NotFoundError
    from styx.ops import cluster_ops
    from styx.ops.pipeline import Pipeline

    with contextlib.suppress(NotFoundError):
        cluster_ops.teardown(cluster, Pipeline(quiet=True))


def gone(cluster: str) -> bool:
    """Whether the infra says the replica's machines are gone (preempted, terminated)."""
    from styx.ops import common, queries
    from styx.state.records import ClusterStatus

    try:
        records = queries.status([cluster], refresh=True)
    except Exception as e:  # a check that could not tell is not evidence of loss
        log.info("%s: status check failed: %s", cluster, e)
        return False
    if not records or records[0].status is ClusterStatus.STOPPED:
        return True
    try:
        return bool(common.provider_of(records[0]).gone_nodes(common.handle_of(records[0])))
    except Exception as e:
        log.info("%s: asking the infra failed: %s", cluster, e)
        return False


def job_ended(cluster: str) -> str | None:
    """How the replica's service job ended (``"FAILED, exit code 1"``), or None while it runs
    (or when that cannot be told now)."""
    from styx.ops import queries

    try:
        jobs = queries.queue(cluster, all_jobs=True)
    except Exception as e:  # the check failed, not (yet) the job
        log.info("%s: job check failed: %s", cluster, e)
        return None
    if not jobs:
        return None
    latest = max(jobs, key=lambda j: j.job_id)
    status = str(getattr(latest.status, "value", latest.status))
    if status in ("PENDING", "SETTING_UP", "RUNNING", "INIT"):
        return None
    code = getattr(latest, "exit_code", None)
    return status + (f", exit code {code}" if code is not None else "")


def log_chunks(cluster: str, *, follow: bool) -> Iterator[bytes]:
    """The output of the replica's service job (the latest job on its cluster)."""
    from styx.ops import queries

    jobs = queries.queue(cluster, all_jobs=True)
    if not jobs:
        return iter(())
    latest = max(j.job_id for j in jobs)
    return queries.tail_log_bytes(cluster, latest, follow=follow)
