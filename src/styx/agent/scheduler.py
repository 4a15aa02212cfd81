"""Which pending jobs start now: pure bookkeeping of per-node capacity, no I/O.

Policy: jobs are considered in (priority desc, submit order). A job starts when each of its
``num_nodes`` nodes can hold its per-node demand (CPUs and GPUs, fractions included, accelerator
name and memory when given) on distinct nodes. We *backfill*: a job that does not fit yet does
not stop smaller jobs behind it from starting, so tiny jobs keep a cluster busy while a big one
waits. To keep big jobs from starving, once a waiting job is older than ``starvation_s`` it
becomes a barrier: nothing behind it starts until it has started (head-of-line blocking for that
job only). Nodes are chosen in rank order, so the head is rank 0 whenever the head is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from styx.agent.protocol import Demand, NodeInfo

_EPS = 1e-9

#: How long a job may wait before it blocks the jobs behind it (see module docstring).
DEFAULT_STARVATION_S = 120.0


@dataclasses.dataclass(slots=True)
class _Node:
    info: NodeInfo
    free_cpus: float
    free_gpus: float
    free_mem: float
    available: bool = True

    def fits(self, d: Demand) -> bool:
        if not self.available:
            return False
        if d.accelerator and (self.info.accelerator or "").lower() != d.accelerator.lower():
            return False
        if d.memory_gb is not None and self.free_mem + _EPS < d.memory_gb:
            return False
        return self.free_cpus + _EPS >= d.cpus and self.free_gpus + _EPS >= d.gpus


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A pending job as the scheduler sees it."""

    job_id: int
    priority: int
    submitted_at: float
    num_nodes: int
    demand: Demand


class ResourcePool:
    """Free capacity per node, and which job holds what."""

    def __init__(self, nodes: Sequence[NodeInfo]) -> None:
        self._nodes = [_Node(n, n.cpus, n.gpus, n.memory_gb) for n in nodes]
        self._held: dict[int, tuple[list[int], Demand]] = {}

    @property
    def nodes(self) -> list[NodeInfo]:
        return [n.info for n in self._nodes]

    def set_available(self, index: int, available: bool) -> None:
        """Mark a node (by rank) usable or not, e.g. when its Ray node is dead."""
        self._nodes[index].available = available

    def feasible(self, demand: Demand, num_nodes: int) -> bool:
        """Whether the job could ever run here, on an empty cluster."""
        empty = [_Node(n.info, n.info.cpus, n.info.gpus, n.info.memory_gb) for n in self._nodes]
        return sum(1 for n in empty if n.fits(demand)) >= num_nodes

    def fit(self, demand: Demand, num_nodes: int) -> list[int] | None:
        """Ranks of nodes that can take the job now, or None."""
        chosen = [i for i, n in enumerate(self._nodes) if n.fits(demand)][:num_nodes]
        return chosen if len(chosen) == num_nodes else None

    def allocate(self, job_id: int, ranks: Iterable[int], demand: Demand) -> None:
        ranks = list(ranks)
        for i in ranks:
            node = self._nodes[i]
            node.free_cpus -= demand.cpus
            node.free_gpus -= demand.gpus
            node.free_mem -= demand.memory_gb or 0.0
        self._held[job_id] = (ranks, demand)

    def release(self, job_id: int) -> None:
        """Give back what a job held; a no-op for a job that holds nothing."""
        held = self._held.pop(job_id, None)
        if held is None:
            return
        ranks, demand = held
        for i in ranks:
            node = self._nodes[i]
            node.free_cpus = min(node.info.cpus, node.free_cpus + demand.cpus)
            node.free_gpus = min(node.info.gpus, node.free_gpus + demand.gpus)
            node.free_mem = min(node.info.memory_gb, node.free_mem + (demand.memory_gb or 0.0))

    def holds(self, job_id: int) -> bool:
        return job_id in self._held

    def free(self) -> list[tuple[float, float]]:
        """(free CPUs, free GPUs) per node, for status and tests."""
        return [(n.free_cpus, n.free_gpus) for n in self._nodes]


def order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Scheduling order: priority desc, then submit order (job ids increase with time)."""
    return sorted(candidates, key=lambda c: (-c.priority, c.job_id))


def pick(
    candidates: Iterable[Candidate],
    pool: ResourcePool,
    now: float,
    starvation_s: float = DEFAULT_STARVATION_S,
) -> list[tuple[Candidate, list[int]]]:
    """Allocate and return the jobs that start now, with the node ranks each gets."""
    started: list[tuple[Candidate, list[int]]] = []
    for cand in order(candidates):
        ranks = pool.fit(cand.demand, cand.num_nodes)
        if ranks is not None:
            pool.allocate(cand.job_id, ranks, cand.demand)
            started.append((cand, ranks))
        elif now - cand.submitted_at >= starvation_s:
            break  # this job has waited long enough: keep what frees up for it
    return started
