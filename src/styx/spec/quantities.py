"""The small value types inside ``resources:`` and their parsers.

Each ``parse_*`` function takes a :class:`~styx.spec.check.Value` and accepts every form
SkyPilot's task dialect accepts for that field; each type's ``to_yaml`` returns the shortest
canonical form, which parses back to an equal value.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from styx.spec.check import MAX_INT, Value, describe, suggest

CLOUDS: tuple[str, ...] = (
    "aws", "gcp", "azure", "kubernetes", "ssh", "local", "lambda", "runpod", "vast",
    "fluidstack", "paperspace", "cudo", "do", "nebius", "oci", "ibm", "scp", "vsphere",
    "hyperbolic", "seeweb", "shadeform", "primeintellect", "slurm",
)  # fmt: skip
_CLOUD_ALIASES = {"k8s": "kubernetes"}
# Clouds whose second infra component is a free-form name that may contain "/".
_CONTEXT_CLOUDS = ("kubernetes", "ssh", "slurm")
MEMORY_UNITS_GB = {
    "": 1.0, "b": 2.0**-30, "k": 2.0**-20, "kb": 2.0**-20, "m": 2.0**-10, "mb": 2.0**-10,
    "g": 1.0, "gb": 1.0, "t": 2.0**10, "tb": 2.0**10, "p": 2.0**20, "pb": 2.0**20,
}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*(\+?)\s*")
_ACCEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
DISK_TIERS = ("low", "medium", "high", "ultra", "best")
NETWORK_TIERS = ("standard", "best")
MIN_PRIORITY, MAX_PRIORITY = 0, 1000


def num(value: float) -> int | float:
    """``8.0`` -> ``8`` so counts print the way people write them."""
    if isinstance(value, int):
        return value
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _finite_positive(v: Value, text: str, what: str) -> float:
    try:
        number = float(text)
    except (ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number) or number <= 0 or number > MAX_INT:
        v.bad_value(
            f"'{v.name}' must be a positive {what}, but it is {v.what()}.",
            f"Write a {what} above 0 and below {MAX_INT + 1}.",
        )
    return number


# -- infra ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Infra:
    """Where to run: cloud, region, zone; None means any. For Kubernetes and SSH the region
    slot holds the context or node-pool name."""

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None

    def __str__(self) -> str:
        parts = [self.cloud or "*", self.region or "*", self.zone or "*"]
        while len(parts) > 1 and parts[-1] == "*":
            parts.pop()
        return "/".join(parts)

    @property
    def is_any(self) -> bool:
        return self.cloud is None and self.region is None and self.zone is None


def _cloud_name(v: Value, text: str) -> str:
    name = text.strip().lower()
    name = _CLOUD_ALIASES.get(name, name)
    if name not in CLOUDS:
        guess = suggest(name, CLOUDS)
        v.fail(
            "invalid-value",
            f"'{v.name}' names an unknown cloud, {describe(text)}.",
            f"Did you mean '{guess}'?" if guess else f"Use one of {', '.join(CLOUDS)}.",
            {"choices": list(CLOUDS)},
        )
    return name


def parse_cloud(v: Value) -> str:
    """A cloud name (case-insensitive; ``k8s`` means ``kubernetes``)."""
    return _cloud_name(v, v.string())


def parse_infra(v: Value) -> Infra:
    """``cloud[/region[/zone]]`` with ``*`` wildcards, ``k8s[/context]``, ``ssh/<pool>``,
    ``local``."""
    text = v.string().strip()
    head, _, rest = text.partition("/")
    if not head.strip():
        v.bad_value(
            f"'{v.name}' has no cloud before '/'.", "Write cloud/region/zone, or '*/region'."
        )
    cloud = None if head.strip() == "*" else _cloud_name(v, head)
    if cloud in _CONTEXT_CLOUDS:
        context = rest.strip()
        return Infra(cloud, None if context in ("", "*") else context)
    parts = [p.strip() for p in rest.split("/")] if rest else []
    if len(parts) > 2 or not all(parts):
        v.bad_value(
            f"'{v.name}' must look like cloud/region/zone, but it is {v.what()}.",
            "Use at most three non-empty parts separated by '/', with '*' for any.",
        )
    if cloud == "local" and parts:
        v.bad_value(f"'{v.name}' gives a region to 'local'.", "Write just 'local'.")
    region, zone = ([*parts, "*", "*"])[:2]
    return Infra(cloud, None if region == "*" else region, None if zone == "*" else zone)


# -- cpus and memory --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CpuSpec:
    """vCPUs per node: exactly ``count``, or at least ``count`` when ``at_least``."""

    count: float
    at_least: bool = False

    def to_yaml(self) -> int | float | str:
        return f"{num(self.count)}+" if self.at_least else num(self.count)


def parse_cpus(v: Value) -> CpuSpec:
    """``4``, ``0.5``, ``"4"``, ``"4+"``."""
    if isinstance(v.raw, bool) or not isinstance(v.raw, int | float | str):
        v.wrong_type("a number such as 4 or text such as '4+'")
    text = str(v.raw).strip()
    at_least = text.endswith("+")
    return CpuSpec(num(_finite_positive(v, text.removesuffix("+"), "CPU count")), at_least)


@dataclasses.dataclass(frozen=True, slots=True)
class MemorySpec:
    """Memory per node in GiB, or ``per_cpu`` GiB for each vCPU (``"4x"``)."""

    gb: float | None = None
    per_cpu: float | None = None
    at_least: bool = False

    def to_yaml(self) -> int | float | str:
        text = f"{num(self.per_cpu)}x" if self.per_cpu is not None else f"{num(self.gb or 0)}"
        if self.at_least:
            return text + "+"
        return text if self.per_cpu is not None else num(self.gb or 0)


def parse_memory(v: Value) -> MemorySpec:
    """``16``, ``"16+"``, ``"32GB"``, ``"1024MB+"``, ``"4x"`` (GiB per vCPU)."""
    if isinstance(v.raw, bool) or not isinstance(v.raw, int | float | str):
        v.wrong_type("a number of GB or text such as '32GB+' or '4x'")
    text = str(v.raw).strip()
    at_least = text.endswith("+")
    text = text.removesuffix("+").strip()
    if text.lower().endswith("x"):
        return MemorySpec(None, num(_finite_positive(v, text[:-1], "memory multiplier")), at_least)
    match = _SIZE.fullmatch(text)
    if match is None:
        _finite_positive(v, text, "memory size")  # reports garbage and negatives alike
        v.bad_value(  # a number the size syntax does not take, such as 7e-287
            f"'{v.name}' is not a memory size, {v.what()}.",
            "Write a number of GB such as 16 or 0.5, or a size such as 32GB or 1024MB.",
        )
    unit = match.group(2).lower()
    if unit not in MEMORY_UNITS_GB:
        v.bad_value(
            f"'{v.name}' has an unknown memory unit, {v.what()}.",
            "Use a plain number of GB, or a unit among KB, MB, GB, TB, PB.",
        )
    gb = _finite_positive(v, match.group(1), "memory size") * MEMORY_UNITS_GB[unit]
    return MemorySpec(num(gb), None, at_least)


def parse_disk_size(v: Value) -> int:
    """Whole GB: ``256`` or ``"256GB"``/``"1TB"`` (other units are floored to GB)."""
    if isinstance(v.raw, int) and not isinstance(v.raw, bool):
        return v.integer(minimum=1)
    if not isinstance(v.raw, str):
        v.wrong_type("a whole number of GB or text such as '256GB'")
    match = _SIZE.fullmatch(v.raw)
    unit = match.group(2).lower() if match else ""
    if match is None or match.group(3) or unit not in MEMORY_UNITS_GB:
        v.bad_value(
            f"'{v.name}' is not a disk size, {v.what()}.", "Write a size such as 256 or '256GB'."
        )
    gb = math.floor(_finite_positive(v, match.group(1), "disk size") * MEMORY_UNITS_GB[unit])
    v.check_range(gb, 1, MAX_INT)
    return gb


# -- accelerators -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Accelerator:
    """An accelerator name as written (canonical casing is the optimizer's job) and a count
    per node; fractions below 1 share a device."""

    name: str
    count: float = 1

    def __str__(self) -> str:
        return f"{self.name}:{num(self.count)}"


def _accelerator(v: Value, text: str, count: Any = None) -> Accelerator:
    name, sep, tail = text.strip().rpartition(":")
    if not sep:
        name, tail = tail, ""
    if count is not None and tail:
        v.bad_value(f"'{v.name}' gives a count twice.", "Write either 'A100:8' or 'A100: 8'.")
    if not _ACCEL_NAME.fullmatch(name.strip()):
        v.bad_value(
            f"'{v.name}' has an invalid accelerator name, {v.what()}.",
            "Write NAME or NAME:COUNT, such as 'A100:8'.",
        )
    if isinstance(count, bool) or (count is not None and not isinstance(count, int | float)):
        v.wrong_type("a number of accelerators")
    number = _finite_positive(v, str(count if count is not None else tail or 1), "count")
    if number > 1 and not number.is_integer():
        v.bad_value(
            f"'{v.name}' has the count {number:g}; fractions are only allowed below 1.",
            "Use a whole number, or a fraction such as 0.5 to share one device.",
        )
    return Accelerator(name.strip(), num(number))


def parse_accelerators(v: Value) -> tuple[tuple[Accelerator, ...], bool]:
    """Returns the accelerators and whether they are an ordered preference.

    ``"A100:8"`` or ``{A100: 8}`` is one; a list is an ordered preference; a set or mapping
    with several entries (``{A100:8, H100:8}``, which YAML reads as keys with null values)
    means any of them, cheapest first.
    """
    raw = v.raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith(("[", "{")) and text.endswith(("]", "}")):
            items = [part for part in text[1:-1].split(",") if part.strip()]
            accels = tuple(_accelerator(v, part.strip().strip("'\"")) for part in items)
            return _checked(v, accels, text[0] == "[")
        return (_accelerator(v, text),), False
    if isinstance(raw, list):
        accels = tuple(_accelerator(item, item.string()) for item in v.items())
        return _checked(v, accels, True)
    if isinstance(raw, dict):
        entries = v.entries()
        accels = tuple(_accelerator(item, key, item.raw) for key, item in entries.items())
        return _checked(v, accels, False)
    v.wrong_type("text such as 'A100:8', a list of them, or a mapping such as {A100: 8}")


def _checked(
    v: Value, accels: tuple[Accelerator, ...], ordered: bool
) -> tuple[tuple[Accelerator, ...], bool]:
    if not accels:
        v.bad_value(f"'{v.name}' lists no accelerators.", "Name at least one, or remove it.")
    if len(set(accels)) != len(accels):
        v.bad_value(f"'{v.name}' lists an accelerator twice.", "Remove the repeated entry.")
    return accels, ordered and len(accels) > 1


def accelerators_to_yaml(accels: tuple[Accelerator, ...], ordered: bool) -> Any:
    """The shortest YAML form that parses back to the same accelerators."""
    if len(accels) == 1:
        return str(accels[0])
    if ordered:
        return [str(a) for a in accels]
    names = [a.name for a in accels]
    if len(set(names)) == len(names):
        return {a.name: num(a.count) for a in accels}
    return {str(a): None for a in accels}


# -- ports ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive TCP port range; a single port has ``start == end``."""

    start: int
    end: int

    def to_yaml(self) -> int | str:
        return self.start if self.start == self.end else f"{self.start}-{self.end}"


def _port_range(v: Value) -> PortRange:
    if isinstance(v.raw, int) and not isinstance(v.raw, bool):
        port = v.integer(minimum=1, maximum=65535)
        return PortRange(port, port)
    if not isinstance(v.raw, str):
        v.wrong_type("a port number or a range such as '8080-8090'")
    match = re.fullmatch(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?", v.raw)
    if match is None:
        v.bad_value(
            f"'{v.name}' is not a port or port range, {v.what()}.", "Write 8080 or '8080-8090'."
        )
    start, end = int(match.group(1)), int(match.group(2) or match.group(1))
    if not 1 <= start <= end <= 65535:
        v.bad_value(
            f"'{v.name}' is not a valid range of ports between 1 and 65535.",
            "Write ports in order, from low to high, within 1-65535.",
        )
    return PortRange(start, end)


def parse_ports(v: Value) -> tuple[PortRange, ...]:
    """``8080``, ``"8080-8090"`` or a list of those."""
    if isinstance(v.raw, list):
        return tuple(_port_range(item) for item in v.items())
    return (_port_range(v),)


def ports_to_yaml(ports: tuple[PortRange, ...]) -> Any:
    """One port or range as itself, several as a list."""
    return ports[0].to_yaml() if len(ports) == 1 else [p.to_yaml() for p in ports]
