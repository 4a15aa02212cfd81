"""Which shapes and places satisfy one concrete resources candidate.

Semantics (the tests' brute force restates them independently):

* ``cpus: 4`` means exactly 4 vCPUs, ``4+`` at least 4; ``memory: 16``/``16+`` likewise in GB;
  ``memory: 4x`` is 4 GB per vCPU (exactly, or at least with ``+``). On local/ssh capacity every
  number is a minimum to reserve.
* ``accelerators: A100:8`` needs exactly 8 A100s per node (names are case-insensitive; a
  fraction below 1 needs one device on a cloud). Without accelerators only shapes without
  accelerators are considered (never a GPU VM for a CPU task).
* With none of cpus, memory, accelerators and instance type, a cloud node gets at least
  8 vCPUs and 4 GB per vCPU, as SkyPilot's default.
* ``use_spot`` prices spot (offers without a spot price drop out); otherwise on-demand.
* ``infra`` cloud/region/zone filter; an ``image_id`` mapping restricts to its regions;
  ``max_hourly_cost`` caps the price of one node per hour (an unknown price never passes).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from styx.catalog.index import CloudCatalog, Shape
from styx.optimizer.types import Block, Candidate, InfraOffer, NodeCapacity
from styx.spec.frozen import FrozenDict
from styx.spec.quantities import CpuSpec, MemorySpec, num
from styx.spec.resources import Resources

DEFAULT_CPUS = CpuSpec(8, at_least=True)
DEFAULT_MEMORY = MemorySpec(per_cpu=4, at_least=True)
_EPS = 1e-6


def device_count(count: float) -> float:
    """Whole devices a cloud node needs for ``count`` (fractions share one device)."""
    return float(math.ceil(count)) if count < 1 else float(count)


def cpus_ok(spec: CpuSpec | None, vcpus: float) -> bool:
    """Whether a node with ``vcpus`` satisfies ``spec`` (unknown vCPUs always do)."""
    if spec is None or math.isnan(vcpus):
        return True
    return vcpus >= spec.count - _EPS if spec.at_least else abs(vcpus - spec.count) < _EPS


def memory_ok(spec: MemorySpec | None, memory_gb: float, vcpus: float) -> bool:
    """Whether a node with ``memory_gb`` (and ``vcpus``) satisfies ``spec``."""
    if spec is None or math.isnan(memory_gb):
        return True
    if spec.per_cpu is not None:
        if math.isnan(vcpus):
            return True
        need = spec.per_cpu * vcpus
    else:
        need = float(spec.gb or 0)
    tolerance = max(_EPS, need * 1e-4)
    return memory_gb >= need - tolerance if spec.at_least else abs(memory_gb - need) <= tolerance


def effective_specs(r: Resources) -> tuple[CpuSpec | None, MemorySpec | None]:
    """The cpus/memory constraints applied on clouds, with SkyPilot's default filled in."""
    if r.cpus is None and r.memory is None and not r.accelerators and not r.instance_type:
        return DEFAULT_CPUS, DEFAULT_MEMORY
    return r.cpus, r.memory


def shape_fits(shape: Shape, r: Resources, count: float | None) -> bool:
    """Whether one shape satisfies the candidate's instance type, accelerator count, cpus and
    memory (``count`` is the devices needed, None for no accelerator)."""
    if r.instance_type is not None and shape.instance_type != r.instance_type:
        return False
    if count is not None and abs(shape.accelerator_count - count) > _EPS:
        return False
    cpus, memory = effective_specs(r)
    if shape.host_default is not None and r.cpus is None and r.memory is None:
        cpus = CpuSpec(shape.host_default[0], at_least=True)
        memory = MemorySpec(shape.host_default[1], at_least=True)
    return cpus_ok(cpus, shape.vcpus) and memory_ok(memory, shape.memory_gb, shape.vcpus)


def candidate_shapes(catalog: CloudCatalog, r: Resources) -> list[Shape]:
    """Shapes of one cloud that satisfy everything but location and price."""
    accelerator = r.accelerator
    count = device_count(accelerator.count) if accelerator else None
    if accelerator is not None:
        pool = catalog.shapes_for(accelerator.name)
    elif r.instance_type is not None:
        shape = catalog.by_type.get(r.instance_type)
        pool = [shape] if shape is not None else []
    else:
        pool = catalog.shapes_for(None)
    return [s for s in pool if shape_fits(s, r, count)]


