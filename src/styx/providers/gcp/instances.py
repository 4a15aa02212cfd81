"""GCE instances of a cluster: names, labels, the insert body, and reading them back.

A cluster's instances carry the labels ``styx-cluster`` (the cluster's name, made label-safe),
``styx-cluster-id`` (a hash of the exact name: two names that make the same label never meet)
and ``styx-node`` (the node index), and the network tag ``styx-<id>`` that its firewall rules
target. They are found by label, so an interrupted launch is still cleaned up.

Instance bodies are built as ``compute_v1`` messages (never raw dicts): the machine type, a
boot disk of the task's size and tier, the accelerators (none for the A2, A3, A4 and G2 types,
which carry theirs), ``onHostMaintenance: TERMINATE`` where GPUs are attached, SPOT scheduling
for ``use_spot``, the user's SSH key in the ``ssh-keys`` metadata.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from styx.errors import FailoverScope, ResourcesUnavailable, SpecError

CLUSTER_LABEL = "styx-cluster"
ID_LABEL = "styx-cluster-id"
NODE_LABEL = "styx-node"
#: Default images: Debian 12 (Python 3.11) on CPUs; a CUDA image with drivers for GPUs.
CPU_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
GPU_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
#: Machine series that take Hyperdisk only (their boot disk cannot be a persistent disk).
HYPERDISK_SERIES = ("n4", "c4", "c4a", "c4d", "x4", "m4", "a4", "a4x", "h4d")
#: Machine series whose GPUs come with the type (no guestAccelerators).
BUILT_IN_GPU_SERIES = ("a2", "a3", "a4", "a4x", "g2", "g4")
#: Styx's GPU names to GCE's accelerator types (SkyPilot's names, as the catalog has them).
ACCELERATOR_TYPES = {
    "T4": "nvidia-tesla-t4",
    "P4": "nvidia-tesla-p4",
    "P100": "nvidia-tesla-p100",
    "V100": "nvidia-tesla-v100",
    "K80": "nvidia-tesla-k80",
    "A100": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "L4": "nvidia-l4",
    "H100": "nvidia-h100-80gb",
    "H100-MEGA": "nvidia-h100-mega-80gb",
    "H200": "nvidia-h200-141gb",
    "B200": "nvidia-b200",
}
DISK_TIERS = {
    "low": "pd-standard",
    "medium": "pd-balanced",
    "high": "pd-ssd",
    "ultra": "pd-extreme",
}
#: A machine with only accelerators in the catalog (T4, V100, ...) gets this N1 type.
DEFAULT_N1 = "n1-standard-8"


def cluster_id(cluster: str) -> str:
    return hashlib.sha256(cluster.encode()).hexdigest()[:10]


def _safe(text: str, size: int) -> str:
    """``text`` as a GCE name or label part: lowercase letters, digits and hyphens."""
    out = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:size].strip("-")
    return out or "c"


def label_value(cluster: str) -> str:
    return _safe(cluster, 63)


def network_tag(cluster: str) -> str:
    return f"styx-{cluster_id(cluster)}"


def instance_name(cluster: str, index: int, attempt: str) -> str:
    """``<cluster>-<id4><attempt>-<index>``: a new attempt never reuses a deleted name (GCE
    keeps a deleted instance's name busy for a while)."""
    head = _safe(cluster, 40)
    if not head[0].isalpha():
        head = f"s{head}"[:40]
    return f"{head}-{cluster_id(cluster)[:4]}{attempt}-{index}"


def cluster_filter(cluster: str) -> str:
    return f'labels.{ID_LABEL} = "{cluster_id(cluster)}"'


def node_index(instance: Any) -> int:
    try:
        return int(dict(instance.labels).get(NODE_LABEL, "-1"))
    except ValueError:
        return -1


def status_of(instance: Any) -> str:
    """The instance's status as GCE names it (``RUNNING``, ``TERMINATED``, ...)."""
    from styx.providers.gcp.client import enum_name

    return enum_name(instance.status)


def internal_ip(instance: Any) -> str:
    nics = list(instance.network_interfaces)
    return str(nics[0].network_i_p) if nics else ""


def external_ip(instance: Any) -> str | None:
    for nic in instance.network_interfaces:
        for config in nic.access_configs:
            if config.nat_i_p:
                return str(config.nat_i_p)
    return None


def is_spot(instance: Any) -> bool:
    from styx.providers.gcp.client import enum_name

    model = enum_name(instance.scheduling.provisioning_model)
    return model == "SPOT" or bool(instance.scheduling.preemptible)


def series(machine_type: str) -> str:
    return machine_type.split("-", 1)[0].lower()


def disk_type(machine_type: str, tier: str | None) -> str:
    """The boot disk's type for ``tier`` on ``machine_type`` (Hyperdisk where only it fits)."""
    if series(machine_type) in HYPERDISK_SERIES:
        return "hyperdisk-extreme" if tier == "ultra" else "hyperdisk-balanced"
    if tier is None:
        return "pd-balanced"
    tier = "high" if tier == "best" else tier
    if tier not in DISK_TIERS:
        raise SpecError(
            f"The disk tier {tier!r} is not one GCP offers.",
            f"Use one of: {', '.join(DISK_TIERS)}.",
            code="invalid-value",
        )
    return DISK_TIERS[tier]


def accelerator_type(name: str) -> str:
    found = ACCELERATOR_TYPES.get(name) or ACCELERATOR_TYPES.get(name.upper())
    if found is None:
        raise ResourcesUnavailable(
            f"GCP has no accelerator type Styx knows for {name!r}.",
            f"Use one of: {', '.join(ACCELERATOR_TYPES)}.",
            code="accelerator-not-offered",
            scope=FailoverScope.CLOUD,
            details={"cloud": "gcp"},
        )
    return found


def guest_accelerators(
    machine_type: str, accelerators: Mapping[str, float] | None
) -> list[tuple[str, int]]:
    """The accelerators to attach: none for types that carry theirs."""
    if not accelerators or series(machine_type) in BUILT_IN_GPU_SERIES:
        return []
    return [(accelerator_type(n), int(c)) for n, c in accelerators.items() if c]


def ssh_keys_item(user: str, public_key: str) -> str:
    """The ``ssh-keys`` metadata value: ``user:KEY user``."""
    return f"{user}:{' '.join(public_key.split()[:2])} {user}"


def insert_body(
    *,
    name: str,
    project: str,
    zone: str,
    machine_type: str,
    image: str,
    disk_size: int,
    disk_tier: str | None,
    network: str,
    subnetwork: str | None,
    external_ip: bool,
    labels: Mapping[str, str],
    tag: str,
    ssh_keys: str,
    use_spot: bool,
    accelerators: Sequence[tuple[str, int]],
) -> Any:
    """The ``compute_v1.Instance`` to insert."""
    from google.cloud import compute_v1 as c  # type: ignore[import-untyped,import-not-found,unused-ignore]

    disk = c.AttachedDisk(
        boot=True,
        auto_delete=True,
        type_="PERSISTENT",
        initialize_params=c.AttachedDiskInitializeParams(
            disk_size_gb=disk_size,
            disk_type=f"zones/{zone}/diskTypes/{disk_type(machine_type, disk_tier)}",
            source_image=image,
            labels=dict(labels),
        ),
    )
    nic = c.NetworkInterface(network=network)
    if subnetwork:
        nic.subnetwork = subnetwork
    if external_ip:
        nic.access_configs = [c.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
    scheduling = c.Scheduling()
    if use_spot:
        scheduling.provisioning_model = "SPOT"
        scheduling.instance_termination_action = "DELETE"  # a preempted node is gone
        scheduling.automatic_restart = False
    if accelerators or series(machine_type) in BUILT_IN_GPU_SERIES:
        scheduling.on_host_maintenance = "TERMINATE"
        scheduling.automatic_restart = not use_spot
    instance = c.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{machine_type}",
        disks=[disk],
        network_interfaces=[nic],
        labels=dict(labels),
        tags=c.Tags(items=[tag]),
        metadata=c.Metadata(
            items=[
                c.Items(key="ssh-keys", value=ssh_keys),
                c.Items(key="block-project-ssh-keys", value="true"),
            ]
        ),
        scheduling=scheduling,
        service_accounts=[
            c.ServiceAccount(
                email="default", scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        ],
    )
    if accelerators:
        instance.guest_accelerators = [
            c.AcceleratorConfig(
                accelerator_type=f"projects/{project}/zones/{zone}/acceleratorTypes/{kind}",
                accelerator_count=count,
            )
            for kind, count in accelerators
        ]
    return instance
