"""The serving operations: what ``styx serve ...`` and the SDK's ``styx.serve.*`` call.

They check input, write requests to the state database and read rows back; the serve
controller daemon (:mod:`styx.serve.daemon`, started by :func:`up`) does the work.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from styx.errors import ResourcesUnavailable, UsageError

if TYPE_CHECKING:
    from styx.spec.service import ServiceSpec
    from styx.spec.task import Task
    from styx.state.services import ReplicaRecord, ServiceRecord

#: Where load balancers listen unless told: this machine only (nothing opens beyond it).
DEFAULT_HOST = "127.0.0.1"
#: The ports a load balancer is given, as SkyServe's (the first free one).
PORT_RANGE = range(30001, 31000)
_NAME = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
MODES = ("rolling", "blue_green")


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceView:
    """A service and its replicas, as ``serve status`` shows them."""

    service: ServiceRecord
    replicas: list[ReplicaRecord]

    def to_json(self) -> dict[str, Any]:
        out = self.service.to_json()
        out.pop("specs", None)
        out["replicas"] = [r.to_json() for r in self.replicas]
        return out


def _database() -> Any:
    from styx.ops import common

    return common.database()


def check_name(name: str) -> str:
    """A service name: lower-case letters, digits and '-', starting with a letter."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a valid service name.",
            "Use up to 40 lower-case letters, digits and '-', starting with a letter.",
            code="invalid-service-name",
        )
    return name


def check_service(task: Task | Any) -> tuple[Task, ServiceSpec]:
    """The task and its typed service section, checked as ``styx launch`` checks a task and
    placed once by the optimizer, so that a service that could never get a replica is refused
    before anything is recorded."""
    from styx.ops.stages import check_local_paths, choose_placement
    from styx.spec.coerce import checked_task
    from styx.spec.service import ServiceSpec
    from styx.spec.support import check_launchable

    task = checked_task(task)
    if task.service is None:
        raise UsageError(
            "The task has no 'service:' section, so there is nothing to serve.",
            "Add a 'service:' section (readiness_probe, replicas), or run it with `styx launch`.",
            code="no-service-section",
        )
    spec = ServiceSpec.of(task.service, tuple(p.start for p in task.resources.ports))
    check_launchable(task)
    check_local_paths(task)
    try:
        choose_placement(task, "styx-sv-check-1")
    except ResourcesUnavailable as err:
        raise ResourcesUnavailable(
            f"The service was not started, since no replica could ever launch: {err.message}",
            err.hint,
            code="service-infeasible",
            details={**err.details, "cause": err.code},
        ) from err
    return task, spec


def _free_port(host: str) -> int:
    from styx.state import services as repo

    taken = {s.lb_port for s in repo.list_services(_database())}
    for port in PORT_RANGE:
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise ResourcesUnavailable(
        f"No port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} is free on {host} for the load balancer.",
        "Take a service down, or give one with --port.",
        code="no-free-port",
    )


def up(
    task: Task | Any, name: str, *, host: str = DEFAULT_HOST, port: int | None = None
) -> ServiceRecord:
    """Start serving ``task`` as the service ``name``: recorded at version 1, its load
    balancer configured and checked, and the controller started. Returns the record (its
    ``endpoint`` answers once a replica is READY)."""
    from styx.ops import common
    from styx.serve import daemon, haproxy
    from styx.serve.controller import service_dir
    from styx.state import secret_files
    from styx.state import services as repo

    check_name(name)
    task, spec = check_service(task)
    haproxy.binary()
    db = _database()
    port = port or _free_port(host)
    stored, secrets = secret_files.split(task.to_dict())
    record = repo.add_service(
        db, name, stored, lb_host=host, lb_port=port, tls=bool(spec.tls_keyfile),
        user_name=common.user_name(),
    )  # fmt: skip  # the name is claimed here, atomically; service-exists if taken
    try:
        folder = service_dir(name)
        tls = None
        if spec.tls_keyfile and spec.tls_certfile:
            tls = haproxy.write_tls(folder, spec.tls_keyfile, spec.tls_certfile)
        haproxy.check_config(
            haproxy.LbSettings(folder, host, port, spec.policy, spec.stream_timeout_s, tls)
        )
        secret_files.save("serve", f"{name}.v1", secrets)
    except BaseException:
        repo.remove_service(db, name)
        import shutil

        shutil.rmtree(service_dir(name), ignore_errors=True)
        raise
    daemon.ensure_running()
    return record


