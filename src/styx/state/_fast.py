"""Hot reads on SQLite through the standard ``sqlite3`` module, without importing SQLAlchemy.

``styx status`` must answer in well under 300 ms for the whole process, and importing
SQLAlchemy alone costs more than half of that on a small machine. So cluster reads on SQLite
take this path once the schema revision is known to be current, and so does the managed-jobs
queue. It returns exactly what the SQLAlchemy path returns; tests compare the two on the same
rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from styx.state import _errors
from styx.state.records import (
    CLUSTER_COLUMNS,
    CLUSTER_JSON_COLUMNS,
    MANAGED_JOB_ROW_COLUMNS,
    ClusterRecord,
    DagRunRow,
    ManagedJobRow,
)

if TYPE_CHECKING:
    from styx.state.db import Database

T = TypeVar("T")

_SELECT_CLUSTERS = "SELECT " + ", ".join(f'"{c}"' for c in CLUSTER_COLUMNS) + " FROM clusters"
_SELECT_JOB_ROWS = "SELECT " + ", ".join(MANAGED_JOB_ROW_COLUMNS) + " FROM managed_jobs ORDER BY id"


class FastReader:
    """A read-only use of one sqlite3 connection, shared by the threads of a process."""

    def __init__(self, conn: sqlite3.Connection, db: Database) -> None:
        self._conn = conn
        self._db = db
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str, revision: str, db: Database) -> FastReader | None:
        """A reader for the database at ``path``, or None unless it exists at ``revision``."""
        if not os.path.isfile(path):
            return None
        try:
            conn = sqlite3.connect(
                path, timeout=db.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error:
            return None  # the SQLAlchemy path reports the failure properly
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_revision'").fetchone()
        except sqlite3.Error:
            row = None
        if row is None or row[0] != revision:
            conn.close()
            return None
        return cls(conn, db)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        args = tuple(params)
        return self._retry(lambda: self._conn.execute(sql, args).fetchall())

    def query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a read-only statement with ``:name`` parameters, as plain tuples."""
        return self._retry(lambda: self._conn.execute(sql, params).fetchall())

    def _retry(self, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + self._db.retry_seconds
        attempt = 0
        while True:
            try:
                with self._lock:
                    return fn()
            except sqlite3.Error as exc:
                if _errors.is_contention(exc) and time.monotonic() < deadline:
                    time.sleep(_errors.backoff_delay(attempt))
                    attempt += 1
                    self._db.retries += 1
                    continue
                raise _errors.translate(exc, self._db.where) from exc

    def list_clusters(
        self, names: Iterable[str] | None = None, user_name: str | None = None
    ) -> list[ClusterRecord]:
        """Clusters ordered by name, optionally only the given names or one user's."""
        where: list[str] = []
        params: list[Any] = []
        if names is not None:
            wanted = list(names)
            if not wanted:
                return []
            where.append("name IN (" + ", ".join("?" * len(wanted)) + ")")
            params.extend(wanted)
        if user_name is not None:
            where.append("user_name = ?")
            params.append(user_name)
        sql = _SELECT_CLUSTERS + (" WHERE " + " AND ".join(where) if where else "")
        return [_cluster(row) for row in self._query(sql + " ORDER BY name", params)]

    def get_cluster(self, name: str) -> ClusterRecord | None:
        """One cluster, or None."""
        rows = self._query(_SELECT_CLUSTERS + " WHERE name = ?", (name,))
        return _cluster(rows[0]) if rows else None

    def set_last_use(self, name: str, text: str) -> bool:
        """Write one cluster's LAST USE (the only write on this path: ``exec`` records it, and
        must not pay SQLAlchemy's import for it); False when there is no such cluster."""

        def run() -> bool:
            cur = self._conn.execute(
                "UPDATE clusters SET last_use = ? WHERE name = ?", (text, name)
            )
            return cur.rowcount > 0

        return self._retry(run)

    def managed_job_queue(self) -> tuple[list[ManagedJobRow], dict[int, DagRunRow]]:
        """Every managed job's queue row by id, and each DAG run's row."""
        rows = [ManagedJobRow.from_row(r) for r in self._query(_SELECT_JOB_ROWS, ())]
        runs = self._query("SELECT id, name, status, spec FROM dag_runs", ())
        return rows, {r[0]: DagRunRow.from_row(r[1], r[2], r[3]) for r in runs}


def _cluster(row: tuple[Any, ...]) -> ClusterRecord:
    values = dict(zip(CLUSTER_COLUMNS, row, strict=True))
    for col in CLUSTER_JSON_COLUMNS:
        raw = values[col]
        values[col] = None if raw is None else json.loads(raw)
    return ClusterRecord.from_mapping(values)
