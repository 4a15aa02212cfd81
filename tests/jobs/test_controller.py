"""The managed-jobs controller against the IN-MEMORY simulated backend."""

from __future__ import annotations

import asyncio
from typing import Any

from styx.jobs.backend import InMemoryBackend, SimScript
from styx.jobs.controller import Controller, cluster_name, run_until
from styx.jobs.submit import request_cancel, submit
from styx.spec.dag import Dag
from styx.state import managed_jobs as repo
from styx.state.db import Database
from styx.state.records import DagRunStatus, ManagedJobStatus, TerminationReason

S = ManagedJobStatus
R = TerminationReason


def task_yaml(name: str, recovery: Any = None, depends_on: list[str] | None = None) -> str:
    lines = [f"name: {name}", "run: echo hi"]
    if recovery is not None:
        lines.append(f"resources: {{job_recovery: {recovery}}}")
    if depends_on is not None:
        lines.append(f"depends_on: [{', '.join(depends_on)}]")
    return "\n".join(lines) + "\n"


def queue(db: Database, yaml: str) -> tuple[int | None, list[int]]:
    return submit(db, Dag.from_yaml_str(yaml))


def all_ended(db: Database, ids: list[int]) -> bool:
    return all(repo.require_managed_job(db, i).status.is_terminal for i in ids)


def drive(db: Database, backend: InMemoryBackend, ids: list[int], timeout: float = 20) -> None:
    """Run a controller until the jobs ``ids`` and every DAG run have ended (a run's status is
    written just after its last task's)."""
    controller = Controller(db, backend, poll_interval=0.005, sweep_interval=0.02)
    unfinished = [DagRunStatus.PENDING, DagRunStatus.RUNNING]

    def done() -> bool:
        return all_ended(db, ids) and not repo.list_dag_runs(db, statuses=unfinished)

    asyncio.run(run_until(controller, done, timeout))


def statuses(db: Database, job_id: int) -> list[S]:
    return [e.to_status for e in repo.list_managed_job_events(db, job_id)]


def test_preempted_job_recovers_and_succeeds(db: Database) -> None:
    backend = InMemoryBackend(scripts={"train": SimScript(duration=0.1, preemptions=1)})
    _, [job] = queue(db, task_yaml("train"))
    drive(db, backend, [job])
    assert statuses(db, job) == [
        S.PENDING, S.STARTING, S.RUNNING, S.RECOVERING, S.RUNNING, S.SUCCEEDED,
    ]  # fmt: skip
    record = repo.require_managed_job(db, job)
    assert record.recovery_count == 1 and record.ended_at is not None
    assert backend.clusters() == set()


def test_ten_preemptions_in_a_row_still_succeed(db: Database) -> None:
    backend = InMemoryBackend(scripts={"train": SimScript(duration=0.04, preemptions=10)})
    _, [job] = queue(db, task_yaml("train"))
    drive(db, backend, [job])
    record = repo.require_managed_job(db, job)
    assert record.status == S.SUCCEEDED and record.recovery_count == 10
    assert statuses(db, job).count(S.RECOVERING) == 10
    assert backend.launches == 11 and backend.clusters() == set()


def test_external_preemption(db: Database) -> None:
    backend = InMemoryBackend(scripts={"train": SimScript(duration=0.3)})
    _, [job] = queue(db, task_yaml("train"))

    async def scenario() -> None:
        controller = Controller(db, backend, poll_interval=0.005, sweep_interval=0.02)
        task = asyncio.create_task(controller.run())
        while repo.require_managed_job(db, job).status != S.RUNNING:
            await asyncio.sleep(0.005)
        backend.preempt(cluster_name(job))
        while not all_ended(db, [job]):
            await asyncio.sleep(0.01)
        controller.stop()
        await task

    asyncio.run(scenario())
    assert repo.require_managed_job(db, job).status == S.SUCCEEDED
    assert S.RECOVERING in statuses(db, job)


def test_recovery_none_fails_on_preemption(db: Database) -> None:
    backend = InMemoryBackend(scripts={"train": SimScript(duration=0.1, preemptions=1)})
    _, [job] = queue(db, task_yaml("train", "NONE"))
    drive(db, backend, [job])
    record = repo.require_managed_job(db, job)
    assert statuses(db, job) == [S.PENDING, S.STARTING, S.RUNNING, S.FAILED]
    assert "job_recovery is NONE" in (record.failure_reason or "")
    assert record.termination_reason is R.RECOVERY_DISABLED
    assert backend.launches == 1 and backend.clusters() == set()


