"""What clusters cost: one ``cluster_usage`` row per cluster incarnation, kept after it is downed.

A row is written when the cluster is provisioned (:func:`record_usage`) with the price per hour
of all its nodes as the optimizer priced them then, so a later catalog change does not rewrite
history; a stopped cluster that starts again keeps its row. When the cluster was up is not
stored here: it comes from the cluster's ``status_transitions`` (every change, with its time).

:func:`cost_inputs` reads everything ``styx cost-report`` needs in five plain SELECTs, through
the ``sqlite3`` fast path on SQLite (no SQLAlchemy import) and SQLAlchemy elsewhere; the same SQL
runs on both, so the two paths return the same values.
"""

from __future__ import annotations

import dataclasses
import json
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from styx.state.records import JSON, ClusterRecord, EntityKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from styx.state.db import Database

#: ``(cluster name, time, from_status, to_status)`` of one cluster status change; a None status
#: is absent (created or deleted).
Change = tuple[str, float, str | None, str | None]


class UsageRecord(NamedTuple):
    """One cluster incarnation as priced at launch (a named tuple: the report reads thousands).

    ``hourly_price`` is for all ``num_nodes`` together, in dollars (None when the catalog had no
    price); ``infra`` is where it ran (``aws/us-east-1/us-east-1a``, ``local``, ``ssh/lab``);
    ``launched_at`` is when the cluster record was created (its first status transition);
    ``managed_job_id`` names the managed job that launched it, if one did.
    """

    cluster_id: str
    cluster_name: str
    provider: str
    infra: str
    resources: JSON | None
    num_nodes: int
    hourly_price: float | None
    launched_at: float
    managed_job_id: int | None = None
    user_name: str | None = None


class JobRow(NamedTuple):
    """The columns of a managed job the cost report shows."""

    id: int
    name: str
    dag_run_id: int | None
    status: str
    submitted_at: float
    ended_at: float | None
    user_name: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class CostInputs:
    """Everything the cost report is computed from, read in one go.

    ``changes`` holds each cluster name's status changes oldest first (all incarnations of
    that name, each starting with a creation); ``runs`` maps a DAG run id to (name, status).
    ``live`` are the clusters that exist now.
    """

    usage: list[UsageRecord]
    live: list[ClusterRecord]
    changes: dict[str, list[Change]]
    jobs: list[JobRow]
    runs: dict[int, tuple[str, str]]


_USAGE_COLUMNS = UsageRecord._fields
_SELECT_USAGE = "SELECT " + ", ".join(_USAGE_COLUMNS) + " FROM cluster_usage"
_SELECT_USAGE_LEAN = _SELECT_USAGE.replace(
    "resources", "CASE WHEN managed_job_id IS NULL THEN resources END", 1
)
_SELECT_CHANGES = (
    "SELECT entity_id, time, from_status, to_status FROM status_transitions "
    f"WHERE entity_kind = '{EntityKind.CLUSTER.value}' ORDER BY entity_id, time, id"
)
_SELECT_JOBS = (
    "SELECT id, name, dag_run_id, status, submitted_at, ended_at, user_name FROM managed_jobs "
    "ORDER BY id"
)
_SELECT_RUNS = "SELECT id, name, status FROM dag_runs"


def record_usage(db: Database, usage: UsageRecord) -> None:
    """Write the incarnation's row, or overwrite it (a cluster left INIT by a failed launch and
    provisioned again is priced as what was provisioned last)."""
    from styx.state import _sql
    from styx.state.models import ClusterUsage

    values = usage._asdict()
    db.write(lambda s: _sql.upsert(s, ClusterUsage, values, ["cluster_id"]))


def get_usage(db: Database, cluster_id: str) -> UsageRecord | None:
    """The row of one incarnation, or None."""
    rows = _rows(db, _SELECT_USAGE + " WHERE cluster_id = :id", {"id": cluster_id})
    return _usage(rows[0]) if rows else None


def cost_inputs(db: Database, *, job_resources: bool = True) -> CostInputs:
    """Every usage row, live cluster, cluster status change, managed job and DAG run.

    Without ``job_resources``, the usage rows of managed jobs' clusters come without their
    resources (None): a report that shows only the sums per job need not decode thousands.
    """
    from styx.state.clusters import list_clusters

    rows = _rows(db, _SELECT_CHANGES)
    changes: dict[str, list[Change]] = {k: list(g) for k, g in groupby(rows, itemgetter(0))}
    usage_sql = _SELECT_USAGE if job_resources else _SELECT_USAGE_LEAN
    return CostInputs(
        usage=[_usage(r) for r in _rows(db, usage_sql)],
        live=list_clusters(db),
        changes=changes,
        jobs=[JobRow._make(r) for r in _rows(db, _SELECT_JOBS)],
        runs={r[0]: (r[1], r[2]) for r in _rows(db, _SELECT_RUNS)},
    )


def _usage(row: tuple[Any, ...]) -> UsageRecord:
    raw = row[4]
    if isinstance(raw, str):  # SQLite gives JSON as text; PostgreSQL's driver decodes it
        row = (*row[:4], json.loads(raw), *row[5:])
    return UsageRecord._make(row)


def _rows(db: Database, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """The rows of one SELECT, through the sqlite3 fast path when there is one."""
    fast = db.fast_reader()
    if fast is not None:
        return fast.query(sql, params or {})

    def txn(s: Session) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        return [tuple(r) for r in s.execute(text(sql), params or {})]

    return db.read(txn)
