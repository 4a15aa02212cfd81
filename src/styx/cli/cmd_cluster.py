"""Cluster commands: launch, exec, queue, logs, cancel, stop, start, down, autostop.

Faces only: parse flags, call :mod:`styx.ops`, render. Heavy modules are imported inside the
command bodies so that ``styx --help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

F = Callable[..., Any]

#: Job ids are positive 64-bit integers; anything else is a usage error, not a lookup.
JOB_ID = click.IntRange(1, 2**63 - 1)
MINUTES = click.IntRange(0, 10**7)


def override_options(f: F) -> F:
    """The task-override flags shared by launch and exec (SkyPilot's names)."""
    opts = [
        click.option(
            "--env",
            "envs",
            multiple=True,
            metavar="KEY[=VAL]",
            help="Set an env var (KEY alone: take it from this shell).",
        ),
        click.option(
            "--env-file", "env_file", metavar="FILE", help="Read env vars from a dotenv file."
        ),
        click.option(
            "--secret",
            "secrets",
            multiple=True,
            metavar="KEY[=VAL]",
            help="Set a secret env var (never printed or stored).",
        ),
        click.option("--cpus", help='vCPUs per node, e.g. "4" or "4+".'),
        click.option("--memory", help='Memory per node in GB, e.g. "16", "16+" or "4x".'),
        click.option("--gpus", help='Accelerators per node, e.g. "A100:8".'),
        click.option("--num-nodes", type=int, help="Number of nodes."),
        click.option(
            "--infra", help="Where to run: local, ssh/<pool>, aws[/region[/zone]], k8s/<context>..."
        ),
        click.option("--use-spot/--no-use-spot", default=None, help="Use spot instances."),
        click.option("--instance-type", help="Instance type."),
        click.option("--disk-size", help="OS disk size in GB."),
        click.option("--image-id", help="Image ID, or docker:<image>."),
        click.option("--ports", multiple=True, help='Ports to open, e.g. 8080 or "8080-8090".'),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _overrides(kw: dict[str, Any]) -> Any:
    from styx.spec.overrides import Overrides

    return Overrides(
        env=tuple(kw.pop("envs") or ()),
        env_file=kw.pop("env_file"),
        secret=tuple(kw.pop("secrets") or ()),
        cpus=kw.pop("cpus"),
        memory=kw.pop("memory"),
        gpus=kw.pop("gpus"),
        num_nodes=kw.pop("num_nodes"),
        infra=kw.pop("infra"),
        use_spot=kw.pop("use_spot"),
        instance_type=kw.pop("instance_type"),
        disk_size=kw.pop("disk_size"),
        image_id=kw.pop("image_id"),
        ports=tuple(kw.pop("ports") or ()),
    )


@click.command()
@click.argument("entrypoint", required=False, metavar="TASK.yaml")
@click.option("-c", "--cluster", "cluster", help="Cluster name (created if missing; reused if up).")
@click.option("--dryrun", is_flag=True, help="Print the plan; change nothing.")
@click.option("-d", "--detach", "detach", is_flag=True, help="Return once the job is submitted.")
@click.option(
    "--down", is_flag=True, help="Tear the cluster down when the job finishes (and when idle)."
)
@click.option(
    "-i",
    "--idle-minutes",
    "idle_minutes",
    type=MINUTES,
    help="Autostop after this many idle minutes.",
)
@click.option("--fast", is_flag=True, help="On an up cluster, skip re-checking the runtime.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("-n", "--name", "task_name", help="Override the task name.")
@override_options
def launch(
    entrypoint: str | None,
    cluster: str | None,
    dryrun: bool,
    detach: bool,
    down: bool,
    idle_minutes: int | None,
    fast: bool,
    yes: bool,
    task_name: str | None,
    **kw: Any,
) -> int:
    """Launch a task: provision a cluster (or reuse it), set it up, and run the task."""
    from styx.cli.confirm import confirm
    from styx.ops import launch as ops_launch

    return ops_launch.launch_cli(
        entrypoint,
        cluster=cluster,
        dryrun=dryrun,
        detach=detach,
        down=down,
        idle_minutes=idle_minutes,
        fast=fast,
        confirm=lambda question: confirm(question, yes=yes, destructive=False),
        task_name=task_name,
        overrides=_overrides(kw),
    )


@click.command("exec")
@click.argument("cluster")
@click.argument("entrypoint", metavar="TASK.yaml|COMMAND", nargs=-1, required=True)
@click.option("-d", "--detach", "detach", is_flag=True, help="Return once the job is submitted.")
@click.option("-n", "--name", "task_name", help="Override the task name.")
@override_options
def exec_(
    cluster: str, entrypoint: tuple[str, ...], detach: bool, task_name: str | None, **kw: Any
) -> int:
    """Run a task (a YAML file or a shell command) on an up cluster; setup is skipped."""
    from styx.ops import launch as ops_launch

    return ops_launch.exec_cli(
        cluster,
        " ".join(entrypoint),
        detach=detach,
        task_name=task_name,
        overrides=_overrides(kw),
    )


@click.command()
@click.argument("clusters", nargs=-1)
@click.option(
    "-a", "--all", "all_jobs", is_flag=True, help="Include finished jobs beyond the recent ones."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def queue(clusters: tuple[str, ...], all_jobs: bool, as_json: bool) -> int:
    """Show the job queue of clusters (all up clusters when none is named)."""
    import json

    from styx.cli.tables import job_table
    from styx.ops import jobs_ops

    shown = []
    for q in jobs_ops.queues(list(clusters), all_jobs=all_jobs):
        if q.jobs is None:
            click.echo(f"Cluster '{q.cluster}' is {q.status}; no queue to show.", err=True)
        else:
            shown.append((q.cluster, q.jobs))
    if as_json:
        out = {name: [j.to_dict() for j in jobs] for name, jobs in shown}
        click.echo(json.dumps(out, indent=2))
        return 0
    for name, jobs in shown:
        job_table(name, jobs)
    return 0


@click.command()
@click.argument("cluster")
@click.argument("job_id", required=False, type=JOB_ID)
@click.option("--follow/--no-follow", default=True, help="Follow until the job ends (default).")
@click.option(
    "--status",
    "status_only",
    is_flag=True,
    help="Print the job's status only; exit 0 if it succeeded.",
)
def logs(cluster: str, job_id: int | None, follow: bool, status_only: bool) -> int:
    """Show a job's logs (the latest job when no id is given). Ctrl-C leaves the job running.

    The output is the job's bytes as written. Exits with the job's exit code once it has
    ended (followed or not), 0 while it still runs."""
    from styx.ops import jobs_ops

    handle, job = jobs_ops.find_job(cluster, job_id)
    if status_only:
        click.echo(f"Job {job.job_id}: {job.status.value}")
        return 0 if job.status.value == "SUCCEEDED" else 1
    if not follow:
        for data in jobs_ops.log_chunks(handle, job.job_id):
            jobs_ops.write_output(data)
        return jobs_ops.exit_code_of(job) if job.status.is_terminal else 0
    return jobs_ops.follow_job(handle, job.job_id, report=False)


@click.command()
@click.argument("cluster")
@click.argument("job_ids", nargs=-1, type=JOB_ID)
@click.option("-a", "--all", "all_jobs", is_flag=True, help="Cancel every unfinished job.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def cancel(cluster: str, job_ids: tuple[int, ...], all_jobs: bool, yes: bool) -> int:
    """Cancel jobs on a cluster: by ids, or --all."""
    import time

    from styx.ops import jobs_ops

    if all_jobs and not job_ids:
        from styx.cli.confirm import confirm
        from styx.ops import common

        # An unknown or stopped cluster fails before the question, as it would after it.
        if common.require_cluster(common.database(), cluster).status.value != "UP":
            common.require_up(common.database(), cluster)
        confirm(f"Cancelling all jobs on cluster '{cluster}'. Proceed?", yes=yes, destructive=True)
    started = time.monotonic()
    cancelled = jobs_ops.cancel(cluster, list(job_ids), all_jobs=all_jobs)
    if cancelled:
        ids = ", ".join(map(str, cancelled))
        click.echo(f"Cancelled job(s) {ids} on '{cluster}' ({time.monotonic() - started:.2f} s).")
    else:
        click.echo(f"No unfinished job to cancel on '{cluster}'.")
    return 0


def _lifecycle(action: str, help_text: str) -> click.Command:
    @click.command(action, help=help_text)
    @click.argument("clusters", nargs=-1)
    @click.option("-a", "--all", "all_clusters", is_flag=True, help="Every cluster.")
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    def command(clusters: tuple[str, ...], all_clusters: bool, yes: bool) -> int:
        from styx.cli.confirm import confirm
        from styx.cli.render import print_error_brief
        from styx.ops import cluster_ops
        from styx.ops.pipeline import Pipeline

        def ask(names: list[str]) -> None:
            verb = {"stop": "Stopping", "start": "Starting", "down": "Tearing down"}[action]
            question = f"{verb} cluster(s) {', '.join(names)}. Proceed?"
            confirm(question, yes=yes, destructive=action != "start")

        failures = cluster_ops.lifecycle(
            action,
            list(clusters),
            all_clusters=all_clusters,
            pipe=Pipeline(),
            on_error=print_error_brief,  # as each fails, between the stage lines
            confirm=ask,
        )
        return 1 if failures else 0

    return command


stop = _lifecycle("stop", "Stop clusters, keeping their disks and job history.")
start = _lifecycle("start", "Start stopped clusters again.")
down = _lifecycle(
    "down", "Tear down clusters: remove their machines and everything Styx ran on them."
)


@click.command()
@click.argument("clusters", nargs=-1, required=True)
@click.option(
    "-i",
    "--idle-minutes",
    "idle_minutes",
    type=MINUTES,
    default=5,
    show_default=True,
    help="Idle minutes before stopping.",
)
@click.option("--cancel", "cancel_", is_flag=True, help="Cancel autostop.")
@click.option("--down", is_flag=True, help="Tear down instead of stopping.")
def autostop(clusters: tuple[str, ...], idle_minutes: int, cancel_: bool, down: bool) -> int:
    """Stop (or tear down, with --down) clusters after they have been idle for a while."""
    from styx.ops import cluster_ops

    minutes = None if cancel_ else idle_minutes
    for name in clusters:
        cluster_ops.set_autostop(name, minutes, down=down)
        if minutes is None:
            click.echo(f"Autostop cancelled for '{name}'.")
        else:
            what = "torn down" if down else "stopped"
            click.echo(f"'{name}' will be {what} after {minutes} idle minute(s).")
    return 0
