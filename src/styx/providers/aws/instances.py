"""EC2 instances of a cluster: the launch request, lookups by tag, and waits on states.

Every instance carries the tags ``styx-cluster`` (the cluster's name), ``styx-node-index``
(0 is the head), ``styx-role`` (``head``/``worker``), ``styx-launch`` (the launch's client
token) and ``Name`` (``<cluster>-<index>``), so a cluster can be found, and cleaned up, from
EC2 alone, even when Styx was killed before it recorded anything.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable
from typing import Any

from styx.errors import FailoverScope, ResourcesUnavailable, StyxError
from styx.providers.aws.errors import error_code, translated
from styx.providers.aws.network import CLUSTER_TAG

INDEX_TAG = "styx-node-index"
ROLE_TAG = "styx-role"
LAUNCH_TAG = "styx-launch"
#: States in which an instance still exists (and so still costs, or may again).
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
#: Canonical's account, owner of the official Ubuntu AMIs.
CANONICAL = "099720109477"
#: Ubuntu images tried in order for the default AMI (newest image of the first that matches).
UBUNTU_PATTERNS = (
    "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-{arch}-server-*",
    "ubuntu/images/hvm-ssd*/ubuntu-noble-24.04-{arch}-server-*",
    "ubuntu/images/hvm-ssd*/ubuntu-*-{arch}-server-*",
)
DEFAULT_DISK_GB = 256
#: disk_tier -> EBS volume settings (IOPS scale with size where the type allows).
DISK_TIERS: dict[str, dict[str, Any]] = {
    "low": {"VolumeType": "gp3"},
    "medium": {"VolumeType": "gp3", "Iops": 6000, "Throughput": 250},
    "high": {"VolumeType": "io2", "Iops": 16000},
    "ultra": {"VolumeType": "io2", "Iops": 64000},
    "best": {"VolumeType": "io2", "Iops": 64000},
}


def client_token(cluster_name: str, attempt: str, zone: str) -> str:
    """RunInstances' idempotency token (at most 64 characters) for one launch attempt of a
    cluster in a zone: a retried request returns the instances of the first."""
    digest = hashlib.sha256(f"{cluster_name}\0{attempt}\0{zone}".encode()).hexdigest()
    return f"styx-{digest[:40]}"


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def node_index(instance: dict[str, Any]) -> int:
    try:
        return int(tags_of(instance).get(INDEX_TAG, "0"))
    except ValueError:
        return 0


def state_of(instance: dict[str, Any]) -> str:
    return str(instance["State"]["Name"])


# --- lookups ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _type_info(ec2: Any, region: str, instance_type: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with translated(region, action=f"looking up instance type {instance_type}"):
        try:
            found = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidInstanceType":
                raise
            found = []
    if not found:
        raise ResourcesUnavailable(
            f"Instance type {instance_type} does not exist in {region}.",
            "Choose an instance type offered there (`styx show-gpus` lists them).",
            code="instance-type-not-found",
            scope=FailoverScope.REGION,
            details={"cloud": "aws", "region": region},
        )
    info: dict[str, Any] = found[0]
    return info


def type_info(ec2: Any, region: str, instance_type: str) -> dict[str, Any]:
    """EC2's description of an instance type (vCPUs, memory, GPUs, architectures), cached."""
    return _type_info(ec2, region, instance_type)


def offered_zones(ec2: Any, region: str, instance_type: str) -> set[str] | None:
    """Zones of ``region`` that offer ``instance_type``; None when EC2 does not say."""
    with translated(region, action=f"looking up where {instance_type} is offered"):
        offers = ec2.describe_instance_type_offerings(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}],
        )["InstanceTypeOfferings"]
    return {o["Location"] for o in offers} or None


@functools.lru_cache(maxsize=64)
def _default_image(ec2: Any, region: str, arch: str) -> tuple[str, str]:
    name_arch = "amd64" if arch == "x86_64" else arch
    with translated(region, action="looking up the default Ubuntu image"):
        for pattern in UBUNTU_PATTERNS:
            images = ec2.describe_images(
                Owners=[CANONICAL],
                Filters=[
                    {"Name": "name", "Values": [pattern.format(arch=name_arch)]},
                    {"Name": "state", "Values": ["available"]},
                    {"Name": "architecture", "Values": [arch]},
                ],
            )["Images"]
            if images:
                best = max(images, key=lambda i: (i.get("CreationDate", ""), i["Name"]))
                return str(best["ImageId"]), str(best.get("RootDeviceName") or "/dev/sda1")
    raise ResourcesUnavailable(
        f"No Ubuntu image for {arch} was found in {region}.",
        "Set `image_id: ami-...` in the task's resources.",
        code="image-not-found",
        scope=FailoverScope.REGION,
        details={"cloud": "aws", "region": region},
    )


