"""The in-memory index of one cloud's catalog: shapes (what a node is) and their offers
(where it is sold, at what price).

The structure was chosen by measurement (``bench/bench_optimizer_index.py``): rows are grouped
by instance type while the CSV is read, and each group keeps its offers as parallel columns
(plain lists). A query first filters the few hundred to few thousand *shapes* by accelerator,
vCPUs and memory, then walks each surviving shape's offers in price order, which is sorted once
on first use and cached. This answers a warm query in about a millisecond without numpy, and
loading the 88,000 rows of GCP, Azure and Lambda takes about 0.3 s, so nothing heavier is
imported.

Price semantics: an empty or NaN on-demand price means *unknown* (a catalog built without the
Pricing API): the offer exists and sorts after every known price. An empty, NaN or zero spot
price means the shape is not sold on spot there (Lambda has no spot; Vast writes 0.00).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from styx.catalog import gcp_hosts

NAN = math.nan
_DEVICE_MIB = re.compile(r"'SizeInMiB':\s*([0-9.]+)")


class Offers:
    """Where one shape is sold: parallel columns, one entry per (region, zone)."""

    __slots__ = ("_order", "prices", "regions", "spot_prices", "zones")

    def __init__(self) -> None:
        self.regions: list[str] = []
        self.zones: list[str | None] = []
        self.prices: list[float] = []
        self.spot_prices: list[float] = []
        self._order: dict[bool, list[int]] = {}

    def __len__(self) -> int:
        return len(self.regions)

    def add(self, region: str, zone: str | None, price: float, spot: float) -> None:
        """Append one offer; prices are NaN when unknown (on-demand) or not sold (spot)."""
        self.regions.append(region)
        self.zones.append(zone)
        self.prices.append(price)
        self.spot_prices.append(spot if spot > 0 else NAN)
        self._order.clear()

    def price(self, i: int, spot: bool) -> float:
        """The hourly price of offer ``i`` (NaN: unknown on-demand price)."""
        return self.spot_prices[i] if spot else self.prices[i]

    def order(self, spot: bool) -> list[int]:
        """Offer indices, cheapest first (ties by region, then zone). Spot order leaves out
        offers not sold on spot; on-demand order puts unknown prices last."""
        cached = self._order.get(spot)
        if cached is None:
            column = self.spot_prices if spot else self.prices
            idx = [i for i, p in enumerate(column) if not (spot and math.isnan(p))]
            idx.sort(
                key=lambda i: (
                    math.isnan(column[i]),
                    0.0 if math.isnan(column[i]) else column[i],
                    self.regions[i],
                    self.zones[i] or "",
                )
            )
            cached = self._order[spot] = idx
        return cached


class Shape:
    """One kind of node a cloud sells: an instance type with its vCPUs, memory and
    accelerators, and its offers. On GCP, a host VM joined with attached accelerators is one
    shape too (priced as the sum, zone by zone); a TPU VM is a shape named ``TPU-VM``.

    ``vcpus``/``memory_gb`` are NaN when unknown (TPU VMs). ``host_default`` is the minimum
    (vCPUs, memory GB) of a GCP host chosen when the request names neither cpus nor memory.
    """

    __slots__ = (
        "accelerator", "accelerator_count", "arch", "cloud", "device_memory_gb",
        "host_default", "instance_type", "memory_gb", "offers", "vcpus",
    )  # fmt: skip

    def __init__(
        self,
        cloud: str,
        instance_type: str,
        vcpus: float,
        memory_gb: float,
        accelerator: str | None = None,
        accelerator_count: float = 0.0,
        device_memory_gb: float | None = None,
        arch: str | None = None,
        host_default: tuple[float, float] | None = None,
    ) -> None:
        self.cloud = cloud
        self.instance_type = instance_type
        self.vcpus = vcpus
        self.memory_gb = memory_gb
        self.accelerator = accelerator
        self.accelerator_count = accelerator_count
        self.device_memory_gb = device_memory_gb
        self.arch = arch
        self.host_default = host_default
        self.offers = Offers()

    def __repr__(self) -> str:
        acc = f", {self.accelerator}:{self.accelerator_count:g}" if self.accelerator else ""
        return f"Shape({self.cloud}, {self.instance_type}{acc})"


class CloudCatalog:
    """One cloud's shapes, indexed by accelerator (lower-cased) and by instance type."""

    def __init__(self, cloud: str, shapes: Iterable[Shape]) -> None:
        self.cloud = cloud
        self.by_type: dict[str, Shape] = {}
        self._by_accelerator: dict[str, list[Shape]] = {}
        self.cpu_shapes: list[Shape] = []  # shapes without accelerators, for CPU-only tasks
        self.accelerator_names: dict[str, str] = {}  # lower-case -> catalog spelling
        self.regions: dict[str, set[str]] = {}  # region -> zones
        self._gcp: gcp_hosts.Attachables | None = None
        for shape in shapes:
            self._add(shape)

    def _add(self, shape: Shape) -> None:
        self.by_type.setdefault(shape.instance_type, shape)
        if shape.accelerator:
            key = shape.accelerator.lower()
            self.accelerator_names.setdefault(key, shape.accelerator)
            self._by_accelerator.setdefault(key, []).append(shape)
        else:
            self.cpu_shapes.append(shape)
        offers = shape.offers
        for region, zone in zip(offers.regions, offers.zones, strict=True):
            zones = self.regions.setdefault(region, set())
            if zone:
                zones.add(zone)

    def with_attachables(self, attachables: gcp_hosts.Attachables) -> CloudCatalog:
        """Register GCP's separately priced accelerators (joined with hosts lazily)."""
        self._gcp = attachables
        self.cpu_shapes = [s for s in self.cpu_shapes if not gcp_hosts.is_gpu_host(s.instance_type)]
        for name in attachables.names():
            self.accelerator_names.setdefault(name.lower(), name)
        for offers in attachables.offers.values():
            for region, zone in zip(offers.regions, offers.zones, strict=True):
                self.regions.setdefault(region, set()).update([zone] if zone else [])
        return self

    def shapes_for(self, accelerator: str | None) -> list[Shape]:
        """Shapes with this accelerator (any count; case-insensitive), or the CPU-only shapes
        for None."""
        if accelerator is None:
            return self.cpu_shapes
        key = accelerator.lower()
        shapes = self._by_accelerator.get(key)
        if shapes is None and self._gcp is not None and key in self.accelerator_names:
            shapes = self._gcp.join(self.accelerator_names[key], self.by_type)
            self._by_accelerator[key] = shapes
        return shapes or []

    def all_shapes(self) -> Iterator[Shape]:
        """Every shape: CPU-only, with built-in accelerators, and (GCP) joined ones."""
        yield from self.cpu_shapes
        for key in sorted(self.accelerator_names):
            yield from self.shapes_for(key)

    def canonical_accelerator(self, name: str) -> str | None:
        """The catalog's spelling of an accelerator name, or None when not sold here."""
        return self.accelerator_names.get(name.lower())


