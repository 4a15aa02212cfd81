"""Plain values the state layer hands to its callers: status enums and frozen records.

Nothing here imports SQLAlchemy, so ``styx status`` can read clusters without paying for it.
Records are snapshots: changing the database never changes a record already returned.
Timestamps are float seconds since the epoch (``time.time()``), on every backend.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any


class ClusterStatus(enum.StrEnum):
    """Where a cluster is in its life (SkyPilot's ``ClusterStatus``, plus DEGRADED)."""

    INIT = "INIT"  # being provisioned, or in an unknown/partial state
    UP = "UP"
    STOPPED = "STOPPED"
    DEGRADED = "DEGRADED"  # up, but some nodes or the agent are unhealthy


class ClusterJobStatus(enum.StrEnum):
    """A job on a cluster, as the head-node agent reports it (SkyPilot's ``JobStatus``)."""

    INIT = "INIT"
    PENDING = "PENDING"
    SETTING_UP = "SETTING_UP"
    RUNNING = "RUNNING"
    FAILED_DRIVER = "FAILED_DRIVER"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change."""
        return self in _TERMINAL_CLUSTER_JOB


_TERMINAL_CLUSTER_JOB = frozenset(
    {
        ClusterJobStatus.SUCCEEDED,
        ClusterJobStatus.FAILED,
        ClusterJobStatus.FAILED_SETUP,
        ClusterJobStatus.FAILED_DRIVER,
        ClusterJobStatus.CANCELLED,
    }
)


class ManagedJobStatus(enum.StrEnum):
    """A managed job's status (SkyPilot's ``ManagedJobStatus`` names)."""

    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RECOVERING = "RECOVERING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    FAILED_NO_RESOURCE = "FAILED_NO_RESOURCE"
    FAILED_CONTROLLER = "FAILED_CONTROLLER"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change."""
        return self in _TERMINAL_MANAGED_JOB


_TERMINAL_MANAGED_JOB = frozenset(
    {
        ManagedJobStatus.SUCCEEDED,
        ManagedJobStatus.FAILED,
        ManagedJobStatus.FAILED_SETUP,
        ManagedJobStatus.FAILED_NO_RESOURCE,
        ManagedJobStatus.FAILED_CONTROLLER,
        ManagedJobStatus.CANCELLED,
    }
)


class DagRunStatus(enum.StrEnum):
    """A DAG run's status; its tasks are managed jobs with their own statuses."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True once the run can no longer change."""
        return self in (DagRunStatus.SUCCEEDED, DagRunStatus.FAILED, DagRunStatus.CANCELLED)


JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterRecord:
    """One cluster as last written. ``handle`` is the provider's own JSON description."""

    name: str
    cluster_id: str
    status: ClusterStatus
    provider: str
    handle: JSON
    launched_resources: JSON | None
    num_nodes: int
    created_at: float
    launched_at: float | None
    status_updated_at: float
    last_use: str | None
    autostop: JSON | None
    user_name: str | None
    config_hash: str | None
    workdir: str | None
    metadata: JSON

    @classmethod
    def from_mapping(cls, m: Mapping[Any, Any]) -> ClusterRecord:
        """Build from a row whose JSON columns are already decoded."""
        return cls(
            name=m["name"],
            cluster_id=m["cluster_id"],
            status=ClusterStatus(m["status"]),
            provider=m["provider"],
            handle=m["handle"] or {},
            launched_resources=m["launched_resources"],
            num_nodes=m["num_nodes"],
            created_at=m["created_at"],
            launched_at=m["launched_at"],
            status_updated_at=m["status_updated_at"],
            last_use=m["last_use"],
            autostop=m["autostop"],
            user_name=m["user_name"],
            config_hash=m["config_hash"],
            workdir=m["workdir"],
            metadata=m["metadata"] or {},
        )


# The clusters columns, in table order; the SQLite fast read path selects exactly these.
CLUSTER_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ClusterRecord))
CLUSTER_JSON_COLUMNS = frozenset({"handle", "launched_resources", "autostop", "metadata"})


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterEvent:
    """A recorded change of a cluster: a status transition, or another notable ``kind``."""

    id: int
    cluster_name: str
    time: float
    kind: str
    from_status: ClusterStatus | None
    to_status: ClusterStatus | None
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterJobRecord:
    """The client's copy of a job submitted to a cluster; kept after the cluster is downed.

    ``cluster_id`` tells apart incarnations of a cluster name, whose job ids restart at 1.
    """

    cluster_name: str
    cluster_id: str
    job_id: int
    name: str | None
    status: ClusterJobStatus
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    resources: JSON | None
    user_name: str | None
    log_path: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class NewManagedJob:
    """What a caller supplies to queue a managed job; ``spec`` is the redacted task."""

    name: str
    spec: JSON
    resources: JSON | None = None
    task_index: int = 0
    task_name: str | None = None
    priority: int = 0
    user_name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ManagedJobRecord:
    """A managed job; ``restarts_on_errors`` counts restarts already spent on user errors."""

    id: int
    name: str
    dag_run_id: int | None
    task_index: int
    task_name: str | None
    status: ManagedJobStatus
    spec: JSON
    resources: JSON | None
    cluster_name: str | None
    recovery_count: int
    restarts_on_errors: int
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    failure_reason: str | None
    priority: int
    user_name: str | None
    controller_pid: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class ManagedJobEvent:
    """One status transition of a managed job."""

    id: int
    job_id: int
    time: float
    from_status: ManagedJobStatus | None
    to_status: ManagedJobStatus
    reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class DagRunRecord:
    """A run of a DAG of tasks; each task is a managed job with this ``dag_run_id``."""

    id: int
    name: str
    status: DagRunStatus
    spec: JSON
    on_failure: str
    created_at: float
    ended_at: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds an advisory lock, for messages about a busy cluster."""

    key: str
    owner: str
    purpose: str
    pid: int
    host: str
    acquired_at: float
    expires_at: float
