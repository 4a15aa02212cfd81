"""The AWS test world itself: moto behind the fault proxy, the VPC, the materializer, leak checks."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import TEST_AMI, AwsEndpoint, AwsNetwork, assert_no_leaks, leaks, subnet_layout
from .materializer import SSH_OPTIONS, Materializer

AMI = TEST_AMI
TYPE = "m5.large"


@pytest.fixture
def user_key(tmp_path: Path, aws_endpoint: AwsEndpoint) -> tuple[str, Path]:
    """An ed25519 key pair generated here and imported into us-east-1 as ``user-key``."""
    path = tmp_path / "id_user"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    ec2 = aws_endpoint.client(direct=True)
    ec2.import_key_pair(KeyName="user-key", PublicKeyMaterial=Path(f"{path}.pub").read_bytes())
    return "user-key", path


def no_retry(endpoint: AwsEndpoint, region: str = "us-east-1") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("ec2", region_name=region, config=Config(retries={"total_max_attempts": 1}))


def run(ec2: Any, subnet: str, n: int = 1, **kw: Any) -> list[str]:
    kw = {"ImageId": AMI, "InstanceType": TYPE, **kw}
    res = ec2.run_instances(MinCount=n, MaxCount=n, SubnetId=subnet, **kw)
    return [i["InstanceId"] for i in res["Instances"]]


def ssh(key: Path, ip: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(key), *SSH_OPTIONS, "-oConnectTimeout=2", f"root@{ip}", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def unreachable(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=0.3):
            return False
    except OSError:
        return True


# --- moto and the proxy -------------------------------------------------------------------------


def test_environment_points_boto3_at_the_proxy(aws_endpoint: AwsEndpoint) -> None:
    import boto3

    ec2 = boto3.client("ec2")  # from the environment alone
    assert ec2.meta.endpoint_url == aws_endpoint.url
    assert ec2.meta.region_name == "us-east-1"
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert "us-east-1a" in {z["ZoneName"] for z in zones}
    assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
    logged = aws_endpoint.requests()
    assert [r["action"] for r in logged] == ["DescribeAvailabilityZones", "GetCallerIdentity"]
    assert logged[0]["service"] == "ec2" and logged[1]["service"] == "sts"
    assert aws_endpoint.regions_touched() == ["us-east-1"]
    mark = aws_endpoint.mark()
    ec2.describe_vpcs()
    assert [r["action"] for r in aws_endpoint.requests(since=mark)] == ["DescribeVpcs"]
    assert 0 < aws_endpoint.api_seconds(since=mark) < 1


def test_instance_types_and_images_are_validated(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork
) -> None:
    ec2 = no_retry(aws_endpoint)
    subnet = aws_vpc.subnets["us-east-1a"].id
    with pytest.raises(ec2.exceptions.ClientError) as err:
        run(ec2, subnet, InstanceType="zz9.huge")
    assert err.value.response["Error"]["Code"] == "InvalidInstanceType.NotFound"
    with pytest.raises(ec2.exceptions.ClientError) as err:
        run(ec2, subnet, ImageId="ami-00000000")
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_vpc_layout_and_private_ips(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork, aws_slot: Any
) -> None:
    layout = subnet_layout(aws_slot.slot)
    assert sorted(aws_vpc.subnets) == sorted(layout)
    for region in ("us-east-1", "us-west-2"):
        ec2 = aws_endpoint.client(region=region, direct=True)
        flt = [{"Name": "tag:Name", "Values": ["styx-test-vpc"]}]
        (vpc,) = ec2.describe_vpcs(Filters=flt)["Vpcs"]
        assert vpc["CidrBlock"] == "198.18.0.0/16" and vpc["VpcId"] == aws_vpc.vpc_ids[region]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
        for sn in subnets["Subnets"]:
            assert sn["CidrBlock"] == layout[sn["AvailabilityZone"]]
            assert sn["MapPublicIpOnLaunch"] is False
            net = ipaddress.ip_network(sn["CidrBlock"])
            assert net.network_address.packed[2] >= 200  # clear of the testbed's slots
    ec2 = aws_endpoint.client(direct=True)
    b = aws_vpc.subnets["us-east-1b"]
    (iid,) = run(ec2, b.id)
    (exact,) = run(ec2, b.id, PrivateIpAddress=str(ipaddress.ip_network(b.cidr)[77]))
    got = {
        i["InstanceId"]: i
        for r in ec2.describe_instances(InstanceIds=[iid, exact])["Reservations"]
        for i in r["Instances"]
    }
    assert ipaddress.ip_address(got[iid]["PrivateIpAddress"]) in ipaddress.ip_network(b.cidr)
    assert got[exact]["PrivateIpAddress"] == str(ipaddress.ip_network(b.cidr)[77])
    assert got[iid]["Placement"]["AvailabilityZone"] == "us-east-1b"
    assert not got[iid].get("PublicIpAddress")
    ec2.terminate_instances(InstanceIds=[iid, exact])


def test_zone_fault_hits_only_that_zone(aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork) -> None:
    rule = aws_endpoint.inject("RunInstances", "InsufficientInstanceCapacity", zone="us-east-1a")
    ec2 = no_retry(aws_endpoint)
    a, b = aws_vpc.subnets["us-east-1a"].id, aws_vpc.subnets["us-east-1b"].id
    for kw in ({"SubnetId": a}, {"SubnetId": a, "Placement": {"AvailabilityZone": "us-east-1a"}}):
        with pytest.raises(ec2.exceptions.ClientError) as err:
            ec2.run_instances(ImageId=AMI, InstanceType=TYPE, MinCount=1, MaxCount=1, **kw)
        assert err.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    ids = run(ec2, b)  # zone b is fine
    west = no_retry(aws_endpoint, "us-west-2")  # another region is not matched
    ids_west = run(west, aws_vpc.subnets["us-west-2a"].id)
    assert aws_endpoint.hits(rule) == 2 and aws_endpoint.hits("RunInstances") == 2
    assert len(aws_endpoint.requests("RunInstances")) == 4
    ec2.terminate_instances(InstanceIds=ids)
    west.terminate_instances(InstanceIds=ids_west)
    aws_endpoint.clear()
    run(ec2, a)  # cleared
    assert aws_endpoint.hits() == 0


def test_fault_kinds(aws_endpoint: AwsEndpoint) -> None:
    ec2 = no_retry(aws_endpoint)
    faults = aws_endpoint.faults
    # count and skip: the second call fails, once
    faults.inject("DescribeInstances", "RequestLimitExceeded", status=503, skip=1, count=1)
    ec2.describe_instances()
    with pytest.raises(ec2.exceptions.ClientError) as err:
        ec2.describe_instances()
    assert err.value.response["Error"]["Code"] == "RequestLimitExceeded"
    ec2.describe_instances()
    # region: only us-west-2 sees it; a quota error
    aws_endpoint.inject(code="VcpuLimitExceeded", status=400, region="us-west-2", count=-1)
    with pytest.raises(ec2.exceptions.ClientError) as err:
        no_retry(aws_endpoint, "us-west-2").run_instances(
            ImageId=AMI, InstanceType=TYPE, MinCount=1, MaxCount=1
        )
    assert err.value.response["Error"]["Code"] == "VcpuLimitExceeded"
    aws_endpoint.clear()
    # an auth error on another service, in its own protocol's format
    import boto3
    from botocore.config import Config

    faults.inject("GetCallerIdentity", "InvalidClientTokenId", status=403, service="sts")
    sts = boto3.client("sts", config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(sts.exceptions.ClientError) as err:
        sts.get_caller_identity()
    assert err.value.response["Error"]["Code"] == "InvalidClientTokenId"
    # delay, then forwarded
    faults.inject("DescribeVpcs", delay=0.3)
    t0 = time.monotonic()
    ec2.describe_vpcs()
    assert time.monotonic() - t0 >= 0.3
    # dropped connection
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    faults.inject("DescribeSubnets", drop=True)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        ec2.describe_subnets()
    assert faults.hits() == 3  # sts, delay, drop (the earlier ones were cleared)
    log = aws_endpoint.requests("DescribeVpcs")
    assert log[-1]["status"] == 200 and log[-1]["upstream_s"] > 0


# --- leaks --------------------------------------------------------------------------------------


def test_leak_check_finds_what_is_left(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork, user_key: Any
) -> None:
    ec2 = aws_endpoint.client(direct=True)
    assert_no_leaks(ec2, ["user-key"])
    sg = ec2.create_security_group(
        GroupName="styx-c1", Description="x", VpcId=aws_vpc.vpc_ids["us-east-1"]
    )
    ec2.create_key_pair(KeyName="styx-c1-key")
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)
    (iid,) = run(ec2, aws_vpc.subnets["us-east-1a"].id)
    ec2.stop_instances(InstanceIds=[iid])
    found = "\n".join(leaks(ec2, ["user-*"]))
    for what in (iid, "is stopped", sg["GroupId"], "styx-c1-key", vol["VolumeId"]):
        assert what in found
    assert "user-key" not in found
    with pytest.raises(AssertionError, match="left behind"):
        aws_endpoint.assert_no_leaks(["user-key"])
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.delete_security_group(GroupId=sg["GroupId"])
    ec2.delete_key_pair(KeyName="styx-c1-key")
    ec2.delete_volume(VolumeId=vol["VolumeId"])
    assert_no_leaks(ec2, ["user-key"], regions=["us-east-1", "us-west-2"])
    aws_endpoint.assert_no_leaks(["user-key"])


# --- the materializer ---------------------------------------------------------------------------


def test_instance_life_cycle_is_a_real_host(
    aws_endpoint: AwsEndpoint,
    aws_vpc: AwsNetwork,
    materializer: Materializer,
    user_key: tuple[str, Path],
    no_aws_leaks: set[str],
) -> None:
    no_aws_leaks.add("user-key")
    key_name, key = user_key
    ec2 = aws_endpoint.client()
    t0 = time.monotonic()
    (iid,) = run(ec2, aws_vpc.subnets["us-east-1a"].id, KeyName=key_name)
    host = materializer.wait_up([iid], timeout=10)[iid]
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert host.ip == inst["PrivateIpAddress"] and host.zone == "us-east-1a"
    out = ssh(key, host.ip, "hostname; id -un; echo disk > /root/disk; echo tmp > /tmp/tmp")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [host.name, "root"]
    assert time.monotonic() - t0 < 5  # launched to logged in
    assert host.boot_s is not None and host.boot_s < 3
    pids = materializer.pids(iid)
    assert pids and host.pid is not None
    # the Python install is there, read-only; the checkout too
    out = ssh(key, host.ip, f"{sys.executable} -c 'import styx' && touch {sys.base_prefix}/x")
    assert out.returncode != 0 and "Read-only" in out.stderr, out

    ec2.stop_instances(InstanceIds=[iid])
    materializer.wait_down(iid, timeout=10)
    assert materializer.host(iid).state == "stopped" and materializer.pids(iid) == []
    assert unreachable(host.ip)

    ec2.start_instances(InstanceIds=[iid])
    again = materializer.wait_up([iid], timeout=10)[iid]
    assert again.ip == host.ip and again.boots == 2
    out = ssh(key, host.ip, "cat /root/disk; test -e /tmp/tmp || echo wiped")
    assert out.stdout.split() == ["disk", "wiped"], out  # /root kept, /tmp wiped

    ec2.terminate_instances(InstanceIds=[iid])
    materializer.wait_down(iid, timeout=10)
    assert iid not in materializer.hosts() and materializer.pids(iid) == []
    assert not host.dir.exists()
    assert unreachable(host.ip)
    assert not materializer.errors, list(materializer.errors)


def test_hosts_of_a_cluster_across_zones(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork, materializer: Materializer, user_key: Any
) -> None:
    ec2 = aws_endpoint.client()
    ids = run(ec2, aws_vpc.subnets["us-east-1a"].id, 2, KeyName="user-key")
    ids += run(ec2, aws_vpc.subnets["us-east-1b"].id, 1, KeyName="user-key")
    west = aws_endpoint.client(region="us-west-2")
    west.import_key_pair(
        KeyName="user-key", PublicKeyMaterial=Path(f"{user_key[1]}.pub").read_bytes()
    )
    ids += run(west, aws_vpc.subnets["us-west-2b"].id, 1, KeyName="user-key")
    hosts = materializer.wait_up(ids, timeout=15)
    assert len({h.netns for h in hosts.values()}) == 4
    assert {h.zone for h in hosts.values()} == {"us-east-1a", "us-east-1b", "us-west-2b"}
    a1, a2, b, w = (hosts[i] for i in ids)
    # hosts of one VPC reach each other across subnets
    probe = f"exec 3<>/dev/tcp/{b.ip}/22 && exec 3<>/dev/tcp/{a2.ip}/22 && echo ok"
    out = materializer.ssh(a1.instance_id, "bash", "-c", probe)
    assert out.stdout.strip() == "ok", out.stderr
    assert ssh(user_key[1], w.ip, "hostname").stdout.strip() == w.name
    ec2.terminate_instances(InstanceIds=ids[:3])
    west.terminate_instances(InstanceIds=ids[3:])
    west.delete_key_pair(KeyName="user-key")
    for i in ids:
        materializer.wait_down(i)


def test_crash_kills_the_host_until_stop_and_start(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork, materializer: Materializer, user_key: Any
) -> None:
    ec2 = aws_endpoint.client()
    (iid,) = run(ec2, aws_vpc.subnets["us-east-1c"].id, KeyName="user-key")
    host = materializer.wait_up([iid])[iid]
    session = subprocess.Popen(
        ["ssh", "-i", str(user_key[1]), *SSH_OPTIONS, f"root@{host.ip}", "sleep 600"],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while len(materializer.pids(iid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # sshd, its session, sleep
        materializer.crash(iid)
        assert session.wait(10) == 255
    finally:
        session.kill()
        session.wait()
    assert materializer.pids(iid) == [] and materializer.host(iid).state == "crashed"
    assert unreachable(host.ip)
    time.sleep(3 * materializer.interval)
    assert materializer.host(iid).state == "crashed"  # not rebooted behind the test's back
    ec2.stop_instances(InstanceIds=[iid])
    materializer.wait_down(iid)
    ec2.start_instances(InstanceIds=[iid])
    materializer.wait_up([iid])
    assert ssh(user_key[1], host.ip, "true").returncode == 0
    ec2.terminate_instances(InstanceIds=[iid])
    materializer.wait_down(iid)


def test_only_test_addresses_are_materialized(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork, materializer: Materializer
) -> None:
    ec2 = aws_endpoint.client()
    res = ec2.run_instances(ImageId=AMI, InstanceType=TYPE, MinCount=1, MaxCount=1)  # default VPC
    iid = res["Instances"][0]["InstanceId"]
    assert not ipaddress.ip_address(res["Instances"][0]["PrivateIpAddress"]).is_global
    (ours,) = run(ec2, aws_vpc.subnets["us-east-1a"].id)
    materializer.wait_up([ours])
    assert iid not in materializer.hosts() and "outside 198.18.0.0/15" in materializer.skipped[iid]
    ec2.terminate_instances(InstanceIds=[iid, ours])
    materializer.wait_down(ours)


def test_reset_removes_every_host(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork, materializer: Materializer
) -> None:
    ec2 = aws_endpoint.client()
    ids = run(ec2, aws_vpc.subnets["us-east-1b"].id, 2)
    hosts = materializer.wait_up(ids)
    aws_endpoint.reset()
    for i in ids:
        materializer.wait_down(i)
    assert materializer.hosts() == {}
    assert not any(h.dir.exists() for h in hosts.values())


def test_reboot_and_fast_stop_start_through_the_proxy(
    aws_endpoint: AwsEndpoint, aws_vpc: AwsNetwork, materializer: Materializer
) -> None:
    west = aws_endpoint.client(region="us-west-2")
    (iid,) = run(west, aws_vpc.subnets["us-west-2a"].id)
    materializer.wait_up([iid])
    assert materializer.ssh(iid, "touch /tmp/t /root/r").returncode == 0
    west.reboot_instances(InstanceIds=[iid])
    materializer.wait_until(lambda: materializer.host(iid).boots == 2 or None, 10, "a reboot")
    materializer.wait_up([iid])
    assert materializer.ssh(iid, "test -e /root/r && ! test -e /tmp/t").returncode == 0
    materializer.pause()  # no poll can see "stopped" between these two calls
    west.stop_instances(InstanceIds=[iid])
    west.start_instances(InstanceIds=[iid])
    materializer.resume()
    materializer.wait_until(lambda: materializer.host(iid).boots == 3 or None, 10, "a power cycle")
    assert materializer.wait_up([iid])[iid].boots == 3
    west.terminate_instances(InstanceIds=[iid])
    materializer.wait_down(iid)
