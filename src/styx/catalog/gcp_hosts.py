"""GCP's separately priced accelerators and the host VMs they attach to.

GCP's catalog lists GPUs and TPUs in rows with no instance type, priced for the accelerator
alone; a node costs the host VM's price plus the accelerator's, zone by zone. Which hosts an
accelerator can use is GCP's rule (https://cloud.google.com/compute/docs/gpus):

* A100, A100-80GB, H100, H100-MEGA, H200, B200 and L4 come only with their own families
  (a2, a3, a4, g2), one host per count (several for L4:1);
* the older GPUs (T4, V100, P100, P4, K80) attach to N1 hosts, up to a per-count maximum of
  vCPUs and memory; when a task names neither cpus nor memory the host gets a default size
  (about 4 vCPUs per T4, 8 per V100/P100, and 4 GB of memory per vCPU), as SkyPilot does;
* TPUs (``tpu-*``) run as TPU VMs with no separate host price.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from styx.catalog.index import Offers, Shape

TPU_VM = "TPU-VM"
_L4_1 = ("g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32")
FIXED_HOSTS: dict[str, dict[float, tuple[str, ...]]] = {
    "A100": {1: ("a2-highgpu-1g",), 2: ("a2-highgpu-2g",), 4: ("a2-highgpu-4g",),
             8: ("a2-highgpu-8g",), 16: ("a2-megagpu-16g",)},
    "A100-80GB": {1: ("a2-ultragpu-1g",), 2: ("a2-ultragpu-2g",), 4: ("a2-ultragpu-4g",),
                  8: ("a2-ultragpu-8g",)},
    "H100": {1: ("a3-highgpu-1g",), 2: ("a3-highgpu-2g",), 4: ("a3-highgpu-4g",),
             8: ("a3-highgpu-8g",)},
    "H100-MEGA": {8: ("a3-megagpu-8g",)},
    "H200": {8: ("a3-ultragpu-8g",)},
    "B200": {8: ("a4-highgpu-8g",)},
    "L4": {1: _L4_1, 2: ("g2-standard-24",), 4: ("g2-standard-48",), 8: ("g2-standard-96",)},
}  # fmt: skip
# Default host vCPUs per accelerator count for N1-hosted GPUs (memory: 4 GB per vCPU).
DEFAULT_HOST_CPUS: dict[str, dict[float, float]] = {
    "K80": {1: 4, 2: 8, 4: 16, 8: 32, 16: 64},
    "T4": {1: 4, 2: 8, 4: 48},
    "V100": {1: 8, 2: 16, 4: 32, 8: 64},
    "P100": {1: 8, 2: 16, 4: 32, 8: 64},
    "*": {1: 8, 2: 16, 4: 32, 8: 64, 16: 128},
}
HOST_MEMORY_PER_CPU = 4.0
# Largest N1 host (vCPUs, memory GB) per accelerator count.
MAX_HOST: dict[str, dict[float, tuple[float, float]]] = {
    "K80": {1: (8, 52), 2: (16, 104), 4: (32, 208), 8: (64, 208)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
}
N1_HOST_PREFIXES = ("n1-standard-", "n1-highmem-", "n1-highcpu-")
_GPU_FAMILIES = ("a2-", "a3-", "a4-", "g2-")


def is_gpu_host(instance_type: str) -> bool:
    """True for GCP types that exist only to carry accelerators (never for CPU-only tasks)."""
    return instance_type.startswith(_GPU_FAMILIES) or instance_type.endswith("-tpu")


def is_tpu(name: str) -> bool:
    """True for TPU slice names such as ``tpu-v5p-8``."""
    return name.lower().startswith("tpu-")


def host_default(accelerator: str, count: float) -> tuple[float, float] | None:
    """Minimum (vCPUs, memory GB) of an N1 host when the task names neither; None if the
    accelerator has its own host family."""
    if accelerator in FIXED_HOSTS or is_tpu(accelerator):
        return None
    table = DEFAULT_HOST_CPUS.get(accelerator, DEFAULT_HOST_CPUS["*"])
    cpus = table.get(count)
    return None if cpus is None else (cpus, cpus * HOST_MEMORY_PER_CPU)


def host_names(accelerator: str, count: float, types: dict[str, Shape]) -> list[str]:
    """The host VM types an accelerator count can attach to (empty for TPUs)."""
    if is_tpu(accelerator):
        return []
    fixed = FIXED_HOSTS.get(accelerator)
    if fixed is not None:
        return [name for name in fixed.get(count, ()) if name in types]
    limit = MAX_HOST.get(accelerator, {}).get(count, (math.inf, math.inf))
    return sorted(
        name
        for name, shape in types.items()
        if name.startswith(N1_HOST_PREFIXES)
        and shape.vcpus <= limit[0]
        and shape.memory_gb <= limit[1]
    )


class Attachables:
    """GCP accelerator rows grouped by (name, count), joined with hosts on demand."""

    def __init__(self) -> None:
        from styx.catalog.index import Offers

        self._offers_type = Offers
        self.offers: dict[tuple[str, float], Offers] = {}
        self.device_memory: dict[str, float | None] = {}

    def __len__(self) -> int:
        return len(self.offers)

    def add(
        self,
        name: str,
        count: float,
        device_memory_gb: float | None,
        region: str,
        zone: str | None,
        price: float,
        spot: float,
    ) -> None:
        """One accelerator row."""
        key = (name, 1.0 if math.isnan(count) else count)
        offers = self.offers.get(key)
        if offers is None:
            offers = self.offers[key] = self._offers_type()
        offers.add(region, zone, price, spot)
        if device_memory_gb is not None or name not in self.device_memory:
            self.device_memory[name] = device_memory_gb

    def names(self) -> list[str]:
        """Accelerator names, in the catalog's spelling."""
        return sorted({name for name, _ in self.offers})

    def join(self, accelerator: str, types: dict[str, Shape]) -> list[Shape]:
        """One shape per (count, host): offered where both are, priced as their sum."""
        from styx.catalog.index import Shape

        shapes: list[Shape] = []
        for (name, count), acc_offers in sorted(self.offers.items()):
            if name != accelerator:
                continue
            memory = self.device_memory.get(name)
            if is_tpu(name):
                shape = Shape("gcp", TPU_VM, math.nan, math.nan, name, count, memory)
                _copy(acc_offers, shape.offers, None)
                shapes.append(shape)
                continue
            default = host_default(name, count)
            for host_name in host_names(name, count, types):
                host = types[host_name]
                shape = Shape(
                    "gcp", host_name, host.vcpus, host.memory_gb, name, count, memory,
                    host.arch, default,
                )  # fmt: skip
                _copy(acc_offers, shape.offers, host.offers)
                if len(shape.offers):
                    shapes.append(shape)
        return shapes


def _copy(acc: Offers, out: Offers, host: Offers | None) -> None:
    by_zone: dict[tuple[str, str | None], int] = {}
    if host is not None:
        by_zone = {(r, z): i for i, (r, z) in enumerate(zip(host.regions, host.zones, strict=True))}
    for i, (region, zone) in enumerate(zip(acc.regions, acc.zones, strict=True)):
        price, spot = acc.prices[i], acc.spot_prices[i]
        if host is not None:
            j = by_zone.get((region, zone))
            if j is None:
                continue  # the accelerator is sold in a zone without its host
            price = host.prices[j] + price
            spot = host.spot_prices[j] + spot
        out.add(region, zone, price, spot)
