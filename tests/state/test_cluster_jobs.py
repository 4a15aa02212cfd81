"""The client-side history of cluster jobs, across cluster incarnations."""

from __future__ import annotations

import pytest

from styx.errors import ClusterNotFound, JobNotFound
from styx.state import (
    ClusterJobStatus,
    delete_cluster,
    get_cluster_job,
    list_cluster_jobs,
    record_cluster_job,
    update_cluster_job,
    upsert_cluster,
)
from styx.state.db import Database

RES = {"accelerators": {"H100": 8}, "cpus": "8+", "ports": [8080]}


def test_record_and_read_back(db: Database) -> None:
    cluster = upsert_cluster(db, "c", provider="local", handle={})
    job = record_cluster_job(
        db,
        "c",
        1,
        name="train",
        submitted_at=100.0,
        resources=RES,
        user_name="alice",
        log_path="~/.styx/logs/c/1.log",
    )
    assert job.cluster_id == cluster.cluster_id and job.status is ClusterJobStatus.PENDING
    assert job.resources == RES and job.submitted_at == 100.0
    assert get_cluster_job(db, "c", 1) == job
    assert get_cluster_job(db, "c", 2) is None
    assert get_cluster_job(db, "nope", 1) is None
    # Recording again overwrites (the agent's view is authoritative).
    again = record_cluster_job(db, "c", 1, name="train2", status=ClusterJobStatus.RUNNING)
    assert again.name == "train2" and again.status is ClusterJobStatus.RUNNING
    assert len(list_cluster_jobs(db, "c")) == 1


def test_record_needs_a_cluster(db: Database) -> None:
    with pytest.raises(ClusterNotFound):
        record_cluster_job(db, "nope", 1)


def test_update_stamps_start_and_end(db: Database) -> None:
    upsert_cluster(db, "c", provider="local", handle={})
    record_cluster_job(db, "c", 1)
    running = update_cluster_job(db, "c", 1, status=ClusterJobStatus.RUNNING)
    assert running.started_at is not None and running.ended_at is None
    done = update_cluster_job(db, "c", 1, status=ClusterJobStatus.FAILED, exit_code=3)
    assert done.started_at == running.started_at
    assert done.ended_at is not None and done.exit_code == 3
    explicit = update_cluster_job(db, "c", 1, ended_at=5.0, log_path=None)
    assert explicit.ended_at == 5.0 and explicit.log_path is None
    with pytest.raises(JobNotFound, match="no job 9"):
        update_cluster_job(db, "c", 9, status=ClusterJobStatus.RUNNING)
    with pytest.raises(JobNotFound):
        update_cluster_job(db, "nope", 1, status=ClusterJobStatus.RUNNING)


def test_history_survives_down_and_relaunch(db: Database) -> None:
    old = upsert_cluster(db, "c", provider="local", handle={})
    record_cluster_job(db, "c", 1, name="old-1", submitted_at=1.0)
    record_cluster_job(db, "c", 2, name="old-2", submitted_at=2.0)
    delete_cluster(db, "c")
    # Downed: the name's latest incarnation is still readable and updatable.
    assert [j.name for j in list_cluster_jobs(db, "c")] == ["old-2", "old-1"]
    update_cluster_job(db, "c", 2, status=ClusterJobStatus.CANCELLED)
    new = upsert_cluster(db, "c", provider="local", handle={})
    record_cluster_job(db, "c", 1, name="new-1", submitted_at=3.0)
    assert [j.name for j in list_cluster_jobs(db, "c")] == ["new-1"]
    assert get_cluster_job(db, "c", 1).name == "new-1"  # type: ignore[union-attr]
    assert get_cluster_job(db, "c", 1, cluster_id=old.cluster_id).name == "old-1"  # type: ignore[union-attr]
    every = list_cluster_jobs(db, "c", all_incarnations=True)
    assert [(j.name, j.cluster_id) for j in every] == [
        ("new-1", new.cluster_id),
        ("old-2", old.cluster_id),
        ("old-1", old.cluster_id),
    ]
    assert [j.name for j in list_cluster_jobs(db, "c", cluster_id=old.cluster_id)] == [
        "old-2",
        "old-1",
    ]


def test_list_filters(db: Database) -> None:
    upsert_cluster(db, "a", provider="local", handle={})
    upsert_cluster(db, "b", provider="local", handle={})
    for i in range(1, 6):
        record_cluster_job(
            db,
            "a" if i % 2 else "b",
            i,
            submitted_at=float(i),
            status=ClusterJobStatus.RUNNING if i < 3 else ClusterJobStatus.SUCCEEDED,
            user_name="alice" if i < 4 else "bob",
        )
    assert [j.job_id for j in list_cluster_jobs(db)] == [5, 4, 3, 2, 1]
    assert [j.job_id for j in list_cluster_jobs(db, "a")] == [5, 3, 1]
    running = list_cluster_jobs(db, statuses=[ClusterJobStatus.RUNNING])
    assert [j.job_id for j in running] == [2, 1]
    assert [j.job_id for j in list_cluster_jobs(db, user_name="bob")] == [5, 4]
    assert [j.job_id for j in list_cluster_jobs(db, "a", limit=2)] == [5, 3]
    assert list_cluster_jobs(db, "nope") == []


def test_terminal_statuses() -> None:
    assert ClusterJobStatus.SUCCEEDED.is_terminal and ClusterJobStatus.FAILED_DRIVER.is_terminal
    assert not ClusterJobStatus.RUNNING.is_terminal