def allowed_regions(r: Resources) -> frozenset[str] | None:
    """Regions an ``image_id`` mapping allows (None: any)."""
    if isinstance(r.image_id, FrozenDict):
        return frozenset(r.image_id)
    return None


def best_offer(
    shape: Shape,
    r: Resources,
    spot: bool,
    blocks: Sequence[Block],
    regions: frozenset[str] | None,
) -> int | None:
    """Index of the shape's cheapest offer that passes location, blocks and price cap."""
    offers = shape.offers
    order = offers.order(spot)
    want_region, want_zone, cap = r.region, r.zone, r.max_hourly_cost
    if want_region is None and want_zone is None and regions is None and not blocks:
        if not order:
            return None
        i = order[0]  # the common case: no location filter, so the cheapest offer wins
        return i if cap is None or offers.price(i, spot) <= cap else None
    kind = shape.instance_type
    for i in order:
        region = offers.regions[i]
        if want_region is not None and region != want_region:
            continue
        zone = offers.zones[i]
        if want_zone is not None and zone != want_zone:
            continue
        if regions is not None and region not in regions:
            continue
        if blocks and any(b.matches(shape.cloud, region, zone, kind, spot) for b in blocks):
            continue
        if cap is not None and not offers.price(i, spot) <= cap:
            return None  # sorted by price: every later offer costs more (or is unknown)
        return i
    return None


def _price_then_names(found: tuple[float, Shape, int]) -> tuple[float, str, str, str]:
    price, shape, i = found  # the same tie-breaking as the optimizer's ranking
    return (price, shape.offers.regions[i], shape.offers.zones[i] or "", shape.instance_type)


def cloud_candidates(
    catalog: CloudCatalog,
    r: Resources,
    num_nodes: int,
    blocks: Sequence[Block],
    spec_index: int = 0,
    keep: int | None = None,
) -> tuple[list[Candidate], int]:
    """The cheapest allowed place of every fitting shape of one cloud, and how many shapes
    fit. With ``keep``, only the ``keep`` cheapest are returned (enough when the caller ranks
    this cloud's candidates by price alone), which saves building thousands of candidates."""
    if r.cloud is not None and r.cloud != catalog.cloud:
        return [], 0
    spot = bool(r.use_spot)
    regions = allowed_regions(r)
    found: list[tuple[float, Shape, int]] = []
    for shape in candidate_shapes(catalog, r):
        i = best_offer(shape, r, spot, blocks, regions)
        if i is not None:
            price = shape.offers.price(i, spot)
            found.append((math.inf if math.isnan(price) else price, shape, i))
    count = len(found)
    if keep is not None and count > keep:
        found = heapq.nsmallest(keep, found, key=_price_then_names)
    out: list[Candidate] = []
    for _, shape, i in found:
        offers = shape.offers
        out.append(
            Candidate(
                infra=catalog.cloud,
                region=offers.regions[i],
                zone=offers.zones[i],
                instance_type=shape.instance_type,
                use_spot=spot,
                hourly_price=offers.price(i, spot),
                num_nodes=num_nodes,
                cpus=None if math.isnan(shape.vcpus) else shape.vcpus,
                memory_gb=None if math.isnan(shape.memory_gb) else shape.memory_gb,
                accelerator=shape.accelerator,
                accelerator_count=shape.accelerator_count,
                spec=r,
                spec_index=spec_index,
            )
        )
    return out, count


# -- capacity the caller has (local, ssh pools, kubernetes contexts) -----------------------------


def _accelerator_fits(node: NodeCapacity, name: str, count: float) -> bool:
    lower = name.lower()
    return any(k.lower() == lower and v >= count - _EPS for k, v in node.accelerators.items())


def node_fits(node: NodeCapacity, r: Resources) -> bool:
    """Whether one machine can hold one node of the candidate (numbers are minimums)."""
    cpus = r.cpus.count if r.cpus is not None else 0.0
    if node.cpus < cpus - _EPS:
        return False
    if r.memory is not None:
        per_cpu_base = cpus or node.cpus
        need = r.memory.per_cpu * per_cpu_base if r.memory.per_cpu is not None else r.memory.gb
        if node.memory_gb < float(need or 0) - _EPS:
            return False
    accelerator = r.accelerator
    return accelerator is None or _accelerator_fits(node, accelerator.name, accelerator.count)


