"""``cost-report`` as data: what each cluster, managed job and DAG run has cost so far.

Prices are the ones the optimizer used at launch, recorded with the cluster when it is
provisioned (:func:`record_launch`, from :func:`styx.ops.stages.provision`), so a later catalog
change does not rewrite history. A cluster is billed while its machines may exist: from its
creation while INIT, UP or DEGRADED, not while STOPPED, until it is torn down; those intervals
come from its recorded status transitions, so the hours are exact. This machine and SSH pools
cost 0 unless the config sets ``local.hourly_price`` or ``ssh.hourly_price`` (per pool:
``ssh.context_configs.<pool>.hourly_price``), per node and hour.

A managed job's cost is the sum over every cluster it launched (each attempt and recovery is a
new incarnation of its cluster); the controller marks its launches with
:func:`launching_for`. A DAG run's cost is the sum over its tasks' managed jobs.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import dataclasses
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from styx.state.db import Database
    from styx.state.records import JSON, ClusterRecord
    from styx.state.usage import Change, CostInputs

#: Statuses in which a cluster's machines may exist and cost money.
BILLED = frozenset({"INIT", "UP", "DEGRADED"})
#: How a cluster that no longer exists is shown.
TERMINATED = "TERMINATED"

_MANAGED_JOB: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "styx_launching_for_managed_job", default=None
)


# --- recording, at launch ---------------------------------------------------------------------


@contextlib.contextmanager
def launching_for(managed_job_id: int) -> Iterator[None]:
    """Clusters provisioned inside this block (in this task or thread, and in the threads it
    starts with ``asyncio.to_thread``) are recorded as the managed job's."""
    token = _MANAGED_JOB.set(managed_job_id)
    try:
        yield
    finally:
        _MANAGED_JOB.reset(token)


def record_launch(
    db: Database,
    record: ClusterRecord,
    *,
    infra: str,
    resources: JSON | None,
    node_hourly_price: float | None,
) -> None:
    """Record what the cluster incarnation ``record`` costs per hour (``node_hourly_price`` per
    node, from the optimizer's candidate; None or NaN when unknown), and its resources."""
    from styx.state.usage import UsageRecord, record_usage

    price = node_hourly_price
    total = None if price is None or math.isnan(price) else price * record.num_nodes
    usage = UsageRecord(
        cluster_id=record.cluster_id,
        cluster_name=record.name,
        provider=record.provider,
        infra=infra,
        resources=resources,
        num_nodes=record.num_nodes,
        hourly_price=total,
        launched_at=record.created_at,
        managed_job_id=_MANAGED_JOB.get(),
        user_name=record.user_name,
    )
    record_usage(db, usage)


# --- the report -------------------------------------------------------------------------------


class ClusterCost(NamedTuple):
    """One cluster incarnation: where, what, when it was billed, and at what price (a named
    tuple, as :class:`JobCost`: a report holds tens of thousands).

    ``status`` is the live cluster's status, or ``TERMINATED``; ``hourly_price`` is for all
    nodes (None when unknown, and then ``cost`` is None too); ``intervals`` are the
    ``(start, end)`` times it was billed, the last one ending now while it still is;
    ``ended_at`` is when a torn-down one was last billed (None while it exists).
    """

    name: str
    cluster_id: str
    infra: str
    resources: JSON | None
    num_nodes: int
    status: str
    launched_at: float
    ended_at: float | None
    hourly_price: float | None
    managed_job_id: int | None
    intervals: tuple[tuple[float, float], ...]
    seconds: float  # billed so far: the intervals' lengths summed

    @property
    def hours(self) -> float:
        """Hours billed so far."""
        return self.seconds / 3600

    @property
    def cost(self) -> float | None:
        """Dollars so far, or None when the price is unknown."""
        return None if self.hourly_price is None else self.hourly_price * self.seconds / 3600


@dataclasses.dataclass(frozen=True, slots=True)
class Total:
    """A sum over clusters: billed seconds, dollars of the priced ones, and how many were not."""

    clusters: int = 0
    seconds: float = 0.0
    cost: float = 0.0
    unpriced: int = 0

    @classmethod
    def of(cls, clusters: Iterable[ClusterCost]) -> Total:
        """The sum over ``clusters``."""
        n = unpriced = 0
        seconds = cost = 0.0
        for c in clusters:
            n += 1
            seconds += c.seconds
            if c.hourly_price is None:
                unpriced += 1
            else:
                cost += c.hourly_price * c.seconds / 3600
        return cls(n, seconds, cost, unpriced)

    def __add__(self, other: Total) -> Total:
        return Total(
            self.clusters + other.clusters,
            self.seconds + other.seconds,
            self.cost + other.cost,
            self.unpriced + other.unpriced,
        )

    @property
    def hours(self) -> float:
        """Billed hours, all clusters together."""
        return self.seconds / 3600


