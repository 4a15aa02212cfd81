"""SQLAlchemy tables of the state database, as typed declarative models.

The schema itself is created and changed only by the Alembic migrations in ``migrations/``;
a test checks that the migrations and these models agree on both backends.
JSON columns use the portable ``JSON`` type (TEXT on SQLite, JSON on PostgreSQL), never pickles.
Timestamps are float epoch seconds (``DOUBLE PRECISION``) everywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Double, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so future migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQL NULL (not JSON 'null') for absent JSON values, so IS NULL works in queries.
JSONValue = JSON(none_as_null=True)


class Base(DeclarativeBase):
    """Base of all state tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Meta(Base):
    """Key/value settings; ``schema_revision`` is read once per process to skip Alembic."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Cluster(Base):
    """A cluster the user launched (and has not downed)."""

    __tablename__ = "clusters"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    cluster_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(64))
    handle: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    launched_resources: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    num_nodes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Double)
    launched_at: Mapped[float | None] = mapped_column(Double)
    status_updated_at: Mapped[float] = mapped_column(Double)
    last_use: Mapped[str | None] = mapped_column(Text)
    autostop: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    user_name: Mapped[str | None] = mapped_column(String(255))
    config_hash: Mapped[str | None] = mapped_column(String(128))
    workdir: Mapped[str | None] = mapped_column(Text)
    # ``metadata`` is reserved on declarative classes; the column keeps its name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONValue)


class ClusterUsage(Base):
    """What one cluster incarnation (``cluster_id``) costs: its price per hour for all nodes as
    priced at launch (NULL when unknown), its resources and, for a managed job's cluster, the
    job. Kept after the cluster is downed (no foreign key); its up time comes from
    :class:`StatusTransition` rows."""

    __tablename__ = "cluster_usage"
    __table_args__ = (
        Index("ix_cluster_usage_managed_job_id", "managed_job_id"),
        Index("ix_cluster_usage_launched_at", "launched_at"),
    )

    cluster_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    cluster_name: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(64))
    infra: Mapped[str] = mapped_column(Text)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    num_nodes: Mapped[int] = mapped_column(Integer)
    hourly_price: Mapped[float | None] = mapped_column(Double)
    launched_at: Mapped[float] = mapped_column(Double)
    managed_job_id: Mapped[int | None] = mapped_column(Integer)
    user_name: Mapped[str | None] = mapped_column(String(255))


class StatusTransition(Base):
    """One status change of a cluster, managed job or DAG run (``entity_kind``), written in
    the same transaction as the change; kept after the entity is gone (no foreign key)."""

    __tablename__ = "status_transitions"
    __table_args__ = (
        Index(
            "ix_status_transitions_entity_kind_entity_id_time",
            "entity_kind",
            "entity_id",
            "time",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(255))
    time: Mapped[float] = mapped_column(Double)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)


class ClusterEvent(Base):
    """A notable thing about a cluster that is not a status change (those are
    :class:`StatusTransition` rows); kept after the cluster is downed (no foreign key)."""

    __tablename__ = "cluster_events"
    __table_args__ = (Index("ix_cluster_events_cluster_name_time", "cluster_name", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cluster_name: Mapped[str] = mapped_column(String(255))
    time: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)


class ClusterJob(Base):
    """The client's history of a cluster's jobs, one row per (cluster incarnation, job id)."""

    __tablename__ = "cluster_jobs"
    __table_args__ = (
        Index("uq_cluster_jobs_cluster_id_job_id", "cluster_id", "job_id", unique=True),
        Index("ix_cluster_jobs_cluster_name_submitted_at", "cluster_name", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cluster_name: Mapped[str] = mapped_column(String(255))
    cluster_id: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    submitted_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    user_name: Mapped[str | None] = mapped_column(String(255))
    log_path: Mapped[str | None] = mapped_column(Text)


class DagRun(Base):
    """A run of a DAG; its tasks are managed jobs pointing here."""

    __tablename__ = "dag_runs"
    __table_args__ = (Index("ix_dag_runs_status", "status"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    on_failure: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)


class ManagedJob(Base):
    """A managed job (one task of a DAG run, or a lone task). Ids are never reused."""

    __tablename__ = "managed_jobs"
    __table_args__ = (
        Index("ix_managed_jobs_status_priority", "status", "priority"),
        Index("ix_managed_jobs_dag_run_id", "dag_run_id"),
        Index("ix_managed_jobs_cluster_name", "cluster_name"),
        Index("ix_managed_jobs_user_name", "user_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    dag_run_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("dag_runs.id", ondelete="CASCADE")
    )
    task_index: Mapped[int] = mapped_column(Integer)
    task_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    cluster_name: Mapped[str | None] = mapped_column(String(255))
    recovery_count: Mapped[int] = mapped_column(Integer)
    restarts_on_errors: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    user_name: Mapped[str | None] = mapped_column(String(255))
    controller_pid: Mapped[int | None] = mapped_column(Integer)
    termination_reason: Mapped[str | None] = mapped_column(String(32))


class Lock(Base):
    """An advisory lease on a key (``cluster:NAME``), held by one process until it expires."""

    __tablename__ = "locks"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)


class Storage(Base):
    """One storage object (a bucket file mount with a ``name``, or a local folder uploaded into
    a bucket), as ``styx storage ls`` shows it. Never a credential: the store's SDK finds those
    at each use. ``created`` says Styx made the bucket (only then may it delete it);
    ``clusters`` are the clusters that mount it now."""

    __tablename__ = "storage"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    store: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created: Mapped[int] = mapped_column(Integer)
    persistent: Mapped[int] = mapped_column(Integer)
    sources: Mapped[list[Any] | None] = mapped_column(JSONValue)
    clusters: Mapped[list[Any] | None] = mapped_column(JSONValue)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    last_use: Mapped[str | None] = mapped_column(Text)
    user_name: Mapped[str | None] = mapped_column(String(255))


class Service(Base):
    """A service ``styx serve up`` started. ``specs`` maps each version (as text) to its task
    (a task dict with its ``service:`` section); ``version`` is the one replicas converge to.
    ``lb_port`` is the load balancer's port on this machine."""

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(24))
    version: Mapped[int] = mapped_column(Integer)
    specs: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    update_mode: Mapped[str] = mapped_column(String(16))
    lb_host: Mapped[str] = mapped_column(String(64))
    lb_port: Mapped[int] = mapped_column(Integer)
    tls: Mapped[int] = mapped_column(Integer)
    next_replica_id: Mapped[int] = mapped_column(Integer)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    user_name: Mapped[str | None] = mapped_column(String(255))


class ServiceReplica(Base):
    """One replica of a service: its own cluster, the version it runs and where it serves."""

    __tablename__ = "service_replicas"

    service: Mapped[str] = mapped_column(
        String(255), ForeignKey("services.name", ondelete="CASCADE"), primary_key=True
    )
    replica_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    cluster_name: Mapped[str] = mapped_column(String(255))
    use_spot: Mapped[int] = mapped_column(Integer)
    endpoint: Mapped[str | None] = mapped_column(String(255))
    infra: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    launched_at: Mapped[float] = mapped_column(Double)
    status_since: Mapped[float] = mapped_column(Double)
    ready_at: Mapped[float | None] = mapped_column(Double)
