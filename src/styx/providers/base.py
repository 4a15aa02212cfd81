"""The one small interface every infrastructure implements, and the handle it returns.

A provider turns a placement into nodes and back. It knows nothing of jobs or the CLI; its SDK
errors are translated into :mod:`styx.errors` types (``NoCapacity``, ``QuotaExceeded``,
``AuthFailed``, ``HostUnreachable``) at its boundary.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from styx.cluster.dests import NodeFolders
from styx.cluster.runner import Runner


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """One machine of a cluster, head first in a handle's ``nodes``."""

    name: str
    ip: str
    cpus: float
    memory_gb: float
    gpus: float = 0.0
    accelerator: str | None = None
    instance_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterHandle:
    """Everything needed to reach a cluster again; stored as JSON in the state database."""

    cluster_name: str
    provider: str
    nodes: tuple[Node, ...]
    agent_root: str  # on the head node
    python: str  # the runtime interpreter on the nodes
    workdir: str  # where the workdir is synced to on every node
    ray_port: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def head(self) -> Node:
        return self.nodes[0]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterHandle:
        fields = dict(data)
        fields["nodes"] = tuple(Node(**n) for n in fields.get("nodes", ()))
        return cls(**fields)


@dataclasses.dataclass(frozen=True, slots=True)
class ProvisionRequest:
    """What to make: a cluster name, node count and the per-node resources asked for."""

    cluster_name: str
    num_nodes: int
    cpus: float | None = None
    memory_gb: float | None = None
    accelerators: dict[str, float] | None = None
    ports: tuple[str, ...] = ()
    region: str | None = None  # for ssh: the pool's name
    zone: str | None = None  # None: the provider may try every zone of the region
    instance_type: str | None = None
    use_spot: bool = False
    disk_size: int | None = None  # GB
    disk_tier: str | None = None
    image_id: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    #: The task's ``config:`` overrides (e.g. ``kubernetes.pod_config``), as plain data.
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


class Provider(Protocol):
    """Makes and breaks machines for one kind of infrastructure."""

    name: str
    #: Whether provisioning creates machines that cost money (clouds): the cluster is then
    #: recorded before they are made, so an interrupted launch can always be cleaned up.
    creates_machines: bool

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        """Create (or reuse) the cluster's nodes; idempotent per cluster name."""

    def is_up(self, handle: ClusterHandle) -> bool:
        """Whether every node of the cluster is running, according to the infra."""

    def unreachable_nodes(self, handle: ClusterHandle) -> list[str]:
        """Names of the cluster's nodes that cannot be reached now."""

    def gone_nodes(self, handle: ClusterHandle) -> list[str]:
        """Nodes the infra says no longer exist (terminated, preempted); ``[]`` where it cannot
        tell a dead machine from an unreachable one (SSH hosts)."""

    def stop(self, handle: ClusterHandle) -> None:
        """Stop the nodes, keeping their disks."""

    def start(self, handle: ClusterHandle) -> ClusterHandle:
        """Start stopped nodes again."""

    def terminate(self, handle: ClusterHandle) -> None:
        """Remove the nodes and everything Styx made for them."""

    def runner(self, handle: ClusterHandle, node_index: int = 0) -> Runner:
        """A runner for one node of the cluster."""

    def autostop_commands(self, handle: ClusterHandle) -> tuple[list[str], list[str]]:
        """The argv the head-node agent runs to stop, and to tear down, its own cluster (empty
        where the infra's declaration has no AUTOSTOP capability)."""

    def node_folders(self, cluster_name: str, handle: ClusterHandle | None) -> NodeFolders:
        """Where a sync may write on the cluster's nodes (see :mod:`styx.cluster.dests`);
        ``handle`` is None before provisioning, when a remote home is not known yet."""

    def agent_socket(self, handle: ClusterHandle) -> str:
        """A unix socket on this machine that reaches the head node's agent (forwarded for
        remote clusters), ready to connect to."""


def remote_node_folders(handle: ClusterHandle | None) -> NodeFolders:
    """The folders of a remote node laid out as the SSH and cloud providers lay them out: the
    runtime and agent under ``~/.styx``, the workdir in ``~/sky_workdir``."""
    import posixpath

    home = "~"
    if handle is not None and handle.agent_root.endswith("/.styx/agent"):
        home = posixpath.dirname(posixpath.dirname(handle.agent_root)) or "/"
    workdir = handle.workdir if handle is not None and handle.workdir else "~/sky_workdir"
    return NodeFolders(home="~", runtime=("~/.styx",), owned=(workdir,)).with_home(home)
