"""The managed-jobs controller: one asyncio process driving many jobs and DAG runs.

Each job is one asyncio task walking PENDING -> STARTING -> RUNNING -> (RECOVERING -> RUNNING)*
-> a terminal status; every transition is a compare-and-set in the state layer, which records
it with its time. Database calls run in a small thread pool and cluster operations run in the
backend's threads, so the event loop never blocks.

Cluster names are ``styx-mj-<job id>`` for every attempt, so after a restart the controller
knows which cluster each job may own: it resumes RUNNING jobs by probing theirs, and tears
down half-made ones before relaunching. Nothing is launched twice for one job, nothing leaks.

A status check that fails (timeout, refused) is not a preemption: only ``check_failures``
consecutive failed checks, or a check that finds the cluster gone, trigger a recovery.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from styx import paths
from styx.errors import SpecError
from styx.jobs import secrets
from styx.jobs.backend import (
    Backend,
    LaunchFailed,
    Placement,
    Probe,
    TransientCheckError,
)
from styx.jobs.dag import RunState
from styx.jobs.recovery import Recovery, after_launch, after_run
from styx.ops.cost import launching_for
from styx.spec.policies import RecoveryStrategy
from styx.state import managed_jobs as repo
from styx.state.db import Database
from styx.state.records import DagRunStatus, ManagedJobRecord, TerminationReason
from styx.state.records import ManagedJobStatus as S

T = TypeVar("T")
log = logging.getLogger(__name__)
ACTIVE = [S.PENDING, S.STARTING, S.RUNNING, S.RECOVERING, S.CANCELLING]
#: How many loop-latency samples the controller keeps (one every 50 ms).
LAG_SAMPLES = 16384


def _describe(ended: TerminationReason, exit_code: int | None) -> str:
    """A job's end in words, for its transitions and ``failure_reason``."""
    if ended is TerminationReason.USER_CODE_FAILED:
        return f"user code exited with {exit_code}"
    if ended is TerminationReason.PREEMPTED:
        return "cluster preempted or lost"
    return {
        TerminationReason.SUCCEEDED: "job succeeded",
        TerminationReason.SETUP_FAILED: "setup failed",
        TerminationReason.CANCELLED: "the job was cancelled on its cluster",
    }.get(ended, ended.value)


def cluster_name(job_id: int) -> str:
    """The one cluster name a managed job uses, on every attempt."""
    return f"styx-mj-{job_id}"


def attempt_log(job_id: int, attempt: int) -> Path:
    """Where attempt ``attempt`` (0 first, +1 per recovery) of a job keeps its output."""
    return paths.home() / "jobs" / "logs" / str(job_id) / f"attempt-{attempt}.log"


class _Cancelled(Exception):
    """The job was moved to CANCELLING by someone else."""


