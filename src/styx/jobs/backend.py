"""Where a managed job's clusters come from: the ``Backend`` protocol and its two kinds.

``ClusterBackend`` is real: one Styx cluster per job, launched, watched and torn down
through the user operations of :mod:`styx.ops` (blocking calls, so each runs in a thread).
``InMemoryBackend`` is a simulation, for tests and benchmarks only: its clusters are dictionary
entries whose job ends after a set time, with preemption, user-code failure and status-check
errors injected on demand.

A backend never changes job state; it answers questions and the controller decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from styx.state.records import TerminationReason

log = logging.getLogger(__name__)
R = TerminationReason


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One status check's answer: the job still runs (``ended`` None), or why it ended
    (``PREEMPTED`` when its cluster is gone or terminated: recover elsewhere); ``exit_code``
    of the user's code when known."""

    ended: TerminationReason | None = None
    exit_code: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """Where a launch landed, and the id of the job submitted there."""

    region: str | None
    cluster_job_id: int | None = None


class TransientCheckError(Exception):
    """A status check could not tell (timeout, refused connection): not evidence of loss."""


class LaunchFailed(Exception):
    """A launch did not get the job running, and ``reason`` says why: ``NO_RESOURCES`` (no
    resources anywhere allowed), ``SETUP_FAILED`` (the job's setup failed) or ``INFRA_ERROR``
    (it broke for a reason worth another try: a host died, a transfer failed). ``error`` is
    the user-facing error behind it (``code``, ``message``, ``hint``) when there is one."""

    def __init__(
        self,
        message: str,
        reason: TerminationReason = TerminationReason.NO_RESOURCES,
        *,
        error: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.error = dict(error) if error else None


class Backend(Protocol):
    """What a controller needs from the infrastructure; every method is idempotent."""

    async def launch(
        self, cluster: str, spec: Mapping[str, Any], *, avoid_regions: Sequence[str] = ()
    ) -> Placement:
        """Bring up ``cluster`` and submit the task; raise :class:`LaunchFailed`."""
        ...

    async def probe(self, cluster: str, placement: Placement) -> Probe:
        """The job's state; raise :class:`TransientCheckError` when the check itself failed."""
        ...

    async def down(self, cluster: str, *, keep_storage: bool = False) -> None:
        """Tear the cluster down; nothing happens when it does not exist. ``keep_storage``
        keeps the buckets of its ``persistent: false`` storage (the job goes on elsewhere)."""
        ...

    async def save_logs(self, cluster: str, placement: Placement, dest: Path) -> None:
        """Copy the job's output to ``dest`` before the cluster goes; never raises."""
        ...

    def clusters(self) -> set[str]:
        """Names of the clusters this backend knows to exist (for leak checks)."""
        ...


# -- in-memory (simulation; tests and benchmarks only) ----------------------------------------


@dataclasses.dataclass(slots=True)
class SimScript:
    """How a simulated task behaves: per attempt, run ``duration`` s, then exit with the next
    code in ``exit_codes`` (0 once they run out); the first ``preemptions`` attempts are
    preempted halfway; ``setup_fails`` makes every launch fail in setup."""

    duration: float = 0.05
    exit_codes: list[int] = dataclasses.field(default_factory=list)
    preemptions: int = 0
    setup_fails: bool = False
    no_resources: bool = False  # every launch finds no resources (a typed error, with a hint)


@dataclasses.dataclass(slots=True)
class _SimCluster:
    region: str
    started: float
    script: SimScript
    preempt: bool
    exit_code: int


class InMemoryBackend:
    """IN-MEMORY SIMULATED clusters: no machines exist. For tests and the controller benchmark.

    Scripts are chosen by the task's ``name`` (``scripts``), else ``default``. ``regions``
    are tried in order. :meth:`preempt` kills a cluster now; :meth:`fail_checks` makes the next
    ``n`` checks of a cluster raise :class:`TransientCheckError`.
    """

    def __init__(
        self,
        *,
        default: SimScript | None = None,
        scripts: Mapping[str, SimScript] | None = None,
        regions: Sequence[str] = ("sim-1", "sim-2", "sim-3"),
        launch_delay: float = 0.0,
    ) -> None:
        self.default = default or SimScript()
        self.scripts = dict(scripts or {})
        self.regions = list(regions)
        self.launch_delay = launch_delay
        self._clusters: dict[str, _SimCluster] = {}
        self._attempts: dict[str, int] = {}  # per task name: launches so far
        self._failing_checks: dict[str, int] = {}
        self.launches = 0
        self.launch_regions: list[tuple[str, str]] = []

    def _script(self, spec: Mapping[str, Any]) -> SimScript:
        return self.scripts.get(str(spec.get("name")), self.default)

    async def launch(
        self, cluster: str, spec: Mapping[str, Any], *, avoid_regions: Sequence[str] = ()
    ) -> Placement:
        if self.launch_delay:
            await asyncio.sleep(self.launch_delay)
        script = self._script(spec)
        if script.setup_fails:
            raise LaunchFailed("setup exited with 1", R.SETUP_FAILED)
        if script.no_resources:
            error = {
                "code": "no-capacity",
                "message": "(simulated) no region has capacity for the task.",
                "hint": "Retry later, or relax the resources.",
            }
            raise LaunchFailed(f"{error['code']}: {error['message']}", R.NO_RESOURCES, error=error)
        choices = [r for r in self.regions if r not in avoid_regions] or self.regions
        key = str(spec.get("name"))
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        restarts = attempt - min(attempt, script.preemptions)
        code = script.exit_codes[restarts] if restarts < len(script.exit_codes) else 0
        self._clusters[cluster] = _SimCluster(
            choices[0], time.monotonic(), script, attempt < script.preemptions, code
        )
        self.launches += 1
        self.launch_regions.append((cluster, choices[0]))
        return Placement(choices[0], 1)

    async def probe(self, cluster: str, placement: Placement) -> Probe:
        left = self._failing_checks.get(cluster, 0)
        if left:
            self._failing_checks[cluster] = left - 1
            raise TransientCheckError("simulated: connection timed out")
        sim = self._clusters.get(cluster)
        if sim is None:
            return Probe(R.PREEMPTED)
        elapsed = time.monotonic() - sim.started
        if sim.preempt and elapsed >= sim.script.duration / 2:
            del self._clusters[cluster]
            return Probe(R.PREEMPTED)
        if elapsed < sim.script.duration:
            return Probe()
        if sim.exit_code == 0:
            return Probe(R.SUCCEEDED, 0)
        return Probe(R.USER_CODE_FAILED, sim.exit_code)

    async def down(self, cluster: str, *, keep_storage: bool = False) -> None:
        self._clusters.pop(cluster, None)

    async def save_logs(self, cluster: str, placement: Placement, dest: Path) -> None:
        sim = self._clusters.get(cluster)
        if sim is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(f"(simulated) ran in {sim.region}, exit code {sim.exit_code}\n")

    def clusters(self) -> set[str]:
        return set(self._clusters)

    def preempt(self, cluster: str) -> None:
        """Simulate the loss of the cluster's machines."""
        self._clusters.pop(cluster, None)

    def fail_checks(self, cluster: str, n: int) -> None:
        """The next ``n`` status checks of ``cluster`` fail transiently."""
        self._failing_checks[cluster] = n


# -- real clusters -----------------------------------------------------------------------------


class ClusterBackend:
    """Real clusters through the user operations of :mod:`styx.ops`, each blocking call in a
    thread.

    Loss is read from a refreshed status (:func:`styx.ops.queries.status`): a cluster that is
    missing, STOPPED, or DEGRADED with nodes the infra says are gone (a terminated instance) is
    preempted. A node that only does not answer (an SSH host, or a silent agent) may be a
    network blip, so that is a :class:`TransientCheckError`: the controller recovers only after
    several in a row. So is every typed error of the network, the agent, the infra or the state
    database (:func:`check_errors`) met while checking. Any other exception is a bug in Styx: it
    is not caught here, so the controller fails the job (CONTROLLER_ERROR, the traceback in its
    log) instead of reading the bug as a preemption and relaunching.
    """

    async def launch(
        self, cluster: str, spec: Mapping[str, Any], *, avoid_regions: Sequence[str] = ()
    ) -> Placement:
        return await asyncio.to_thread(self._launch, cluster, dict(spec), tuple(avoid_regions))

    def _launch(self, cluster: str, spec: dict[str, Any], avoid: tuple[str, ...]) -> Placement:
        from styx.errors import ResourcesUnavailable, SpecError, StyxError
        from styx.ops import queries
        from styx.ops.launch import launch
        from styx.spec.resources import Resources
        from styx.spec.task import Task

        task = Task.from_dict(spec)
        started = time.monotonic()
        try:
            result = launch(task, cluster, detach=True, quiet=True, avoid_regions=avoid)
        except (ResourcesUnavailable, SpecError) as e:
            raise LaunchFailed(f"{e.code}: {e.message}", R.NO_RESOURCES, error=_error(e)) from e
        except StyxError as e:  # a host died mid-launch, a transfer broke, ...: try again
            raise LaunchFailed(f"{e.code}: {e.message}", R.INFRA_ERROR, error=_error(e)) from e
        region = None
        for record in queries.status([cluster]):
            launched = Resources.from_dict(dict(record.launched_resources or {}))
            if launched.cloud and launched.region:
                region = f"{launched.cloud}/{launched.region}"
        log.info("%s: launched in %s in %.1f s", cluster, region, time.monotonic() - started)
        return Placement(region, result.job_id)

    async def probe(self, cluster: str, placement: Placement) -> Probe:
        return await asyncio.to_thread(self._probe, cluster, placement)

    def _probe(self, cluster: str, placement: Placement) -> Probe:
        from styx.ops import common, queries
        from styx.state.records import ClusterJobStatus, ClusterStatus

        with _check(cluster):
            records = queries.status([cluster], refresh=True)
        if not records or records[0].status is ClusterStatus.STOPPED:
            return Probe(R.PREEMPTED)
        record = records[0]
        if record.status is not ClusterStatus.UP:
            with _check(cluster):
                gone = common.provider_of(record).gone_nodes(common.handle_of(record))
            if gone:
                return Probe(R.PREEMPTED)
            raise TransientCheckError(f"cluster {cluster} is {record.status.value}")
        with _check(cluster):
            jobs = queries.queue(cluster, all_jobs=True)
        for job in jobs:
            if job.job_id != placement.cluster_job_id:
                continue
            # FAILED_DRIVER reads as PREEMPTED: the node under the job died, not the code.
            return Probe(R.of_cluster_job(ClusterJobStatus(job.status)), job.exit_code)
        raise TransientCheckError(f"job {placement.cluster_job_id} not in the queue yet")

    async def down(self, cluster: str, *, keep_storage: bool = False) -> None:
        await asyncio.to_thread(self._down, cluster, keep_storage)

    async def save_logs(self, cluster: str, placement: Placement, dest: Path) -> None:
        await asyncio.to_thread(self._save_logs, cluster, placement, dest)

    def _save_logs(self, cluster: str, placement: Placement, dest: Path) -> None:
        from styx.ops import queries

        if placement.cluster_job_id is None:
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(".part")
        try:
            with part.open("wb") as out:  # the bytes the job wrote, UTF-8 or not
                for chunk in queries.tail_log_bytes(
                    cluster, placement.cluster_job_id, follow=False
                ):
                    out.write(chunk)
            part.replace(dest)
        except Exception as e:  # output lost with the cluster: the job itself goes on
            log.warning("saving the output of %s: %s", cluster, e)
            part.unlink(missing_ok=True)

    def _down(self, cluster: str, keep_storage: bool = False) -> None:
        from styx.errors import NotFoundError
        from styx.ops import cluster_ops
        from styx.ops.pipeline import Pipeline

        started = time.monotonic()
        with contextlib.suppress(NotFoundError):
            cluster_ops.teardown(cluster, Pipeline(quiet=True), keep_storage=keep_storage)
            log.info("%s: torn down in %.1f s", cluster, time.monotonic() - started)

    def clusters(self) -> set[str]:
        from styx.ops import queries

        return {r.name for r in queries.status() if r.name.startswith("styx-mj-")}


def _error(err: Any) -> dict[str, str]:
    """What ``styx jobs logs`` shows of a StyxError that ended a launch."""
    return {"code": err.code, "message": err.message, "hint": err.hint or ""}


def check_errors() -> tuple[type[Exception], ...]:
    """The typed errors a status check may meet that say nothing about the job itself: the
    network and the agent (RemoteError: HostUnreachable, AgentError, a cloud API's errors),
    the infra (ResourcesUnavailable: NoCapacity, AuthFailed, ...), the state database
    (StateError), a cluster changing under the check (ConflictError, NotFoundError), and the
    user's config being edited (ConfigError)."""
    from styx.errors import (
        ConfigError,
        ConflictError,
        NotFoundError,
        RemoteError,
        ResourcesUnavailable,
        StateError,
    )

    return (
        RemoteError, ResourcesUnavailable, StateError, ConflictError, NotFoundError, ConfigError,
    )  # fmt: skip


@contextlib.contextmanager
def _check(cluster: str) -> Iterator[None]:
    """Turn the typed errors of :func:`check_errors` into :class:`TransientCheckError`; let
    anything else (a bug) through."""
    try:
        yield
    except check_errors() as e:  # the check failed, not (yet) the cluster
        raise TransientCheckError(f"{cluster}: {e}") from e
