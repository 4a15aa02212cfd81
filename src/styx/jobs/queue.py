"""The rows of ``styx jobs queue``: a lean read (no specs decoded) and a tree rendering."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from styx.state.db import Database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_COLUMNS = (
    "id", "name", "task_name", "dag_run_id", "status", "submitted_at", "started_at",
    "ended_at", "recovery_count",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class QueueRow:
    """One managed job as the queue shows it."""

    id: int
    name: str
    task_name: str | None
    dag_run_id: int | None
    status: str
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    recovery_count: int


def read_queue(db: Database) -> tuple[list[QueueRow], dict[int, tuple[str, str]]]:
    """Every managed job (by id) and each DAG run's (name, status).

    On SQLite this reads through plain ``sqlite3`` (no SQLAlchemy import), as ``styx status``.
    """
    fast = db.fast_reader()
    if fast is not None:
        jobs_sql = f"SELECT {', '.join(_COLUMNS)} FROM managed_jobs ORDER BY id"
        rows = [QueueRow(*r) for r in fast._query(jobs_sql, ())]
        run_rows: list[tuple[Any, ...]] = fast._query("SELECT id, name, status FROM dag_runs", ())
        return rows, {r[0]: (r[1], r[2]) for r in run_rows}
    return _read_queue_sqlalchemy(db)


def _read_queue_sqlalchemy(db: Database) -> tuple[list[QueueRow], dict[int, tuple[str, str]]]:
    from sqlalchemy import select

    from styx.state.models import DagRun, ManagedJob

    def txn(s: Session) -> tuple[list[QueueRow], dict[int, tuple[str, str]]]:
        cols = (
            ManagedJob.id, ManagedJob.name, ManagedJob.task_name, ManagedJob.dag_run_id,
            ManagedJob.status, ManagedJob.submitted_at, ManagedJob.started_at,
            ManagedJob.ended_at, ManagedJob.recovery_count,
        )  # fmt: skip
        rows = [QueueRow(*r) for r in s.execute(select(*cols).order_by(ManagedJob.id))]
        runs = {
            r[0]: (r[1], r[2]) for r in s.execute(select(DagRun.id, DagRun.name, DagRun.status))
        }
        return rows, runs

    return db.read(txn)


def _duration(row: QueueRow, now: float) -> str:
    if row.started_at is None:
        return "-"
    seconds = int((row.ended_at or now) - row.started_at)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def render(rows: list[QueueRow], runs: dict[int, tuple[str, str]]) -> str:
    """A text table; the tasks of a DAG run are indented under the run, as a tree."""
    now = time.time()
    lines = [f"{'ID':>7}  {'NAME':<28} {'STATUS':<19} {'DURATION':>10} {'RECOVERIES':>10}"]
    children: dict[int, list[QueueRow]] = {}
    for row in rows:
        if row.dag_run_id is not None:
            children.setdefault(row.dag_run_id, []).append(row)
    shown: set[int] = set()
    for row in rows:
        run_id = row.dag_run_id
        if run_id is None:
            lines.append(
                f"{row.id:>7}  {row.name[:28]:<28} {row.status:<19} "
                f"{_duration(row, now):>10} {row.recovery_count:>10}"
            )
            continue
        if run_id in shown:
            continue
        shown.add(run_id)
        name, status = runs.get(run_id, ("?", "?"))
        lines.append(f"{'run ' + str(run_id):>7}  {name[:28]:<28} {status:<19}")
        tasks = children[run_id]
        for i, task in enumerate(tasks):
            branch = "└─ " if i == len(tasks) - 1 else "├─ "
            label = branch + (task.task_name or task.name)
            lines.append(
                f"{task.id:>7}  {label[:28]:<28} {task.status:<19} "
                f"{_duration(task, now):>10} {task.recovery_count:>10}"
            )
    return "\n".join(lines)
