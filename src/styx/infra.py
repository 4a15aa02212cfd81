"""What an infra can do and has: the values the optimizer and the providers share.

A provider's declaration (:class:`styx.providers.registry.InfraInfo`) carries
:class:`Capabilities`; a task asks for some of them (:func:`needs`); the optimizer places a task
only on infra that has every :class:`Need` of it, and says in one line why the others were left
out (:class:`Exclusion`). :class:`InfraStatus` is a credential check's answer, and
:class:`InfraOffer` the capacity a provider already has (this machine, SSH node pools).

This module sits just above ``spec``: it imports nothing from the optimizer or the providers, so
both can use it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from styx.spec.resources import Resources
    from styx.spec.task import Task


class Capability(enum.StrEnum):
    """Something a task may need that not every infra can give; the value reads in a sentence
    ("has no <value>")."""

    MULTI_NODE = "multi-node clusters"
    SPOT = "spot instances"
    STOP = "stop and start"
    AUTOSTOP = "autostop"
    PORTS = "open ports"
    DISK_TIER = "disk tier"
    NETWORK_TIER = "network tier"
    BUCKET_MOUNTS = "bucket mounts"
    CONTAINER_IMAGES = "container images"
    CUSTOM_IMAGES = "custom images"
    ZONES = "zones"
    TPU_VMS = "TPU VMs"


#: Tiers a task may name; ``best`` means the highest tier the infra has.
DISK_TIERS = ("low", "medium", "high", "ultra", "best")
NETWORK_TIERS = ("standard", "best")


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """What one infra can do. ``disk_tiers``/``network_tiers`` are the tiers it provisions
    (empty: a task that names any tier cannot run there), ``regions`` the regions it can launch
    in (empty: wherever its catalog or offers say)."""

    features: frozenset[Capability] = frozenset()
    disk_tiers: frozenset[str] = frozenset()
    network_tiers: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *features: Capability,
        disk_tiers: tuple[str, ...] = (),
        network_tiers: tuple[str, ...] = (),
        regions: tuple[str, ...] = (),
    ) -> Capabilities:
        """Capabilities from a short declaration, as provider packages write them."""
        return cls(
            frozenset(features), frozenset(disk_tiers), frozenset(network_tiers), frozenset(regions)
        )

    def lacks(self, need: Need) -> bool:
        """Whether this infra cannot give ``need``."""
        if need.capability is Capability.DISK_TIER:
            return not _tier_ok(need.value, self.disk_tiers)
        if need.capability is Capability.NETWORK_TIER:
            return not _tier_ok(need.value, self.network_tiers)
        return need.capability not in self.features

    def first_missing(self, needs: tuple[Need, ...]) -> Need | None:
        """The first of ``needs`` this infra cannot give, or None when it gives them all."""
        return next((n for n in needs if self.lacks(n)), None)


def _tier_ok(tier: str | None, tiers: frozenset[str]) -> bool:
    return tier is None or tier in tiers or (tier == "best" and bool(tiers))


@dataclasses.dataclass(frozen=True, slots=True)
class Need:
    """One capability a task needs, with what in the task asks for it (``num_nodes: 2``)."""

    capability: Capability
    why: str
    value: str | None = None  # the tier, for DISK_TIER and NETWORK_TIER

    def sentence(self) -> str:
        """``has no multi-node clusters (num_nodes: 2)``; for tiers, which tier."""
        if self.capability in (Capability.DISK_TIER, Capability.NETWORK_TIER):
            return f"cannot provision {self.why}"
        if self.capability is Capability.TPU_VMS:
            return f"does not support TPU VMs yet ({self.why})"
        return f"has no {self.capability.value} ({self.why})"


def needs(task: Task, r: Resources) -> tuple[Need, ...]:
    """What running ``task`` with the concrete resources candidate ``r`` asks of an infra."""
    out: list[Need] = []
    if task.num_nodes > 1:
        out.append(Need(Capability.MULTI_NODE, f"num_nodes: {task.num_nodes}"))
    if r.use_spot:
        out.append(Need(Capability.SPOT, "use_spot: true"))
    if r.ports:
        out.append(Need(Capability.PORTS, "ports"))
    if r.disk_tier is not None:
        out.append(Need(Capability.DISK_TIER, f"disk_tier: {r.disk_tier}", r.disk_tier))
    if r.network_tier is not None:
        out.append(Need(Capability.NETWORK_TIER, f"network_tier: {r.network_tier}", r.network_tier))
    if r.image_id is not None:
        if r.is_docker_image:
            out.append(Need(Capability.CONTAINER_IMAGES, "image_id: docker:..."))
        else:
            out.append(Need(Capability.CUSTOM_IMAGES, "image_id"))
    if r.zone is not None:
        out.append(Need(Capability.ZONES, f"zone {r.zone}"))
    tpu = next((a.name for a in r.accelerators if a.name.lower().startswith("tpu-")), None)
    if tpu is not None:
        out.append(Need(Capability.TPU_VMS, f"accelerators: {tpu}"))
    if r.autostop is not None and r.autostop.enabled:
        out.append(Need(Capability.AUTOSTOP, "-i/--idle-minutes or resources.autostop"))
        if not r.autostop.down:
            out.append(Need(Capability.STOP, "autostop without --down stops the cluster"))
    buckets = [d for d, m in task.file_mounts.items() if not m.is_local]
    if buckets:
        out.append(Need(Capability.BUCKET_MOUNTS, f"file_mounts {buckets[0]}"))
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True)
class InfraStatus:
    """Whether one infra kind is usable, and a one-line reason (a credential check's answer)."""

    name: str
    enabled: bool
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class NodeCapacity:
    """What one machine the caller already has can give a task."""

    cpus: float
    memory_gb: float
    accelerators: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class InfraOffer:
    """Capacity an infra already has: this machine, an SSH node pool (``name`` = the pool), a
    Kubernetes context. Priced per node-hour (0 by default), never on spot, with no instance
    types. An offer named after its kind (``local``) has no region slot in ``infra:``."""

    kind: str
    name: str
    nodes: tuple[NodeCapacity, ...]
    hourly_price: float = 0.0

    @property
    def region(self) -> str | None:
        """The region slot of ``infra:`` that selects it: the pool or context name."""
        return None if self.name == self.kind else self.name

    @property
    def label(self) -> str:
        """How a plan names it: ``local``, ``ssh/my-pool``."""
        return self.kind if self.region is None else f"{self.kind}/{self.region}"


@dataclasses.dataclass(frozen=True, slots=True)
class InfraChoice:
    """One infra as a plan sees it: whether Styx can launch there (``launchable``), whether its
    credentials are set up (``enabled``, with ``reason``), what it can do, and where its prices
    come from (``catalog``: a catalog cloud name; None for infra that offers capacity it has)."""

    name: str
    title: str
    capabilities: Capabilities
    catalog: str | None
    launchable: bool
    enabled: bool
    reason: str = ""
    offers: tuple[InfraOffer, ...] = ()

    @property
    def eligible(self) -> bool:
        """Whether a plan may choose it at all (capabilities aside)."""
        return self.launchable and self.enabled


@dataclasses.dataclass(frozen=True, slots=True)
class Exclusion:
    """Why a place that fits was left out of a plan, in one line."""

    infra: str
    why: str
    cheapest: str = ""  # e.g. "A100:8 (p4d.24xlarge) in us-east-1 at $32.77/h"
    price: float | None = None

    def sentence(self) -> str:
        """``gcp: a2-highgpu-8g in us-central1 at $29.39/h, but Styx cannot launch on GCP yet.``"""
        if self.cheapest:
            return f"{self.infra}: {self.cheapest}, but {self.why}."
        return f"{self.infra}: left out, {self.why}."
