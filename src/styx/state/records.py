"""Plain values the state layer hands to its callers: status enums, their transition
tables, and frozen records.

Nothing here imports SQLAlchemy, so ``styx status`` can read clusters without paying for it.
Records are snapshots: changing the database never changes a record already returned.
Timestamps are float seconds since the epoch (``time.time()``), on every backend.

Each status enum of an entity the state layer writes (clusters, managed jobs, DAG runs) has a
:class:`~styx.lifecycle.TransitionTable` saying which status may follow which; the repository
functions refuse any other move with :class:`~styx.errors.IllegalTransition` and record every
allowed one, with its time and reason, in ``status_transitions`` (see
:mod:`styx.state.transitions`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from styx.lifecycle import JobStatus, table


class ClusterStatus(enum.StrEnum):
    """Where a cluster is in its life (SkyPilot's ``ClusterStatus``, plus DEGRADED)."""

    INIT = "INIT"  # being provisioned, or in an unknown/partial state
    UP = "UP"
    STOPPED = "STOPPED"
    DEGRADED = "DEGRADED"  # up, but some nodes or the agent are unhealthy


#: A job on a cluster, as the head-node agent reports it: the one job status of Styx, shared
#: with the agent's protocol (:class:`styx.lifecycle.JobStatus`).
ClusterJobStatus = JobStatus


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


class Retry(enum.StrEnum):
    """Whether a managed job may be tried again after an attempt ended, and how; the job's
    ``job_recovery`` and the controller's budgets bound the tries (``styx.jobs.recovery``)."""

    NO = "no"  # final: the job ends with the reason's status
    RECOVER = "recover"  # the infra lost the job: relaunch on new machines
    RESTART = "restart"  # the user's code failed: run again while max_restarts_on_errors allows
    RELAUNCH = "relaunch"  # a launch broke or found nothing: launch again (bounded)


class TerminationReason(enum.StrEnum):
    """Why a managed job's attempt, or a job on a cluster, ended.

    Each reason maps to the managed job's final status when it ends the job (:attr:`status`)
    and to whether it may be tried again (:attr:`retry`). Stored in
    ``managed_jobs.termination_reason`` once the job has ended.
    """

    SUCCEEDED = "succeeded"
    USER_CODE_FAILED = "user-code-failed"  # the run command exited non-zero
    SETUP_FAILED = "setup-failed"
    PREEMPTED = "preempted"  # the machines, or the node under the job, went away
    NO_RESOURCES = "no-resources"  # nothing anywhere allowed could hold the job
    INFRA_ERROR = "infra-error"  # a launch broke (a host died, a transfer failed)
    CANCELLED = "cancelled"  # by the user
    DEPENDENCY_ENDED = "dependency-ended"  # a DAG task it depends on did not succeed
    MAX_RESTARTS_REACHED = "max-restarts-reached"  # user code failed, restarts spent
    RECOVERY_DISABLED = "recovery-disabled"  # preempted, and job_recovery is NONE
    INVALID_SPEC = "invalid-spec"  # the stored task cannot be run (its job_recovery ...)
    CONTROLLER_ERROR = "controller-error"  # a bug in Styx: the traceback is in controller.log

    @property
    def status(self) -> ManagedJobStatus:
        """The managed job's status when this reason ends it."""
        return _REASONS[self][0]

    @property
    def retry(self) -> Retry:
        """Whether (and how) the job may be tried again after this reason."""
        return _REASONS[self][1]

    @property
    def retryable(self) -> bool:
        """True unless this reason is always final."""
        return self.retry is not Retry.NO

    @classmethod
    def of_cluster_job(cls, status: ClusterJobStatus) -> TerminationReason | None:
        """Why a job on a cluster ended, from its final status; None while it has not."""
        return _CLUSTER_JOB_REASONS.get(ClusterJobStatus(status))


_REASONS: Mapping[TerminationReason, tuple[ManagedJobStatus, Retry]] = {
    TerminationReason.SUCCEEDED: (ManagedJobStatus.SUCCEEDED, Retry.NO),
    TerminationReason.USER_CODE_FAILED: (ManagedJobStatus.FAILED, Retry.RESTART),
    TerminationReason.SETUP_FAILED: (ManagedJobStatus.FAILED_SETUP, Retry.NO),
    TerminationReason.PREEMPTED: (ManagedJobStatus.FAILED, Retry.RECOVER),
    TerminationReason.NO_RESOURCES: (ManagedJobStatus.FAILED_NO_RESOURCE, Retry.RELAUNCH),
    TerminationReason.INFRA_ERROR: (ManagedJobStatus.FAILED_NO_RESOURCE, Retry.RELAUNCH),
    TerminationReason.CANCELLED: (ManagedJobStatus.CANCELLED, Retry.NO),
    TerminationReason.DEPENDENCY_ENDED: (ManagedJobStatus.CANCELLED, Retry.NO),
    TerminationReason.MAX_RESTARTS_REACHED: (ManagedJobStatus.FAILED, Retry.NO),
    TerminationReason.RECOVERY_DISABLED: (ManagedJobStatus.FAILED, Retry.NO),
    TerminationReason.INVALID_SPEC: (ManagedJobStatus.FAILED, Retry.NO),
    TerminationReason.CONTROLLER_ERROR: (ManagedJobStatus.FAILED_CONTROLLER, Retry.NO),
}
_CLUSTER_JOB_REASONS: Mapping[ClusterJobStatus, TerminationReason] = {
    ClusterJobStatus.SUCCEEDED: TerminationReason.SUCCEEDED,
    ClusterJobStatus.FAILED: TerminationReason.USER_CODE_FAILED,
    ClusterJobStatus.FAILED_SETUP: TerminationReason.SETUP_FAILED,
    ClusterJobStatus.FAILED_DRIVER: TerminationReason.PREEMPTED,  # its node died, not its code
    ClusterJobStatus.CANCELLED: TerminationReason.CANCELLED,
}


class EntityKind(enum.StrEnum):
    """What a recorded status transition belongs to (``status_transitions.entity_kind``)."""

    CLUSTER = "cluster"
    MANAGED_JOB = "managed_job"
    DAG_RUN = "dag_run"


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


_C = ClusterStatus
#: A cluster is recorded INIT before its machines exist (UP or STOPPED when adopted as is); any
#: live status may follow any other, except that a STOPPED cluster must be started (INIT while
#: it boots, or UP) before it can be DEGRADED. Clusters may be deleted from any status.
CLUSTER_TRANSITIONS = table(
    EntityKind.CLUSTER,
    [_C.INIT, _C.UP, _C.STOPPED],
    {
        _C.INIT: [_C.UP, _C.STOPPED, _C.DEGRADED],
        _C.UP: [_C.INIT, _C.STOPPED, _C.DEGRADED],
        _C.DEGRADED: [_C.INIT, _C.UP, _C.STOPPED],
        _C.STOPPED: [_C.INIT, _C.UP],
    },
    deletable=True,
)

_M = ManagedJobStatus
#: Every active status may be cancelled (directly, or through CANCELLING), or fail (a
#: controller error, an invalid spec); a job runs only after STARTING or RECOVERING, succeeds
#: only from RUNNING, and a terminal status is final.
_ANY_ACTIVE_END = [_M.CANCELLING, _M.CANCELLED, _M.FAILED, _M.FAILED_CONTROLLER]
MANAGED_JOB_TRANSITIONS = table(
    EntityKind.MANAGED_JOB,
    [_M.PENDING],
    {
        _M.PENDING: [_M.STARTING, *_ANY_ACTIVE_END],
        _M.STARTING: [_M.RUNNING, _M.FAILED_SETUP, _M.FAILED_NO_RESOURCE, *_ANY_ACTIVE_END],
        _M.RUNNING: [_M.SUCCEEDED, _M.RECOVERING, _M.FAILED_SETUP, *_ANY_ACTIVE_END],
        _M.RECOVERING: [_M.RUNNING, _M.FAILED_SETUP, _M.FAILED_NO_RESOURCE, *_ANY_ACTIVE_END],
        _M.CANCELLING: [_M.CANCELLED, _M.FAILED_CONTROLLER],
    },
)

_D = DagRunStatus
#: A run starts PENDING; any unfinished status may end in any way; an ended run is final.
DAG_RUN_TRANSITIONS = table(
    EntityKind.DAG_RUN,
    [_D.PENDING],
    {
        _D.PENDING: [_D.RUNNING, _D.SUCCEEDED, _D.FAILED, _D.CANCELLING, _D.CANCELLED],
        _D.RUNNING: [_D.SUCCEEDED, _D.FAILED, _D.CANCELLING, _D.CANCELLED],
        _D.CANCELLING: [_D.CANCELLED, _D.FAILED, _D.SUCCEEDED],
    },
)


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
    termination_reason: TerminationReason | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ManagedJobRow:
    """A managed job as ``styx jobs queue`` shows it: the lean columns, no spec decoded."""

    id: int
    name: str
    task_name: str | None
    dag_run_id: int | None
    status: ManagedJobStatus
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    recovery_count: int
    task_index: int = 0
    termination_reason: TerminationReason | None = None  # why it ended, once it has

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> ManagedJobRow:
        """Build from the values of :data:`MANAGED_JOB_ROW_COLUMNS`, in that order."""
        ended = TerminationReason(r[10]) if r[10] is not None else None
        return cls(
            r[0], r[1], r[2], r[3], ManagedJobStatus(r[4]), r[5], r[6], r[7], r[8], r[9], ended
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DagRunRow:
    """A DAG run as ``styx jobs queue`` shows it: its name, its status (the DagRunStatus
    value) and its edges, ``(upstream, downstream)`` task-index pairs."""

    name: str
    status: str
    edges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_row(cls, name: str, status: str, spec: Any) -> DagRunRow:
        """Build from a run's name, status and stored spec (JSON text or already decoded)."""
        if isinstance(spec, str | bytes):
            import json

            spec = json.loads(spec)
        edges = (spec or {}).get("edges") or []
        return cls(name, status, tuple((int(a), int(b)) for a, b in edges))


# The managed_jobs columns a queue row reads, in ManagedJobRow's order.
MANAGED_JOB_ROW_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ManagedJobRow))


@dataclasses.dataclass(frozen=True, slots=True)
class StatusTransition:
    """One recorded status change of an entity; ``from_status`` None: it was created,
    ``to_status`` None: it was deleted. Statuses are the enum values, as stored."""

    id: int
    entity_kind: EntityKind
    entity_id: str
    time: float
    from_status: str | None
    to_status: str | None
    reason: str | None


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
