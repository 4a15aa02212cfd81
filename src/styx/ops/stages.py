"""The stages of a launch: optimize, provision, runtime, sync workdir, sync file mounts.

Each stage is reported through a :class:`~styx.ops.pipeline.Pipeline`; ``launch`` and ``exec``
in :mod:`styx.ops.launch` put them together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from styx.errors import ResourcesUnavailable, SpecError, StyxError
from styx.ops import common
from styx.ops.pipeline import Pipeline

if TYPE_CHECKING:
    from styx.cluster.dests import Destination
    from styx.providers.base import ClusterHandle, Provider, ProvisionRequest
    from styx.spec.resources import Resources
    from styx.spec.task import Task
    from styx.state.db import Database


@dataclass(frozen=True)
class Placement:
    """What the optimize stage chose: an infra kind and the resources to provision."""

    infra: str
    resources: Resources
    request: ProvisionRequest
    candidate: Any = None  # the optimizer's Candidate, for blocking it when it fails
    notes: tuple[str, ...] = ()  # the plan's notes: cheaper places left out, unknown prices

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


# --- optimize -------------------------------------------------------------------------------


def provision_request(task: Task, candidate: Resources, cluster_name: str) -> ProvisionRequest:
    """What to ask a provider for, from one concrete resources candidate of the task."""
    from styx.providers.base import ProvisionRequest
    from styx.spec.frozen import thaw

    accels = {a.name: float(a.count) for a in candidate.accelerators[:1]}
    cpus = candidate.cpus.count if candidate.cpus else None
    memory = None
    if candidate.memory is not None:
        memory = candidate.memory.gb
        if memory is None and candidate.memory.per_cpu and cpus:
            memory = candidate.memory.per_cpu * cpus
    return ProvisionRequest(
        cluster_name=cluster_name,
        num_nodes=task.num_nodes,
        cpus=cpus,
        memory_gb=memory,
        accelerators=accels or None,
        ports=tuple(str(p.to_yaml()) for p in candidate.ports),
        region=candidate.region,
        zone=candidate.zone,
        disk_size=candidate.disk_size,
        disk_tier=candidate.disk_tier,
        image_id=_image_for(candidate, candidate.region),
        labels=tuple(sorted((candidate.labels or {}).items())),
        config=thaw(task.config) if task.config else {},
    )


def _image_for(candidate: Resources, region: str | None) -> str | None:
    """The task's image_id: a string, or the entry of a per-region mapping for ``region``."""
    image = candidate.image_id
    if image is None or isinstance(image, str):
        return image
    return image.get(region) if region else None


def choose_placement(task: Task, cluster_name: str, blocked: Any = None) -> Placement:
    """The optimizer's choice among the infra Styx can launch on and that is enabled (this
    machine, the SSH pools the task names, the enabled clouds), avoiding the ``blocked`` places
    (an optimizer Blocklist). The placement's notes name cheaper places that were left out."""
    from styx.optimizer import optimize_task
    from styx.providers.checks import infra_choices

    plan = optimize_task(task, choices=infra_choices(task), blocked=blocked)
    chosen = plan.chosen
    # The zone only when the task pins one: otherwise the provider may try every zone of the
    # region in one call, and a region-wide failure blocks the region at once.
    request = dataclasses.replace(
        provision_request(task, chosen.spec, cluster_name),
        region=chosen.region,
        zone=chosen.spec.zone,
        image_id=_image_for(chosen.spec, chosen.region),
        instance_type=chosen.instance_type,
        use_spot=chosen.use_spot,
    )
    return Placement(chosen.infra, chosen.spec, request, chosen, plan.notes)


# --- stages -----------------------------------------------------------------------------------


