"""Managed jobs, their status transitions, and the DAG runs that group them.

Each status change of a managed job or DAG run is checked against its transition table
(:data:`~styx.state.records.MANAGED_JOB_TRANSITIONS`, :data:`~styx.state.records.
DAG_RUN_TRANSITIONS`; a refused move raises :class:`~styx.errors.IllegalTransition`) and
written with a ``status_transitions`` row in the same transaction. Transitions can be
compare-and-set (``expected=``), which is how a controller claims a PENDING job without racing
another controller.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from styx.errors import JobNotFound, NotFoundError
from styx.state._sql import UNSET, Unset, given, status_filter
from styx.state.db import Database
from styx.state.models import DagRun, ManagedJob
from styx.state.records import (
    DAG_RUN_TRANSITIONS,
    JSON,
    MANAGED_JOB_TRANSITIONS,
    DagRunRecord,
    DagRunStatus,
    EntityKind,
    ManagedJobEvent,
    ManagedJobRecord,
    ManagedJobStatus,
    NewManagedJob,
    TerminationReason,
)
from styx.state.transitions import list_transitions, record

# -- managed jobs ------------------------------------------------------------------------------


def add_managed_job(
    db: Database, job: NewManagedJob, *, dag_run_id: int | None = None
) -> ManagedJobRecord:
    """Queue a managed job as PENDING (recorded as its first event) and return it."""
    return db.write(lambda s: _insert_job(s, job, dag_run_id, time.time()))


def _insert_job(
    s: Session, job: NewManagedJob, dag_run_id: int | None, now: float
) -> ManagedJobRecord:
    row = ManagedJob(
        name=job.name,
        dag_run_id=dag_run_id,
        task_index=job.task_index,
        task_name=job.task_name,
        status=ManagedJobStatus.PENDING.value,
        spec=job.spec,
        resources=job.resources,
        cluster_name=None,
        recovery_count=0,
        restarts_on_errors=0,
        submitted_at=now,
        priority=job.priority,
        user_name=job.user_name,
    )
    s.add(row)
    s.flush()
    record(s, MANAGED_JOB_TRANSITIONS, row.id, None, ManagedJobStatus.PENDING, "submitted", now)
    return _job_record(row)


def get_managed_job(db: Database, job_id: int) -> ManagedJobRecord | None:
    """The managed job ``job_id``, or None."""
    return db.read(lambda s: _select_job(s, job_id))


def require_managed_job(db: Database, job_id: int) -> ManagedJobRecord:
    """The managed job ``job_id``; raises :class:`JobNotFound` if there is none."""
    record = get_managed_job(db, job_id)
    if record is None:
        raise _job_not_found(job_id)
    return record


def list_managed_jobs(
    db: Database,
    *,
    statuses: Collection[ManagedJobStatus] | None = None,
    dag_run_id: int | None = None,
    cluster_name: str | None = None,
    user_name: str | None = None,
    by_priority: bool = False,
    limit: int | None = None,
) -> list[ManagedJobRecord]:
    """Managed jobs matching every given filter, by id (or highest priority first, then id)."""

    def txn(s: Session) -> list[ManagedJobRecord]:
        stmt = select(ManagedJob)
        if statuses is not None:
            stmt = stmt.where(ManagedJob.status.in_([ManagedJobStatus(x).value for x in statuses]))
        if dag_run_id is not None:
            stmt = stmt.where(ManagedJob.dag_run_id == dag_run_id)
        if cluster_name is not None:
            stmt = stmt.where(ManagedJob.cluster_name == cluster_name)
        if user_name is not None:
            stmt = stmt.where(ManagedJob.user_name == user_name)
        if by_priority:
            stmt = stmt.order_by(ManagedJob.priority.desc(), ManagedJob.id)
        else:
            stmt = stmt.order_by(ManagedJob.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_job_record(r) for r in s.execute(stmt).scalars()]

    return db.read(txn)


def set_managed_job_status(
    db: Database,
    job_id: int,
    status: ManagedJobStatus,
    *,
    expected: ManagedJobStatus | Collection[ManagedJobStatus] | None = None,
    reason: str | None = None,
    failure_reason: str | None = None,
    termination: TerminationReason | None = None,
) -> bool:
    """Move the job to ``status``, recording an event with ``reason``, atomically.

    With ``expected`` this is a compare-and-set and returns False when the current status is
    not (one of) ``expected``. Setting the current status again changes nothing and returns
    True. Entering RUNNING stamps ``started_at`` once; entering RECOVERING counts a recovery;
    a terminal status stamps ``ended_at``; ``failure_reason`` is stored when given, and so is
    ``termination`` (why the job ended), which must be a reason whose status is ``status``.
    Raises :class:`JobNotFound` if there is no such job, and
    :class:`~styx.errors.IllegalTransition` (changing nothing) for a move the transition table
    refuses, such as leaving a terminal status.
    """
    target = ManagedJobStatus(status)
    allowed = status_filter(expected)
    ended = None if termination is None else TerminationReason(termination)
    if ended is not None and ended.status is not target:
        raise ValueError(f"{ended} ends a managed job {ended.status}, not {target}")

    def txn(s: Session) -> bool:
        row = s.execute(
            select(ManagedJob).where(ManagedJob.id == job_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise _job_not_found(job_id)
        if allowed is not None and row.status not in allowed:
            return False
        if failure_reason is not None:
            row.failure_reason = failure_reason
        if ended is not None:
            row.termination_reason = ended.value
        if row.status == target.value:
            return True
        now = time.time()
        old = ManagedJobStatus(row.status)
        record(s, MANAGED_JOB_TRANSITIONS, job_id, old, target, reason, now)
        row.status = target.value
        if target == ManagedJobStatus.RUNNING and row.started_at is None:
            row.started_at = now
        if target == ManagedJobStatus.RECOVERING:
            row.recovery_count += 1
        if target.is_terminal:
            row.ended_at = now
        return True

    return db.write(txn)


def update_managed_job(
    db: Database,
    job_id: int,
    *,
    cluster_name: str | Unset | None = UNSET,
    controller_pid: int | Unset | None = UNSET,
    restarts_on_errors: int | Unset = UNSET,
    priority: int | Unset = UNSET,
    resources: JSON | Unset | None = UNSET,
    failure_reason: str | Unset | None = UNSET,
) -> ManagedJobRecord:
    """Change the given fields (not the status); raises :class:`JobNotFound` if absent."""
    changes = given(
        cluster_name=cluster_name,
        controller_pid=controller_pid,
        restarts_on_errors=restarts_on_errors,
        priority=priority,
        resources=resources,
        failure_reason=failure_reason,
    )

    def txn(s: Session) -> ManagedJobRecord:
        if changes:
            s.execute(update(ManagedJob).where(ManagedJob.id == job_id).values(**changes))
        record = _select_job(s, job_id)
        if record is None:
            raise _job_not_found(job_id)
        return record

    return db.write(txn)


def list_managed_job_events(db: Database, job_id: int) -> list[ManagedJobEvent]:
    """The job's status transitions, oldest first."""
    return [
        ManagedJobEvent(
            id=t.id,
            job_id=job_id,
            time=t.time,
            from_status=None if t.from_status is None else ManagedJobStatus(t.from_status),
            to_status=ManagedJobStatus(t.to_status),
            reason=t.reason,
        )
        for t in list_transitions(db, EntityKind.MANAGED_JOB, job_id)
        if t.to_status is not None
    ]


