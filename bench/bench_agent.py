"""Agent benchmarks on a one-node local cluster (real Ray, real agent, through the client).

    python bench/bench_agent.py [--runs 30] [--jobs 500] [--history 10000]

Prints:
* submit-to-first-output, median and p90 over ``--runs`` jobs (``echo x``), each through a fresh
  client connection, against the baseline of spawning ``bash -c 'echo x'`` directly and reading
  its first output, measured in the same run;
* throughput: ``--jobs`` tiny jobs submitted at once, all run to completion, in jobs/s;
* ``queue`` latency (default page and ``all=True``) with ``--history`` jobs in the table.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from styx.agent.bootstrap import (
    RayPorts,
    agent_ensure_argv,
    agent_stop_argv,
    default_temp_dir,
    ray_head_argv,
    ray_start_argv,
    ray_stop_argv,
)
from styx.agent.client import AgentClient
from styx.agent.db import JobStore
from styx.agent.protocol import AgentConfig, JobSpec, JobStatus, NodeInfo

CPUS = 2


def _free_base() -> int:
    for base in range(41000, 60000, RayPorts.span()):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", base))
            except OSError:
                continue
        return base
    raise RuntimeError("no free port")


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def baseline(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.Popen(["bash", "-c", "echo x"], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.read(1)
        out.append(time.perf_counter() - t)
        proc.wait()
    return out


def first_output(sock: Path, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        with AgentClient(sock) as client:
            job_id = client.submit(JobSpec(run="echo x"))
            for _chunk in client.tail_logs(job_id):
                out.append(time.perf_counter() - t)
                break
            client.wait(job_id)
    return out


def throughput(client: AgentClient, jobs: int) -> float:
    t = time.perf_counter()
    ids = [client.submit(JobSpec(name="tiny", run="true")) for _ in range(jobs)]
    for job_id in ids:
        assert client.wait(job_id).status is JobStatus.SUCCEEDED
    return jobs / (time.perf_counter() - t)


def fill_history(db: Path, total: int) -> None:
    store = JobStore(db)
    have = sum(store.counts().values())
    spec = JobSpec(name="history", run="echo old")
    for _ in range(max(0, total - have)):
        job = store.add(spec, db.parent / "logs")
        store.transition(job.job_id, JobStatus.PENDING)
        store.transition(job.job_id, JobStatus.RUNNING)
        store.transition(job.job_id, JobStatus.SUCCEEDED, exit_code=0)
    store.close()


def queue_latency(sock: Path, runs: int, all_jobs: bool) -> tuple[list[float], int]:
    out, n = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        with AgentClient(sock) as client:
            n = len(client.queue(all=all_jobs))
        out.append(time.perf_counter() - t)
    return out, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--history", type=int, default=10000)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="styx-bench-agent-"))
    ports = RayPorts.from_base(_free_base())
    temp_dir = default_temp_dir(str(root))
    ray_bin = str(Path(sys.executable).parent / "ray")
    head = ray_head_argv(
        "127.0.0.1",
        num_cpus=CPUS,
        memory_bytes=2 * 1024**3,
        object_store_bytes=100 * 1024**2,
        ports=ports,
        temp_dir=temp_dir,
        ray_bin=ray_bin,
    )
    # As a local cluster starts it: private, owned, on loopback only.
    subprocess.run(
        ray_start_argv(str(root), head, "127.0.0.1", sys.executable),
        check=True,
        capture_output=True,
    )
    try:
        AgentConfig(
            cluster_name="bench",
            styx_version="bench",
            ray_address=f"127.0.0.1:{ports.gcs}",
            nodes=[NodeInfo("127.0.0.1", "head", CPUS, 2)],
        ).write(root)
        t = time.perf_counter()
        subprocess.run(agent_ensure_argv(str(root), sys.executable), check=True)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run(agent_ensure_argv(str(root), sys.executable), check=True)
        warm = time.perf_counter() - t
        sock = root / "agent.sock"
        client = AgentClient(sock)
        while not client.ping().ray_connected:
            time.sleep(0.05)
        first_output(sock, 5)  # warm Ray's worker pool

        base = baseline(args.runs)
        lat = first_output(sock, args.runs)
        b, m = statistics.median(base), statistics.median(lat)
        print(f"ensure: cold start {cold * 1000:.0f} ms, already running {warm * 1000:.0f} ms")
        print(
            f"submit-to-first-output: median {m * 1000:.1f} ms, p90 "
            f"{pct(lat, 0.9) * 1000:.1f} ms over {args.runs} runs; baseline bash spawn "
            f"median {b * 1000:.2f} ms; ratio {m / b:.1f}x"
        )
        rate = throughput(client, args.jobs)
        print(
            f"throughput: {args.jobs} tiny jobs at once on one node ({CPUS} CPUs, 0.5 CPU "
            f"each): {rate:.0f} jobs/s ({1000 / rate:.1f} ms/job)"
        )
        fill_history(root / "jobs.db", args.history)
        for all_jobs in (False, True):
            q, n = queue_latency(sock, 20, all_jobs)
            print(
                f"queue(all={all_jobs}) with {args.history} jobs in history: {n} rows, "
                f"median {statistics.median(q) * 1000:.1f} ms, p90 {pct(q, 0.9) * 1000:.1f} ms"
            )
        client.close()
    finally:
        subprocess.run(agent_stop_argv(str(root), sys.executable), check=False)
        subprocess.run(ray_stop_argv(temp_dir, ports.gcs, sys.executable), check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