def provision(
    db: Database,
    pipe: Pipeline,
    task: Task,
    name: str,
    placement: Placement,
) -> tuple[ClusterHandle, Provider]:
    """Create the cluster's nodes (or start them again when the cluster is STOPPED).

    For providers whose machines cost money, the cluster is recorded (INIT) before anything is
    created, so that a launch killed half-way is still found by `styx status` and `styx down`.
    """
    from styx.providers.base import ClusterHandle
    from styx.providers.registry import get_provider
    from styx.state.clusters import get_cluster, upsert_cluster
    from styx.state.records import ClusterStatus

    record = get_cluster(db, name)
    provider = get_provider(record.provider if record is not None else placement.infra)
    preflight(task, provider, name)
    restarting = record is not None and record.status is ClusterStatus.STOPPED
    # A stopped cluster starts where it was, whatever the optimizer would pick now.
    launched = (
        record.launched_resources
        if restarting and record is not None and record.launched_resources
        else _launched(placement)
    )
    last_use = _last_use()

    def save(handle: ClusterHandle, message: str, launched_at: float | None = None) -> None:
        saved = upsert_cluster(
            db,
            name,
            provider=provider.name,
            handle=handle.to_json(),
            status=ClusterStatus.INIT,
            launched_resources=launched,
            num_nodes=task.num_nodes,
            launched_at=launched_at,
            last_use=last_use,
            user_name=common.user_name(),
            message=message,
        )
        if not restarting:  # a restarted cluster keeps the price it was launched at
            _record_price(db, saved, placement, launched)

    with pipe.stage("provision", f"{placement.describe()} for cluster '{name}'"):
        if record is not None and record.status is ClusterStatus.STOPPED:
            handle = provider.start(ClusterHandle.from_json(dict(record.handle)))
        else:
            if record is None and provider.creates_machines:
                pending = ClusterHandle(
                    cluster_name=name,
                    provider=provider.name,
                    nodes=(),
                    agent_root="",
                    python="",
                    workdir="",
                    ray_port=0,
                    extra={"pending": True, "region": placement.request.region},
                )
                save(pending, "provisioning")
            try:
                handle = provider.provision(placement.request)
            except StyxError as err:
                # The provider cleaned up what it made (or says why it could not): a record
                # with nothing behind it would be half-written state.
                made = record is None and provider.creates_machines
                if made and not err.details.get("cleanup_error"):
                    from styx.state.clusters import delete_cluster

                    delete_cluster(db, name, message=f"launch failed: {err.code}")
                raise
        save(handle, "provisioned", launched_at=time.time())
    return handle, provider


def _record_price(db: Database, record: Any, placement: Placement, launched: Any) -> None:
    """The cluster incarnation's price per hour, as the optimizer's candidate priced it."""
    from styx.ops.cost import record_launch

    req, candidate = placement.request, placement.candidate
    infra = "/".join(p for p in (placement.infra, req.region, req.zone) if p)
    price = getattr(candidate, "hourly_price", None)
    record_launch(db, record, infra=infra, resources=launched, node_hourly_price=price)


def _launched(placement: Placement) -> dict[str, Any]:
    """The task's resources made concrete with where the optimizer put them."""
    out = placement.resources.to_dict()
    req = placement.request
    if req.region:
        out["infra"] = "/".join(p for p in (placement.infra, req.region, req.zone) if p)
    if req.instance_type:
        out["instance_type"] = req.instance_type
    if req.use_spot:
        out["use_spot"] = True
    return out


