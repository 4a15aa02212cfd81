"""``launch`` and ``exec``: a pipeline of named stages.

optimize -> provision -> runtime -> sync workdir -> sync file mounts -> setup + exec.
Launching on an UP cluster skips provisioning; ``exec`` skips setup. Without ``--detach`` the
command follows the job's logs and returns the job's exit code, as SkyPilot does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from styx.errors import NotSupportedError, StyxError
from styx.ops import common, stages, storage
from styx.ops.pipeline import Pipeline

if TYPE_CHECKING:
    from styx.agent.protocol import JobSpec
    from styx.providers.base import ClusterHandle
    from styx.spec.overrides import Overrides
    from styx.spec.task import Task
    from styx.state.db import Database


# --- loading ----------------------------------------------------------------------------------


def load_task(
    entrypoint: str | None,
    overrides: Overrides,
    task_name: str | None,
    *,
    allow_command: bool = False,
) -> Task:
    """The task from a YAML file (or, for exec, an inline command), with CLI overrides applied."""
    from styx.spec.overrides import apply
    from styx.spec.task import Task

    if entrypoint is None:
        task = Task()
    elif _looks_like_yaml(entrypoint) or not allow_command:
        task = Task.from_yaml(entrypoint)
    else:
        task = Task(run=entrypoint)
    task = apply(task, overrides)
    if task_name:
        task = dataclasses.replace(task, name=task_name)
    return task.substitute_env_vars()


def _looks_like_yaml(entrypoint: str) -> bool:
    return entrypoint.endswith((".yaml", ".yml")) or (
        " " not in entrypoint and os.path.isfile(entrypoint)
    )


# --- job --------------------------------------------------------------------------------------


def job_spec(task: Task, handle: ClusterHandle, *, with_setup: bool) -> JobSpec:
    """The agent's JobSpec for a task on a cluster."""
    from styx.agent.protocol import JobSpec

    envs = {k: v for k, v in task.envs.items() if v is not None}
    secret_names = []
    for k, secret in task.secrets.items():
        if secret is not None:
            envs[k] = secret.reveal()
            secret_names.append(k)
    res = task.resources
    accel = res.accelerator
    return JobSpec(
        name=task.name,
        setup=task.setup if with_setup else None,
        run=task.run,
        envs=envs,
        secret_env_names=secret_names,
        num_nodes=task.num_nodes,
        cpus=res.cpus.count if res.cpus else None,
        gpus=float(accel.count) if accel else 0.0,
        accelerator=accel.name if accel else None,
        cwd=handle.workdir if task.workdir else None,
        priority=res.priority or 0,
        user=common.user_name(),
    )


def submit(task: Task, handle: ClusterHandle, *, with_setup: bool) -> int:
    """Submit the task to the cluster's agent, which keeps the job table.

    Nothing is written to the local state database here, so ``exec`` never pays for it; the
    client-side history is copied from the agent when the cluster goes away
    (:func:`styx.ops.jobs_ops.save_history`).
    """
    spec = job_spec(task, handle, with_setup=with_setup)
    with common.agent_client(handle) as client:
        return client.submit(spec)


# --- the operations -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchResult:
    """Where a task went: the cluster, the job id, and (when waited for) the exit code."""

    cluster_name: str
    job_id: int
    exit_code: int | None = None


def _autostop_config(task: Task, idle_minutes: int | None, down: bool) -> Any:
    from styx.agent.protocol import AutostopConfig

    spec = task.resources.autostop
    if idle_minutes is not None:
        return AutostopConfig(idle_minutes=idle_minutes, down=down)
    if spec is not None and spec.enabled:
        minutes = spec.idle_minutes if spec.idle_minutes is not None else 5
        return AutostopConfig(idle_minutes=minutes, down=spec.down or down)
    if down:  # --down alone: tear down once idle after the job, as SkyPilot does
        return AutostopConfig(idle_minutes=0, down=True)
    return AutostopConfig()


def with_cli_autostop(task: Task, idle_minutes: int | None, down: bool) -> Task:
    """``task`` with ``-i/--idle-minutes`` (and ``--down``) as its ``resources.autostop``, so
    that the plan only chooses infra whose nodes can stop themselves: a launch never makes a
    cluster only to refuse its autostop."""
    if idle_minutes is None:
        return task
    import dataclasses

    from styx.spec.policies import Autostop

    wanted = Autostop(enabled=True, idle_minutes=idle_minutes, down=down)
    return dataclasses.replace(task, resources=dataclasses.replace(task.resources, autostop=wanted))


