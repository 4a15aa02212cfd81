"""What the cost report computes, from recorded times: billed intervals, cluster costs, the sums
per managed job and DAG run, the window, and the price recorded at launch.

The state rows are written through the real repository functions with a fake clock, so every
duration is known exactly.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from styx.ops import cost
from styx.ops.cost import billed_intervals, build, launching_for, record_launch
from styx.state import clusters as repo
from styx.state import managed_jobs as jobs_repo
from styx.state.db import Database
from styx.state.records import ClusterStatus, ManagedJobStatus, NewManagedJob
from styx.state.usage import cost_inputs, get_usage

H = 3600.0
T0 = 1_800_000_000.0


class Clock:
    """A settable ``time.time`` for the state layer's writes."""

    def __init__(self) -> None:
        self.now = T0

    def time(self) -> float:
        return self.now

    def at(self, hours: float) -> Clock:
        self.now = T0 + hours * H
        return self


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(repo, "time", types.SimpleNamespace(time=c.time))
    monkeypatch.setattr(jobs_repo, "time", types.SimpleNamespace(time=c.time))
    return c


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path}/state.db")
    yield database
    database.close()


def launch(db: Database, clock: Clock, name: str, at: float, price: float | None) -> str:
    """A cluster created INIT at hour ``at``, priced ``price`` per node-hour (2 nodes), UP at
    once; returns its cluster id."""
    clock.at(at)
    rec = repo.upsert_cluster(db, name, provider="local", handle={}, num_nodes=2)
    record_launch(db, rec, infra="local", resources={"cpus": "2+"}, node_hourly_price=price)
    repo.set_cluster_status(db, name, ClusterStatus.UP)
    return rec.cluster_id


def set_status(db: Database, clock: Clock, name: str, at: float, status: ClusterStatus) -> None:
    clock.at(at)
    repo.set_cluster_status(db, name, status)


def down(db: Database, clock: Clock, name: str, at: float) -> None:
    clock.at(at)
    repo.delete_cluster(db, name)


# --- billed intervals, pure ----------------------------------------------------------------


def test_stopped_time_is_not_billed() -> None:
    changes = [
        ("c", 0.0, None, "INIT"),
        ("c", 1.0, "INIT", "UP"),
        ("c", 5.0, "UP", "STOPPED"),
        ("c", 9.0, "STOPPED", "INIT"),
        ("c", 10.0, "INIT", "UP"),
        ("c", 12.0, "UP", None),
    ]
    assert billed_intervals(changes, 0.0, now=100.0) == ((0.0, 5.0), (9.0, 12.0))


def test_each_incarnation_of_a_name_is_billed_on_its_own() -> None:
    changes = [
        ("c", 0.0, None, "INIT"),
        ("c", 2.0, "INIT", None),
        ("c", 5.0, None, "UP"),
        ("c", 6.0, "UP", "DEGRADED"),
    ]
    assert billed_intervals(changes, 0.0, now=9.0) == ((0.0, 2.0),)
    assert billed_intervals(changes, 5.0, now=9.0) == ((5.0, 9.0),)  # live: up to now


def test_a_creation_at_the_time_of_the_previous_deletion_is_found() -> None:
    changes = [
        ("c", 0.0, None, "UP"),
        ("c", 4.0, "UP", None),
        ("c", 4.0, None, "INIT"),
        ("c", 5.0, "INIT", "UP"),
    ]
    assert billed_intervals(changes, 4.0, now=6.0) == ((4.0, 6.0),)
    assert billed_intervals(changes, 0.0, now=6.0) == ((0.0, 4.0),)


def test_a_lost_deletion_ends_at_the_next_creation() -> None:
    changes = [("c", 0.0, None, "UP"), ("c", 4.0, None, "INIT"), ("c", 6.0, "INIT", None)]
    assert billed_intervals(changes, 0.0, now=9.0) == ((0.0, 4.0),)


def test_adopted_stopped_cluster_is_not_billed_until_started() -> None:
    changes = [("c", 0.0, None, "STOPPED"), ("c", 3.0, "STOPPED", "UP")]
    assert billed_intervals(changes, 0.0, now=4.5) == ((3.0, 4.5),)
    assert billed_intervals([], 0.0, now=4.5) == ()