def test_max_restarts_on_errors_then_failed(db: Database) -> None:
    backend = InMemoryBackend(scripts={"t": SimScript(duration=0.02, exit_codes=[1, 1, 1, 1])})
    _, [job] = queue(db, task_yaml("t", "{max_restarts_on_errors: 2}"))
    drive(db, backend, [job])
    record = repo.require_managed_job(db, job)
    assert record.status == S.FAILED and record.restarts_on_errors == 2
    assert backend.launches == 3
    assert statuses(db, job).count(S.RECOVERING) == 2
    assert "exited with 1" in (record.failure_reason or "")
    assert record.termination_reason is R.MAX_RESTARTS_REACHED


def test_no_restarts_by_default(db: Database) -> None:
    backend = InMemoryBackend(scripts={"t": SimScript(duration=0.02, exit_codes=[3])})
    _, [job] = queue(db, task_yaml("t"))
    drive(db, backend, [job])
    record = repo.require_managed_job(db, job)
    assert record.status == S.FAILED and backend.launches == 1
    assert record.termination_reason is R.USER_CODE_FAILED


def test_recover_on_exit_codes_does_not_spend_restarts(db: Database) -> None:
    backend = InMemoryBackend(scripts={"t": SimScript(duration=0.02, exit_codes=[29, 29, 29])})
    _, [job] = queue(db, task_yaml("t", "{recover_on_exit_codes: [29]}"))
    drive(db, backend, [job])
    record = repo.require_managed_job(db, job)
    assert record.status == S.SUCCEEDED and record.restarts_on_errors == 0
    assert backend.launches == 4 and record.termination_reason is R.SUCCEEDED
    assert record.failure_reason is None


def test_eager_next_region_moves_on(db: Database) -> None:
    backend = InMemoryBackend(scripts={"t": SimScript(duration=0.04, preemptions=2)})
    _, [job] = queue(db, task_yaml("t", "EAGER_NEXT_REGION"))
    drive(db, backend, [job])
    regions = [r for _, r in backend.launch_regions]
    assert regions == ["sim-1", "sim-2", "sim-1"]
    failover = InMemoryBackend(scripts={"u": SimScript(duration=0.04, preemptions=2)})
    _, [job2] = queue(db, task_yaml("u", "FAILOVER"))
    drive(db, failover, [job2])
    assert [r for _, r in failover.launch_regions] == ["sim-1"] * 3


def test_setup_failure(db: Database) -> None:
    backend = InMemoryBackend(scripts={"t": SimScript(setup_fails=True)})
    _, [job] = queue(db, task_yaml("t"))
    drive(db, backend, [job])
    record = repo.require_managed_job(db, job)
    assert record.status == S.FAILED_SETUP and record.termination_reason is R.SETUP_FAILED
    assert backend.clusters() == set()


def test_transient_check_errors_do_not_recover(db: Database) -> None:
    backend = InMemoryBackend(scripts={"t": SimScript(duration=0.3)})
    _, [job] = queue(db, task_yaml("t"))

    async def scenario() -> None:
        controller = Controller(
            db, backend, poll_interval=0.005, sweep_interval=0.02, check_failures=3
        )
        task = asyncio.create_task(controller.run())
        while repo.require_managed_job(db, job).status != S.RUNNING:
            await asyncio.sleep(0.002)
        for _ in range(5):  # bursts of 2 failed checks, each followed by a good one
            backend.fail_checks(cluster_name(job), 2)
            await asyncio.sleep(0.03)
        while not all_ended(db, [job]):
            await asyncio.sleep(0.01)
        controller.stop()
        await task

    asyncio.run(scenario())
    record = repo.require_managed_job(db, job)
    assert record.status == S.SUCCEEDED and record.recovery_count == 0
    assert backend.launches == 1


