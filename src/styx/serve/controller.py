"""The serve controller: one asyncio process driving every service of a Styx home.

Each service gets a :class:`ServiceLoop`, which once per tick:

1. reads the load balancer's numbers (its request count gives the QPS the autoscaler uses);
2. probes every replica that has an endpoint, and moves it READY, NOT_READY or FAILED;
3. asks the planner (:mod:`styx.serve.planner`) what to launch and what to drain;
4. makes the load balancer's server slots agree with the replicas: a READY replica's slot
   points at it, a DRAINING one's drains, every other slot is in maintenance;
5. tears down drained replicas once their in-flight requests are done.

All state is in the database, so a controller killed at any moment resumes where it was: a
READY replica whose slot already points at it is not touched, a launch that was cut short is
torn down and made again. Launches and teardowns are blocking user operations; each runs in a
thread, and the event loop never waits on one.
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
from styx.errors import NotFoundError, RemoteError, StyxError
from styx.serve import haproxy, replicas
from styx.serve.holder import Holder
from styx.serve.planner import Autoscaler, Seen, plan
from styx.serve.probe import probe
from styx.spec.service import ServiceSpec
from styx.state import secret_files
from styx.state import services as repo
from styx.state.db import Database
from styx.state.services import ReplicaRecord, ReplicaStatus, ServiceRecord, ServiceStatus

T = TypeVar("T")
log = logging.getLogger(__name__)
RS = ReplicaStatus
#: Replicas of one version that fail in a row before the service stops launching more.
MAX_FAILURES = 3
#: The longest one round may take (launches and teardowns run apart, and do not count).
TICK_DEADLINE_S = 120.0


def service_dir(name: str) -> Path:
    """Where a service keeps its load balancer's configuration, socket and log."""
    d = paths.home() / "serve" / "services" / name
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def lb_settings(svc: ServiceRecord) -> haproxy.LbSettings:
    """The load balancer of ``svc``, as configured at ``serve up``."""
    spec = spec_of(svc, 1)
    folder = service_dir(svc.name)
    return haproxy.LbSettings(
        folder=folder,
        host=svc.lb_host,
        port=svc.lb_port,
        policy=spec.policy,
        stream_timeout_s=spec.stream_timeout_s,
        tls_pem=folder / "tls.pem" if svc.tls else None,
    )


def slot_of(replica_id: int) -> str:
    """The load balancer's server slot a replica uses."""
    return f"r{(replica_id - 1) % haproxy.SLOTS + 1}"


def _task_ports(spec: dict[str, Any]) -> tuple[int, ...]:
    from styx.spec.task import Task

    ports = Task.from_dict(spec).resources.ports
    return tuple(p.start for p in ports)


def spec_of(svc: ServiceRecord, version: int) -> ServiceSpec:
    task = svc.spec(version)
    return ServiceSpec.of(task["service"], _task_ports(task))


