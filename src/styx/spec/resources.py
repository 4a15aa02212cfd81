"""``Resources``: what one node of a task needs, in SkyPilot's ``resources:`` dialect.

A ``Resources`` as written may hold several candidates: ``any_of`` (the optimizer picks the
cheapest feasible), ``ordered`` (first feasible wins), or several accelerators (a list is an
ordered preference, a set means any of them). :meth:`Resources.candidates` expands all of
that into concrete ``Resources``, each with at most one accelerator type; fields written
outside ``any_of``/``ordered`` are defaults that each candidate may override.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from styx.spec import quantities as q
from styx.spec.check import Value, root
from styx.spec.frozen import FrozenDict, freeze, thaw
from styx.spec.policies import Autostop, JobRecovery, parse_autostop, parse_job_recovery
from styx.spec.quantities import Accelerator, CpuSpec, Infra, MemorySpec, PortRange

_LOCATION_KEYS = ("cloud", "region", "zone")
_CANDIDATE_KEYS = (
    "infra", "cloud", "region", "zone", "accelerators", "accelerator_args", "cpus", "memory",
    "instance_type", "use_spot", "job_recovery", "spot_recovery", "disk_size", "disk_tier",
    "network_tier", "ports", "labels", "image_id", "autostop", "priority", "max_hourly_cost",
)  # fmt: skip
KNOWN_KEYS = (*_CANDIDATE_KEYS, "any_of", "ordered")


@dataclasses.dataclass(frozen=True, slots=True)
class Resources:
    """Per-node requirements. Every field None (or empty) means "not specified".

    Hashable and compared by value. Build one from YAML data with :meth:`from_dict`, write
    it back with :meth:`to_dict`; ``Resources.from_dict(r.to_dict()) == r``.
    """

    infra: Infra | None = None
    accelerators: tuple[Accelerator, ...] = ()
    accelerators_ordered: bool = False  # several accelerators given as a list, not a set
    accelerator_args: FrozenDict[str, Any] | None = None
    cpus: CpuSpec | None = None
    memory: MemorySpec | None = None
    instance_type: str | None = None
    use_spot: bool | None = None
    job_recovery: JobRecovery | None = None
    disk_size: int | None = None
    disk_tier: str | None = None
    network_tier: str | None = None
    ports: tuple[PortRange, ...] = ()
    labels: FrozenDict[str, str] | None = None
    image_id: str | FrozenDict[str, str] | None = None
    autostop: Autostop | None = None
    priority: int | None = None
    max_hourly_cost: float | None = None
    alternatives: tuple[Resources, ...] = ()  # partial Resources from any_of / ordered
    ordered: bool = False  # alternatives came from ``ordered`` (True) or ``any_of`` (False)

    # -- queries ------------------------------------------------------------------------------

    @property
    def cloud(self) -> str | None:
        """The cloud of :attr:`infra` (``kubernetes`` for ``k8s``), or None for any."""
        return self.infra.cloud if self.infra else None

    @property
    def region(self) -> str | None:
        """The region (Kubernetes context, SSH node pool) of :attr:`infra`, or None."""
        return self.infra.region if self.infra else None

    @property
    def zone(self) -> str | None:
        """The zone of :attr:`infra`, or None."""
        return self.infra.zone if self.infra else None

    @property
    def accelerator(self) -> Accelerator | None:
        """The single accelerator of a concrete candidate (None if none or several)."""
        return self.accelerators[0] if len(self.accelerators) == 1 else None

    @property
    def accelerator_counts(self) -> dict[str, float]:
        """``{name: count}`` for the accelerators as written (one entry per candidate)."""
        return {a.name: a.count for a in self.accelerators}

    @property
    def is_ordered(self) -> bool:
        """True when :meth:`candidates` is a preference order rather than a set."""
        return self.ordered or self.accelerators_ordered

    @property
    def is_docker_image(self) -> bool:
        """True when ``image_id`` is ``docker:<image>``."""
        return isinstance(self.image_id, str) and self.image_id.startswith("docker:")

    def candidates(self) -> list[Resources]:
        """The concrete candidates: alternatives merged over these defaults, then one per
        accelerator option. Ordered when :attr:`is_ordered`; otherwise any may be chosen."""
        merged = [self.merge(alt) for alt in self.alternatives] or [self.merge(NO_RESOURCES)]
        out: list[Resources] = []
        for r in merged:
            if len(r.accelerators) <= 1:
                out.append(r)
                continue
            for accelerator in r.accelerators:
                out.append(
                    dataclasses.replace(r, accelerators=(accelerator,), accelerators_ordered=False)
                )
        return out

    def merge(self, override: Resources) -> Resources:
        """These fields, with every field that ``override`` specifies taking its value, and
        no alternatives."""
        changes: dict[str, Any] = {"alternatives": (), "ordered": False}
        for field in dataclasses.fields(Resources):
            value = getattr(override, field.name)
            if field.name in changes or field.name == "accelerators_ordered":
                continue
            if value is not None and value != ():
                changes[field.name] = value
                if field.name == "accelerators":
                    changes["accelerators_ordered"] = override.accelerators_ordered
        return dataclasses.replace(self, **changes)

    # -- YAML ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, file: str | None = None) -> Resources:
        """Validate ``resources:`` data; raise SpecError naming the field and line."""
        return parse_resources(root(data, file=file))

    def to_dict(self) -> dict[str, Any]:
        """The shortest canonical ``resources:`` mapping (defaults omitted)."""
        out: dict[str, Any] = {}
        if self.infra is not None and not self.infra.is_any:
            out["infra"] = str(self.infra)
        if self.accelerators:
            out["accelerators"] = q.accelerators_to_yaml(
                self.accelerators, self.accelerators_ordered
            )
        if self.accelerator_args is not None:
            out["accelerator_args"] = thaw(self.accelerator_args)
        for name in ("cpus", "memory"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_yaml()
        plain = ("instance_type", "use_spot", "disk_size", "disk_tier", "network_tier")
        out.update({k: getattr(self, k) for k in plain if getattr(self, k) is not None})
        if self.max_hourly_cost is not None:
            out["max_hourly_cost"] = q.num(self.max_hourly_cost)
        if self.image_id is not None:
            out["image_id"] = thaw(self.image_id)
        if self.ports:
            out["ports"] = q.ports_to_yaml(self.ports)
        if self.labels is not None:
            out["labels"] = dict(self.labels)
        if self.autostop is not None:
            out["autostop"] = self.autostop.to_yaml()
        if self.priority is not None:
            out["priority"] = self.priority
        if self.job_recovery is not None:
            out["job_recovery"] = self.job_recovery.to_yaml()
        if self.alternatives:
            out["ordered" if self.ordered else "any_of"] = [a.to_dict() for a in self.alternatives]
        return out


NO_RESOURCES = Resources()


def _location(f: dict[str, Value]) -> Infra | None:
    if "infra" in f:
        for key in _LOCATION_KEYS:
            if key in f:
                f[key].fail(
                    "conflicting-fields",
                    f"'{f[key].name}' cannot be used together with 'infra'.",
                    "Keep only 'infra', written as cloud/region/zone.",
                )
        infra = q.parse_infra(f["infra"])
        return None if infra.is_any else infra  # "*" says nothing, like no infra at all
    if not any(key in f for key in _LOCATION_KEYS):
        return None
    cloud = q.parse_cloud(f["cloud"]) if "cloud" in f else None
    region = f["region"].string().strip() if "region" in f else None
    zone = f["zone"].string().strip() if "zone" in f else None
    return Infra(cloud, region, zone)


def _accelerator_args(v: Value) -> FrozenDict[str, Any]:
    from styx.spec.sections import ACCELERATOR_ARGS

    result: FrozenDict[str, Any] = freeze(ACCELERATOR_ARGS.check(v))
    return result


def _image_id(v: Value) -> str | FrozenDict[str, str]:
    if isinstance(v.raw, dict):
        images = v.string_map(what="region names to image ids")
        if not images:
            v.bad_value(f"'{v.name}' maps no regions.", "Give at least one region: image id.")
        return FrozenDict(images)
    image = v.string().strip()
    if image.startswith("docker:") and not image[len("docker:") :].strip():
        v.bad_value(f"'{v.name}' names no docker image.", "Write it as 'docker:<image>'.")
    return image


def _job_recovery(f: dict[str, Value]) -> JobRecovery | None:
    if "job_recovery" in f and "spot_recovery" in f:
        f["spot_recovery"].fail(
            "conflicting-fields",
            f"'{f['spot_recovery'].name}' is the old name of 'job_recovery'; both are given.",
            "Keep only 'job_recovery'.",
        )
    item = f.get("job_recovery") or f.get("spot_recovery")
    recovery = parse_job_recovery(item) if item is not None else None
    return None if recovery == JobRecovery() else recovery  # {} says nothing


def parse_resources(v: Value, *, candidate: bool = False) -> Resources:
    """Parse a ``resources:`` mapping (or one ``any_of``/``ordered`` entry if ``candidate``)."""
    if v.raw is None:
        return NO_RESOURCES
    what = f"'{v.name}'" if v.path or v.src.prefix else "resources"
    f = v.fields(_CANDIDATE_KEYS if candidate else KNOWN_KEYS, what=what)
    accelerators: tuple[Accelerator, ...] = ()
    ordered_accels = False
    if "accelerators" in f:
        accelerators, ordered_accels = q.parse_accelerators(f["accelerators"])
        if candidate and len(accelerators) > 1:
            f["accelerators"].bad_value(
                f"'{f['accelerators'].name}' lists several accelerators inside a candidate.",
                "Give each any_of/ordered entry one accelerator, as separate entries.",
            )
    get = f.get
    resources = Resources(
        infra=_location(f),
        accelerators=accelerators,
        accelerators_ordered=ordered_accels,
        accelerator_args=_accelerator_args(f["accelerator_args"])
        if "accelerator_args" in f
        else None,
        cpus=q.parse_cpus(f["cpus"]) if "cpus" in f else None,
        memory=q.parse_memory(f["memory"]) if "memory" in f else None,
        instance_type=f["instance_type"].string().strip() if "instance_type" in f else None,
        use_spot=f["use_spot"].boolean() if "use_spot" in f else None,
        job_recovery=_job_recovery(f),
        disk_size=q.parse_disk_size(f["disk_size"]) if "disk_size" in f else None,
        disk_tier=f["disk_tier"].choice(q.DISK_TIERS) if "disk_tier" in f else None,
        network_tier=f["network_tier"].choice(q.NETWORK_TIERS) if "network_tier" in f else None,
        ports=q.parse_ports(f["ports"]) if "ports" in f else (),
        labels=FrozenDict(f["labels"].string_map(what="label names to text"))
        if "labels" in f
        else None,
        image_id=_image_id(f["image_id"]) if "image_id" in f else None,
        autostop=parse_autostop(f["autostop"]) if "autostop" in f else None,
        priority=f["priority"].integer(minimum=q.MIN_PRIORITY, maximum=q.MAX_PRIORITY)
        if "priority" in f
        else None,
        max_hourly_cost=float(f["max_hourly_cost"].number(minimum=0, exclusive_minimum=True))
        if "max_hourly_cost" in f
        else None,
    )
    alternatives, ordered = _alternatives(get("any_of"), get("ordered"), resources)
    return dataclasses.replace(resources, alternatives=alternatives, ordered=ordered)


def _alternatives(
    any_of: Value | None, ordered: Value | None, base: Resources
) -> tuple[tuple[Resources, ...], bool]:
    if any_of is not None and ordered is not None:
        ordered.fail(
            "conflicting-fields",
            f"'{ordered.name}' cannot be used together with 'any_of'.",
            "Use 'any_of' to let Styx pick the cheapest, or 'ordered' for a fixed order.",
        )
    chosen = any_of if any_of is not None else ordered
    if chosen is None:
        return (), False
    items = chosen.items()
    if not items:
        chosen.bad_value(f"'{chosen.name}' lists no candidates.", "Add a candidate or remove it.")
    if len(base.accelerators) > 1 and ordered is not None:
        # any_of with an accelerator set is every candidate with every accelerator, as
        # SkyPilot reads it; an order over both at once would be ambiguous.
        chosen.fail(
            "conflicting-fields",
            f"'{chosen.name}' cannot be combined with several accelerators outside it.",
            "Move each accelerator into its own candidate, in the order you prefer.",
        )
    for item in items:
        if not isinstance(item.raw, dict):
            item.wrong_type("a mapping of resource fields")
    return tuple(parse_resources(i, candidate=True) for i in items), chosen is ordered
