"""`styx queue` on a local cluster with 10,000 jobs in its history, through the real CLI.

Fills the cluster's agent with --history tiny jobs (through the agent client, all run to the
end), then times `styx queue CLUSTER` (the default view: unfinished and recent jobs) and
`styx queue CLUSTER --all --json`. Baseline in the same run: `styx status` on the same home,
the cheapest command that opens the same database.
Run: .venv/bin/python bench/bench_queue.py [--history 10000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _util import REPO, report, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    styx = [sys.executable, "-m", "styx.cli.main"]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "STYX_HOME": home}
        env.pop("STYX_DB_URL", None)
        subprocess.run(
            [*styx, "launch", "-c", "q", "-y", "-d", "examples/hello.yaml"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        try:
            from styx.agent.client import AgentClient
            from styx.agent.protocol import JobSpec

            client = AgentClient(f"{home}/clusters/q/agent/agent.sock", timeout=None)
            t0 = time.perf_counter()
            ids = [client.submit(JobSpec(run="true", cpus=0.1)) for _ in range(args.history)]
            client.wait(ids[-1])
            for job_id in ids[-50:]:
                client.wait(job_id)
            print(f"filled {args.history} jobs in {time.perf_counter() - t0:.1f} s")
            base = timed([*styx, "status"], env, args.runs)
            report("baseline: styx status", base)
            b = statistics.median(base)
            report("styx queue q (default view)", timed([*styx, "queue", "q"], env, args.runs), b)
            report(
                "styx queue q --all --json (10k rows)",
                timed([*styx, "queue", "q", "--all", "--json"], env, args.runs),
                b,
            )
        finally:
            subprocess.run([*styx, "down", "q", "-y"], env=env, cwd=REPO, capture_output=True)


if __name__ == "__main__":
    main()