class JobCost(NamedTuple):
    """A managed job: its clusters (one per attempt that provisioned) summed in ``total``."""

    id: int
    name: str
    status: str
    dag_run_id: int | None
    submitted_at: float
    ended_at: float | None
    total: Total


@dataclasses.dataclass(frozen=True, slots=True)
class DagRunCost:
    """A DAG run: its tasks' managed jobs summed in ``total``."""

    id: int
    name: str
    status: str
    jobs: int
    total: Total


@dataclasses.dataclass(frozen=True, slots=True)
class CostReport:
    """Clusters (live and torn down, newest first), managed jobs and DAG runs (newest first)
    active in the report's window, and the sum over the clusters."""

    now: float
    since: float | None
    clusters: tuple[ClusterCost, ...]
    jobs: tuple[JobCost, ...]
    dag_runs: tuple[DagRunCost, ...]
    total: Total


def billed_intervals(
    changes: Sequence[Change], created_at: float, now: float
) -> tuple[tuple[float, float], ...]:
    """When the incarnation created at ``created_at`` was billed, from its name's status
    changes (oldest first, possibly of several incarnations): from the creation at that time to
    its deletion, the spans in a :data:`BILLED` status; one still billed ends at ``now``.
    ``changes`` are ``(name, time, from_status, to_status)``; the name is not looked at."""
    i = _creation(changes, created_at)
    out: list[tuple[float, float]] = []
    since: float | None = None
    end = now
    for n, (_, at, old, new) in enumerate(changes[i:]):
        if old is None and (n or abs(at - created_at) > 1e-6):  # another incarnation's
            end = at  # (this one's deletion was not recorded)
            break
        if new in BILLED:
            since = at if since is None else since
        elif since is not None:
            out.append((since, at))
            since = None
        if new is None:
            break
    if since is not None:
        out.append((since, max(since, end)))
    return tuple(out)


def _creation(changes: Sequence[Change], created_at: float) -> int:
    """The index of the creation at ``created_at`` (to a microsecond), else of the first
    change after that time."""
    low, high = created_at - 1e-6, created_at + 1e-6
    i = bisect.bisect_left(changes, low, key=_time) if len(changes) > 8 else 0
    while i < len(changes) and changes[i][1] < low:
        i += 1
    # The previous incarnation's deletion may be recorded at the same time: skip it.
    for j in range(i, len(changes)):
        if changes[j][1] > high:
            break
        if changes[j][2] is None:
            return j
    return i


def _time(change: Change) -> float:
    return change[1]


def build(inputs: CostInputs, *, now: float, since: float | None = None) -> CostReport:
    """The report from what the state layer holds (pure: ``now`` is given).

    With ``since``, only clusters billed at some time after it, and managed jobs (and their DAG
    runs) still active then, are listed, each with its whole cost.
    """
    clusters = _clusters(inputs, now)
    by_job: dict[int, list[ClusterCost]] = {}
    for c in clusters:
        if c.managed_job_id is not None:
            by_job.setdefault(c.managed_job_id, []).append(c)
    empty = Total()
    jobs = [
        JobCost(
            id=j.id,
            name=j.name,
            status=j.status,
            dag_run_id=j.dag_run_id,
            submitted_at=j.submitted_at,
            ended_at=j.ended_at,
            total=Total.of(by_job[j.id]) if j.id in by_job else empty,
        )
        for j in reversed(inputs.jobs)
        if since is None or j.ended_at is None or j.ended_at >= since
    ]
    shown = [c for c in clusters if since is None or _billed_after(c, since)]
    total = Total.of(shown)
    shown.sort(key=lambda c: c.launched_at, reverse=True)
    return CostReport(now, since, tuple(shown), tuple(jobs), _runs(inputs, jobs), total)


