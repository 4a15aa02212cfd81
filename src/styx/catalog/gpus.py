"""What ``styx show-gpus`` lists: accelerators, their counts, and where they cost what."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

from styx.catalog.gcp_hosts import is_tpu
from styx.catalog.index import CloudCatalog, Shape


@dataclasses.dataclass(frozen=True, slots=True)
class AcceleratorSummary:
    """One accelerator: the counts per node it comes in, and the clouds that sell it."""

    name: str
    counts: tuple[float, ...]
    clouds: tuple[str, ...]

    @property
    def is_tpu(self) -> bool:
        return is_tpu(self.name)


@dataclasses.dataclass(frozen=True, slots=True)
class AcceleratorOffer:
    """One row of the detailed listing: a shape's cheapest price (in a region, or overall)."""

    accelerator: str
    count: float
    cloud: str
    instance_type: str
    device_memory_gb: float | None
    vcpus: float
    memory_gb: float
    price: float  # on-demand $/h, NaN when unknown or not sold on demand there
    spot_price: float  # NaN when not sold on spot
    region: str


def summaries(
    catalogs: Iterable[CloudCatalog], region: str | None = None
) -> list[AcceleratorSummary]:
    """Every accelerator of the catalogs (sold in ``region`` when given), by name."""
    counts: dict[str, set[float]] = {}
    clouds: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for catalog in catalogs:
        for key, name in catalog.accelerator_names.items():
            for shape in catalog.shapes_for(name):
                if region is not None and region not in shape.offers.regions:
                    continue
                names.setdefault(key, name)
                counts.setdefault(key, set()).add(shape.accelerator_count)
                clouds.setdefault(key, set()).add(catalog.cloud)
    return [
        AcceleratorSummary(names[k], tuple(sorted(counts[k])), tuple(sorted(clouds[k])))
        for k in sorted(names, key=lambda k: (is_tpu(k), k))
    ]


def _cheapest(shape: Shape, spot: bool, region: str | None) -> tuple[float, str | None]:
    offers = shape.offers
    for i in offers.order(spot):
        if region is None or offers.regions[i] == region:
            return offers.price(i, spot), offers.regions[i]
    return math.nan, None


def offers_for(
    catalogs: Sequence[CloudCatalog],
    accelerator: str,
    *,
    count: float | None = None,
    region: str | None = None,
    all_regions: bool = False,
) -> list[AcceleratorOffer]:
    """Per shape selling ``accelerator`` (``count`` per node when given): its cheapest region,
    or one row per region with ``all_regions``; sorted by count, then price."""
    rows: list[AcceleratorOffer] = []
    for catalog in catalogs:
        for shape in catalog.shapes_for(accelerator):
            if count is not None and shape.accelerator_count != count:
                continue
            wanted = sorted(set(shape.offers.regions)) if all_regions else [region]
            for where in wanted:
                if all_regions and region is not None and where != region:
                    continue
                price, at = _cheapest(shape, False, where)
                spot, spot_at = _cheapest(shape, True, where)
                place = at or spot_at
                if place is None:
                    continue
                rows.append(
                    AcceleratorOffer(
                        shape.accelerator or accelerator,
                        shape.accelerator_count,
                        catalog.cloud,
                        shape.instance_type,
                        shape.device_memory_gb,
                        shape.vcpus,
                        shape.memory_gb,
                        price,
                        spot,
                        place,
                    )
                )
    rows.sort(
        key=lambda r: (
            r.accelerator.lower(),
            r.count,
            math.isnan(r.price),
            0.0 if math.isnan(r.price) else r.price,
            r.cloud,
            r.region,
            r.instance_type,
        )
    )
    return rows