def offer_reason(offer: InfraOffer, r: Resources, num_nodes: int) -> str | None:
    """Why the offer cannot hold the candidate, or None when it can."""
    if r.cloud is not None and r.cloud != offer.kind:
        return f"infra is {r.cloud}"
    if r.region is not None and r.region != offer.region:
        return f"infra names {r.region}"
    if r.zone is not None:
        return "it has no zones"
    if r.use_spot:
        return "it has no spot capacity"
    if r.instance_type is not None:
        return "it has no instance types"
    fitting = sum(1 for node in offer.nodes if node_fits(node, r))
    if fitting < num_nodes:
        return _capacity_reason(offer, r, num_nodes, fitting)
    if r.max_hourly_cost is not None and offer.hourly_price > r.max_hourly_cost:
        return f"its price ${offer.hourly_price:g}/h is above max_hourly_cost"
    return None


def _words(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _has(node: NodeCapacity) -> str:
    """What one machine has, in words: ``2 vCPUs and 7.6 GB``."""
    parts = [f"{num(node.cpus)} vCPU{'s' if node.cpus != 1 else ''}"]
    parts.append(f"{num(round(node.memory_gb, 1))} GB")
    parts.extend(f"{name}:{num(count)}" for name, count in sorted(node.accelerators.items()))
    return _words(parts)


def _asks(r: Resources) -> str:
    """What one node of the task asks for on capacity the caller has (all minimums)."""
    parts = []
    if r.cpus is not None:
        parts.append(f"{num(r.cpus.count)} vCPU{'s' if r.cpus.count != 1 else ''}")
    if r.memory is not None:
        if r.memory.per_cpu is not None:
            parts.append(f"{num(r.memory.per_cpu)} GB per vCPU")
        else:
            parts.append(f"{num(r.memory.gb or 0)} GB")
    if r.accelerator is not None:
        parts.append(f"{r.accelerator.name}:{num(r.accelerator.count)}")
    return _words(parts) if parts else "no particular size"


def _capacity_reason(offer: InfraOffer, r: Resources, num_nodes: int, fitting: int) -> str:
    """Why too few of the offer's machines hold a node of the task, with the numbers: what
    the machines have and what the task asks for."""
    if len(offer.nodes) == 1 and fitting == 0:
        subject = "this machine" if offer.kind == "local" else "its one node"
        return f"{subject} has {_has(offer.nodes[0])}, but the task asks for {_asks(r)}"
    head = f"{fitting} of its {len(offer.nodes)} nodes fit one node of the task, {num_nodes} needed"
    if fitting == len(offer.nodes) or not offer.nodes:
        return head  # every machine fits: there are too few of them
    largest = max(offer.nodes, key=lambda n: (n.cpus, n.memory_gb, sum(n.accelerators.values())))
    return (
        f"{head} (its largest node has {_has(largest)}, but the task asks for {_asks(r)} per node)"
    )


def offer_candidate(
    offer: InfraOffer, r: Resources, num_nodes: int, blocks: Sequence[Block], spec_index: int = 0
) -> Candidate | None:
    """A candidate on capacity the caller has, when it fits and is not blocked."""
    if offer_reason(offer, r, num_nodes) is not None:
        return None
    if any(b.matches(offer.kind, offer.region, None, None, False) for b in blocks):
        return None
    accelerator = r.accelerator
    memory = None
    if r.memory is not None:
        memory = (
            r.memory.gb
            if r.memory.per_cpu is None
            else r.memory.per_cpu * (r.cpus.count if r.cpus else 1)
        )
    return Candidate(
        infra=offer.kind,
        region=offer.region,
        zone=None,
        instance_type=None,
        use_spot=False,
        hourly_price=offer.hourly_price,
        num_nodes=num_nodes,
        cpus=r.cpus.count if r.cpus is not None else None,
        memory_gb=None if memory is None else float(memory),
        accelerator=accelerator.name if accelerator else None,
        accelerator_count=float(accelerator.count) if accelerator else 0.0,
        spec=r,
        spec_index=spec_index,
    )