# -- reading CSV ------------------------------------------------------------------------------


def _num(text: str) -> float:
    if not text:
        return NAN
    try:
        return float(text)
    except ValueError:
        return NAN


def _device_memory(gpu_info: str) -> float | None:
    match = _DEVICE_MIB.search(gpu_info) if gpu_info else None
    return float(match.group(1)) / 1024.0 if match else None


def read_vms(cloud: str, path: Path) -> CloudCatalog:
    """Read a v8 ``vms.csv`` (columns in any order; missing ones are empty) into an index."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        col = {name: i for i, name in enumerate(header)}

        def getter(*names: str) -> int:
            return next((col[n] for n in names if n in col), -1)

        i_type, i_cpu, i_mem = getter("InstanceType"), getter("vCPUs"), getter("MemoryGiB")
        i_acc, i_cnt = getter("AcceleratorName"), getter("AcceleratorCount")
        i_info, i_reg = getter("GpuInfo", "GPUInfo"), getter("Region")
        i_zone, i_price = getter("AvailabilityZone"), getter("Price")
        i_spot, i_arch = getter("SpotPrice"), getter("Arch")
        width = len(header)
        shapes: dict[str, Shape] = {}
        attachables = gcp_hosts.Attachables()
        for row in reader:
            if len(row) < width:
                row += [""] * (width - len(row))
            name = row[i_type]
            region = row[i_reg]
            zone = (row[i_zone] or None) if i_zone >= 0 else None
            price = _num(row[i_price])
            spot = _num(row[i_spot]) if i_spot >= 0 else NAN
            acc = row[i_acc] if i_acc >= 0 else ""
            if not name:  # GCP: an accelerator priced on its own, attached to a host VM
                if acc:
                    count = _num(row[i_cnt]) if i_cnt >= 0 else 1.0
                    info = row[i_info] if i_info >= 0 else ""
                    attachables.add(acc, count, _device_memory(info), region, zone, price, spot)
                continue
            shape = shapes.get(name)
            if shape is None:
                count = _num(row[i_cnt]) if acc and i_cnt >= 0 else 0.0
                shape = shapes[name] = Shape(
                    cloud,
                    name,
                    _num(row[i_cpu]) if i_cpu >= 0 else NAN,
                    _num(row[i_mem]) if i_mem >= 0 else NAN,
                    acc or None,
                    1.0 if acc and math.isnan(count) else count,
                    _device_memory(row[i_info]) if acc and i_info >= 0 else None,
                    (row[i_arch] or None) if i_arch >= 0 else None,
                )
            shape.offers.add(region, zone, price, spot)
    catalog = CloudCatalog(cloud, shapes.values())
    if len(attachables):
        catalog.with_attachables(attachables)
    return catalog
