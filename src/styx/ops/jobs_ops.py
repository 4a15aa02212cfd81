"""Job operations on a cluster: queue, logs, cancel, and following a job to its end."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from styx.errors import JobNotFound, RemoteError, StyxError, UsageError
from styx.ops import common

if TYPE_CHECKING:
    from styx.agent.protocol import JobRecord
    from styx.providers.base import ClusterHandle
    from styx.state.db import Database


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
            for chunk in client.tail_logs(job_id, follow=True):
                sys.stdout.write(chunk)
                sys.stdout.flush()
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


def _clusters_for_queue(db: Database, names: list[str]) -> list[Any]:
    from styx.state.clusters import list_clusters

    if names:
        return [common.require_cluster(db, n) for n in names]
    return [r for r in list_clusters(db) if r.status.value == "UP"]


def queue_cli(names: list[str], *, all_jobs: bool, as_json: bool) -> int:
    """``styx queue``: each cluster's jobs, newest first."""
    db = common.database()
    out: dict[str, list[JobRecord]] = {}
    for record in _clusters_for_queue(db, names):
        if record.status.value != "UP":
            click.echo(
                f"Cluster '{record.name}' is {record.status.value}; no queue to show.", err=True
            )
            continue
        with common.agent_client(common.handle_of(record)) as client:
            out[record.name] = client.queue(all=all_jobs)
    if as_json:
        click.echo(json.dumps({k: [j.to_dict() for j in v] for k, v in out.items()}, indent=2))
        return 0
    from styx.cli.tables import job_table

    for name, jobs in out.items():
        job_table(name, jobs)
    return 0


def logs_cli(cluster: str, job_id: int | None, *, follow: bool, status_only: bool) -> int:
    """``styx logs``: a job's output (the latest job by default), or only its status."""
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
        job = client.job(job_id)
        if status_only:
            click.echo(f"Job {job_id}: {job.status.value}")
            return 0 if job.status.value == "SUCCEEDED" else 1
        if not follow:
            for chunk in client.tail_logs(job_id, follow=False):
                sys.stdout.write(chunk)
            sys.stdout.flush()
            return 0
    return follow_job(handle, job_id, report=False)


def cancel_cli(cluster: str, job_ids: list[int], *, all_jobs: bool) -> int:
    """``styx cancel``: kill jobs' whole process trees on every node."""
    if not job_ids and not all_jobs:
        raise UsageError("No job to cancel was named.", "Give job ids, or --all.")
    db = common.database()
    _, handle = common.require_up(db, cluster)
    started = time.monotonic()
    with common.agent_client(handle) as client:
        cancelled = client.cancel(job_ids, all=all_jobs)
    if cancelled:
        ids = ", ".join(map(str, cancelled))
        click.echo(f"Cancelled job(s) {ids} on '{cluster}' ({time.monotonic() - started:.2f} s).")
    else:
        click.echo(f"No unfinished job to cancel on '{cluster}'.")
    return 0