class Controller:
    """Drives every active managed job in ``db`` through ``backend`` until :meth:`stop`."""

    def __init__(
        self,
        db: Database,
        backend: Backend,
        *,
        poll_interval: float = 10.0,
        sweep_interval: float = 1.0,
        check_failures: int = 3,
        launch_retries: int = 3,
        max_backoff: float = 300.0,
        db_threads: int = 4,
    ) -> None:
        self.db = db
        self.backend = backend
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.check_failures = check_failures
        self.launch_retries = launch_retries
        self.max_backoff = max_backoff
        self.pid = os.getpid()
        self._pool = ThreadPoolExecutor(db_threads, thread_name_prefix="styx-jobs-db")
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._runs: dict[int, RunState] = {}
        self._stopping = asyncio.Event()
        self._finishing: set[asyncio.Future[None]] = set()
        self._cancel_requested: set[int] = set()
        self._stopped_by_dependency: set[int] = set()  # cancelled by a DAG's stop_all
        self._finished: set[int] = set()  # driven to the end here; a stale sweep must not restart
        # Scheduling-loop latency samples, seconds: the latest ones only, so a daemon that runs
        # for months keeps a fixed size (20 samples a second: about 14 minutes' worth).
        self.loop_lag: collections.deque[float] = collections.deque(maxlen=LAG_SAMPLES)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self.db, *args, **kwargs))

    # -- main loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Resume and drive jobs until :meth:`stop`; the sweep picks up new and cancelled jobs."""
        lag = asyncio.create_task(self._measure_lag())
        try:
            await self._finish_stale_runs()
            await self._reap_ended()
            while not self._stopping.is_set():
                await self.sweep()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.sweep_interval)
        finally:
            lag.cancel()
            for task in list(self._tasks.values()):
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()
            if self._finishing:  # ended jobs' teardowns under way finish before we return
                await asyncio.gather(*list(self._finishing), return_exceptions=True)
            # Let database writes already handed to threads land before returning.
            await asyncio.to_thread(self._pool.shutdown, True)

    async def _finish_stale_runs(self) -> None:
        """End DAG runs whose tasks all ended while no controller recorded it (a controller
        that died, or was stopped, between a task's last status and its run's)."""
        runs = await self._db(
            repo.list_dag_runs, statuses=[DagRunStatus.PENDING, DagRunStatus.RUNNING]
        )
        for record in runs:
            jobs = await self._db(repo.list_managed_jobs, dag_run_id=record.id)
            state = RunState.from_records(record, jobs)
            if jobs and state.done():
                await self._db(
                    repo.set_dag_run_status, record.id, state.final_status(),
                    expected=[DagRunStatus.PENDING, DagRunStatus.RUNNING],
                    reason="every task had ended while no controller ran",
                )  # fmt: skip

    async def _teardown_ended(self, name: str) -> None:
        """Tear down an ended job's cluster; a :meth:`stop` meanwhile waits for it (only a
        killed controller leaves it to the next one's :meth:`_reap_ended`)."""
        task = asyncio.ensure_future(self.backend.down(name))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        await asyncio.shield(task)

    async def _reap_ended(self) -> None:
        """Tear down the clusters of jobs that have ended (a controller that died between a
        job's end and its cluster's teardown); those of active jobs are resumed, not reaped."""
        for name in sorted(await asyncio.to_thread(self.backend.clusters)):
            suffix = name.removeprefix("styx-mj-")
            if not suffix.isdigit():
                continue
            record = await self._db(repo.get_managed_job, int(suffix))
            if record is None or record.status in ACTIVE:
                continue  # a job this database does not know is not ours to end
            log.info("%s: its job has ended; tearing the cluster down", name)
            await self.backend.down(name)

    def stop(self) -> None:
        """Ask :meth:`run` to return; jobs stay as they are and resume on the next start."""
        self._stopping.set()

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.05)
            self.loop_lag.append(loop.time() - t - 0.05)

    async def sweep(self) -> None:
        """Start tasks for active jobs not driven yet; act on cancel requests."""
        jobs = await self._db(repo.list_managed_jobs, statuses=ACTIVE)
        for job in jobs:
            if job.status == S.CANCELLING and job.id in self._tasks:
                if job.id not in self._cancel_requested:
                    self._cancel_requested.add(job.id)
                    self._tasks[job.id].cancel()
                continue
            if job.id in self._tasks or job.id in self._finished:
                continue
            if job.dag_run_id is not None:
                run = await self._run_state(job.dag_run_id)
                if job.status == S.PENDING and not run.ready(job.task_index):
                    continue
                run.started.add(job.task_index)
                if run.status == DagRunStatus.PENDING:
                    run.status = DagRunStatus.RUNNING
                    await self._db(
                        repo.set_dag_run_status, run.run_id, DagRunStatus.RUNNING,
                        expected=DagRunStatus.PENDING,
                        reason=f"{run.label(job.task_index)} started",
                    )  # fmt: skip
            self._start(job)

    def _start(self, job: ManagedJobRecord) -> None:
        task = asyncio.create_task(self._drive(job), name=f"managed-job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _: self._done(job.id))

    def _done(self, job_id: int) -> None:
        self._tasks.pop(job_id, None)
        if not self._stopping.is_set():
            self._finished.add(job_id)

    async def _run_state(self, run_id: int) -> RunState:
        run = self._runs.get(run_id)
        if run is None:
            record = await self._db(repo.get_dag_run, run_id)
            jobs = await self._db(repo.list_managed_jobs, dag_run_id=run_id)
            assert record is not None
            run = self._runs[run_id] = RunState.from_records(record, jobs)
        return run

    # -- one job --------------------------------------------------------------------------------

    async def _set(self, job_id: int, to: S, expected: S | list[S], reason: str, **kw: Any) -> None:
        ok = await self._db(
            repo.set_managed_job_status, job_id, to, expected=expected, reason=reason, **kw
        )
        if not ok:
            current = await self._db(repo.require_managed_job, job_id)
            if current.status == S.CANCELLING:
                raise _Cancelled
            raise RuntimeError(f"job {job_id}: expected {expected}, found {current.status}")

    async def _end(
        self, job_id: int, ended: TerminationReason, expected: S | list[S], message: str
    ) -> S:
        """End the job for ``ended`` (its status is the reason's); ``message`` says more."""
        failure = None if ended is TerminationReason.SUCCEEDED else message
        await self._set(
            job_id, ended.status, expected, message, failure_reason=failure, termination=ended
        )
        return ended.status

    async def _drive(self, job: ManagedJobRecord) -> None:
        try:
            final = await self._drive_inner(job)
        except asyncio.CancelledError:
            if job.id not in self._cancel_requested:
                raise  # controller shutting down: the job resumes on the next start
            final = await self._cancel(job.id)
        except _Cancelled:
            final = await self._cancel(job.id)
        except Exception as e:  # a bug in Styx must not leave the job hanging, nor relaunch it
            log.exception("managed job %s: bug in the controller; the job fails", job.id)
            await self.backend.down(cluster_name(job.id))
            ended = TerminationReason.CONTROLLER_ERROR
            await self._db(
                repo.set_managed_job_status, job.id, ended.status, expected=ACTIVE,
                reason="controller error", termination=ended,
                failure_reason=f"bug in Styx: {e!r} (the traceback is in the controller's log)",
            )  # fmt: skip
            final = ended.status
        self._cancel_requested.discard(job.id)
        secrets.forget(job.id)
        if job.dag_run_id is not None:
            await self._job_ended(job.dag_run_id, job.task_index, final)

    async def _cancel(self, job_id: int) -> S:
        record = await self._db(repo.require_managed_job, job_id)
        info = record.resources or {}
        if record.cluster_name and info.get("cluster_job_id") is not None:
            # Keep what the job printed until now (the cluster may be gone: then nothing).
            placement = Placement(info.get("region"), info.get("cluster_job_id"))
            dest = attempt_log(job_id, record.recovery_count)
            await self.backend.save_logs(record.cluster_name, placement, dest)
        await self.backend.down(cluster_name(job_id))
        ended = TerminationReason.CANCELLED
        if job_id in self._stopped_by_dependency:
            self._stopped_by_dependency.discard(job_id)
            ended = TerminationReason.DEPENDENCY_ENDED
        await self._db(
            repo.set_managed_job_status, job_id, ended.status,
            expected=[S.CANCELLING, *ACTIVE], reason="cancelled", termination=ended,
        )  # fmt: skip
        return ended.status

    async def _drive_inner(self, job: ManagedJobRecord) -> S:
        if job.status == S.CANCELLING:
            raise _Cancelled
        try:
            recovery = Recovery.from_spec(job.spec)
        except SpecError as e:  # a spec written by another Styx, or edited in the database
            return await self._end(job.id, TerminationReason.INVALID_SPEC, job.status, str(e))
        name = cluster_name(job.id)
        restarts = job.restarts_on_errors
        info = dict(job.resources or {})
        await self._db(repo.update_managed_job, job.id, controller_pid=self.pid)
        status = job.status
        placement: Placement | None = None
        if status == S.RUNNING and job.cluster_name:  # resumed: watch the cluster it had
            placement = Placement(info.get("region"), info.get("cluster_job_id"))
        elif status in (S.STARTING, S.RECOVERING):
            await self.backend.down(name, keep_storage=True)  # half-made by a previous controller
        avoid: list[str] = []
        launch_failures = 0
        attempt = job.recovery_count  # attempt k's output is saved as attempt-k.log
        while True:
            if placement is None:
                if status == S.PENDING:
                    await self._set(job.id, S.STARTING, S.PENDING, "launching")
                    status = S.STARTING
                try:
                    spec = secrets.restore(job.id, job.spec)
                    with launching_for(job.id):  # its clusters' cost counts as the job's
                        placement = await self.backend.launch(name, spec, avoid_regions=avoid)
                except LaunchFailed as e:
                    await self.backend.down(name, keep_storage=status == S.RECOVERING)
                    decision = after_launch(
                        e.reason,
                        recovering=status == S.RECOVERING,
                        failures=launch_failures,
                        retries=self.launch_retries,
                    )
                    if decision.retry:
                        launch_failures += 1
                        log.warning("job %s: launch failed (%s); retrying", job.id, e)
                        await asyncio.sleep(self._backoff(launch_failures))
                        continue
                    if e.error:  # kept for `styx jobs logs`: code, message and hint
                        info["error"] = e.error
                        await self._db(repo.update_managed_job, job.id, resources=info)
                    return await self._end(job.id, decision.reason, status, f"launch failed: {e}")
                launch_failures = 0
                info.update(region=placement.region, cluster_job_id=placement.cluster_job_id)
                info.pop("error", None)
                await self._db(repo.update_managed_job, job.id, cluster_name=name, resources=info)
                where = f"on cluster {name}, as its job {placement.cluster_job_id}"
                await self._set(job.id, S.RUNNING, status, f"running {where}")
                status = S.RUNNING
            probe = await self._watch(name, placement)
            ended = probe.ended or TerminationReason.PREEMPTED  # (_watch returns ended ones)
            if ended is not TerminationReason.PREEMPTED:  # the cluster answers: keep the output
                await self.backend.save_logs(name, placement, attempt_log(job.id, attempt))
            decision = after_run(ended, recovery, exit_code=probe.exit_code, restarts=restarts)
            why = _describe(ended, probe.exit_code)
            if not decision.retry:
                if decision.reason is TerminationReason.RECOVERY_DISABLED:
                    why += "; job_recovery is NONE"
                # The end is recorded first: a controller that dies before the teardown
                # leaves a cluster the next one reaps (_reap_ended), never a RUNNING job
                # without a cluster, which it would take for a preemption and run again.
                final = await self._end(job.id, decision.reason, S.RUNNING, why)
                await self._teardown_ended(name)
                return final
            if decision.spend_restart:
                restarts += 1
                await self._db(repo.update_managed_job, job.id, restarts_on_errors=restarts)
            if ended is TerminationReason.USER_CODE_FAILED:
                why = f"restart after exit code {probe.exit_code}"
            await self._set(job.id, S.RECOVERING, S.RUNNING, why)
            status = S.RECOVERING
            attempt += 1
            if not decision.keep_cluster:  # recover_on_exit_codes and preemption: new machines
                await self.backend.down(name, keep_storage=True)  # its checkpoints stay
            avoid = (
                [placement.region]
                if recovery.strategy is RecoveryStrategy.EAGER_NEXT_REGION and placement.region
                else []
            )
            placement = None

    def _backoff(self, failures: int) -> float:
        """Seconds to wait before launch attempt ``failures + 1``: doubling, capped."""
        return float(min(self.poll_interval * 2.0 ** min(failures, 16), self.max_backoff))

    async def _watch(self, name: str, placement: Placement) -> Probe:
        """Probe until the job ends or its cluster is lost; tolerate transient check errors."""
        failures = 0
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                probe = await self.backend.probe(name, placement)
            except TransientCheckError as e:
                failures += 1
                log.info(
                    "%s: status check failed (%d of %d before recovering): %s",
                    name, failures, self.check_failures, e,
                )  # fmt: skip
                if failures >= self.check_failures:
                    return Probe(TerminationReason.PREEMPTED)
                continue
            failures = 0
            if probe.ended is not None:
                return probe

    # -- DAG runs -------------------------------------------------------------------------------

    async def _job_ended(self, run_id: int, index: int, final: S) -> None:
        run = await self._run_state(run_id)
        run.statuses[index] = final
        if final != S.SUCCEEDED:
            for other in run.to_cancel_after_failure(index):
                job_id = run.job_ids[other]
                if job_id not in self._tasks:
                    ended = TerminationReason.DEPENDENCY_ENDED
                    ok = await self._db(
                        repo.set_managed_job_status, job_id, ended.status, expected=S.PENDING,
                        reason=f"dependency {run.label(index)} ended {final}", termination=ended,
                    )  # fmt: skip
                    if ok:
                        run.statuses[other] = S.CANCELLED
                        secrets.forget(job_id)
                elif job_id in self._tasks:
                    await self._db(
                        repo.set_managed_job_status, job_id, S.CANCELLING,
                        expected=ACTIVE, reason=f"stop_all after {run.label(index)} ended",
                    )  # fmt: skip
                    self._cancel_requested.add(job_id)
                    self._stopped_by_dependency.add(job_id)
                    self._tasks[job_id].cancel()
        else:
            for other in run.newly_ready():
                job = await self._db(repo.require_managed_job, run.job_ids[other])
                if job.id not in self._tasks and job.status == S.PENDING:
                    self._start(job)
        if run.done():
            await self._db(
                repo.set_dag_run_status, run_id, run.final_status(),
                reason=f"every task ended; the last was {run.label(index)}",
            )  # fmt: skip
            self._runs.pop(run_id, None)


async def run_until(controller: Controller, predicate: Callable[[], bool], timeout: float) -> None:
    """Run ``controller`` until ``predicate()`` holds (checked every 10 ms) or ``timeout``."""
    task = asyncio.create_task(controller.run())
    deadline = time.monotonic() + timeout
    try:
        while not predicate() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        controller.stop()
        await task