def provision_with_failover(
    db: Database,
    pipe: Pipeline,
    task: Task,
    name: str,
    *,
    max_attempts: int = 10,
    avoid_regions: Sequence[str] = (),
) -> tuple[ClusterHandle, Provider]:
    """Optimize, provision; on a capacity, quota or auth error block that zone, region or
    infra and ask the optimizer again, until something works or nothing is left.

    ``avoid_regions`` (``"infra/region"``) are tried last: blocked at first, and unblocked
    only when nothing else fits (a managed job's EAGER_NEXT_REGION recovery)."""
    from styx.errors import FailoverScope, NoCapacity
    from styx.optimizer import Block, Blocklist

    soft = [Block(infra, region) for infra, _, region in (r.partition("/") for r in avoid_regions)]
    blocked = Blocklist(frozenset(soft))
    tried: list[str] = []
    last_failure: ResourcesUnavailable | None = None
    while True:
        try:
            with pipe.stage(
                "optimize",
                "the cheapest place that fits"
                + (f" ({len(tried)} place(s) blocked)" if tried else ""),
            ):
                placement = choose_placement(task, name, blocked)
            if not tried:
                from rich.markup import escape

                for note in placement.notes:
                    pipe.note(f"[dim]{escape(note)}[/]")
        except ResourcesUnavailable as err:
            if soft:  # nothing but the avoided regions fits: use them after all
                blocked = Blocklist(blocked.blocks - frozenset(soft))
                soft = []
                continue
            if not tried:
                raise
            if len(tried) == 1 and last_failure is not None:
                raise last_failure from err  # the only place that fit says best what failed
            raise ResourcesUnavailable(
                f"Every place that fits failed: {'; '.join(tried)}.",
                "Retry later, relax the resources, or enable more infra (`styx check`).",
                details={"tried": tried, "last": err.message},
            ) from err
        try:
            return provision(db, pipe, task, name, placement)
        except ResourcesUnavailable as err:
            # The provider says what failed through the error's typed scope: a zone, a region
            # or the whole cloud (quota errors are regional, auth errors cloud-wide by default).
            c, scope = placement.candidate, err.scope
            if scope is None and isinstance(err, NoCapacity):
                scope = FailoverScope.ZONE if placement.request.zone else FailoverScope.REGION
            if c is None or scope is None or len(tried) + 1 >= max_attempts:
                raise
            if scope is FailoverScope.CLOUD:
                blocked = blocked.block_infra(c.infra)
            elif scope is FailoverScope.ZONE and c.zone:
                blocked = blocked.block_zone(c)
            else:
                blocked = blocked.block_region(c)
            tried.append(f"{c.describe()}: {err.code}")
            last_failure = err
            pipe.note(f"[yellow]{c.describe()}: {err.message} Trying the next place.[/]")


