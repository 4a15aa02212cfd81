"""`styx cost-report` over 10,000 managed jobs and their clusters (target: at most 500 ms).

Seeds a temporary SQLite STYX_HOME with what 10,000 finished and running managed jobs leave
behind: each job's row and status transitions, one cluster incarnation per attempt (a fifth of
the jobs recovered once, a twentieth twice) with its usage row and its cluster transitions
(created, UP, deleted), 100 jobs still running on live clusters, 250 DAG runs of four tasks,
and 50 clusters of the user's own. Everything is within the report's default 30 days, so every
row is read and priced. The rows are bulk-inserted with the schema's own tables.

Baselines, measured in the same run: `python -c pass` (the floor of any Python CLI) and
`styx status` on the same database. Prints medians, p90s and ratios.
Run: .venv/bin/python bench/bench_cost.py [--runs 15] [--jobs 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _util import report, timed

SPEC = {
    "name": "train",
    "run": "python train.py --epochs 3",
    "resources": {"accelerators": "A100:8"},
}
RES = {"instance_type": "p4d.24xlarge", "accelerators": {"A100": 8}, "infra": "aws/us-east-1"}


def _cluster(name: str, start: float, end: float | None, job: int | None, out: dict) -> None:
    """One incarnation: its usage row, its transitions, and (while live) its cluster row."""
    cid = uuid.uuid4().hex
    out["usage"].append(
        {
            "cluster_id": cid,
            "cluster_name": name,
            "provider": "aws",
            "infra": "aws/us-east-1/us-east-1a",
            "resources": RES,
            "num_nodes": 2,
            "hourly_price": 65.54,
            "launched_at": start,
            "managed_job_id": job,
            "user_name": "alice",
        }
    )
    steps = [(start, None, "INIT"), (start + 90, "INIT", "UP")]
    if end is not None:
        steps.append((end, "UP", None))
    for at, old, new in steps:
        out["transitions"].append(
            {
                "entity_kind": "cluster",
                "entity_id": name,
                "time": at,
                "from_status": old,
                "to_status": new,
                "reason": "provisioned",
            }
        )
    if end is None:
        out["clusters"].append(
            {
                "name": name,
                "cluster_id": cid,
                "status": "UP",
                "provider": "aws",
                "handle": {"cluster_name": name, "nodes": [{"ip": "198.18.77.1"}] * 2},
                "launched_resources": RES,
                "num_nodes": 2,
                "created_at": start,
                "launched_at": start + 60,
                "status_updated_at": start + 90,
                "last_use": "styx jobs launch",
                "autostop": None,
                "user_name": "alice",
                "config_hash": None,
                "workdir": None,
                "metadata": {},
            }
        )


def seed(home: str, n_jobs: int) -> None:
    from sqlalchemy import insert

    from styx.state import models
    from styx.state.db import Database

    db = Database.open(f"sqlite:///{home}/state.db")
    rng = random.Random(7)
    now = time.time()
    out: dict[str, list[dict[str, Any]]] = {"usage": [], "transitions": [], "clusters": []}
    runs = [
        {
            "id": i + 1,
            "name": f"dag-{i}",
            "status": "SUCCEEDED",
            "spec": {},
            "on_failure": "fail_fast",
            "created_at": now - 86400,
            "ended_at": now - 3600,
        }
        for i in range(250)
    ]
    jobs = []
    for j in range(1, n_jobs + 1):
        submitted = now - rng.uniform(3600, 20 * 86400)
        running = j > n_jobs - 100
        attempts = 1 + (j % 5 == 0) + (j % 20 == 0)
        t = submitted + 30
        for a in range(attempts):
            length = rng.uniform(600, 4 * 3600)
            live = running and a == attempts - 1
            _cluster(f"styx-mj-{j}", t, None if live else t + length, j, out)
            t += length + 120
        ended = None if running else t
        jobs.append(
            {
                "id": j,
                "name": f"job-{j}",
                "dag_run_id": (j - 1) // 4 + 1 if j <= 1000 else None,
                "task_index": (j - 1) % 4,
                "task_name": None,
                "status": "RUNNING" if running else "SUCCEEDED",
                "spec": SPEC,
                "resources": None,
                "cluster_name": f"styx-mj-{j}",
                "recovery_count": attempts - 1,
                "restarts_on_errors": 0,
                "submitted_at": submitted,
                "started_at": submitted + 200,
                "ended_at": ended,
                "failure_reason": None,
                "priority": 0,
                "user_name": "alice",
                "controller_pid": None,
                "termination_reason": None if running else "succeeded",
            }
        )
        for k, (old, new) in enumerate(
            [(None, "PENDING"), ("PENDING", "STARTING"), ("STARTING", "RUNNING")]
            + ([] if running else [("RUNNING", "SUCCEEDED")])
        ):
            out["transitions"].append(
                {
                    "entity_kind": "managed_job",
                    "entity_id": str(j),
                    "time": submitted + k,
                    "from_status": old,
                    "to_status": new,
                    "reason": None,
                }
            )
    for i in range(50):
        start = now - rng.uniform(3600, 20 * 86400)
        _cluster(f"dev-{i}", start, None if i % 2 else start + 7200, None, out)

    def txn(s: Any) -> None:
        s.execute(insert(models.DagRun), runs)
        s.execute(insert(models.ManagedJob), jobs)
        s.execute(insert(models.ClusterUsage), out["usage"])
        s.execute(insert(models.StatusTransition), out["transitions"])
        s.execute(insert(models.Cluster.__table__), out["clusters"])

    db.write(txn)
    print(
        f"seeded {len(jobs)} managed jobs, {len(out['usage'])} cluster incarnations "
        f"({len(out['clusters'])} live), {len(out['transitions'])} status transitions"
    )
    db.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=10_000)
    args = ap.parse_args()
    styx = str(Path(sys.executable).with_name("styx"))
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "STYX_HOME": home}
        env.pop("STYX_DB_URL", None)
        seed(home, args.jobs)
        base = statistics.median(timed([sys.executable, "-c", "pass"], env, args.runs))
        print(f"{'baseline: python -c pass':<52} median {base * 1000:8.1f} ms")
        report("styx status (same database)", timed([styx, "status"], env, args.runs), base)
        n = f"{args.jobs:,} jobs"
        report(f"styx cost-report ({n})", timed([styx, "cost-report"], env, args.runs), base)
        argv = [styx, "cost-report", "--json"]
        report(f"styx cost-report --json ({n})", timed(argv, env, args.runs), base)


if __name__ == "__main__":
    main()
