"""``launch`` and ``exec``: a pipeline of named stages.

optimize -> provision -> runtime -> sync workdir -> sync file mounts -> setup + exec.
Launching on an UP cluster skips provisioning; ``exec`` skips setup. Without ``--detach`` the
command follows the job's logs and returns the job's exit code, as SkyPilot does.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from styx.errors import NotSupportedError, ResourcesUnavailable, SpecError, StyxError
from styx.ops import common
from styx.ops.pipeline import Pipeline

if TYPE_CHECKING:
    from styx.agent.protocol import JobSpec
    from styx.providers.base import ClusterHandle, Provider, ProvisionRequest
    from styx.spec.overrides import Overrides
    from styx.spec.resources import Resources
    from styx.spec.task import Task
    from styx.state.db import Database


@dataclass(frozen=True)
class Placement:
    """What the optimize stage chose: an infra kind and the resources to provision."""

    infra: str
    resources: Resources
    request: ProvisionRequest

    def describe(self) -> str:
        r = self.request
        parts = [f"{r.num_nodes}x {self.infra}"]
        if r.cpus:
            parts.append(f"cpus={r.cpus:g}+")
        if r.memory_gb:
            parts.append(f"memory={r.memory_gb:g}GB+")
        for name, count in (r.accelerators or {}).items():
            parts.append(f"{name}:{count:g}")
        return " ".join(parts)


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
        import dataclasses

        task = dataclasses.replace(task, name=task_name)
    return task.substitute_env_vars()


def _looks_like_yaml(entrypoint: str) -> bool:
    return entrypoint.endswith((".yaml", ".yml")) or (
        " " not in entrypoint and os.path.isfile(entrypoint)
    )


# --- optimize -------------------------------------------------------------------------------


def choose_placement(task: Task, cluster_name: str) -> Placement:
    """Resources as written (the optimizer comes later): the first candidate this Styx can run."""
    from styx.providers.base import ProvisionRequest

    reasons: list[str] = []
    for candidate in task.resources.candidates():
        infra = candidate.cloud or "local"
        if infra != "local":
            reasons.append(f"infra '{candidate.infra}' is not supported yet")
            continue
        if candidate.instance_type or candidate.use_spot:
            reasons.append("instance_type and use_spot need a cloud")
            continue
        accels = {a.name: float(a.count) for a in candidate.accelerators[:1]}
        cpus = candidate.cpus.count if candidate.cpus else None
        memory = None
        if candidate.memory is not None:
            memory = candidate.memory.gb
            if memory is None and candidate.memory.per_cpu and cpus:
                memory = candidate.memory.per_cpu * cpus
        request = ProvisionRequest(
            cluster_name=cluster_name,
            num_nodes=task.num_nodes,
            cpus=cpus,
            memory_gb=memory,
            accelerators=accels or None,
            ports=tuple(str(p.to_yaml()) for p in candidate.ports),
        )
        return Placement("local", candidate, request)
    raise NotSupportedError(
        f"No resource candidate of the task can run on this version of Styx ({'; '.join(reasons)}).",
        "Use `infra: local` (this machine) for now; SSH pools and clouds are on the way.",
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
    from styx.cluster import runtime

    spec = job_spec(task, handle, with_setup=with_setup)
    with runtime.client(handle) as client:
        return client.submit(spec)


# --- stages -----------------------------------------------------------------------------------


def provision(
    db: Database,
    pipe: Pipeline,
    task: Task,
    name: str,
    placement: Placement,
) -> tuple[ClusterHandle, Provider]:
    """Create the cluster's nodes, or reuse them when the cluster exists."""
    from styx.providers.base import ClusterHandle
    from styx.providers.registry import get_provider
    from styx.state.clusters import get_cluster, upsert_cluster
    from styx.state.records import ClusterStatus

    provider = get_provider(placement.infra)
    record = get_cluster(db, name)
    if record is not None and record.status is ClusterStatus.UP:
        pipe.skip("provision", f"cluster '{name}' is up")
        handle = ClusterHandle.from_json(dict(record.handle))
        _check_fits_existing(handle, placement)
        return handle, provider
    with pipe.stage("provision", f"{placement.describe()} for cluster '{name}'"):
        if record is not None and record.status is ClusterStatus.STOPPED:
            handle = provider.start(ClusterHandle.from_json(dict(record.handle)))
        else:
            handle = provider.provision(placement.request)
        upsert_cluster(
            db,
            name,
            provider=provider.name,
            handle=handle.to_json(),
            status=ClusterStatus.INIT,
            launched_resources=placement.resources.to_dict(),
            num_nodes=task.num_nodes,
            launched_at=time.time(),
            last_use=_last_use(),
            user_name=common.user_name(),
            message="provisioned",
        )
    return handle, provider


