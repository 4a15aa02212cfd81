"""The agent's job table: SQLite in WAL mode, one writer (the agent's event loop).

Every status change goes through :meth:`JobStore.transition`, which enforces the transition table
of :class:`~styx.agent.protocol.JobStatus` (terminal states never change) and records the change
with its time in ``events``. Secret env values are never written here: ``spec`` holds the public
envs and the secrets' names only.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from styx.agent.protocol import (
    ACTIVE_STATUSES,
    DEFAULT_QUEUE_LIMIT,
    Demand,
    JobRecord,
    JobSpec,
    JobStatus,
)
from styx.errors import JobNotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    user TEXT,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    num_nodes INTEGER NOT NULL,
    demand TEXT NOT NULL,
    spec TEXT NOT NULL,
    log_dir TEXT NOT NULL DEFAULT '',
    failure_reason TEXT,
    task_id TEXT,
    nodes TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    job_id INTEGER,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = (
    "job_id, name, user, status, priority, submitted_at, started_at, ended_at, exit_code, "
    "num_nodes, demand, log_dir, failure_reason, task_id, nodes"
)
_ACTIVE_SQL = ",".join(f"'{s.value}'" for s in sorted(ACTIVE_STATUSES))


class IllegalTransition(Exception):
    """A status change the transition table forbids (a bug, or a race with a terminal state)."""


@functools.lru_cache(maxsize=256)
def _demand(text: str) -> Demand:
    return Demand.from_dict(json.loads(text), strict=False)  # few distinct values: cache them


@functools.lru_cache(maxsize=1024)
def _nodes(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _record(row: tuple[Any, ...]) -> JobRecord:
    (
        job_id,
        name,
        user,
        status,
        priority,
        submitted_at,
        started_at,
        ended_at,
        exit_code,
        num_nodes,
        demand,
        log_dir,
        failure_reason,
        task_id,
        nodes,
    ) = row
    return JobRecord(
        job_id=job_id,
        name=name,
        status=JobStatus(status),
        submitted_at=submitted_at,
        started_at=started_at,
        ended_at=ended_at,
        exit_code=exit_code,
        num_nodes=num_nodes,
        demand=_demand(demand),
        user=user,
        log_dir=log_dir,
        failure_reason=failure_reason,
        priority=priority,
        task_id=task_id,
        nodes=list(_nodes(nodes)),
    )


class JobStore:
    """Typed access to ``jobs.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL keeps WAL durable across an agent crash (only an OS crash can lose the tail).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- writes -----------------------------------------------------------------------------

    def add(self, spec: JobSpec, log_root: Path) -> JobRecord:
        """Insert a new job in INIT; its log folder is ``log_root/<job_id>``."""
        now = time.time()
        public = spec.to_dict()
        public["envs"] = spec.public_envs()
        with self._db:
            cur = self._db.execute(
                "INSERT INTO jobs (name, user, status, priority, submitted_at, num_nodes, demand,"
                " spec, task_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    spec.user,
                    JobStatus.INIT.value,
                    spec.priority,
                    now,
                    spec.num_nodes,
                    json.dumps(spec.demand.to_dict()),
                    json.dumps(public),
                    spec.task_id,
                ),
            )
            job_id = int(cur.lastrowid or 0)
            log_dir = str(log_root / str(job_id))
            self._db.execute("UPDATE jobs SET log_dir = ? WHERE job_id = ?", (log_dir, job_id))
            self._event("transition", job_id, {"to": JobStatus.INIT.value}, now)
        return self.get(job_id)

    def transition(
        self,
        job_id: int,
        new: JobStatus,
        *,
        exit_code: int | None = None,
        failure_reason: str | None = None,
        nodes: list[str] | None = None,
    ) -> JobRecord:
        """Move a job to ``new``, stamping start/end times; raises :class:`IllegalTransition`."""
        now = time.time()
        with self._db:
            old = self._status(job_id)
            if not old.can_become(new):
                raise IllegalTransition(f"job {job_id}: {old.value} -> {new.value}")
            sets = ["status = ?"]
            args: list[Any] = [new.value]
            if new in (JobStatus.SETTING_UP, JobStatus.RUNNING):
                sets.append("started_at = COALESCE(started_at, ?)")
                args.append(now)
            if new.terminal:
                sets.append("ended_at = ?")
                args.append(now)
            if exit_code is not None:
                sets.append("exit_code = ?")
                args.append(exit_code)
            if failure_reason is not None:
                sets.append("failure_reason = ?")
                args.append(failure_reason)
            if nodes is not None:
                sets.append("nodes = ?")
                args.append(json.dumps(nodes))
            self._db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE job_id = ?", (*args, job_id))
            self._event("transition", job_id, {"from": old.value, "to": new.value}, now)
        return self.get(job_id)

    def record_event(self, kind: str, data: dict[str, Any], job_id: int | None = None) -> None:
        """Append an agent event (autostop fired, agent restarted, ...)."""
        with self._db:
            self._event(kind, job_id, data, time.time())

    def _event(self, kind: str, job_id: int | None, data: dict[str, Any], at: float) -> None:
        self._db.execute(
            "INSERT INTO events (at, kind, job_id, data) VALUES (?, ?, ?, ?)",
            (at, kind, job_id, json.dumps(data)),
        )

    def set_meta(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # --- reads ------------------------------------------------------------------------------

    def _status(self, job_id: int) -> JobStatus:
        row = self._db.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"Job {job_id} does not exist on this cluster.")
        return JobStatus(row[0])

    def get(self, job_id: int) -> JobRecord:
        """One job; raises :class:`~styx.errors.JobNotFound`."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(f"Job {job_id} does not exist on this cluster.")
        return _record(row)

    def spec(self, job_id: int) -> JobSpec:
        """The stored spec (public envs only; secrets come from the secret spool)."""
        row = self._db.execute("SELECT spec FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"Job {job_id} does not exist on this cluster.")
        return JobSpec.from_dict(json.loads(row[0]), strict=False)

    def with_status(self, statuses: Iterable[JobStatus]) -> list[JobRecord]:
        """Jobs in the given statuses, oldest first."""
        marks = ",".join("?" for _ in statuses)
        values = [s.value for s in statuses]
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY job_id", values
        ).fetchall()
        return [_record(r) for r in rows]

    def queue(
        self, all_jobs: bool = False, limit: int | None = None, skip_finished: bool = False
    ) -> list[JobRecord]:
        """Newest first: every unfinished job plus the ``limit`` most recent ones
        (``DEFAULT_QUEUE_LIMIT`` by default); ``all_jobs`` lists the whole history."""
        if skip_finished:
            where, args = f"status IN ({_ACTIVE_SQL}, 'INIT')", ()
        elif all_jobs and limit is None:
            where, args = "1", ()
        else:
            n = DEFAULT_QUEUE_LIMIT if limit is None else limit
            where = (
                f"job_id > (SELECT COALESCE(MAX(job_id), 0) FROM jobs) - ? "
                f"OR status IN ({_ACTIVE_SQL}, 'INIT')"
            )
            args = (n,)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE {where} ORDER BY job_id DESC", args
        ).fetchall()
        return [_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Recorded events, oldest first (used by tests and ``status``)."""
        sql = "SELECT at, kind, job_id, data FROM events"
        rows = (
            self._db.execute(sql + " WHERE kind = ? ORDER BY id", (kind,))
            if kind
            else self._db.execute(sql + " ORDER BY id")
        ).fetchall()
        return [{"at": at, "kind": k, "job_id": j, "data": json.loads(d)} for at, k, j, d in rows]

    def last_job_end(self) -> float | None:
        row = self._db.execute("SELECT MAX(ended_at) FROM jobs").fetchone()
        return None if row is None else row[0]
