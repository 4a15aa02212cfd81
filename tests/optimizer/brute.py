"""An independent brute force over the raw CSV rows, for checking the optimizer.

It reads the files with ``csv.DictReader``, expands every row into (cloud, instance type,
accelerator, count, vCPUs, memory, region, zone, price, spot price), adds GCP's host+accelerator
pairs zone by zone, and scans all of it for every request. It shares no code with
``styx.catalog`` or ``styx.optimizer``: the rules below restate the documented semantics.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from styx.spec.resources import Resources

# GCP's accelerator -> host rules, restated from https://cloud.google.com/compute/docs/gpus.
FIXED = {
    ("A100", 1): ["a2-highgpu-1g"], ("A100", 2): ["a2-highgpu-2g"], ("A100", 4): ["a2-highgpu-4g"],
    ("A100", 8): ["a2-highgpu-8g"], ("A100", 16): ["a2-megagpu-16g"],
    ("A100-80GB", 1): ["a2-ultragpu-1g"], ("A100-80GB", 2): ["a2-ultragpu-2g"],
    ("A100-80GB", 4): ["a2-ultragpu-4g"], ("A100-80GB", 8): ["a2-ultragpu-8g"],
    ("H100", 1): ["a3-highgpu-1g"], ("H100", 2): ["a3-highgpu-2g"], ("H100", 4): ["a3-highgpu-4g"],
    ("H100", 8): ["a3-highgpu-8g"], ("H100-MEGA", 8): ["a3-megagpu-8g"],
    ("H200", 8): ["a3-ultragpu-8g"], ("B200", 8): ["a4-highgpu-8g"],
    ("L4", 1): ["g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32"],
    ("L4", 2): ["g2-standard-24"], ("L4", 4): ["g2-standard-48"], ("L4", 8): ["g2-standard-96"],
}  # fmt: skip
FIXED_NAMES = {name for name, _ in FIXED}
N1_DEFAULT_CPUS = {"T4": {1: 4, 2: 8, 4: 48}, "V100": {1: 8, 2: 16, 4: 32, 8: 64},
                   "P100": {1: 8, 2: 16, 4: 32, 8: 64}, "*": {1: 8, 2: 16, 4: 32, 8: 64}}  # fmt: skip
N1_MAX = {"V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
          "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
          "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
          "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)}}  # fmt: skip


@dataclass(frozen=True)
class Row:
    cloud: str
    instance_type: str
    acc: str | None
    count: float
    vcpus: float
    memory: float
    region: str
    zone: str | None
    price: float
    spot: float
    host_min: tuple[float, float] | None = None  # GCP N1 host default when no cpus/memory


def _f(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def load(root: Path, clouds: list[str]) -> list[Row]:
    rows: list[Row] = []
    for cloud in clouds:
        with (root / cloud / "vms.csv").open(newline="") as f:
            raw = list(csv.DictReader(f))
        hosts: dict[tuple[str, str], dict[str, str]] = {}
        accs = []
        for r in raw:
            spot = _f(r.get("SpotPrice"))
            spot = spot if spot > 0 else math.nan
            if not r["InstanceType"]:
                accs.append(r)
                continue
            acc = r.get("AcceleratorName") or None
            rows.append(Row(cloud, r["InstanceType"], acc, _f(r.get("AcceleratorCount")) if acc else 0.0,
                            _f(r["vCPUs"]), _f(r["MemoryGiB"]), r["Region"],
                            r.get("AvailabilityZone") or None, _f(r["Price"]), spot))  # fmt: skip
            if cloud == "gcp":
                hosts[(r["InstanceType"], r["AvailabilityZone"])] = r
        types = {(t, float(h["vCPUs"]), float(h["MemoryGiB"])) for (t, _), h in hosts.items()}
        for a in accs:
            name, count, zone = (
                a["AcceleratorName"],
                float(a["AcceleratorCount"]),
                a["AvailabilityZone"],
            )
            aspot = _f(a.get("SpotPrice"))
            aspot = aspot if aspot > 0 else math.nan
            if name.startswith("tpu-"):
                rows.append(Row(cloud, "TPU-VM", name, count, math.nan, math.nan, a["Region"], zone,
                                _f(a["Price"]), aspot))  # fmt: skip
                continue
            if name in FIXED_NAMES:
                allowed = FIXED.get((name, count), [])
                host_min = None
            else:
                cap = N1_MAX.get(name, {}).get(count, (math.inf, math.inf))
                allowed = [t for t, c, m in types if t.startswith(("n1-standard-", "n1-highmem-", "n1-highcpu-"))
                           and c <= cap[0] and m <= cap[1]]  # fmt: skip
                d = N1_DEFAULT_CPUS.get(name, N1_DEFAULT_CPUS["*"]).get(count)
                host_min = None if d is None else (d, 4.0 * d)
            for t in allowed:
                h = hosts.get((t, zone))
                if h is None:
                    continue
                hspot = _f(h.get("SpotPrice"))
                hspot = hspot if hspot > 0 else math.nan
                rows.append(Row(cloud, t, name, count, float(h["vCPUs"]), float(h["MemoryGiB"]), a["Region"],
                                zone, _f(h["Price"]) + _f(a["Price"]), hspot + aspot, host_min))  # fmt: skip
    return rows


def _gpu_only(t: str) -> bool:
    return t.startswith(("a2-", "a3-", "a4-", "g2-")) or t.endswith("-tpu") or t == "TPU-VM"


def row_fits(row: Row, r: Resources, blocked: set[tuple[str, ...]]) -> bool:
    acc = r.accelerator
    if r.cloud is not None and r.cloud != row.cloud:
        return False
    if r.region is not None and r.region != row.region:
        return False
    if r.zone is not None and r.zone != row.zone:
        return False
    if isinstance(r.image_id, Mapping) and row.region not in r.image_id:
        return False  # an image per region: only those regions
    if r.instance_type is not None and r.instance_type != row.instance_type:
        return False
    if acc is not None:
        if row.acc is None or row.acc.lower() != acc.name.lower():
            return False
        if row.count != (1.0 if acc.count < 1 else float(acc.count)):
            return False
    elif r.instance_type is None and (
        row.acc is not None or (row.cloud == "gcp" and _gpu_only(row.instance_type))
    ):
        return False
    cpus, memory = r.cpus, r.memory
    need_cpu, cpu_plus, need_mem, mem_plus, per_cpu = None, False, None, False, None
    if cpus is None and memory is None and acc is None and r.instance_type is None:
        need_cpu, cpu_plus, per_cpu, mem_plus = 8.0, True, 4.0, True
    elif cpus is None and memory is None and row.host_min is not None:
        need_cpu, cpu_plus, need_mem, mem_plus = row.host_min[0], True, row.host_min[1], True
    else:
        if cpus is not None:
            need_cpu, cpu_plus = float(cpus.count), cpus.at_least
        if memory is not None:
            mem_plus = memory.at_least
            if memory.per_cpu is not None:
                per_cpu = float(memory.per_cpu)
            else:
                need_mem = float(memory.gb or 0)
    if (
        need_cpu is not None
        and not math.isnan(row.vcpus)
        and ((row.vcpus < need_cpu - 1e-6) if cpu_plus else abs(row.vcpus - need_cpu) > 1e-6)
    ):
        return False
    if per_cpu is not None and not math.isnan(row.vcpus):
        need_mem = per_cpu * row.vcpus
    if need_mem is not None and not math.isnan(row.memory):
        tol = max(1e-6, need_mem * 1e-4)
        if (row.memory < need_mem - tol) if mem_plus else abs(row.memory - need_mem) > tol:
            return False
    price = row.spot if r.use_spot else row.price
    if r.use_spot and math.isnan(price):
        return False
    if r.max_hourly_cost is not None and not price <= r.max_hourly_cost:
        return False
    spot = bool(r.use_spot)
    for key in ((row.cloud,), (row.cloud, row.region), (row.cloud, row.region, row.zone or ""),
                (row.cloud, row.region, row.zone or "", row.instance_type, str(spot))):  # fmt: skip
        if key in blocked:
            return False
    return True


def best(
    rows: list[Row], candidates: list[Resources], ordered: bool, nodes: int = 1,
    blocked: set[tuple[str, ...]] | None = None,
) -> tuple[float, list[tuple[Row, bool]]]:  # fmt: skip
    """(minimum cluster $/h, the rows that reach it) over the candidates."""
    blocked = blocked or set()
    found: list[tuple[float, Row, bool]] = []
    for r in candidates:
        here = [((row.spot if r.use_spot else row.price) * nodes, row, bool(r.use_spot))
                for row in rows if row_fits(row, r, blocked)]  # fmt: skip
        here = [h for h in here if not math.isnan(h[0])]
        if ordered and here:
            found = here
            break
        found.extend(here)
    if not found:
        return math.nan, []
    low = min(f[0] for f in found)
    return low, [
        (row, spot) for cost, row, spot in found if abs(cost - low) <= 1e-9 * max(1.0, low)
    ]
