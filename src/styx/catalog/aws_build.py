"""``styx catalog build aws``: an AWS ``vms.csv`` in SkyPilot's v8 schema, from the EC2 API.

* ``describe_instance_types``: vCPUs, memory, GPUs (or Inferentia/Trainium), architecture;
* ``describe_instance_type_offerings`` by availability-zone *id* (``use1-az1``), as v8 does;
* ``describe_spot_price_history``: the latest Linux spot price per type and zone;
* the Pricing API (``pricing`` in us-east-1) for on-demand Linux prices, where reachable.

When the Pricing API cannot be reached (no permission, no network, an emulator without it) the
on-demand price is left empty, which Styx reads as *unknown* (NaN): the optimizer still offers
those instance types, after every priced one, and says so. The report lists what was missing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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
PRICING_REGION = "us-east-1"


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


def accelerator_of(info: dict[str, Any]) -> tuple[str, float, str] | None:
    """(name, count, GpuInfo text) of an instance type's accelerators, in catalog spelling."""
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    if gpus:
        gpu = gpus[0]
        name = str(gpu.get("Name", "")).replace("NVIDIA ", "").replace(" ", "")
        mib = float((gpu.get("MemoryInfo") or {}).get("SizeInMiB") or 0)
        if name in ("A100", "V100") and mib >= (80 if name == "A100" else 32) * 1024:
            name = f"{name}-{80 if name == 'A100' else 32}GB"
        return name, float(gpu.get("Count") or 1), repr(info.get("GpuInfo"))
    for key, inner in (
        ("InferenceAcceleratorInfo", "Accelerators"),
        ("NeuronInfo", "NeuronDevices"),
    ):
        devices = (info.get(key) or {}).get(inner) or []
        if devices:
            device = devices[0]
            return (
                str(device.get("Name", key)),
                float(device.get("Count") or 1),
                repr(info.get(key)),
            )
    return None


def _paginate(client: Any, method: str, key: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
    for page in client.get_paginator(method).paginate(**kwargs):
        yield from page.get(key, [])


def _spot_prices(ec2: Any, zone_ids: dict[str, str]) -> dict[tuple[str, str], float]:
    """Latest Linux spot price per (instance type, zone id)."""
    latest: dict[tuple[str, str], tuple[datetime.datetime, float]] = {}
    now = datetime.datetime.now(datetime.UTC)
    for item in _paginate(
        ec2, "describe_spot_price_history", "SpotPriceHistory",
        ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"], StartTime=now,
    ):  # fmt: skip
        zone = zone_ids.get(item.get("AvailabilityZone", ""))
        if zone is None:
            continue
        key = (item["InstanceType"], zone)
        stamp = item.get("Timestamp") or now
        if key not in latest or stamp > latest[key][0]:
            latest[key] = (stamp, float(item["SpotPrice"]))
    return {k: v[1] for k, v in latest.items()}


def _on_demand_prices(session: Any, region: str) -> dict[str, float]:
    """Linux, shared-tenancy on-demand USD prices per instance type in ``region``."""
    client = session.client("pricing", region_name=PRICING_REGION)
    filters = [
        {"Type": "TERM_MATCH", "Field": field, "Value": value}
        for field, value in (
            ("regionCode", region),
            ("operatingSystem", "Linux"),
            ("tenancy", "Shared"),
            ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
        )
    ]
    prices: dict[str, float] = {}
    for text in _paginate(
        client, "get_products", "PriceList", ServiceCode="AmazonEC2", Filters=filters
    ):
        product = json.loads(text) if isinstance(text, str) else text
        kind = product.get("product", {}).get("attributes", {}).get("instanceType")
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = float(dim.get("pricePerUnit", {}).get("USD", "nan"))
                if kind and usd > 0:
                    prices[kind] = usd
    return prices


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:g}"


def build_aws(
    regions: Sequence[str] | None = None,
    *,
    out: Path | None = None,
    session: Any = None,
    pricing: bool = True,
    spot: bool = True,
) -> BuildReport:
    """Query EC2 and write ``vms.csv`` (by default into the catalog cache, marked as built so
    it is never replaced by a download). Raises AuthFailed when AWS refuses the credentials."""
    import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from botocore.exceptions import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        BotoCoreError,
        ClientError,
    )

    from styx.catalog import loader, source
    from styx.errors import AuthFailed

    session = session or boto3.Session()
    path = out or source.cache_dir() / "aws" / "vms.csv"
    report = BuildReport(path)
    try:
        if not regions:
            ec2 = session.client("ec2", region_name=session.region_name or PRICING_REGION)
            regions = sorted(r["RegionName"] for r in ec2.describe_regions()["Regions"])
        rows = [
            row
            for region in regions
            for row in _region_rows(session, region, report, pricing, spot)
        ]
    except ClientError as err:
        raise AuthFailed(
            f"AWS refused the catalog queries: {err}",
            "Check the credentials with `styx check` and that they may call ec2:Describe*.",
        ) from err
    except BotoCoreError as err:
        raise AuthFailed(
            f"Could not query AWS: {err}", "Check the credentials and the network."
        ) from err
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
    session: Any, region: str, report: BuildReport, pricing: bool, spot: bool
) -> list[list[str]]:
    from botocore.exceptions import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        BotoCoreError,
        ClientError,
    )

    ec2 = session.client("ec2", region_name=region)
    infos = {
        t["InstanceType"]: t for t in _paginate(ec2, "describe_instance_types", "InstanceTypes")
    }
    zones = {
        z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]
    }
    offerings = sorted(
        (o["InstanceType"], o["Location"])
        for o in _paginate(
            ec2,
            "describe_instance_type_offerings",
            "InstanceTypeOfferings",
            LocationType="availability-zone-id",
        )
    )
    prices: dict[str, float] = {}
    if pricing:
        try:
            prices = _on_demand_prices(session, region)
        except (ClientError, BotoCoreError) as err:
            report.warnings.append(
                f"{region}: the Pricing API is not reachable ({err}); on-demand prices are unknown (NaN)."
            )
    else:
        report.warnings.append(f"{region}: pricing skipped; on-demand prices are unknown (NaN).")
    spots: dict[tuple[str, str], float] = {}
    if spot:
        try:
            spots = _spot_prices(ec2, zones)
        except (ClientError, BotoCoreError) as err:
            report.warnings.append(f"{region}: no spot price history ({err}).")
    rows: list[list[str]] = []
    for kind, zone in offerings:
        info = infos.get(kind)
        if info is None:
            continue
        acc = accelerator_of(info)
        arch = info.get("ProcessorInfo", {}).get("SupportedArchitectures", ["x86_64"])
        price, spot_price = prices.get(kind, math.nan), spots.get((kind, zone), math.nan)
        report.priced_rows += not math.isnan(price)
        report.spot_rows += not math.isnan(spot_price)
        rows.append([
            kind, acc[0] if acc else "", f"{acc[1]:g}" if acc else "",
            f"{info['VCpuInfo']['DefaultVCpus']:g}", f"{info['MemoryInfo']['SizeInMiB'] / 1024:g}",
            acc[2] if acc else "", _fmt(price), _fmt(spot_price), region, zone,
            "arm64" if "arm64" in arch else "x86_64",
        ])  # fmt: skip
    report.regions.append(region)
    report.instance_types += len({kind for kind, _ in offerings})
    return rows