def launch(
    task: Task,
    cluster_name: str | None = None,
    *,
    detach: bool = True,
    down: bool = False,
    idle_minutes: int | None = None,
    fast: bool = False,
    quiet: bool = True,
    avoid_regions: Sequence[str] = (),
    confirm: Callable[[str], None] | None = None,
) -> LaunchResult:
    """Launch ``task`` on ``cluster_name`` (created if missing, reused if UP) and submit it.

    With ``detach=False`` the job's output streams to stdout and ``exit_code`` is the job's.
    ``avoid_regions`` (``"infra/region"``) are chosen only when nothing else fits. Once the
    task and its local paths are checked, and when the cluster is not UP (a new cluster, or
    one to bring back), ``confirm`` is called with a question ending in "Proceed?"; it raises
    to stop before anything is made.
    """
    from styx.spec.support import check_launchable
    from styx.state.clusters import get_cluster
    from styx.state.locks import cluster_lock
    from styx.state.records import ClusterStatus

    common.user_config()  # a broken config.yaml is reported before anything starts
    task = with_cli_autostop(task, idle_minutes, down)
    check_launchable(task)
    stages.check_local_paths(task)  # before anything is provisioned
    buckets = storage.check(task)  # a missing or refused bucket: before anything is made
    pipe = Pipeline(quiet=quiet)
    db = common.database()
    name = common.check_cluster_name(cluster_name) if cluster_name else _auto_name(db, pipe, task)
    if confirm is not None:
        question = _launch_question(name)
        if question is not None:
            confirm(question)
    with cluster_lock(db, name, purpose="launch", timeout=60.0):
        autostop = _autostop_config(task, idle_minutes, down)
        record = get_cluster(db, name)
        if record is not None and record.status is ClusterStatus.UP:
            pipe.skip("provision", f"cluster '{name}' is up")
            handle, provider = common.handle_of(record), common.provider_of(record)
            request = stages.provision_request(task, task.resources.candidates()[0], name)
            stages.check_fits_existing(handle, request)
            stages.preflight(task, provider, name, handle)
            stages.record_use(db, name)
        else:
            handle, provider = stages.provision_with_failover(
                db, pipe, task, name, avoid_regions=avoid_regions
            )
        from rich.markup import escape

        for warning in common.launch_warnings(task, provider.name):
            pipe.note(f"[yellow]{escape(warning)}[/]")
        if (
            not _has_autostop(provider.name)
            and down
            and idle_minutes is None
            and task.resources.autostop is None
        ):
            autostop = _autostop_config(task, None, False)  # --down: the client tears down
        if autostop.idle_minutes is not None and not _has_autostop(provider.name):
            raise NotSupportedError(
                f"Autostop is not supported on '{provider.name}' clusters.",
                f"Drop -i/--down/autostop, and run `styx down {name}` when done.",
            )
        try:
            handle = stages.bring_up_runtime(
                db,
                pipe,
                handle,
                provider,
                fast=fast,
                autostop=autostop,
            )
        except BaseException:
            _mark_failed_launch(db, name)
            raise
        stages.sync_workdir(pipe, task, handle, provider)
        stages.sync_file_mounts(pipe, task, handle, provider)
        try:
            if buckets:
                handle = storage.sync(db, pipe, task, handle, provider)
            handle = stages.bring_up_container(db, pipe, task, handle, provider)
        except StyxError as err:
            if record is None:  # a cluster made for this launch: nothing of it stays behind
                _discard(db, name, _recorded(db, name, handle), provider, why=_why(err))
            storage.discard_made(db, err)
            raise
        with pipe.stage("exec", "submitting the job" + (" (setup first)" if task.setup else "")):
            job_id = submit(task, handle, with_setup=True)
    return _after_submit(pipe, handle, job_id, detach=detach, down=down)


def exec_(
    task: Task, cluster_name: str, *, detach: bool = True, quiet: bool = True
) -> LaunchResult:
    """Sync the workdir and submit ``task`` to an UP cluster, skipping setup. Unless
    ``quiet``, the job id is printed as launch prints it (and the job's end, when followed)."""
    from styx.spec.support import check_launchable

    check_launchable(task)
    stages.check_local_paths(task)
    db = common.database()
    record, handle = common.require_up(db, cluster_name)
    request = stages.provision_request(task, task.resources.candidates()[0], cluster_name)
    stages.check_fits_existing(handle, request)
    provider = common.provider_of(record)
    stages.preflight(task, provider, cluster_name, handle)
    buckets = storage.check(task)
    pipe = Pipeline(quiet=True)
    stages.sync_workdir(pipe, task, handle, provider)
    stages.sync_file_mounts(pipe, task, handle, provider)
    if buckets:
        try:
            storage.sync(db, pipe, task, handle, provider)
        except StyxError as err:
            storage.discard_made(db, err)
            raise
    job_id = submit(task, handle, with_setup=False)
    stages.record_use(db, cluster_name)  # `styx status` shows LAST USE, as SkyPilot does
    # The stages stay silent (exec is meant to be fast and quiet); the job id is news.
    return _after_submit(Pipeline(quiet=quiet), handle, job_id, detach=detach, down=False)


