"""Choosing where one task runs: enumerate feasible candidates, score them, pick.

Score of a candidate: cost = hourly price x nodes x hours (+ egress of the task's ``inputs``
from their bucket's cloud), time = hours x 3600 s (+ that egress's seconds). Hours come from
the caller's estimate, 1 by default as in SkyPilot. COST minimises cost and breaks ties by
time; TIME the reverse. Remaining ties go to the alphabetically first infra, region, zone and
instance type, so a plan never depends on the order of catalog rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from styx.catalog.index import CloudCatalog
from styx.infra import Capabilities, Exclusion, InfraChoice, Need
from styx.optimizer import egress, explain, feasible, honest
from styx.optimizer.types import (
    Blocklist,
    Candidate,
    InfraOffer,
    Objective,
    Plan,
    TaskPlan,
)
from styx.spec.task import Task

# Hours a task runs on a candidate; a number means the same for every candidate.
Hours = float | Callable[[Task, Candidate], float]
UNKNOWN_PRICE_PENALTY = 1e9  # unknown prices rank after every known one
DEFAULT_RUNNERS_UP = 5


@dataclass(frozen=True, slots=True)
class Context:
    """Everything the optimizer needs besides the task: resolved once per call.

    With ``choices`` (every known infra, as launch describes them), the catalogs of the
    eligible ones are loaded on first use by a task they may run, and the capabilities of each
    infra filter its candidates; without, ``catalogs`` are used as given, unconstrained.
    """

    catalogs: tuple[CloudCatalog, ...]
    offers: tuple[InfraOffer, ...]
    blocklist: Blocklist
    objective: Objective
    hours: Hours
    choices: tuple[InfraChoice, ...] = ()
    loaded: honest.Catalogs = field(default_factory=honest.Catalogs)
    skipped: list[str] = field(default_factory=list)  # candidates left out, one line each

    def task_hours(self, task: Task, c: Candidate) -> float:
        """The runtime estimate of ``task`` on ``c``, in hours."""
        return float(self.hours(task, c) if callable(self.hours) else self.hours)

    def capabilities(self, infra: str) -> Capabilities | None:
        """What ``infra`` can do (None: unconstrained, without choices)."""
        for choice in self.choices:
            if choice.name == infra:
                return choice.capabilities
        return None

    def catalogs_for(self, task: Task) -> tuple[CloudCatalog, ...]:
        """The catalogs a plan of ``task`` may choose from."""
        if not self.choices:
            return self.catalogs
        specs = task.resources.candidates()
        out = list(self.catalogs)
        for choice in honest.eligible(self.choices):
            if choice.catalog and honest.allows(specs, choice.name):
                catalog = self.loaded.get(choice.catalog)
                if catalog is not None:
                    out.append(catalog)
        return tuple(out)

    def offers_for(self) -> tuple[InfraOffer, ...]:
        """The capacity a plan may choose from: given, and of the eligible choices."""
        extra = tuple(o for c in honest.eligible(self.choices) for o in c.offers)
        return self.offers + extra


def make_context(
    clouds: Sequence[str] | None,
    offers: Sequence[InfraOffer],
    blocked: Blocklist | None,
    objective: Objective,
    hours: Hours,
    choices: Sequence[InfraChoice] = (),
) -> Context:
    """Load the catalogs of ``clouds`` now; those of eligible ``choices`` load when needed."""
    from styx.catalog.loader import get_catalog

    catalogs = tuple(get_catalog(n) for n in dict.fromkeys(clouds or ()))
    return Context(
        catalogs, tuple(offers), blocked or Blocklist(), objective, hours, tuple(choices)
    )


def feasible_candidates(
    task: Task, ctx: Context, *, keep: int | None = None, misses: dict[str, Need] | None = None
) -> tuple[list[Candidate], int]:
    """The cheapest allowed place of every fitting (infra, shape, spot), for every resources
    candidate of the task, and how many there are. With ``keep``, each cloud contributes only
    its ``keep`` cheapest per resources candidate. Infra lacking a capability that a resources
    candidate needs is skipped for it, and the first such need per infra goes into ``misses``.
    Raises SpecError for an unknown accelerator.
    """
    specs = task.resources.candidates()
    catalogs, offers = ctx.catalogs_for(task), ctx.offers_for()
    unknown = explain.check_accelerator_names(
        specs, catalogs, offers, lambda: honest.catalogs_at_hand(ctx.choices, ctx.loaded)
    )
    skip = {index for index, _ in unknown}
    for index, err in unknown:  # plan the rest, as SkyPilot does, and say what was skipped
        note = f"Skipped {explain.describe(specs[index])}: {err.message}"
        if note not in ctx.skipped:
            ctx.skipped.append(note)
    out: list[Candidate] = []
    count = 0
    for index, r in enumerate(specs):
        if index in skip:
            continue
        for catalog in catalogs:
            need = honest.capability_miss(ctx.capabilities(catalog.cloud), task, r)
            if need is not None:
                if misses is not None and r.cloud in (None, catalog.cloud):
                    misses.setdefault(catalog.cloud, need)
                continue
            blocks = ctx.blocklist.for_infra(catalog.cloud)
            found, n = feasible.cloud_candidates(catalog, r, task.num_nodes, blocks, index, keep)
            out.extend(found)
            count += n
        for offer in offers:
            need = honest.capability_miss(ctx.capabilities(offer.kind), task, r)
            if need is not None:
                fits = feasible.offer_reason(offer, r, task.num_nodes) is None
                if misses is not None and fits:
                    misses.setdefault(offer.kind, need)
                continue
            blocks = ctx.blocklist.for_infra(offer.kind)
            c = feasible.offer_candidate(offer, r, task.num_nodes, blocks, index)
            if c is not None:
                out.append(c)
                count += 1
    return out, count


def inputs_egress(task: Task, c: Candidate) -> tuple[float, float]:
    """(dollars, seconds) to bring the task's ``inputs`` to ``c``'s infra."""
    if task.inputs is None:
        return 0.0, 0.0
    src = egress.source_infra(task.inputs.path)
    if src is None:
        return 0.0, 0.0
    gb = task.inputs.size_gb
    return egress.egress_cost(src, c.infra, gb), egress.egress_seconds(src, c.infra, gb)


def score(task: Task, c: Candidate, ctx: Context) -> tuple[float, float, float]:
    """(cost $, seconds, hours) of running ``task`` on ``c``; cost is NaN for unknown prices."""
    hours = ctx.task_hours(task, c)
    dollars, seconds = inputs_egress(task, c)
    return c.cluster_hourly_price * hours + dollars, hours * 3600.0 + seconds, hours


def rank_key(task: Task, c: Candidate, ctx: Context) -> tuple[float, float, str, str, str, str]:
    """Sort key: objective first, the other measure next, then names."""
    cost, seconds, _ = score(task, c, ctx)
    if math.isnan(cost):
        cost = UNKNOWN_PRICE_PENALTY
    first, second = (cost, seconds) if ctx.objective is Objective.COST else (seconds, cost)
    return (first, second, c.infra, c.region or "", c.zone or "", c.instance_type or "")


def scalar(key: tuple[float, float, str, str, str, str]) -> float:
    """One number for solvers: the objective plus a tiny share of the tie-breaking measure."""
    return key[0] + 1e-9 * key[1]


def pick(task: Task, candidates: list[Candidate], ctx: Context) -> list[Candidate]:
    """The candidates in preference order, chosen first. ``ordered`` resources rank by their
    position first, so the first resources candidate with any place wins."""
    ordered = task.resources.is_ordered
    return sorted(
        candidates,
        key=lambda c: ((c.spec_index if ordered else 0), rank_key(task, c, ctx)),
    )


def runners_up(ranked: list[Candidate], limit: int = DEFAULT_RUNNERS_UP) -> tuple[Candidate, ...]:
    """The best losers: first the best of each other infra, then the next best overall."""
    if len(ranked) <= 1:
        return ()
    chosen, rest = ranked[0], ranked[1:]
    picked: list[Candidate] = []
    seen = {chosen.infra}
    for c in rest:
        if c.infra not in seen and len(picked) < limit:
            picked.append(c)
            seen.add(c.infra)
    for c in rest:
        if len(picked) >= limit:
            break
        if c not in picked:
            picked.append(c)
    order = {id(c): i for i, c in enumerate(rest)}
    return tuple(sorted(picked, key=lambda c: order[id(c)]))


def task_plan(
    task: Task, index: int, ranked: list[Candidate], considered: int, ctx: Context
) -> TaskPlan:
    """The TaskPlan of a task whose first ranked candidate is chosen."""
    chosen = ranked[0]
    cost, _, hours = score(task, chosen, ctx)
    dollars, seconds = inputs_egress(task, chosen)
    return TaskPlan(
        task_index=index,
        task_name=task.name,
        chosen=chosen,
        runners_up=runners_up(ranked),
        hours=hours,
        cost=cost,
        egress_cost=dollars,
        egress_seconds=seconds,
        considered=considered,
    )


def ranked_candidates(
    task: Task, index: int, ctx: Context, misses: dict[str, Need] | None = None
) -> tuple[list[Candidate], int]:
    """Feasible candidates of one task in preference order, and how many were feasible;
    raises ResourcesUnavailable saying what ruled everything out when there are none (with a
    line for each place left out that would fit). ``misses`` collects, per infra, the first
    capability it lacks for this task."""
    # Within one cloud and resources candidate, every score but the price is the same when the
    # hours are a constant: the few cheapest are all that can be chosen or shown.
    keep = None if callable(ctx.hours) else DEFAULT_RUNNERS_UP + 1
    found: dict[str, Need] = {} if misses is None else misses
    candidates, count = feasible_candidates(task, ctx, keep=keep, misses=found)
    if not candidates:
        blocks = {b.infra: ctx.blocklist.for_infra(b.infra) for b in ctx.blocklist.blocks}
        err = explain.infeasible(
            task.resources.candidates(),
            ctx.catalogs_for(task),
            ctx.offers_for(),
            blocks,
            task.num_nodes,
            task.name,
            found,
        )
        # The error already says what each eligible infra lacks; add the places it could not
        # consider at all (no provider, not enabled, no catalog), and where they are cheaper.
        left_out = [
            e
            for e in honest.exclusions(task, ctx.choices, ctx.loaded, found, None)
            if e.infra not in found
        ]
        if left_out:
            err.message = (
                err.message.rstrip(".") + ". Left out: " + " ".join(e.sentence() for e in left_out)
            )
            err.details["left_out"] = [e.sentence() for e in left_out]
        raise err
    return pick(task, candidates, ctx), count


def left_out_notes(
    task: Task, ctx: Context, misses: dict[str, Need], chosen: Candidate
) -> tuple[str, ...]:
    """One line per cheaper place the plan could not choose (see :mod:`honest`)."""
    if not ctx.choices:
        return ()
    found: list[Exclusion] = honest.exclusions(task, ctx.choices, ctx.loaded, misses, chosen)
    return tuple(e.sentence() for e in found)


def optimize_task(
    task: Task,
    *,
    clouds: Sequence[str] | None = None,
    offers: Sequence[InfraOffer] = (),
    blocked: Blocklist | None = None,
    objective: Objective = Objective.COST,
    hours: Hours = 1.0,
    choices: Sequence[InfraChoice] = (),
) -> Plan:
    """The best place for one task.

    ``choices``: every known infra (see :mod:`styx.optimizer.honest`): the plan chooses only
    among the launchable, enabled ones that have what the task needs, and notes the cheaper
    places it left out. ``clouds``: catalog clouds to consider besides, unconstrained (tests,
    benchmarks); ``offers``: capacity the caller has besides; ``blocked``: places that failed
    before. Raises SpecError (unknown accelerator) or ResourcesUnavailable (infeasible).
    """
    ctx = make_context(clouds, offers, blocked, objective, hours, choices)
    misses: dict[str, Need] = {}
    ranked, considered = ranked_candidates(task, 0, ctx, misses)
    plan = task_plan(task, 0, ranked, considered, ctx)
    notes = tuple(ctx.skipped) + _price_notes(plan) + left_out_notes(task, ctx, misses, plan.chosen)
    return Plan(
        (plan,),
        objective,
        "single",
        plan.cost,
        _seconds(plan),
        plan.egress_cost,
        plan.egress_seconds,
        notes,
    )


def _seconds(plan: TaskPlan) -> float:
    return plan.hours * 3600.0 + plan.egress_seconds


def _price_notes(*plans: TaskPlan) -> tuple[str, ...]:
    notes = []
    for p in plans:
        if not p.chosen.price_known:
            notes.append(
                f"The price of {p.chosen.instance_type} on {p.chosen.infra} is unknown "
                "(the catalog has none); it was chosen because nothing with a known price fits."
            )
    return tuple(notes)
