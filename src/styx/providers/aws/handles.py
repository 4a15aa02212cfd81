"""Cluster handles of AWS clusters, built from EC2's description of their instances.

``handle.extra`` holds:

==========================  ===========================================================
``region``, ``zone``        where the cluster runs
``instance_ids``            node order (head first)
``vpc_id``, ``subnet_id``   its network
``security_group_id``       its security group, ``security_group_name``, and
``security_group_managed``  whether Styx made it for this cluster (deleted on down)
``key_name``, ``key_file``  the EC2 key pair and the private key on this machine
``ssh_user``                the login user
``ssh``                     per node: hostname, user, port, identity_file, proxy_jump,
                            options (the SSH provider's keys, plus ``options``)
``instance_type``,          what was launched
``image_id``, ``use_spot``
``runtime_venv``,           the runtime's venv on the nodes, and the Python that makes it
``base_python``
==========================  ===========================================================
"""

from __future__ import annotations

from typing import Any

from styx.agent.bootstrap import DEFAULT_RAY_BASE_PORT
from styx.errors import FailoverScope, ResourcesUnavailable
from styx.providers import vm_ssh
from styx.providers import vm_ssh as ssh_access
from styx.providers.aws import instances
from styx.providers.aws.settings import AWSSettings
from styx.providers.base import ClusterHandle, Node

#: First port of the block Ray uses on each node (nodes are dedicated to one cluster).
RAY_BASE_PORT = DEFAULT_RAY_BASE_PORT  # below the ephemeral ports: see there
BASE_PYTHON = "python3"


def build(
    cluster: str,
    region: str,
    running: list[dict[str, Any]],
    info: dict[str, Any],
    settings: AWSSettings,
    extra: dict[str, Any],
) -> ClusterHandle:
    """The handle of a cluster whose instances (described by EC2) run; the home folder is
    guessed from the user until :func:`with_home` sets the real one."""
    from styx.providers.aws.inventory import accelerator_of

    accel = accelerator_of(info)
    key_file = str(extra["key_file"])
    proxy = settings.proxy_command(region)
    nodes, ssh = [], []
    for index, inst in enumerate(sorted(running, key=instances.node_index)):
        private = str(inst["PrivateIpAddress"])
        public = inst.get("PublicIpAddress")
        address = private if settings.use_internal_ips or not public else str(public)
        nodes.append(
            Node(
                name=f"{cluster}-{index}",
                ip=private,
                cpus=float(info["VCpuInfo"]["DefaultVCpus"]),
                memory_gb=round(float(info["MemoryInfo"]["SizeInMiB"]) / 1024, 1),
                gpus=accel[1] if accel else 0.0,
                accelerator=accel[0] if accel else None,
                instance_id=inst["InstanceId"],
            )
        )
        ssh.append(ssh_access.host_json(address, settings.ssh_user, key_file, proxy))
    handle = ClusterHandle(
        cluster_name=cluster,
        provider="aws",
        nodes=tuple(nodes),
        agent_root="",
        python="",
        workdir="",
        ray_port=RAY_BASE_PORT,
        extra={
            **extra,
            "region": region,
            "zone": running[0]["Placement"]["AvailabilityZone"],
            "instance_ids": [n.instance_id for n in nodes],
            "ssh_user": settings.ssh_user,
            "ssh": ssh,
            "base_python": BASE_PYTHON,
        },
    )
    return vm_ssh.with_home(handle, vm_ssh.guessed_home(settings.ssh_user))


def extra_of(
    instance: dict[str, Any], *, managed_group: bool, key: tuple[str, str]
) -> dict[str, Any]:
    """The launch facts of ``extra`` read back from one of the cluster's instances."""
    groups = instance.get("SecurityGroups") or [{}]
    return {
        "vpc_id": instance.get("VpcId"),
        "subnet_id": instance.get("SubnetId"),
        "security_group_id": groups[0].get("GroupId"),
        "security_group_name": groups[0].get("GroupName"),
        "security_group_managed": managed_group,
        "key_name": key[0],
        "key_file": key[1],
        "instance_type": instance["InstanceType"],
        "image_id": instance.get("ImageId"),
        "use_spot": instance.get("InstanceLifecycle") == "spot",
    }


def region_of(handle: ClusterHandle) -> str:
    """The cluster's region; a record without one (a launch that had not chosen) means the
    region a launch without one uses, boto3's default."""
    from styx.providers.aws.client import default_region

    region = handle.extra.get("region")
    return str(region) if region else default_region()


def ids_of(handle: ClusterHandle) -> list[str]:
    """The instance ids the handle knows (none for a launch recorded before it made any)."""
    ids = [n.instance_id for n in handle.nodes if n.instance_id]
    return ids or [str(i) for i in handle.extra.get("instance_ids") or ()]


def no_subnet(instance_type: str, region: str, zone: str | None) -> ResourcesUnavailable:
    where = f"zone {zone}" if zone else f"any zone of {region}"
    return ResourcesUnavailable(
        f"There is no subnet for {instance_type} in {where} (or the type is not offered there).",
        "Choose another zone or region, or add a subnet there to the VPC.",
        code="no-subnet",
        scope=FailoverScope.ZONE if zone else FailoverScope.REGION,
        details={"cloud": "aws", "region": region, "zone": zone},
    )