def _select_job(s: Session, job_id: int) -> ManagedJobRecord | None:
    row = s.get(ManagedJob, job_id)
    return None if row is None else _job_record(row)


def _job_not_found(job_id: int) -> JobNotFound:
    return JobNotFound(
        f"Managed job {job_id} does not exist.", "Run `styx jobs queue` to list managed jobs."
    )


def _job_record(r: ManagedJob) -> ManagedJobRecord:
    return ManagedJobRecord(
        id=r.id,
        name=r.name,
        dag_run_id=r.dag_run_id,
        task_index=r.task_index,
        task_name=r.task_name,
        status=ManagedJobStatus(r.status),
        spec=r.spec,
        resources=r.resources,
        cluster_name=r.cluster_name,
        recovery_count=r.recovery_count,
        restarts_on_errors=r.restarts_on_errors,
        submitted_at=r.submitted_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        failure_reason=r.failure_reason,
        priority=r.priority,
        user_name=r.user_name,
        controller_pid=r.controller_pid,
        termination_reason=(
            None if r.termination_reason is None else TerminationReason(r.termination_reason)
        ),
    )


# -- DAG runs ----------------------------------------------------------------------------------


def add_dag_run(
    db: Database,
    name: str,
    spec: JSON,
    *,
    on_failure: str = "fail_fast",
    jobs: Sequence[NewManagedJob] = (),
) -> tuple[DagRunRecord, list[ManagedJobRecord]]:
    """Create a PENDING DAG run and, in the same transaction, one PENDING job per task."""

    def txn(s: Session) -> tuple[DagRunRecord, list[ManagedJobRecord]]:
        now = time.time()
        run = DagRun(
            name=name,
            status=DagRunStatus.PENDING.value,
            spec=spec,
            on_failure=on_failure,
            created_at=now,
        )
        s.add(run)
        s.flush()
        record(s, DAG_RUN_TRANSITIONS, run.id, None, DagRunStatus.PENDING, "submitted", now)
        records = [_insert_job(s, job, run.id, now) for job in jobs]
        return _run_record(run), records

    return db.write(txn)