def check_fits_existing(handle: ClusterHandle, request: ProvisionRequest) -> None:
    """Refuse a task that the existing cluster's nodes cannot hold."""
    if request.num_nodes > len(handle.nodes):
        raise ResourcesUnavailable(
            f"Cluster '{handle.cluster_name}' has {len(handle.nodes)} node(s); the task needs "
            f"{request.num_nodes}.",
            "Launch on a new cluster name, or lower num_nodes.",
        )
    name, nodes = handle.cluster_name, handle.nodes[: max(request.num_nodes, 1)]
    cpus = min(n.cpus for n in nodes)
    if request.cpus and request.cpus > cpus:
        raise ResourcesUnavailable(
            f"Cluster '{name}' has {cpus:g} CPUs per node; the task asks for {request.cpus:g}.",
            "Launch on a new cluster name, or lower cpus.",
        )
    memory = min(n.memory_gb for n in nodes)
    if request.memory_gb and request.memory_gb > memory:
        raise ResourcesUnavailable(
            f"Cluster '{name}' has {memory:g} GB of memory per node; the task asks for "
            f"{request.memory_gb:g} GB.",
            "Launch on a new cluster name, or lower memory.",
        )
    for accel, count in (request.accelerators or {}).items():
        have = [n for n in nodes if (n.accelerator or "").upper() == accel.upper()]
        if len(have) < len(nodes) or min(n.gpus for n in have) < count:
            gpus = {f"{n.gpus:g}x {n.accelerator}" for n in nodes if n.accelerator and n.gpus}
            what = ", ".join(sorted(gpus)) or "no accelerators"
            raise ResourcesUnavailable(
                f"Cluster '{name}' has {what} per node; the task asks for {accel}:{count:g}.",
                "Launch on a new cluster name with those accelerators, or drop them.",
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

    if fast and runtime.agent_current(provider.agent_socket(handle)):
        pipe.skip("runtime", "agent is up (--fast)")
    else:
        handle = ensure_installed(db, pipe, handle, provider)
        nodes = len(handle.nodes)
        what = "Ray and the Styx agent" + (f" on {nodes} nodes" if nodes > 1 else "")
        with pipe.stage("runtime", what):
            runtime.start(handle, provider, autostop=autostop)
    set_cluster_status(db, handle.cluster_name, ClusterStatus.UP, message="runtime up")
    return handle


def ensure_installed(
    db: Database, pipe: Pipeline, handle: ClusterHandle, provider: Provider
) -> ClusterHandle:
    """Ray and Styx on every node: installed into the runtime venv where missing, and (from a
    source tree) the nodes' copy of Styx brought up to date."""
    from styx import paths
    from styx.cluster import install, runtime
    from styx.state.clusters import update_cluster

    venv = handle.extra.get("runtime_venv")
    base = handle.extra.get("base_python") or handle.python
    source = install.RuntimeSource.detect()
    runners = [provider.runner(handle, i) for i in range(len(handle.nodes))]
    missing = [r for r in runners if not install.has_runtime(r, handle.python)]
    if not missing:
        if venv:  # a managed runtime: keep its copy of Styx in step with this client
            managed = str(venv)
            runtime.each(runners, lambda r: install.sync_source(r, managed, source), "sync Styx")
        return handle
    venv = venv or str(paths.home() / "runtime")
    where = f"{len(missing)} node(s)" if len(runners) > 1 else venv
    with pipe.stage("install runtime", f"Ray and Styx into {where} (first launch only)"):
        runtime.each(missing, lambda r: install.install(r, base, venv, source), "install")
    python = install.runtime_python(venv)
    if python != handle.python or handle.extra.get("runtime_venv") != venv:
        extra = {**handle.extra, "runtime_venv": venv}
        handle = dataclasses.replace(handle, python=python, extra=extra)
        update_cluster(db, handle.cluster_name, handle=handle.to_json())
    return handle


def check_local_paths(task: Task) -> None:
    """Every local path the task names exists: its workdir and file mount sources (checked
    before anything is provisioned; env files are read when the task is loaded). A git
    workdir's repository and ref are checked from here (see :func:`styx.cluster.gitdir.check`)."""
    from styx.spec.mounts import GitWorkdir

    if isinstance(task.workdir, GitWorkdir):
        from styx.cluster import gitdir

        gitdir.check(task)
    if isinstance(task.workdir, str):
        src = os.path.expanduser(task.workdir)
        if not os.path.isdir(src):
            raise SpecError(
                f"The workdir '{task.workdir}' is not a folder.",
                "Point `workdir` at an existing folder, or remove it.",
                code="workdir-not-found",
            )
    for dest, mount in task.file_mounts.items():
        if not mount.is_local:
            continue
        if not os.path.exists(os.path.expanduser(str(mount.source))):
            raise SpecError(
                f"The file_mounts source '{mount.source}' for '{dest}' does not exist.",
                "Fix the local path, or remove the mount.",
                code="mount-source-not-found",
            )


def destinations(
    task: Task, provider: Provider, cluster_name: str, handle: ClusterHandle | None = None
) -> dict[str, Destination]:
    """Where each local file mount lands on the cluster's nodes, and whether its sync may
    delete there; SpecError ``mount-destination-refused`` for a destination that must not be
    written (see :mod:`styx.cluster.dests`)."""
    from styx.cluster.dests import resolve
    from styx.spec.yamlio import format_path

    local = [d for d, m in task.file_mounts.items() if m.is_local]
    if not local:
        return {}
    folders = provider.node_folders(cluster_name, handle)
    out = {}
    for dest in local:
        try:
            out[dest] = resolve(dest, folders)
        except SpecError as err:
            err.details["path"] = format_path(("file_mounts", dest))
            raise
    return out


def preflight(
    task: Task, provider: Provider, cluster_name: str, handle: ClusterHandle | None = None
) -> None:
    """The checks that must pass before anything is provisioned or synced."""
    check_local_paths(task)
    destinations(task, provider, cluster_name, handle)


def sync_workdir(pipe: Pipeline, task: Task, handle: ClusterHandle, provider: Provider) -> None:
    from styx.cluster.sync import rsync_filter_args
    from styx.spec.mounts import GitWorkdir

    if isinstance(task.workdir, GitWorkdir):  # cloned on every node, at the checked ref
        from styx.cluster import gitdir

        target, work = gitdir.check(task), task.workdir
        owned = provider.node_folders(handle.cluster_name, handle).confined
        runners = [provider.runner(handle, i) for i in range(len(handle.nodes))]
        with pipe.stage("sync workdir", f"{gitdir.describe(work)} -> {handle.workdir}"):
            gitdir.sync(
                runners,
                handle.workdir,
                work,
                target,
                gitdir.auth_for(task),
                key_dest=f"{handle.agent_root}/secrets/git-ssh-key",
                owned=owned,
            )
        return
    if not isinstance(task.workdir, str):
        pipe.skip("sync workdir", "no workdir")
        return
    check_local_paths(task)
    src = os.path.expanduser(task.workdir)
    filters = [*rsync_filter_args(src), "--filter", f"P {WORKDIR_MARK}"]
    confined = provider.node_folders(handle.cluster_name, handle).confined
    with pipe.stage("sync workdir", f"{task.workdir} -> {handle.workdir}"):
        for i in range(len(handle.nodes)):
            runner = provider.runner(handle, i)
            # A mirror (deletes included) only in a folder Styx made: a local cluster's own, or
            # a remote one that carries Styx's mark (or did not exist, and gets it now).
            mirror = confined or _claim_workdir(runner, handle.workdir)
            runner.rsync_up(src, handle.workdir, filter_args=filters, delete=mirror)


#: Left in a remote workdir Styx made, so that later syncs know they may delete there.
WORKDIR_MARK = ".styx-workdir"


def _claim_workdir(runner: Any, workdir: str) -> bool:
    """Whether ``workdir`` on the node is Styx's to mirror into: it carries Styx's mark, or is
    missing or empty and gets the mark now. A folder with someone else's files is not."""
    script = (
        'd="$1"; case "$d" in "~/"*) d="$HOME/${d#\\~/}";; esac; '
        'if [ -e "$d/$2" ]; then exit 0; fi; '
        'if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then exit 3; fi; '
        'mkdir -p "$d" && : > "$d/$2"'
    )
    result = runner.run(["sh", "-c", script, "sh", workdir, WORKDIR_MARK], timeout=60)
    return bool(result.returncode == 0)


def sync_file_mounts(pipe: Pipeline, task: Task, handle: ClusterHandle, provider: Provider) -> None:
    if not task.file_mounts:
        pipe.skip("sync file mounts", "no file_mounts")
        return
    check_local_paths(task)
    # Resolved again now that the nodes' home is known (and symlinks can be followed).
    targets = destinations(task, provider, handle.cluster_name, handle)
    local = {d: m for d, m in task.file_mounts.items() if m.is_local}
    if not local:
        return
    with pipe.stage("sync file mounts", f"{len(local)} mount(s)"):
        for dest, mount in local.items():
            src = os.path.expanduser(str(mount.source))
            target = targets[dest]
            for i in range(len(handle.nodes)):
                provider.runner(handle, i).rsync_up(src, target.path, delete=target.delete)


def record_use(db: Database, name: str) -> None:
    """Record this command line (secrets redacted) as the cluster's last use. Best effort:
    LAST USE is a courtesy, and a full disk or a busy database must not fail a command whose
    work is done (exec records it after its job is submitted)."""
    from styx.errors import StyxError

    with contextlib.suppress(StyxError):
        fast = db.fast_reader()
        if fast is not None and fast.set_last_use(name, _last_use()):
            return
        from styx.state.clusters import update_cluster

        update_cluster(db, name, last_use=_last_use())


def _last_use() -> str:
    import sys

    return " ".join(["styx", *common.redact_argv(sys.argv[1:])])[:500]


def container_spec(task: Task, handle: ClusterHandle, provider: Provider) -> Any:
    """The container the task's ``image_id: docker:...`` asks for on a VM-like cluster; None
    without one, or where the provider runs the image as the node itself (Kubernetes pods)."""
    from styx.cluster import container
    from styx.config import user_config
    from styx.spec.frozen import thaw

    if getattr(provider, "native_images", False):
        return None
    region = handle.extra.get("region")
    # The candidate that launched here (any_of/ordered may give each infra its own image).
    candidates = task.resources.candidates()
    here = [c for c in candidates if c.cloud in (None, provider.name)] or candidates
    images = [container.image_of(_image_for(c, region)) for c in here]
    image = next((i for i in images if i), None)
    if image is None:
        return None
    user = user_config()
    options = container.run_options(
        thaw(task.config) if task.config else {}, {"docker": user.get("docker")} if user else {}
    )
    home = _node_home(handle)
    mounts = []
    for target in destinations(task, provider, handle.cluster_name, handle).values():
        path = target.path
        if path.startswith("~") or (home and (path + "/").startswith(home + "/")):
            continue  # the home is bound whole
        mounts.append(path)
    for path in mounts:
        if any(c.isspace() for c in path):
            raise SpecError(
                f"The file mount {path!r} has whitespace, which a container bind cannot take.",
                "Choose a destination without spaces.",
                code="invalid-value",
            )
    return container.ContainerSpec(image, options, tuple(sorted(set(mounts))))


def bring_up_container(
    db: Database, pipe: Pipeline, task: Task, handle: ClusterHandle, provider: Provider
) -> ClusterHandle:
    """The task's image running on every node (pulled where missing): the container stage.
    Its settings (never a password) go into the handle, for `start` and recovery."""
    from styx.cluster import container
    from styx.state.clusters import update_cluster

    spec = container_spec(task, handle, provider)
    if spec is None:
        pipe.skip("container", "no docker image")
        return handle
    secrets = {k: s.reveal() for k, s in task.secrets.items() if s is not None}
    login = container.registry_login({**task.envs, **secrets})
    nodes = len(handle.nodes)
    where = f" on {nodes} nodes" if nodes > 1 else ""
    t0 = time.monotonic()

    def done(node: str, how: str) -> None:  # each node as it finishes: pulls take minutes
        if nodes > 1:
            pipe.note(
                f"[dim]  {node}: image {how}, container up ({time.monotonic() - t0:.1f} s)[/]"
            )

    with pipe.stage("container", f"{spec.image}{where} (pulled where missing)"):
        start_containers(handle, provider, spec, login, on_node=done)
    extra = {**handle.extra, "container": spec.to_json()}
    if login is not None:
        extra["container"]["registry"] = login.server
    handle = dataclasses.replace(handle, extra=extra)
    update_cluster(db, handle.cluster_name, handle=handle.to_json())
    return handle


def _node_home(handle: ClusterHandle) -> str:
    """The nodes' home where the handle fixes it (a local cluster's own), else "" (the node
    user's home, as the node knows it)."""
    return str((handle.extra.get("job_env") or {}).get("HOME") or "")


def start_containers(
    handle: ClusterHandle, provider: Provider, spec: Any, login: Any, on_node: Any = None
) -> None:
    """The cluster's container on every node (see :func:`styx.cluster.container.start_all`)."""
    from styx.cluster import container

    runners = [provider.runner(handle, i) for i in range(len(handle.nodes))]
    gpus = [n.gpus > 0 for n in handle.nodes]
    home = _node_home(handle)
    container.start_all(runners, gpus, spec, handle.cluster_name, handle.agent_root, login, home,
                        on_node=on_node)  # fmt: skip
