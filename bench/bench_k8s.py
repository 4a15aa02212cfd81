"""Kubernetes: Styx's own launch overhead over the harness's pod start, and `styx exec` against
a bare exec through the same API.

The API server and kubelet are the test world's stand-in for a real cluster (tests/kubeworld):
pods are real test hosts in network namespaces. Needs root; run in a private network namespace:
  ip netns add styx-b; ip -n styx-b link set lo up
  ip netns exec styx-b .venv/bin/python bench/bench_k8s.py [--runs 3]

- launch: ``KubernetesProvider.provision`` (objects, wait for Running, probe each pod) for 1
  and 4 pods; overhead = its wall time minus the slowest pod's start in the harness (pods start
  in parallel). A full ``styx launch -d`` (with Ray and the agent) is shown beside it.
- exec: ``styx exec CLUSTER true`` (CLI start, submit through the forwarded agent, follow to
  the end) against ``kubectl exec POD -- true`` (the bare exec), medians.
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

from _util import REPO

sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from kubeworld.world import KubeWorld


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = KubeWorld(root / "world")
        try:
            world.reset(root / "user")
            for i in range(2, 4):
                world.add_node(f"node-{i}", cpu=8, memory="32Gi")
            os.environ.update(KUBECONFIG=str(world.kubeconfig), STYX_HOME=str(root / "styx"))
            os.environ["STYX_WHEELHOUSE"] = str(REPO / ".wheelhouse")
            launch_rows(world, args.runs)
            exec_rows(world, root, args.runs)
        finally:
            world.close()


def launch_rows(world: KubeWorld, runs: int) -> None:
    from styx.providers.base import ProvisionRequest
    from styx.providers.kubernetes.provider import KubernetesProvider

    provider = KubernetesProvider()
    print("| pods | provision (median) | slowest pod start in the harness | Styx's overhead |")
    print("|---|---|---|---|")
    for n in (1, 4):
        walls, starts = [], []
        for i in range(runs):
            world.kubelet.start_seconds.clear()
            req = ProvisionRequest(cluster_name=f"b{n}x{i}", num_nodes=n, cpus=1, memory_gb=2)
            t0 = time.perf_counter()
            handle = provider.provision(req)
            walls.append(time.perf_counter() - t0)
            starts.append(max(world.pod_start_seconds().values()))
            provider.terminate(handle)
        wall, start = statistics.median(walls), statistics.median(starts)
        print(f"| {n} | {wall:.2f} s | {start:.2f} s | {wall - start:.2f} s |")


def exec_rows(world: KubeWorld, root: Path, runs: int) -> None:
    env = {**os.environ}
    styx = [sys.executable, "-m", "styx.cli.main"]
    task = root / "task.yaml"
    task.write_text("num_nodes: 4\nresources: {infra: k8s, cpus: 1}\nrun: echo up\n")
    t0 = time.perf_counter()
    up = subprocess.run([*styx, "launch", str(task), "-c", "bench", "-y", "-d"], env=env,
                        capture_output=True, text=True)  # fmt: skip
    if up.returncode != 0:
        sys.exit(f"launch failed: {up.stdout}{up.stderr}")
    print(
        f"\nfull `styx launch -d` of 4 pods (Ray and the agent included): {time.perf_counter() - t0:.2f} s\n"
    )
    try:
        head = next(
            p["metadata"]["name"] for p in world.pods() if p["metadata"]["name"].endswith("-head")
        )
        cache = root / "kubectl-cache"

        def timed(argv: list[str]) -> float:
            out = []
            for _ in range(runs + 2):
                t = time.perf_counter()
                subprocess.run(argv, env=env, check=True, capture_output=True)
                out.append(time.perf_counter() - t)
            return statistics.median(out[1:])

        bare = timed(["kubectl", "--kubeconfig", str(world.kubeconfig), "--cache-dir", str(cache),
                      "exec", head, "--", "true"])  # fmt: skip
        ours = timed([*styx, "exec", "bench", "true"])
        print("| what | median | vs. bare exec |")
        print("|---|---|---|")
        print(f"| `kubectl exec POD -- true` (baseline) | {bare * 1000:.0f} ms | 1.00x |")
        print(f"| `styx exec CLUSTER true` | {ours * 1000:.0f} ms | {ours / bare:.2f}x |")
    finally:
        subprocess.run([*styx, "down", "bench", "-y"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
