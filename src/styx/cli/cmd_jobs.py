"""``styx jobs``: managed jobs and DAG runs (launch, queue, logs, cancel).

Commands only write requests to and read rows from the state database; the controller
daemon (started on demand) does the work.
"""

from __future__ import annotations

import time

import click


@click.group()
def jobs() -> None:
    """Managed jobs: recovered after preemption, retried on errors, chained as DAGs."""


@jobs.command()
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-n", "--name", default=None, help="Name of the job (or DAG run).")
@click.option("--no-controller", is_flag=True, help="Only queue; do not start the controller.")
def launch(yaml_file: str, name: str | None, no_controller: bool) -> int:
    """Queue a task, a pipeline or a DAG (YAML) as managed jobs."""
    from styx.jobs import daemon
    from styx.jobs.submit import submit
    from styx.ops import common
    from styx.spec.dag import Dag

    dag = Dag.from_yaml(yaml_file)
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
    from styx.jobs.queue import read_queue, render
    from styx.ops import common

    rows, runs = read_queue(common.database())
    click.echo(render(rows, runs))
    return 0


@jobs.command()
@click.argument("job_id", type=int)
@click.option("--no-follow", is_flag=True, help="Print what there is now and return.")
def logs(job_id: int, no_follow: bool) -> int:
    """Show a managed job's status transitions, then its output (followed to its end)."""
    from styx.ops import common
    from styx.state import managed_jobs as repo

    db = common.database()
    seen = 0
    while True:
        events = repo.list_managed_job_events(db, job_id) or []
        for e in events[seen:]:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
            click.echo(f"{stamp}  {e.to_status.value:<19} {e.reason or ''}")
        seen = len(events)
        job = repo.require_managed_job(db, job_id)
        if (
            job.status.value == "RUNNING"
            and job.cluster_name
            and (job.resources or {}).get("cluster_job_id")
        ):
            _tail(job.cluster_name, int((job.resources or {})["cluster_job_id"]), not no_follow)
        if no_follow or job.status.is_terminal:
            return 0 if job.status.value == "SUCCEEDED" or no_follow else 1
        time.sleep(1)


def _tail(cluster: str, cluster_job_id: int, follow: bool) -> None:
    from styx import sdk
    from styx.errors import StyxError

    try:
        for chunk in sdk.tail_logs(cluster, cluster_job_id, follow=follow):
            click.echo(chunk, nl=False)
    except StyxError as e:  # cluster gone (preempted) or simulated: keep showing events
        click.echo(f"(logs unavailable: {e.message})")


@jobs.command()
@click.argument("job_ids", type=int, nargs=-1)
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
