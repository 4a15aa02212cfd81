"""DAG placement equals brute force: on the shared catalog, and on random small problems."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from pathlib import Path

import pytest
from tests.optimizer import brute

from styx.optimizer import optimize_dag, plan_text
from styx.optimizer import solve as solver
from styx.spec.dag import Dag
from styx.spec.quantities import Infra
from styx.spec.task import Task

CLOUDS = ["gcp", "azure", "lambda"]
# Internet egress $/GB tiers (up to GB, rate), restated from the clouds' price pages.
TIERS = {
    "gcp": [(1024, 0.12), (10240, 0.11), (math.inf, 0.08)],
    "azure": [(10240, 0.0875), (51200, 0.083), (153600, 0.07), (math.inf, 0.05)],
    "lambda": [(math.inf, 0.0)],
}


def egress(src: str, dst: str, gb: float) -> float:
    if src == dst:
        return 0.0
    cost, low = 0.0, 0.0
    for high, rate in TIERS[src]:
        cost += max(0.0, min(gb, high) - low) * rate
        low = high
    return cost


@pytest.fixture(scope="module")
def rows() -> list[brute.Row]:
    from tests.catalog.conftest import shared_catalog

    return brute.load(shared_catalog(), CLOUDS)


def per_cloud_costs(task: Task, rows: list[brute.Row]) -> dict[str, float]:
    out = {}
    for cloud in CLOUDS:
        specs = [
            dataclasses.replace(r, infra=Infra(cloud, r.region, r.zone))
            for r in task.resources.candidates()
            if r.cloud in (None, cloud)
        ]
        low, _ = brute.best(rows, specs, task.resources.is_ordered, task.num_nodes)
        if not math.isnan(low):
            out[cloud] = low
    return out


def brute_dag(dag: Dag, rows: list[brute.Row]) -> tuple[float, tuple[str, ...]]:
    tasks = dag.tasks
    costs = [per_cloud_costs(t, rows) for t in tasks]
    best = (math.inf, ())
    for combo in itertools.product(*[sorted(c) for c in costs]):
        total = sum(costs[i][cloud] for i, cloud in enumerate(combo))
        for u, v in dag.edges:
            out = tasks[u].outputs
            total += egress(combo[u], combo[v], out.size_gb if out else 0.0)
        best = min(best, (total, combo))
    return best


def make_dag(spec: list[tuple[str, str, float]], edges: list[tuple[str, str]]) -> Dag:
    dag = Dag(name="t")
    by_name = {}
    for name, resources, out_gb in spec:
        text = f"name: {name}\nresources: {resources}\n"
        if out_gb:
            text += f"outputs: {{gs://bucket/{name}: {out_gb}}}\n"
        by_name[name] = dag.add(Task.from_yaml_str(text))
    for a, b in edges:
        dag.add_edge(by_name[a], by_name[b])
    return dag


DAGS = {
    "chain": (
        [("prep", "{cpus: 4+}", 2000), ("train", "{accelerators: A100:8}", 50),
         ("eval", "{accelerators: T4:1}", 0)],
        [("prep", "train"), ("train", "eval")],
    ),
    "diamond": (
        [("a", "{cpus: 8+, memory: 32+}", 3000), ("b", "{accelerators: A100:8}", 800),
         ("c", "{accelerators: H100:1, use_spot: true}", 20), ("d", "{accelerators: A10:1}", 0)],
        [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
    ),
    "heavy-egress": (
        [("src", "{cpus: 2+}", 20000), ("gpu", "{accelerators: A100:8}", 0)],
        [("src", "gpu")],
    ),
    "fan-in": (
        [("x", "{accelerators: V100:1}", 700), ("y", "{accelerators: L4:1}", 1500),
         ("z", "{cpus: 16+}", 100), ("w", "{accelerators: A100:1}", 0)],
        [("x", "w"), ("y", "w"), ("z", "w"), ("x", "y")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DAGS))
def test_dag_matches_brute_force(name: str, catalog_env: Path, rows: list[brute.Row]) -> None:
    dag = make_dag(*DAGS[name])
    plan = optimize_dag(dag, clouds=CLOUDS)
    low, combo = brute_dag(dag, rows)
    assert plan.total_cost == pytest.approx(low, rel=1e-9)
    chosen = tuple(p.chosen.infra for p in plan.tasks)
    total = sum(per_cloud_costs(t, rows)[chosen[i]] for i, t in enumerate(dag.tasks))
    total += sum(
        egress(chosen[u], chosen[v], dag.tasks[u].outputs.size_gb)  # type: ignore[union-attr]
        for u, v in dag.edges
        if dag.tasks[u].outputs
    )
    assert total == pytest.approx(low, rel=1e-9), (chosen, combo)
    assert plan.method in (
        {"dp"} if name in ("chain", "heavy-egress") else {"ilp", "milp", "search"}
    )
    assert "solved by" in plan_text(plan)


def test_heavy_egress_keeps_tasks_together(catalog_env: Path) -> None:
    plan = optimize_dag(make_dag(*DAGS["heavy-egress"]), clouds=CLOUDS)
    src, gpu = plan.tasks
    assert src.chosen.infra == gpu.chosen.infra
    assert plan.egress_cost == 0


def random_problem(rng: random.Random, n: int) -> tuple[list[list[float]], solver.EdgeWeights]:
    node = [[round(rng.uniform(0, 10), 3) for _ in range(rng.randint(1, 4))] for _ in range(n)]
    edges: solver.EdgeWeights = {}
    for v in range(1, n):
        for u in rng.sample(range(v), k=min(v, rng.randint(1, 2))):
            edges[(u, v)] = [
                [0.0 if a == b else round(rng.uniform(0, 8), 3) for b in range(len(node[v]))]
                for a in range(len(node[u]))
            ]
    return node, edges


def brute_solve(node: list[list[float]], edges: solver.EdgeWeights) -> float:
    return min(
        solver.total(node, edges, list(c))
        for c in itertools.product(*[range(len(w)) for w in node])
    )


@pytest.mark.parametrize("method", ["highspy", "scipy", "search", "solve"])
def test_solvers_match_brute_force_on_random_dags(method: str) -> None:
    if method == "highspy":
        pytest.importorskip("highspy")
    if method == "scipy":
        pytest.importorskip("scipy")
    run = {
        "highspy": solver.ilp_highspy, "scipy": solver.ilp_scipy,
        "search": lambda n, e: solver.branch_and_bound(n, e)[0],
        "solve": lambda n, e: solver.solve(n, e)[0],
    }[method]  # fmt: skip
    rng = random.Random(7)
    for _ in range(40):
        node, edges = random_problem(rng, rng.randint(2, 6))
        choice = run(node, edges)
        assert solver.total(node, edges, choice) == pytest.approx(
            brute_solve(node, edges), abs=1e-9
        )


def test_chain_dp_matches_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(40):
        n = rng.randint(1, 7)
        node, _ = random_problem(rng, n)
        edges = {
            (i, i + 1): [[rng.uniform(0, 5) for _ in node[i + 1]] for _ in node[i]]
            for i in range(n - 1)
        }
        choice = solver.chain_dp(node, edges)
        assert solver.total(node, edges, choice) == pytest.approx(brute_solve(node, edges))


def test_without_a_milp_solver_the_search_says_so(
    catalog_env: Path, rows: list[brute.Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*_: object) -> list[int]:
        raise ImportError("no solver")

    monkeypatch.setattr(solver, "ilp_highspy", missing)
    monkeypatch.setattr(solver, "ilp_scipy", missing)
    dag = make_dag(*DAGS["diamond"])
    plan = optimize_dag(dag, clouds=CLOUDS)
    assert plan.method == "search" and not plan.notes
    assert plan.total_cost == pytest.approx(brute_dag(dag, rows)[0], rel=1e-9)
    monkeypatch.setattr(solver, "SEARCH_NODE_LIMIT", 1)
    plan = optimize_dag(dag, clouds=CLOUDS)
    assert plan.method == "heuristic" and "not proven optimal" in plan.notes[-1]