def get_dag_run(db: Database, run_id: int) -> DagRunRecord | None:
    """The DAG run ``run_id``, or None."""

    def txn(s: Session) -> DagRunRecord | None:
        row = s.get(DagRun, run_id)
        return None if row is None else _run_record(row)

    return db.read(txn)


def list_dag_runs(
    db: Database, *, statuses: Collection[DagRunStatus] | None = None, limit: int | None = None
) -> list[DagRunRecord]:
    """DAG runs by id, optionally only those in ``statuses``."""

    def txn(s: Session) -> list[DagRunRecord]:
        stmt = select(DagRun).order_by(DagRun.id)
        if statuses is not None:
            stmt = stmt.where(DagRun.status.in_([DagRunStatus(x).value for x in statuses]))
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_run_record(r) for r in s.execute(stmt).scalars()]

    return db.read(txn)


def set_dag_run_status(
    db: Database,
    run_id: int,
    status: DagRunStatus,
    *,
    expected: DagRunStatus | Collection[DagRunStatus] | None = None,
    reason: str | None = None,
) -> bool:
    """Move the run to ``status`` (compare-and-set with ``expected``, like jobs), recording
    the transition with ``reason``.

    A terminal status stamps ``ended_at``. Raises :class:`NotFoundError` if there is no run,
    and :class:`~styx.errors.IllegalTransition` for a move the transition table refuses.
    """
    target = DagRunStatus(status)
    allowed = status_filter(expected)

    def txn(s: Session) -> bool:
        row = s.execute(
            select(DagRun).where(DagRun.id == run_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"DAG run {run_id} does not exist.")
        if allowed is not None and row.status not in allowed:
            return False
        if row.status != target.value:
            now = time.time()
            record(s, DAG_RUN_TRANSITIONS, run_id, DagRunStatus(row.status), target, reason, now)
            row.status = target.value
            if target.is_terminal:
                row.ended_at = now
        return True

    return db.write(txn)


def _run_record(r: DagRun) -> DagRunRecord:
    return DagRunRecord(
        id=r.id,
        name=r.name,
        status=DagRunStatus(r.status),
        spec=r.spec,
        on_failure=r.on_failure,
        created_at=r.created_at,
        ended_at=r.ended_at,
    )