def resolve_image(
    ec2: Any, region: str, image_id: str | None, instance_type: str
) -> tuple[str, str]:
    """The AMI to boot and its root device name: ``image_id`` as given (``ami-...``), or the
    newest Ubuntu 22.04 (then 24.04, then any Ubuntu) of Canonical for the type's
    architecture."""
    if image_id is not None:
        if not image_id.startswith("ami-"):
            raise ResourcesUnavailable(
                f"image_id '{image_id}' is not an AMI id; only ami-... images are supported on "
                "AWS for now.",
                "Use an AMI id of the region, or leave image_id out for Ubuntu.",
                code="image-not-found",
                scope=FailoverScope.CLOUD,
                details={"cloud": "aws", "region": region},
            )
        with translated(region, action=f"looking up image {image_id}"):
            images = ec2.describe_images(ImageIds=[image_id])["Images"]
        root = images[0].get("RootDeviceName") if images else None
        return image_id, str(root or "/dev/sda1")
    archs = type_info(ec2, region, instance_type)["ProcessorInfo"]["SupportedArchitectures"]
    arch = "x86_64" if "x86_64" in archs else str(archs[0])
    return _default_image(ec2, region, arch)


def block_devices(
    root_device: str, disk_size: int | None, disk_tier: str | None, encrypted: bool
) -> list[dict[str, Any]]:
    """The root volume: ``disk_size`` GB (default 256) of the tier's EBS type, deleted with the
    instance so nothing is left behind."""
    size = disk_size or DEFAULT_DISK_GB
    tier = (disk_tier or "medium").lower()
    if tier not in DISK_TIERS:
        raise ResourcesUnavailable(
            f"disk_tier '{disk_tier}' is not one of {', '.join(DISK_TIERS)}.",
            "Use low, medium, high, ultra or best.",
            code="invalid-disk-tier",
            scope=FailoverScope.CLOUD,
            details={"cloud": "aws"},
        )
    ebs: dict[str, Any] = {"VolumeSize": size, "DeleteOnTermination": True, **DISK_TIERS[tier]}
    if ebs["VolumeType"] == "io2":
        ebs["Iops"] = min(ebs["Iops"], 500 * size)  # io2 allows 500 IOPS per GB
    if encrypted:
        ebs["Encrypted"] = True
    return [{"DeviceName": root_device, "Ebs": ebs}]


def describe(ec2: Any, region: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every instance ``describe_instances`` returns for ``kwargs`` (all pages)."""
    out: list[dict[str, Any]] = []
    with translated(region, action="describing instances"):
        for page in ec2.get_paginator("describe_instances").paginate(**kwargs):
            for reservation in page.get("Reservations", []):
                out.extend(reservation.get("Instances", []))
    return out


def cluster_instances(
    ec2: Any, region: str, cluster_name: str, states: Iterable[str] = LIVE_STATES
) -> list[dict[str, Any]]:
    """The cluster's instances in ``states`` (by tag), in node-index order."""
    filters = [
        {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]},
        {"Name": "instance-state-name", "Values": list(states)},
    ]
    found = describe(ec2, region, Filters=filters)
    return sorted(found, key=lambda i: (node_index(i), i["InstanceId"]))


def by_ids(ec2: Any, region: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Instances by id; ids EC2 no longer knows are missing from the result."""
    if not ids:
        return {}
    try:
        found = describe(ec2, region, InstanceIds=ids)
    except StyxError as exc:
        if error_code(exc.__cause__ or exc) != "InvalidInstanceID.NotFound":
            raise
        # Some id is unknown (long terminated, or never made): ask one at a time.
        found = []
        for one in ids:
            try:
                found += describe(ec2, region, InstanceIds=[one])
            except StyxError as inner:
                if error_code(inner.__cause__ or inner) != "InvalidInstanceID.NotFound":
                    raise
    return {i["InstanceId"]: i for i in found}


def wait_for_state(
    ec2: Any,
    region: str,
    ids: list[str],
    wanted: str,
    *,
    timeout: float,
    give_up: Iterable[str] = (),
    poll: float = 0.5,
) -> list[dict[str, Any]]:
    """Poll until every instance is ``wanted`` (an id EC2 forgot counts as terminated) and
    return them; raise StyxError ``instance-state`` when one reaches a ``give_up`` state or the
    time runs out. Polling starts fast and backs off to 5 s, unlike botocore's 15 s waiters."""
    deadline = time.monotonic() + timeout
    stop = set(give_up)
    delay = poll
    while True:
        found = by_ids(ec2, region, ids)
        states = {i: state_of(found[i]) if i in found else "terminated" for i in ids}
        bad = {i: s for i, s in states.items() if s in stop}
        if bad:
            raise StyxError(
                f"Instances went {', '.join(sorted(set(bad.values())))} while waiting for "
                f"{wanted}: {', '.join(sorted(bad))}.",
                "Run `styx status -r`; the instances may have been reclaimed (spot) or failed.",
                code="instance-state",
                details={"cloud": "aws", "region": region, "states": states},
            )
        if all(s == wanted for s in states.values()):
            return [found[i] for i in ids if i in found]
        if time.monotonic() + delay > deadline:
            raise StyxError(
                f"Instances did not become {wanted} within {timeout:.0f} s: "
                + ", ".join(f"{i} is {s}" for i, s in states.items() if s != wanted)
                + ".",
                "Check the instances in the EC2 console, then retry.",
                code="instance-state",
                details={"cloud": "aws", "region": region, "states": states},
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
