"""``styx catalog build aws``: an AWS ``vms.csv`` in SkyPilot's v8 schema, from what EC2 offers.

The builder makes no SDK call: it asks an :class:`Ec2Inventory` (the AWS provider's
:class:`styx.providers.aws.inventory.Inventory`, passed in by the CLI) for the regions, the
instance types and their offerings by availability-zone *id* (``use1-az1``, as v8 has them),
the latest spot prices and the on-demand prices.

When the on-demand prices cannot be had (no permission for the Pricing API, no network, an
emulator without it) the price is left empty, which Styx reads as *unknown* (NaN): the
optimizer still offers those instance types, after every priced one, and says so. The report
lists what was missing. The same holds for spot prices.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from styx.errors import StyxError
from styx.paths import atomic_write

HEADER = (
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "GpuInfo",
    "Price",
    "SpotPrice",
    "Region",
    "AvailabilityZone",
    "Arch",
)


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceTypeInfo:
    """One EC2 instance type as the catalog lists it; accelerators in catalog spelling
    (``A100-80GB``, ``Inferentia``), ``accelerator_info`` the text of the GpuInfo column."""

    name: str
    vcpus: float
    memory_gib: float
    arch: str  # "x86_64" or "arm64"
    accelerator: str | None = None
    accelerator_count: float | None = None
    accelerator_info: str = ""


class Ec2Inventory(Protocol):
    """What a build asks of EC2. Every method raises a :class:`~styx.errors.StyxError`
    (``AuthFailed``, ``RemoteError`` ...) when AWS cannot answer."""

    def regions(self) -> list[str]:
        """Every region of the account."""
        ...

    def instance_types(self, region: str) -> dict[str, InstanceTypeInfo]:
        """The region's instance types by name."""
        ...

    def offerings(self, region: str) -> list[tuple[str, str]]:
        """(instance type, availability-zone id) of each offering in the region."""
        ...

    def spot_prices(self, region: str) -> dict[tuple[str, str], float]:
        """The latest Linux spot price per (instance type, zone id), USD per hour."""
        ...

    def on_demand_prices(self, region: str) -> dict[str, float]:
        """Linux on-demand prices per instance type in the region, USD per hour."""
        ...


@dataclasses.dataclass
class BuildReport:
    """What a build wrote and what it could not learn."""

    path: Path
    rows: int = 0
    regions: list[str] = dataclasses.field(default_factory=list)
    instance_types: int = 0
    priced_rows: int = 0
    spot_rows: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:g}"


def build_aws(
    inventory: Ec2Inventory,
    regions: Sequence[str] | None = None,
    *,
    out: Path | None = None,
    pricing: bool = True,
    spot: bool = True,
) -> BuildReport:
    """Write ``vms.csv`` from ``inventory`` for ``regions`` (default: every region), by
    default into the catalog cache, marked as built so that a download never replaces it.

    A failed query of regions, instance types or offerings raises its StyxError (AuthFailed
    when AWS refuses the credentials) and writes nothing; missing prices are warnings.
    """
    from styx.catalog import loader, source

    path = out or source.cache_dir() / "aws" / "vms.csv"
    report = BuildReport(path)
    names = list(regions) if regions else inventory.regions()
    rows = [
        row for region in names for row in _region_rows(inventory, region, report, pricing, spot)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(HEADER)
    writer.writerows(rows)
    atomic_write(path, text.getvalue())
    if out is None:
        source.mark_built("aws", f"styx catalog build aws ({', '.join(report.regions)})")
    loader.clear_cache()
    report.rows = len(rows)
    return report


def _region_rows(
    inventory: Ec2Inventory, region: str, report: BuildReport, pricing: bool, spot: bool
) -> list[list[str]]:
    infos = inventory.instance_types(region)
    offerings = inventory.offerings(region)
    prices: dict[str, float] = {}
    if pricing:
        try:
            prices = inventory.on_demand_prices(region)
        except StyxError as err:
            report.warnings.append(
                f"{region}: the Pricing API is not reachable ({err.message}); on-demand prices are unknown (NaN)."
            )
    else:
        report.warnings.append(f"{region}: pricing skipped; on-demand prices are unknown (NaN).")
    spots: dict[tuple[str, str], float] = {}
    if spot:
        try:
            spots = inventory.spot_prices(region)
        except StyxError as err:
            report.warnings.append(f"{region}: no spot price history ({err.message}).")
    rows: list[list[str]] = []
    for kind, zone in offerings:
        info = infos.get(kind)
        if info is None:
            continue
        price, spot_price = prices.get(kind, math.nan), spots.get((kind, zone), math.nan)
        report.priced_rows += not math.isnan(price)
        report.spot_rows += not math.isnan(spot_price)
        count = f"{info.accelerator_count:g}" if info.accelerator_count is not None else ""
        rows.append([
            kind, info.accelerator or "", count,
            f"{info.vcpus:g}", f"{info.memory_gib:g}",
            info.accelerator_info, _fmt(price), _fmt(spot_price), region, zone, info.arch,
        ])  # fmt: skip
    report.regions.append(region)
    report.instance_types += len({kind for kind, _ in offerings})
    return rows