def _check_fits_existing(handle: ClusterHandle, placement: Placement) -> None:
    request = placement.request
    if request.num_nodes > len(handle.nodes):
        raise ResourcesUnavailable(
            f"Cluster '{handle.cluster_name}' has {len(handle.nodes)} node(s); the task needs "
            f"{request.num_nodes}.",
            "Launch on a new cluster name, or lower num_nodes.",
        )
    if request.cpus and request.cpus > handle.head.cpus:
        raise ResourcesUnavailable(
            f"Cluster '{handle.cluster_name}' has {handle.head.cpus:g} CPUs per node; the task "
            f"asks for {request.cpus:g}.",
            "Launch on a new cluster name, or lower cpus.",
        )


def bring_up_runtime(
    db: Database,
    pipe: Pipeline,
    handle: ClusterHandle,
    provider: Provider,
    *,
    fast: bool,
    autostop: Any,
) -> ClusterHandle:
    """Ray and the agent up on the cluster (installed first if needed); returns the handle."""
    from styx.cluster import runtime
    from styx.state.clusters import set_cluster_status
    from styx.state.records import ClusterStatus

    if fast and runtime.agent_current(handle):
        pipe.skip("runtime", "agent is up (--fast)")
    else:
        handle = ensure_installed(db, pipe, handle, provider)
        with pipe.stage("runtime", "Ray and the Styx agent on the head node"):
            runtime.start(
                handle,
                provider.runner(handle),
                autostop=autostop,
                commands=provider.autostop_commands(handle),
            )
    set_cluster_status(db, handle.cluster_name, ClusterStatus.UP, message="runtime up")
    return handle


def ensure_installed(
    db: Database, pipe: Pipeline, handle: ClusterHandle, provider: Provider
) -> ClusterHandle:
    """Install Ray and Styx into the node's runtime venv when its interpreter lacks them."""
    import dataclasses

    from styx.cluster import install
    from styx.state.clusters import update_cluster

    runner = provider.runner(handle)
    if install.has_runtime(runner, handle.python):
        return handle
    venv = str(Path(handle.agent_root).parent.parent.parent / "runtime")
    with pipe.stage("install runtime", f"Ray and Styx into {venv} (first launch only)"):
        python = install.install(runner, handle.python, venv, install.RuntimeSource.detect())
    handle = dataclasses.replace(handle, python=python)
    update_cluster(db, handle.cluster_name, handle=handle.to_json())
    return handle


def sync_workdir(pipe: Pipeline, task: Task, handle: ClusterHandle, provider: Provider) -> None:
    from styx.cluster.sync import rsync_filter_args

    if not isinstance(task.workdir, str):
        pipe.skip("sync workdir", "no workdir")
        return
    src = os.path.expanduser(task.workdir)
    if not os.path.isdir(src):
        raise SpecError(
            f"The workdir '{task.workdir}' is not a folder.",
            "Point `workdir` at an existing folder, or remove it.",
            code="workdir-not-found",
        )
    filters = rsync_filter_args(src)
    with pipe.stage("sync workdir", f"{task.workdir} -> {handle.workdir}"):
        for i in range(len(handle.nodes)):
            provider.runner(handle, i).rsync_up(src, handle.workdir, filter_args=filters)


def sync_file_mounts(pipe: Pipeline, task: Task, handle: ClusterHandle, provider: Provider) -> None:
    if not task.file_mounts:
        pipe.skip("sync file mounts", "no file_mounts")
        return
    with pipe.stage("sync file mounts", f"{len(task.file_mounts)} mount(s)"):
        for dest, mount in task.file_mounts.items():
            src = os.path.expanduser(str(mount.source))
            if not os.path.exists(src):
                raise SpecError(
                    f"The file_mounts source '{mount.source}' for '{dest}' does not exist.",
                    "Fix the local path, or remove the mount.",
                    code="mount-source-not-found",
                )
            target = os.path.expanduser(dest) if handle.provider == "local" else dest
            for i in range(len(handle.nodes)):
                provider.runner(handle, i).rsync_up(src, target)