def test_persistent_check_errors_do_recover(db: Database) -> None:
    backend = InMemoryBackend(scripts={"t": SimScript(duration=0.2)})
    _, [job] = queue(db, task_yaml("t"))

    async def scenario() -> None:
        controller = Controller(db, backend, poll_interval=0.005, sweep_interval=0.02)
        task = asyncio.create_task(controller.run())
        while repo.require_managed_job(db, job).status != S.RUNNING:
            await asyncio.sleep(0.002)
        backend.fail_checks(cluster_name(job), 3)
        while not all_ended(db, [job]):
            await asyncio.sleep(0.01)
        controller.stop()
        await task

    asyncio.run(scenario())
    assert repo.require_managed_job(db, job).recovery_count == 1


def test_controller_restart_resumes_without_duplicates_or_leaks(db: Database) -> None:
    backend = InMemoryBackend(default=SimScript(duration=0.4))
    ids = [queue(db, task_yaml(f"j{i}"))[1][0] for i in range(20)]

    async def first_life() -> None:
        controller = Controller(db, backend, poll_interval=0.005, sweep_interval=0.02)
        task = asyncio.create_task(controller.run())
        while sum(repo.require_managed_job(db, i).status == S.RUNNING for i in ids) < 10:
            await asyncio.sleep(0.005)
        controller.stop()  # as if killed: no job is touched on the way out
        await task

    asyncio.run(first_life())
    at_stop = {i: repo.require_managed_job(db, i).status for i in ids}
    running = [i for i in ids if at_stop[i] == S.RUNNING]
    unstarted = [i for i in ids if at_stop[i] not in (S.RUNNING, S.SUCCEEDED)]
    # A RUNNING job always has its cluster (an end is recorded before the teardown).
    assert running and {cluster_name(i) for i in running} <= backend.clusters()
    launched_before = backend.launches
    drive(db, backend, ids)
    for i in ids:
        record = repo.require_managed_job(db, i)
        assert record.status == S.SUCCEEDED, record
        assert statuses(db, i).count(S.SUCCEEDED) == 1
    # Jobs RUNNING at the restart were watched, not relaunched.
    assert backend.launches - launched_before == len(unstarted)
    assert backend.clusters() == set()  # and the clusters of jobs that ended are reaped


def test_cancel(db: Database) -> None:
    backend = InMemoryBackend(default=SimScript(duration=5))
    _, [job] = queue(db, task_yaml("t"))

    async def scenario() -> None:
        controller = Controller(db, backend, poll_interval=0.005, sweep_interval=0.02)
        task = asyncio.create_task(controller.run())
        while repo.require_managed_job(db, job).status != S.RUNNING:
            await asyncio.sleep(0.005)
        assert request_cancel(db, [job]) == [job]
        while not all_ended(db, [job]):
            await asyncio.sleep(0.01)
        controller.stop()
        await task

    asyncio.run(scenario())
    assert statuses(db, job)[-2:] == [S.CANCELLING, S.CANCELLED]
    assert backend.clusters() == set()


DIAMOND = """\
name: diamond
{header}
---
name: A
run: a
---
name: B
run: b
depends_on: [A]
---
name: C
run: c
depends_on: [A]
---
name: D
run: d
depends_on: [B, C]
"""


def _events(db: Database, job_id: int) -> dict[S, float]:
    return {e.to_status: e.time for e in repo.list_managed_job_events(db, job_id)}


def test_diamond_runs_b_and_c_together_then_d(db: Database) -> None:
    backend = InMemoryBackend(default=SimScript(duration=0.15))
    run_id, ids = queue(db, DIAMOND.format(header=""))
    drive(db, backend, ids)
    a, b, c, d = (_events(db, i) for i in ids)
    assert all(e.get(S.SUCCEEDED) for e in (a, b, c, d))
    assert b[S.STARTING] >= a[S.SUCCEEDED] and c[S.STARTING] >= a[S.SUCCEEDED]
    # B and C overlap: each started running before the other ended.
    assert b[S.RUNNING] < c[S.SUCCEEDED] and c[S.RUNNING] < b[S.SUCCEEDED]
    assert d[S.STARTING] >= max(b[S.SUCCEEDED], c[S.SUCCEEDED])
    assert run_id is not None
    run = repo.get_dag_run(db, run_id)
    assert run is not None and run.status == DagRunStatus.SUCCEEDED


