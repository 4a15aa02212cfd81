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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t0)
    return out


def show(name: str, samples: list[float], base: float | None = None) -> None:
    med = statistics.median(samples)
    p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
    ratio = f"  ratio {med / base:5.2f}x" if base else ""
    print(f"{name:<44} median {med * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms{ratio}")


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
            show("baseline: styx status", base)
            b = statistics.median(base)
            show("styx queue q (default view)", timed([*styx, "queue", "q"], env, args.runs), b)
            show(
                "styx queue q --all --json (10k rows)",
                timed([*styx, "queue", "q", "--all", "--json"], env, args.runs),
                b,
            )
        finally:
            subprocess.run([*styx, "down", "q", "-y"], env=env, cwd=REPO, capture_output=True)


if __name__ == "__main__":
    main()
