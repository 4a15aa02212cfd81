"""Managed-job recovery on an SSH pool: how long a preempted job is away, against a launch.

Boots 3 test hosts (network namespaces with real sshd; needs root), makes them a pool, warms
the runtime on every host, then measures through the real CLI and daemon:
* baseline: `styx launch -d` of a one-node task on a warm host, to the job RUNNING on it;
* recovery: a managed job RUNNING on its cluster, its host killed (kill -9 of the whole host);
  time to the controller marking it RECOVERING (detection) and to RUNNING again on another
  host (the whole outage), over ``--runs`` preemptions of one job.
The ratio outage / baseline says what recovery costs beyond the launch it cannot avoid.
Run: .venv/bin/python bench/bench_jobs_recovery.py [--runs 6] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import REPO, report

sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "src")]

from tests.testworld.testbed import Testbed, usable


def styx(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--poll", type=float, default=0.5, help="STYX_JOBS_POLL_INTERVAL")
    args = ap.parse_args()
    if why := usable():
        sys.exit(f"cannot boot test hosts: {why}")
    wheels = os.environ.get("STYX_WHEELHOUSE") or str(REPO / ".wheelhouse")
    with tempfile.TemporaryDirectory() as tmp, Testbed(Path(tmp) / "bed", 3).up() as bed:
        home = Path(tmp) / "home"
        home.mkdir()
        hosts = "".join(f"    - {h.ip}\n" for h in bed.hosts)
        (home / "ssh_node_pools.yaml").write_text(
            f"lab:\n  user: root\n  identity_file: {bed.key}\n  hosts:\n{hosts}"
        )
        env = {
            **os.environ,
            "STYX_HOME": str(home),
            "STYX_WHEELHOUSE": wheels,
            "STYX_JOBS_POLL_INTERVAL": str(args.poll),
            "STYX_JOBS_IDLE_EXIT": "2",
        }
        env.pop("STYX_DB_URL", None)
        os.environ.update(STYX_HOME=str(home))
        os.environ.pop("STYX_DB_URL", None)
        from styx.state import managed_jobs as repo
        from styx.state.clusters import get_cluster
        from styx.state.db import Database

        db = Database.open()
        task = Path(tmp) / "t.yaml"
        task.write_text("resources:\n  infra: ssh/lab\nrun: sleep 600\n")
        # Warm every host (the runtime installed once), then the baseline on warm hosts.
        warm = [styx(env, "launch", str(task), "-c", f"w{i}", "-y", "-d") for i in range(3)]
        assert all(r.returncode == 0 for r in warm), [r.stderr for r in warm]
        for i in range(3):
            styx(env, "down", f"w{i}", "-y")
        base = []
        for _ in range(3):
            t0 = time.perf_counter()
            r = styx(env, "launch", str(task), "-c", "base", "-y", "-d")
            base.append(time.perf_counter() - t0)
            assert r.returncode == 0, r.stderr
            styx(env, "down", "base", "-y")
        baseline = report("launch -d, one node, warm host (baseline)", base)

        job_yaml = Path(tmp) / "job.yaml"
        job_yaml.write_text("name: train\nresources:\n  infra: ssh/lab\nrun: sleep 600\n")
        out = styx(env, "jobs", "launch", str(job_yaml))
        job_id = int(out.stdout.split()[2])
        name = f"styx-mj-{job_id}"
        detect, outage = [], []
        dead: int | None = None
        for n in range(args.runs + 1):
            wait(lambda n=n: _is(repo, db, job_id, "RUNNING", n), 300, f"RUNNING #{n}")
            if n == args.runs:
                break
            record = get_cluster(db, name)
            assert record is not None
            address = dict(record.handle)["extra"]["hosts"][0]
            victim = next(h.index for h in bed.hosts if h.ip == address)
            if dead is not None:
                bed.reboot(dead)  # capacity comes back
            t0 = time.perf_counter()
            bed.crash(victim)
            dead = victim
            wait(lambda n=n: _is(repo, db, job_id, "RECOVERING", n + 1), 300, "RECOVERING")
            detect.append(time.perf_counter() - t0)
            wait(lambda n=n: _is(repo, db, job_id, "RUNNING", n + 1), 300, "RUNNING again")
            outage.append(time.perf_counter() - t0)
        styx(env, "jobs", "cancel", str(job_id))
        wait(lambda: repo.require_managed_job(db, job_id).status.is_terminal, 120, "cancel")
        report(f"preemption detected (host killed; poll {args.poll:g} s)", detect, baseline)
        report("preempted to RUNNING again on another host", outage, baseline)
        print(f"  recoveries: {len(outage)}; cluster records left: {_left(db)}")


def _is(repo, db, job_id: int, status: str, recoveries: int) -> bool:  # type: ignore[no-untyped-def]
    record = repo.require_managed_job(db, job_id)
    if record.status.is_terminal:
        sys.exit(f"job ended {record.status}")
    return record.status.value == status and record.recovery_count >= recoveries


def _left(db) -> int:  # type: ignore[no-untyped-def]
    from styx.state.clusters import list_clusters

    time.sleep(3)
    return len(list_clusters(db))


if __name__ == "__main__":
    main()
