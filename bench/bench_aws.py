"""AWS: Styx's own overhead for a 4-node launch, from start to every node SSH-ready.

boto3 talks to moto's EC2 API on loopback through the fault proxy (which logs every request
with its upstream time); the materializer boots a real sshd host at each instance's private IP.
Styx's overhead = the provision's wall time, minus the time moto spent answering (overlapping
calls counted once), minus the slowest host's boot (hosts boot in parallel). Needs root.
Run: .venv/bin/python bench/bench_aws.py [--runs 5] [--nodes 4]
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

from tests.aws.harness import (
    AwsEndpoint,
    AwsSlot,
    MotoServer,
    ProxyProcess,
    create_test_vpc,
)
from tests.aws.materializer import Materializer
from tests.testworld.testbed import usable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=4)
    args = ap.parse_args()
    if why := usable():
        sys.exit(f"cannot boot test hosts: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        moto = MotoServer(root / "moto").start()
        proxy = ProxyProcess(moto.port, root / "proxy").start()
        slot = AwsSlot().claim()
        endpoint = AwsEndpoint(moto, proxy.url)
        vpc = create_test_vpc(moto.url, slot.slot)
        mat = Materializer(root / "hosts", moto.url, slot=slot, events_url=proxy.url).start()
        os.environ.update(endpoint.env)
        os.environ["STYX_HOME"] = str(root / "home")
        from styx.providers.aws.provider import AWSProvider
        from styx.providers.aws.settings import AWSSettings
        from styx.providers.base import ProvisionRequest

        provider = AWSProvider(settings=AWSSettings.from_mapping(vpc.config()))
        rows = []
        try:
            for i in range(args.runs):
                since = endpoint.mark()
                t0 = time.perf_counter()
                handle = provider.provision(
                    ProvisionRequest(
                        cluster_name=f"bench{i}",
                        num_nodes=args.nodes,
                        region="us-east-1",
                        instance_type="m5.large",
                    )
                )
                total = time.perf_counter() - t0
                api = endpoint.api_seconds(since=since)
                hosts = mat.hosts()
                boots = [hosts[iid].boot_s or 0.0 for iid in handle.extra["instance_ids"]]
                rows.append((total, api, max(boots), total - api - max(boots)))
                provider.terminate(handle)
                for iid in handle.extra["instance_ids"]:
                    mat.wait_down(iid, timeout=30)
        finally:
            mat.close()
            proxy.stop()
            moto.stop()
    print_overhead(
        f"{args.nodes}-node AWS launch to all nodes SSH-ready",
        ("wall time", "moto API time (busy)", "slowest host boot"),
        rows,
    )


if __name__ == "__main__":
    main()
