"""Managed jobs on real clusters (SSH pools, AWS through moto): helpers and the scenarios of
issue 7's "Must show", written once and run on each infra by tests/jobs/test_jobs_ssh.py and
tests/aws/test_aws_jobs.py.

:func:`controller_thread` runs the real controller with the real ``ClusterBackend`` in a thread
of the test process, so a test can inject faults (kill a host, terminate an instance) while the
jobs run, and read the database as it goes. The kill -9 scenario uses the real daemon instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from styx.jobs.backend import ClusterBackend
from styx.jobs.controller import Controller, cluster_name
from styx.jobs.submit import submit
from styx.spec.dag import Dag
from styx.state import managed_jobs as repo
from styx.state.clusters import get_cluster
from styx.state.db import Database
from styx.state.records import DagRunStatus, ManagedJobEvent, ManagedJobRecord, ManagedJobStatus

S = ManagedJobStatus


@contextmanager
def controller_thread(db: Database, **kwargs: Any) -> Iterator[Controller]:
    """Run a controller over ``ClusterBackend`` in a thread until the block ends."""
    kwargs.setdefault("poll_interval", 0.5)
    kwargs.setdefault("sweep_interval", 0.2)
    controller = Controller(db, ClusterBackend(), **kwargs)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(controller.run(),))
    thread.start()
    try:
        yield controller
    finally:
        loop.call_soon_threadsafe(controller.stop)
        thread.join(600)
        loop.close()


def queue(db: Database, yaml: str) -> list[int]:
    """Submit a task or DAG; the managed job ids in task order."""
    return submit(db, Dag.from_yaml_str(yaml))[1]


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
        rows = sdk.queue(cluster_name(job_id), all_jobs=True)
        return any(r.job_id == cluster_job and r.status == "RUNNING" for r in rows)

    wait_until(running, timeout, f"job {job_id} to run on its cluster")


# --- the scenarios ----------------------------------------------------------------------------
# ``infra`` is the inside of a task's ``resources`` mapping: ``infra: ssh/lab`` or
# ``infra: aws, cpus: 2``.

#: ``preempt(db, cluster)`` takes the cluster's machines away and returns what it killed (for
#: the scenario to check the next attempt landed elsewhere); ``revive(killed)`` may bring an
#: earlier one back, as capacity returns.
Preempt = Callable[[Database, str], str]


def ten_preemptions(
    db: Database,
    infra: str,
    preempt: Preempt,
    revive: Callable[[list[str]], None] = lambda killed: None,
    *,
    strategy: str | None = None,
    launch_timeout: float = 180,
) -> list[str]:
    """A running job is preempted ten times in a row and still ends SUCCEEDED; returns the
    placement (``infra/region``) of every attempt."""
    recovery = f", job_recovery: {strategy}" if strategy else ""
    [job_id] = queue(
        db,
        f"name: train\nresources: {{{infra}{recovery}}}\n"
        "run: for i in $(seq 1 6); do echo step-$i; sleep 1; done\n",
    )
    name = cluster_name(job_id)
    killed: list[str] = []
    regions: list[str] = []
    with controller_thread(db, check_failures=2):
        for attempt in range(10):
            wait_status(db, job_id, S.RUNNING, launch_timeout, attempt)
            wait_job_running_on_cluster(db, job_id, 60)
            regions.append(str((job(db, job_id).resources or {}).get("region")))
            victim = preempt(db, name)
            assert victim not in killed[-1:], f"attempt {attempt} relaunched on {victim}"
            killed.append(victim)
            wait_status(db, job_id, S.RECOVERING, 120, attempt + 1)
            revive(killed)
        wait_status(db, job_id, S.SUCCEEDED, launch_timeout + 60, 10)
        regions.append(str((job(db, job_id).resources or {}).get("region")))
    record = job(db, job_id)
    assert record.recovery_count == 10
    steps = history(db, job_id)
    assert steps.count(S.RECOVERING) == 10 and steps.count(S.RUNNING) == 11
    assert steps[-3:] == [S.RECOVERING, S.RUNNING, S.SUCCEEDED]
    return regions


def restarts_twice_then_fails(db: Database, infra: str) -> int:
    """``max_restarts_on_errors: 2``: user code that exits 3 runs three times, then FAILED."""
    [job_id] = queue(
        db,
        f"name: flaky\nresources: {{{infra}, job_recovery: {{max_restarts_on_errors: 2}}}}\n"
        "run: echo attempt on $(hostname); exit 3\n",
    )
    with controller_thread(db):
        wait_status(db, job_id, S.FAILED, 300)
    record = job(db, job_id)
    assert history(db, job_id) == [
        S.PENDING, S.STARTING, S.RUNNING, S.RECOVERING, S.RUNNING, S.RECOVERING, S.RUNNING,
        S.FAILED,
    ]  # fmt: skip
    assert record.restarts_on_errors == 2
    assert record.failure_reason == "user code exited with 3"
    return job_id


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


def diamonds(db: Database, infra: str) -> None:
    """Two diamond DAG runs (A before B and C, both before D) on one controller at once.

    In the first, B and C overlap (their recorded RUNNING-to-end spans intersect) and D starts
    after both. In the second, B fails: D is cancelled without launching while C finishes.
    """
    ok = queue(db, DIAMOND.format(name="ok", infra=infra, b_run="sleep 6", c_run="sleep 6"))
    bad = queue(
        db, DIAMOND.format(name="bad", infra=infra, b_run="sleep 1; exit 1", c_run="sleep 8")
    )
    with controller_thread(db):
        wait_until(
            lambda: all(job(db, i).status.is_terminal for i in ok + bad), 420, "both runs to end"
        )
    for job_id in ok:
        assert job(db, job_id).status == S.SUCCEEDED, history(db, job_id)
    (_, a1), (b0, b1), (c0, c1), (d0, _) = (span(db, i) for i in ok)
    assert a1 <= b0 and a1 <= c0  # B and C start after A succeeded
    overlap = min(b1, c1) - max(b0, c0)
    assert overlap > 2, f"B ran {b0:.1f}-{b1:.1f}, C ran {c0:.1f}-{c1:.1f}"
    assert d0 >= max(b1, c1)  # D starts after both
    assert _run_status(db, ok[0]) == DagRunStatus.SUCCEEDED

    a, b, c, d = bad
    assert job(db, a).status == S.SUCCEEDED
    assert job(db, b).status == S.FAILED, history(db, b)
    assert job(db, c).status == S.SUCCEEDED, history(db, c)  # not stopped by B's failure
    assert history(db, d) == [S.PENDING, S.CANCELLED]  # D never launched
    assert span(db, c)[1] > span(db, b)[1]  # C finished after B failed
    assert _run_status(db, a) == DagRunStatus.FAILED


def _run_status(db: Database, job_id: int) -> DagRunStatus | None:
    run = repo.get_dag_run(db, job(db, job_id).dag_run_id or 0)
    return run.status if run is not None else None


def styx_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def kill_9_of_the_controller(db: Database, home: Path, infra: str, tmp_path: Path) -> None:
    """``styx jobs launch`` starts the daemon; ``kill -9`` of its controller mid-run: the
    supervisor starts a new one, which finds the job's cluster still up and keeps watching
    it (no recovery, no second cluster); ``styx jobs logs`` then shows the whole output."""
    env = {**os.environ, "STYX_JOBS_POLL_INTERVAL": "0.5", "STYX_JOBS_IDLE_EXIT": "2"}
    task = tmp_path / "long.yaml"
    task.write_text(
        f"name: long\nresources: {{{infra}}}\n"
        "run: for i in $(seq 1 12); do echo tick-$i; sleep 1; done\n"
    )
    out = styx_cli("jobs", "launch", str(task), env=env)
    assert out.returncode == 0, out.stderr
    job_id = int(out.stdout.split()[2])
    wait_status(db, job_id, S.RUNNING, 240)
    wait_job_running_on_cluster(db, job_id, 60)
    jobs_dir = home / "jobs"
    victim = int((jobs_dir / "controller.pid").read_text())
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: int((jobs_dir / "controller.pid").read_text()) != victim, 30, "a new controller"
    )
    wait_status(db, job_id, S.SUCCEEDED, 240)
    assert history(db, job_id) == [S.PENDING, S.STARTING, S.RUNNING, S.SUCCEEDED]
    logs = styx_cli("jobs", "logs", str(job_id), env=env)
    assert "tick-12" in logs.stdout and logs.returncode == 0, logs.stdout + logs.stderr
    assert "exited with -9" in (jobs_dir / "controller.log").read_text()
    # The daemon exits once idle, and leaves no cluster behind.
    wait_until(lambda: not (_daemon_running(jobs_dir)), 60, "the daemon to exit when idle")


def _daemon_running(jobs_dir: Path) -> bool:
    for name in ("supervisor.pid", "controller.pid"):
        try:
            os.kill(int((jobs_dir / name).read_text()), 0)
        except (OSError, ValueError):
            continue
        return True
    return False
