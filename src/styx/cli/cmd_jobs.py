"""``styx jobs``: managed jobs and DAG runs (launch, queue, logs, cancel).

Faces only: the commands call :mod:`styx.jobs.api` (as the SDK's ``styx.jobs`` does) and
print what it returns. The controller daemon (started on demand) does the work.
"""

from __future__ import annotations

from typing import Any

import click

from styx.cli.cmd_cluster import _overrides, override_options


@click.group()
def jobs() -> None:
    """Managed jobs: recovered after preemption, retried on errors, chained as DAGs."""


@jobs.command()
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-n", "--name", default=None, help="Name of the job (or DAG run).")
@click.option(
    "--no-controller",
    is_flag=True,
    help="Only queue: do not start the controller, nor let `jobs queue`/`jobs logs` start it, "
    "until a `jobs launch` without this flag.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@override_options
def launch(yaml_file: str, name: str | None, no_controller: bool, yes: bool, **kw: Any) -> int:
    """Check a task, a pipeline or a DAG (YAML) and queue it as managed jobs.

    Each task is checked as `styx launch` checks it, and placed once by the optimizer, before
    anything is queued: a task that could never run is refused now."""
    from styx.jobs import api
    from styx.spec.dag import Dag
    from styx.spec.overrides import apply_to_dag

    dag = apply_to_dag(Dag.from_yaml(yaml_file), _overrides(kw))
    submitted = api.launch(dag, name=name, start_controller=not no_controller)
    ids = submitted.job_ids
    if submitted.dag_run_id is None:
        click.echo(f"Managed job {ids[0]} queued.")
    else:
        click.echo(f"DAG run {submitted.dag_run_id} queued: jobs {', '.join(map(str, ids))}.")
    if submitted.controller is api.ControllerState.HELD:
        click.echo(
            "The controller was not started (--no-controller); the next `styx jobs launch` "
            "without it starts it.",
            err=True,
        )
    else:
        click.echo(f"Follow it with: styx jobs logs {ids[-1]}", err=True)
    return 0


@jobs.command()
def queue() -> int:
    """Show managed jobs; a DAG run's tasks are drawn as a tree under it, with what each
    waits for. REASON says why a job ended (`styx jobs logs ID` shows the full error)."""
    from styx.jobs import api, view

    q = api.queue()
    click.echo(view.render(q.jobs, q.runs))
    _report_controller(q.controller)
    return 0


def _report_controller(state: Any) -> None:
    from styx.jobs.api import ControllerState

    if state is ControllerState.STARTED:
        click.echo("The jobs controller was not running; started it again.", err=True)
    elif state is ControllerState.HELD:
        click.echo(
            "The jobs controller is not running: jobs were queued with --no-controller. "
            "A `styx jobs launch` without it starts the controller.",
            err=True,
        )


@jobs.command()
@click.argument("job_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--no-follow", is_flag=True, help="Print what there is now and return.")
def logs(job_id: int, no_follow: bool) -> int:
    """Show a managed job's status transitions and its output, followed to its end.

    Each attempt's output follows the RUNNING line that started it: saved by the controller
    for attempts that are over (lost with the machines when they were preempted), read live
    from the cluster for the one running now. A job that ended without succeeding ends with
    why (the error's code, message and hint). Ctrl-C stops following; the job keeps running."""
    import sys

    from styx.jobs import api

    out = sys.stdout.buffer
    try:
        for chunk in api.logs(job_id, follow=not no_follow):
            out.write(chunk.encode("utf-8", "surrogateescape"))  # the job's bytes, as written
            out.flush()
    except KeyboardInterrupt:
        click.echo(
            f"\nStopped following managed job {job_id}; it keeps running. "
            f"Follow again with: styx jobs logs {job_id}; stop it with: styx jobs cancel {job_id}",
            err=True,
        )
        return 130
    status = api.job(job_id).status
    return 0 if status.value == "SUCCEEDED" or (no_follow and not status.is_terminal) else 1


@jobs.command()
@click.argument("job_ids", type=click.IntRange(1, 2**63 - 1), nargs=-1)
@click.option("-a", "--all", "all_jobs", is_flag=True, help="Cancel every active job.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def cancel(job_ids: tuple[int, ...], all_jobs: bool, yes: bool) -> int:
    """Cancel managed jobs (their clusters are torn down)."""
    from styx.jobs import api

    moved = api.cancel(list(job_ids), all_jobs=all_jobs)
    click.echo(f"Cancelling: {', '.join(map(str, moved)) or 'nothing'}.")
    left = sorted(set(job_ids) - set(moved))
    if left:
        click.echo(f"Not active, so not cancelled: {', '.join(map(str, left))}.", err=True)
    return 0