def _last_use() -> str:
    import sys

    return " ".join(["styx", *sys.argv[1:]])[:500]


# --- the operations -----------------------------------------------------------------------------


def _autostop_config(task: Task, idle_minutes: int | None, down: bool) -> Any:
    from styx.agent.protocol import AutostopConfig

    spec = task.resources.autostop
    if idle_minutes is not None:
        return AutostopConfig(idle_minutes=idle_minutes, down=down)
    if spec is not None and spec.enabled:
        return AutostopConfig(
            idle_minutes=spec.idle_minutes if spec.idle_minutes is not None else 5,
            down=spec.down or down,
        )
    if down:  # --down alone: tear down once idle after the job, as SkyPilot does
        return AutostopConfig(idle_minutes=0, down=True)
    return AutostopConfig()


def launch_cli(
    entrypoint: str | None,
    *,
    cluster: str | None,
    dryrun: bool,
    detach: bool,
    down: bool,
    idle_minutes: int | None,
    fast: bool,
    yes: bool,
    task_name: str | None,
    overrides: Overrides,
) -> int:
    """``styx launch``: returns the process exit code."""
    from styx.spec.support import check_launchable

    common.user_config()  # a broken config.yaml is reported before anything starts
    task = load_task(entrypoint, overrides, task_name)
    name = common.check_cluster_name(cluster) if cluster else common.default_cluster_name()
    if dryrun:
        from styx.ops.plan import print_plan

        print_plan(task, name)
        return 0
    check_launchable(task)
    pipe = Pipeline()
    with pipe.stage("optimize", "resources as written"):
        placement = choose_placement(task, name)
    db = common.database()
    from styx.state.locks import cluster_lock

    with cluster_lock(db, name, purpose="launch", timeout=60.0):
        handle, provider = provision(db, pipe, task, name, placement)
        try:
            handle = bring_up_runtime(
                db,
                pipe,
                handle,
                provider,
                fast=fast,
                autostop=_autostop_config(task, idle_minutes, down),
            )
        except BaseException:
            _mark_failed_launch(db, name)
            raise
        sync_workdir(pipe, task, handle, provider)
        sync_file_mounts(pipe, task, handle, provider)
        with pipe.stage("exec", "submitting the job" + (" (setup first)" if task.setup else "")):
            job_id = submit(task, handle, with_setup=True)
    return _after_submit(pipe, handle, job_id, detach=detach, down=down)


def exec_cli(
    cluster: str, entrypoint: str, *, detach: bool, task_name: str | None, overrides: Overrides
) -> int:
    """``styx exec``: sync the workdir and submit to an UP cluster, skipping setup."""
    from styx.spec.support import check_launchable

    task = load_task(entrypoint, overrides, task_name, allow_command=True)
    check_launchable(task)
    db = common.database()
    _, handle = common.require_up(db, cluster)
    placement = choose_placement(task, cluster)
    _check_fits_existing(handle, placement)
    provider = common.provider_of(common.require_cluster(db, cluster))
    pipe = Pipeline(quiet=True)
    sync_workdir(pipe, task, handle, provider)
    sync_file_mounts(pipe, task, handle, provider)
    job_id = submit(task, handle, with_setup=False)
    return _after_submit(pipe, handle, job_id, detach=detach, down=False, quiet=True)


def _after_submit(
    pipe: Pipeline,
    handle: ClusterHandle,
    job_id: int,
    *,
    detach: bool,
    down: bool,
    quiet: bool = False,
) -> int:
    from styx.ops import jobs_ops

    name = handle.cluster_name
    if detach:
        pipe.note(f"Job {job_id} submitted to '{name}'. Follow it with: styx logs {name} {job_id}")
        return 0
    if not quiet:
        pipe.note(
            f"[dim]Job {job_id} on '{name}'. Ctrl-C stops following; the job keeps running.[/]"
        )
    code = jobs_ops.follow_job(handle, job_id, report=not quiet)
    if down:
        from styx.ops import cluster_ops

        cluster_ops.teardown(name, pipe)
    return code


def _mark_failed_launch(db: Database, name: str) -> None:
    """A launch that failed after provisioning leaves the cluster INIT, for `down` or a retry."""
    from styx.state.clusters import set_cluster_status
    from styx.state.records import ClusterStatus

    with contextlib.suppress(StyxError):  # reporting the original error matters more
        set_cluster_status(db, name, ClusterStatus.INIT, message="launch failed")
