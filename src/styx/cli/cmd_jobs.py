"""``styx jobs``: managed jobs and DAG runs (launch, queue, logs, cancel).

Commands only write requests to and read rows from the state database; the controller
daemon (started on demand) does the work.
"""

from __future__ import annotations

import time
from typing import Any

import click

from styx.cli.cmd_cluster import _overrides, override_options


@click.group()
def jobs() -> None:
    """Managed jobs: recovered after preemption, retried on errors, chained as DAGs."""


@jobs.command()
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-n", "--name", default=None, help="Name of the job (or DAG run).")
@click.option("--no-controller", is_flag=True, help="Only queue; do not start the controller.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@override_options
def launch(yaml_file: str, name: str | None, no_controller: bool, yes: bool, **kw: Any) -> int:
    """Queue a task, a pipeline or a DAG (YAML) as managed jobs."""
    from styx.jobs import daemon
    from styx.jobs.submit import submit
    from styx.ops import common
    from styx.ops.stages import check_local_paths
    from styx.spec.dag import Dag
    from styx.spec.overrides import apply_to_dag
    from styx.spec.support import check_launchable

    dag = apply_to_dag(Dag.from_yaml(yaml_file), _overrides(kw))
    check_launchable(dag)  # refused now, not by the controller later
    for task in dag.tasks:
        check_local_paths(task)
    run_id, ids = submit(common.database(), dag, name=name)
    if run_id is None:
        click.echo(f"Managed job {ids[0]} queued.")
    else:
        click.echo(f"DAG run {run_id} queued: jobs {', '.join(map(str, ids))}.")
    if not no_controller:
        daemon.ensure_running()
    return 0


@jobs.command()
def queue() -> int:
    """Show managed jobs; a DAG run's tasks are shown as a tree under it."""
    from styx.jobs.queue import render
    from styx.ops import common
    from styx.state.job_queue import managed_job_queue

    rows, runs = managed_job_queue(common.database())
    click.echo(render(rows, runs))
    _revive_controller(any(r.status in _ACTIVE for r in rows))
    return 0


_ACTIVE = ("PENDING", "STARTING", "RUNNING", "RECOVERING", "CANCELLING")


def _revive_controller(active: bool) -> None:
    """Start the daemon when jobs are active and no controller runs (both processes died)."""
    from styx.jobs import daemon

    if active and daemon.ensure_running():
        click.echo("The jobs controller was not running; started it again.", err=True)


@jobs.command()
@click.argument("job_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--no-follow", is_flag=True, help="Print what there is now and return.")
def logs(job_id: int, no_follow: bool) -> int:
    """Show a managed job's status transitions and its output, followed to its end.

    Each attempt's output follows the RUNNING line that started it: saved by the controller
    for attempts that are over (lost with the machines when they were preempted), read live
    from the cluster for the one running now."""
    from styx.ops import common
    from styx.state import managed_jobs as repo

    db = common.database()
    printed = 0  # events printed so far
    attempts = 0  # RUNNING events printed so far
    _revive_controller(not repo.require_managed_job(db, job_id).status.is_terminal)
    while True:
        events = repo.list_managed_job_events(db, job_id) or []
        job = repo.require_managed_job(db, job_id)
        tailed = False
        while printed < len(events) and not tailed:
            e = events[printed]
            printed += 1
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
            click.echo(f"{stamp}  {e.to_status.value:<19} {e.reason or ''}")
            if e.to_status.value != "RUNNING":
                continue
            attempts += 1
            live = printed == len(events) and job.status.value == "RUNNING"
            if live and job.cluster_name and (job.resources or {}).get("cluster_job_id"):
                job_on_cluster = int((job.resources or {})["cluster_job_id"])
                _tail(job.cluster_name, job_on_cluster, not no_follow)
                tailed = True  # read the events again: some may have come while tailing
            else:
                _show_saved(job_id, attempts - 1)
        if tailed:
            continue
        if no_follow or job.status.is_terminal:
            return 0 if job.status.value == "SUCCEEDED" or no_follow else 1
        time.sleep(1)


def _show_saved(job_id: int, attempt: int) -> None:
    from styx.jobs.controller import attempt_log

    path = attempt_log(job_id, attempt)
    if path.is_file():
        with path.open() as f:
            for line in f:
                click.echo(line, nl=False)
    else:
        click.echo("(no output kept for this attempt: its machines were lost)")


def _tail(cluster: str, cluster_job_id: int, follow: bool) -> None:
    from styx import sdk
    from styx.errors import StyxError

    try:
        for chunk in sdk.tail_logs(cluster, cluster_job_id, follow=follow):
            click.echo(chunk, nl=False)
    except StyxError as e:  # cluster gone (preempted): keep showing events
        click.echo(f"(output cut off: {e.message})")


@jobs.command()
@click.argument("job_ids", type=click.IntRange(1, 2**63 - 1), nargs=-1)
@click.option("-a", "--all", "all_jobs", is_flag=True, help="Cancel every active job.")
def cancel(job_ids: tuple[int, ...], all_jobs: bool) -> int:
    """Cancel managed jobs (their clusters are torn down)."""
    from styx.jobs.controller import ACTIVE
    from styx.jobs.submit import request_cancel
    from styx.ops import common
    from styx.state import managed_jobs as repo

    db = common.database()
    ids = list(job_ids)
    if all_jobs:
        ids = [j.id for j in repo.list_managed_jobs(db, statuses=ACTIVE)]
    moved = request_cancel(db, ids)
    click.echo(f"Cancelling: {', '.join(map(str, moved)) or 'nothing'}.")
    return 0
