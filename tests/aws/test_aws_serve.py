"""``styx serve`` on AWS: boto3 against moto's EC2 API behind the fault proxy, real SSH test
hosts at the instances' private IPs (the materializer), real Ray, and real replicas.

What is AWS's own here: spot replicas with an on-demand base (``base_ondemand_fallback_replicas``),
the service's port opened in each replica's security group, and a spot instance terminated
behind Styx's back (as EC2 reclaims one) seen as a lost replica and replaced, while the
on-demand one keeps serving.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests import leaks
from tests.aws.harness import AwsEndpoint, AwsNetwork
from tests.aws.materializer import Materializer
from tests.aws.test_aws_cluster import write_catalog
from tests.aws.test_aws_jobs import terminate
from tests.ops.conftest import Styx, wait_for, wheelhouse
from tests.serve.conftest import APP, Load, get

pytestmark = [pytest.mark.ray, pytest.mark.slow]
FAST = {"STYX_SERVE_TICK": "0.5", "STYX_SERVE_IDLE_EXIT": "2", "STYX_SERVE_HOLD_TIMEOUT": "3"}


@pytest.fixture
def styx(
    aws_endpoint: AwsEndpoint,
    aws_vpc: AwsNetwork,
    materializer: Materializer,
    no_aws_leaks: set[str],
    tmp_path: Path,
) -> Iterator[Styx]:
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse)")
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/test.sh installs it)")
    no_aws_leaks.add("styx-key-*")  # the user's own key pair stays, as in SkyPilot
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(yaml.safe_dump({"aws": aws_vpc.config()}))
    env = {
        **aws_endpoint.env, **FAST,
        "STYX_CATALOG_DIR": str(write_catalog(tmp_path / "catalog")),
        "STYX_WHEELHOUSE": str(wheelhouse()),
    }  # fmt: skip
    before = leaks.snapshot()
    s = Styx(home, extra_env=env)
    try:
        yield s
    finally:
        s("serve", "down", "--all", "-y", timeout=300)
        s("down", "--all", "-y", timeout=300)
    leaks.assert_none_since(before, (str(home), "styx.serve.daemon"))  # and moto: no_aws_leaks


def replicas(styx: Styx) -> list[dict[str, Any]]:
    r = styx("serve", "status", "web", "--json", check=True)
    return list(json.loads(r.stdout)[0]["replicas"])


def ready(styx: Styx) -> list[dict[str, Any]]:
    return [r for r in replicas(styx) if r["status"] == "READY"]


def test_spot_replicas_with_an_on_demand_base_and_a_reclaimed_spot_instance(
    styx: Styx, aws_endpoint: AwsEndpoint, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(APP, app / "app.py")
    service = tmp_path / "service.yaml"
    service.write_text(
        "service:\n"
        "  readiness_probe: {path: /health, initial_delay_seconds: 120, timeout_seconds: 2,"
        " consecutive_failure_threshold_timeout: 3}\n"
        "  replica_policy: {min_replicas: 2, max_replicas: 2, base_ondemand_fallback_replicas: 1}\n"
        "  ports: 8080\n"  # only here: Styx opens it on the replicas itself
        "resources: {infra: aws, cpus: 2, use_spot: true}\n"
        f"workdir: {app}\n"
        "run: exec python3 app.py 8080\n"
    )
    r = styx("serve", "up", str(service), "-n", "web", "-y", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    port = int(
        styx("serve", "status", "web", "--endpoint", check=True).stdout.strip().rpartition(":")[2]
    )
    wait_for(lambda: len(ready(styx)) == 2, 300, "two READY replicas")
    both = replicas(styx)
    assert sorted(r["use_spot"] for r in both) == [False, True]  # one on-demand, one spot
    assert all(r["infra"].startswith("aws/us-east-1") for r in both)

    ec2 = aws_endpoint.client("ec2", region="us-east-1")
    for r in both:
        cluster = f"styx-sv-web-{r['replica_id']}"
        [instance] = [
            i
            for res in ec2.describe_instances(
                Filters=[{"Name": "tag:styx-cluster", "Values": [cluster]},
                         {"Name": "instance-state-name", "Values": ["running"]}]
            )["Reservations"]
            for i in res["Instances"]
        ]  # fmt: skip
        assert (instance.get("InstanceLifecycle") == "spot") == r["use_spot"]
        [group] = ec2.describe_security_groups(GroupNames=[f"styx-{cluster}"])["SecurityGroups"]
        opened = {(p.get("FromPort"), p.get("ToPort")) for p in group["IpPermissions"]}
        assert (8080, 8080) in opened, opened

    spot = next(r for r in both if r["use_spot"])
    with Load("127.0.0.1", port, connections=4) as load:
        time.sleep(1)
        terminate(aws_endpoint, f"styx-sv-web-{spot['replica_id']}")  # EC2 reclaims it
        wait_for(
            lambda: len(ready(styx)) == 2 and spot["replica_id"] not in {r["replica_id"] for r in ready(styx)},
            300, "a new spot replica",
        )  # fmt: skip
    per_connection = [i for i, _ in load.failures]
    assert all(per_connection.count(i) <= 1 for i in set(per_connection)), load.failures
    assert sorted(r["use_spot"] for r in ready(styx)) == [False, True]
    assert get("127.0.0.1", port, "/whoami")[0] == 200
    log = styx("serve", "logs", "web", "--controller", "--no-follow", check=True).stdout
    assert f"replica {spot['replica_id']} PREEMPTED: cluster lost" in log
    assert styx("serve", "down", "web", "-y", timeout=300).returncode == 0
    assert json.loads(styx("status", "--json", check=True).stdout or "[]") == []
