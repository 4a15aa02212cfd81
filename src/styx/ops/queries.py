"""Reading clusters and their jobs: what ``status``, ``queue`` and ``logs`` return as values.

The faces (the SDK, the CLI) and the managed-jobs controller call these; they print nothing.
Errors are typed: ``ClusterNotFound``/``ClusterNotUp`` for a cluster that cannot answer, and
the agent's own errors (:class:`~styx.errors.AgentError`, ``HostUnreachable``) for one that
does not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from styx.ops import common

if TYPE_CHECKING:
    from styx.agent.protocol import JobRecord
    from styx.state.records import ClusterRecord


def status(
    cluster_names: Sequence[str] | None = None, *, refresh: bool = False
) -> list[ClusterRecord]:
    """The clusters' records (all, or those named); ``refresh`` asks the infra and each agent
    first, and records what changed."""
    from styx.ops.cluster_ops import refresh as refresh_one
    from styx.state.clusters import list_clusters

    db = common.database()
    records = list_clusters(db, names=cluster_names)
    if not refresh:
        return records
    return [r for r in (refresh_one(db, rec) for rec in records) if r is not None]


def queue(cluster_name: str, *, all_jobs: bool = False) -> list[JobRecord]:
    """The UP cluster's jobs, newest first (recent ones, or ``all_jobs``)."""
    from styx.ops import jobs_ops

    record, _ = common.require_up(common.database(), cluster_name)
    return jobs_ops.queue(record, all_jobs)


def tail_logs(cluster_name: str, job_id: int, *, follow: bool = True) -> Iterator[str]:
    """The job's combined output as text chunks, to its end (``follow``) or to now."""
    _, handle = common.require_up(common.database(), cluster_name)
    with common.agent_client(handle) as client:
        yield from client.tail_logs(job_id, follow=follow)


def tail_log_bytes(cluster_name: str, job_id: int, *, follow: bool = True) -> Iterator[bytes]:
    """The job's combined output as the bytes it wrote, to its end (``follow``) or to now."""
    _, handle = common.require_up(common.database(), cluster_name)
    with common.agent_client(handle) as client:
        yield from client.tail_log_bytes(job_id, follow=follow)