def _after_submit(
    pipe: Pipeline, handle: ClusterHandle, job_id: int, *, detach: bool, down: bool
) -> LaunchResult:
    from styx.ops import jobs_ops

    name = handle.cluster_name
    if detach:
        pipe.note(f"Job {job_id} submitted to '{name}'. Follow it with: styx logs {name} {job_id}")
        return LaunchResult(name, job_id)
    pipe.note(f"[dim]Job {job_id} on '{name}'. Ctrl-C stops following; the job keeps running.[/]")
    code = jobs_ops.follow_job(handle, job_id, report=not pipe.quiet)
    if down:
        # The head's agent tears the cluster down once idle (autodown); the client does it
        # itself only where the provider has no autostop. Either may have finished first.
        from styx.errors import ClusterNotFound
        from styx.ops import cluster_ops

        if not _has_autostop(handle.provider):
            with contextlib.suppress(ClusterNotFound):
                cluster_ops.teardown(name, pipe)
    return LaunchResult(name, job_id, code)


def _auto_name(db: Database, pipe: Pipeline, task: Task) -> str:
    """The cluster of a launch without ``-c``: the one an earlier launch of this task made
    (reused when it can hold the task), else a new one."""
    from styx.errors import ResourcesUnavailable
    from styx.state.clusters import get_cluster
    from styx.state.records import ClusterStatus

    name = common.default_cluster_name(task)
    record = get_cluster(db, name)
    if record is None:
        return name
    if record.status is ClusterStatus.UP:
        try:
            request = stages.provision_request(task, task.resources.candidates()[0], name)
            stages.check_fits_existing(common.handle_of(record), request)
        except ResourcesUnavailable:
            fresh = common.default_cluster_name(task, fresh=True)
            pipe.note(f"[dim]Cluster '{name}' cannot hold this task now; using '{fresh}'.[/]")
            return fresh
    pipe.note(
        f"[dim]Reusing cluster '{name}' from an earlier launch of this task "
        "(-c NAME picks another).[/]"
    )
    return name


def _has_autostop(infra: str) -> bool:
    """Whether the head's agent of an ``infra`` cluster can stop or tear it down by itself."""
    from styx.infra import Capability
    from styx.providers.registry import info

    return Capability.AUTOSTOP in info(infra).capabilities.features


def _discard(db: Database, name: str, handle: ClusterHandle, provider: Any, why: str) -> None:
    """Tear down a cluster this launch made, after a failure that leaves it of no use."""
    from styx.ops import cluster_ops

    try:
        cluster_ops.teardown_handle(db, name, handle, provider, message=f"launch failed: {why}")
    except StyxError:
        _mark_failed_launch(db, name)  # `styx down` finishes it; the first error is reported


def _recorded(db: Database, name: str, handle: ClusterHandle) -> ClusterHandle:
    """The cluster's handle as last recorded (a failing stage may have marked it, such as the
    bucket mounts that teardown must release), or ``handle`` when there is no record."""
    from styx.state.clusters import get_cluster

    with contextlib.suppress(StyxError):
        record = get_cluster(db, name)
        if record is not None:
            return common.handle_of(record)
    return handle


def _why(err: StyxError) -> str:
    if err.code.startswith(("bucket", "mount", "store")):
        return "a bucket mount failed"
    return "the task's image did not start"


def _mark_failed_launch(db: Database, name: str) -> None:
    """A launch that failed after provisioning leaves the cluster INIT, for `down` or a retry."""
    from styx.state.clusters import set_cluster_status
    from styx.state.records import ClusterStatus

    with contextlib.suppress(StyxError):  # reporting the original error matters more
        set_cluster_status(db, name, ClusterStatus.INIT, message="launch failed")


# --- the CLI's entry points -----------------------------------------------------------------------


def launch_cli(
    entrypoint: str | None,
    *,
    cluster: str | None,
    dryrun: bool,
    detach: bool,
    down: bool,
    idle_minutes: int | None,
    fast: bool,
    confirm: Callable[[str], None] | None,
    task_name: str | None,
    overrides: Overrides,
) -> int:
    """``styx launch``: returns the process exit code. ``confirm`` as for :func:`launch`."""
    task = load_task(entrypoint, overrides, task_name)
    if dryrun:
        from styx.ops.plan import print_plan

        task = with_cli_autostop(task, idle_minutes, down)
        name = common.check_cluster_name(cluster) if cluster else common.default_cluster_name(task)
        print_plan(task, name)
        return 0
    result = launch(
        task,
        cluster,
        detach=detach,
        down=down,
        idle_minutes=idle_minutes,
        fast=fast,
        quiet=False,
        confirm=confirm,
    )
    return result.exit_code or 0


def _launch_question(name: str) -> str | None:
    """What a launch on ``name`` asks before it spends money; None for an UP cluster."""
    from styx.state.clusters import get_cluster
    from styx.state.records import ClusterStatus

    record = get_cluster(common.database(), name)
    if record is None:
        return f"Launching a new cluster '{name}'. Proceed?"
    if record.status is ClusterStatus.UP:
        return None
    return f"Launching cluster '{name}' again (it is {record.status.value}). Proceed?"


def exec_cli(
    cluster: str, entrypoint: str, *, detach: bool, task_name: str | None, overrides: Overrides
) -> int:
    """``styx exec``: returns the job's exit code (0 with --detach)."""
    task = load_task(entrypoint, overrides, task_name, allow_command=True)
    return exec_(task, cluster, detach=detach, quiet=False).exit_code or 0
