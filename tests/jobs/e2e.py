"""Managed jobs on real clusters (SSH pools, AWS through moto, GCP through its stand-in):
helpers and the scenarios of issue 7's "Must show", written once and run on each infra by
tests/jobs/test_jobs_ssh.py, tests/aws/test_aws_jobs.py and tests/gcp/test_gcp_jobs.py.

Jobs go in through ``styx jobs launch``, and the real daemon (supervisor and controller, with
the real ``ClusterBackend``) drives them while the test injects faults (kills a host,
terminates an instance, ``kill -9`` of the controller) and reads the database as it goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from tests import leaks

from styx.errors import StyxError
from styx.jobs.controller import cluster_name
from styx.state import db as dbmod
from styx.state import managed_jobs as repo
from styx.state.clusters import get_cluster, list_clusters
from styx.state.db import Database
from styx.state.records import DagRunStatus, ManagedJobEvent, ManagedJobRecord, ManagedJobStatus

S = ManagedJobStatus


@contextlib.contextmanager
def jobs_database(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: Mapping[str, str] | None = None,
    after: Callable[[], None] = lambda: None,
) -> Iterator[Database]:
    """The state database of ``home`` for a managed-jobs scenario, with ``STYX_HOME`` (and
    ``env``) set through ``monkeypatch``. Afterwards: the daemon is stopped, no process of any
    cluster started meanwhile is alive, and no managed-job cluster is left in the database
    (``after()`` runs between the two, e.g. to reboot hosts a test powered off)."""
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    monkeypatch.setenv("STYX_HOME", str(home))
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    dbmod.clear_cache()
    before = leaks.snapshot()
    database = Database.open()
    yield database
    stop_everything(home)
    leaked = [c.name for c in list_clusters(database) if c.name.startswith("styx-mj-")]
    leaks.assert_none_since(before, (str(home),))
    after()
    database.close()
    dbmod.clear_cache()
    assert leaked == []


#: The jobs daemon's knobs for tests: poll clusters every 0.5 s (not 10), exit 2 s after the
#: last job ends (not 60).
FAST_CONTROLLER = {"STYX_JOBS_POLL_INTERVAL": "0.5", "STYX_JOBS_IDLE_EXIT": "2"}


def job(db: Database, job_id: int) -> ManagedJobRecord:
    return repo.require_managed_job(db, job_id)


def events(db: Database, job_id: int) -> list[ManagedJobEvent]:
    return repo.list_managed_job_events(db, job_id)


def history(db: Database, job_id: int) -> list[S]:
    return [e.to_status for e in events(db, job_id)]


def wait_until(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def wait_status(db: Database, job_id: int, want: S, timeout: float, attempt: int = 0) -> None:
    """Wait for the job to be in ``want`` with at least ``attempt`` recoveries behind it;
    fail early, with the job's history, when it ends in another status."""

    def reached() -> bool:
        record = job(db, job_id)
        if record.status.is_terminal and record.status != want:
            raise AssertionError(f"job {job_id} ended {record.status}: {history(db, job_id)}")
        return record.status == want and record.recovery_count >= attempt

    wait_until(reached, timeout, f"job {job_id} to be {want} (recovery {attempt})")


def cluster_hosts(db: Database, name: str) -> list[str]:
    """The addresses (or instance ids) a cluster's record holds now."""
    record = get_cluster(db, name)
    if record is None:
        return []
    handle = dict(record.handle)
    extra = handle.get("extra") or {}
    if "hosts" in extra:
        return list(extra["hosts"])
    return [n.get("instance_id") or n.get("ip") for n in handle.get("nodes") or []]


def span(db: Database, job_id: int) -> tuple[float, float]:
    """When the job last went RUNNING and when it ended, from its recorded events."""
    evs = events(db, job_id)
    start = max(e.time for e in evs if e.to_status == S.RUNNING)
    end = max(e.time for e in evs if e.to_status.is_terminal)
    return start, end


def wait_job_running_on_cluster(db: Database, job_id: int, timeout: float) -> None:
    """Wait until the agent on the job's cluster runs it (not only queued it)."""
    from styx import sdk

    cluster_job = (job(db, job_id).resources or {})["cluster_job_id"]

    def running() -> bool:
        try:
            rows = sdk.queue(cluster_name(job_id), all_jobs=True)
        except StyxError:  # a node still coming up, a forward being remade: look again
            return False
        return any(r.job_id == cluster_job and r.status == "RUNNING" for r in rows)

    wait_until(running, timeout, f"job {job_id} to run on its cluster")


