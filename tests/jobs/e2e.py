"""Helpers for managed jobs on real clusters (SSH pools, AWS through moto).

:class:`ControllerThread` runs the real controller with the real :class:`ClusterBackend` in a
thread of the test process, so a test can inject faults (kill a host, terminate an instance)
while it drives the jobs and read the database as it goes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from styx.jobs.backend import ClusterBackend
from styx.jobs.controller import Controller
from styx.jobs.submit import submit
from styx.spec.dag import Dag
from styx.state import managed_jobs as repo
from styx.state.clusters import get_cluster
from styx.state.db import Database
from styx.state.records import ManagedJobEvent, ManagedJobRecord, ManagedJobStatus

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
