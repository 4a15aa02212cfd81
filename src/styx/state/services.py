"""Services and their replicas, for ``styx serve``: rows the serve controller keeps current.

A service row holds every version's task (JSON) and the version replicas converge to; each
replica row says which version it runs, its cluster, its endpoint once known and its status
with the time it took it. The controller is the only writer of replica rows; the CLI writes
service rows (up, update, down requests) and reads both.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import TYPE_CHECKING, Any

from styx.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from styx.state.db import Database


class ServiceStatus(enum.StrEnum):
    """A service's state, as SkyServe names them."""

    CONTROLLER_INIT = "CONTROLLER_INIT"  # recorded; the controller has not taken it yet
    REPLICA_INIT = "REPLICA_INIT"  # replicas are starting; none is READY yet
    READY = "READY"  # at least one replica is READY
    NO_REPLICA = "NO_REPLICA"  # scaled to zero, or every replica was lost
    SHUTTING_DOWN = "SHUTTING_DOWN"  # `serve down` asked; replicas are being torn down
    FAILED = "FAILED"  # replicas keep failing: no more are launched (failure_reason says why)


class ReplicaStatus(enum.StrEnum):
    """A replica's state."""

    PROVISIONING = "PROVISIONING"  # its cluster is being launched
    STARTING = "STARTING"  # launched; its readiness probe has not passed yet
    READY = "READY"  # probe passed: the load balancer sends it traffic
    NOT_READY = "NOT_READY"  # was READY, now fails its probe: no traffic
    DRAINING = "DRAINING"  # replaced or scaled down: no new requests, in-flight ones finish
    SHUTTING_DOWN = "SHUTTING_DOWN"  # its cluster is being torn down
    FAILED = "FAILED"  # it failed (reason says how); its cluster is gone
    PREEMPTED = "PREEMPTED"  # its cluster was lost; a new replica replaces it


#: Replicas whose cluster may exist.
LIVE = frozenset(set(ReplicaStatus) - {ReplicaStatus.FAILED, ReplicaStatus.PREEMPTED})
ACTIVE_SERVICE = frozenset(set(ServiceStatus) - {ServiceStatus.FAILED})


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One service as recorded."""

    name: str
    status: ServiceStatus
    version: int
    specs: dict[str, Any]
    update_mode: str
    lb_host: str
    lb_port: int
    tls: bool
    next_replica_id: int
    failure_reason: str | None
    created_at: float
    updated_at: float
    user_name: str | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.lb_host}:{self.lb_port}"

    def spec(self, version: int | None = None) -> dict[str, Any]:
        """The task dict of ``version`` (the current one by default)."""
        return dict(self.specs[str(self.version if version is None else version)])

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"], out["endpoint"] = self.status.value, self.endpoint
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaRecord:
    """One replica as recorded."""

    service: str
    replica_id: int
    version: int
    status: ReplicaStatus
    cluster_name: str
    use_spot: bool
    endpoint: str | None
    infra: str | None
    reason: str | None
    launched_at: float
    status_since: float
    ready_at: float | None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        return out


def _service(row: Any) -> ServiceRecord:
    return ServiceRecord(
        name=row.name, status=ServiceStatus(row.status), version=row.version,
        specs=dict(row.specs), update_mode=row.update_mode, lb_host=row.lb_host,
        lb_port=row.lb_port, tls=bool(row.tls), next_replica_id=row.next_replica_id,
        failure_reason=row.failure_reason, created_at=row.created_at,
        updated_at=row.updated_at, user_name=row.user_name,
    )  # fmt: skip


def _replica(row: Any) -> ReplicaRecord:
    return ReplicaRecord(
        service=row.service, replica_id=row.replica_id, version=row.version,
        status=ReplicaStatus(row.status), cluster_name=row.cluster_name,
        use_spot=bool(row.use_spot), endpoint=row.endpoint, infra=row.infra, reason=row.reason,
        launched_at=row.launched_at, status_since=row.status_since, ready_at=row.ready_at,
    )  # fmt: skip


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"No service is called {name!r}.",
        "Run `styx serve status` to see the services.",
        code="service-not-found",
    )


# -- services ----------------------------------------------------------------------------------


def add_service(
    db: Database,
    name: str,
    spec: dict[str, Any],
    *,
    lb_host: str,
    lb_port: int,
    tls: bool,
    user_name: str | None = None,
) -> ServiceRecord:
    """Record a new service at version 1; ConflictError ``service-exists`` if the name is taken."""

    def txn(s: Session) -> ServiceRecord:
        from styx.state.models import Service

        if s.get(Service, name) is not None:
            raise ConflictError(
                f"A service called {name!r} exists already.",
                f"Update it with `styx serve update {name} FILE`, or choose another name.",
                code="service-exists",
            )
        now = time.time()
        row = Service(
            name=name, status=ServiceStatus.CONTROLLER_INIT.value, version=1, specs={"1": spec},
            update_mode="rolling", lb_host=lb_host, lb_port=lb_port, tls=int(tls),
            next_replica_id=1, failure_reason=None, created_at=now, updated_at=now,
            user_name=user_name,
        )  # fmt: skip
        s.add(row)
        s.flush()
        return _service(row)

    return db.write(txn)


def list_services(db: Database, names: list[str] | None = None) -> list[ServiceRecord]:
    """Every service (or those named), by name."""

    def txn(s: Session) -> list[ServiceRecord]:
        from sqlalchemy import select

        from styx.state.models import Service

        query = select(Service).order_by(Service.name)
        if names:
            query = query.where(Service.name.in_(names))
        return [_service(r) for r in s.execute(query).scalars()]

    return db.read(txn)


def get_service(db: Database, name: str) -> ServiceRecord:
    """The service called ``name``; NotFoundError ``service-not-found`` if none."""

    def txn(s: Session) -> ServiceRecord:
        from styx.state.models import Service

        row = s.get(Service, name)
        if row is None:
            raise _not_found(name)
        return _service(row)

    return db.read(txn)


def add_version(db: Database, name: str, spec: dict[str, Any], mode: str) -> int:
    """Make ``spec`` the service's next version, to roll out by ``mode``; returns it."""

    def txn(s: Session) -> int:
        from styx.state.models import Service

        row = s.get(Service, name)
        if row is None:
            raise _not_found(name)
        if row.status == ServiceStatus.SHUTTING_DOWN.value:
            raise ConflictError(
                f"The service {name!r} is shutting down.",
                "Wait for `styx serve down` to finish, then bring it up again.",
                code="service-shutting-down",
            )
        version = row.version + 1
        row.specs = {**dict(row.specs), str(version): spec}
        row.version, row.update_mode, row.updated_at = version, mode, time.time()
        if row.status == ServiceStatus.FAILED.value:  # a new version gets a new chance
            row.status, row.failure_reason = ServiceStatus.REPLICA_INIT.value, None
        return version

    return db.write(txn)


