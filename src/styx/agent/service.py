"""The agent's core: the queue, the scheduling pass, each job's life, cancel, wait and logs.

Everything runs on one asyncio loop; SQLite writes are short and synchronous on it, Ray calls are
non-blocking (``ray.init`` and process killing run in threads).

Durability: every state change is in ``jobs.db`` first. Jobs do *not* survive an agent restart:
the agent is the Ray driver of every job, so when it dies Ray reclaims the job's tasks. On start
the agent marks jobs that were SETTING_UP/RUNNING as FAILED_DRIVER and kills what is left of their
process trees on every node, then resumes PENDING jobs. (Surviving jobs would need one driver
process per job, which is what makes SkyPilot take seconds per job.)

A dead runtime: the agent watches its Ray (a TCP probe of the GCS port every couple of
seconds, the head's raylet in Ray's node table). Once Ray is gone it says so (``ray_down`` in
``ping`` and ``status``), fails every pending and running job with FAILED_DRIVER and that
reason, and refuses new jobs with ``runtime-down``: nothing waits on a Ray that will not come
back. ``styx start`` (or a relaunch) starts Ray and a new agent.

Secrets: a pending job's secret env values are kept in memory and, so that a pending job can be
resumed after a restart, in ``secrets/<job_id>.json`` (mode 0600), deleted when the job ends;
never in ``jobs.db`` or the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from styx.agent import logs
from styx.agent.autostop import FOLLOWER_GRACE_S, Autostop
from styx.agent.db import JobStore
from styx.agent.execution import PartResult, RayExecutor, job_envs
from styx.agent.health import gcs_answers
from styx.agent.paths import AgentPaths, agent_id
from styx.agent.protocol import AgentConfig, JobRecord, JobSpec, JobStatus
from styx.agent.scheduler import Candidate, ResourcePool, pick
from styx.agent.version import agent_version
from styx.errors import AgentError, IllegalTransition

log = logging.getLogger(__name__)

#: Seconds between probes of Ray's GCS port, and failed probes in a row that mean Ray is down.
RAY_PROBE_S = 2.0
RAY_PROBE_FAILURES = 3
#: Seconds between looks at Ray's node table (node deaths and returns).
NODE_REFRESH_S = 10.0
#: Seconds between tries to write job changes a failed write kept in memory.
FLUSH_S = 5.0


@dataclasses.dataclass
class _Run:
    job_id: int
    ranks: list[int]
    marker: str
    status: JobStatus = JobStatus.PENDING
    cancelled: bool = False
    killing: asyncio.Task[None] | None = None
    failure: PartResult | None = None
    task: asyncio.Task[None] | None = None


class Agent:
    """The head-node agent of one cluster, rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.paths = AgentPaths(root)
        self.config = AgentConfig.load(root)
        self.store = JobStore(self.paths.db)
        self.pool = ResourcePool(self.config.nodes)
        self.executor = RayExecutor(self.config, str(root))
        self.autostop = Autostop(self.store, self.config, root / "autostop.log")
        self.agent_id = agent_id(root, self.config.cluster_name)
        self.started_at = time.time()
        self.version = agent_version()
        self._pending: dict[int, Candidate] = {}
        self.followers = 0  # clients following a job's output now
        self._specs: dict[int, JobSpec] = {}
        self._running: dict[int, _Run] = {}
        self._signals: dict[int, logs.Signal] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._orphans: list[_Run] = []
        #: Why the cluster's Ray is gone, once the agent has seen it go (None while it is up).
        self.ray_down: str | None = None
        #: Why the last job's log could not be written (None once one could).
        self.log_error: str | None = None

    # --- start and stop ---------------------------------------------------------------------

    def marker(self, job_id: int) -> str:
        return f"{self.agent_id}:{job_id}"

    def recover(self) -> None:
        """Apply the restart rules to what ``jobs.db`` says (see the module docstring)."""
        self.store.record_event("agent_start", {"pid": os.getpid(), "version": self.version})
        for rec in self.store.with_status([JobStatus.INIT]):
            self.store.transition(
                rec.job_id,
                JobStatus.FAILED_DRIVER,
                failure_reason="the agent died while accepting the job",
            )
        by_ip = {n.ip: r for r, n in enumerate(self.config.nodes)}
        for rec in self.store.with_status([JobStatus.SETTING_UP, JobStatus.RUNNING]):
            self.store.transition(
                rec.job_id,
                JobStatus.FAILED_DRIVER,
                failure_reason="the agent restarted while the job ran; its processes were killed",
            )
            ranks = [by_ip[ip] for ip in rec.nodes if ip in by_ip] or [0]
            self._orphans.append(_Run(rec.job_id, ranks, self.marker(rec.job_id)))
            self._drop_secrets(rec.job_id)
        for rec in self.store.with_status([JobStatus.PENDING]):
            spec = self.store.spec(rec.job_id)
            envs = dict(spec.envs)
            envs.update(self._load_secrets(rec.job_id))
            spec = dataclasses.replace(spec, envs=envs)
            self._enqueue(rec.job_id, spec, rec.submitted_at)

    def start(self) -> None:
        """Recover from ``jobs.db`` and start the background loops (call inside the loop)."""
        self.recover()
        for orphan in self._orphans:  # leftovers on this node die now, elsewhere once Ray is up
            self._spawn(asyncio.to_thread(_kill_local, orphan.marker))
        self._spawn(self._connect())
        self._spawn(self._schedule_loop())
        self._spawn(self.autostop.loop(self.is_idle))
        self._spawn(self._flush_loop())

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task failed", exc_info=task.exception())

    async def _connect(self) -> None:
        """Join Ray, then watch it; a Ray whose GCS stops answering is declared down."""
        failures = 0
        while True:
            connecting = asyncio.ensure_future(asyncio.to_thread(self.executor.connect))
            while not connecting.done():
                await asyncio.wait({connecting}, timeout=RAY_PROBE_S)
                if connecting.done():
                    break
                failures = 0 if await gcs_answers(self.config.ray_address) else failures + 1
                if failures >= RAY_PROBE_FAILURES:
                    self.runtime_down(
                        f"nothing answers on Ray's GCS port {self.config.ray_address}"
                    )
                    return  # the agent stays up to say so; `styx start` replaces it
            try:
                connecting.result()
                break
            except Exception as e:  # Ray may still be starting: retry while its GCS answers
                log.warning("cannot join Ray at %s yet: %s", self.config.ray_address, e)
                failures = 0 if await gcs_answers(self.config.ray_address) else failures + 1
                if failures >= RAY_PROBE_FAILURES:
                    self.runtime_down(f"joining Ray at {self.config.ray_address} failed: {e}")
                    return
                await asyncio.sleep(RAY_PROBE_S)
        log.info("joined Ray at %s", self.config.ray_address)
        self._apply_liveness(self.executor.refresh_nodes())
        for orphan in self._orphans:
            await self.executor.kill(orphan.ranks, orphan.marker)
        self._orphans.clear()
        self._wake.set()
        await self._watch_ray()

    async def _watch_ray(self) -> None:
        """Follow node deaths and returns; declare Ray down when its GCS stops answering or
        the head's raylet is gone."""
        failures, last_nodes, head_gone = 0, time.monotonic(), 0
        while self.ray_down is None:
            await asyncio.sleep(RAY_PROBE_S)
            failures = 0 if await gcs_answers(self.config.ray_address) else failures + 1
            if failures >= RAY_PROBE_FAILURES:
                self.runtime_down(f"Ray's GCS at {self.config.ray_address} stopped answering")
                return
            if time.monotonic() - last_nodes < NODE_REFRESH_S:
                continue
            last_nodes = time.monotonic()
            try:
                alive = await asyncio.wait_for(
                    asyncio.to_thread(self.executor.refresh_nodes), NODE_REFRESH_S
                )
            except Exception as e:
                log.warning("cannot list Ray nodes: %s", e)
                continue
            # Twice in a row: one listing without the head can be a gap in Ray's answer.
            head_gone = head_gone + 1 if alive and not alive[0] else 0
            if head_gone >= 2:
                self.runtime_down("the head node's raylet is gone from Ray")
                return
            if head_gone:
                alive[0] = True
            self._apply_liveness(alive)

    def runtime_down(self, reason: str) -> None:
        """Ray is gone: fail every pending and running job with ``reason``, refuse new ones."""
        if self.ray_down is not None:
            return
        self.ray_down = reason
        log.error("the cluster's Ray runtime is down: %s", reason)
        self.store.record_event("ray_down", {"reason": reason})
        why = f"the cluster's Ray runtime is down: {reason}"
        for job_id in list(self._pending):
            del self._pending[job_id]
            self._specs.pop(job_id, None)
            self._finish(job_id, JobStatus.FAILED_DRIVER, reason=why)
            self._drop_secrets(job_id)
            self._signals.pop(job_id, logs.Signal()).fire()
        for run in list(self._running.values()):
            if self._finish(run.job_id, JobStatus.FAILED_DRIVER, reason=why):
                with contextlib.suppress(OSError):
                    path = self.paths.logs / str(run.job_id) / logs.RUN_LOG
                    with open(path, "ab") as f:
                        f.write(f"styx: job {run.job_id} FAILED_DRIVER: {why}\n".encode())
            run.cancelled = True
            self._spawn(asyncio.to_thread(_kill_local, run.marker))
            if run.task is not None:
                run.task.cancel()

    @property
    def storage_error(self) -> str | None:
        """Why the agent's last write on the head node failed (a full disk), or None."""
        return self.store.write_error or self.log_error

    async def _flush_loop(self) -> None:
        """Write job changes that a failed write kept in memory, once the disk allows."""
        while True:
            await asyncio.sleep(FLUSH_S)
            if self.store.write_error is not None:
                self.store.flush()

    def _apply_liveness(self, alive: list[bool]) -> None:
        for rank, up in enumerate(alive):
            self.pool.set_available(rank, up)
        self._wake.set()

    async def shutdown(self) -> None:
        """Stop on purpose: running jobs are killed and marked FAILED_DRIVER."""
        for run in list(self._running.values()):
            self._finish(
                run.job_id,
                JobStatus.FAILED_DRIVER,
                reason="the agent was stopped while the job ran",
            )
            run.cancelled = True
        await asyncio.gather(
            *(
                self.executor.kill(r.ranks, r.marker, grace_s=2.0)
                for r in list(self._running.values())
            )
        )
        for task in list(self._tasks):
            task.cancel()
        self.store.record_event("agent_stop", {"pid": os.getpid()})

    # --- queue ------------------------------------------------------------------------------

    def _enqueue(self, job_id: int, spec: JobSpec, submitted_at: float) -> None:
        self._specs[job_id] = spec
        self._pending[job_id] = Candidate(
            job_id, spec.priority, submitted_at, spec.num_nodes, spec.demand
        )
        self._wake.set()

    def submit(self, spec: JobSpec) -> int:
        if self.ray_down is not None:
            raise AgentError(
                f"The cluster's Ray runtime is down: {self.ray_down}.",
                f"Run `styx start {self.config.cluster_name}` (or launch it again) to repair "
                "the runtime.",
                code="runtime-down",
            )
        if not self.pool.feasible(spec.demand, spec.num_nodes):
            d = spec.demand
            raise AgentError(
                f"The job needs {spec.num_nodes} node(s) with {d.cpus:g} CPUs, {d.gpus:g} GPUs"
                f"{' of ' + d.accelerator if d.accelerator else ''} each, more than this "
                "cluster has.",
                "Ask for fewer resources or launch a bigger cluster.",
                code="job-infeasible",
            )
        rec = self.store.add(spec, self.paths.logs)
        secrets = spec.secret_envs()
        if secrets:
            self.paths.secrets.mkdir(mode=0o700, exist_ok=True)
            path = self.paths.secrets / f"{rec.job_id}.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(secrets, f)
        self.store.transition(rec.job_id, JobStatus.PENDING)
        self._enqueue(rec.job_id, spec, rec.submitted_at)
        self.autostop.busy()
        return rec.job_id

    def _load_secrets(self, job_id: int) -> dict[str, str]:
        path = self.paths.secrets / f"{job_id}.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    def _drop_secrets(self, job_id: int) -> None:
        with contextlib.suppress(OSError):
            (self.paths.secrets / f"{job_id}.json").unlink()

    def is_idle(self) -> bool:
        return not self._pending and not self._running and not self.followers

    @contextlib.contextmanager
    def following(self) -> Iterator[None]:
        """While a client follows a job's output, the cluster is not idle (autostop waits)."""
        self.followers += 1
        try:
            yield
        finally:
            self.followers -= 1
            self.autostop.busy(FOLLOWER_GRACE_S)  # the idle clock starts once it has read

    def is_active(self, job_id: int) -> bool:
        return job_id in self._pending or job_id in self._running

    def signal(self, job_id: int) -> logs.Signal:
        return self._signals.setdefault(job_id, logs.Signal())

    def _finish(
        self,
        job_id: int,
        status: JobStatus,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
    ) -> bool:
        """Move to a terminal status unless the job already has one (e.g. it was cancelled)."""
        try:
            self.store.transition(job_id, status, exit_code=exit_code, failure_reason=reason)
            return True
        except IllegalTransition:
            return False

    # --- running ----------------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.executor.connected or not self._pending:
                continue
            for cand, ranks in pick(list(self._pending.values()), self.pool, time.time()):
                del self._pending[cand.job_id]
                run = _Run(cand.job_id, ranks, self.marker(cand.job_id))
                self._running[cand.job_id] = run
                run.task = self._spawn(self._run_job(run, self._specs.pop(cand.job_id)))

    async def _run_job(self, run: _Run, spec: JobSpec) -> None:
        job_id = run.job_id
        nodes = [self.config.nodes[r] for r in run.ranks]
        sig = self.signal(job_id)

        def on_log_error(why: str) -> None:  # the job cannot be logged: it fails, and says why
            self.log_error = why
            if run.failure is None:
                run.failure = PartResult(rank=0, error=why)
            if run.killing is None:
                run.killing = asyncio.ensure_future(self.executor.kill(run.ranks, run.marker))

        jlog = logs.JobLog(
            self.paths.logs / str(job_id), [n.name for n in nodes], sig.fire, on_log_error
        )
        if jlog.error is None:
            self.log_error = None
        placement = None
        try:
            run.status = JobStatus.SETTING_UP if spec.setup else JobStatus.RUNNING
            self.store.transition(job_id, run.status, nodes=[n.ip for n in nodes])
            placement = await self.executor.reserve(run.ranks, spec.demand)
            for phase, script in (("setup", spec.setup), ("run", spec.run)):
                if run.cancelled:
                    return
                if phase == "run" and run.status is JobStatus.SETTING_UP:
                    run.status = JobStatus.RUNNING
                    self.store.transition(job_id, JobStatus.RUNNING)
                if script is None:
                    continue
                await self._phase(run, spec, script, phase == "setup", placement, jlog)
                if run.failure is not None:
                    failed = JobStatus.FAILED_SETUP if phase == "setup" else JobStatus.FAILED
                    f = run.failure
                    reason = f.error or f"{phase} exited with code {f.exit_code} on rank {f.rank}"
                    if self._finish(job_id, failed, exit_code=f.exit_code, reason=reason):
                        jlog.note(f"job {job_id} {failed.value}: {reason}")
                    return
            self._finish(job_id, JobStatus.SUCCEEDED, exit_code=0)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("job %s", job_id)
            why = f"agent error: {type(e).__name__}: {e}".splitlines()[0][:500]
            if self._finish(job_id, JobStatus.FAILED_DRIVER, reason=why):
                jlog.note(f"job {job_id} FAILED_DRIVER: {why}")
            await self.executor.kill(run.ranks, run.marker)
        finally:
            if run.killing is not None and self.ray_down is None:
                await asyncio.shield(run.killing)
            jlog.close()
            if self.ray_down is None:  # with Ray gone, its calls would only hang
                self.executor.release(placement)
            self.pool.release(job_id)
            self._running.pop(job_id, None)
            self._drop_secrets(job_id)
            self._signals.pop(job_id, sig).fire()
            self._wake.set()

    async def _phase(
        self, run: _Run, spec: JobSpec, script: str, setup: bool, placement: Any, jlog: logs.JobLog
    ) -> None:
        envs = job_envs(
            self.config, run.job_id, run.ranks, spec.demand, spec.task_id, spec.user, setup
        )
        for env in envs:
            env.update(spec.envs)

        def on_failure(result: PartResult) -> None:
            if run.cancelled:
                return
            if run.failure is None:
                run.failure = result
            if run.killing is None:  # one part failed: the others must stop too
                run.killing = asyncio.ensure_future(self.executor.kill(run.ranks, run.marker))

        results = await self.executor.run_phase(
            run.ranks,
            spec.demand,
            script,
            envs,
            spec.cwd,
            run.marker,
            jlog.write,
            on_failure,
            placement,
        )
        for r in results:
            jlog.end_part(r.rank)

    # --- requests ---------------------------------------------------------------------------

    async def cancel(self, job_ids: list[int] | None) -> list[int]:
        """Cancel the given jobs (``None``: every unfinished job); returns those cancelled."""
        if job_ids is None:
            job_ids = sorted(set(self._pending) | set(self._running))
        for job_id in job_ids:
            self.store.get(job_id)  # JobNotFound for unknown ids
        cancelled, kills = [], []
        for job_id in job_ids:
            if job_id in self._pending:
                del self._pending[job_id]
                self._specs.pop(job_id, None)
                self._finish(job_id, JobStatus.CANCELLED)
                self._drop_secrets(job_id)
                self._signals.pop(job_id, logs.Signal()).fire()
                cancelled.append(job_id)
            elif (run := self._running.get(job_id)) is not None and not run.cancelled:
                run.cancelled = True
                if self._finish(job_id, JobStatus.CANCELLED):
                    cancelled.append(job_id)
                    kills.append(self.executor.kill(run.ranks, run.marker))
        await asyncio.gather(*kills)
        return cancelled

    async def wait(self, job_id: int, timeout: float | None) -> JobRecord:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.store.get(job_id)
        while self.is_active(job_id):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            await self.signal(job_id).wait(timeout=left if left is not None else 5.0)
        return self.store.get(job_id)

    async def tail(self, job_id: int, follow: bool, lines: int | None) -> AsyncIterator[bytes]:
        rec = self.store.get(job_id)
        path = Path(rec.log_dir) / logs.RUN_LOG
        start = logs.tail_start(path, lines)
        sig = self.signal(job_id) if self.is_active(job_id) else logs.Signal()
        async for text in logs.follow(path, sig, lambda: not self.is_active(job_id), follow, start):
            yield text

    def status(self) -> dict[str, Any]:
        running = [r for r in self._running.values() if r.status is JobStatus.RUNNING]
        setting_up = len(self._running) - len(running)
        idle = self.is_idle()
        return {
            "cluster_name": self.config.cluster_name,
            "agent_version": self.version,
            "ray_connected": self.executor.connected and self.ray_down is None,
            "ray_down": self.ray_down,
            "storage_error": self.storage_error,
            "pending": len(self._pending),
            "setting_up": setting_up,
            "running": len(running),
            "idle": idle,
            "idle_since": self.autostop.idle_since() if idle else None,
            "autostop": {
                "idle_minutes": self.autostop.setting.idle_minutes,
                "down": self.autostop.setting.down,
            },
            "autostop_fired_at": self.autostop.fired_at,
            "free": [{"cpus": c, "gpus": g} for c, g in self.pool.free()],
        }


def _kill_local(marker: str) -> int:
    from styx.agent.proctree import kill_marked

    return kill_marked(marker, grace_s=1.0)
