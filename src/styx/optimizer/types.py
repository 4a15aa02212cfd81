"""The optimizer's values: what the caller offers, what it blocks, and what comes back.

Launch calls :func:`styx.optimizer.optimize_task` (or ``optimize_dag``) with the enabled clouds,
:class:`InfraOffer` values for the machines it already has (this machine, SSH node pools), and a
:class:`Blocklist` of places that failed; it gets a :class:`Plan` whose :class:`TaskPlan`'s
``chosen`` :class:`Candidate` says exactly what to provision.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from styx.infra import InfraOffer as InfraOffer  # shared with the providers
from styx.infra import NodeCapacity as NodeCapacity
from styx.spec.resources import Resources


class Objective(enum.Enum):
    """What to minimise: dollars (COST) or seconds (TIME); the other breaks ties."""

    COST = "cost"
    TIME = "time"


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """One place a task can run: what launch provisions when this candidate is chosen.

    ``hourly_price`` is per node; NaN when the catalog has no price (``price_known`` False).
    ``cpus``/``memory_gb`` are the node's (what the instance type has, or what the task asked
    for on local/ssh); ``spec`` is the concrete resources candidate of the task it satisfies,
    and ``spec_index`` its position in ``Resources.candidates()``.
    """

    infra: str
    region: str | None
    zone: str | None
    instance_type: str | None
    use_spot: bool
    hourly_price: float
    num_nodes: int
    cpus: float | None
    memory_gb: float | None
    accelerator: str | None
    accelerator_count: float
    spec: Resources
    spec_index: int = 0

    @property
    def price_known(self) -> bool:
        """False when the catalog has no price for this offer."""
        return not math.isnan(self.hourly_price)

    @property
    def cluster_hourly_price(self) -> float:
        """Price per hour of all nodes together."""
        return self.hourly_price * self.num_nodes

    @property
    def accelerators(self) -> dict[str, float]:
        """``{name: count}`` per node (empty without accelerators)."""
        return {self.accelerator: self.accelerator_count} if self.accelerator else {}

    @property
    def location(self) -> str:
        """``infra/region/zone`` as written in task files."""
        return "/".join(p for p in (self.infra, self.region, self.zone) if p)

    def describe(self) -> str:
        """One line, e.g. ``2x gcp/us-central1/us-central1-a a2-highgpu-8g A100:8 spot``."""
        parts = [f"{self.num_nodes}x {self.location}"]
        if self.instance_type:
            parts.append(self.instance_type)
        if self.accelerator:
            parts.append(f"{self.accelerator}:{self.accelerator_count:g}")
        if self.use_spot:
            parts.append("spot")
        return " ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class Block:
    """A place to avoid. None fields match anything, so ``Block("gcp")`` blocks the cloud,
    ``Block("gcp", "us-central1")`` a region and adding ``zone`` a zone; ``instance_type`` and
    ``use_spot`` narrow it further (e.g. only spot A100s in that zone)."""

    infra: str
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    use_spot: bool | None = None

    def matches(
        self, infra: str, region: str | None, zone: str | None, instance_type: str | None,
        use_spot: bool,
    ) -> bool:  # fmt: skip
        """True when this block covers the given place."""
        return (
            self.infra == infra
            and (self.region is None or self.region == region)
            and (self.zone is None or self.zone == zone)
            and (self.instance_type is None or self.instance_type == instance_type)
            and (self.use_spot is None or self.use_spot == use_spot)
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Blocklist:
    """An immutable set of :class:`Block`; each ``block_*`` returns a larger copy.

    Failover: after a launch fails in ``candidate``'s zone, ``blocked.block_zone(candidate)``
    and optimize again; after a region fails, ``block_region``; ``block_infra`` for a cloud.
    """

    blocks: frozenset[Block] = frozenset()

    def __len__(self) -> int:
        return len(self.blocks)

    def add(self, block: Block) -> Blocklist:
        """A copy with ``block`` added."""
        return Blocklist(self.blocks | {block})

    def block_zone(self, c: Candidate, *, only_this_type: bool = False) -> Blocklist:
        """Block the candidate's zone (its region when the cloud has no zones)."""
        kind = c.instance_type if only_this_type else None
        spot = c.use_spot if only_this_type else None
        return self.add(Block(c.infra, c.region, c.zone, kind, spot))

    def block_region(self, c: Candidate) -> Blocklist:
        """Block the candidate's whole region (or SSH pool / Kubernetes context)."""
        return self.add(Block(c.infra, c.region))

    def block_infra(self, infra: str) -> Blocklist:
        """Block a whole cloud or infra kind."""
        return self.add(Block(infra))

    def is_blocked(
        self, infra: str, region: str | None, zone: str | None, instance_type: str | None,
        use_spot: bool,
    ) -> bool:  # fmt: skip
        """True when any block covers the place."""
        return any(b.matches(infra, region, zone, instance_type, use_spot) for b in self.blocks)

    def for_infra(self, infra: str) -> tuple[Block, ...]:
        """The blocks of one infra kind (to check many offers quickly)."""
        return tuple(b for b in self.blocks if b.infra == infra)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPlan:
    """The choice for one task and the best alternatives that lost, cheapest first.

    ``hours`` is the runtime estimate used; ``cost`` = hourly price x nodes x hours (NaN when
    the price is unknown); ``egress_cost``/``egress_seconds`` are for data this task receives.
    """

    task_index: int
    task_name: str | None
    chosen: Candidate
    runners_up: tuple[Candidate, ...]
    hours: float
    cost: float
    egress_cost: float = 0.0
    egress_seconds: float = 0.0
    considered: int = 0  # feasible shapes (instance types x spot) looked at


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """The optimizer's answer for a task or a DAG: one :class:`TaskPlan` per task, in the
    DAG's task order. ``method`` says how the DAG was solved: ``single``, ``dp`` (a chain),
    ``ilp`` (HiGHS), ``milp`` (SciPy), ``search`` (exact branch and bound, no solver) or
    ``heuristic`` (that search stopped early on a large DAG; see ``notes``)."""

    tasks: tuple[TaskPlan, ...]
    objective: Objective
    method: str
    total_cost: float
    total_seconds: float
    egress_cost: float = 0.0
    egress_seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def chosen(self) -> Candidate:
        """The chosen candidate of a single-task plan (the first task otherwise)."""
        return self.tasks[0].chosen