def set_service_status(
    db: Database, name: str, status: ServiceStatus, reason: str | None = None
) -> None:
    """Set a service's status (and failure reason); a service shutting down stays so."""

    def txn(s: Session) -> None:
        from styx.state.models import Service

        row = s.get(Service, name)
        if row is None or row.status == status.value:
            return
        if row.status == ServiceStatus.SHUTTING_DOWN.value:
            return
        row.status, row.updated_at = status.value, time.time()
        row.failure_reason = reason

    db.write(txn)


def request_down(db: Database, name: str) -> None:
    """Mark a service SHUTTING_DOWN: its controller tears everything down, then removes it."""

    def txn(s: Session) -> None:
        from styx.state.models import Service

        row = s.get(Service, name)
        if row is None:
            raise _not_found(name)
        row.status, row.updated_at = ServiceStatus.SHUTTING_DOWN.value, time.time()

    db.write(txn)


def remove_service(db: Database, name: str) -> None:
    """Forget a service and its replicas (after everything of it is torn down)."""

    def txn(s: Session) -> None:
        from sqlalchemy import delete

        from styx.state.models import Service, ServiceReplica

        s.execute(delete(ServiceReplica).where(ServiceReplica.service == name))
        s.execute(delete(Service).where(Service.name == name))

    db.write(txn)


# -- replicas ----------------------------------------------------------------------------------


def new_replica(db: Database, service: str, version: int, *, use_spot: bool) -> ReplicaRecord:
    """Record the service's next replica as PROVISIONING, with its cluster name."""

    def txn(s: Session) -> ReplicaRecord:
        from styx.state.models import Service, ServiceReplica

        svc = s.get(Service, service)
        if svc is None:
            raise _not_found(service)
        replica_id = svc.next_replica_id
        svc.next_replica_id = replica_id + 1
        now = time.time()
        row = ServiceReplica(
            service=service, replica_id=replica_id, version=version,
            status=ReplicaStatus.PROVISIONING.value, cluster_name=replica_cluster(service, replica_id),
            use_spot=int(use_spot), endpoint=None, infra=None, reason=None, launched_at=now,
            status_since=now, ready_at=None,
        )  # fmt: skip
        s.add(row)
        s.flush()
        return _replica(row)

    return db.write(txn)


def replica_cluster(service: str, replica_id: int) -> str:
    """The cluster name of a replica (``styx-sv-`` marks it as a service's)."""
    return f"styx-sv-{service}-{replica_id}"


def list_replicas(db: Database, service: str | None = None) -> list[ReplicaRecord]:
    """The replicas of ``service`` (of every service when None), by id."""

    def txn(s: Session) -> list[ReplicaRecord]:
        from sqlalchemy import select

        from styx.state.models import ServiceReplica

        query = select(ServiceReplica).order_by(ServiceReplica.service, ServiceReplica.replica_id)
        if service is not None:
            query = query.where(ServiceReplica.service == service)
        return [_replica(r) for r in s.execute(query).scalars()]

    return db.read(txn)


def update_replica(
    db: Database,
    service: str,
    replica_id: int,
    *,
    status: ReplicaStatus | None = None,
    reason: str | None = None,
    endpoint: str | None = None,
    infra: str | None = None,
) -> None:
    """Change a replica's status (timed) and the fields given."""

    def txn(s: Session) -> None:
        from styx.state.models import ServiceReplica

        row = s.get(ServiceReplica, (service, replica_id))
        if row is None:
            return
        now = time.time()
        if status is not None and row.status != status.value:
            row.status, row.status_since = status.value, now
            if status is ReplicaStatus.READY and row.ready_at is None:
                row.ready_at = now
        if reason is not None:
            row.reason = reason
        if endpoint is not None:
            row.endpoint = endpoint
        if infra is not None:
            row.infra = infra

    db.write(txn)


def remove_replica(db: Database, service: str, replica_id: int) -> None:
    """Forget a replica whose cluster is gone."""

    def txn(s: Session) -> None:
        from styx.state.models import ServiceReplica

        row = s.get(ServiceReplica, (service, replica_id))
        if row is not None:
            s.delete(row)

    db.write(txn)
