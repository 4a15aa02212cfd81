"""What EC2 offers, for ``styx catalog build aws``: the boto3 side of the catalog builder.

:class:`Inventory` implements :class:`styx.catalog.aws_build.Ec2Inventory`, the small interface
the builder writes ``vms.csv`` from, so that :mod:`styx.catalog` makes no SDK call:

* ``describe_regions``, ``describe_instance_types`` (vCPUs, memory, GPUs or Inferentia/Trainium,
  architecture) and ``describe_instance_type_offerings`` by availability-zone *id*
  (``use1-az1``), as SkyPilot's v8 catalog has them;
* ``describe_spot_price_history``: the latest Linux spot price per type and zone;
* the Pricing API (``pricing`` in us-east-1) for on-demand Linux prices.

Every botocore error is translated at this boundary by :mod:`styx.providers.aws.errors` (the
one AWS error mapping): refused credentials become ``AuthFailed``, throttling and unreachable
endpoints a retryable ``RemoteError``, and so on. boto3 is imported inside the methods.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from styx.catalog.aws_build import InstanceTypeInfo
from styx.providers.aws import client as aws_client
from styx.providers.aws.errors import translated

#: The Pricing API answers only in a few regions; us-east-1 has every region's prices.
PRICING_REGION = "us-east-1"


def accelerator_of(info: dict[str, Any]) -> tuple[str, float, str] | None:
    """(name, count, GpuInfo text) of an instance type's accelerators, in catalog spelling,
    from an EC2 ``InstanceTypeInfo``; None for a type without accelerators."""
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


def instance_type_info(info: dict[str, Any]) -> InstanceTypeInfo:
    """The catalog's view of an EC2 ``InstanceTypeInfo``."""
    acc = accelerator_of(info)
    arch = info.get("ProcessorInfo", {}).get("SupportedArchitectures", ["x86_64"])
    return InstanceTypeInfo(
        name=str(info["InstanceType"]),
        vcpus=float(info["VCpuInfo"]["DefaultVCpus"]),
        memory_gib=float(info["MemoryInfo"]["SizeInMiB"]) / 1024,
        arch="arm64" if "arm64" in arch else "x86_64",
        accelerator=acc[0] if acc else None,
        accelerator_count=acc[1] if acc else None,
        accelerator_info=acc[2] if acc else "",
    )


def _paginate(client: Any, method: str, key: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
    for page in client.get_paginator(method).paginate(**kwargs):
        yield from page.get(key, [])


class Inventory:
    """EC2's regions, instance types, offerings and prices, through ``session`` (a
    ``boto3.Session``; the default credential chain when None). Each method raises the
    translated :class:`~styx.errors.StyxError` of a failed AWS call."""

    def __init__(self, session: Any = None) -> None:
        self._session = session
        self._clients: dict[tuple[str, str], Any] = {}
        self._zones: dict[str, dict[str, str]] = {}

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = aws_client.new_client(service, region, self._session)
        return self._clients[key]

    def regions(self) -> list[str]:
        """Every region EC2 lists for the account, sorted."""
        region = getattr(self._session, "region_name", None) or aws_client.default_region()
        with translated(region, action="listing the regions"):
            listed = self._client("ec2", region).describe_regions()["Regions"]
        return sorted(str(r["RegionName"]) for r in listed)

    def instance_types(self, region: str) -> dict[str, InstanceTypeInfo]:
        """The instance types of ``region`` by name."""
        with translated(region, action="describing the instance types"):
            infos = list(
                _paginate(self._client("ec2", region), "describe_instance_types", "InstanceTypes")
            )
        return {str(i["InstanceType"]): instance_type_info(i) for i in infos}

    def offerings(self, region: str) -> list[tuple[str, str]]:
        """(instance type, zone id) of every offering in ``region``, sorted."""
        with translated(region, action="listing the instance type offerings"):
            found = [
                (str(o["InstanceType"]), str(o["Location"]))
                for o in _paginate(
                    self._client("ec2", region),
                    "describe_instance_type_offerings",
                    "InstanceTypeOfferings",
                    LocationType="availability-zone-id",
                )
            ]
        return sorted(found)

    def _zone_ids(self, region: str) -> dict[str, str]:
        if region not in self._zones:
            with translated(region, action="listing the availability zones"):
                zones = self._client("ec2", region).describe_availability_zones()
            self._zones[region] = {
                str(z["ZoneName"]): str(z["ZoneId"]) for z in zones["AvailabilityZones"]
            }
        return self._zones[region]

    def spot_prices(self, region: str) -> dict[tuple[str, str], float]:
        """The latest Linux spot price (USD per hour) per (instance type, zone id)."""
        zone_ids = self._zone_ids(region)
        latest: dict[tuple[str, str], tuple[datetime.datetime, float]] = {}
        now = datetime.datetime.now(datetime.UTC)
        with translated(region, action="reading the spot price history"):
            history = list(
                _paginate(
                    self._client("ec2", region),
                    "describe_spot_price_history",
                    "SpotPriceHistory",
                    ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
                    StartTime=now,
                )
            )
        for item in history:
            zone = zone_ids.get(item.get("AvailabilityZone", ""))
            if zone is None:
                continue
            key = (str(item["InstanceType"]), zone)
            stamp = item.get("Timestamp") or now
            if key not in latest or stamp > latest[key][0]:
                latest[key] = (stamp, float(item["SpotPrice"]))
        return {k: v[1] for k, v in latest.items()}

    def on_demand_prices(self, region: str) -> dict[str, float]:
        """Linux, shared-tenancy on-demand USD prices per hour by instance type in ``region``
        (from the Pricing API in :data:`PRICING_REGION`)."""
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
        with translated(PRICING_REGION, action=f"reading the on-demand prices of {region}"):
            products = list(
                _paginate(
                    self._client("pricing", PRICING_REGION),
                    "get_products",
                    "PriceList",
                    ServiceCode="AmazonEC2",
                    Filters=filters,
                )
            )
        prices: dict[str, float] = {}
        for text in products:
            product = json.loads(text) if isinstance(text, str) else text
            kind = product.get("product", {}).get("attributes", {}).get("instanceType")
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dim in term.get("priceDimensions", {}).values():
                    usd = float(dim.get("pricePerUnit", {}).get("USD", "nan"))
                    if kind and usd > 0:
                        prices[kind] = usd
        return prices
