"""The client-side history of each cluster's jobs, kept after the cluster is downed.

A cluster name can be launched again after ``down``, and the new agent numbers its jobs from 1
again; rows are therefore keyed by (``cluster_id``, ``job_id``). Functions taking only a cluster
name act on its *current incarnation*: the live cluster's id, or for a downed cluster the id of
its most recent jobs.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from styx.errors import ClusterNotFound, JobNotFound
from styx.state import _sql
from styx.state._sql import UNSET, Unset, given
from styx.state.db import Database
from styx.state.models import Cluster, ClusterJob
from styx.state.records import JSON, ClusterJobRecord, ClusterJobStatus


def record_cluster_job(
    db: Database,
    cluster_name: str,
    job_id: int,
    *,
    status: ClusterJobStatus = ClusterJobStatus.PENDING,
    name: str | None = None,
    submitted_at: float | None = None,
    started_at: float | None = None,
    ended_at: float | None = None,
    exit_code: int | None = None,
    resources: JSON | None = None,
    user_name: str | None = None,
    log_path: str | None = None,
    cluster_id: str | None = None,
) -> ClusterJobRecord:
    """Insert or overwrite the job ``job_id`` of the cluster (its current incarnation).

    Raises :class:`ClusterNotFound` when ``cluster_id`` is not given and no cluster has the name.
    """
    values: dict[str, Any] = {
        "cluster_name": cluster_name,
        "job_id": job_id,
        "name": name,
        "status": ClusterJobStatus(status).value,
        "submitted_at": time.time() if submitted_at is None else submitted_at,
        "started_at": started_at,
        "ended_at": ended_at,
        "exit_code": exit_code,
        "resources": resources,
        "user_name": user_name,
        "log_path": log_path,
    }

    def txn(s: Session) -> ClusterJobRecord:
        cid = cluster_id or _live_cluster_id(s, cluster_name)
        if cid is None:
            raise ClusterNotFound(f"Cluster {cluster_name!r} does not exist.")
        _sql.upsert(s, ClusterJob, {**values, "cluster_id": cid}, ["cluster_id", "job_id"])
        return _must(s, cluster_name, cid, job_id)

    return db.write(txn)


def update_cluster_job(
    db: Database,
    cluster_name: str,
    job_id: int,
    *,
    status: ClusterJobStatus | Unset = UNSET,
    name: str | Unset | None = UNSET,
    started_at: float | Unset | None = UNSET,
    ended_at: float | Unset | None = UNSET,
    exit_code: int | Unset | None = UNSET,
    log_path: str | Unset | None = UNSET,
    cluster_id: str | None = None,
) -> ClusterJobRecord:
    """Change the given fields of a recorded job; raises :class:`JobNotFound` if absent.

    Moving to RUNNING stamps ``started_at``, and to a terminal status stamps ``ended_at``,
    unless they are given or already set.
    """
    changes = given(
        name=name, started_at=started_at, ended_at=ended_at, exit_code=exit_code, log_path=log_path
    )
    if not isinstance(status, Unset):
        changes["status"] = ClusterJobStatus(status).value

    def txn(s: Session) -> ClusterJobRecord:
        cid = cluster_id or _incarnation(s, cluster_name)
        current = None if cid is None else _select(s, cid, job_id, for_update=True)
        if current is None or cid is None:
            raise _job_not_found(cluster_name, job_id)
        now = time.time()
        new_status = ClusterJobStatus(changes.get("status", current.status))
        if new_status == ClusterJobStatus.RUNNING and current.started_at is None:
            changes.setdefault("started_at", now)
        if new_status.is_terminal and current.ended_at is None:
            changes.setdefault("ended_at", now)
        if changes:
            table = _sql.table_of(ClusterJob)
            s.execute(
                update(table)
                .where(table.c.cluster_id == cid, table.c.job_id == job_id)
                .values(**changes)
            )
        return _must(s, cluster_name, cid, job_id)

    return db.write(txn)


def get_cluster_job(
    db: Database, cluster_name: str, job_id: int, *, cluster_id: str | None = None
) -> ClusterJobRecord | None:
    """One job of the cluster's current incarnation (or of ``cluster_id``), or None."""

    def txn(s: Session) -> ClusterJobRecord | None:
        cid = cluster_id or _incarnation(s, cluster_name)
        return None if cid is None else _select(s, cid, job_id)

    return db.read(txn)


def list_cluster_jobs(
    db: Database,
    cluster_name: str | None = None,
    *,
    cluster_id: str | None = None,
    all_incarnations: bool = False,
    statuses: Collection[ClusterJobStatus] | None = None,
    user_name: str | None = None,
    limit: int | None = None,
) -> list[ClusterJobRecord]:
    """Jobs newest first: of the cluster's current incarnation (or ``cluster_id``), or of every
    incarnation with ``all_incarnations``, or of all clusters when ``cluster_name`` is None."""

    def txn(s: Session) -> list[ClusterJobRecord]:
        stmt = select(ClusterJob.__table__).order_by(
            ClusterJob.submitted_at.desc(), ClusterJob.id.desc()
        )
        if cluster_id is not None:
            stmt = stmt.where(ClusterJob.cluster_id == cluster_id)
        elif cluster_name is not None:
            stmt = stmt.where(ClusterJob.cluster_name == cluster_name)
            if not all_incarnations:
                cid = _incarnation(s, cluster_name)
                if cid is None:
                    return []
                stmt = stmt.where(ClusterJob.cluster_id == cid)
        if statuses is not None:
            stmt = stmt.where(ClusterJob.status.in_([ClusterJobStatus(x).value for x in statuses]))
        if user_name is not None:
            stmt = stmt.where(ClusterJob.user_name == user_name)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_record(m) for m in s.execute(stmt).mappings()]

    return db.read(txn)


def _live_cluster_id(s: Session, cluster_name: str) -> str | None:
    stmt = select(Cluster.cluster_id).where(Cluster.name == cluster_name)
    return s.execute(stmt).scalar_one_or_none()


def _incarnation(s: Session, cluster_name: str) -> str | None:
    cid = _live_cluster_id(s, cluster_name)
    if cid is not None:
        return cid
    stmt = (
        select(ClusterJob.cluster_id)
        .where(ClusterJob.cluster_name == cluster_name)
        .order_by(ClusterJob.submitted_at.desc(), ClusterJob.id.desc())
        .limit(1)
    )
    return s.execute(stmt).scalar_one_or_none()


def _select(
    s: Session, cluster_id: str, job_id: int, *, for_update: bool = False
) -> ClusterJobRecord | None:
    stmt = select(ClusterJob.__table__).where(
        ClusterJob.cluster_id == cluster_id, ClusterJob.job_id == job_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    row = s.execute(stmt).mappings().first()
    return None if row is None else _record(row)


def _must(s: Session, cluster_name: str, cluster_id: str, job_id: int) -> ClusterJobRecord:
    record = _select(s, cluster_id, job_id)
    if record is None:
        raise _job_not_found(cluster_name, job_id)
    return record


def _job_not_found(cluster_name: str, job_id: int) -> JobNotFound:
    return JobNotFound(f"Cluster {cluster_name!r} has no job {job_id}.")


def _record(m: Any) -> ClusterJobRecord:
    return ClusterJobRecord(
        cluster_name=m["cluster_name"],
        cluster_id=m["cluster_id"],
        job_id=m["job_id"],
        name=m["name"],
        status=ClusterJobStatus(m["status"]),
        submitted_at=m["submitted_at"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        exit_code=m["exit_code"],
        resources=m["resources"],
        user_name=m["user_name"],
        log_path=m["log_path"],
    )
