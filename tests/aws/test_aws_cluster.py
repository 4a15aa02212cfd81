"""`styx launch --infra aws` end to end: boto3 against moto's EC2 API behind the fault proxy,
real SSH test hosts booted at the instances' private IPs by the materializer, real Ray.

The optimizer reads a small synthetic AWS catalog written here (moto ships instance types but no
prices): us-east-1 is cheaper than us-west-2, so failover order is known.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests import leaks
from tests.aws.harness import AwsEndpoint, AwsNetwork
from tests.aws.materializer import Materializer
from tests.ops.conftest import (
    Styx,
    cluster_row,
    kill_9_mid_launch_then_down,
    wait_for,
    wheelhouse,
)
from tests.testworld.containers import ContainerWorld, why_not

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HEADER = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice\n"
ZONES = {"us-east-1": ("a", "b", "c"), "us-west-2": ("a", "b")}
PRICES = {"us-east-1": 0.096, "us-west-2": 0.112}


def write_catalog(root: Path) -> Path:
    rows = [
        f"m5.large,2.0,8.0,,,,{region},{region}{z},{price},{price / 3:.4f}\n"
        for region, price in PRICES.items()
        for z in ZONES[region]
    ]
    (root / "aws").mkdir(parents=True)
    (root / "aws" / "vms.csv").write_text(HEADER + "".join(rows))
    return root


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
    no_aws_leaks.add("styx-key-*")  # the user's own key pair stays, as in SkyPilot
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(yaml.safe_dump({"aws": aws_vpc.config()}))
    env = {
        **aws_endpoint.env,
        "STYX_CATALOG_DIR": str(write_catalog(tmp_path / "catalog")),
        "STYX_WHEELHOUSE": str(wheelhouse()),
    }
    before = leaks.snapshot()
    yield Styx(home, extra_env=env)
    leaks.assert_none_since(before, (str(home),))  # and no_aws_leaks checks moto itself


def task(tmp_path: Path, body: str = "") -> str:
    path = tmp_path / "task.yaml"
    path.write_text(
        "num_nodes: 2\nresources:\n  infra: aws\n  cpus: 2\n"
        'run: echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES ips=$(echo $SKYPILOT_NODE_IPS)"\n'
        + body
    )
    return str(path)


def zone_of(aws_endpoint: AwsEndpoint, name: str) -> set[str]:
    zones = set()
    for region in ZONES:
        ec2 = aws_endpoint.client("ec2", region=region)
        for res in ec2.describe_instances(
            Filters=[
                {"Name": "tag:styx-cluster", "Values": [name]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]:
            zones.update(i["Placement"]["AvailabilityZone"] for i in res["Instances"])
    return zones


def test_two_node_cluster_runs_stops_starts_and_goes(
    styx: Styx, aws_endpoint: AwsEndpoint, materializer: Materializer, tmp_path: Path
) -> None:
    r = styx("launch", task(tmp_path), "-c", "aws2", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank=0 of 2" in r.stdout and "rank=1 of 2" in r.stdout
    assert zone_of(aws_endpoint, "aws2") == {"us-east-1a"}  # the cheapest zone
    assert cluster_row(styx, "aws2")["status"] == "UP"

    assert styx("stop", "aws2", "-y", timeout=300).returncode == 0
    assert cluster_row(styx, "aws2")["status"] == "STOPPED"
    assert styx("start", "aws2", "-y", timeout=600).returncode == 0
    r = styx("exec", "aws2", "--num-nodes", "2", "echo again-$SKYPILOT_NODE_RANK", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "again-0" in r.stdout and "again-1" in r.stdout

    assert styx("down", "aws2", "-y", timeout=300).returncode == 0
    assert cluster_row(styx, "aws2") is None
    # Priced at launch from the catalog (2 nodes in us-east-1), billed while up, not stopped.
    r = styx("cost-report", "--json")
    assert r.returncode == 0, r.stderr
    (c,) = [c for c in json.loads(r.stdout)["clusters"] if c["name"] == "aws2"]
    assert c["status"] == "TERMINATED" and c["infra"].startswith("aws/us-east-1")
    assert c["hourly_price"] == pytest.approx(2 * PRICES["us-east-1"])
    assert len(c["intervals"]) == 2 and c["hours"] > 0
    assert c["cost"] == pytest.approx(c["hourly_price"] * c["hours"])


def test_capacity_error_in_zone_a_lands_in_zone_b(
    styx: Styx, aws_endpoint: AwsEndpoint, tmp_path: Path
) -> None:
    aws_endpoint.inject(zone="us-east-1a", count=-1)
    r = styx("launch", task(tmp_path), "-c", "fzb", "-y", "-d", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert zone_of(aws_endpoint, "fzb") == {"us-east-1b"}
    # An instance that vanishes behind Styx's back shows up on `status -r`.
    ec2 = aws_endpoint.client("ec2", region="us-east-1")
    worker = ec2.describe_instances(
        Filters=[
            {"Name": "tag:styx-cluster", "Values": ["fzb"]},
            {"Name": "tag:styx-node-index", "Values": ["1"]},
        ]
    )["Reservations"][0]["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[worker])
    wait_for(
        lambda: styx("status", "-r").returncode == 0 and cluster_row(styx, "fzb")["status"] != "UP",
        60,
        "status -r to notice",
    )
    assert cluster_row(styx, "fzb")["status"] in ("DEGRADED", "STOPPED")
    assert styx("down", "fzb", "-y", timeout=300).returncode == 0


def test_capacity_errors_in_every_zone_land_in_the_next_region(
    styx: Styx, aws_endpoint: AwsEndpoint, tmp_path: Path
) -> None:
    aws_endpoint.inject(zone=["us-east-1a", "us-east-1b", "us-east-1c"], count=-1)
    r = styx("launch", task(tmp_path), "-c", "frg", "-y", "-d", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert zone_of(aws_endpoint, "frg") == {"us-west-2a"}
    assert styx("down", "frg", "-y", timeout=300).returncode == 0


def test_quota_error_blocks_the_region(
    styx: Styx, aws_endpoint: AwsEndpoint, tmp_path: Path
) -> None:
    aws_endpoint.inject(code="InstanceLimitExceeded", region="us-east-1", count=-1)
    r = styx("launch", task(tmp_path), "-c", "fq", "-y", "-d", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert zone_of(aws_endpoint, "fq") == {"us-west-2a"}
    # One failed RunInstances in us-east-1, not one per zone: the quota blocks the region.
    assert aws_endpoint.hits() == 1
    assert styx("down", "fq", "-y", timeout=300).returncode == 0


def test_kill_9_mid_provisioning_then_status_and_down_leave_nothing(
    styx: Styx, aws_endpoint: AwsEndpoint, tmp_path: Path
) -> None:
    kill_9_mid_launch_then_down(
        styx, "k9", [task(tmp_path)], lambda: bool(zone_of(aws_endpoint, "k9"))
    )
    time.sleep(0.5)  # the no_aws_leaks fixture checks moto after the test


@pytest.fixture
def aws_images(
    materializer: Materializer, aws_vpc: AwsNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerWorld]:
    """The container world for the instances' hosts: the registries on an address of the first
    zone's subnet (on the hosts' bridge: on-link for them), podman in every host booted now."""
    why = why_not()
    if why:
        pytest.skip(why)
    subnet = aws_vpc.subnets["us-east-1a"]
    net = ipaddress.ip_network(subnet.cidr)
    ip = str(net.broadcast_address - 1)  # moto hands out addresses from the bottom
    bridge = materializer.slot.bridge
    subprocess.run(["ip", "link", "show", bridge], check=True, capture_output=True)
    subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", bridge], check=True)
    root = tmp_path_factory.mktemp("aws-images")
    (root / "world").mkdir()
    world = ContainerWorld(root / "world", ip, root / "etc")
    materializer.containers_etc = world.etc
    try:
        yield world.up()
    finally:
        materializer.containers_etc = None
        world.down()
        subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", bridge], capture_output=True)


def test_an_image_task_runs_on_instances_and_down_leaves_no_container(
    styx: Styx, aws_images: ContainerWorld, materializer: Materializer, tmp_path: Path
) -> None:
    body = f"  image_id: docker:{aws_images.public_image}\n"
    path = Path(task(tmp_path))
    text = path.read_text().replace("  cpus: 2\n", "  cpus: 2\n" + body)
    path.write_text(text.replace("ips=", "image=$STYX_IMAGE ips="))
    r = styx("launch", str(path), "-c", "awsimg", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank=0 of 2 image=nopython-bookworm" in r.stdout, r.stdout
    assert "rank=1 of 2 image=nopython-bookworm" in r.stdout
    hosts = materializer.hosts()
    assert len(hosts) == 2
    for iid in hosts:
        assert aws_images.containers_in(materializer.pids(iid)) == ["styx-awsimg"]
    assert styx("down", "awsimg", "-y", timeout=300).returncode == 0
    gone = lambda: all(materializer.pids(iid) == [] for iid in hosts)  # noqa: E731
    wait_for(gone, 60, "the instances' hosts to go")