class ServiceLoop:
    """Drives one service until it is shut down (see the module's docstring)."""

    def __init__(self, ctl: Controller, name: str) -> None:
        self.ctl, self.db, self.name = ctl, ctl.db, name
        self.tick_s = ctl.tick_s
        self.jobs: dict[int, asyncio.Task[None]] = {}  # replica id -> its launch or teardown
        self.ready: dict[int, str] = {}  # replica id -> host:port, READY
        self.failures: collections.Counter[int] = collections.Counter()  # version -> in a row
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self.job_checked: dict[int, float] = {}  # replica id -> when its job was last asked
        self.autoscaler: Autoscaler | None = None
        self.lb: haproxy.LbSettings | None = None
        self.holder: Holder | None = None
        self._rr = 0

    def info(self, message: str, *args: object) -> None:
        log.info(f"[{self.name}] " + message, *args)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            svc = await self.call(repo.get_service, self.db, self.name)
        except NotFoundError:
            return
        self.lb = lb_settings(svc)
        await asyncio.to_thread(haproxy.start, self.lb)
        hold = float(os.environ.get("STYX_SERVE_HOLD_TIMEOUT", "600"))
        self.holder = Holder(self.lb.holder, self._any_ready, hold)
        await self.holder.start()
        try:
            await self._resume()
            while True:
                try:
                    async with asyncio.timeout(TICK_DEADLINE_S):
                        if await self.tick():
                            break
                except TimeoutError:  # something did not answer in time: the next round retries
                    self.info("a round took over %g s; starting the next one", TICK_DEADLINE_S)
                await asyncio.sleep(self.tick_s)
        finally:
            await self.holder.close()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call (the database, a user operation) in the controller's pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.ctl.pool, lambda: fn(*args, **kwargs))

    async def _resume(self) -> None:
        """After a (re)start: finish what a dead controller left half done."""
        for r in await self.call(repo.list_replicas, self.db, self.name):
            if r.status is RS.READY and r.endpoint:
                self.ready[r.replica_id] = r.endpoint
            elif r.status is RS.PROVISIONING:  # its launch died with the old controller
                self._start_launch(r, fresh=False)
            elif r.status is RS.SHUTTING_DOWN:
                self._start_teardown(r, remove=True)
            elif r.status in (RS.FAILED, RS.PREEMPTED):
                self._start_teardown(r, remove=r.status is RS.PREEMPTED, only_if_exists=True)

    async def tick(self) -> bool:
        """One round; True once the service is gone."""
        try:
            svc = await self.call(repo.get_service, self.db, self.name)
        except NotFoundError:
            return True
        if svc.status is ServiceStatus.SHUTTING_DOWN:
            await self._shutdown(svc)
            return True
        stats = await self._stats()
        rows = await self.call(repo.list_replicas, self.db, self.name)
        rows = await self._probe_all(svc, rows)
        spec = spec_of(svc, svc.version)
        now = time.monotonic()
        if self.autoscaler is None or self.autoscaler.spec != spec:
            live_now = [r for r in rows if r.status in repo.LIVE and r.status is not RS.DRAINING]
            start = max(spec.min_replicas, min(spec.max_replicas, len(live_now)))
            if self.autoscaler is not None:
                start = max(spec.min_replicas, min(spec.max_replicas, self.autoscaler.target))
            self.autoscaler = Autoscaler(spec, target=start)
        qps = self._qps(stats, now)
        if self.holder is not None and self.holder.waiting and qps <= 0:
            qps = 1e-6  # a request waits for a replica: that is demand
        target = self.autoscaler.decide(qps, now)
        await self._act(svc, spec, target, rows)
        rows = await self.call(repo.list_replicas, self.db, self.name)
        if stats is not None:
            await self._sync_slots(rows, stats)
            await self._finish_drains(svc, rows, stats)
        await self._set_status(svc, target, rows)
        return False

    # -- measuring and probing -------------------------------------------------------------

    async def _stats(self) -> haproxy.Stats | None:
        assert self.lb is not None
        try:
            return await haproxy.stats(self.lb)
        except (RemoteError, ValueError) as e:
            self.info("load balancer not answering (%s); starting it again", e)
            with contextlib.suppress(StyxError):
                await asyncio.to_thread(haproxy.stop, self.lb)
                await asyncio.to_thread(haproxy.start, self.lb)
            self.samples.clear()
            return None

    def _qps(self, stats: haproxy.Stats | None, now: float) -> float:
        if stats is None:
            return 0.0
        window = float(os.environ.get("STYX_SERVE_QPS_WINDOW", "60"))
        if self.samples and stats.requests < self.samples[-1][1]:
            self.samples.clear()  # the load balancer restarted: its counter too
        self.samples.append((now, stats.requests))
        while len(self.samples) > 2 and now - self.samples[1][0] >= window:
            self.samples.popleft()
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    async def _probe_all(
        self, svc: ServiceRecord, rows: list[ReplicaRecord]
    ) -> list[ReplicaRecord]:
        probed = [
            r for r in rows if r.endpoint and r.status in (RS.STARTING, RS.READY, RS.NOT_READY)
        ]
        answers = await asyncio.gather(*(self._probe(svc, r) for r in probed))
        changed = False
        now = time.time()
        for r, why in zip(probed, answers, strict=True):
            spec = spec_of(svc, r.version).probe
            if why is None:
                if r.status is not RS.READY:
                    self.info("replica %d is READY at %s", r.replica_id, r.endpoint)
                    await self.call(
                        repo.update_replica,
                        self.db,
                        self.name,
                        r.replica_id,
                        status=RS.READY,
                        reason="",
                    )
                    self.failures[r.version] = 0
                    changed = True
                self.ready[r.replica_id] = str(r.endpoint)
                continue
            self.ready.pop(r.replica_id, None)
            if r.status is RS.STARTING and await self._job_ended(r):
                changed = True
            elif r.status is RS.STARTING and now - r.status_since > spec.initial_delay_s:
                reason = f"readiness probe did not pass within {spec.initial_delay_s:g} s: {why}"
                await self._fail(r, reason)
                changed = True
            elif r.status is RS.READY:
                self.info("replica %d is NOT_READY: %s", r.replica_id, why)
                await self.call(
                    repo.update_replica,
                    self.db,
                    self.name,
                    r.replica_id,
                    status=RS.NOT_READY,
                    reason=why,
                )
                changed = True
            elif r.status is RS.NOT_READY and now - r.status_since > spec.failure_timeout_s:
                lost = await self.call(replicas.gone, r.cluster_name)
                await self._lose(r, f"{'cluster lost' if lost else 'probe kept failing'}: {why}")
                changed = True
        if self.holder is not None and self.ready:
            self.holder.poke()
        if changed:
            return await self.call(repo.list_replicas, self.db, self.name)
        return rows

    async def _job_ended(self, r: ReplicaRecord) -> bool:
        """Whether the replica's service exited before its probe passed (then it is FAILED
        now, without waiting out the initial delay); asked at most every 5 s."""
        now = time.monotonic()
        if now - self.job_checked.get(r.replica_id, 0.0) < 5.0:
            return False
        self.job_checked[r.replica_id] = now
        ended = await self.call(replicas.job_ended, r.cluster_name)
        if ended is None:
            return False
        await self._fail(r, f"the service exited before its readiness probe passed ({ended})")
        return True

    async def _probe(self, svc: ServiceRecord, r: ReplicaRecord) -> str | None:
        host, _, port = str(r.endpoint).rpartition(":")
        return await probe(host, int(port), spec_of(svc, r.version).probe)

    def _any_ready(self) -> str | None:
        if not self.ready:
            return None
        self._rr += 1
        endpoints = sorted(self.ready.values())
        return endpoints[self._rr % len(endpoints)]

    # -- acting ----------------------------------------------------------------------------

    async def _act(
        self, svc: ServiceRecord, spec: ServiceSpec, target: int, rows: list[ReplicaRecord]
    ) -> None:
        live = [r for r in rows if r.status in repo.LIVE and r.status is not RS.SHUTTING_DOWN]
        seen = [
            Seen(
                r.replica_id, r.version, r.use_spot, r.status is RS.READY,
                r.status in (RS.PROVISIONING, RS.STARTING), r.status is RS.DRAINING,
            )
            for r in live
        ]  # fmt: skip
        task_spot = await self.call(replicas.task_uses_spot, svc.spec())
        may_launch = svc.status is not ServiceStatus.FAILED
        if self.failures[svc.version] >= MAX_FAILURES:
            may_launch = False
            if svc.status is not ServiceStatus.FAILED:
                why = (
                    f"{MAX_FAILURES} replicas of version {svc.version} failed in a row; the last: "
                    + (next((r.reason or "" for r in reversed(rows) if r.status is RS.FAILED), ""))
                )
                self.info("service FAILED: %s", why)
                await self.call(
                    repo.set_service_status, self.db, self.name, ServiceStatus.FAILED, why
                )
        todo = plan(
            spec,
            target,
            svc.version,
            seen,
            task_spot=task_spot,
            mode=svc.update_mode,
            may_launch=may_launch,
        )
        for use_spot, n in ((True, todo.launch_spot), (False, todo.launch_ondemand)):
            for _ in range(n):
                r = await self.call(
                    repo.new_replica, self.db, self.name, svc.version, use_spot=use_spot
                )
                self.info(
                    "launching replica %d (version %d%s)",
                    r.replica_id,
                    svc.version,
                    ", spot" if use_spot else "",
                )
                self._start_launch(r, fresh=True)
        by_id = {r.replica_id: r for r in live}
        for replica_id in todo.drain:
            r = by_id[replica_id]
            if r.status is RS.PROVISIONING and replica_id in self.jobs:
                continue  # its launch is running: let it go once it is done
            self.ready.pop(replica_id, None)
            if r.status in (RS.READY, RS.NOT_READY):
                self.info("draining replica %d", replica_id)
                await self.call(
                    repo.update_replica, self.db, self.name, replica_id, status=RS.DRAINING
                )
            else:
                await self.call(
                    repo.update_replica, self.db, self.name, replica_id, status=RS.SHUTTING_DOWN
                )
                self._start_teardown(r, remove=True)

    def _start_launch(self, r: ReplicaRecord, *, fresh: bool) -> None:
        self.jobs[r.replica_id] = asyncio.create_task(self._launch(r, fresh))

    async def _launch(self, r: ReplicaRecord, fresh: bool) -> None:
        try:
            svc = await self.call(repo.get_service, self.db, self.name)
            if not fresh:
                await self.call(replicas.down, r.cluster_name)
            port = spec_of(svc, r.version).port
            task = secret_files.restore("serve", f"{self.name}.v{r.version}", svc.spec(r.version))
            try:
                at = await self.call(
                    replicas.launch,
                    r.cluster_name,
                    task,
                    r.replica_id,
                    use_spot=r.use_spot,
                    port=port,
                )
            except StyxError as e:
                await self._fail(r, f"launch failed: [{e.code}] {e.message}", teardown=False)
                return
            await self.call(
                repo.update_replica, self.db, self.name, r.replica_id, status=RS.STARTING,
                endpoint=f"{at.host}:{port}", infra=at.infra,
            )  # fmt: skip
            self.info("replica %d launched on %s (%s)", r.replica_id, at.host, at.infra)
        except NotFoundError:
            pass
        except Exception:  # a bug: the replica is failed, the service goes on
            log.exception("[%s] launching replica %d", self.name, r.replica_id)
            await self._fail(r, "launch failed: internal error (see the controller's log)")
        finally:
            self.jobs.pop(r.replica_id, None)

    async def _fail(self, r: ReplicaRecord, reason: str, *, teardown: bool = True) -> None:
        self.info("replica %d FAILED: %s", r.replica_id, reason)
        self.ready.pop(r.replica_id, None)
        self.failures[r.version] += 1
        await self.call(
            repo.update_replica, self.db, self.name, r.replica_id, status=RS.FAILED, reason=reason
        )
        if teardown:
            self._start_teardown(r, remove=False)

    async def _lose(self, r: ReplicaRecord, reason: str) -> None:
        self.info("replica %d PREEMPTED: %s", r.replica_id, reason)
        self.ready.pop(r.replica_id, None)
        await self.call(
            repo.update_replica,
            self.db,
            self.name,
            r.replica_id,
            status=RS.PREEMPTED,
            reason=reason,
        )
        self._start_teardown(r, remove=True)

    def _start_teardown(
        self, r: ReplicaRecord, *, remove: bool, only_if_exists: bool = False
    ) -> None:
        if r.replica_id in self.jobs:
            return
        self.jobs[r.replica_id] = asyncio.create_task(self._teardown(r, remove, only_if_exists))

    async def _teardown(self, r: ReplicaRecord, remove: bool, only_if_exists: bool) -> None:
        try:
            if only_if_exists:
                from styx.state.clusters import get_cluster

                if await self.call(get_cluster, self.db, r.cluster_name) is None:
                    return
            await self.call(replicas.down, r.cluster_name)
            self.info("replica %d torn down", r.replica_id)
            if remove:
                await self.call(repo.remove_replica, self.db, self.name, r.replica_id)
        except Exception:
            log.exception(
                "[%s] tearing down replica %d (tried again next tick)", self.name, r.replica_id
            )
        finally:
            self.jobs.pop(r.replica_id, None)

    # -- the load balancer's slots ---------------------------------------------------------

    async def _sync_slots(self, rows: list[ReplicaRecord], stats: haproxy.Stats) -> None:
        assert self.lb is not None
        want: dict[str, tuple[str, ReplicaRecord | None]] = {}
        for r in rows:
            if r.status is RS.READY and r.endpoint:
                want[slot_of(r.replica_id)] = ("ready", r)
            elif r.status is RS.DRAINING:
                want[slot_of(r.replica_id)] = ("drain", r)
        for slot, now in stats.slots.items():
            state, wanted = want.get(slot, ("maint", None))
            status = now.status.upper()
            try:
                if state == "ready" and (status.startswith("MAINT") or status.startswith("DRAIN")):
                    assert wanted is not None and wanted.endpoint
                    host, _, port = wanted.endpoint.rpartition(":")
                    await haproxy.point(self.lb, slot, host, int(port))
                elif state == "drain" and not status.startswith(("DRAIN", "MAINT")):
                    await haproxy.drain(self.lb, slot)
                elif state == "maint" and not status.startswith("MAINT"):
                    await haproxy.retire(self.lb, slot)
            except RemoteError as e:
                self.info("slot %s: %s", slot, e)

    async def _finish_drains(
        self, svc: ServiceRecord, rows: list[ReplicaRecord], stats: haproxy.Stats
    ) -> None:
        """Tear down each DRAINING replica once nothing is in flight on it (or after the
        stream timeout: a stream that long is cut)."""
        assert self.lb is not None
        for r in rows:
            if r.status is not RS.DRAINING:
                continue
            slot = stats.slots.get(slot_of(r.replica_id))
            waited = time.time() - r.status_since
            limit = spec_of(svc, r.version).stream_timeout_s
            if waited < 1.0 or (slot is not None and slot.current > 0 and waited < limit):
                continue
            with contextlib.suppress(RemoteError):
                await haproxy.retire(self.lb, slot_of(r.replica_id))
            self.info("replica %d drained; tearing it down", r.replica_id)
            await self.call(
                repo.update_replica, self.db, self.name, r.replica_id, status=RS.SHUTTING_DOWN
            )
            self._start_teardown(r, remove=True)

    # -- status and shutdown ---------------------------------------------------------------

    async def _set_status(self, svc: ServiceRecord, target: int, rows: list[ReplicaRecord]) -> None:
        if svc.status is ServiceStatus.FAILED:
            return
        live = [r for r in rows if r.status in repo.LIVE]
        if any(r.status is RS.READY for r in rows):
            status = ServiceStatus.READY
        elif target == 0 or not live:
            status = ServiceStatus.NO_REPLICA
        else:
            status = ServiceStatus.REPLICA_INIT
        if status is not svc.status:
            await self.call(repo.set_service_status, self.db, self.name, status)

    async def _shutdown(self, svc: ServiceRecord) -> None:
        assert self.lb is not None
        self.info("shutting down")
        self.ready.clear()
        with contextlib.suppress(RemoteError, ValueError):
            stats = await haproxy.stats(self.lb)
            for slot, now in stats.slots.items():
                if not now.status.upper().startswith("MAINT"):
                    await haproxy.retire(self.lb, slot)
        while self.jobs:  # launches finish (a thread cannot be stopped), then go
            await asyncio.gather(*list(self.jobs.values()), return_exceptions=True)
        rows = await self.call(repo.list_replicas, self.db, self.name)
        await asyncio.gather(
            *(self.call(replicas.down, r.cluster_name) for r in rows), return_exceptions=True
        )
        left = []
        from styx.state.clusters import get_cluster

        for r in rows:
            if await self.call(get_cluster, self.db, r.cluster_name) is not None:
                left.append(r.cluster_name)
        if left:  # tried again next tick: the service stays SHUTTING_DOWN
            self.info("could not tear down %s yet", ", ".join(left))
            raise _NotYet()
        assert self.holder is not None
        await self.holder.close()  # its socket goes before the sockets' folder
        await asyncio.to_thread(haproxy.stop, self.lb)
        await self.call(repo.remove_service, self.db, self.name)
        for version in {int(v) for v in svc.specs}:
            secret_files.forget("serve", f"{self.name}.v{version}")
        self.info("down")


