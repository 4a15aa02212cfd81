"""Managed-jobs controller at scale, on the IN-MEMORY SIMULATED backend (no machines).

What is measured is the controller: 10,000 concurrent managed jobs driven by one asyncio
process (peak RSS, p99 scheduling-loop latency), then `styx jobs queue` over those jobs.

    python bench/bench_jobs.py [--jobs 10000] [--duration 60]

Targets: RSS <= 1 GB, p99 loop latency <= 1 s, `styx jobs queue` <= 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from _util import REPO, timed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0, help="simulated run seconds")
    parser.add_argument("--poll", type=float, default=5.0, help="status-check interval")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="styx-bench-jobs-")
    os.environ["STYX_HOME"] = home
    os.environ.pop("STYX_DB_URL", None)
    from styx.jobs.backend import InMemoryBackend, SimScript
    from styx.jobs.controller import Controller
    from styx.state import managed_jobs as repo
    from styx.state.db import Database
    from styx.state.records import ManagedJobStatus, NewManagedJob

    db = Database.open()
    t0 = time.perf_counter()
    spec = {"name": "sim", "run": "train.py"}
    for i in range(args.jobs):
        repo.add_managed_job(db, NewManagedJob(name=f"job-{i}", spec=spec))
    print(f"queued {args.jobs} jobs in {time.perf_counter() - t0:.1f} s")

    backend = InMemoryBackend(default=SimScript(duration=args.duration))
    controller = Controller(db, backend, poll_interval=args.poll, sweep_interval=1.0)
    peak = 0
    t_all_running: float | None = None

    async def scenario() -> float:
        nonlocal peak, t_all_running
        task = asyncio.create_task(controller.run())
        start = time.perf_counter()
        while True:
            await asyncio.sleep(0.5)
            peak = max(peak, len(backend.clusters()))
            if t_all_running is None and peak >= args.jobs:
                t_all_running = time.perf_counter() - start
            left = await asyncio.to_thread(
                repo.list_managed_jobs,
                db,
                statuses=[s for s in ManagedJobStatus if not s.is_terminal],
                limit=1,
            )
            if not left:
                break
        controller.stop()
        await task
        return time.perf_counter() - start

    total = asyncio.run(scenario())
    done = repo.list_managed_jobs(db, statuses=[ManagedJobStatus.SUCCEEDED])
    lag = sorted(controller.loop_lag)
    p99 = lag[int(len(lag) * 0.99) - 1] if lag else 0.0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("backend: IN-MEMORY SIMULATED clusters (controller measured, not infra)")
    print(f"jobs succeeded        : {len(done)} / {args.jobs}")
    print(
        f"peak concurrent jobs  : {peak}"
        + (f" (all running after {t_all_running:.1f} s)" if t_all_running else "")
    )
    print(f"run time              : {total:.1f} s (jobs run {args.duration:.0f} s each)")
    print(f"peak RSS              : {rss_mb:.0f} MB (target <= 1024 MB)")
    print(
        f"loop latency p50/p99/max: {statistics.median(lag) * 1000:.1f} / {p99 * 1000:.1f} / {lag[-1] * 1000:.1f} ms (target p99 <= 1000 ms)"
    )

    env = dict(os.environ)
    argv = [sys.executable, "-m", "styx.cli.main", "jobs", "queue"]
    lines = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO).stdout.count(
        "\n"
    )
    times = timed(argv, env, 5)
    print(
        f"`styx jobs queue`     : {statistics.median(times):.3f} s median of 5 ({lines} lines; target <= 0.5 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
