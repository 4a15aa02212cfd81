"""The managed-jobs queue: every job's lean row and each DAG run's name, status and edges.

On SQLite this reads through plain ``sqlite3`` (:mod:`styx.state._fast`, no SQLAlchemy
import), as ``styx status`` does; elsewhere through SQLAlchemy. Both return the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from styx.state.records import DagRunRow, ManagedJobRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from styx.state.db import Database

#: Each DAG run's row, by id.
RunLabels = dict[int, DagRunRow]


def managed_job_queue(db: Database) -> tuple[list[ManagedJobRow], RunLabels]:
    """Every managed job (by id) and each DAG run's row."""
    fast = db.fast_reader()
    if fast is not None:
        return fast.managed_job_queue()
    return db.read(_select_queue)


def _select_queue(s: Session) -> tuple[list[ManagedJobRow], RunLabels]:
    from sqlalchemy import select

    from styx.state.models import DagRun, ManagedJob
    from styx.state.records import MANAGED_JOB_ROW_COLUMNS

    cols = [ManagedJob.__table__.c[name] for name in MANAGED_JOB_ROW_COLUMNS]
    rows = [ManagedJobRow.from_row(r) for r in s.execute(select(*cols).order_by(ManagedJob.id))]
    runs = {
        r[0]: DagRunRow.from_row(r[1], r[2], r[3])
        for r in s.execute(select(DagRun.id, DagRun.name, DagRun.status, DagRun.spec))
    }
    return rows, runs