# --- clusters, from recorded rows ------------------------------------------------------------


def test_cluster_cost_is_price_times_hours_up(db: Database, clock: Clock) -> None:
    launch(db, clock, "a", 0, 1.25)  # 2 nodes: $2.50/h
    set_status(db, clock, "a", 2, ClusterStatus.STOPPED)
    set_status(db, clock, "a", 5, ClusterStatus.UP)
    down(db, clock, "a", 6.5)
    report = build(cost_inputs(db), now=T0 + 100 * H)
    (c,) = report.clusters
    assert (c.name, c.status, c.num_nodes, c.infra) == ("a", "TERMINATED", 2, "local")
    assert c.hours == pytest.approx(3.5)
    assert c.hourly_price == pytest.approx(2.5)
    assert c.cost == pytest.approx(8.75)
    assert c.ended_at == pytest.approx(T0 + 6.5 * H)
    assert report.total.cost == pytest.approx(8.75)


def test_live_cluster_is_billed_up_to_now(db: Database, clock: Clock) -> None:
    launch(db, clock, "live", 0, 0.5)
    (c,) = build(cost_inputs(db), now=T0 + 3 * H).clusters
    assert (c.status, c.ended_at) == ("UP", None)
    assert c.cost == pytest.approx(3.0)


def test_reused_name_keeps_two_histories(db: Database, clock: Clock) -> None:
    first = launch(db, clock, "x", 0, 1.0)
    down(db, clock, "x", 1)
    second = launch(db, clock, "x", 10, 3.0)
    report = build(cost_inputs(db), now=T0 + 12 * H)
    by_id = {c.cluster_id: c for c in report.clusters}
    assert by_id[first].cost == pytest.approx(2.0)  # 1 h x 2 nodes x $1
    assert by_id[second].cost == pytest.approx(12.0)  # 2 h x 2 nodes x $3
    assert [c.cluster_id for c in report.clusters] == [second, first]  # newest first


def test_unknown_price_is_not_a_cost(db: Database, clock: Clock) -> None:
    launch(db, clock, "p", 0, 1.0)
    launch(db, clock, "q", 0, math.nan)  # the catalog had no price
    report = build(cost_inputs(db), now=T0 + H)
    q = next(c for c in report.clusters if c.name == "q")
    assert (q.hourly_price, q.cost) == (None, None)
    assert q.hours == pytest.approx(1.0)
    assert report.total.cost == pytest.approx(2.0) and report.total.unpriced == 1


def test_cluster_launched_before_prices_were_recorded_is_listed_unpriced(
    db: Database, clock: Clock
) -> None:
    clock.at(0)
    repo.upsert_cluster(db, "old", provider="local", handle={}, status=ClusterStatus.UP)
    (c,) = build(cost_inputs(db), now=T0 + 2 * H).clusters
    assert (c.name, c.status, c.hourly_price, c.cost) == ("old", "UP", None, None)
    assert c.hours == pytest.approx(2.0)


def test_days_window_keeps_whole_costs_of_what_was_up_in_it(db: Database, clock: Clock) -> None:
    launch(db, clock, "ancient", 0, 1.0)
    down(db, clock, "ancient", 1)
    launch(db, clock, "recent", 40 * 24, 1.0)  # day 40, still up
    now = T0 + 41 * 24 * H
    names = [c.name for c in build(cost_inputs(db), now=now, since=now - 30 * 86400).clusters]
    assert names == ["recent"]
    report = build(cost_inputs(db), now=now)
    assert sorted(c.name for c in report.clusters) == ["ancient", "recent"]


# --- managed jobs and DAG runs --------------------------------------------------------------


def _job(db: Database, name: str, dag_run_id: int | None = None) -> int:
    return jobs_repo.add_managed_job(
        db, NewManagedJob(name=name, spec={}), dag_run_id=dag_run_id
    ).id


