"""Many processes hammering one database: no error reaches a caller, no write is lost.

50 OS processes (``STYX_STRESS_PROCS``) run for ``STYX_STRESS_SECONDS`` (default 30) against a
fresh database (so they also race to create the schema), mixing writes and reads of clusters,
cluster jobs, managed jobs and lock-protected shared counters. Each process remembers the last
value it wrote to each of its rows and checks its own rows as it goes; at the end the parent
checks that every row holds its last written value and every locked increment counted.
On SQLite, half the processes wait only 5 ms in SQLite's busy handler, so "database is locked"
does occur and must be absorbed by the state layer's retries (the report counts them).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from typing import Any

import pytest

# Imported here, before the fork, so that 50 children do not each import them again.
import styx.state.migrate  # noqa: F401
from styx.state import (
    ClusterJobStatus,
    ClusterStatus,
    ManagedJobStatus,
    NewManagedJob,
    add_managed_job,
    cluster_lock,
    delete_cluster,
    get_cluster,
    list_cluster_jobs,
    list_clusters,
    list_events,
    list_managed_jobs,
    record_cluster_job,
    set_cluster_status,
    set_managed_job_status,
    update_cluster,
    update_cluster_job,
    upsert_cluster,
)
from styx.state.db import Database
from styx.state.records import CLUSTER_TRANSITIONS, MANAGED_JOB_TRANSITIONS

from .helpers import run_in_processes

SECONDS = float(os.environ.get("STYX_STRESS_SECONDS", "30"))
PROCS = int(os.environ.get("STYX_STRESS_PROCS", "50"))
SHARED = [f"shared-{i}" for i in range(3)]
JOB_STATUSES = [s for s in ClusterJobStatus]
MJOB_STATUSES = [s for s in ManagedJobStatus if s is not ManagedJobStatus.PENDING]


class _Worker:
    """One process's share of the load and its memory of what it wrote."""

    def __init__(self, url: str, idx: int) -> None:
        # Half the SQLite processes give up SQLite's own busy wait almost at once, so that
        # "database is locked" really happens and the retry layer must absorb it.
        self.db = Database(url, busy_timeout_s=0.005 if idx % 2 else 30.0)
        self.idx = idx
        self.rng = random.Random(idx)
        self.ops: Counter[str] = Counter()
        self.errors: list[str] = []
        self.clusters: dict[str, Any] = {}  # name -> [status, n] or None once deleted
        self.jobs: dict[int, str] = {}
        self.mjobs: dict[int, str] = {}
        self.increments: Counter[str] = Counter()
        self.jobs_cluster = f"p{idx}-jobs"
        self.n = 0

    def run(self, end_at: float) -> dict[str, Any]:
        upsert_cluster(self.db, self.jobs_cluster, provider="local", handle={"proc": self.idx})
        self.clusters[self.jobs_cluster] = ["INIT", 0]
        ops = [
            (20, self.upsert),
            (8, self.transition),
            (3, self.delete),
            (10, self.cluster_job),
            (12, self.managed_job),
            (2, self.shared_increment),
            (45, self.read),
        ]
        weights = [w for w, _ in ops]
        while time.time() < end_at:
            [(_, op)] = self.rng.choices(ops, weights)
            try:
                op()
            except Exception as exc:  # the point of the test: nothing may escape
                self.errors.append(f"{op.__name__}: {type(exc).__name__}: {exc}")
        return {
            "ops": dict(self.ops),
            "retries": self.db.retries,
            "errors": self.errors,
            "clusters": self.clusters,
            "jobs_cluster": self.jobs_cluster,
            "jobs": self.jobs,
            "mjobs": self.mjobs,
            "increments": dict(self.increments),
        }

    def own(self) -> str:
        return f"p{self.idx}-c{self.rng.randrange(5)}"

    def upsert(self) -> None:
        # Any status the transition table allows from what the cluster is now (or starts as).
        name = self.own()
        known = self.clusters.get(name)
        current = ClusterStatus(known[0]) if known else None
        status = self.rng.choice(
            [s for s in ClusterStatus if CLUSTER_TRANSITIONS.allows(current, s)]
        )
        self.n += 1
        upsert_cluster(
            self.db,
            name,
            provider="local",
            handle={"nodes": [{"ip": f"10.{self.idx}.0.1"}], "n": self.n},
            status=status,
            metadata={"n": self.n},
        )
        self.clusters[name] = [status.value, self.n]
        self.ops["upsert_cluster"] += 1

    def transition(self) -> None:
        name = self.own()
        known = self.clusters.get(name)
        if not known:
            return
        current = ClusterStatus(known[0])
        target = self.rng.choice(
            [s for s in ClusterStatus if CLUSTER_TRANSITIONS.allows(current, s)]
        )
        if not set_cluster_status(self.db, name, target, expected=ClusterStatus(known[0])):
            raise AssertionError(f"compare-and-set lost on private cluster {name}")
        known[0] = target.value
        self.ops["set_cluster_status"] += 1

    def delete(self) -> None:
        name = self.own()
        gone = delete_cluster(self.db, name)
        if (gone is None) != (not self.clusters.get(name)):
            raise AssertionError(f"delete of {name} disagrees with what was written")
        self.clusters[name] = None
        self.ops["delete_cluster"] += 1

    def cluster_job(self) -> None:
        if self.jobs and self.rng.random() < 0.5:
            job_id = self.rng.choice(list(self.jobs))
            status = self.rng.choice(JOB_STATUSES)
            update_cluster_job(self.db, self.jobs_cluster, job_id, status=status)
            self.ops["update_cluster_job"] += 1
        else:
            job_id, status = len(self.jobs) + 1, ClusterJobStatus.PENDING
            record_cluster_job(self.db, self.jobs_cluster, job_id, name=f"j{job_id}", resources={})
            self.ops["record_cluster_job"] += 1
        self.jobs[job_id] = status.value

    def managed_job(self) -> None:
        live = [i for i, s in self.mjobs.items() if not ManagedJobStatus(s).is_terminal]
        if live and self.rng.random() < 0.7:
            job_id = self.rng.choice(live)
            current = ManagedJobStatus(self.mjobs[job_id])
            target = self.rng.choice(
                [s for s in MJOB_STATUSES if MANAGED_JOB_TRANSITIONS.allows(current, s)]
            )
            if not set_managed_job_status(self.db, job_id, target, expected=current):
                raise AssertionError(f"compare-and-set lost on private managed job {job_id}")
            self.mjobs[job_id] = target.value
            self.ops["set_managed_job_status"] += 1
        else:
            job = add_managed_job(
                self.db, NewManagedJob(name=f"p{self.idx}", spec={"run": "x"}, user_name="u")
            )
            self.mjobs[job.id] = job.status.value
            self.ops["add_managed_job"] += 1

    def shared_increment(self) -> None:
        key = self.rng.choice(SHARED)
        with cluster_lock(self.db, key, purpose=f"stress {self.idx}", timeout=120):
            rec = get_cluster(self.db, key)
            if rec is None:
                upsert_cluster(self.db, key, provider="local", handle={}, metadata={"n": 1})
            else:
                update_cluster(self.db, key, metadata={"n": rec.metadata["n"] + 1})
        self.increments[key] += 1
        self.ops["locked_increment"] += 1

    def read(self) -> None:
        kind = self.rng.randrange(4)
        if kind == 0:
            list_clusters(self.db)
            self.ops["list_clusters"] += 1
        elif kind == 1:
            name = self.own()
            rec = get_cluster(self.db, name)
            want = self.clusters.get(name)
            got = None if rec is None else [rec.status.value, rec.metadata["n"]]
            if name in self.clusters and got != want:
                raise AssertionError(f"read {got} from {name}, last wrote {want}")
            self.ops["get_cluster"] += 1
        elif kind == 2:
            list_managed_jobs(self.db, statuses=[ManagedJobStatus.RUNNING], limit=50)
            self.ops["list_managed_jobs"] += 1
        else:
            list_cluster_jobs(self.db, self.jobs_cluster, limit=20)
            list_events(self.db, self.own(), limit=5)
            self.ops["list_jobs_and_events"] += 1


