"""Cluster handles of GCP clusters, built from GCE's description of their instances.

``handle.extra`` holds:

==========================  ===========================================================
``project``, ``region``,    where the cluster runs
``zone``
``instance_names``          node order (head first)
``network``, ``subnetwork`` its network (self links)
``firewall_rules``          the rules Styx made for it (deleted on down)
``key_file``                the private key on this machine; ``ssh_user`` the login user
``ssh``                     per node: hostname, user, port, identity_file, proxy_jump,
                            options (the SSH provider's keys)
``machine_type``,           what was launched
``image``, ``use_spot``
``runtime_venv``,           the runtime's venv on the nodes, and the Python that makes it
``base_python``
==========================  ===========================================================
"""

from __future__ import annotations

import dataclasses
from typing import Any

from styx.agent.bootstrap import DEFAULT_RAY_BASE_PORT
from styx.providers import vm_ssh
from styx.providers.base import ClusterHandle, Node
from styx.providers.gcp import instances
from styx.providers.gcp.settings import GCPSettings

RAY_BASE_PORT = DEFAULT_RAY_BASE_PORT  # below the ephemeral ports: see there
BASE_PYTHON = "python3"
_GCE_TO_NAME = {v: k for k, v in instances.ACCELERATOR_TYPES.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class MachineInfo:
    cpus: float
    memory_gb: float
    accelerator: str | None = None
    gpus: float = 0.0


def machine_info(machine_type: Any, accelerators: dict[str, float] | None) -> MachineInfo:
    """What one node has, from GCE's ``MachineType`` and the accelerators asked for."""
    accel, count = None, 0.0
    if accelerators:
        accel, count = next(iter(accelerators.items()))
    for a in getattr(machine_type, "accelerators", None) or ():  # built into the type
        accel = _GCE_TO_NAME.get(str(a.guest_accelerator_type), str(a.guest_accelerator_type))
        count = float(a.guest_accelerator_count)
    return MachineInfo(
        cpus=float(machine_type.guest_cpus),
        memory_gb=round(float(machine_type.memory_mb) / 1024, 1),
        accelerator=accel,
        gpus=count,
    )


def build(
    cluster: str,
    region: str,
    running: list[Any],
    info: MachineInfo,
    settings: GCPSettings,
    extra: dict[str, Any],
) -> ClusterHandle:
    """The handle of a cluster whose instances run (home guessed until :func:`with_home`)."""
    key_file = str(extra["key_file"])
    proxy = settings.proxy_command(region)
    nodes, ssh = [], []
    ordered = sorted(running, key=instances.node_index)
    for index, inst in enumerate(ordered):
        private = instances.internal_ip(inst)
        public = instances.external_ip(inst)
        address = private if settings.use_internal_ips or not public else public
        nodes.append(
            Node(
                name=f"{cluster}-{index}",
                ip=private,
                cpus=info.cpus,
                memory_gb=info.memory_gb,
                gpus=info.gpus,
                accelerator=info.accelerator,
                instance_id=str(inst.name),
            )
        )
        ssh.append(vm_ssh.host_json(address, settings.ssh_user, key_file, proxy))
    handle = ClusterHandle(
        cluster_name=cluster,
        provider="gcp",
        nodes=tuple(nodes),
        agent_root="",
        python="",
        workdir="",
        ray_port=RAY_BASE_PORT,
        extra={
            **extra,
            "region": region,
            "zone": str(ordered[0].zone).rstrip("/").rsplit("/", 1)[-1],
            "instance_names": [n.instance_id for n in nodes],
            "ssh_user": settings.ssh_user,
            "ssh": ssh,
            "base_python": BASE_PYTHON,
        },
    )
    return vm_ssh.with_home(handle, vm_ssh.guessed_home(settings.ssh_user))


def names_of(handle: ClusterHandle) -> list[str]:
    names = [n.instance_id for n in handle.nodes if n.instance_id]
    return names or [str(i) for i in handle.extra.get("instance_names") or ()]
