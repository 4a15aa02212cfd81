"""The Python SDK: the same operations as the CLI, returning values instead of printing.

``import styx`` exposes these lazily (``styx.launch``, ``styx.exec``, ``styx.status`` ...)::

    task = styx.Task(run="echo hi", resources={"cpus": "1+"})
    result = styx.launch(task, "dev")           # LaunchResult(cluster_name, job_id)
    styx.wait("dev", result.job_id)             # the job's JobRecord once it ends

A task given to ``launch`` or ``exec`` is checked as a YAML task is
(:func:`styx.spec.coerce.checked_task`): a mapping for ``resources`` (or ``envs``, ...) is
parsed, and a wrong type is a SpecError naming the field. Managed jobs are ``styx.jobs``
(:mod:`styx.jobs`): ``styx.jobs.launch``, ``queue``, ``cancel``, ``logs``, ``wait``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING

from styx.ops import common
from styx.ops.launch import LaunchResult
from styx.ops.launch import exec_ as _exec
from styx.ops.launch import launch as _launch
from styx.ops.pipeline import Pipeline
from styx.spec.coerce import checked_task

if TYPE_CHECKING:
    from styx.agent.protocol import JobRecord
    from styx.spec.task import Task
    from styx.state.records import ClusterRecord


def launch(
    task: Task,
    cluster_name: str | None = None,
    *,
    detach: bool = True,
    down: bool = False,
    idle_minutes: int | None = None,
    fast: bool = False,
    avoid_regions: builtins.list[str] | None = None,
) -> LaunchResult:
    """Launch ``task`` on a cluster (created if missing, reused if up) and submit it.

    SpecError when ``task`` is not a valid task (checked as YAML is). ``avoid_regions``
    (``"aws/us-east-1"``, ...) are used only when nothing else fits."""
    return _launch(
        checked_task(task),
        cluster_name,
        detach=detach,
        down=down,
        idle_minutes=idle_minutes,
        fast=fast,
        quiet=True,
        avoid_regions=avoid_regions or (),
    )


def exec(task: Task, cluster_name: str, *, detach: bool = True) -> LaunchResult:
    """Run ``task`` on an up cluster, skipping setup."""
    return _exec(checked_task(task), cluster_name, detach=detach)


def status(
    cluster_names: builtins.list[str] | None = None,
    *,
    refresh: bool = False,
) -> builtins.list[ClusterRecord]:
    """The clusters' records; ``refresh`` asks the infra and each agent first."""
    from styx.ops import queries

    return queries.status(cluster_names, refresh=refresh)


def queue(cluster_name: str, *, all_jobs: bool = False) -> builtins.list[JobRecord]:
    """The cluster's jobs, newest first (recent ones, or ``all_jobs``)."""
    from styx.ops import queries

    return queries.queue(cluster_name, all_jobs=all_jobs)


def wait(cluster_name: str, job_id: int, timeout: float | None = None) -> JobRecord:
    """Block until the job ends (or ``timeout`` seconds pass); returns its record."""
    _, handle = common.require_up(common.database(), cluster_name)
    with common.agent_client(handle) as client:
        return client.wait(job_id, timeout=timeout)


def tail_logs(cluster_name: str, job_id: int, *, follow: bool = True) -> Iterator[str]:
    """The job's combined output as text chunks, to its end (``follow``) or to now."""
    from styx.ops import queries

    yield from queries.tail_logs(cluster_name, job_id, follow=follow)


def cancel(
    cluster_name: str, job_ids: builtins.list[int] | None = None, *, all_jobs: bool = False
) -> builtins.list[int]:
    """Cancel jobs (their whole process trees): ``job_ids``, or every unfinished job with
    ``all_jobs``; returns the ids cancelled. UsageError when neither is given."""
    from styx.ops import jobs_ops

    return jobs_ops.cancel(cluster_name, list(job_ids or ()), all_jobs=all_jobs)


def stop(cluster_name: str) -> None:
    """Stop the cluster, keeping its disks and job history."""
    from styx.ops import cluster_ops

    cluster_ops.stop(cluster_name, Pipeline(quiet=True))


def start(cluster_name: str) -> None:
    """Start a stopped cluster."""
    from styx.ops import cluster_ops

    cluster_ops.start(cluster_name, Pipeline(quiet=True))


def down(cluster_name: str) -> None:
    """Tear the cluster down: its machines and everything Styx ran on them."""
    from styx.ops import cluster_ops

    cluster_ops.teardown(cluster_name, Pipeline(quiet=True))


def autostop(cluster_name: str, idle_minutes: int | None, *, down: bool = False) -> None:
    """Stop (or tear down) the cluster after ``idle_minutes`` idle; None cancels autostop."""
    from styx.ops import cluster_ops

    cluster_ops.set_autostop(cluster_name, idle_minutes, down=down)
