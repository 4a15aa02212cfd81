"""State-layer benchmarks: import cost, a cold `list_clusters`, write and read latencies.

Baselines, measured in the same run: a bare `python -c pass` for cold processes, and the same
query done by hand with the raw driver (sqlite3 / psycopg) for in-process reads. Prints medians,
p90s and the ratio to the baseline. PostgreSQL figures need a URL (--pg, or STYX_BENCH_PG_URL /
STYX_TEST_PG_URL; `scripts/postgres.sh start DIR` prints one).

Run: python bench/bench_state.py [--runs 30] [--clusters 100] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from styx.state import (
    ClusterStatus,
    NewManagedJob,
    add_managed_job,
    get_cluster,
    list_clusters,
    set_cluster_status,
    upsert_cluster,
)
from styx.state import clusters as clusters_mod
from styx.state.db import Database, normalize_url


def report(name: str, samples: list[float], base: float | None) -> float:
    med = statistics.median(samples)
    p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
    ratio = f"  ratio {med / base:6.2f}x" if base else ""
    print(f"  {name:<46} median {med * 1000:8.2f} ms  p90 {p90 * 1000:8.2f} ms{ratio}")
    return med


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm up (connections, statement caches)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def cold(code: str, env: dict[str, str], runs: int) -> list[float]:
    argv = [sys.executable, "-c", code]
    return timed(lambda: subprocess.run(argv, env=env, check=True), runs)


def seed(db: Database, n: int) -> None:
    for i in range(n):
        upsert_cluster(
            db,
            f"cluster-{i:03d}",
            provider="aws",
            handle={
                "nodes": [{"id": f"i-{i:08x}", "internal_ip": f"10.0.{i // 250}.{i % 250}"}],
                "ssh": {"user": "ubuntu", "key_path": "~/.styx/keys/styx"},
            },
            status=ClusterStatus.UP,
            launched_resources={"cloud": "aws", "instance_type": "g5.xlarge", "gpus": {"A10G": 1}},
            autostop={"idle_minutes": 30, "down": False},
            user_name="alice",
            last_use="styx launch task.yaml",
            launched_at=time.time(),
        )


def bench_cold(home: Path, runs: int, clusters: int) -> None:
    env = {**os.environ, "STYX_HOME": str(home)}
    env.pop("STYX_DB_URL", None)
    db_path = home / "state.db"
    print(f"cold processes (SQLite, {clusters} clusters):")
    base = report("python -c pass (baseline)", cold("pass", env, runs), None)
    report("import styx.state", cold("import styx.state", env, runs), base)
    raw = (
        f"import sqlite3, json; c = sqlite3.connect({str(db_path)!r}); "
        "[tuple(json.loads(v) if k in (4, 5, 11, 15) and v else v for k, v in enumerate(r)) "
        "for r in c.execute('SELECT * FROM clusters ORDER BY name')]"
    )
    report("raw sqlite3 select + json (floor)", cold(raw, env, runs), base)
    code = "from styx.state import get_db, list_clusters; list_clusters(get_db())"
    report("get_db() + list_clusters()", cold(code, env, runs), base)
    code = "import styx.state.clusters, styx.state.db, sqlalchemy.orm"
    report("... if it imported SQLAlchemy", cold(code, env, runs), base)


def bench_in_process(db: Database, label: str, runs: int, baseline: Callable[[], object]) -> None:
    print(f"in-process ({label}):")
    base = report("raw driver: select all clusters (baseline)", timed(baseline, runs), None)
    report(
        f"list_clusters() [{len(list_clusters(db))} rows]",
        timed(lambda: list_clusters(db), runs),
        base,
    )
    if db.fast_reader() is not None:
        slow = Database(db.url)
        slow.fast_reader = lambda: None  # type: ignore[method-assign]
        report(
            "list_clusters() via SQLAlchemy",
            timed(lambda: clusters_mod.list_clusters(slow), runs),
            base,
        )
        slow.close()
    report("get_cluster()", timed(lambda: get_cluster(db, "cluster-042"), runs), base)
    flip = iter(range(10**9))

    def toggle() -> None:
        status = ClusterStatus.UP if next(flip) % 2 else ClusterStatus.DEGRADED
        set_cluster_status(db, "cluster-042", status, message="bench")

    report("set_cluster_status() + event (write)", timed(toggle, runs), base)
    report(
        "upsert_cluster() existing (write)",
        timed(lambda: upsert_cluster(db, "cluster-007", provider="aws", handle={"x": 1}), runs),
        base,
    )
    report(
        "add_managed_job() + event (write)",
        timed(lambda: add_managed_job(db, NewManagedJob(name="j", spec={"run": "x"})), runs),
        base,
    )


def sqlite_baseline(path: Path) -> Callable[[], object]:
    import sqlite3

    conn = sqlite3.connect(path)

    def run() -> object:
        return [
            [json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v for v in row]
            for row in conn.execute("SELECT * FROM clusters ORDER BY name")
        ]

    return run


def pg_baseline(db: Database) -> Callable[[], object]:
    """The same SELECT on a raw psycopg connection of its own (JSON decoded by psycopg)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    raw = sa.create_engine(db.url, poolclass=NullPool).raw_connection()
    conn = raw.driver_connection
    assert conn is not None
    conn.autocommit = True

    def run() -> object:
        return conn.execute("SELECT * FROM clusters ORDER BY name").fetchall()

    run.keep = raw  # type: ignore[attr-defined]  # the connection lives as long as the closure
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument(
        "--pg", default=os.environ.get("STYX_BENCH_PG_URL") or os.environ.get("STYX_TEST_PG_URL")
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="styx-bench-") as tmp:
        home = Path(tmp)
        db = Database(f"sqlite:///{home}/state.db")
        seed(db, args.clusters)
        bench_cold(home, args.runs, args.clusters)
        bench_in_process(db, "SQLite", args.runs * 10, sqlite_baseline(home / "state.db"))
        db.close()
    if args.pg:
        bench_pg(normalize_url(args.pg), args.runs, args.clusters)
    else:
        print("PostgreSQL: skipped (pass --pg URL)")


def bench_pg(url: str, runs: int, clusters: int) -> None:
    """Run in a scratch schema, dropped afterwards, so the database's own data is untouched."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    schema = f"styx_bench_{os.getpid()}"
    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in url else "?"
        db = Database(f"{url}{sep}options={quote(f'-csearch_path={schema}')}")
        seed(db, clusters)
        bench_in_process(db, "PostgreSQL", runs * 10, pg_baseline(db))
        db.close()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


if __name__ == "__main__":
    main()
