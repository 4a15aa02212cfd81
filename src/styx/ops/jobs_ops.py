"""Job operations on a cluster: queue, logs, cancel, and following a job to its end.

They return records and ids for the CLI (:mod:`styx.cli.cmd_cluster`) and the SDK to render;
only :func:`follow_job` writes, since streaming a job's output is what it is for.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from styx.errors import JobNotFound, RemoteError, StyxError, UsageError
from styx.ops import common

if TYPE_CHECKING:
    from styx.agent.protocol import JobRecord
    from styx.providers.base import ClusterHandle
    from styx.state.db import Database
    from styx.state.records import ClusterRecord


def exit_code_of(job: JobRecord) -> int:
    """What `launch`/`exec`/`logs` return for a finished job: 0, or the job's own exit code."""
    if job.status.value == "SUCCEEDED":
        return 0
    if job.exit_code:
        return int(job.exit_code)
    return 1


def follow_job(handle: ClusterHandle, job_id: int, *, report: bool = True) -> int:
    """Stream the job's log to stdout until it ends; Ctrl-C stops following, not the job."""
    name = handle.cluster_name
    try:
        with common.agent_client(handle) as client:
            for data in client.tail_log_bytes(job_id, follow=True):
                write_output(data)
            job = client.job(job_id)
            info = client.ping() if job.status.value.startswith("FAILED") else None
    except KeyboardInterrupt:
        click.echo(
            f"\nStopped following job {job_id}; it keeps running. "
            f"Follow again with: styx logs {name} {job_id}",
            err=True,
        )
        return 130
    if info is not None and info.ray_down is not None and job.status.value == "FAILED_DRIVER":
        raise RemoteError(
            f"Job {job_id} on '{name}' failed because the cluster's Ray runtime is down: "
            f"{info.ray_down}.",
            f"Run `styx start {name}` (or launch it again) to repair the runtime.",
            code="runtime-down",
        )
    if info is not None and info.storage_error is not None:
        raise RemoteError(
            f"Job {job_id} on '{name}' ended {job.status.value}: {info.storage_error}.",
            "Free disk space on the cluster's head node (STYX_HOME for a local cluster); "
            "`styx queue` shows the job's status.",
            code="agent-storage-failed",
        )
    if report:  # the agent's log already ends with the reason of a failure
        color = "green" if job.status.value == "SUCCEEDED" else "red"
        click.echo(click.style(f"Job {job_id} {job.status.value}", fg=color), err=True)
    return exit_code_of(job)


def save_history(db: Database, handle: ClusterHandle) -> int:
    """Copy the agent's whole job table into the client's history of the cluster.

    Called before a cluster is stopped or torn down, so ``cluster_jobs`` keeps what ran there.
    Best effort: an agent that no longer answers has nothing to give. Returns the rows saved.
    """
    from styx.state.cluster_jobs import record_cluster_job
    from styx.state.records import ClusterJobStatus

    if not handle.nodes:  # provisioning never finished: no agent ever ran
        return 0
    try:
        with common.agent_client(handle, timeout=10.0) as client:
            jobs = client.queue(all=True)
    except (StyxError, OSError):
        return 0
    for job in jobs:
        record_cluster_job(
            db,
            handle.cluster_name,
            job.job_id,
            status=ClusterJobStatus(job.status.value),
            name=job.name,
            submitted_at=job.submitted_at,
            started_at=job.started_at,
            ended_at=job.ended_at,
            exit_code=job.exit_code,
            user_name=job.user,
            resources={"num_nodes": job.num_nodes, **job.demand.to_dict()},
            log_path=job.log_dir or None,
        )
    return len(jobs)


def _clusters_for_queue(db: Database, names: list[str]) -> list[ClusterRecord]:
    from styx.state.clusters import list_clusters

    if names:
        return [common.require_cluster(db, n) for n in names]
    return [r for r in list_clusters(db) if r.status.value == "UP"]


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterQueue:
    """One cluster's jobs, newest first; ``jobs`` is None when the cluster is not UP (its
    ``status`` says what it is), so there was no agent to ask."""

    cluster: str
    status: str
    jobs: list[JobRecord] | None


def queues(names: list[str], *, all_jobs: bool) -> list[ClusterQueue]:
    """The job queues of the named clusters (every UP cluster when none is named), in the
    order named; recent jobs only unless ``all_jobs``. ClusterNotFound for an unknown name."""
    db = common.database()
    out: list[ClusterQueue] = []
    for record in _clusters_for_queue(db, names):
        if record.status.value != "UP":
            out.append(ClusterQueue(record.name, record.status.value, None))
            continue
        out.append(ClusterQueue(record.name, record.status.value, queue(record, all_jobs)))
    return out


def queue(record: ClusterRecord, all_jobs: bool = False) -> list[JobRecord]:
    """An UP cluster's jobs as its agent has them, newest first."""
    with common.agent_client(common.handle_of(record)) as client:
        return client.queue(all=all_jobs)


def find_job(cluster: str, job_id: int | None) -> tuple[ClusterHandle, JobRecord]:
    """The UP cluster's handle and a job's record: job ``job_id``, or the latest job when
    None. JobNotFound when the cluster has no (such) job, ClusterNotUp when it is not UP."""
    db = common.database()
    _, handle = common.require_up(db, cluster)
    with common.agent_client(handle) as client:
        if job_id is None:
            jobs = client.queue(limit=1)
            if not jobs:
                raise JobNotFound(
                    f"Cluster '{cluster}' has no jobs yet.",
                    f"Submit one with `styx exec {cluster} TASK.yaml`.",
                )
            job_id = jobs[0].job_id
        return handle, client.job(job_id)


def log_chunks(handle: ClusterHandle, job_id: int) -> Iterator[bytes]:
    """The job's combined output so far, as the bytes it wrote (not following it)."""
    with common.agent_client(handle) as client:
        yield from client.tail_log_bytes(job_id, follow=False)


def write_output(data: bytes) -> None:
    """Write a job's output bytes to stdout as they are (no decoding), and flush."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stdout (a test's capture): decode, as best it can
        sys.stdout.write(data.decode("utf-8", errors="replace"))
        sys.stdout.flush()
        return
    sys.stdout.flush()  # what was written as text goes first
    buffer.write(data)
    buffer.flush()


def cancel(cluster: str, job_ids: list[int], *, all_jobs: bool) -> list[int]:
    """Kill jobs' whole process trees on every node of the UP cluster: ``job_ids``, or every
    unfinished job with ``all_jobs``. Returns the ids cancelled (none: nothing was
    unfinished). UsageError when no job is named and not ``all_jobs``."""
    if not job_ids and not all_jobs:
        raise UsageError("No job to cancel was named.", "Give job ids, or --all.")
    db = common.database()
    _, handle = common.require_up(db, cluster)
    with common.agent_client(handle) as client:
        return client.cancel(job_ids, all=all_jobs)