def update(name: str, task: Task | Any, *, mode: str = "rolling") -> int:
    """Roll ``task`` out as the service's next version; returns the version. ``rolling``
    replaces replicas as new ones become READY; ``blue_green`` switches once all are."""
    from styx.serve import daemon
    from styx.state import secret_files
    from styx.state import services as repo

    if mode not in MODES:
        raise UsageError(
            f"{mode!r} is not an update mode.",
            "Use --mode rolling or --mode blue_green.",
            code="invalid-usage",
        )
    repo.get_service(_database(), name)  # service-not-found first
    task, _spec = check_service(task)
    stored, secrets = secret_files.split(task.to_dict())
    version = repo.add_version(_database(), name, stored, mode)
    secret_files.save("serve", f"{name}.v{version}", secrets)
    daemon.ensure_running()
    return version


def status(names: Sequence[str] = ()) -> list[ServiceView]:
    """The services (all, or those named) and their replicas; NotFoundError
    ``service-not-found`` for a name that is not one. Starts the controller when services
    exist and none runs."""
    from styx.serve import daemon
    from styx.state import services as repo

    db = _database()
    found = repo.list_services(db, list(names) or None)
    missing = sorted(set(names) - {s.name for s in found})
    if missing:
        repo.get_service(db, missing[0])
    if found:
        daemon.ensure_running()
    return [ServiceView(s, repo.list_replicas(db, s.name)) for s in found]


def down(
    names: Sequence[str] = (), *, all_: bool = False, wait: bool = True, timeout: float = 600.0
) -> list[str]:
    """Tear services down (``names``, or every one with ``all_``): their replicas' clusters,
    load balancers and records. Waits until they are gone unless ``wait`` is False."""
    from styx.serve import daemon
    from styx.state import services as repo

    if bool(names) == all_:
        raise UsageError(
            "Give service names or --all, not both and not neither.",
            "Run `styx serve down NAME...` or `styx serve down --all`.",
            code="invalid-usage",
        )
    db = _database()
    chosen = [s.name for s in repo.list_services(db)] if all_ else [check_name(n) for n in names]
    for name in chosen:
        repo.request_down(db, name)
    if chosen:
        daemon.ensure_running()
    if not wait:
        return chosen
    deadline = time.monotonic() + timeout
    while True:
        left = [s.name for s in repo.list_services(db, chosen)]
        if not left:
            break
        if time.monotonic() > deadline:
            from styx.errors import ConflictError

            raise ConflictError(
                f"{', '.join(left)} still shutting down after {timeout:g} s.",
                "Run `styx serve status` to follow it; the controller keeps going.",
                code="service-down-timeout",
            )
        time.sleep(0.5)
    return chosen


def logs(name: str, target: str | int = "controller", *, follow: bool = False) -> Iterator[str]:
    """A service's log: ``"controller"`` (its lines of the controller's log),
    ``"load-balancer"``, or a replica id (the output of its service)."""
    from styx.errors import NotFoundError
    from styx.serve import daemon
    from styx.serve.controller import service_dir
    from styx.state import services as repo

    db = _database()
    repo.get_service(db, name)
    if target == "controller":
        tag = f"[{name}]"
        return _lines(daemon.log_path(), follow, keep=lambda line: tag in line)
    if target == "load-balancer":
        return _lines(service_dir(name) / "load-balancer.log", follow, keep=lambda line: True)
    found = [r for r in repo.list_replicas(db, name) if str(r.replica_id) == str(target)]
    if not found:
        raise NotFoundError(
            f"The service {name!r} has no replica {target}.",
            f"Run `styx serve status {name}` to see its replicas.",
            code="replica-not-found",
        )
    from styx.serve import replicas

    chunks = replicas.log_chunks(found[0].cluster_name, follow=follow)
    return (c.decode(errors="replace") for c in chunks)


def _lines(path: Any, follow: bool, keep: Any) -> Iterator[str]:
    if not path.exists():
        return
    with path.open(errors="replace") as f:
        while True:
            line = f.readline()
            if line:
                if keep(line):
                    yield line
                continue
            if not follow:
                return
            time.sleep(0.2)
