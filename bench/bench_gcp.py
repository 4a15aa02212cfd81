"""GCP: Styx's own overhead for a 4-node launch, from start to every node SSH-ready.

google-cloud-compute talks to the GCE stand-in (tests/testworld/gce.py, on loopback: no GCE
emulator exists), which logs every request with its duration; a real sshd host boots at each
instance's internal IP (tests/testworld/gce_hosts.py). Styx's overhead = the provision's wall
time, minus the time the stand-in spent answering (overlapping requests counted once; its
operations finish at once, op_latency 0), minus the slowest host's boot (hosts boot in
parallel). The provision includes what a real launch does first: the VPC lookup, the
cluster's firewall rules, the inserts, the wait for RUNNING, then SSH on every node. Needs root.
Run: .venv/bin/python bench/bench_gcp.py [--runs 5] [--nodes 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _util import REPO, print_overhead

sys.path[:0] = [str(REPO), str(REPO / "tests")]

from testworld.gce import block_google_endpoints
from testworld.gce_hosts import gce_world
from testworld.testbed import usable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=4)
    args = ap.parse_args()
    if why := usable():
        sys.exit(f"cannot boot test hosts: {why}")
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        gce_world(Path(tmp) / "gce") as (gce, hosts),
        block_google_endpoints() as tried,
    ):
        os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"] = f"{gce.url}/compute/v1/"
        os.environ["GOOGLE_CLOUD_PROJECT"] = gce.project
        os.environ["STYX_HOME"] = str(Path(tmp) / "home")
        from styx.providers.base import ProvisionRequest
        from styx.providers.gcp.provider import GCPProvider
        from styx.providers.gcp.settings import GCPSettings

        provider = GCPProvider(settings=GCPSettings(use_internal_ips=True, ssh_user="root"))
        for i in range(args.runs):
            since = gce.mark()
            t0 = time.perf_counter()
            handle = provider.provision(
                ProvisionRequest(
                    cluster_name=f"bench{i}",
                    num_nodes=args.nodes,
                    region="us-central1",
                    instance_type="n2-standard-4",
                )
            )
            total = time.perf_counter() - t0
            busy = gce.busy_seconds(since=since)
            found = hosts.hosts()
            boots = [found[n.instance_id].boot_s or 0.0 for n in handle.nodes]
            rows.append((total, busy, max(boots), total - busy - max(boots)))
            provider.terminate(handle)
            hosts.idle()
        assert not tried, f"calls to real Google endpoints: {tried}"
    print_overhead(
        f"{args.nodes}-node GCP launch to all nodes SSH-ready",
        ("wall time", "stand-in busy time", "slowest host boot"),
        rows,
    )


if __name__ == "__main__":
    main()
