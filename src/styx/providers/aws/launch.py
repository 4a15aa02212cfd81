"""One launch of a cluster's instances: all nodes in one zone, zone after zone of a region.

A launch is all-or-nothing: ``MinCount = MaxCount = num_nodes`` in one RunInstances call. A
zone without capacity (NoCapacity) sends the launch to the next zone; any other error ends it.
Whatever an attempt made is terminated (and waited for) before its error is raised, so a
failed launch leaves no instance or volume behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from styx.errors import FailoverScope, NoCapacity, StyxError
from styx.providers.aws.errors import translated
from styx.providers.aws.instances import (
    INDEX_TAG,
    LAUNCH_TAG,
    LIVE_STATES,
    ROLE_TAG,
    client_token,
    describe,
    wait_for_state,
)
from styx.providers.aws.network import CLUSTER_TAG


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What every zone's attempt asks EC2 for."""

    cluster_name: str
    region: str
    num_nodes: int
    instance_type: str
    image_id: str
    block_devices: list[dict[str, Any]]
    key_name: str
    security_group_id: str
    use_spot: bool = False
    internal_ips: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    user_data: str | None = None
    terminate_timeout: float = 600.0


def _tags(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in pairs.items()]


def run_params(spec: LaunchSpec, zone: str, subnet_id: str, token: str) -> dict[str, Any]:
    """RunInstances' arguments for one attempt in ``zone``."""
    common = {**dict(spec.labels), CLUSTER_TAG: spec.cluster_name, LAUNCH_TAG: token}
    params: dict[str, Any] = {
        "ImageId": spec.image_id,
        "InstanceType": spec.instance_type,
        "MinCount": spec.num_nodes,
        "MaxCount": spec.num_nodes,
        "KeyName": spec.key_name,
        "ClientToken": token,
        "BlockDeviceMappings": spec.block_devices,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": _tags(common)},
            {"ResourceType": "volume", "Tags": _tags(common)},
        ],
    }
    if spec.internal_ips:
        params["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "SubnetId": subnet_id,
                "Groups": [spec.security_group_id],
                "AssociatePublicIpAddress": False,
            }
        ]
    else:
        params["SubnetId"] = subnet_id
        params["SecurityGroupIds"] = [spec.security_group_id]
    if spec.use_spot:
        params["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {
                "SpotInstanceType": "one-time",
                "InstanceInterruptionBehavior": "terminate",
            },
        }
    if spec.user_data:
        params["UserData"] = spec.user_data
    return params


def launch_in_zone(
    ec2: Any, spec: LaunchSpec, zone: str, subnet_id: str, attempt: str
) -> list[dict[str, Any]]:
    """Run the cluster's instances in ``zone`` and tag each with its index and role; return
    them in index order. On any error, what this attempt made is terminated first."""
    token = client_token(spec.cluster_name, attempt, zone)
    made: list[str] = []
    try:
        with translated(spec.region, zone, f"launching {spec.num_nodes}x {spec.instance_type}"):
            reply = ec2.run_instances(**run_params(spec, zone, subnet_id, token))
        instances = sorted(reply["Instances"], key=lambda i: int(i.get("AmiLaunchIndex", 0)))
        made = [i["InstanceId"] for i in instances]

        def tag(index: int) -> None:
            tags = {
                INDEX_TAG: str(index),
                ROLE_TAG: "head" if index == 0 else "worker",
                "Name": f"{spec.cluster_name}-{index}",
            }
            ec2.create_tags(Resources=[made[index]], Tags=_tags(tags))

        with (
            translated(spec.region, zone, "tagging the instances"),
            ThreadPoolExecutor(min(16, len(made)), thread_name_prefix="styx-aws") as pool,
        ):
            list(pool.map(tag, range(len(made))))  # one call per node, all at once
        # A request that timed out but was carried out, then retried, may have made a second
        # set (EC2 returns the first set for the same token; moto does not): end any extras.
        extras = [i for i in _by_token(ec2, spec.region, token) if i not in made]
        if extras:
            terminate_and_wait(ec2, spec.region, extras, timeout=spec.terminate_timeout)
        return instances
    except BaseException:
        leftovers = set(made)
        with contextlib.suppress(StyxError):  # the API is failing: end what we know of
            leftovers |= set(_by_token(ec2, spec.region, token))
        if leftovers:
            terminate_and_wait(ec2, spec.region, sorted(leftovers), timeout=spec.terminate_timeout)
        raise


def _by_token(ec2: Any, region: str, token: str) -> list[str]:
    filters = [
        {"Name": f"tag:{LAUNCH_TAG}", "Values": [token]},
        {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
    ]
    return [i["InstanceId"] for i in describe(ec2, region, Filters=filters)]


def launch_in_region(
    ec2: Any,
    spec: LaunchSpec,
    subnets: dict[str, str],
    zones: list[str],
    attempt: str,
    *,
    whole_region: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """Try ``zones`` in order; return the zone that had capacity and its instances. Only
    NoCapacity moves on to the next zone. When every zone lacks capacity: NoCapacity for the
    region (scope ``REGION``, ``details['zones']``: each zone's EC2 code and message) if
    ``zones`` are all the region's usable zones (``whole_region``), else the last zone's own
    NoCapacity (scope ``ZONE``)."""
    failures: dict[str, NoCapacity] = {}
    for zone in zones:
        try:
            return zone, launch_in_zone(ec2, spec, zone, subnets[zone], attempt)
        except NoCapacity as exc:
            failures[zone] = exc
            if not whole_region and len(failures) == len(zones):
                raise
    each = "; ".join(f"{z}: {e.details.get('aws_code', e.code)}" for z, e in failures.items())
    raise NoCapacity(
        f"No zone of {spec.region} has capacity for {spec.num_nodes}x {spec.instance_type}"
        + (" (spot)" if spec.use_spot else "")
        + f" ({each}).",
        "Try another region or instance type, or retry later.",
        scope=FailoverScope.REGION,
        details={
            "cloud": "aws",
            "region": spec.region,
            "zones": {
                z: {"aws_code": e.details.get("aws_code"), "message": e.message}
                for z, e in failures.items()
            },
        },
    )


def terminate_and_wait(ec2: Any, region: str, ids: list[str], *, timeout: float) -> None:
    """Terminate instances and wait until EC2 says they are terminated (their volumes go
    with them), so a security group can be deleted after."""
    if not ids:
        return
    with translated(region, action="terminating instances"):
        try:
            ec2.terminate_instances(InstanceIds=ids)
        except Exception as exc:
            from styx.providers.aws.errors import error_code

            if error_code(exc) != "InvalidInstanceID.NotFound":
                raise
            for one in ids:  # some id is gone already: end the others one by one
                try:
                    ec2.terminate_instances(InstanceIds=[one])
                except Exception as inner:
                    if error_code(inner) != "InvalidInstanceID.NotFound":
                        raise
    wait_for_state(ec2, region, ids, "terminated", timeout=timeout)
