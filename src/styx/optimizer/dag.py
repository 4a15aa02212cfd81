"""Joint placement of a DAG's tasks, counting egress between dependent tasks.

Egress depends only on the infra kinds at both ends (free inside one cloud), so each task's
options are its best candidate per infra kind: the optimum of the joint problem always uses
one of them. Edge ``(u, v)`` carries ``u``'s ``outputs`` size. :mod:`styx.optimizer.solve` finds
the exact optimum (DP for chains, an ILP otherwise).

The TIME objective sums the tasks' times and transfer times, as SkyPilot's DAG optimizer does
(not the critical path): it is linear, so the same solvers apply.
"""

from __future__ import annotations

from collections.abc import Sequence

from styx.infra import InfraChoice
from styx.optimizer import core, egress, solve
from styx.optimizer.core import Context, Hours
from styx.optimizer.types import Blocklist, Candidate, InfraOffer, Objective, Plan, TaskPlan
from styx.spec.dag import Dag
from styx.spec.task import Task


def _options(ranked: list[Candidate], ordered: bool) -> list[Candidate]:
    """The best candidate per infra kind (from the first feasible spec when ``ordered``)."""
    if ordered and ranked:
        first = ranked[0].spec_index
        ranked = [c for c in ranked if c.spec_index == first]
    best: dict[str, Candidate] = {}
    for c in ranked:
        best.setdefault(c.infra, c)
    return list(best.values())


def _edge_weight(src: Candidate, dst: Candidate, gb: float, objective: Objective) -> float:
    dollars = egress.egress_cost(src.infra, dst.infra, gb)
    seconds = egress.egress_seconds(src.infra, dst.infra, gb)
    first, second = (dollars, seconds) if objective is Objective.COST else (seconds, dollars)
    return first + 1e-9 * second


def build_problem(
    dag: Dag, ctx: Context
) -> tuple[
    list[list[Candidate]], list[list[Candidate]], list[int], list[list[float]], solve.EdgeWeights
]:
    """Per task: ranked candidates, options, feasible count, option weights; and edge weights."""
    tasks = dag.tasks
    ranked_all: list[list[Candidate]] = []
    options: list[list[Candidate]] = []
    considered: list[int] = []
    node: list[list[float]] = []
    for index, task in enumerate(tasks):
        ranked, count = core.ranked_candidates(task, index, ctx)
        ranked_all.append(ranked)
        considered.append(count)
        opts = _options(ranked, task.resources.is_ordered)
        options.append(opts)
        node.append([core.scalar(core.rank_key(task, c, ctx)) for c in opts])
    edges: solve.EdgeWeights = {}
    for u, v in sorted(dag.edges):
        outputs = tasks[u].outputs
        gb = outputs.size_gb if outputs is not None else 0.0
        if gb <= 0:
            continue
        edges[(u, v)] = [
            [_edge_weight(a, b, gb, ctx.objective) for b in options[v]] for a in options[u]
        ]
    return ranked_all, options, considered, node, edges


def _incoming(
    tasks: Sequence[Task], edges: set[tuple[int, int]], chosen: list[Candidate], v: int
) -> tuple[float, float]:
    dollars = seconds = 0.0
    for u, w in edges:
        if w != v or tasks[u].outputs is None:
            continue
        gb = tasks[u].outputs.size_gb  # type: ignore[union-attr]
        dollars += egress.egress_cost(chosen[u].infra, chosen[v].infra, gb)
        seconds += egress.egress_seconds(chosen[u].infra, chosen[v].infra, gb)
    return dollars, seconds


def optimize_dag(
    dag: Dag,
    *,
    clouds: Sequence[str] | None = None,
    offers: Sequence[InfraOffer] = (),
    blocked: Blocklist | None = None,
    objective: Objective = Objective.COST,
    hours: Hours = 1.0,
    choices: Sequence[InfraChoice] = (),
) -> Plan:
    """The jointly best placement of every task of ``dag`` (arguments as
    :func:`~styx.optimizer.core.optimize_task`). One-task DAGs give the same plan as
    ``optimize_task``."""
    ctx = core.make_context(clouds, offers, blocked, objective, hours, choices)
    if len(dag) == 1:
        return core.optimize_task(
            dag.tasks[0],
            clouds=[c.cloud for c in ctx.catalogs],
            offers=ctx.offers,
            blocked=ctx.blocklist,
            objective=objective,
            hours=hours,
            choices=choices,
        )
    ranked_all, options, considered, node, edges = build_problem(dag, ctx)
    labels = [[c.infra for c in opts] for opts in options]
    choice, method = solve.solve(node, edges, labels)
    chosen = [options[u][a] for u, a in enumerate(choice)]
    tasks, dag_edges = dag.tasks, set(dag.edges)
    plans: list[TaskPlan] = []
    for index, task in enumerate(tasks):
        pick = chosen[index]
        ranked = [pick, *(c for c in ranked_all[index] if c is not pick)]
        base = core.task_plan(task, index, ranked, considered[index], ctx)
        dollars, seconds = _incoming(tasks, dag_edges, chosen, index)
        plans.append(
            TaskPlan(
                base.task_index,
                base.task_name,
                base.chosen,
                base.runners_up,
                base.hours,
                base.cost + dollars,
                base.egress_cost + dollars,
                base.egress_seconds + seconds,
                base.considered,
            )
        )
    egress_cost = sum(p.egress_cost for p in plans)
    egress_seconds = sum(p.egress_seconds for p in plans)
    total_cost = sum(p.cost for p in plans)
    total_seconds = sum(p.hours * 3600.0 for p in plans) + egress_seconds
    notes = core._price_notes(*plans)
    if method == "heuristic":
        from styx.paths import pip_install

        notes += (
            "No MILP solver is installed and the DAG is large, so the placement is the best "
            f"found, not proven optimal; `{pip_install('highspy')}` makes it exact.",
        )
    return Plan(
        tuple(plans),
        objective,
        method,
        total_cost,
        total_seconds,
        egress_cost,
        egress_seconds,
        notes,
    )