# --- the scenarios ----------------------------------------------------------------------------
# ``infra`` is the inside of a task's ``resources`` mapping: ``infra: ssh/lab`` or
# ``infra: aws, cpus: 2``.

#: ``preempt(db, cluster)`` takes the cluster's machines away and returns what it killed (for
#: the scenario to check the next attempt landed elsewhere); ``revive(killed)`` may bring an
#: earlier one back, as capacity returns.
Preempt = Callable[[Database, str], str]


def everything_at_once(
    db: Database,
    home: Path,
    infra: str,
    preempt: Preempt,
    revive: Callable[[list[str]], None] = lambda killed: None,
    *,
    strategy: str | None = None,
    launch_timeout: float = 180,
    blip: Preempt | None = None,
) -> list[str]:
    """Through ``styx jobs launch`` and the real daemon, at the same time: a job preempted ten
    times in a row, a job whose code fails (``max_restarts_on_errors: 2``), and two diamond DAG
    runs; halfway through, ``kill -9`` of the controller. Returns the placement
    (``infra/region``) of each of the preempted job's eleven attempts.

    With ``blip(db, cluster)`` (cut a node off for a while, then restore it), the long task C
    of the failing DAG is cut off while it runs: status checks of its cluster hang, retry or
    fail, and it must not be recovered.

    The exact histories checked below also prove that the controller's restart recovered
    nothing that was healthy: a needless recovery would add a RECOVERING to one of them.
    """
    env = {**os.environ, **FAST_CONTROLLER}
    jobs_dir = home / "jobs"
    [train] = launch(env, home, "train", train_yaml(infra, strategy))
    [flaky] = launch(env, home, "flaky", flaky_yaml(infra))
    ok, bad = diamond_yamls(infra)
    ok_ids, bad_ids = launch(env, home, "ok", ok), launch(env, home, "bad", bad)

    blipped: list[threading.Thread] = []

    def meanwhile(attempt: int) -> None:
        c = bad_ids[2]
        if blip is not None and not blipped and job(db, c).status == S.RUNNING:
            # In the background: the preempted job must not finish while this goes on.
            thread = threading.Thread(target=blip, args=(db, cluster_name(c)))
            thread.start()
            blipped.append(thread)
        if attempt != 5:
            return
        victim = int((jobs_dir / "controller.pid").read_text())
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: int((jobs_dir / "controller.pid").read_text()) != victim, 30, "a new one"
        )

    regions = preempt_ten_times(db, train, preempt, revive, launch_timeout, meanwhile)
    for thread in blipped:
        thread.join()
    others = [flaky, *ok_ids, *bad_ids]
    wait_until(lambda: all(job(db, i).status.is_terminal for i in others), 420, "the rest")
    check_restarts(db, flaky)
    check_diamonds(db, ok_ids, bad_ids)
    if blip is not None:
        assert blipped, "task C never ran while the preempted job was being recovered"
        # Checks of C's cluster hung or failed during the cut; none of that recovered it.
        assert history(db, bad_ids[2]) == [S.PENDING, S.STARTING, S.RUNNING, S.SUCCEEDED]
    assert "exited with -9" in (jobs_dir / "controller.log").read_text()

    # Output outlives the clusters: every attempt's, saved before each teardown.
    logs = styx_cli("jobs", "logs", str(train), env=env)
    assert logs.returncode == 0 and "step-6" in logs.stdout, logs.stdout + logs.stderr
    logs = styx_cli("jobs", "logs", str(flaky), env=env)
    assert logs.returncode == 1 and logs.stdout.count("attempt on ") == 3, logs.stdout
    # Idle, the daemon leaves; it left no cluster (the caller checks the infra).
    wait_until(lambda: not _daemon_running(jobs_dir), 60, "the daemon to exit when idle")
    check_costs(db, env, train, flaky, ok_ids, bad_ids)
    return regions


