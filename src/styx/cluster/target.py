"""What the cluster layer needs to know about a cluster, as protocols: no provider imported.

A provider's ``ClusterHandle`` and ``Node`` (:mod:`styx.providers.base`) satisfy
:class:`ClusterTarget` and :class:`NodeSpec` structurally, and a provider satisfies
:class:`NodeAccess` for its own handles. The cluster layer sits below the providers, which use
its runners and runtime: naming these shapes here keeps the imports one-way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from styx.cluster.runner import Runner


class NodeSpec(Protocol):
    """One node as the runtime starts Ray on it: its address and what it offers."""

    @property
    def name(self) -> str: ...
    @property
    def ip(self) -> str: ...
    @property
    def cpus(self) -> float: ...
    @property
    def memory_gb(self) -> float: ...
    @property
    def gpus(self) -> float: ...
    @property
    def accelerator(self) -> str | None: ...


class ClusterTarget(Protocol):
    """A cluster as the runtime reaches it: its nodes (head first) and where the runtime lives."""

    @property
    def cluster_name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def nodes(self) -> Sequence[NodeSpec]: ...
    @property
    def agent_root(self) -> str: ...
    @property
    def python(self) -> str: ...
    @property
    def ray_port(self) -> int: ...
    @property
    def extra(self) -> Mapping[str, Any]: ...
    @property
    def head(self) -> NodeSpec: ...


H_contra = TypeVar("H_contra", bound=ClusterTarget, contravariant=True)


class NodeAccess(Protocol[H_contra]):
    """How to run commands on a cluster's nodes, and what its agent runs for autostop: the
    part of a provider the runtime uses."""

    def runner(self, handle: H_contra, node_index: int = 0) -> Runner:
        """A runner for one node of the cluster."""
        ...

    def autostop_commands(self, handle: H_contra) -> tuple[list[str], list[str]]:
        """The argv the head-node agent runs to stop, and to tear down, its own cluster."""
        ...
