"""Errors that say why: unknown accelerator names, and which constraint ruled out what."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from styx.catalog.index import CloudCatalog
from styx.catalog.loader import close_names, common_accelerators
from styx.errors import ResourcesUnavailable, SpecError
from styx.infra import Need
from styx.optimizer import feasible
from styx.optimizer.types import Block, InfraOffer
from styx.spec.quantities import Infra, num
from styx.spec.resources import Resources


def describe(r: Resources) -> str:
    """A short name for what a candidate asks, e.g. ``A100:8 spot`` or ``cpus 4+ memory 16+``."""
    parts: list[str] = []
    if r.accelerator is not None:
        parts.append(str(r.accelerator))
    if r.instance_type:
        parts.append(r.instance_type)
    if r.cpus is not None:
        parts.append(f"cpus {r.cpus.to_yaml()}")
    if r.memory is not None:
        parts.append(f"memory {r.memory.to_yaml()}")
    if r.use_spot:
        parts.append("spot")
    return " ".join(parts) or "a default node"


def check_accelerator_names(
    specs: Sequence[Resources],
    catalogs: Sequence[CloudCatalog],
    offers: Sequence[InfraOffer],
    more: Callable[[], Sequence[CloudCatalog]] | None = None,
) -> list[tuple[int, SpecError]]:
    """The resources candidates whose accelerator no catalog or machine knows, by index, each
    with its SpecError ``unknown-accelerator``; raises that error when every candidate is
    such. ``more`` gives further catalogs (infra a plan may not choose, but whose names are
    real) and is called only when a name is unknown to the others."""
    known: set[str] = set()
    for catalog in catalogs:
        known.update(catalog.accelerator_names.values())
    for offer in offers:
        for node in offer.nodes:
            known.update(node.accelerators)
    lower = {k.lower() for k in known}
    unknown: list[tuple[int, SpecError]] = []
    looked_further = False
    for index, r in enumerate(specs):
        accelerator = r.accelerator
        if accelerator is None or accelerator.name.lower() in lower:
            continue
        if more is not None and not looked_further:
            looked_further = True
            extra = list(more())
            for catalog in extra:
                known.update(catalog.accelerator_names.values())
            lower = {k.lower() for k in known}
            catalogs = [*catalogs, *extra]
            if accelerator.name.lower() in lower:
                continue
        common = common_accelerators()  # read only for names no catalog here knows
        if accelerator.name.lower() in common:
            continue
        if not common and not catalogs:
            return []  # offline with no catalog at all: no list to judge names against
        names = close_names(accelerator.name, known | {v[0] for v in common.values()})
        unknown.append(
            (
                index,
                SpecError(
                    f"'{accelerator.name}' is not an accelerator that any catalog knows"
                    + (f"; close names: {', '.join(names)}." if names else "."),
                    f"Did you mean '{names[0]}'? `styx show-gpus` lists the accelerators."
                    if names
                    else "Run `styx show-gpus` to list the accelerators.",
                    code="unknown-accelerator",
                    details={"accelerator": accelerator.name, "close_names": names},
                ),
            )
        )
    if unknown and len(unknown) == len(specs):
        raise unknown[0][1]
    return unknown


def _counts(values: set[float]) -> str:
    return ",".join(str(num(v)) for v in sorted(values))


def _shape_reason(catalog: CloudCatalog, r: Resources) -> str | None:
    """Why no shape of the catalog fits, ignoring location and price (None: some fit)."""
    cloud, accelerator = catalog.cloud, r.accelerator
    if accelerator is not None:
        pool = catalog.shapes_for(accelerator.name)
        if not pool:
            return f"{cloud} does not sell {accelerator.name}"
        count = feasible.device_count(accelerator.count)
        counts = {s.accelerator_count for s in pool}
        if count not in counts:
            return f"{accelerator.name} comes in counts {_counts(counts)} on {cloud}"
        pool = [s for s in pool if s.accelerator_count == count]
    elif r.instance_type is not None:
        if r.instance_type not in catalog.by_type:
            return f"{cloud} has no instance type {r.instance_type}"
        return None
    else:
        pool = catalog.shapes_for(None)
    if feasible.candidate_shapes(catalog, r):
        return None
    cpus, memory = feasible.effective_specs(r)
    wanted = " and ".join(
        f"{label} {spec.to_yaml()}" for label, spec in (("cpus", cpus), ("memory", memory)) if spec
    )
    what = f"{accelerator} node" if accelerator else "CPU-only instance type"
    if r.instance_type:
        return f"{cloud}'s {r.instance_type} does not have {describe(r)}"
    largest = max(pool, key=lambda s: (s.vcpus, s.memory_gb), default=None)
    extra = (
        f" (largest: {num(largest.vcpus)} vCPUs, {num(largest.memory_gb)} GB)" if largest else ""
    )
    return f"no {what} on {cloud} has {wanted or 'that size'}{extra}"


def _place_reason(catalog: CloudCatalog, r: Resources, blocks: Sequence[Block]) -> str:
    """Why the fitting shapes have no usable place: spot, location, blocks or the price cap."""
    cloud = catalog.cloud
    what = describe(dataclasses.replace(r, use_spot=None))
    if r.region is not None and r.region not in catalog.regions:
        near = close_names(r.region, catalog.regions, n=3)
        return f"{cloud} has no region '{r.region}'" + (
            f" (close: {', '.join(near)})" if near else ""
        )
    if r.zone is not None and not any(r.zone in zones for zones in catalog.regions.values()):
        return f"{cloud} has no zone '{r.zone}'"
    loose = dataclasses.replace(
        r, infra=Infra(cloud), image_id=None, max_hourly_cost=None, use_spot=False
    )
    if (
        r.use_spot
        and not feasible.cloud_candidates(
            catalog, dataclasses.replace(loose, use_spot=True), 1, ()
        )[0]
    ):
        return f"{cloud} sells {what} on demand only (no spot price anywhere)"
    loose = dataclasses.replace(loose, use_spot=r.use_spot)
    placed = dataclasses.replace(r, max_hourly_cost=None)
    if not feasible.cloud_candidates(catalog, placed, 1, ())[0]:
        spot = bool(r.use_spot)
        regions = sorted(
            {
                shape.offers.regions[i]
                for shape in feasible.candidate_shapes(catalog, loose)
                for i in shape.offers.order(spot)
            }
        )
        where = "/".join(p for p in (r.region, r.zone) if p) or "the regions of image_id"
        shown = ", ".join(regions[:8]) + (", ..." if len(regions) > 8 else "")
        return f"{what} on {cloud} is not sold in {where} (it is in {shown})"
    if not feasible.cloud_candidates(catalog, placed, 1, blocks)[0]:
        return f"every place that sells {what} on {cloud} is blocked ({len(blocks)} blocks)"
    cheapest = min(c.hourly_price for c in feasible.cloud_candidates(catalog, placed, 1, blocks)[0])
    return (
        f"the cheapest {what} on {cloud} costs ${cheapest:.4g}/h per node, "
        f"above max_hourly_cost ${r.max_hourly_cost:g}"
    )


def infeasible(
    specs: Sequence[Resources],
    catalogs: Sequence[CloudCatalog],
    offers: Sequence[InfraOffer],
    blocks_by_infra: dict[str, tuple[Block, ...]],
    num_nodes: int,
    task_name: str | None = None,
    misses: Mapping[str, Need] | None = None,
) -> ResourcesUnavailable:
    """A ResourcesUnavailable that lists, per candidate and infra, the constraint that failed
    (``misses``: the capability an infra lacks for the task, which rules it out first)."""
    misses = misses or {}
    enabled = [c.cloud for c in catalogs] + [o.label for o in offers]
    reasons: list[str] = []
    for r in specs[:6]:
        own: list[str] = []
        if r.cloud is not None and r.cloud not in {c.cloud for c in catalogs} | {
            o.kind for o in offers
        }:
            own.append(f"infra {r.cloud} is not enabled")
        for catalog in catalogs:
            if r.cloud is not None and r.cloud != catalog.cloud:
                continue
            if catalog.cloud in misses:
                own.append(f"{catalog.cloud} {misses[catalog.cloud].sentence()}")
                continue
            blocks = blocks_by_infra.get(catalog.cloud, ())
            own.append(_shape_reason(catalog, r) or _place_reason(catalog, r, blocks))
        for offer in offers:
            if offer.kind in misses and r.cloud in (None, offer.kind):
                own.append(f"{offer.label}: it {misses[offer.kind].sentence()}")
                continue
            why = feasible.offer_reason(offer, r, num_nodes)
            if why is None and r.cloud in (None, offer.kind):
                why = "it is blocked"
            if why is not None and r.cloud in (None, offer.kind):
                own.append(f"{offer.label}: {why}")
        if r.accelerator is not None:
            common = common_accelerators().get(r.accelerator.name.lower())
            if common and not any(c.canonical_accelerator(r.accelerator.name) for c in catalogs):
                own.append(
                    f"SkyPilot's accelerator list places {common[0]} on {', '.join(common[1])}"
                )
        label = describe(r) if len(specs) > 1 else ""
        reasons.append((f"[{label}] " if label else "") + "; ".join(own or ["no infra is enabled"]))
    subject = f"task '{task_name}'" if task_name else "the task"
    return ResourcesUnavailable(
        f"No enabled infra can run {subject}: " + " | ".join(reasons) + ".",
        "Relax the request (another count, region or spot setting), or enable more infra "
        "(`styx check`); enabled now: " + (", ".join(enabled) or "none") + ".",
        details={"reasons": reasons, "enabled": enabled},
    )