def _clusters(inputs: CostInputs, now: float) -> list[ClusterCost]:
    """Every recorded incarnation, and the live clusters launched before prices were recorded
    (unknown price)."""
    live = {r.cluster_id: r for r in inputs.live}
    out: list[ClusterCost] = []
    for u in inputs.usage:
        rec = live.pop(u.cluster_id, None)
        intervals = billed_intervals(inputs.changes.get(u.cluster_name, ()), u.launched_at, now)
        seconds = sum(end - start for start, end in intervals)
        out.append(
            ClusterCost(
                name=u.cluster_name,
                cluster_id=u.cluster_id,
                infra=u.infra,
                resources=u.resources,
                num_nodes=u.num_nodes,
                status=TERMINATED if rec is None else rec.status.value,
                launched_at=u.launched_at,
                ended_at=None if rec is not None else _end(intervals),
                hourly_price=u.hourly_price,
                managed_job_id=u.managed_job_id,
                intervals=intervals,
                seconds=seconds,
            )
        )
    for rec in live.values():
        intervals = billed_intervals(inputs.changes.get(rec.name, ()), rec.created_at, now)
        out.append(
            ClusterCost(
                name=rec.name,
                cluster_id=rec.cluster_id,
                infra=_infra_of(rec),
                resources=rec.launched_resources,
                num_nodes=rec.num_nodes,
                status=rec.status.value,
                launched_at=rec.created_at,
                ended_at=None,
                hourly_price=None,
                managed_job_id=None,
                intervals=intervals,
                seconds=sum(end - start for start, end in intervals),
            )
        )
    return out


def _runs(inputs: CostInputs, jobs: Sequence[JobCost]) -> tuple[DagRunCost, ...]:
    sums: dict[int, tuple[int, Total]] = {}
    for j in jobs:
        if j.dag_run_id is not None:
            count, total = sums.get(j.dag_run_id, (0, Total()))
            sums[j.dag_run_id] = (count + 1, total + j.total)
    out = []
    for run_id in sorted(sums, reverse=True):
        name, status = inputs.runs.get(run_id, ("-", "-"))
        count, total = sums[run_id]
        out.append(DagRunCost(run_id, name, status, count, total))
    return tuple(out)


def _end(intervals: tuple[tuple[float, float], ...]) -> float | None:
    return intervals[-1][1] if intervals else None


def _billed_after(c: ClusterCost, since: float) -> bool:
    return c.ended_at is None or c.ended_at >= since or c.launched_at >= since


def _infra_of(rec: ClusterRecord) -> str:
    res = rec.launched_resources
    infra = res.get("infra") if isinstance(res, dict) else None
    return str(infra) if isinstance(infra, str) and infra else rec.provider


def cost_report(
    *, days: float | None = None, db: Database | None = None, job_resources: bool = True
) -> CostReport:
    """The report now, over the last ``days`` days (everything when None). Without
    ``job_resources``, managed jobs' clusters come without their resources (faster)."""
    from styx.ops import common
    from styx.state.usage import cost_inputs

    now = time.time()
    since = None if days is None else now - days * 86400
    inputs = cost_inputs(db or common.database(), job_resources=job_resources)
    return build(inputs, now=now, since=since)


def to_json(report: CostReport) -> dict[str, Any]:
    """The report as plain data (``styx cost-report --json``)."""

    def total(t: Total) -> dict[str, Any]:
        return {"clusters": t.clusters, "hours": t.hours, "cost": t.cost, "unpriced": t.unpriced}

    return {
        "now": report.now,
        "since": report.since,
        "clusters": [
            {
                "name": c.name,
                "cluster_id": c.cluster_id,
                "infra": c.infra,
                "resources": c.resources,
                "num_nodes": c.num_nodes,
                "status": c.status,
                "launched_at": c.launched_at,
                "ended_at": c.ended_at,
                "hours": c.hours,
                "hourly_price": c.hourly_price,
                "cost": c.cost,
                "managed_job_id": c.managed_job_id,
                "intervals": [list(i) for i in c.intervals],
            }
            for c in report.clusters
        ],
        "managed_jobs": [
            {
                "id": j.id,
                "name": j.name,
                "status": j.status,
                "dag_run_id": j.dag_run_id,
                "submitted_at": j.submitted_at,
                "ended_at": j.ended_at,
                **total(j.total),
            }
            for j in report.jobs
        ],
        "dag_runs": [
            {"id": r.id, "name": r.name, "status": r.status, "jobs": r.jobs, **total(r.total)}
            for r in report.dag_runs
        ],
        "total": total(report.total),
    }