def test_managed_job_cost_sums_every_attempt(db: Database, clock: Clock) -> None:
    job = _job(db, "train")
    other = _job(db, "idle")
    name = f"styx-mj-{job}"
    with launching_for(job):
        launch(db, clock, name, 0, 1.0)  # attempt 0: 1 h
    down(db, clock, name, 1)  # preempted
    with launching_for(job):
        launch(db, clock, name, 2, 2.0)  # recovery, elsewhere: 0.5 h at $4/h
    down(db, clock, name, 2.5)
    with launching_for(job):
        launch(db, clock, name, 3, 1.0)  # and again, still up
    launch(db, clock, "mine", 0, 1.0)  # the user's own cluster: not the job's
    report = build(cost_inputs(db), now=T0 + 4 * H)
    by_id = {j.id: j for j in report.jobs}
    t = by_id[job].total
    assert (t.clusters, t.unpriced) == (3, 0)
    assert t.hours == pytest.approx(2.5)
    assert t.cost == pytest.approx(2.0 + 2.0 + 2.0)
    assert by_id[other].total.clusters == 0 and by_id[other].total.cost == 0
    assert [j.id for j in report.jobs] == [other, job]  # newest first
    assert report.total.cost == pytest.approx(6.0 + 8.0)


def test_outside_launching_for_a_cluster_belongs_to_no_job(db: Database, clock: Clock) -> None:
    with launching_for(3):
        pass
    cid = launch(db, clock, "c", 0, 1.0)
    usage = get_usage(db, cid)
    assert usage is not None and usage.managed_job_id is None


def test_dag_run_cost_sums_its_tasks(db: Database, clock: Clock) -> None:
    run, (a, b) = jobs_repo.add_dag_run(
        db, "pipe", {}, jobs=[NewManagedJob(name="a", spec={}), NewManagedJob(name="b", spec={})]
    )
    with launching_for(a.id):
        launch(db, clock, f"styx-mj-{a.id}", 0, 1.0)
    down(db, clock, f"styx-mj-{a.id}", 1)
    with launching_for(b.id):
        launch(db, clock, f"styx-mj-{b.id}", 1, 0.25)
    down(db, clock, f"styx-mj-{b.id}", 3)
    (r,) = build(cost_inputs(db), now=T0 + 5 * H).dag_runs
    assert (r.id, r.name, r.status, r.jobs) == (run.id, "pipe", "PENDING", 2)
    assert r.total.cost == pytest.approx(2.0 + 1.0)
    assert r.total.hours == pytest.approx(3.0)


def test_ended_job_before_the_window_is_left_out(db: Database, clock: Clock) -> None:
    clock.at(0)
    job = _job(db, "old")
    for status in (ManagedJobStatus.STARTING, ManagedJobStatus.CANCELLED):
        jobs_repo.set_managed_job_status(db, job, status)
    now = T0 + 40 * 86400
    assert build(cost_inputs(db), now=now, since=now - 30 * 86400).jobs == ()
    assert [j.id for j in build(cost_inputs(db), now=now).jobs] == [job]


def test_json_has_every_number(db: Database, clock: Clock) -> None:
    launch(db, clock, "a", 0, 1.0)
    data = cost.to_json(build(cost_inputs(db), now=T0 + H))
    (c,) = data["clusters"]
    assert c["cost"] == pytest.approx(2.0) and c["hourly_price"] == 2.0
    assert c["intervals"] == [[T0, T0 + H]]
    assert data["total"] == {"clusters": 1, "hours": pytest.approx(1.0), "cost": 2.0, "unpriced": 0}


def test_many_incarnations_of_one_name_are_each_found() -> None:
    changes = []
    for k in range(6):  # created at 10k, up at 10k+1, deleted at 10k+3 (the next creation: 10k+10)
        t = 10.0 * k
        changes += [("c", t, None, "INIT"), ("c", t + 1, "INIT", "UP"), ("c", t + 3, "UP", None)]
    for k in range(6):
        assert billed_intervals(changes, 10.0 * k, now=99.0) == ((10.0 * k, 10.0 * k + 3),)
    assert billed_intervals(changes, 5.0, now=99.0) == ()  # no incarnation was created then
