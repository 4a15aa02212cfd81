"""The agent's job table: SQLite in WAL mode, one writer (the agent's event loop).

Every status change goes through :meth:`JobStore.transition`, which enforces the transition table
of :class:`~styx.lifecycle.JobStatus` (terminal states never change; a refused move raises
:class:`~styx.errors.IllegalTransition`) and records the change
with its time in ``events``. Secret env values are never written here: ``spec`` holds the public
envs and the secrets' names only.

A write that fails (a full disk, an I/O error) never leaves a job where it was: the change is
kept in memory, every read shows it, and :meth:`JobStore.flush` writes it once it can.
``write_error`` says why writing failed last (None once writes work again).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
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
from styx.errors import AgentError, IllegalTransition, JobNotFound

log = logging.getLogger(__name__)

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
        #: Column changes of jobs that could not be written yet, by job id.
        self._unsaved: dict[int, dict[str, Any]] = {}
        self.write_error: str | None = None

    def close(self) -> None:
        self._db.close()

    def _failed_write(self, e: sqlite3.Error) -> str:
        self.write_error = f"writing {self.path.name} failed: {e}"
        log.error("%s", self.write_error)
        return self.write_error

    def flush(self) -> bool:
        """Write the changes kept in memory; True when nothing is left unsaved."""
        for job_id, fields in sorted(self._unsaved.items()):
            sets = ", ".join(f"{k} = ?" for k in fields)
            try:
                with self._db:
                    self._db.execute(
                        f"UPDATE jobs SET {sets} WHERE job_id = ?", (*fields.values(), job_id)
                    )
            except sqlite3.Error as e:
                self._failed_write(e)
                return False
            del self._unsaved[job_id]
        self.write_error = None
        return True

    def _overlay(self, rec: JobRecord) -> JobRecord:
        fields = self._unsaved.get(rec.job_id)
        if not fields:
            return rec
        changes = dict(fields)
        if "status" in changes:
            changes["status"] = JobStatus(changes["status"])
        if "nodes" in changes:
            changes["nodes"] = list(json.loads(changes["nodes"]))
        return dataclasses.replace(rec, **changes)

    # --- writes -----------------------------------------------------------------------------

    def add(self, spec: JobSpec, log_root: Path) -> JobRecord:
        """Insert a new job in INIT; its log folder is ``log_root/<job_id>``."""
        now = time.time()
        public = spec.to_dict()
        public["envs"] = spec.public_envs()
        self.flush()
        try:
            rec = self._insert(spec, public, log_root, now)
            if not self._unsaved:
                self.write_error = None
            return rec
        except sqlite3.Error as e:
            why = self._failed_write(e)
            raise AgentError(
                f"The agent could not record the job: {why}.",
                "Free disk space on the head node (STYX_HOME on a local cluster), then retry.",
                code="agent-storage-failed",
            ) from e

    def _insert(
        self, spec: JobSpec, public: dict[str, Any], log_root: Path, now: float
    ) -> JobRecord:
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
        old = self._status(job_id)
        if not old.can_become(new):
            # A bug, or a race with a terminal state (the caller decides which).
            raise IllegalTransition("cluster_job", str(job_id), old.value, new.value)
        fields: dict[str, Any] = {"status": new.value}
        if new in (JobStatus.SETTING_UP, JobStatus.RUNNING):
            current = self._unsaved.get(job_id, {}).get("started_at") or self._started(job_id)
            fields["started_at"] = current or now
        if new.is_terminal:
            fields["ended_at"] = now
        if exit_code is not None:
            fields["exit_code"] = exit_code
        if failure_reason is not None:
            fields["failure_reason"] = failure_reason
        if nodes is not None:
            fields["nodes"] = json.dumps(nodes)
        if job_id in self._unsaved:  # an older change first, so that the order holds
            self.flush()
        try:
            if job_id in self._unsaved:
                raise sqlite3.OperationalError(self.write_error or "earlier changes are unsaved")
            with self._db:
                sets = ", ".join(f"{k} = ?" for k in fields)
                self._db.execute(
                    f"UPDATE jobs SET {sets} WHERE job_id = ?", (*fields.values(), job_id)
                )
                self._event("transition", job_id, {"from": old.value, "to": new.value}, now)
        except sqlite3.Error as e:
            self._failed_write(e)
            self._unsaved.setdefault(job_id, {}).update(fields)
        else:
            if not self._unsaved:
                self.write_error = None
        return self.get(job_id)

    def _started(self, job_id: int) -> float | None:
        row = self._db.execute("SELECT started_at FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else row[0]

    def record_event(self, kind: str, data: dict[str, Any], job_id: int | None = None) -> None:
        """Append an agent event (autostop fired, agent restarted, ...); best effort."""
        try:
            with self._db:
                self._event(kind, job_id, data, time.time())
        except sqlite3.Error as e:
            self._failed_write(e)

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
        unsaved = self._unsaved.get(job_id, {}).get("status")
        if unsaved is not None:
            return JobStatus(unsaved)
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
        return self._overlay(_record(row))

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
        wanted = set(values)
        return [r for r in map(self._overlay, map(_record, rows)) if r.status.value in wanted]

    def queue(
        self, all_jobs: bool = False, limit: int | None = None, skip_finished: bool = False
    ) -> list[JobRecord]:
        """Newest first: every unfinished job plus the ``limit`` most recent ones
        (``DEFAULT_QUEUE_LIMIT`` by default); ``all_jobs`` lists the whole history."""
        args: tuple[int, ...]
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
        records = [self._overlay(_record(r)) for r in rows]
        if skip_finished:
            records = [r for r in records if not r.status.is_terminal]
        return records

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
