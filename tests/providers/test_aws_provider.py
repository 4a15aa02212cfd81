"""The AWS provider against a real moto server on 127.0.0.1 (EC2's API, no hosts behind it).

A VPC 198.18.0.0/16 with one subnet per zone is made once; instances get private IPs from it.
No SSH here (``wait_ssh=False``): the end-to-end tests with booted hosts live in tests/aws.
Capacity, quota and auth errors are injected with botocore's ``before-call`` hook on the
provider's own client. After every test, nothing may be left: no live instance, no security
group but the VPCs' defaults, no key pair but the user's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from styx.errors import (
    AuthFailed,
    FailoverScope,
    NoCapacity,
    NotSupportedError,
    QuotaExceeded,
)
from styx.providers.aws import client, instances, keys
from styx.providers.aws.provider import AWSProvider
from styx.providers.aws.settings import AWSSettings
from styx.providers.base import ClusterHandle, ProvisionRequest

REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
VPC_NAME = "styx-test"
TYPE = "t3.micro"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """moto's server on a free loopback port, the AWS environment pointing at it only, and
    the test VPC with its subnets."""
    home = tmp_path_factory.mktemp("aws-home")
    port = _free_port()
    env = {
        **os.environ,
        "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1",
        "MOTO_ENABLE_AMI_VALIDATION": "1",
    }
    log = (home / "moto.log").open("w")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            pytest.skip("moto_server did not start")
        time.sleep(0.1)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(home / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "STYX_HOME": str(home / "styx"),
        }.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            mp.delenv(key, raising=False)
        ec2 = client.ec2(REGION)
        vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": VPC_NAME}])
        subnets = {
            zone: ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"198.18.{i + 1}.0/24", AvailabilityZone=zone
            )["Subnet"]["SubnetId"]
            for i, zone in enumerate(ZONES)
        }
        try:
            yield {"ec2": ec2, "vpc": vpc, "subnets": subnets, "home": home}
        finally:
            server.terminate()
            server.wait(10)
            log.close()


@pytest.fixture
def aws(moto: dict[str, Any]) -> Iterator[AWSProvider]:
    """The provider on the test VPC; afterwards, checks (then clears) anything left behind."""
    yield AWSProvider(settings=AWSSettings(vpc_names=(VPC_NAME,)), wait_ssh=False, state_timeout=30)
    ec2 = moto["ec2"]
    live = [
        i["InstanceId"]
        for i in instances.describe(ec2, REGION)
        if i["State"]["Name"] != "terminated"
    ]
    groups = [
        g["GroupId"]
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"] != "default"
    ]
    _, public = keys.ensure_local_key()
    pairs = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]} - {
        keys.key_pair_name(public)
    }
    if live:
        ec2.terminate_instances(InstanceIds=live)
    for group in groups:
        ec2.delete_security_group(GroupId=group)
    assert (live, groups, pairs) == ([], [], set()), "left behind"


@contextlib.contextmanager
def inject(
    code: str, *, zones: tuple[str, ...] = ZONES, op: str = "ec2.RunInstances"
) -> Iterator[list[str]]:
    """Answer ``op`` with EC2 error ``code`` (for RunInstances: only in ``zones``), as moto
    cannot; yields the zones (subnet ids) the calls were for."""
    from botocore.awsrequest import AWSResponse

    service = op.split(".")[0]
    target = client.client(service, REGION)
    seen: list[str] = []
    subnets = {
        s["SubnetId"]: s["AvailabilityZone"]
        for s in client.ec2(REGION).describe_subnets()["Subnets"]
    }

    def hook(params: dict[str, Any], **_: Any) -> Any:
        body = params.get("body") or {}
        subnet = body.get("SubnetId") or body.get("NetworkInterface.1.SubnetId")
        zone = subnets.get(str(subnet), "")
        seen.append(zone)
        if service == "ec2" and op.endswith("RunInstances") and zone not in zones:
            return None
        error = {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {}}
        return AWSResponse("http://127.0.0.1", 400, {}, None), error

    event = f"before-call.{op}"
    target.meta.events.register(event, hook)
    try:
        yield seen
    finally:
        target.meta.events.unregister(event, hook)


def request(name: str, **kw: Any) -> ProvisionRequest:
    return ProvisionRequest(
        cluster_name=name, num_nodes=kw.pop("num_nodes", 2), region=REGION, instance_type=TYPE, **kw
    )


def tagged(ec2: Any, name: str) -> list[dict[str, Any]]:
    return instances.cluster_instances(ec2, REGION, name)


def test_provision_makes_a_tagged_cluster_with_its_group_and_key(
    aws: AWSProvider, moto: dict[str, Any]
) -> None:
    ec2 = moto["ec2"]
    handle = aws.provision(
        request("c-basic", ports=("8080", "9000-9001"), labels=(("team", "ml"),))
    )
    found = tagged(ec2, "c-basic")
    assert [i["InstanceId"] for i in found] == handle.extra["instance_ids"]
    tags = [instances.tags_of(i) for i in found]
    assert [(t["styx-node-index"], t["styx-role"], t["Name"]) for t in tags] == [
        ("0", "head", "c-basic-0"),
        ("1", "worker", "c-basic-1"),
    ]
    assert all(t["styx-cluster"] == "c-basic" and t["team"] == "ml" for t in tags)
    assert {i["Placement"]["AvailabilityZone"] for i in found} == {ZONES[0]}
    assert all(i["PrivateIpAddress"].startswith("198.18.1.") for i in found)
    assert [n.ip for n in handle.nodes] == [i["PrivateIpAddress"] for i in found]
    assert handle.nodes[0].cpus == 2 and handle.nodes[0].memory_gb == 1.0
    assert [s["hostname"] for s in handle.extra["ssh"]] == [n.ip for n in handle.nodes]
    assert handle.extra["ssh_user"] == "ubuntu" and handle.agent_root == "/home/ubuntu/.styx/agent"
    assert handle.extra["zone"] == ZONES[0] and handle.extra["region"] == REGION

    (group,) = ec2.describe_security_groups(GroupIds=[handle.extra["security_group_id"]])[
        "SecurityGroups"
    ]
    assert group["GroupName"] == "styx-c-basic"
    assert {"Key": "styx-cluster", "Value": "c-basic"} in group["Tags"]
    ports = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")) for p in group["IpPermissions"]}
    assert {("tcp", 22, 22), ("tcp", 8080, 8080), ("tcp", 9000, 9001), ("-1", None, None)} <= ports
    assert all(g["GroupId"] == group["GroupId"] for i in found for g in i["SecurityGroups"])
    pairs = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert handle.extra["key_name"] in pairs and all(
        i["KeyName"] == handle.extra["key_name"] for i in found
    )

    aws.terminate(handle)
    assert tagged(ec2, "c-basic") == []
    assert handle.extra["key_name"] in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}


def test_provision_is_idempotent_and_sends_a_client_token(
    aws: AWSProvider, moto: dict[str, Any]
) -> None:
    tokens: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        tokens.append(params["body"]["ClientToken"])

    events = client.ec2(REGION).meta.events
    events.register("before-call.ec2.RunInstances", record)
    try:
        first = aws.provision(request("c-idem"))
        again = aws.provision(request("c-idem"))
    finally:
        events.unregister("before-call.ec2.RunInstances", record)
    assert again.extra["instance_ids"] == first.extra["instance_ids"]
    assert len(tokens) == 1 and tokens[0].startswith("styx-")
    assert {instances.tags_of(i)["styx-launch"] for i in tagged(moto["ec2"], "c-idem")} == {
        tokens[0]
    }
    aws.terminate(first)


def test_provision_starts_a_stopped_cluster_that_fits(aws: AWSProvider) -> None:
    first = aws.provision(request("c-again"))
    aws.stop(first)
    again = aws.provision(request("c-again", num_nodes=1))
    assert again.extra["instance_ids"] == first.extra["instance_ids"]
    assert aws.is_up(again) and [n.ip for n in again.nodes] == [n.ip for n in first.nodes]
    aws.terminate(again)


def test_no_capacity_in_the_first_zone_lands_in_the_next(
    aws: AWSProvider, moto: dict[str, Any]
) -> None:
    with inject("InsufficientInstanceCapacity", zones=(ZONES[0],)) as seen:
        handle = aws.provision(request("c-zone-b"))
    assert seen == [ZONES[0], ZONES[1]]
    assert handle.extra["zone"] == ZONES[1]
    assert {i["Placement"]["AvailabilityZone"] for i in tagged(moto["ec2"], "c-zone-b")} == {
        ZONES[1]
    }
    aws.terminate(handle)


def test_no_capacity_anywhere_is_no_capacity_for_the_region_and_leaves_nothing(
    aws: AWSProvider, moto: dict[str, Any]
) -> None:
    with inject("InsufficientInstanceCapacity") as seen, pytest.raises(NoCapacity) as caught:
        aws.provision(request("c-full"))
    assert seen == list(ZONES)
    details = caught.value.details
    assert caught.value.scope is FailoverScope.REGION and details["region"] == REGION
    assert sorted(details["zones"]) == list(ZONES)
    assert {z["aws_code"] for z in details["zones"].values()} == {"InsufficientInstanceCapacity"}
    # The `aws` fixture checks that no instance or security group is left.


def test_a_zone_asked_for_blocks_only_that_zone(aws: AWSProvider) -> None:
    with inject("InsufficientInstanceCapacity") as seen, pytest.raises(NoCapacity) as caught:
        aws.provision(request("c-one-zone", zone=ZONES[2]))
    assert seen == [ZONES[2]]
    assert caught.value.scope is FailoverScope.ZONE and caught.value.details["zone"] == ZONES[2]


def test_a_zone_may_be_named_by_its_id(aws: AWSProvider, moto: dict[str, Any]) -> None:
    zone_ids = {
        z["ZoneId"]: z["ZoneName"]
        for z in moto["ec2"].describe_availability_zones()["AvailabilityZones"]
    }
    zone_id = next(i for i, name in zone_ids.items() if name == ZONES[1])
    handle = aws.provision(request("c-zone-id", num_nodes=1, zone=zone_id))  # as the catalog
    assert handle.extra["zone"] == ZONES[1]
    aws.terminate(handle)


@pytest.mark.parametrize(
    "code, kind, scope",
    [
        ("VcpuLimitExceeded", QuotaExceeded, "region"),
        ("UnauthorizedOperation", AuthFailed, "cloud"),
    ],
)
def test_quota_and_auth_errors_stop_at_once(
    aws: AWSProvider, code: str, kind: type[Exception], scope: str
) -> None:
    with inject(code) as seen, pytest.raises(kind) as caught:
        aws.provision(request("c-refused"))
    assert seen == [ZONES[0]]  # no other zone is tried
    assert caught.value.scope is FailoverScope(scope)  # type: ignore[attr-defined]


def test_a_failure_after_the_instances_were_made_terminates_them(aws: AWSProvider) -> None:
    from styx.errors import RemoteError

    with inject("InternalError", op="ec2.CreateTags"), pytest.raises(RemoteError) as caught:
        aws.provision(request("c-half"))
    assert caught.value.details["aws_code"] == "InternalError"
    assert "cleanup_error" not in caught.value.details
    # The `aws` fixture checks that the instances and the security group are gone.


def test_check_probes_the_credentials(aws: AWSProvider) -> None:
    """`styx check --probe aws` through the seam: STS answers with the identity, or refuses."""
    from styx.providers import checks, registry

    status = checks.check_one(registry.info("aws"), probe=True)
    assert status.enabled and "123456789012" in status.reason
    assert "123456789012" not in checks.check_one(registry.info("aws")).reason  # local only
    with inject("InvalidClientTokenId", op="sts.GetCallerIdentity"):
        status = checks.check_one(registry.info("aws"), probe=True)
    assert not status.enabled and "InvalidClientTokenId" in status.reason


def test_stop_and_start_keep_private_ips(aws: AWSProvider, moto: dict[str, Any]) -> None:
    handle = aws.provision(request("c-stop"))
    aws.stop(handle)
    assert set(aws.query(handle).values()) == {"stopped"}
    assert not aws.is_up(handle) and aws.unreachable_nodes(handle) == []
    started = aws.start(handle)
    assert [n.ip for n in started.nodes] == [n.ip for n in handle.nodes]
    assert started.extra["instance_ids"] == handle.extra["instance_ids"]
    assert aws.is_up(started)
    aws.terminate(started)


def test_a_vanished_node_is_unreachable(aws: AWSProvider, moto: dict[str, Any]) -> None:
    handle = aws.provision(request("c-vanish"))
    moto["ec2"].terminate_instances(InstanceIds=[handle.nodes[1].instance_id])
    assert aws.query(handle)[handle.nodes[1].name] in ("shutting-down", "terminated")
    assert aws.unreachable_nodes(handle) == [handle.nodes[1].name]
    assert not aws.is_up(handle)
    aws.terminate(handle)


def test_down_finds_a_killed_launch_by_tag(aws: AWSProvider, moto: dict[str, Any]) -> None:
    handle = aws.provision(request("c-killed", num_nodes=3))
    assert len(aws.find_cluster_instances(REGION, "c-killed")) == 3
    # As after `kill -9` of the launch: only the record ops writes before provisioning.
    bare = ClusterHandle(
        "c-killed", "aws", (), "", "", "", 0, extra={"pending": True, "region": REGION}
    )
    # status -r sees the instances by tag; the node-less handle itself is not "up".
    assert aws.query(bare) == {f"c-killed-{i}": "running" for i in range(3)}
    assert not aws.is_up(bare) and aws.unreachable_nodes(bare) == []
    aws.terminate(bare)
    assert aws.find_cluster_instances(REGION, "c-killed") == [] and aws.query(bare) == {}
    assert handle.extra["security_group_id"] not in {
        g["GroupId"] for g in moto["ec2"].describe_security_groups()["SecurityGroups"]
    }


def test_remains_of_an_incomplete_launch_are_replaced(
    aws: AWSProvider, moto: dict[str, Any]
) -> None:
    ec2 = moto["ec2"]
    image = ec2.describe_images(Owners=[instances.CANONICAL])["Images"][0]["ImageId"]
    orphan = ec2.run_instances(
        ImageId=image, InstanceType=TYPE, MinCount=1, MaxCount=1, SubnetId=moto["subnets"][ZONES[2]],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "styx-cluster", "Value": "c-orphan"}]}],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    handle = aws.provision(request("c-orphan"))
    assert orphan not in handle.extra["instance_ids"]
    assert [i["InstanceId"] for i in tagged(ec2, "c-orphan")] == handle.extra["instance_ids"]
    aws.terminate(handle)


def test_spot_disk_and_image(aws: AWSProvider, moto: dict[str, Any]) -> None:
    handle = aws.provision(
        request("c-spot", num_nodes=1, use_spot=True, disk_size=40, disk_tier="low")
    )
    (inst,) = tagged(moto["ec2"], "c-spot")
    assert inst.get("InstanceLifecycle") == "spot"
    assert inst["ImageId"] == handle.extra["image_id"]
    volumes = moto["ec2"].describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [inst["InstanceId"]]}]
    )
    assert [(v["Size"], v["VolumeType"]) for v in volumes["Volumes"]] == [(40, "gp3")]
    with pytest.raises(NotSupportedError):
        aws.stop(handle)
    aws.terminate(handle)


def test_a_missing_vpc_names_the_key_to_set(moto: dict[str, Any], tmp_path: Path) -> None:
    from styx.errors import ResourcesUnavailable

    provider = AWSProvider(settings=AWSSettings(vpc_names=("nope",)), wait_ssh=False)
    with pytest.raises(ResourcesUnavailable) as caught:
        provider.provision(request("c-novpc"))
    assert caught.value.code == "vpc-not-found" and "aws.vpc_name" in caught.value.hint
    assert caught.value.scope is FailoverScope.REGION
