"""``ClusterBackend`` against stand-ins for the user operations (no machines): a status check
that meets a typed infra error is transient, anything else is a bug in Styx that fails the
managed job (CONTROLLER_ERROR) instead of passing for a preemption and relaunching."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from styx.agent.protocol import JobRecord, JobStatus
from styx.errors import AgentError, AuthFailed, HostUnreachable, StateError
from styx.jobs.backend import ClusterBackend, Placement, TransientCheckError
from styx.jobs.controller import Controller, run_until
from styx.jobs.submit import submit
from styx.ops import cluster_ops, queries
from styx.ops import launch as launch_ops
from styx.ops.launch import LaunchResult
from styx.spec.dag import Dag
from styx.state import managed_jobs as repo
from styx.state.db import Database
from styx.state.records import ClusterRecord, ClusterStatus, TerminationReason

PLACEMENT = Placement("local/local", 1)


def _record(name: str, status: ClusterStatus = ClusterStatus.UP) -> ClusterRecord:
    return ClusterRecord(
        name=name, cluster_id="x", status=status, provider="local", handle={},
        launched_resources={"infra": "local"}, num_nodes=1, created_at=0.0, launched_at=0.0,
        status_updated_at=0.0, last_use=None, autostop=None, user_name=None, config_hash=None,
        workdir=None, metadata={},
    )  # fmt: skip


class _FakeOps:
    """Stand-ins for the operations ClusterBackend calls; ``queue_error`` is raised by queue."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.launches = 0
        self.downs = 0
        self.queue_error: BaseException | None = None
        self.status_error: BaseException | None = None
        monkeypatch.setattr(launch_ops, "launch", self.launch)
        monkeypatch.setattr(queries, "status", self.status)
        monkeypatch.setattr(queries, "queue", self.queue)
        monkeypatch.setattr(cluster_ops, "teardown", self.teardown)

    def launch(self, task: Any, cluster: str, **kw: Any) -> LaunchResult:
        self.launches += 1
        return LaunchResult(cluster, 1)

    def status(self, names: Any = None, *, refresh: bool = False) -> list[ClusterRecord]:
        if self.status_error is not None:
            raise self.status_error
        return [_record(n) for n in names or []]

    def queue(self, cluster: str, *, all_jobs: bool = False) -> list[JobRecord]:
        if self.queue_error is not None:
            raise self.queue_error
        return [JobRecord(job_id=1, name="t", status=JobStatus.RUNNING, submitted_at=0.0)]

    def teardown(self, cluster: str, pipe: Any, *, keep_storage: bool = False) -> None:
        self.downs += 1


@pytest.mark.parametrize(
    "error",
    [
        HostUnreachable("no route to host"),
        AgentError("the agent does not answer", code="agent-unreachable"),
        AuthFailed("credentials expired"),
        StateError("database is locked"),
    ],
)
def test_typed_infra_errors_are_transient(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    ops = _FakeOps(monkeypatch)
    ops.queue_error = error
    with pytest.raises(TransientCheckError) as caught:
        ClusterBackend()._probe("c", PLACEMENT)
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("where", ["status", "queue"])
def test_a_non_styx_exception_is_a_bug_not_a_transient_failure(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    ops = _FakeOps(monkeypatch)
    bug = KeyError("launched_resources")
    setattr(ops, f"{where}_error", bug)
    with pytest.raises(KeyError) as caught:
        ClusterBackend()._probe("c", PLACEMENT)
    assert caught.value is bug


def test_a_running_job_and_an_ended_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeOps(monkeypatch)
    assert ClusterBackend()._probe("c", PLACEMENT).ended is None
    monkeypatch.setattr(
        queries,
        "queue",
        lambda c, all_jobs=False: [
            JobRecord(job_id=1, name="t", status=JobStatus.FAILED_DRIVER, submitted_at=0.0)
        ],
    )
    assert ClusterBackend()._probe("c", PLACEMENT).ended is TerminationReason.PREEMPTED


def _drive(db: Database, ops: _FakeOps, stop: Any) -> int:
    _, [job] = submit(db, Dag.from_yaml_str("name: t\nrun: echo hi\n"))
    controller = Controller(db, ClusterBackend(), poll_interval=0.01, sweep_interval=0.02)
    asyncio.run(run_until(controller, lambda: stop(repo.require_managed_job(db, job)), 20))
    return job


def test_a_bug_in_a_check_fails_the_job_as_a_controller_error_without_relaunching(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ops = _FakeOps(monkeypatch)
    ops.queue_error = TypeError("'NoneType' object is not subscriptable")
    with caplog.at_level(logging.ERROR, logger="styx.jobs.controller"):
        job = _drive(db, ops, lambda r: r.status.is_terminal)
    record = repo.require_managed_job(db, job)
    assert record.status.value == "FAILED_CONTROLLER"
    assert record.termination_reason is TerminationReason.CONTROLLER_ERROR
    assert "bug in Styx" in (record.failure_reason or "")
    assert "TypeError" in (record.failure_reason or "")
    assert record.recovery_count == 0 and ops.launches == 1  # not read as a preemption
    assert ops.downs >= 1  # its cluster does not leak
    assert any(r.exc_info and r.exc_info[0] is TypeError for r in caplog.records)


def test_persistent_typed_check_errors_recover_the_job(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = _FakeOps(monkeypatch)
    ops.queue_error = HostUnreachable("no route to host")
    job = _drive(db, ops, lambda r: r.recovery_count >= 1 and r.status.value == "RUNNING")
    assert ops.launches == 2  # three failed checks in a row: recovered on a new cluster
    assert repo.require_managed_job(db, job).termination_reason is None
