"""SSH node pools: launch on fresh hosts, --fast relaunch, and `styx exec` latency.

Boots 3 test hosts (network namespaces with real sshd; needs root), makes them a pool, and
measures through the real CLI:
* `styx launch -d` of a 3-node cluster on fresh hosts, the runtime installed from the local
  wheelhouse (STYX_WHEELHOUSE, default ./.wheelhouse; scripts/test.sh builds it);
* `styx launch --fast -d` again on the up cluster;
* `styx exec` on an up 2-node cluster, from spawn to the first byte of the job's output,
  against the physical floor: a bare `ssh host true` through the same ControlMaster.
Run: .venv/bin/python bench/bench_ssh_cluster.py [--runs 20]
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

from _util import REPO, first_output, report

sys.path[:0] = [str(REPO), str(REPO / "tests")]

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
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
        env = {**os.environ, "STYX_HOME": str(home), "STYX_WHEELHOUSE": wheels}
        env.pop("STYX_DB_URL", None)
        task3 = Path(tmp) / "t3.yaml"
        task3.write_text("num_nodes: 3\nresources:\n  infra: ssh/lab\nrun: echo up\n")
        t0 = time.perf_counter()
        r = styx(env, "launch", str(task3), "-c", "b3", "-y", "-d")
        fresh = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"launch failed: {r.stderr}")
        print(f"{'3-node launch on fresh hosts (wheelhouse)':<52} {fresh:8.2f} s   target <= 30 s")
        print(
            "  stages: "
            + " | ".join(ln.strip("✓ ") for ln in r.stderr.splitlines() if ln.startswith("✓"))
        )
        fast = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = styx(env, "launch", str(task3), "-c", "b3", "-y", "-d", "--fast")
            fast.append(time.perf_counter() - t0)
            assert r.returncode == 0, r.stderr
        report("3-node launch --fast -d on the up cluster", fast)
        styx(env, "down", "b3", "-y")

        task2 = Path(tmp) / "t2.yaml"
        task2.write_text("num_nodes: 2\nresources:\n  infra: ssh/lab\nrun: echo up\n")
        r = styx(env, "launch", str(task2), "-c", "b2", "-y", "-d")
        assert r.returncode == 0, r.stderr
        os.environ["STYX_HOME"] = str(home)  # the same ControlMaster as the CLI's
        from styx.cluster.ssh import SSHHost, SSHRunner

        h1 = bed.host(1)
        runner = SSHRunner(
            SSHHost(name="h1", hostname=h1.ip, user="root", identity_file=str(bed.key))
        )
        runner.connect()
        ssh_true = [*runner.ssh_argv(), "--", h1.ip, "true"]
        base = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(ssh_true, check=True)
            base.append(time.perf_counter() - t0)
        report("baseline: ssh h1 true through the ControlMaster", base)
        cmd = [sys.executable, "-m", "styx.cli.main", "exec", "b2", "--num-nodes", "2", "echo x"]
        runs = [first_output(cmd, env)[0] for _ in range(args.runs)]
        report(
            "styx exec on a 2-node cluster: submit to first output", runs, statistics.median(base)
        )
        styx(env, "down", "b2", "-y")


if __name__ == "__main__":
    main()
