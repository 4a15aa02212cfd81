"""jobs.db: the transition table enforced, secrets kept out, queue paging."""

from __future__ import annotations

from pathlib import Path

import pytest

from styx.agent.db import IllegalTransition, JobStore
from styx.agent.protocol import JobSpec, JobStatus
from styx.errors import JobNotFound


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
    assert kinds == [(None, "INIT"), ("INIT", "PENDING"), ("PENDING", "RUNNING"),
                     ("RUNNING", "FAILED")]
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
