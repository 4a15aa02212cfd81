"""CLI start-up benchmarks: `styx --help` and `styx status` with 100 clusters in the database.

Baseline, measured in the same run: a bare `python -c pass` with the same interpreter, which is
the floor any Python CLI pays. Prints medians, p90s and the ratio to the baseline.
Run: .venv/bin/python bench/bench_cli.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _util import report, timed


def seed_clusters(home: str, n: int) -> None:
    """n realistic cluster rows, as `styx launch` writes them."""
    from styx.state.clusters import upsert_cluster
    from styx.state.db import Database
    from styx.state.records import ClusterStatus

    db = Database.open(f"sqlite:///{home}/state.db")
    for i in range(n):
        node = {"name": "h", "ip": "127.0.0.1", "cpus": 8, "memory_gb": 32.0}
        upsert_cluster(
            db,
            f"c{i:03d}",
            provider="local",
            handle={"cluster_name": f"c{i:03d}", "provider": "local", "nodes": [node]},
            status=ClusterStatus.UP if i % 3 else ClusterStatus.STOPPED,
            launched_resources={"cpus": "4+", "accelerators": {"A100": 8}},
            num_nodes=1 + i % 4,
            launched_at=1.7e9,
            last_use="styx launch task.yaml",
            autostop={"idle_minutes": 10, "down": False},
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    styx = str(Path(sys.executable).with_name("styx"))
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "STYX_HOME": home}
        env.pop("STYX_DB_URL", None)
        base = statistics.median(timed([sys.executable, "-c", "pass"], env, args.runs))
        print(f"{'baseline: python -c pass':<40} median {base * 1000:7.1f} ms")
        report("styx --help", timed([styx, "--help"], env, args.runs), base)
        seed_clusters(home, 100)
        report("styx status (100 clusters)", timed([styx, "status"], env, args.runs), base)


if __name__ == "__main__":
    main()