class _NotYet(Exception):
    """A shutdown that must be tried again."""


class Controller:
    """Runs a :class:`ServiceLoop` for every service in the database."""

    def __init__(self, db: Database, *, tick_s: float = 2.0, threads: int = 32) -> None:
        self.db = db
        self.tick_s = tick_s
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="serve")
        self.loops: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self, idle_exit_s: float | None = None) -> None:
        """Until :meth:`stop`, or ``idle_exit_s`` with no service."""
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        while not self._stopping:
            names = [
                s.name for s in await loop.run_in_executor(self.pool, repo.list_services, self.db)
            ]
            for name in names:
                task = self.loops.get(name)
                if task is None or task.done():
                    self.loops[name] = asyncio.create_task(self._drive(name))
            for name in [n for n, t in self.loops.items() if t.done() and n not in names]:
                del self.loops[name]
            if names or any(not t.done() for t in self.loops.values()):
                idle_since = None
            elif idle_since is None:
                idle_since = loop.time()
            elif idle_exit_s is not None and loop.time() - idle_since > idle_exit_s:
                break
            await asyncio.sleep(self.tick_s)

    async def _drive(self, name: str) -> None:
        while True:
            try:
                await ServiceLoop(self, name).run()
                return
            except _NotYet:
                await asyncio.sleep(self.tick_s)
            except Exception:
                log.exception("[%s] controller loop failed; starting it again", name)
                await asyncio.sleep(max(self.tick_s, 1.0))