def check_costs(
    db: Database, env: dict[str, str], train: int, flaky: int, ok: list[int], bad: list[int]
) -> None:
    """``styx cost-report`` after the scenario: every cluster a job launched is the job's,
    priced at launch (the infra must price it above 0: a catalog, or a config price), torn
    down; the preempted job has one per attempt (eleven, more if the killed controller left
    a half-made one); the DAG runs sum their tasks, and D of the failing run launched none."""
    out = styx_cli("cost-report", "--json", "--all", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    mine: dict[int, list[dict]] = {}
    for c in data["clusters"]:
        if c["managed_job_id"] is not None:
            mine.setdefault(c["managed_job_id"], []).append(c)
    for c in (c for cs in mine.values() for c in cs):
        assert c["status"] == "TERMINATED" and c["hourly_price"] > 0, c
        assert c["hours"] > 0 and abs(c["cost"] - c["hourly_price"] * c["hours"]) < 1e-9, c
    assert len(mine.get(train, [])) >= 11, sorted((k, len(v)) for k, v in mine.items())
    assert len(mine.get(flaky, [])) >= 1  # restarts on errors keep the cluster
    assert bad[3] not in mine  # D was cancelled before it launched
    jobs = {j["id"]: j for j in data["managed_jobs"]}
    for job_id in (train, flaky, *ok, *bad):
        want = mine.get(job_id, [])
        got = jobs[job_id]
        assert (got["clusters"], got["unpriced"]) == (len(want), 0), got
        assert abs(got["cost"] - sum(c["cost"] for c in want)) < 1e-6, got
    runs = {r["id"]: r for r in data["dag_runs"]}
    for ids in (ok, bad):
        run = runs[job(db, ids[0]).dag_run_id or 0]
        assert run["jobs"] == 4 and run["clusters"] == sum(jobs[i]["clusters"] for i in ids)
        assert abs(run["cost"] - sum(jobs[i]["cost"] for i in ids)) < 1e-6, run


def launch(env: dict[str, str], home: Path, name: str, yaml: str) -> list[int]:
    """``styx jobs launch`` of ``yaml``; the managed job ids it printed."""
    path = home / f"{name}.yaml"
    path.write_text(yaml)
    out = styx_cli("jobs", "launch", str(path), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    line = out.stdout.strip()
    if line.startswith("Managed job "):
        return [int(line.split()[2])]
    return [int(i) for i in line.split("jobs ", 1)[1].rstrip(".").split(", ")]


def train_yaml(infra: str, strategy: str | None) -> str:
    recovery = f", job_recovery: {strategy}" if strategy else ""
    return (
        f"name: train\nresources: {{{infra}{recovery}}}\n"
        "run: for i in $(seq 1 6); do echo step-$i; sleep 1; done\n"
    )


def preempt_ten_times(
    db: Database,
    job_id: int,
    preempt: Preempt,
    revive: Callable[[list[str]], None],
    launch_timeout: float,
    meanwhile: Callable[[int], None] = lambda attempt: None,
    times: int = 10,
) -> list[str]:
    """Preempt the running job ten (``times``) times in a row, each time once it runs on its
    cluster, after ``meanwhile(attempt)``; it must still end SUCCEEDED. Returns the placement
    of each attempt."""
    name = cluster_name(job_id)
    killed: list[str] = []
    regions: list[str] = []
    for attempt in range(times):
        wait_status(db, job_id, S.RUNNING, launch_timeout, attempt)
        wait_job_running_on_cluster(db, job_id, 60)
        regions.append(str((job(db, job_id).resources or {}).get("region")))
        meanwhile(attempt)
        victim = preempt(db, name)
        assert victim not in killed[-1:], f"attempt {attempt} relaunched on {victim}"
        killed.append(victim)
        wait_status(db, job_id, S.RECOVERING, 120, attempt + 1)
        revive(killed)
    wait_status(db, job_id, S.SUCCEEDED, launch_timeout + 60, times)
    regions.append(str((job(db, job_id).resources or {}).get("region")))
    assert job(db, job_id).recovery_count == times
    steps = history(db, job_id)
    assert steps.count(S.RECOVERING) == times and steps.count(S.RUNNING) == times + 1
    assert steps[-3:] == [S.RECOVERING, S.RUNNING, S.SUCCEEDED]
    return regions


def flaky_yaml(infra: str) -> str:
    return (
        f"name: flaky\nresources: {{{infra}, job_recovery: {{max_restarts_on_errors: 2}}}}\n"
        "run: echo attempt on $(hostname); exit 3\n"
    )


def check_restarts(db: Database, job_id: int) -> None:
    """``max_restarts_on_errors: 2``: user code that exits 3 ran three times, then FAILED."""
    record = job(db, job_id)
    assert history(db, job_id) == [
        S.PENDING, S.STARTING, S.RUNNING, S.RECOVERING, S.RUNNING, S.RECOVERING, S.RUNNING,
        S.FAILED,
    ]  # fmt: skip
    assert record.restarts_on_errors == 2
    assert record.failure_reason == "user code exited with 3"


DIAMOND = """\
name: {name}
---
name: A
resources: {{{infra}}}
run: echo a
---
name: B
resources: {{{infra}}}
run: {b_run}
depends_on: [A]
---
name: C
resources: {{{infra}}}
run: {c_run}
depends_on: [A]
---
name: D
resources: {{{infra}}}
run: echo d
depends_on: [B, C]
"""


def diamond_yamls(infra: str) -> tuple[str, str]:
    """Two diamond DAGs (A before B and C, both before D): one where all succeed, one where B
    fails. Sleeps are long enough for launches slowed by everything else running at once, or
    redone after the controller's kill -9 (they overlap the preempted job's recoveries, so
    they cost no wall time)."""
    ok = DIAMOND.format(name="ok", infra=infra, b_run="sleep 40", c_run="sleep 40")
    bad = DIAMOND.format(name="bad", infra=infra, b_run="sleep 1; exit 1", c_run="sleep 45")
    return ok, bad


def check_diamonds(db: Database, ok: list[int], bad: list[int]) -> None:
    """In ``ok``, B and C overlap (their recorded RUNNING-to-end spans intersect) and D starts
    after both. In ``bad``, B fails: D is cancelled, without launching, while C is under way
    (launched, not ended), and C then succeeds."""
    for job_id in ok:
        assert job(db, job_id).status == S.SUCCEEDED, history(db, job_id)
    (_, a1), (b0, b1), (c0, c1), (d0, _) = (span(db, i) for i in ok)
    assert a1 <= b0 and a1 <= c0  # B and C start after A succeeded
    overlap = min(b1, c1) - max(b0, c0)
    assert overlap > 5, f"B ran {b0:.1f}-{b1:.1f}, C ran {c0:.1f}-{c1:.1f}"
    assert d0 >= max(b1, c1)  # D starts after both
    assert _run_status(db, ok[0]) == DagRunStatus.SUCCEEDED

    a, b, c, d = bad
    assert job(db, a).status == S.SUCCEEDED
    assert job(db, b).status == S.FAILED, history(db, b)
    assert job(db, c).status == S.SUCCEEDED, history(db, c)  # not stopped by B's failure
    assert history(db, d) == [S.PENDING, S.CANCELLED]  # D never launched
    d_cancelled = events(db, d)[-1].time
    c_started = next(e.time for e in events(db, c) if e.to_status == S.STARTING)
    c_ended = span(db, c)[1]
    assert c_started < d_cancelled < c_ended, (c_started, d_cancelled, c_ended)  # C was under way
    assert _run_status(db, a) == DagRunStatus.FAILED


def _run_status(db: Database, job_id: int) -> DagRunStatus | None:
    run = repo.get_dag_run(db, job(db, job_id).dag_run_id or 0)
    return run.status if run is not None else None


def styx_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def stop_everything(home: Path) -> None:
    """After a failed scenario: cancel what is still active and let the daemon finish, so
    that no cluster outlives the test."""
    jobs_dir = home / "jobs"
    if not _daemon_running(jobs_dir):
        return
    env = {**os.environ, "STYX_HOME": str(home)}
    styx_cli("jobs", "cancel", "--all", env=env)
    deadline = time.monotonic() + 120
    while _daemon_running(jobs_dir) and time.monotonic() < deadline:
        time.sleep(0.5)


def _daemon_running(jobs_dir: Path) -> bool:
    for name in ("supervisor.pid", "controller.pid"):
        try:
            os.kill(int((jobs_dir / name).read_text()), 0)
        except (OSError, ValueError):
            continue
        return True
    return False
