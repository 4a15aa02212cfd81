"""jobs.db: the transition table enforced, secrets kept out, queue paging."""

from __future__ import annotations

from pathlib import Path

import pytest

from styx.agent.db import JobStore
from styx.agent.protocol import JobSpec, JobStatus
from styx.errors import IllegalTransition, JobNotFound


def test_transitions_stamp_times_and_terminal_never_changes(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    rec = store.add(JobSpec(name="a", run="x"), tmp_path / "logs")
    assert rec.status is JobStatus.INIT and rec.log_dir == str(tmp_path / "logs" / "1")
    store.transition(rec.job_id, JobStatus.PENDING)
    running = store.transition(rec.job_id, JobStatus.RUNNING, nodes=["1.2.3.4"])
    assert running.started_at and running.nodes == ["1.2.3.4"]
    done = store.transition(rec.job_id, JobStatus.FAILED, exit_code=3, failure_reason="r")
    assert done.ended_at and done.exit_code == 3 and done.failure_reason == "r"
    for status in JobStatus:
        with pytest.raises(IllegalTransition):
            store.transition(rec.job_id, status)
    kinds = [(e["data"].get("from"), e["data"]["to"]) for e in store.events("transition")]
    assert kinds == [
        (None, "INIT"),
        ("INIT", "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "FAILED"),
    ]
    with pytest.raises(JobNotFound):
        store.get(42)


def test_secrets_never_stored(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    spec = JobSpec(run="x", envs={"A": "plain", "TOKEN": "hunter2"}, secret_env_names=["TOKEN"])
    job = store.add(spec, tmp_path)
    assert store.spec(job.job_id).envs == {"A": "plain"}
    assert store.spec(job.job_id).secret_env_names == ["TOKEN"]
    store.close()
    assert b"hunter2" not in (tmp_path / "jobs.db").read_bytes()
    wal = tmp_path / "jobs.db-wal"
    assert not wal.exists() or b"hunter2" not in wal.read_bytes()


def test_queue_pages_recent_but_keeps_unfinished(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    ids = [store.add(JobSpec(run="x"), tmp_path).job_id for _ in range(30)]
    for i in ids[1:]:
        store.transition(i, JobStatus.CANCELLED)
    store.transition(ids[0], JobStatus.PENDING)  # old but unfinished
    recent = [r.job_id for r in store.queue(limit=5)]
    assert recent == [30, 29, 28, 27, 26, 1]
    assert len(store.queue(all_jobs=True)) == 30
    assert [r.job_id for r in store.queue(skip_finished=True)] == [1]
    assert store.counts() == {"CANCELLED": 29, "PENDING": 1}


class _FullDisk:
    """A jobs.db connection whose writes fail while ``full`` is set, as on a full disk."""

    def __init__(self, conn: object) -> None:
        self.conn, self.full = conn, False

    def execute(self, sql: str, *args: object) -> object:
        import sqlite3

        if self.full and sql.lstrip().split()[0].upper() in ("INSERT", "UPDATE"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)  # type: ignore[attr-defined]

    def __enter__(self) -> object:
        return self.conn.__enter__()  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> object:
        return self.conn.__exit__(*exc)  # type: ignore[attr-defined]


def test_a_failed_write_is_kept_in_memory_shown_and_written_later(tmp_path: Path) -> None:
    from styx.errors import AgentError

    store = JobStore(tmp_path / "jobs.db")
    disk = _FullDisk(store._db)
    store._db = disk  # type: ignore[assignment]
    job = store.add(JobSpec(run="x"), tmp_path / "logs").job_id
    store.transition(job, JobStatus.PENDING)
    store.transition(job, JobStatus.RUNNING)
    disk.full = True
    done = store.transition(job, JobStatus.FAILED, exit_code=1, failure_reason="log write failed")
    assert done.status is JobStatus.FAILED and done.ended_at  # never left RUNNING
    assert store.write_error is not None and "disk is full" in store.write_error
    assert store.get(job).status is JobStatus.FAILED
    assert [r.status for r in store.queue()] == [JobStatus.FAILED]
    assert store.queue(skip_finished=True) == []
    assert store.with_status([JobStatus.RUNNING]) == []
    with pytest.raises(AgentError) as info:
        store.add(JobSpec(run="y"), tmp_path / "logs")
    assert info.value.code == "agent-storage-failed"
    assert not store.flush()  # still full
    disk.full = False
    assert store.flush() and store.write_error is None
    fresh = JobStore(tmp_path / "jobs.db")  # what a restarted agent reads
    rec = fresh.get(job)
    assert rec.status is JobStatus.FAILED and rec.failure_reason == "log write failed"
