"""Managed jobs, their status transitions and events, and DAG runs."""

from __future__ import annotations

import pytest

from styx.errors import JobNotFound, NotFoundError
from styx.state import (
    DagRunStatus,
    ManagedJobStatus,
    NewManagedJob,
    add_dag_run,
    add_managed_job,
    get_dag_run,
    get_managed_job,
    list_dag_runs,
    list_managed_job_events,
    list_managed_jobs,
    require_managed_job,
    set_dag_run_status,
    set_managed_job_status,
    update_managed_job,
)
from styx.state.db import Database

from .helpers import run_in_processes

S = ManagedJobStatus
SPEC = {"name": "train", "run": "python train.py", "envs": {"TOKEN": "<redacted>"}}


def test_add_and_read_back(db: Database) -> None:
    job = add_managed_job(
        db,
        NewManagedJob(name="train", spec=SPEC, resources={"gpus": 8}, priority=5, user_name="al"),
    )
    assert job.id >= 1 and job.status is S.PENDING and job.spec == SPEC
    assert (job.recovery_count, job.restarts_on_errors, job.dag_run_id) == (0, 0, None)
    assert get_managed_job(db, job.id) == job == require_managed_job(db, job.id)
    assert get_managed_job(db, job.id + 100) is None
    with pytest.raises(JobNotFound):
        require_managed_job(db, job.id + 100)
    [event] = list_managed_job_events(db, job.id)
    assert (event.from_status, event.to_status) == (None, S.PENDING)


