"""Status transition tables: illegal moves are refused, every allowed one is recorded (with its
time and reason) in ``status_transitions``, in the same transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.pool import NullPool

from styx.errors import IllegalTransition
from styx.state import (
    ClusterStatus,
    DagRunStatus,
    EntityKind,
    ManagedJobStatus,
    NewManagedJob,
    add_dag_run,
    add_managed_job,
    delete_cluster,
    list_events,
    list_managed_job_events,
    list_transitions,
    migrate,
    require_cluster,
    require_managed_job,
    set_cluster_status,
    set_dag_run_status,
    set_managed_job_status,
    upsert_cluster,
)
from styx.state import db as dbmod
from styx.state.db import Database
from styx.state.records import (
    CLUSTER_TRANSITIONS,
    DAG_RUN_TRANSITIONS,
    MANAGED_JOB_TRANSITIONS,
)

S = ManagedJobStatus
C = ClusterStatus

# -- the tables (pure) -------------------------------------------------------------------------


def test_managed_job_table() -> None:
    t = MANAGED_JOB_TRANSITIONS
    assert t.allows(None, S.PENDING) and not t.allows(None, S.RUNNING)
    assert t.allows(S.PENDING, S.STARTING) and t.allows(S.RUNNING, S.RECOVERING)
    assert t.allows(S.RECOVERING, S.RUNNING) and t.allows(S.CANCELLING, S.CANCELLED)
    assert not t.allows(S.PENDING, S.RUNNING)  # a job starts before it runs
    assert not t.allows(S.STARTING, S.SUCCEEDED)  # only a running job succeeds
    assert not t.allows(S.CANCELLING, S.RUNNING)
    assert not t.allows(S.RUNNING, None)  # managed jobs are never deleted
    for final in (s for s in S if s.is_terminal):
        assert not any(t.allows(final, other) for other in S if other is not final), final
    for active in (s for s in S if not s.is_terminal):
        assert t.allows(active, S.FAILED_CONTROLLER) and t.allows(active, S.CANCELLED), active


def test_cluster_and_dag_run_tables() -> None:
    t = CLUSTER_TRANSITIONS
    assert t.allows(None, C.INIT) and not t.allows(None, C.DEGRADED)
    assert t.allows(C.UP, C.DEGRADED) and t.allows(C.STOPPED, C.UP)
    assert not t.allows(C.STOPPED, C.DEGRADED)  # a stopped cluster must start first
    assert all(t.allows(s, None) for s in C)  # deletable from any status
    d = DAG_RUN_TRANSITIONS
    assert d.allows(DagRunStatus.PENDING, DagRunStatus.RUNNING)
    assert not d.allows(DagRunStatus.SUCCEEDED, DagRunStatus.FAILED)
    assert (None, DagRunStatus.PENDING) in set(d.pairs())


# -- refusals ----------------------------------------------------------------------------------


def test_an_illegal_managed_job_move_is_refused_and_writes_nothing(db: Database) -> None:
    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    with pytest.raises(IllegalTransition) as caught:
        set_managed_job_status(db, job.id, S.RUNNING, reason="skip STARTING", failure_reason="x")
    err = caught.value
    assert err.code == "illegal-transition" and err.exit_code == 70
    want = {"kind": "managed_job", "id": str(job.id), "from": "PENDING", "to": "RUNNING"}
    assert err.details == want
    after = require_managed_job(db, job.id)
    assert after.status is S.PENDING and after.failure_reason is None and after.started_at is None
    assert [e.to_status for e in list_managed_job_events(db, job.id)] == [S.PENDING]


def test_a_terminal_managed_job_cannot_move_again(db: Database) -> None:
    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    for status in (S.STARTING, S.RUNNING, S.SUCCEEDED):
        assert set_managed_job_status(db, job.id, status)
    assert set_managed_job_status(db, job.id, S.SUCCEEDED)  # staying is not a move
    with pytest.raises(IllegalTransition):
        set_managed_job_status(db, job.id, S.RECOVERING)
    # A compare-and-set that does not match returns False before the table is consulted.
    assert not set_managed_job_status(db, job.id, S.RECOVERING, expected=S.RUNNING)
    assert require_managed_job(db, job.id).status is S.SUCCEEDED


def test_an_illegal_cluster_move_is_refused(db: Database) -> None:
    upsert_cluster(db, "c", provider="local", handle={}, status=C.STOPPED)
    with pytest.raises(IllegalTransition, match="from STOPPED to DEGRADED"):
        set_cluster_status(db, "c", C.DEGRADED, message="refresh")
    with pytest.raises(IllegalTransition):
        upsert_cluster(db, "c", provider="local", handle={"v": 2}, status=C.DEGRADED)
    rec = require_cluster(db, "c")
    assert rec.status is C.STOPPED and rec.handle == {}  # the upsert was rolled back whole
    with pytest.raises(IllegalTransition, match=r"from \(none\) to DEGRADED"):
        upsert_cluster(db, "new", provider="local", handle={}, status=C.DEGRADED)
    assert [e.kind for e in list_events(db, "new")] == []


def test_an_ended_dag_run_is_final(db: Database) -> None:
    run, _ = add_dag_run(db, "r", {})
    assert set_dag_run_status(db, run.id, DagRunStatus.RUNNING)
    assert set_dag_run_status(db, run.id, DagRunStatus.FAILED, reason="task b failed")
    with pytest.raises(IllegalTransition):
        set_dag_run_status(db, run.id, DagRunStatus.SUCCEEDED)


# -- recording ---------------------------------------------------------------------------------


def test_every_transition_is_recorded_with_its_time_and_reason(db: Database) -> None:
    before = time.time()
    upsert_cluster(db, "c", provider="local", handle={}, message="provisioning")
    set_cluster_status(db, "c", C.UP, message="runtime up")
    set_cluster_status(db, "c", C.UP, message="again")  # no change: not recorded
    delete_cluster(db, "c", message="torn down by user")
    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    set_managed_job_status(db, job.id, S.STARTING, reason="launching")
    run, [task] = add_dag_run(db, "r", {}, jobs=[NewManagedJob(name="t", spec={})])
    set_dag_run_status(db, run.id, DagRunStatus.RUNNING, reason="first task started")

    def seen(kind: EntityKind, entity: object) -> list[tuple[Any, ...]]:
        got = list_transitions(db, kind, entity)
        assert all(before <= t.time <= time.time() for t in got)
        assert [t.time for t in got] == sorted(t.time for t in got)
        return [(t.from_status, t.to_status, t.reason) for t in got]

    assert seen(EntityKind.CLUSTER, "c") == [
        (None, "INIT", "provisioning"),
        ("INIT", "UP", "runtime up"),
        ("UP", None, "torn down by user"),
    ]
    assert seen(EntityKind.MANAGED_JOB, job.id) == [
        (None, "PENDING", "submitted"),
        ("PENDING", "STARTING", "launching"),
    ]
    assert seen(EntityKind.MANAGED_JOB, task.id) == [(None, "PENDING", "submitted")]
    assert seen(EntityKind.DAG_RUN, run.id) == [
        (None, "PENDING", "submitted"),
        ("PENDING", "RUNNING", "first task started"),
    ]
    # The cluster's event log shows the same transitions, after the cluster is gone.
    events = [(e.kind, e.from_status, e.to_status, e.message) for e in list_events(db, "c")]
    assert events == [
        ("created", None, C.INIT, "provisioning"),
        ("status", C.INIT, C.UP, "runtime up"),
        ("deleted", C.UP, None, "torn down by user"),
    ]
    assert len(list_transitions(db, EntityKind.MANAGED_JOB, limit=1)) == 1


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    engine = db.engine(write=True).engine
    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def test_recording_is_one_insert_next_to_the_update(db: Database) -> None:
    upsert_cluster(db, "c", provider="local", handle={})
    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    with _statements(db) as seen:
        set_cluster_status(db, "c", C.UP)
        set_managed_job_status(db, job.id, S.STARTING)
    assert seen.count("INSERT") == 2 and seen.count("UPDATE") == 2, seen


# -- the migration from 0001 -------------------------------------------------------------------


def test_upgrading_from_0001_moves_the_old_events(db_url: str) -> None:
    engine = sa.create_engine(db_url, poolclass=NullPool)
    with engine.begin() as conn:
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.exec_driver_sql("INSERT INTO meta (key, value) VALUES ('schema_revision', '0001')")
        conn.exec_driver_sql(
            "INSERT INTO managed_jobs (id, name, task_index, status, spec, recovery_count, "
            "restarts_on_errors, submitted_at, priority) "
            "VALUES (7, 'j', 0, 'STARTING', '{}', 0, 0, 1.0, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO managed_job_events (job_id, time, from_status, to_status, reason) "
            "VALUES (7, 1.0, NULL, 'PENDING', 'submitted'), (7, 2.0, 'PENDING', 'STARTING', NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO cluster_events (cluster_name, time, kind, from_status, to_status, "
            "message) VALUES ('c', 1.0, 'created', NULL, 'INIT', 'provisioning'), "
            "('c', 2.0, 'autostop', NULL, NULL, 'idle'), "
            "('c', 3.0, 'deleted', 'INIT', NULL, 'down')"
        )
    engine.dispose()
    dbmod.clear_cache()
    db = Database.open(db_url)
    try:
        assert db.schema_revision() == dbmod.SCHEMA_REVISION
        assert [(e.to_status, e.reason) for e in list_managed_job_events(db, 7)] == [
            (S.PENDING, "submitted"),
            (S.STARTING, None),
        ]
        assert [(e.kind, e.message) for e in list_events(db, "c")] == [
            ("created", "provisioning"),
            ("autostop", "idle"),
            ("deleted", "down"),
        ]
        with db.engine().connect() as conn:
            assert not sa.inspect(conn).has_table("managed_job_events")
    finally:
        db.close()