def test_diamond_b_fails_d_cancelled_c_finishes(db: Database) -> None:
    backend = InMemoryBackend(
        default=SimScript(duration=0.1),
        scripts={"B": SimScript(duration=0.02, exit_codes=[1]), "C": SimScript(duration=0.3)},
    )
    run_id, ids = queue(db, DIAMOND.format(header=""))
    drive(db, backend, ids)
    a, b, c, d = (repo.require_managed_job(db, i) for i in ids)
    assert (a.status, b.status, c.status, d.status) == (
        S.SUCCEEDED,
        S.FAILED,
        S.SUCCEEDED,
        S.CANCELLED,
    )
    assert d.started_at is None
    assert (b.termination_reason, d.termination_reason) == (R.USER_CODE_FAILED, R.DEPENDENCY_ENDED)
    # D was cancelled while C was still running.
    assert _events(db, d.id)[S.CANCELLED] < _events(db, c.id)[S.SUCCEEDED]
    assert run_id is not None
    run = repo.get_dag_run(db, run_id)
    assert run is not None and run.status == DagRunStatus.FAILED


def test_a_run_whose_tasks_all_ended_unrecorded_is_ended_on_resume(db: Database) -> None:
    # A controller that died between the last task's status and its run's left the run RUNNING.
    run_id, ids = queue(db, DIAMOND.format(header=""))
    assert run_id is not None
    repo.set_dag_run_status(db, run_id, DagRunStatus.RUNNING)
    for job_id, final in zip(ids, [S.SUCCEEDED, S.FAILED, S.SUCCEEDED, S.CANCELLED], strict=True):
        path = [S.STARTING, S.RUNNING, final] if final is S.SUCCEEDED else [final]
        for status in path:  # the way the transition table allows
            repo.set_managed_job_status(db, job_id, status, reason="ended before the crash")
    drive(db, InMemoryBackend(), ids, timeout=5)
    run = repo.get_dag_run(db, run_id)
    assert run is not None and run.status == DagRunStatus.FAILED and run.ended_at is not None


def test_loop_lag_samples_are_bounded() -> None:
    from styx.jobs.controller import LAG_SAMPLES

    controller = Controller.__new__(Controller)
    Controller.__init__(controller, None, InMemoryBackend())  # type: ignore[arg-type]
    for i in range(LAG_SAMPLES * 3):
        controller.loop_lag.append(float(i))
    assert len(controller.loop_lag) == LAG_SAMPLES
    assert controller.loop_lag[-1] == LAG_SAMPLES * 3 - 1


def test_stop_all_cancels_running_branch(db: Database) -> None:
    backend = InMemoryBackend(
        default=SimScript(duration=0.05),
        scripts={"B": SimScript(duration=0.02, exit_codes=[1]), "C": SimScript(duration=5)},
    )
    _, ids = queue(db, DIAMOND.format(header="on_failure: stop_all"))
    drive(db, backend, ids)
    statuses_ = [repo.require_managed_job(db, i).status for i in ids]
    assert statuses_ == [S.SUCCEEDED, S.FAILED, S.CANCELLED, S.CANCELLED]
    assert backend.clusters() == set()


def test_pipeline_without_depends_on_runs_serially(db: Database) -> None:
    backend = InMemoryBackend(default=SimScript(duration=0.03))
    yaml = "name: p\n---\nname: one\nrun: x\n---\nname: two\nrun: y\n---\nname: three\nrun: z\n"
    _, ids = queue(db, yaml)
    drive(db, backend, ids)
    events = [_events(db, i) for i in ids]
    assert all(e[S.SUCCEEDED] for e in events)
    assert events[1][S.STARTING] >= events[0][S.SUCCEEDED]
    assert events[2][S.STARTING] >= events[1][S.SUCCEEDED]


def test_an_unparsable_job_recovery_fails_the_job_without_launching(db: Database) -> None:
    _, [job] = queue(db, task_yaml("t"))
    spec = repo.require_managed_job(db, job).spec
    spec["resources"] = {"job_recovery": "SOMETIMES"}  # as if another Styx had written it

    def edit(s: Any) -> None:
        from styx.state.models import ManagedJob

        s.get(ManagedJob, job).spec = spec

    db.write(edit)
    backend = InMemoryBackend()
    drive(db, backend, [job])
    record = repo.require_managed_job(db, job)
    assert record.status == S.FAILED and record.termination_reason is R.INVALID_SPEC
    assert "resources.job_recovery" in (record.failure_reason or "")
    assert backend.launches == 0
