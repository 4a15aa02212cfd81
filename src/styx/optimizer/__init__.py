"""The optimizer: where each task runs, cheapest (or fastest) first.

Public API (imported lazily, so ``import styx.optimizer`` is cheap)::

    plan = optimize_task(task, choices=infra, blocked=Blocklist())  # infra: InfraChoice list
    plan.chosen            # Candidate: infra, region, zone, instance_type, use_spot, price...
    plan = optimize_dag(dag, ...)          # joint placement with egress (DP / ILP)
    render_plan(plan) / plan_text(plan)    # the considered-resources table of --dryrun

Failover: ``blocked = blocked.block_zone(plan.chosen)`` (or ``block_region``, ``block_infra``)
and optimize again. See :mod:`styx.optimizer.feasible` for the matching rules and
:mod:`styx.optimizer.core` for the cost model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from styx.optimizer.core import feasible_candidates, optimize_task
    from styx.optimizer.dag import optimize_dag
    from styx.optimizer.render import plan_text, render_plan
    from styx.optimizer.types import (
        Block,
        Blocklist,
        Candidate,
        InfraOffer,
        NodeCapacity,
        Objective,
        Plan,
        TaskPlan,
    )

_LAZY = {
    "optimize_task": "styx.optimizer.core",
    "feasible_candidates": "styx.optimizer.core",
    "optimize_dag": "styx.optimizer.dag",
    "plan_text": "styx.optimizer.render",
    "render_plan": "styx.optimizer.render",
    **dict.fromkeys(
        ("Block", "Blocklist", "Candidate", "InfraOffer", "NodeCapacity", "Objective", "Plan"),
        "styx.optimizer.types",
    ),
    "TaskPlan": "styx.optimizer.types",
}
__all__ = [
    "Block",
    "Blocklist",
    "Candidate",
    "InfraOffer",
    "NodeCapacity",
    "Objective",
    "Plan",
    "TaskPlan",
    "feasible_candidates",
    "optimize_dag",
    "optimize_task",
    "plan_text",
    "render_plan",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'styx.optimizer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