def test_ids_increase(db: Database) -> None:
    ids = [add_managed_job(db, NewManagedJob(name=f"j{i}", spec={})).id for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_transitions_stamp_and_count(db: Database) -> None:
    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    assert set_managed_job_status(db, job.id, S.STARTING, expected=S.PENDING)
    assert not set_managed_job_status(db, job.id, S.STARTING, expected=S.PENDING)
    assert set_managed_job_status(db, job.id, S.RUNNING)
    first_start = require_managed_job(db, job.id).started_at
    assert first_start is not None
    assert set_managed_job_status(db, job.id, S.RECOVERING, reason="spot preempted")
    assert set_managed_job_status(db, job.id, S.RUNNING, expected=[S.RECOVERING, S.STARTING])
    assert set_managed_job_status(db, job.id, S.RUNNING)  # same status: no event
    assert set_managed_job_status(
        db, job.id, S.FAILED, reason="exit 1", failure_reason="user code exited with 1"
    )
    done = require_managed_job(db, job.id)
    assert done.started_at == first_start and done.recovery_count == 1
    assert done.ended_at is not None and done.failure_reason == "user code exited with 1"
    events = [(e.from_status, e.to_status, e.reason) for e in list_managed_job_events(db, job.id)]
    assert events == [
        (None, S.PENDING, "submitted"),
        (S.PENDING, S.STARTING, None),
        (S.STARTING, S.RUNNING, None),
        (S.RUNNING, S.RECOVERING, "spot preempted"),
        (S.RECOVERING, S.RUNNING, None),
        (S.RUNNING, S.FAILED, "exit 1"),
    ]
    with pytest.raises(JobNotFound):
        set_managed_job_status(db, 10_000, S.RUNNING)


def _claim(url: str, job_id: int) -> bool:
    return set_managed_job_status(Database(url), job_id, S.STARTING, expected=S.PENDING)


def test_only_one_controller_claims_a_job(db: Database) -> None:
    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    results = run_in_processes(_claim, [(db.url, job.id)] * 8)
    assert sorted(results) == [False] * 7 + [True]
    assert len(list_managed_job_events(db, job.id)) == 2


def test_update_fields(db: Database) -> None:
    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    up = update_managed_job(
        db, job.id, cluster_name="styx-jobs-1", controller_pid=4242, restarts_on_errors=2
    )
    assert (up.cluster_name, up.controller_pid, up.restarts_on_errors) == ("styx-jobs-1", 4242, 2)
    assert up.status is S.PENDING
    cleared = update_managed_job(db, job.id, cluster_name=None)
    assert cleared.cluster_name is None and cleared.controller_pid == 4242
    with pytest.raises(JobNotFound):
        update_managed_job(db, 10_000, priority=1)


def test_list_filters_and_priority(db: Database) -> None:
    a = add_managed_job(db, NewManagedJob(name="a", spec={}, priority=1, user_name="u1"))
    b = add_managed_job(db, NewManagedJob(name="b", spec={}, priority=9, user_name="u2"))
    c = add_managed_job(db, NewManagedJob(name="c", spec={}, priority=5, user_name="u1"))
    set_managed_job_status(db, b.id, S.STARTING)
    set_managed_job_status(db, b.id, S.RUNNING)
    update_managed_job(db, b.id, cluster_name="x")
    assert [j.name for j in list_managed_jobs(db)] == ["a", "b", "c"]
    pending = list_managed_jobs(db, statuses=[S.PENDING], by_priority=True)
    assert [j.id for j in pending] == [c.id, a.id]
    assert [j.id for j in list_managed_jobs(db, cluster_name="x")] == [b.id]
    assert [j.id for j in list_managed_jobs(db, user_name="u1", limit=1)] == [a.id]


def test_dag_run_with_jobs(db: Database) -> None:
    tasks = [
        NewManagedJob(name="pipe", spec={"run": "prep"}, task_index=0, task_name="prep"),
        NewManagedJob(name="pipe", spec={"run": "train"}, task_index=1, task_name="train"),
    ]
    run, jobs = add_dag_run(db, "pipe", {"tasks": 2}, on_failure="continue", jobs=tasks)
    assert run.status is DagRunStatus.PENDING and run.on_failure == "continue"
    assert [j.task_name for j in jobs] == ["prep", "train"]
    assert [j.id for j in list_managed_jobs(db, dag_run_id=run.id)] == [j.id for j in jobs]
    assert get_dag_run(db, run.id) == run
    assert get_dag_run(db, run.id + 1) is None
    assert set_dag_run_status(db, run.id, DagRunStatus.RUNNING, expected=DagRunStatus.PENDING)
    assert not set_dag_run_status(db, run.id, DagRunStatus.RUNNING, expected=DagRunStatus.PENDING)
    assert set_dag_run_status(db, run.id, DagRunStatus.SUCCEEDED)
    done = get_dag_run(db, run.id)
    assert done is not None and done.status is DagRunStatus.SUCCEEDED and done.ended_at
    assert [r.id for r in list_dag_runs(db, statuses=[DagRunStatus.SUCCEEDED])] == [run.id]
    assert list_dag_runs(db, statuses=[DagRunStatus.RUNNING]) == []
    with pytest.raises(NotFoundError):
        set_dag_run_status(db, run.id + 1, DagRunStatus.FAILED)


def test_terminal_statuses() -> None:
    terminal = {s for s in S if s.is_terminal}
    assert terminal == {
        S.SUCCEEDED,
        S.FAILED,
        S.FAILED_SETUP,
        S.FAILED_NO_RESOURCE,
        S.FAILED_CONTROLLER,
        S.CANCELLED,
    }
    assert DagRunStatus.CANCELLED.is_terminal and not DagRunStatus.CANCELLING.is_terminal


def test_termination_reason_is_stored_with_the_final_status(db: Database) -> None:
    from styx.state.records import TerminationReason as R

    job = add_managed_job(db, NewManagedJob(name="j", spec={}))
    assert require_managed_job(db, job.id).termination_reason is None
    with pytest.raises(ValueError, match="ends a managed job FAILED_SETUP"):
        set_managed_job_status(db, job.id, S.FAILED, termination=R.SETUP_FAILED)
    assert set_managed_job_status(
        db, job.id, S.CANCELLED, termination=R.DEPENDENCY_ENDED, reason="a dependency failed"
    )
    assert require_managed_job(db, job.id).termination_reason is R.DEPENDENCY_ENDED


def test_the_queue_rows_are_the_same_on_both_read_paths(db: Database) -> None:
    from styx.state.job_queue import _select_queue, managed_job_queue
    from styx.state.records import DagRunRow
    from styx.state.records import TerminationReason as R

    lone = add_managed_job(db, NewManagedJob(name="lone", spec={"run": "x"}))
    set_managed_job_status(db, lone.id, S.STARTING)
    run, [a, b] = add_dag_run(
        db,
        "pipe",
        {"tasks": ["a", "b"], "edges": [[0, 1]]},
        jobs=[
            NewManagedJob(name="pipe", spec={}, task_name=n, task_index=i)
            for i, n in enumerate("ab")
        ],
    )
    set_managed_job_status(db, lone.id, S.FAILED_NO_RESOURCE, termination=R.NO_RESOURCES)
    rows, runs = managed_job_queue(db)  # the sqlite3 path on SQLite
    assert [
        (r.id, r.name, r.task_name, r.dag_run_id, r.status, r.task_index, r.termination_reason)
        for r in rows
    ] == [
        (lone.id, "lone", None, None, S.FAILED_NO_RESOURCE, 0, R.NO_RESOURCES),
        (a.id, "pipe", "a", run.id, S.PENDING, 0, None),
        (b.id, "pipe", "b", run.id, S.PENDING, 1, None),
    ]
    assert runs == {run.id: DagRunRow("pipe", "PENDING", ((0, 1),))}
    assert db.read(_select_queue) == (rows, runs)  # the SQLAlchemy path