def _work(url: str, idx: int, end_at: float) -> dict[str, Any]:
    return _Worker(url, idx).run(end_at)


def _verify(db: Database, results: list[dict[str, Any]]) -> None:
    clusters = {c.name: c for c in list_clusters(db)}
    mjobs = {j.id: j for j in list_managed_jobs(db)}
    added = 0
    for r in results:
        for name, want in r["clusters"].items():
            got = clusters.get(name)
            if want is None:
                assert got is None, f"{name} was deleted but is present"
            else:
                assert got is not None, f"{name} lost"
                if name != r["jobs_cluster"]:
                    assert [got.status.value, got.metadata["n"]] == want, name
        jobs = {j.job_id: j.status.value for j in list_cluster_jobs(db, r["jobs_cluster"])}
        assert jobs == {int(k): v for k, v in r["jobs"].items()}, r["jobs_cluster"]
        for job_id, status in r["mjobs"].items():
            assert mjobs[int(job_id)].status.value == status, job_id
        added += len(r["mjobs"])
    assert len(mjobs) == added, "managed jobs appeared or vanished"
    for key in SHARED:
        total = sum(r["increments"].get(key, 0) for r in results)
        rec = clusters.get(key)
        assert (rec.metadata["n"] if rec else 0) == total, f"lost locked increments on {key}"


@pytest.mark.slow
def test_many_processes_lose_nothing(
    db_url: str, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    end_at = time.time() + SECONDS
    started = time.monotonic()
    results = run_in_processes(
        _work, [(db_url, i, end_at) for i in range(PROCS)], timeout=SECONDS + 300
    )
    elapsed = time.monotonic() - started
    errors = [e for r in results for e in r["errors"]]
    assert not errors, f"{len(errors)} errors reached callers, first: {errors[:5]}"
    db = Database(db_url)
    _verify(db, results)
    db.close()

    ops: Counter[str] = Counter()
    for r in results:
        ops.update(r["ops"])
    total = sum(ops.values())
    writes = total - sum(v for k, v in ops.items() if k.startswith(("list", "get")))
    line = (
        f"\n[stress {backend}] {PROCS} processes, {elapsed:.1f} s: {total} ops "
        f"({total / elapsed:.0f}/s; {writes} writes, {total - writes} reads), "
        f"{sum(r['retries'] for r in results)} retried transactions, 0 errors, 0 lost: "
        + ", ".join(f"{k}={v}" for k, v in sorted(ops.items()))
    )
    with capsys.disabled():  # the op counts are the test's report: show them in any case
        print(line)
