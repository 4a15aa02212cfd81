"""Which infra a plan may choose, and one line for each cheaper place it left out.

The caller (launch, ``--dryrun``) describes every known infra as an :class:`InfraChoice`: a plan
chooses only among those that are launchable and enabled, and within them only where the
infra has every capability the task needs (:func:`styx.infra.needs`). The rest are still
priced where their catalog is at hand, so that the plan can say, in one line each, that a
cheaper place was ruled out and why: no provider yet, not enabled, a missing capability, or a
catalog that could not be fetched. Nothing here ever fails a plan that does not need the
infra it is about.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from styx.catalog.index import CloudCatalog
from styx.errors import ResourcesUnavailable
from styx.infra import Capabilities, Exclusion, InfraChoice, InfraOffer, Need, needs
from styx.optimizer import feasible
from styx.optimizer.types import Candidate
from styx.spec.resources import Resources
from styx.spec.task import Task


@dataclasses.dataclass(slots=True)
class Catalogs:
    """Catalogs loaded on first use per infra; a catalog that cannot be had is remembered with
    why, once per plan. ``fetch=False`` reads only copies already on this machine."""

    loaded: dict[str, CloudCatalog | None] = dataclasses.field(default_factory=dict)
    missing: dict[str, str] = dataclasses.field(default_factory=dict)

    def get(self, cloud: str, *, fetch: bool = True) -> CloudCatalog | None:
        if cloud in self.loaded:
            return self.loaded[cloud]
        from styx.catalog import source
        from styx.catalog.loader import get_catalog

        if not fetch and cloud not in source.available_clouds():
            return None  # not remembered: a later call may fetch it
        try:
            found: CloudCatalog | None = get_catalog(cloud, refresh=None if fetch else False)
        except ResourcesUnavailable as err:
            self.missing[cloud] = err.message
            found = None
        self.loaded[cloud] = found
        return found


def catalogs_at_hand(choices: Sequence[InfraChoice], catalogs: Catalogs) -> list[CloudCatalog]:
    """The catalogs of every choice that are on this machine (none fetched): accelerator
    names are real even where a plan may not launch."""
    found = (catalogs.get(c.catalog, fetch=False) for c in choices if c.catalog)
    return [c for c in found if c is not None]


def allows(specs: Sequence[Resources], name: str) -> bool:
    """Whether any resources candidate may run on infra ``name`` (none pins another)."""
    return any(r.cloud in (None, name) for r in specs)


def eligible(choices: Sequence[InfraChoice]) -> list[InfraChoice]:
    return [c for c in choices if c.eligible]


def outside_reason(choice: InfraChoice) -> str:
    """Why a plan may not choose ``choice`` at all."""
    if not choice.launchable:
        return f"Styx cannot launch on {choice.title} yet"
    return f"{choice.name} is not enabled ({choice.reason}); see `styx check`"


def capability_miss(caps: Capabilities | None, task: Task, r: Resources) -> Need | None:
    """The first need of ``task`` with ``r`` that ``caps`` lacks (None: it has them all)."""
    if caps is None:
        return None
    return caps.first_missing(needs(task, r))


def _cheapest(found: list[Candidate]) -> Candidate | None:
    known = [c for c in found if not math.isnan(c.hourly_price)]
    return min(known, key=lambda c: c.cluster_hourly_price, default=None)


def cheapest_on(
    task: Task, catalog: CloudCatalog | None, offers: Sequence[InfraOffer]
) -> Candidate | None:
    """The cheapest place that fits ``task`` on one infra, capabilities and blocks aside."""
    found: list[Candidate] = []
    for index, r in enumerate(task.resources.candidates()):
        if catalog is not None:
            found.extend(feasible.cloud_candidates(catalog, r, task.num_nodes, (), index, 1)[0])
        for offer in offers:
            c = feasible.offer_candidate(offer, r, task.num_nodes, (), index)
            if c is not None:
                found.append(c)
    return _cheapest(found)


def _label(c: Candidate) -> str:
    accelerator = f"{c.accelerator}:{c.accelerator_count:g}" if c.accelerator else None
    what = " ".join(p for p in (c.instance_type, accelerator) if p)
    where = f" in {c.region}" if c.region and c.instance_type else ""
    nodes = f"{c.num_nodes}x " if c.num_nodes > 1 else ""
    price = f" at ${c.cluster_hourly_price:.4g}/h" if c.hourly_price > 0 else ""
    return f"{nodes}{what or 'a node'}{where}{price}".strip()


def exclusions(
    task: Task,
    choices: Sequence[InfraChoice],
    catalogs: Catalogs,
    misses: dict[str, Need],
    chosen: Candidate | None,
) -> list[Exclusion]:
    """One line per infra the plan did not choose although it fits the task, cheaper than
    ``chosen`` (or when nothing was chosen): a missing capability (``misses``), no provider,
    not enabled. Also one line per eligible infra whose catalog could not be had. Infra that
    is not eligible is priced only from a catalog already on this machine (never fetched)."""
    specs = task.resources.candidates()
    limit = math.inf if chosen is None else chosen.cluster_hourly_price
    out: list[Exclusion] = []
    for choice in choices:
        if not allows(specs, choice.name):
            continue
        if choice.eligible and choice.catalog in catalogs.missing:
            why = f"its catalog could not be had ({catalogs.missing[choice.catalog]})"
            out.append(Exclusion(choice.name, why))
            continue
        if choice.eligible and choice.name not in misses:
            continue
        if limit <= 0:
            continue  # nothing is cheaper than free: no catalog needs loading to say so
        why = f"it {misses[choice.name].sentence()}" if choice.eligible else outside_reason(choice)
        catalog = catalogs.get(choice.catalog, fetch=choice.eligible) if choice.catalog else None
        best = cheapest_on(task, catalog, choice.offers)
        if best is not None and best.cluster_hourly_price < limit:
            out.append(Exclusion(choice.name, why, _label(best), best.cluster_hourly_price))
        elif chosen is None and all(r.cloud == choice.name for r in specs):
            out.append(Exclusion(choice.name, why))  # the task asks for it by name
    return out
