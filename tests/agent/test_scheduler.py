"""The scheduling policy, without Ray: capacity, fractions, accelerators, backfill, starvation."""

from __future__ import annotations

from styx.agent.protocol import Demand, NodeInfo
from styx.agent.scheduler import Candidate, ResourcePool, pick

NODES = [
    NodeInfo("198.18.5.1", "h", cpus=4, memory_gb=16, gpus=2, accelerator="A100"),
    NodeInfo("198.18.5.2", "w", cpus=4, memory_gb=16, gpus=0),
]


def cand(
    job_id: int,
    cpus: float = 0.5,
    gpus: float = 0,
    nodes: int = 1,
    prio: int = 0,
    at: float = 0.0,
    acc: str | None = None,
    mem: float | None = None,
) -> Candidate:
    return Candidate(
        job_id, prio, at, nodes, Demand(cpus=cpus, gpus=gpus, accelerator=acc, memory_gb=mem)
    )


def test_tiny_jobs_share_nodes() -> None:
    pool = ResourcePool(NODES)
    started = pick([cand(i) for i in range(20)], pool, now=0)
    assert len(started) == 16  # 8 CPUs / 0.5
    assert [r for _, r in started[:8]] == [[0]] * 8  # the head fills first


def test_fractional_gpus_and_accelerator_names() -> None:
    pool = ResourcePool(NODES)
    started = pick([cand(i, gpus=0.5, acc="a100") for i in range(6)], pool, now=0)
    assert [c.job_id for c, _ in started] == [0, 1, 2, 3]
    assert not ResourcePool(NODES).feasible(Demand(gpus=1, accelerator="H100"), 1)
    assert not ResourcePool(NODES).feasible(Demand(gpus=1), 2)  # only one node has GPUs
    pool.release(0)
    assert [c.job_id for c, _ in pick([cand(9, gpus=0.5)], pool, now=0)] == [9]


def test_multi_node_uses_distinct_nodes_in_rank_order() -> None:
    pool = ResourcePool(NODES)
    ((_c, ranks),) = pick([cand(1, cpus=3, nodes=2)], pool, now=0)
    assert ranks == [0, 1]
    assert pick([cand(2, cpus=2)], pool, now=0) == []
    pool.release(1)
    assert pool.free() == [(4, 2), (4, 0)]


def test_priority_then_fifo_and_backfill() -> None:
    pool = ResourcePool(NODES)
    pool.allocate(99, [0, 1], Demand(cpus=3))  # 1 CPU left per node
    jobs = [
        cand(1, cpus=2, at=0),
        cand(2, cpus=1, at=1),
        cand(3, cpus=1, prio=5, at=2),
        cand(4, cpus=1, at=3),
    ]
    started = [c.job_id for c, _ in pick(jobs, pool, now=10)]
    assert started == [3, 2]  # priority first, then submit order; job 1 is backfilled past


def test_starving_job_blocks_those_behind_it() -> None:
    pool = ResourcePool(NODES)
    pool.allocate(99, [0, 1], Demand(cpus=3))
    jobs = [cand(1, cpus=2, at=0), cand(2, cpus=1, at=1)]
    assert pick(jobs, pool, now=1000, starvation_s=120) == []
    assert [c.job_id for c, _ in pick(jobs, pool, now=60, starvation_s=120)] == [2]


def test_memory_and_unavailable_nodes() -> None:
    pool = ResourcePool(NODES)
    assert pool.fit(Demand(cpus=1, memory_gb=20), 1) is None
    assert pool.fit(Demand(cpus=1, memory_gb=10), 2) == [0, 1]
    pool.set_available(0, False)
    assert pool.fit(Demand(cpus=1), 1) == [1]
    assert pool.fit(Demand(cpus=1), 2) is None
