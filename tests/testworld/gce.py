"""Google Compute Engine's REST API (v1) for the test world: an in-process stand-in on loopback.

:class:`GCEServer` answers what a provider built on the official ``google-cloud-compute`` client
asks (instances, disks, operations, networks, subnetworks, firewalls, images, zones, regions,
machine and accelerator types, project metadata) with the real API's JSON shapes (camelCase,
``kind``, ``selfLink``, ``id`` as the string of an integer, ``creationTimestamp``), and injects
the faults a provider must survive (stockouts, quota, auth, slowness, preemption, transient
503s). :class:`testworld.gce_hosts.GceHosts` puts a real SSH host behind each RUNNING instance.

Pointing the client at it (measured with google-cloud-compute 1.57.0, google-api-core 2.44.0)::

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1
    kw = dict(credentials=AnonymousCredentials(),
              client_options={"api_endpoint": server.url},   # "http://127.0.0.1:PORT"
              transport="rest")
    instances = compute_v1.InstancesClient(**kw)
    zone_ops = compute_v1.ZoneOperationsClient(**kw)          # likewise Global/RegionOperations

(``server.client_kwargs()`` returns that dict, ``server.client("Instances")`` a client.) The REST
transport then sends ``/compute/v1/projects/...`` to the endpoint, with no Authorization header.

**Trap: wait through the endpoint.** A mutating call (``insert``, ``stop``, ...) returns an
``ExtendedOperation``. Its ``result()``/``done()`` poll through a ``ZoneOperationsClient`` that
the client builds itself *without* the ``client_options``, i.e. against the real
``compute.googleapis.com``. While an operation is not DONE, ``op.result()`` therefore leaves the
test world (and in production it works, so the bug stays hidden). A provider must wait with its
own endpoint-pointed client: ``ZoneOperationsClient.wait(project=, zone=, operation=op.name)``
(``GlobalOperationsClient.wait`` for firewalls/networks, ``RegionOperationsClient.wait`` for
subnetworks) in a loop until ``status == DONE``, then read ``error.errors``. ``op.result()`` is
safe only on an operation that came back DONE. To keep that from going unnoticed,
:func:`block_google_endpoints` makes any lookup of a ``*.googleapis.com`` name fail and records it
(``op.result()`` on a RUNNING operation then raises ``requests.exceptions.ConnectionError`` for
host ``compute.googleapis.com`` at once).

Operations: ``id`` an integer string, ``name`` ``operation-<ms>-<hex>-<hex>-<hex>``, status
RUNNING then DONE (never PENDING). With ``op_latency`` 0 (the default) a mutation's effect is
applied before the call returns and the returned operation is already DONE (so a test that calls
``result()`` does not leave the machine); ``slow(ops=N)`` keeps operations RUNNING for N s, and
instances go PROVISIONING -> STAGING (half-way) -> RUNNING. ``wait`` returns when the operation is
DONE or after ``wait_timeout`` seconds (120, as the real API's ~2 minutes) with the operation as
it is then. Failures: status DONE, ``error.errors[{code, message, errorDetails}]``,
``httpErrorStatusCode``/``httpErrorMessage``.

World layout. Only the configured ``regions`` exist (their zones come from the GCP catalog,
``$STYX_CATALOG_DIR/gcp/vms.csv`` or ``../shared/catalog/gcp/vms.csv``; a small built-in table
when neither is there). Network ``default`` (auto mode) has subnet ``default`` in each region at
the CIDR given (slot 0: us-central1 198.18.96.0/24, us-east1 198.18.97.0/24, europe-west4
198.18.98.0/24; see :func:`slot_regions`), plus GCE's four default firewall rules. Internal IPs
are handed out from ``.2`` upwards and kept across stop/start. External IPs (an ``accessConfigs``
entry) come from 198.19.240.0/20: fake, never routed, and nothing may contact them (the network
rule: only 127.0.0.1 and test hosts); they are released on stop, as GCE's ephemeral ones are.
Subnets outside 198.18.0.0/15 are refused. Firewall rules are recorded, not enforced.

Error shapes (what ``google.api_core.exceptions`` makes of them):

* stockout (:meth:`GCEServer.stockout`): the insert (or start) operation ends DONE with
  ``error.errors[0].code`` ``ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS`` (default; or
  ``ZONE_RESOURCE_POOL_EXHAUSTED``, or any code given), message "The zone
  'projects/P/zones/Z' does not have enough resources available to fulfill the request. ...",
  ``errorDetails`` [errorInfo{reason resource_availability, domain compute.googleapis.com,
  metadatas{zone, vmType, attachment, zonesAvailable}}, help{links}, localizedMessage],
  ``httpErrorStatusCode`` 503 / "SERVICE UNAVAILABLE". ``op.result()`` on it raises
  ``ServiceUnavailable`` whose ``.errors`` are those ``Errors`` messages (``.code``).
* quota (:meth:`GCEServer.set_quota`): usage is counted (vCPUs per family, GPUs per type,
  spot vs standard, disks, instances, external IPs); going over a limit fails the insert/start
  with code ``QUOTA_EXCEEDED``, message "Quota 'CPUS' exceeded.  Limit: 8.0 in region
  us-central1." and ``errorDetails[{quotaInfo{metricName, limitName, dimensions, limit}}]`` in
  the operation (403 / "FORBIDDEN"), or with ``mode="http"`` as the call's own answer: HTTP 403
  ``{"error": {"errors": [{"reason": "quotaExceeded", "domain": "usageLimits"}]}}``, raised as
  ``google.api_core.exceptions.Forbidden`` (``.errors[0]["reason"] == "quotaExceeded"``).
* auth (:meth:`GCEServer.auth_failure`): every call answers 401 ``UNAUTHENTICATED`` (with a
  token: ``errors[0].reason`` "authError", ErrorInfo reason "ACCESS_TOKEN_EXPIRED"; without:
  "required" / "CREDENTIALS_MISSING"), or 403 ``forbidden`` ("Required
  'compute.instances.insert' permission for 'projects/...'", ErrorInfo "IAM_PERMISSION_DENIED"),
  or 403 ``accessNotConfigured`` (the API disabled, ErrorInfo "SERVICE_DISABLED"). The client
  raises ``Unauthorized`` / ``Forbidden`` with those in ``.errors[0]["reason"]`` and ``.reason``.
  On a 401 google-auth first refreshes the credentials and retries (twice): with
  ``AnonymousCredentials`` that refresh raises ``google.auth.exceptions.InvalidOperation``
  instead, so use :func:`local_credentials` to see the ``Unauthorized``;
  ``local_credentials(fail_refresh=True)`` raises ``google.auth.exceptions.RefreshError`` as a
  revoked login does, before any request.
* others: 404 ``notFound`` (``NotFound``), 409 ``alreadyExists`` (``Conflict``), 412
  ``conditionNotMet`` (``PreconditionFailed``: a stale label/metadata fingerprint), 400
  ``invalid``/``badRequest`` (``BadRequest``: a bad filter, machine type, image, "Instances with
  guest accelerators do not support live migration."), 400 ``resourceNotReady``, transient 503
  ``backendError`` (:meth:`GCEServer.fail_next`; the client retries get/list on 503 by itself,
  not mutations).

Preemption (:meth:`GCEServer.preempt`): a SPOT (or preemptible) instance goes TERMINATED (or is
deleted when ``instanceTerminationAction`` is DELETE) and a DONE zone operation of type
``compute.instances.preempted`` is recorded, listable with
``filter='operationType="compute.instances.preempted"'``.

Filters (list, aggregatedList): AIP-160 comparisons ``field = value`` / ``!=`` / ``<`` ``>``
``<=`` ``>=`` / ``field:*`` (``*`` wildcards in values), on nested fields (``labels.K``,
``scheduling.provisioningModel``, lists match any element), joined by ``AND`` (or juxtaposed),
``OR``, ``NOT``/``-`` and parentheses; or the regular-expression form ``field eq RE`` /
``field ne RE`` (full match). Anything else is a 400, never ignored.

The request log (:meth:`GCEServer.requests`) and :meth:`GCEServer.busy_seconds` (the union of
request intervals) are for benchmarks; :meth:`GCEServer.reset` forgets everything.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import copy
import csv
import dataclasses
import datetime
import fnmatch
import hashlib
import heapq
import ipaddress
import itertools
import json
import os
import random
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROJECT = "styx-test"
PROJECT_NUMBER = "482914061735"
API_BASE = "https://www.googleapis.com/compute/v1/"
TEST_NET = ipaddress.ip_network("198.18.0.0/15")
#: Where external (NAT) IPs come from: fake, never routed, never contacted.
EXTERNAL_NET = ipaddress.ip_network("198.19.240.0/20")
#: Slot ``s`` owns 198.18.(96+8s).0/21: the first /24s are the default network's subnets, the
#: rest the pool for auto-mode networks. Far from the testbed (198.18.k.0/24, small k) and from
#: tests/aws (198.18.200-255).
GCE_BASE_OCTET = 96
GCE_SLOTS = 12
DEFAULT_REGION_NAMES = ("us-central1", "us-east1", "europe-west4")
WAIT_TIMEOUT = 120.0

JSON = dict[str, Any]


def slot_regions(slot: int = 0, names: Sequence[str] = DEFAULT_REGION_NAMES) -> dict[str, str]:
    """Region -> subnet CIDR of the default network for slot ``slot``."""
    if not 0 <= slot < GCE_SLOTS:
        raise ValueError(f"GCE slots are 0..{GCE_SLOTS - 1}, not {slot}")
    if len(names) > 4:
        raise ValueError("a slot has room for 4 regions")
    base = GCE_BASE_OCTET + 8 * slot
    return {name: f"198.18.{base + j}.0/24" for j, name in enumerate(names)}


def slot_auto_pool(slot: int = 0) -> list[str]:
    """The /24s auto-mode networks of slot ``slot`` get their subnets from."""
    base = GCE_BASE_OCTET + 8 * slot
    return [f"198.18.{base + j}.0/24" for j in range(4, 8)]


# --- the catalog --------------------------------------------------------------------------------

#: Catalog accelerator names -> GCE accelerator types, and their quota metrics.
ACCELERATOR_TYPES = {
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
    "K80": "nvidia-tesla-k80",
    "A100": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "L4": "nvidia-l4",
    "H100": "nvidia-h100-80gb",
    "H100-MEGA": "nvidia-h100-mega-80gb",
    "H200": "nvidia-h200-141gb",
    "B200": "nvidia-b200",
}
GPU_QUOTA_METRIC = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS",
    "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
    "nvidia-tesla-k80": "NVIDIA_K80_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
    "nvidia-h100-mega-80gb": "NVIDIA_H100_MEGA_GPUS",
    "nvidia-h200-141gb": "NVIDIA_H200_GPUS",
    "nvidia-b200": "NVIDIA_B200_GPUS",
}
GPU_DESCRIPTION = {
    "nvidia-tesla-t4": "NVIDIA T4",
    "nvidia-tesla-v100": "NVIDIA V100",
    "nvidia-tesla-p100": "NVIDIA P100",
    "nvidia-tesla-p4": "NVIDIA P4",
    "nvidia-tesla-k80": "NVIDIA K80",
    "nvidia-tesla-a100": "NVIDIA A100 40GB",
    "nvidia-a100-80gb": "NVIDIA A100 80GB",
    "nvidia-l4": "NVIDIA L4",
    "nvidia-h100-80gb": "NVIDIA H100 80GB",
    "nvidia-h100-mega-80gb": "NVIDIA H100 80GB MEGA",
    "nvidia-h200-141gb": "NVIDIA H200 141GB",
    "nvidia-b200": "NVIDIA B200",
}
#: GPUs that attach to N1 machines through ``guestAccelerators``.
N1_ATTACHABLE = frozenset(
    {
        "nvidia-tesla-t4",
        "nvidia-tesla-v100",
        "nvidia-tesla-p100",
        "nvidia-tesla-p4",
        "nvidia-tesla-k80",
    }
)
#: Machine families with a CPU quota of their own (the rest count against CPUS).
FAMILY_CPU_QUOTA = {
    f: f"{f.upper()}_CPUS"
    for f in (
        "n2",
        "n2d",
        "n4",
        "c2",
        "c2d",
        "c3",
        "c3d",
        "c4",
        "a2",
        "g2",
        "m1",
        "m2",
        "m3",
        "t2d",
        "t2a",
    )
}
SSD_DISK_TYPES = frozenset({"pd-ssd", "pd-balanced", "pd-extreme", "hyperdisk-balanced"})
DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd", "pd-extreme", "hyperdisk-balanced")


def builtin_accelerators(machine_type: str) -> tuple[str, int] | None:
    """The GPUs a machine type comes with (a2, a3, a4, g2), as (accelerator type, count)."""
    if m := re.fullmatch(r"a2-(highgpu|megagpu|ultragpu)-(\d+)g", machine_type):
        return ("nvidia-a100-80gb" if m.group(1) == "ultragpu" else "nvidia-tesla-a100"), int(
            m.group(2)
        )
    if m := re.fullmatch(r"a3-(highgpu|edgegpu)-(\d+)g", machine_type):
        return "nvidia-h100-80gb", int(m.group(2))
    if re.fullmatch(r"a3-megagpu-8g", machine_type):
        return "nvidia-h100-mega-80gb", 8
    if re.fullmatch(r"a3-ultragpu-8g", machine_type):
        return "nvidia-h200-141gb", 8
    if re.fullmatch(r"a4-highgpu-8g", machine_type):
        return "nvidia-b200", 8
    if m := re.fullmatch(r"g2-standard-(\d+)", machine_type):
        return "nvidia-l4", {24: 2, 48: 4, 96: 8}.get(int(m.group(1)), 1)
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class MachineType:
    name: str
    cpus: int
    memory_mb: int

    @property
    def family(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def accelerators(self) -> tuple[str, int] | None:
        return builtin_accelerators(self.name)

    @property
    def shared_cpu(self) -> bool:
        return self.name in ("e2-micro", "e2-small", "e2-medium", "f1-micro", "g1-small")

    @property
    def arm(self) -> bool:
        return self.family in ("t2a", "c4a", "a4x")


@dataclasses.dataclass
class Catalog:
    """What exists where: zones per region, machine types and accelerators per zone."""

    zones: dict[str, list[str]]  # region -> zones
    machine_types: dict[str, dict[str, MachineType]]  # zone -> name -> type
    accelerators: dict[str, dict[str, int]]  # zone -> accelerator type -> max count
    source: str


_BUILTIN_ZONES = {
    "us-central1": ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"],
    "us-east1": ["us-east1-b", "us-east1-c", "us-east1-d"],
    "europe-west4": ["europe-west4-a", "europe-west4-b", "europe-west4-c"],
}
_BUILTIN_TYPES = [
    ("e2-medium", 2, 4.0),
    ("n1-standard-4", 4, 15.0),
    ("n2-standard-2", 2, 8.0),
    ("n2-standard-4", 4, 16.0),
    ("n2-standard-8", 8, 32.0),
    ("g2-standard-4", 4, 16.0),
    ("a2-highgpu-1g", 12, 85.0),
]


def catalog_path() -> Path | None:
    """The GCP catalog's vms.csv: ``$STYX_CATALOG_DIR/gcp`` or ``../shared/catalog/gcp``."""
    candidates = []
    if os.environ.get("STYX_CATALOG_DIR"):
        candidates.append(Path(os.environ["STYX_CATALOG_DIR"]) / "gcp" / "vms.csv")
    candidates.append(
        Path(__file__).resolve().parents[3] / "shared" / "catalog" / "gcp" / "vms.csv"
    )
    return next((p for p in candidates if p.is_file()), None)


def load_catalog(regions: Iterable[str], path: Path | None = None) -> Catalog:
    """Read the regions' zones, machine types and GPUs from the catalog (TPUs are not GCE
    machines and are left out); a small built-in table without one."""
    wanted = set(regions)
    path = path or catalog_path()
    zones: dict[str, list[str]] = {r: [] for r in wanted}
    types: dict[str, dict[str, MachineType]] = {}
    accels: dict[str, dict[str, int]] = {}
    if path is None:
        for region in wanted:
            for zone in _BUILTIN_ZONES.get(region, [f"{region}-a", f"{region}-b", f"{region}-c"]):
                zones[region].append(zone)
                types[zone] = {n: MachineType(n, c, int(m * 1024)) for n, c, m in _BUILTIN_TYPES}
                accels[zone] = {"nvidia-tesla-t4": 4, "nvidia-l4": 8, "nvidia-tesla-a100": 16}
        return Catalog(zones, types, accels, "built-in")
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            region, zone = row.get("Region") or "", row.get("AvailabilityZone") or ""
            if region not in wanted or not zone:
                continue
            if zone not in zones[region]:
                zones[region].append(zone)
            name = row.get("InstanceType") or ""
            if name:
                with contextlib.suppress(ValueError):
                    types.setdefault(zone, {})[name] = MachineType(
                        name, int(float(row["vCPUs"])), int(float(row["MemoryGiB"]) * 1024)
                    )
            else:
                accel = ACCELERATOR_TYPES.get(row.get("AcceleratorName") or "")
                if accel:
                    count = int(float(row.get("AcceleratorCount") or 1))
                    have = accels.setdefault(zone, {})
                    have[accel] = max(have.get(accel, 0), count)
    for region in zones:
        zones[region].sort()
    missing = [r for r, zs in zones.items() if not zs]
    if missing:
        raise ValueError(f"regions not in the GCP catalog {path}: {missing}")
    return Catalog(zones, types, accels, str(path))


# --- public images ------------------------------------------------------------------------------

#: (project, name, family, architecture, size GB, deprecated)
PUBLIC_IMAGES: tuple[tuple[str, str, str | None, str, int, bool], ...] = (
    ("debian-cloud", "debian-12-bookworm-v20261014", "debian-12", "X86_64", 10, True),
    ("debian-cloud", "debian-12-bookworm-v20261111", "debian-12", "X86_64", 10, False),
    ("debian-cloud", "debian-12-bookworm-arm64-v20261111", "debian-12-arm64", "ARM64", 10, False),
    ("debian-cloud", "debian-11-bullseye-v20261111", "debian-11", "X86_64", 10, False),
    ("ubuntu-os-cloud", "ubuntu-2204-jammy-v20261119", "ubuntu-2204-lts", "X86_64", 10, False),
    (
        "ubuntu-os-cloud",
        "ubuntu-2204-jammy-arm64-v20261119",
        "ubuntu-2204-lts-arm64",
        "ARM64",
        10,
        False,
    ),
    (
        "ubuntu-os-cloud",
        "ubuntu-2404-noble-amd64-v20261119",
        "ubuntu-2404-lts-amd64",
        "X86_64",
        10,
        False,
    ),
    (
        "ubuntu-os-accelerator-images",
        "ubuntu-accelerator-2204-amd64-with-nvidia-550-v20261119",
        "ubuntu-accelerator-2204-amd64-with-nvidia-550",
        "X86_64",
        50,
        False,
    ),
    (
        "deeplearning-platform-release",
        "common-cu124-v20261101-debian-11-py310",
        "common-cu124-debian-11-py310",
        "X86_64",
        50,
        False,
    ),
    (
        "deeplearning-platform-release",
        "common-cpu-v20261101-debian-11-py310",
        "common-cpu-debian-11-py310",
        "X86_64",
        50,
        False,
    ),
)


def catalog_images() -> list[tuple[str, str]]:
    """(project, image) of every image the catalog's images.csv names (the images a
    SkyPilot-style provider picks by default)."""
    path = catalog_path()
    if path is None or not (path.parent / "images.csv").is_file():
        return []
    out = []
    with open(path.parent / "images.csv", newline="") as f:
        for row in csv.DictReader(f):
            m = re.fullmatch(r"projects/([^/]+)/global/images/([^/]+)", row.get("ImageId") or "")
            if m:
                out.append((m.group(1), m.group(2)))
    return out


# --- helpers ------------------------------------------------------------------------------------

_PACIFIC = datetime.timezone(datetime.timedelta(hours=-8))
_NAME_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
EMPTY_FINGERPRINT = "42WmSpB8rSM="


def stamp(t: float | None = None) -> str:
    """A timestamp as GCE writes them: RFC 3339 with milliseconds in US Pacific time."""
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, _PACIFIC).isoformat(
        timespec="milliseconds"
    )


def fingerprint(value: Any) -> str:
    if not value:
        return EMPTY_FINGERPRINT
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


class ApiError(Exception):
    """An error answer: HTTP ``status`` with Google's error JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        status_name: str | None = None,
        details: Sequence[JSON] = (),
        extra: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.domain = domain
        self.status_name = status_name
        self.details = list(details)
        self.extra = dict(extra or {})
        self.short: str | None = None  # the errors[] entry's message, when it differs

    def body(self) -> JSON:
        err: JSON = {
            "code": self.status,
            "message": self.message,
            "errors": [
                {
                    "message": self.short or self.message,
                    "domain": self.domain,
                    "reason": self.reason,
                    **self.extra,
                }
            ],
        }
        if self.status_name:
            err["status"] = self.status_name
        if self.details:
            err["details"] = self.details
        return {"error": err}


def not_found(path: str) -> ApiError:
    return ApiError(404, f"The resource '{path}' was not found", "notFound")


def invalid(field: str, value: Any, why: str = "") -> ApiError:
    message = f"Invalid value for field '{field}': '{value}'."
    return ApiError(400, f"{message} {why}".strip(), "invalid")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "badRequest")


def not_ready(path: str) -> ApiError:
    return ApiError(400, f"The resource '{path}' is not ready", "resourceNotReady")


def op_error(code: str, message: str, details: Sequence[JSON] = ()) -> JSON:
    e: JSON = {"code": code, "message": message}
    if details:
        e["errorDetails"] = list(details)
    return e


_HTTP_MESSAGES = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    503: "SERVICE UNAVAILABLE",
}


def _strip_base(value: str) -> str:
    for prefix in (API_BASE, "https://compute.googleapis.com/compute/v1/"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    m = re.match(r"^https?://[^/]+/compute/v1/", value)
    return value[m.end() :] if m else value


def parse_ref(value: Any, scope: str, collection: str) -> tuple[str | None, str, str] | None:
    """A full or partial resource URL -> (project or None, scope value, name); ``scope`` is
    "zones", "regions" or "global". None when it is not such a URL (a bare name is not)."""
    if not isinstance(value, str) or not value:
        return None
    rest = _strip_base(value)
    if scope == "global":
        m = re.fullmatch(rf"(?:projects/([^/]+)/)?global/{collection}/(.+)", rest)
        return (m.group(1), "", m.group(2)) if m else None
    m = re.fullmatch(rf"(?:projects/([^/]+)/)?{scope}/([^/]+)/{collection}/([^/]+)", rest)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# --- filters ------------------------------------------------------------------------------------


class FilterError(ValueError):
    pass


_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) |
        (?P<op>!=|>=|<=|=|>|<|:) |
        (?P<dq>"(?:[^"\\]|\\.)*") | (?P<sq>'(?:[^'\\]|\\.)*') |
        (?P<word>[^\s()=!<>:"']+)
    )""",
    re.X,
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(expr, pos)
        if not m or m.end() == pos:
            raise FilterError(f"unexpected {expr[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind in ("dq", "sq"):
            out.append(("str", re.sub(r"\\(.)", r"\1", text[1:-1])))
        elif kind == "word":
            out.append(("word", text))
        else:
            out.append((kind, text))
    return out


Predicate = Callable[[JSON], bool]


def _values(obj: Any, path: list[str]) -> list[Any]:
    """Every value at ``path`` (lists are walked through)."""
    if isinstance(obj, list):
        return [v for item in obj for v in _values(item, path)]
    if not path:
        return [obj]
    if not isinstance(obj, dict) or path[0] not in obj:
        return []
    return _values(obj[path[0]], path[1:])


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _as_number(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _compare(op: str, have: Any, want: str) -> bool:
    h = _scalar(have)
    if op in ("=", ":"):
        return fnmatch.fnmatchcase(h, want) if "*" in want else h == want
    if op == "!=":
        return not (fnmatch.fnmatchcase(h, want) if "*" in want else h == want)
    hn, wn = _as_number(h), _as_number(want)
    a: Any = hn if hn is not None and wn is not None else h
    b: Any = wn if hn is not None and wn is not None else want
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.toks = _tokens(expr)
        self.i = 0
        self.modes: set[str] = set()

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FilterError("unexpected end")
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        if not self.toks:
            return lambda _r: True
        pred = self.or_expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()}")
        if len(self.modes) > 1:
            raise FilterError("regular expressions (eq/ne) and AIP-160 operators cannot be mixed")
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while (tok := self.peek()) is not None and tok not in (("rp", ")"), ("word", "OR")):
            if tok == ("word", "AND"):
                self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def unary(self) -> Predicate:
        tok = self.peek()
        if tok == ("word", "NOT"):
            self.take()
            inner = self.unary()
            return lambda r: not inner(r)
        if tok is not None and tok[0] == "word" and tok[1].startswith("-") and len(tok[1]) > 1:
            self.toks[self.i] = ("word", tok[1][1:])
            inner = self.unary()
            return lambda r: not inner(r)
        return self.primary()

    def primary(self) -> Predicate:
        tok = self.take()
        if tok[0] == "lp":
            inner = self.or_expr()
            if self.take()[0] != "rp":
                raise FilterError("missing )")
            return inner
        if tok[0] != "word" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", tok[1]):
            raise FilterError(f"expected a field name, got {tok[1]!r}")
        field = tok[1]
        op_tok = self.take()
        if op_tok[0] == "word" and op_tok[1] in ("eq", "ne"):
            self.modes.add("regex")
            return self.regex(field, op_tok[1] == "ne")
        if op_tok[0] != "op":
            raise FilterError(f"expected an operator after {field!r}, got {op_tok[1]!r}")
        self.modes.add("aip")
        value_tok = self.take()
        if value_tok[0] not in ("word", "str"):
            raise FilterError(f"expected a value after {field} {op_tok[1]}")
        op, want, path = op_tok[1], value_tok[1], field.split(".")
        if op == ":" and want == "*":
            return lambda r: bool(_values(r, path))
        if op == "!=":
            return lambda r: not any(_compare("=", v, want) for v in _values(r, path))
        return lambda r: any(_compare(op, v, want) for v in _values(r, path))

    def regex(self, field: str, negate: bool) -> Predicate:
        tok = self.take()
        if tok[0] not in ("word", "str"):
            raise FilterError(f"expected a regular expression after {field}")
        pattern = tok[1]
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise FilterError(f"bad regular expression {pattern!r}: {exc}") from None
        path = field.split(".")

        def pred(r: JSON) -> bool:
            hit = any(rx.fullmatch(_scalar(v)) for v in _values(r, path))
            return not hit if negate else hit

        return pred


def compile_filter(expr: str | None) -> Predicate:
    """A predicate on resource JSON for a list ``filter``; :class:`ApiError` 400 when the
    expression is not one the stand-in understands."""
    if not expr or not expr.strip():
        return lambda _r: True
    try:
        return _Parser(expr).parse()
    except FilterError as exc:
        raise ApiError(
            400,
            f"Invalid value for field 'filter': '{expr}'. Invalid list filter expression.",
            "invalid",
            extra={"debugInfo": str(exc)},
        ) from None


# --- credentials --------------------------------------------------------------------------------

_CREDENTIALS_CLASS: Any = None


def local_credentials(token: str = "styx-test-token", *, fail_refresh: bool = False) -> Any:
    """google-auth credentials for the test world that never leave the machine: they send
    ``Authorization: Bearer <token>`` and "refresh" locally. Use them instead of
    ``AnonymousCredentials`` to see a 401 as the client raises it for real credentials: on a 401
    the client refreshes and retries twice, then raises ``Unauthorized`` (with anonymous
    credentials the refresh itself raises ``google.auth.exceptions.InvalidOperation``).
    ``fail_refresh`` makes every refresh raise ``google.auth.exceptions.RefreshError`` as a
    revoked or expired login does (before any request reaches the API)."""
    global _CREDENTIALS_CLASS
    if _CREDENTIALS_CLASS is None:
        from google.auth import credentials as ga_credentials
        from google.auth import exceptions as ga_exceptions

        class TestWorldCredentials(ga_credentials.Credentials):  # type: ignore[misc]
            def __init__(self, token: str, fail_refresh: bool) -> None:
                super().__init__()
                self._initial = token
                self._fail = fail_refresh
                self.refreshes = 0
                if not fail_refresh:
                    self.token = token

            def refresh(self, request: Any) -> None:
                self.refreshes += 1
                if self._fail:
                    raise ga_exceptions.RefreshError(
                        "('invalid_grant: Token has been expired or revoked.', "
                        "{'error': 'invalid_grant', 'error_description': 'Token has been expired or revoked.'})"
                    )
                self.token = self._initial
                self.expiry = None

        _CREDENTIALS_CLASS = TestWorldCredentials
    return _CREDENTIALS_CLASS(token, fail_refresh)


# --- guard against the real endpoint ------------------------------------------------------------


@contextlib.contextmanager
def block_google_endpoints() -> Iterator[list[str]]:
    """While active, looking up ``*.googleapis.com`` / ``*.google.com`` fails (socket.gaierror);
    yields the list of names that were tried (e.g. by ``ExtendedOperation.result()``, see the
    module docstring)."""
    tried: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(("googleapis.com", "google.com", "googleusercontent.com")):
            tried.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"test world: {name} is not reachable")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = guarded  # type: ignore[assignment]
    try:
        yield tried
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]


# --- state --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Op:
    data: JSON
    scope: str  # "zones/Z", "regions/R" or "global"
    done: bool = False


@dataclasses.dataclass
class _Instance:
    zone: str
    name: str
    data: JSON
    mt: MachineType
    region: str
    network: str
    subnet: str
    ip: str
    disks: list[str]
    pending: str | None = None  # the operation whose effect is still to come


@dataclasses.dataclass
class StockoutRule:
    """Inserts (and starts) matching this rule fail with ``code`` (see :meth:`GCEServer.stockout`)."""

    zones: tuple[str, ...] | None
    machine_type: str | None
    accelerator: str | None
    spot: bool | None
    code: str
    on: tuple[str, ...]
    count: int
    hits: int = 0

    def matches(self, zone: str, mt: str, accel: str | None, spot: bool, action: str) -> bool:
        if self.count == 0 or action not in self.on:
            return False
        if self.zones is not None and zone not in self.zones:
            return False
        if self.machine_type and not fnmatch.fnmatchcase(mt, self.machine_type):
            return False
        if self.accelerator and not (accel and fnmatch.fnmatchcase(accel, self.accelerator)):
            return False
        return self.spot is None or self.spot == spot


@dataclasses.dataclass
class _Transient:
    count: int
    status: int
    method: str | None
    path: re.Pattern[str] | None
    hits: int = 0


# Default limits: generous, so only a test that sets one trips over it.
_REGION_QUOTA_DEFAULTS = {
    "CPUS": 2400.0,
    "PREEMPTIBLE_CPUS": 0.0,  # 0: spot vCPUs count against the family's quota
    "INSTANCES": 6000.0,
    "DISKS_TOTAL_GB": 409600.0,
    "SSD_TOTAL_GB": 204800.0,
    "IN_USE_ADDRESSES": 200.0,
    **{m: 2400.0 for m in FAMILY_CPU_QUOTA.values()},
    **{m: 64.0 for m in GPU_QUOTA_METRIC.values()},
    **{f"PREEMPTIBLE_{m}": 64.0 for m in GPU_QUOTA_METRIC.values()},
}
_GLOBAL_QUOTA_DEFAULTS = {
    "CPUS_ALL_REGIONS": 10000.0,
    "GPUS_ALL_REGIONS": 256.0,
    "FIREWALLS": 500.0,
    "NETWORKS": 50.0,
    "SUBNETWORKS": 275.0,
    "IMAGES": 2000.0,
}


class GCEServer:
    """The stand-in: ``with GCEServer() as gce: ...`` (or :meth:`start` / :meth:`stop`).

    ``regions`` maps region -> the default network's subnet CIDR there (within 198.18.0.0/15);
    ``auto_pool`` lists the /24s auto-mode networks take their subnets from. ``op_latency`` keeps
    operations RUNNING that many seconds; ``wait_timeout`` bounds an operations ``wait``.
    """

    def __init__(
        self,
        project: str = PROJECT,
        regions: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        *,
        port: int = 0,
        op_latency: float = 0.0,
        wait_timeout: float = WAIT_TIMEOUT,
        auto_pool: Sequence[str] | None = None,
        catalog: Catalog | None = None,
        default_firewalls: bool = True,
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError("the stand-in binds 127.0.0.1 only (the test world's network rule)")
        self.project = project
        self.region_cidrs = dict(regions or slot_regions(0))
        for region, cidr in self.region_cidrs.items():
            if not ipaddress.ip_network(cidr).subnet_of(TEST_NET):  # type: ignore[arg-type]
                raise ValueError(f"{region}: {cidr} is outside {TEST_NET}")
        self.auto_pool = list(auto_pool if auto_pool is not None else slot_auto_pool(0))
        self.host = host
        self._port = port
        self.catalog = catalog or load_catalog(self.region_cidrs)
        self.default_op_latency = op_latency
        self.wait_timeout = wait_timeout
        self.default_firewalls = default_firewalls
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._log_lock = threading.Lock()
        self._listeners: list[Callable[[str, JSON], None]] = []
        self._rng = random.Random()
        self._sched: list[tuple[float, int, Callable[[], None]]] = []
        self._sched_seq = itertools.count()
        self._sched_cond = threading.Condition()
        self._stopping = False
        self._httpd: ThreadingHTTPServer | None = None
        self._also: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._zone_region = {z: r for r, zs in self.catalog.zones.items() for z in zs}
        self._images = self._make_images()
        self._init_state()

    # --- life cycle ----------------------------------------------------------------------------

    def _init_state(self) -> None:
        with self._lock:
            self._epoch = getattr(self, "_epoch", 0) + 1
            self.op_latency: dict[str | None, float] = {None: self.default_op_latency}
            self.request_delay: list[tuple[re.Pattern[str] | None, float]] = []
            self.preempt_grace = 0.0
            self._instances: dict[tuple[str, str], _Instance] = {}
            self._disks: dict[tuple[str, str], JSON] = {}
            self._ops: dict[str, _Op] = {}
            self._request_ids: dict[str, str] = {}
            self._networks: dict[str, JSON] = {}
            self._subnets: dict[tuple[str, str], JSON] = {}
            self._firewalls: dict[str, JSON] = {}
            self._used_ips: dict[str, str] = {}  # ip -> owner
            self._nat_ips: dict[str, str] = {}
            self._quota: dict[tuple[str, str], float] = {}  # (region or "global", metric)
            self._quota_mode: dict[tuple[str, str], str] = {}
            self._stockouts: list[StockoutRule] = []
            self._transient: list[_Transient] = []
            self._auth: str | None = None
            self._project_metadata: JSON = {
                "kind": "compute#metadata",
                "fingerprint": EMPTY_FINGERPRINT,
            }
            self._log: list[JSON] = []
            self._project_id = self._new_id()
            self._created = stamp()
            self._make_default_network()

    def start(self) -> GCEServer:
        server = self

        class Handler(_Handler):
            gce = server

        self._handler = Handler
        self._httpd = _HTTPServer((self.host, self._port), Handler)
        self._port = self._httpd.server_address[1]
        for target, name in (
            (self._httpd.serve_forever, "gce-http"),
            (self._run_scheduler, "gce-ops"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping = True
        with self._sched_cond:
            self._sched_cond.notify_all()
        with self._cond:
            self._cond.notify_all()
        for extra in self._also:
            extra.shutdown()
            extra.server_close()
        self._also.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for t in self._threads:
            t.join(5)
        self._threads.clear()

    def __enter__(self) -> GCEServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The ``api_endpoint`` to give the client."""
        return f"http://{self.host}:{self._port}"

    def listen_also(self, address: str) -> str:
        """Serve on ``address`` too (a test-net address, e.g. a subnet's gateway, where the
        hosts behind the instances reach the API and the metadata server); its base URL."""
        if ipaddress.ip_address(address) not in TEST_NET:
            raise ValueError(f"{address} is outside {TEST_NET}")
        httpd = _HTTPServer((address, 0), self._handler)
        threading.Thread(target=httpd.serve_forever, name="gce-http-also", daemon=True).start()
        self._also.append(httpd)
        return f"http://{address}:{httpd.server_address[1]}"

    def metadata_token(self, client_ip: str) -> str | None:
        """The metadata server's answer for an instance at ``client_ip``: an access token of
        its service account (``sa-<instance>``), or None when no instance there has one."""
        with self._lock:
            for inst in self._instances.values():
                nics = inst.data.get("networkInterfaces") or []
                if inst.data.get("status") == "RUNNING" and any(
                    n.get("networkIP") == client_ip for n in nics
                ):
                    return f"sa-{inst.data['name']}" if inst.data.get("serviceAccounts") else None
        return None

    def client_kwargs(self, credentials: Any = None) -> dict[str, Any]:
        """Keyword arguments that point any ``compute_v1.*Client`` here (with
        ``AnonymousCredentials`` unless ``credentials`` are given, e.g.
        :func:`local_credentials`)."""
        if credentials is None:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        return {
            "credentials": credentials,
            "client_options": {"api_endpoint": self.url},
            "transport": "rest",
        }

    def client(self, service: str, credentials: Any = None) -> Any:
        """``compute_v1.<service>Client`` pointed here, e.g. ``client("ZoneOperations")``."""
        from google.cloud import compute_v1

        name = service if service.endswith("Client") else f"{service}Client"
        return getattr(compute_v1, name)(**self.client_kwargs(credentials))

    def reset(self) -> None:
        """Forget everything: instances, disks, operations, networks (back to the default one),
        faults, quotas, metadata and the request log. Listeners hear "cleared"."""
        with self._sched_cond:
            self._sched.clear()
        self._init_state()
        with self._cond:
            self._cond.notify_all()
        self._notify("cleared", {})

    def subscribe(self, listener: Callable[[str, JSON], None]) -> None:
        """Call ``listener(event, info)`` on instance life events: "running", "stopped",
        "deleted", "reset", "metadata", "project-metadata", "cleared". Power-off events
        ("stopped", "deleted") are delivered before the operation is DONE; the listener is
        called without the server's lock and should return quickly. ``info`` has "instance"
        (its JSON), "subnet_cidr", "network_cidrs" and "project_ssh_keys"."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, JSON], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # --- faults --------------------------------------------------------------------------------

    def stockout(
        self,
        zone: str | Iterable[str] | None = None,
        *,
        machine_type: str | None = None,
        accelerator: str | None = None,
        spot: bool | None = None,
        code: str = "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        on: Iterable[str] = ("insert", "start"),
        count: int = -1,
    ) -> StockoutRule:
        """Make inserts (and starts) in ``zone`` (a zone, several, or None: every zone) fail
        with ``code`` in their operation, optionally only for ``machine_type`` / ``accelerator``
        (fnmatch patterns) or only spot (``spot=True``) / only standard (``False``); ``count``
        times (-1: until :meth:`clear_faults`)."""
        zones = None if zone is None else ((zone,) if isinstance(zone, str) else tuple(zone))
        for z in zones or ():
            if z not in self._zone_region:
                raise ValueError(f"unknown zone {z!r}")
        rule = StockoutRule(zones, machine_type, accelerator, spot, code, tuple(on), count)
        with self._lock:
            self._stockouts.append(rule)
        return rule

    def set_quota(self, region: str, metric: str, limit: float, *, mode: str = "operation") -> None:
        """Set a quota limit (``region`` "global" for project-wide ones such as
        GPUS_ALL_REGIONS). Going over it fails the insert/start: in its operation
        (``mode="operation"``, code QUOTA_EXCEEDED) or as an HTTP 403 ``quotaExceeded`` answer
        to the call itself (``mode="http"``)."""
        if mode not in ("operation", "http"):
            raise ValueError("mode is 'operation' or 'http'")
        if region != "global" and region not in self.region_cidrs:
            raise ValueError(f"unknown region {region!r}")
        with self._lock:
            self._quota[(region, metric)] = float(limit)
            self._quota_mode[(region, metric)] = mode

    def auth_failure(self, kind: str | None = "unauthenticated") -> None:
        """Answer every call with an auth error: "unauthenticated" (401), "forbidden" (403,
        missing permission), "disabled" (403, the Compute API is not enabled); None ends it."""
        if kind not in (None, "unauthenticated", "forbidden", "disabled"):
            raise ValueError(f"unknown auth failure {kind!r}")
        with self._lock:
            self._auth = kind

    def slow(
        self,
        ops: float | None = None,
        *,
        op_types: Iterable[str] | None = None,
        requests: float | None = None,
        path: str | None = None,
    ) -> None:
        """``ops``: operations (of ``op_types``, e.g. {"insert", "start"}; all when None) stay
        RUNNING that many seconds. ``requests``: every request (whose path matches the regular
        expression ``path``) is answered that much later."""
        with self._lock:
            if ops is not None:
                for t in op_types or [None]:
                    self.op_latency[t] = float(ops)
            if requests is not None:
                self.request_delay.append((re.compile(path) if path else None, float(requests)))

    def fail_next(
        self, n: int = 1, *, status: int = 503, method: str | None = None, path: str | None = None
    ) -> _Transient:
        """Answer the next ``n`` calls (of ``method``, whose path matches ``path``) with a
        transient error: 503 backendError, or 429 rateLimitExceeded, or 500 internalError."""
        if status not in (429, 500, 503):
            raise ValueError("transient errors are 429, 500 or 503")
        rule = _Transient(n, status, method, re.compile(path) if path else None)
        with self._lock:
            self._transient.append(rule)
        return rule

    def clear_faults(self) -> None:
        """End stockouts, auth failures, transient errors and slowness (quotas stay)."""
        with self._lock:
            self._stockouts.clear()
            self._transient.clear()
            self._auth = None
            self.op_latency = {None: self.default_op_latency}
            self.request_delay = []

    def preempt(self, name: str, zone: str | None = None) -> JSON:
        """Preempt the SPOT (or preemptible) instance ``name``: TERMINATED, or deleted when its
        ``instanceTerminationAction`` is DELETE, with a DONE ``compute.instances.preempted``
        zone operation (returned). After ``preempt_grace`` seconds in STOPPING when set."""
        with self._lock:
            inst = self._find(name, zone)
            sched = inst.data.get("scheduling", {})
            if sched.get("provisioningModel") != "SPOT" and not sched.get("preemptible"):
                raise ValueError(f"{name} is not a spot or preemptible instance")
            if inst.data["status"] not in ("RUNNING", "STAGING", "PROVISIONING"):
                raise ValueError(f"{name} is {inst.data['status']}, not running")
            delete = sched.get("instanceTerminationAction") == "DELETE"
            op = self._new_op(f"zones/{inst.zone}", "compute.instances.preempted", inst)
            op.data["user"] = "system"
            op.data["statusMessage"] = "Instance was preempted."
            inst.data["status"] = "STOPPING"
            inst.pending = op.data["name"]
            grace = self.preempt_grace
        effect = (
            (lambda: self._delete_effect(inst, op))
            if delete
            else (lambda: self._stop_effect(inst, op))
        )
        self._start_op(op, grace, effect)
        return copy.deepcopy(op.data)

    # --- inspection ----------------------------------------------------------------------------

    def instances(self) -> dict[str, JSON]:
        """``zone/name`` -> the instance's JSON (a copy)."""
        with self._lock:
            return {f"{z}/{n}": copy.deepcopy(i.data) for (z, n), i in self._instances.items()}

    def instance(self, name: str, zone: str | None = None) -> JSON:
        with self._lock:
            return copy.deepcopy(self._find(name, zone).data)

    def disks(self) -> dict[str, JSON]:
        with self._lock:
            return {f"{z}/{n}": copy.deepcopy(d) for (z, n), d in self._disks.items()}

    def firewalls(self) -> dict[str, JSON]:
        """Firewall rule name -> its JSON (a copy), the default network's own rules included."""
        with self._lock:
            return {n: copy.deepcopy(f) for n, f in self._firewalls.items()}

    def operations(self, op_type: str | None = None) -> list[JSON]:
        with self._lock:
            return [
                copy.deepcopy(o.data)
                for o in self._ops.values()
                if op_type is None or o.data.get("operationType") == op_type
            ]

    def requests(self, method: str | None = None, path: str | None = None) -> list[JSON]:
        """The request log: n, method, path, query, status, start (time.time()), duration (s)."""
        rx = re.compile(path) if path else None
        with self._log_lock:
            return [
                dict(e)
                for e in self._log
                if (method is None or e["method"] == method)
                and (rx is None or rx.search(e["path"]))
            ]

    def mark(self) -> int:
        """The log position now: pass it to :meth:`busy_seconds` or :meth:`requests_since`."""
        with self._log_lock:
            return len(self._log)

    def requests_since(self, n: int) -> list[JSON]:
        with self._log_lock:
            return [dict(e) for e in self._log[n:]]

    def busy_seconds(self, since: int = 0, *, waits: bool = True) -> float:
        """Seconds during which at least one request (logged after ``since``) was being
        answered; overlaps count once. ``waits=False`` leaves operations ``wait`` calls out (they
        block on purpose)."""
        entries = self.requests_since(since)
        spans = sorted(
            (e["start"], e["start"] + e["duration"])
            for e in entries
            if waits or not e["path"].endswith("/wait")
        )
        total, cur_s, cur_e = 0.0, None, None
        for s, e in spans:
            if cur_e is None or s > cur_e:
                if cur_e is not None and cur_s is not None:
                    total += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None and cur_s is not None:
            total += cur_e - cur_s
        return total

    def running_infos(self) -> list[JSON]:
        """The event info (as "running" events carry it) of every RUNNING instance."""
        with self._lock:
            return [
                self._event_info(i)
                for i in self._instances.values()
                if i.data["status"] == "RUNNING"
            ]

    def project_ssh_keys(self) -> list[str]:
        """The ``ssh-keys`` lines of the project's common instance metadata."""
        with self._lock:
            return self._ssh_keys(self._project_metadata)

    def quota_usage(self, region: str) -> dict[str, float]:
        with self._lock:
            return self._usage(region)

    # --- internals: ids, urls, ops ---------------------------------------------------------------

    def _new_id(self) -> str:
        return str(self._rng.randrange(10**18, 2**63 - 1))

    def _link(self, path: str, project: str | None = None) -> str:
        return f"{API_BASE}projects/{project or self.project}/{path}"

    def _new_op(self, scope: str, op_type: str, target: _Instance | JSON | str | None) -> _Op:
        now = time.time()
        name = (
            f"operation-{int(now * 1000)}-{self._rng.getrandbits(52):013x}-"
            f"{self._rng.getrandbits(32):08x}-{self._rng.getrandbits(32):08x}"
        )
        data: JSON = {
            "kind": "compute#operation",
            "id": self._new_id(),
            "name": name,
            "operationType": op_type,
            "status": "RUNNING",
            "user": f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
            "progress": 0,
            "insertTime": stamp(now),
            "startTime": stamp(now),
            "selfLink": self._link(f"{scope}/operations/{name}"),
        }
        if scope.startswith("zones/"):
            data["zone"] = self._link(scope)
        elif scope.startswith("regions/"):
            data["region"] = self._link(scope)
        if isinstance(target, _Instance):
            data["targetLink"] = target.data["selfLink"]
            data["targetId"] = target.data["id"]
        elif isinstance(target, dict):
            data["targetLink"] = target["selfLink"]
            data["targetId"] = target["id"]
        elif isinstance(target, str):
            data["targetLink"] = target
        op = _Op(data, scope)
        self._ops[name] = op
        return op

    def _latency(self, op_type: str) -> float:
        return self.op_latency.get(op_type, self.op_latency.get(None, 0.0))

    def _start_op(
        self,
        op: _Op,
        latency: float,
        effect: Callable[[], tuple[JSON | None, list[tuple[str, JSON]]]] | None,
        halfway: Callable[[], None] | None = None,
    ) -> None:
        """Finish ``op`` now (latency 0) or after ``latency`` s, applying ``effect`` first."""
        epoch = self._epoch
        if latency <= 0:
            if halfway:
                with self._lock:
                    halfway()
            self._finish(op, effect, epoch)
            return
        if halfway:

            def mid() -> None:
                with self._lock:
                    if self._epoch == epoch:
                        halfway()

            self._after(latency / 2, mid)
        self._after(latency, lambda: self._finish(op, effect, epoch))

    def _finish(
        self,
        op: _Op,
        effect: Callable[[], tuple[JSON | None, list[tuple[str, JSON]]]] | None,
        epoch: int,
    ) -> None:
        error: JSON | None = None
        events: list[tuple[str, JSON]] = []
        with self._lock:
            if op.done or self._epoch != epoch:
                return
            if effect is not None:
                try:
                    error, events = effect()
                except Exception as exc:  # a bug here must not hang waiters
                    error = {
                        "errors": [op_error("INTERNAL_ERROR", f"stand-in: {exc!r}")],
                        "_status": 500,
                    }
        for event, info in events:
            self._notify(event, info)
        with self._lock:
            if self._epoch != epoch:
                return
            op.done = True
            op.data.update(status="DONE", progress=100, endTime=stamp())
            if error:
                status = int(error.pop("_status", 400))
                op.data["error"] = error
                op.data["httpErrorStatusCode"] = status
                op.data["httpErrorMessage"] = _HTTP_MESSAGES.get(status, "BAD REQUEST")
            self._cond.notify_all()

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        with self._sched_cond:
            heapq.heappush(self._sched, (time.monotonic() + delay, next(self._sched_seq), fn))
            self._sched_cond.notify_all()

    def _run_scheduler(self) -> None:
        while not self._stopping:
            with self._sched_cond:
                if not self._sched:
                    self._sched_cond.wait(1.0)
                    continue
                due, _, fn = self._sched[0]
                now = time.monotonic()
                if due > now:
                    self._sched_cond.wait(due - now)
                    continue
                heapq.heappop(self._sched)
            try:
                fn()
            except Exception:  # keep the clock running
                import traceback

                traceback.print_exc()

    def _notify(self, event: str, info: JSON) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, info)
            except Exception:
                import traceback

                traceback.print_exc()

    def _event_info(self, inst: _Instance) -> JSON:
        net_cidrs = [
            s["ipCidrRange"]
            for (r, _n), s in self._subnets.items()
            if last(s["network"]) == inst.network
        ]
        subnet = self._subnets.get((inst.region, inst.subnet))
        return {
            "instance": copy.deepcopy(inst.data),
            "subnet_cidr": subnet["ipCidrRange"] if subnet else None,
            "network_cidrs": net_cidrs,
            "project_ssh_keys": self._ssh_keys(self._project_metadata),
        }

    @staticmethod
    def _ssh_keys(metadata: JSON) -> list[str]:
        keys = []
        for item in metadata.get("items") or []:
            if item.get("key") in ("ssh-keys", "sshKeys"):
                keys += [ln for ln in (item.get("value") or "").splitlines() if ln.strip()]
        return keys

    # --- the world's fixed parts -----------------------------------------------------------------

    def _make_images(self) -> dict[tuple[str, str], JSON]:
        images: dict[tuple[str, str], JSON] = {}
        rows: list[tuple[str, str, str | None, str, int, bool]] = list(PUBLIC_IMAGES)
        known = {(p, n) for p, n, *_ in rows}
        for project, name in catalog_images():
            if (project, name) not in known:
                arch = "ARM64" if "arm64" in name else "X86_64"
                size = 10 if project in ("ubuntu-os-cloud", "debian-cloud", "cos-cloud") else 50
                rows.append((project, name, None, arch, size, False))
                known.add((project, name))
        for project, name, family, arch, size, deprecated in rows:
            img: JSON = {
                "kind": "compute#image",
                "id": self._new_id(),
                "creationTimestamp": stamp(time.time() - 86400 * 30),
                "name": name,
                "description": f"{family or name}, built for the test world",
                "sourceType": "RAW",
                "status": "READY",
                "archiveSizeBytes": str(size * 1024**3 // 4),
                "diskSizeGb": str(size),
                "selfLink": f"{API_BASE}projects/{project}/global/images/{name}",
                "labelFingerprint": EMPTY_FINGERPRINT,
                "storageLocations": ["us", "eu", "asia"],
                "architecture": arch,
                "guestOsFeatures": [
                    {"type": "VIRTIO_SCSI_MULTIQUEUE"},
                    {"type": "UEFI_COMPATIBLE"},
                    {"type": "GVNIC"},
                ],
            }
            if family:
                img["family"] = family
            if deprecated:
                img["deprecated"] = {"state": "DEPRECATED"}
            images[(project, name)] = img
        for (project, _name), img in images.items():
            if img.get("deprecated"):
                newer = [
                    i
                    for (p, _), i in images.items()
                    if p == project
                    and i.get("family") == img.get("family")
                    and not i.get("deprecated")
                ]
                if newer:
                    img["deprecated"]["replacement"] = newer[0]["selfLink"]
        return images

    def _make_default_network(self) -> None:
        net = self._network_json(
            "default", auto=True, description="Default network for the project"
        )
        self._networks["default"] = net
        for region, cidr in self.region_cidrs.items():
            self._add_subnet(region, "default", "default", cidr)
        if self.default_firewalls:
            for name, allowed, ranges, prio in (
                ("default-allow-icmp", [{"IPProtocol": "icmp"}], ["0.0.0.0/0"], 65534),
                (
                    "default-allow-internal",
                    [
                        {"IPProtocol": "tcp", "ports": ["0-65535"]},
                        {"IPProtocol": "udp", "ports": ["0-65535"]},
                        {"IPProtocol": "icmp"},
                    ],
                    ["198.18.0.0/15"],  # the world's own range (GCE: its auto-mode one)
                    65534,
                ),
                (
                    "default-allow-rdp",
                    [{"IPProtocol": "tcp", "ports": ["3389"]}],
                    ["0.0.0.0/0"],
                    65534,
                ),
                (
                    "default-allow-ssh",
                    [{"IPProtocol": "tcp", "ports": ["22"]}],
                    ["0.0.0.0/0"],
                    65534,
                ),
            ):
                self._firewalls[name] = self._firewall_json(
                    {"name": name, "allowed": allowed, "sourceRanges": ranges, "priority": prio},
                    "default",
                )

    def _network_json(
        self, name: str, *, auto: bool, description: str = "", mode: str = "REGIONAL"
    ) -> JSON:
        nid = self._new_id()
        return {
            "kind": "compute#network",
            "id": nid,
            "creationTimestamp": stamp(),
            "name": name,
            "description": description,
            "selfLink": self._link(f"global/networks/{name}"),
            "selfLinkWithId": self._link(f"global/networks/{nid}"),
            "autoCreateSubnetworks": auto,
            "subnetworks": [],
            "routingConfig": {"routingMode": mode},
            "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
            "mtu": 1460,
        }

    def _add_subnet(
        self, region: str, name: str, network: str, cidr: str, body: JSON | None = None
    ) -> JSON:
        net = ipaddress.ip_network(cidr)
        sid = self._new_id()
        sub: JSON = {
            **(body or {}),
            "kind": "compute#subnetwork",
            "id": sid,
            "creationTimestamp": stamp(),
            "name": name,
            "network": self._link(f"global/networks/{network}"),
            "ipCidrRange": str(net),
            "gatewayAddress": str(net.network_address + 1),
            "region": self._link(f"regions/{region}"),
            "selfLink": self._link(f"regions/{region}/subnetworks/{name}"),
            "privateIpGoogleAccess": bool((body or {}).get("privateIpGoogleAccess", False)),
            "purpose": "PRIVATE",
            "stackType": "IPV4_ONLY",
        }
        sub.setdefault("description", "")
        sub["fingerprint"] = fingerprint(sub["ipCidrRange"] + sid)
        self._subnets[(region, name)] = sub
        self._networks[network]["subnetworks"].append(sub["selfLink"])
        return sub

    def _firewall_json(self, body: JSON, network: str) -> JSON:
        fid = self._new_id()
        fw: JSON = {
            **body,
            "kind": "compute#firewall",
            "id": fid,
            "creationTimestamp": stamp(),
            "network": self._link(f"global/networks/{network}"),
            "selfLink": self._link(f"global/firewalls/{body['name']}"),
        }
        fw.setdefault("description", "")
        fw.setdefault("priority", 1000)
        fw.setdefault("direction", "INGRESS")
        fw.setdefault("disabled", False)
        fw.setdefault("logConfig", {"enable": False})
        if fw["direction"] == "INGRESS" and not any(
            k in fw for k in ("sourceRanges", "sourceTags", "sourceServiceAccounts")
        ):
            fw["sourceRanges"] = ["0.0.0.0/0"]
        return fw

    # --- quotas --------------------------------------------------------------------------------

    def _limit(self, region: str, metric: str) -> float:
        if (region, metric) in self._quota:
            return self._quota[(region, metric)]
        table = _GLOBAL_QUOTA_DEFAULTS if region == "global" else _REGION_QUOTA_DEFAULTS
        return table.get(metric, 1e9)

    def _demand(
        self, mt: MachineType, accel: tuple[str, int] | None, spot: bool, region: str
    ) -> dict[str, float]:
        """Quota metrics (per region) a running instance of this shape consumes."""
        out: dict[str, float] = collections.defaultdict(float)
        cpu_metric = FAMILY_CPU_QUOTA.get(mt.family, "CPUS")
        if spot and self._limit(region, "PREEMPTIBLE_CPUS") > 0:
            cpu_metric = "PREEMPTIBLE_CPUS"
        out[cpu_metric] += mt.cpus
        if accel:
            metric = GPU_QUOTA_METRIC.get(accel[0])
            if metric:
                if spot and self._limit(region, f"PREEMPTIBLE_{metric}") > 0:
                    metric = f"PREEMPTIBLE_{metric}"
                out[metric] += accel[1]
        return out

    def _instance_accel(self, inst_data: JSON) -> tuple[str, int] | None:
        for acc in inst_data.get("guestAccelerators") or []:
            return last(acc["acceleratorType"]), int(acc.get("acceleratorCount", 1))
        return None

    def _usage(self, region: str) -> dict[str, float]:
        use: dict[str, float] = collections.defaultdict(float)
        for inst in self._instances.values():
            if inst.region != region:
                continue
            use["INSTANCES"] += 1
            if inst.data["status"] in ("TERMINATED", "STOPPED", "SUSPENDED"):
                continue
            spot = inst.data.get("scheduling", {}).get("provisioningModel") == "SPOT"
            for k, v in self._demand(
                inst.mt, self._instance_accel(inst.data), spot, region
            ).items():
                use[k] += v
            for nic in inst.data.get("networkInterfaces", []):
                use["IN_USE_ADDRESSES"] += sum(
                    1 for ac in nic.get("accessConfigs", []) if ac.get("natIP")
                )
        for (z, _), disk in self._disks.items():
            if self._zone_region.get(z) == region:
                kind = "SSD_TOTAL_GB" if last(disk["type"]) in SSD_DISK_TYPES else "DISKS_TOTAL_GB"
                use[kind] += float(disk["sizeGb"])
        return use

    def _global_usage(self) -> dict[str, float]:
        use: dict[str, float] = collections.defaultdict(float)
        for inst in self._instances.values():
            if inst.data["status"] in ("TERMINATED", "STOPPED", "SUSPENDED"):
                continue
            use["CPUS_ALL_REGIONS"] += inst.mt.cpus
            accel = self._instance_accel(inst.data)
            if accel:
                use["GPUS_ALL_REGIONS"] += accel[1]
        use["FIREWALLS"] = len(self._firewalls)
        use["NETWORKS"] = len(self._networks)
        use["SUBNETWORKS"] = len(self._subnets)
        return use

    def _check_quota(
        self,
        region: str,
        mt: MachineType,
        accel: tuple[str, int] | None,
        spot: bool,
        disk: tuple[str, float] | None,
        new: bool,
    ) -> tuple[str, JSON] | None:
        """(mode, error) for the first quota this would exceed, or None."""
        want = self._demand(mt, accel, spot, region)
        if new:
            want["INSTANCES"] += 1
        if disk:
            want["SSD_TOTAL_GB" if disk[0] in SSD_DISK_TYPES else "DISKS_TOTAL_GB"] += disk[1]
        use = self._usage(region)
        for metric, amount in want.items():
            limit = self._limit(region, metric)
            if use.get(metric, 0.0) + amount > limit:
                return self._quota_mode.get((region, metric), "operation"), self._quota_error(
                    region, metric, limit
                )
        gwant = {
            "CPUS_ALL_REGIONS": float(mt.cpus),
            "GPUS_ALL_REGIONS": float(accel[1] if accel else 0),
        }
        guse = self._global_usage()
        for metric, amount in gwant.items():
            limit = self._limit("global", metric)
            if amount and guse.get(metric, 0.0) + amount > limit:
                return self._quota_mode.get(("global", metric), "operation"), self._quota_error(
                    "global", metric, limit
                )
        return None

    def _quota_error(self, region: str, metric: str, limit: float) -> JSON:
        where = "globally" if region == "global" else f"in region {region}"
        message = f"Quota '{metric}' exceeded.  Limit: {limit:.1f} {where}."
        info: JSON = {
            "metricName": f"compute.googleapis.com/{metric.lower()}",
            "limitName": f"{metric.replace('_', '-')}-per-project"
            + ("" if region == "global" else "-region"),
            "dimensions": {"global": "global"} if region == "global" else {"region": region},
            "limit": limit,
        }
        return {
            "errors": [op_error("QUOTA_EXCEEDED", message, [{"quotaInfo": info}])],
            "_status": 403,
        }

    def _stockout_error(self, rule: StockoutRule, zone: str, mt: str, accel: str | None) -> JSON:
        where = f"projects/{self.project}/zones/{zone}"
        if rule.code == "ZONE_RESOURCE_POOL_EXHAUSTED":
            message = (
                f"The zone '{where}' does not have enough resources available to fulfill the "
                "request.  Try a different zone, or try again later."
            )
            details: list[JSON] = []
        elif rule.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS":
            message = (
                f"The zone '{where}' does not have enough resources available to fulfill the "
                "request.  '(resource type:compute)'."
            )
            attachment = f"{accel}" if accel else ""
            details = [
                {
                    "errorInfo": {
                        "reason": "resource_availability",
                        "domain": "compute.googleapis.com",
                        "metadatas": {
                            "zone": zone,
                            "vmType": mt,
                            "attachment": attachment,
                            "zonesAvailable": "",
                        },
                    }
                },
                {
                    "help": {
                        "links": [
                            {
                                "description": "Troubleshooting documentation",
                                "url": "https://cloud.google.com/compute/docs/resource-error",
                            }
                        ]
                    }
                },
                {
                    "localizedMessage": {
                        "locale": "en-US",
                        "message": (
                            f"A {mt} VM instance{' with ' + accel if accel else ''} is currently "
                            f"unavailable in the {zone} zone. Alternatively, you can try your "
                            "request again with a different VM hardware configuration or at a "
                            "later time. For more information, see the troubleshooting "
                            "documentation."
                        ),
                    }
                },
            ]
        else:
            message = f"The zone '{where}' does not have enough resources available to fulfill the request."
            details = []
        return {"errors": [op_error(rule.code, message, details)], "_status": 503}

    def _stockout(self, zone: str, inst_data: JSON, mt: MachineType, action: str) -> JSON | None:
        spot = inst_data.get("scheduling", {}).get("provisioningModel") == "SPOT"
        accel = self._instance_accel(inst_data)
        name = accel[0] if accel else None
        for rule in self._stockouts:
            if rule.matches(zone, mt.name, name, spot, action):
                rule.hits += 1
                if rule.count > 0:
                    rule.count -= 1
                return self._stockout_error(rule, zone, mt.name, name)
        return None

    # --- dispatch ------------------------------------------------------------------------------

    def _serve(
        self, method: str, raw_path: str, body: bytes, authorization: str | None = None
    ) -> tuple[int, JSON]:
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path
        query = {
            k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()
        }
        for rx, delay in list(self.request_delay):
            if rx is None or rx.search(path):
                time.sleep(delay)
        route = _match_route(method, path)
        try:
            with self._lock:
                if self._auth:
                    raise self._auth_error(route, path, authorization)
                for rule in self._transient:
                    if (
                        rule.count != 0
                        and (rule.method in (None, method))
                        and (rule.path is None or rule.path.search(path))
                    ):
                        rule.count -= 1
                        rule.hits += 1
                        raise _transient_error(rule.status)
            if route is None:
                raise ApiError(
                    404, f"The requested URL {path} was not found on this server.", "notFound"
                )
            handler, params = route
            try:
                payload = json.loads(body) if body.strip() else {}
            except ValueError:
                raise ApiError(400, "Invalid JSON payload received.", "parseError") from None
            if not isinstance(payload, dict):
                raise ApiError(400, "Invalid JSON payload received.", "parseError")
            return 200, getattr(self, handler)(params, query, payload)
        except ApiError as err:
            return err.status, err.body()

    def _auth_error(
        self, route: tuple[str, dict[str, str]] | None, path: str, authorization: str | None
    ) -> ApiError:
        method_name = route[0] if route else "h_unknown_get"
        _, collection, verb = method_name.split("_", 2)
        verb = {"aggregatedList": "list"}.get(verb, verb)
        if self._auth == "unauthenticated":
            see = (
                "Expected OAuth 2 access token, login cookie or other valid authentication "
                "credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
            )
            if authorization:  # a token was sent: it is not (or no longer) valid
                message, short, reason, info = (
                    f"Request had invalid authentication credentials. {see}",
                    "Invalid Credentials",
                    "authError",
                    "ACCESS_TOKEN_EXPIRED",
                )
            else:
                message, short, reason, info = (
                    f"Request is missing required authentication credential. {see}",
                    "Login Required.",
                    "required",
                    "CREDENTIALS_MISSING",
                )
            method = f"compute.v1.{collection[:1].upper()}{collection[1:]}Service.{verb[:1].upper()}{verb[1:]}"
            err = ApiError(
                401,
                message,
                reason,
                status_name="UNAUTHENTICATED",
                extra={"location": "Authorization", "locationType": "header"},
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": info,
                        "domain": "googleapis.com",
                        "metadata": {"service": "compute.googleapis.com", "method": method},
                    }
                ],
            )
            err.short = short
            return err
        if self._auth == "forbidden":
            resource = path.split("/compute/v1/", 1)[-1]
            perm = f"compute.{collection}.{verb}"
            return ApiError(
                403,
                f"Required '{perm}' permission for '{resource}'",
                "forbidden",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "IAM_PERMISSION_DENIED",
                        "domain": "compute.googleapis.com",
                        "metadata": {"permission": perm, "resource": resource},
                    }
                ],
            )
        message = (
            f"Compute Engine API has not been used in project {PROJECT_NUMBER} before or it is "
            "disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
            f"compute.googleapis.com/overview?project={PROJECT_NUMBER} then retry."
        )
        return ApiError(
            403,
            message,
            "accessNotConfigured",
            domain="usageLimits",
            status_name="PERMISSION_DENIED",
            extra={"extendedHelp": "https://console.developers.google.com"},
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "SERVICE_DISABLED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "compute.googleapis.com",
                        "consumer": f"projects/{PROJECT_NUMBER}",
                    },
                }
            ],
        )

    def _log_request(self, entry: JSON) -> None:
        with self._log_lock:
            entry["n"] = len(self._log)
            self._log.append(entry)

    # --- common checks -------------------------------------------------------------------------

    def _project(self, p: JSON) -> None:
        if p["project"] != self.project:
            raise not_found(f"projects/{p['project']}")

    def _zone(self, p: JSON) -> str:
        self._project(p)
        zone = p["zone"]
        if zone not in self._zone_region:
            raise invalid("zone", zone, "Unknown zone.")
        return zone

    def _region(self, p: JSON) -> str:
        self._project(p)
        region = p["region"]
        if region not in self.region_cidrs:
            raise invalid("region", region, "Unknown region.")
        return region

    def _find(self, name: str, zone: str | None) -> _Instance:
        hits = [i for (z, n), i in self._instances.items() if n == name and zone in (None, z)]
        if not hits:
            raise KeyError(f"no instance {name!r}" + (f" in {zone}" if zone else ""))
        if len(hits) > 1:
            raise KeyError(f"instance {name!r} is in several zones; give zone=")
        return hits[0]

    def _get_instance(self, p: JSON) -> _Instance:
        zone = self._zone(p)
        inst = self._instances.get((zone, p["instance"]))
        if inst is None:
            raise not_found(f"projects/{self.project}/zones/{zone}/instances/{p['instance']}")
        return inst

    def _page(self, items: list[JSON], q: JSON, kind: str, link: str) -> JSON:
        pred = compile_filter(q.get("filter"))
        items = [i for i in items if pred(i)]
        items = self._order(items, q.get("orderBy"))
        offset = _decode_token(q.get("pageToken"))
        size = _page_size(q)
        page = items[offset : offset + size]
        out: JSON = {
            "kind": kind,
            "id": "projects/" + link.split("/projects/", 1)[-1],
            "selfLink": link,
        }
        if page:
            out["items"] = copy.deepcopy(page)
        if offset + size < len(items):
            out["nextPageToken"] = _encode_token(offset + size)
        return out

    @staticmethod
    def _order(items: list[JSON], order_by: str | None) -> list[JSON]:
        if not order_by:
            return sorted(items, key=lambda i: i.get("name", ""))
        m = re.fullmatch(r"\s*(name|creationTimestamp)(\s+desc)?\s*", order_by)
        if not m:
            raise invalid(
                "orderBy", order_by, "Sorting is supported on name and creationTimestamp."
            )
        return sorted(items, key=lambda i: i.get(m.group(1), ""), reverse=bool(m.group(2)))

    def _aggregated(
        self, scoped: dict[str, list[JSON]], key: str, q: JSON, kind: str, link: str
    ) -> JSON:
        pred = compile_filter(q.get("filter"))
        flat = [
            (scope, item)
            for scope in sorted(scoped)
            for item in sorted(scoped[scope], key=lambda i: i.get("name", ""))
            if pred(item)
        ]
        offset = _decode_token(q.get("pageToken"))
        size = _page_size(q)
        page = flat[offset : offset + size]
        items: JSON = {}
        for scope in sorted(scoped):
            chunk = [copy.deepcopy(i) for s, i in page if s == scope]
            if chunk:
                items[scope] = {key: chunk}
            else:
                items[scope] = {
                    "warning": {
                        "code": "NO_RESULTS_ON_PAGE",
                        "message": f"There are no results for scope '{scope}' on this page.",
                        "data": [{"key": "scope", "value": scope}],
                    }
                }
        out: JSON = {
            "kind": kind,
            "id": "projects/" + link.split("/projects/", 1)[-1],
            "items": items,
            "selfLink": link,
        }
        if offset + size < len(flat):
            out["nextPageToken"] = _encode_token(offset + size)
        return out

    def _dedupe(self, q: JSON) -> JSON | None:
        rid = q.get("requestId")
        if rid and rid in self._request_ids and self._request_ids[rid] in self._ops:
            return copy.deepcopy(self._ops[self._request_ids[rid]].data)
        return None

    def _remember(self, q: JSON, op: _Op) -> None:
        if q.get("requestId"):
            self._request_ids[q["requestId"]] = op.data["name"]

    # --- projects, zones, regions, types, images --------------------------------------------------

    def h_projects_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            guse = self._global_usage()
            quotas = [
                {"metric": m, "limit": self._limit("global", m), "usage": guse.get(m, 0.0)}
                for m in sorted(
                    {*_GLOBAL_QUOTA_DEFAULTS, *(m for r, m in self._quota if r == "global")}
                )
            ]
            return {
                "kind": "compute#project",
                "id": self._project_id,
                "creationTimestamp": self._created,
                "name": self.project,
                "commonInstanceMetadata": copy.deepcopy(self._project_metadata),
                "quotas": quotas,
                "selfLink": self._link(""),
                "defaultServiceAccount": f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
                "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS",
                "defaultNetworkTier": "PREMIUM",
                "vmDnsSetting": "ZONAL_ONLY",
            }

    def h_projects_setCommonInstanceMetadata(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            if b.get("fingerprint", "") != self._project_metadata["fingerprint"]:
                raise ApiError(
                    412,
                    "Supplied fingerprint does not match current metadata fingerprint.",
                    "conditionNotMet",
                )
            items = _check_metadata(b.get("items") or [], "metadata")
            op = self._new_op(
                "global", "compute.projects.setCommonInstanceMetadata", self._link("")
            )
            op.data["targetId"] = self._project_id
            self._remember(q, op)
            latency = self._latency("setCommonInstanceMetadata")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            self._project_metadata = {"kind": "compute#metadata", "fingerprint": fingerprint(items)}
            if items:
                self._project_metadata["items"] = items
            return None, [
                ("project-metadata", {"project_ssh_keys": self._ssh_keys(self._project_metadata)})
            ]

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def _zone_json(self, zone: str) -> JSON:
        region = self._zone_region[zone]
        return {
            "kind": "compute#zone",
            "id": str(int(hashlib.sha256(zone.encode()).hexdigest()[:12], 16)),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": zone,
            "description": zone,
            "status": "UP",
            "region": self._link(f"regions/{region}"),
            "selfLink": self._link(f"zones/{zone}"),
            "availableCpuPlatforms": [
                "Intel Cascade Lake",
                "Intel Ice Lake",
                "AMD Milan",
                "AMD Genoa",
            ],
            "supportsPzs": False,
        }

    def h_zones_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        self._project(p)
        return self._page(
            [self._zone_json(z) for z in self._zone_region],
            q,
            "compute#zoneList",
            self._link("zones"),
        )

    def h_zones_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        zone = p["zone"]
        self._project(p)
        if zone not in self._zone_region:
            raise not_found(f"projects/{self.project}/zones/{zone}")
        return self._zone_json(zone)

    def _region_json(self, region: str) -> JSON:
        with self._lock:
            use = self._usage(region)
            metrics = sorted({*_REGION_QUOTA_DEFAULTS, *(m for r, m in self._quota if r == region)})
            return {
                "kind": "compute#region",
                "id": str(int(hashlib.sha256(region.encode()).hexdigest()[:12], 16)),
                "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
                "name": region,
                "description": region,
                "status": "UP",
                "zones": [self._link(f"zones/{z}") for z in self.catalog.zones[region]],
                "quotas": [
                    {"metric": m, "limit": self._limit(region, m), "usage": use.get(m, 0.0)}
                    for m in metrics
                ],
                "selfLink": self._link(f"regions/{region}"),
                "supportsPzs": False,
            }

    def h_regions_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        self._project(p)
        return self._page(
            [self._region_json(r) for r in self.region_cidrs],
            q,
            "compute#regionList",
            self._link("regions"),
        )

    def h_regions_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        self._project(p)
        if p["region"] not in self.region_cidrs:
            raise not_found(f"projects/{self.project}/regions/{p['region']}")
        return self._region_json(p["region"])

    def _machine_type_json(self, zone: str, mt: MachineType) -> JSON:
        gb = mt.memory_mb / 1024
        out: JSON = {
            "kind": "compute#machineType",
            "id": str(int(hashlib.sha256(f"{zone}/{mt.name}".encode()).hexdigest()[:12], 16)),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": mt.name,
            "description": f"{mt.cpus} vCPU{'s' if mt.cpus != 1 else ''}, {gb:g} GB RAM",
            "guestCpus": mt.cpus,
            "memoryMb": mt.memory_mb,
            "imageSpaceGb": 0,
            "maximumPersistentDisks": 16 if mt.shared_cpu else 128,
            "maximumPersistentDisksSizeGb": "3072" if mt.shared_cpu else "263168",
            "zone": zone,
            "selfLink": self._link(f"zones/{zone}/machineTypes/{mt.name}"),
            "isSharedCpu": mt.shared_cpu,
            "architecture": "ARM64" if mt.arm else "X86_64",
        }
        if mt.accelerators:
            out["accelerators"] = [
                {
                    "guestAcceleratorType": mt.accelerators[0],
                    "guestAcceleratorCount": mt.accelerators[1],
                }
            ]
        return out

    def h_machineTypes_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        zone = self._zone(p)
        items = [
            self._machine_type_json(zone, mt)
            for mt in self.catalog.machine_types.get(zone, {}).values()
        ]
        return self._page(
            items, q, "compute#machineTypeList", self._link(f"zones/{zone}/machineTypes")
        )

    def h_machineTypes_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        zone = self._zone(p)
        mt = self.catalog.machine_types.get(zone, {}).get(p["name"])
        if mt is None:
            raise not_found(f"projects/{self.project}/zones/{zone}/machineTypes/{p['name']}")
        return self._machine_type_json(zone, mt)

    def h_machineTypes_aggregatedList(self, p: JSON, q: JSON, b: JSON) -> JSON:
        self._project(p)
        scoped = {
            f"zones/{z}": [
                self._machine_type_json(z, mt)
                for mt in self.catalog.machine_types.get(z, {}).values()
            ]
            for z in self._zone_region
        }
        return self._aggregated(
            scoped,
            "machineTypes",
            q,
            "compute#machineTypeAggregatedList",
            self._link("aggregated/machineTypes"),
        )

    def _accel_json(self, zone: str, name: str, count: int) -> JSON:
        return {
            "kind": "compute#acceleratorType",
            "id": str(int(hashlib.sha256(f"{zone}/{name}".encode()).hexdigest()[:12], 16)),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": name,
            "description": GPU_DESCRIPTION.get(name, name),
            "zone": self._link(f"zones/{zone}"),
            "selfLink": self._link(f"zones/{zone}/acceleratorTypes/{name}"),
            "maximumCardsPerInstance": count,
        }

    def h_acceleratorTypes_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        zone = self._zone(p)
        items = [
            self._accel_json(zone, n, c) for n, c in self.catalog.accelerators.get(zone, {}).items()
        ]
        return self._page(
            items, q, "compute#acceleratorTypeList", self._link(f"zones/{zone}/acceleratorTypes")
        )

    def h_acceleratorTypes_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        zone = self._zone(p)
        count = self.catalog.accelerators.get(zone, {}).get(p["name"])
        if count is None:
            raise not_found(f"projects/{self.project}/zones/{zone}/acceleratorTypes/{p['name']}")
        return self._accel_json(zone, p["name"], count)

    def h_acceleratorTypes_aggregatedList(self, p: JSON, q: JSON, b: JSON) -> JSON:
        self._project(p)
        scoped = {
            f"zones/{z}": [
                self._accel_json(z, n, c) for n, c in self.catalog.accelerators.get(z, {}).items()
            ]
            for z in self._zone_region
        }
        return self._aggregated(
            scoped,
            "acceleratorTypes",
            q,
            "compute#acceleratorTypeAggregatedList",
            self._link("aggregated/acceleratorTypes"),
        )

    def _disk_type_json(self, zone: str, name: str) -> JSON:
        return {
            "kind": "compute#diskType",
            "id": str(int(hashlib.sha256(f"{zone}/{name}".encode()).hexdigest()[:12], 16)),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": name,
            "description": {
                "pd-standard": "Standard Persistent Disk",
                "pd-balanced": "Balanced Persistent Disk",
                "pd-ssd": "SSD Persistent Disk",
            }.get(name, name),
            "validDiskSize": "10GB-65536GB",
            "zone": self._link(f"zones/{zone}"),
            "selfLink": self._link(f"zones/{zone}/diskTypes/{name}"),
            "defaultDiskSizeGb": "100" if name == "pd-standard" else "10",
        }

    def h_diskTypes_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        zone = self._zone(p)
        return self._page(
            [self._disk_type_json(zone, n) for n in DISK_TYPES],
            q,
            "compute#diskTypeList",
            self._link(f"zones/{zone}/diskTypes"),
        )

    def h_diskTypes_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        zone = self._zone(p)
        if p["name"] not in DISK_TYPES:
            raise not_found(f"projects/{self.project}/zones/{zone}/diskTypes/{p['name']}")
        return self._disk_type_json(zone, p["name"])

    def h_images_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        img = self._images.get((p["project"], p["name"]))
        if img is None:
            raise not_found(f"projects/{p['project']}/global/images/{p['name']}")
        return copy.deepcopy(img)

    def h_images_getFromFamily(self, p: JSON, q: JSON, b: JSON) -> JSON:
        img = self._from_family(p["project"], p["family"])
        if img is None:
            raise not_found(f"projects/{p['project']}/global/images/family/{p['family']}")
        return copy.deepcopy(img)

    def _from_family(self, project: str, family: str) -> JSON | None:
        hits = [
            i
            for (pr, _), i in self._images.items()
            if pr == project and i.get("family") == family and not i.get("deprecated")
        ]
        return max(hits, key=lambda i: i["name"]) if hits else None

    def h_images_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        items = [i for (pr, _), i in self._images.items() if pr == p["project"]]
        return self._page(
            items, q, "compute#imageList", f"{API_BASE}projects/{p['project']}/global/images"
        )

    def _resolve_image(self, ref: str) -> JSON | None:
        rest = _strip_base(ref)
        if m := re.fullmatch(r"(?:projects/([^/]+)/)?global/images/family/([^/]+)", rest):
            return self._from_family(m.group(1) or self.project, m.group(2))
        if m := re.fullmatch(r"(?:projects/([^/]+)/)?global/images/([^/]+)", rest):
            return self._images.get((m.group(1) or self.project, m.group(2)))
        return None

    # --- networks, subnetworks, firewalls --------------------------------------------------------

    def h_networks_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            return self._page(
                list(self._networks.values()),
                q,
                "compute#networkList",
                self._link("global/networks"),
            )

    def h_networks_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            net = self._networks.get(p["name"])
            if net is None:
                raise not_found(f"projects/{self.project}/global/networks/{p['name']}")
            return copy.deepcopy(net)

    def h_networks_insert(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            name = b.get("name")
            _check_name(name)
            if name in self._networks:
                raise ApiError(
                    409,
                    f"The resource 'projects/{self.project}/global/networks/{name}' already exists",
                    "alreadyExists",
                )
            if b.get("IPv4Range"):
                raise bad_request("Legacy networks are not supported by the test world.")
            auto = bool(b.get("autoCreateSubnetworks", False))
            if auto:
                used = {s["ipCidrRange"] for s in self._subnets.values()}
                free = [c for c in self.auto_pool if c not in used]
                if len(free) < len(self.region_cidrs):
                    raise bad_request(
                        "test world: no free ranges left for an auto-mode network's subnets (auto_pool)"
                    )
            op = self._new_op("global", "insert", self._link(f"global/networks/{name}"))
            self._remember(q, op)
            latency = self._latency("insert")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if name in self._networks:
                return {
                    "errors": [
                        op_error(
                            "RESOURCE_ALREADY_EXISTS",
                            f"The resource 'projects/{self.project}/global/networks/{name}' already exists",
                        )
                    ],
                    "_status": 409,
                }, []
            net = self._network_json(
                name,
                auto=auto,
                description=b.get("description", ""),
                mode=(b.get("routingConfig") or {}).get("routingMode", "REGIONAL"),
            )
            if b.get("mtu"):
                net["mtu"] = int(b["mtu"])
            self._networks[name] = net
            op.data["targetId"] = net["id"]
            if auto:
                used = {s["ipCidrRange"] for s in self._subnets.values()}
                free = [c for c in self.auto_pool if c not in used]
                for region, cidr in zip(self.region_cidrs, free, strict=False):
                    self._add_subnet(region, name, name, cidr)
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_networks_delete(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            name = p["name"]
            net = self._networks.get(name)
            if net is None:
                raise not_found(f"projects/{self.project}/global/networks/{name}")
            users = [f for f in self._firewalls.values() if last(f["network"]) == name]
            users_i = [i for i in self._instances.values() if i.network == name]
            if users or users_i:
                what = (users[0]["selfLink"] if users else users_i[0].data["selfLink"]).split(
                    "/compute/v1/", 1
                )[-1]
                raise ApiError(
                    400,
                    f"The network resource 'projects/{self.project}/global/networks/{name}' is already being used by '{what}'",
                    "resourceInUseByAnotherResource",
                )
            custom_subnets = [
                k
                for k, s in self._subnets.items()
                if last(s["network"]) == name and not net["autoCreateSubnetworks"]
            ]
            if custom_subnets:
                r, s = custom_subnets[0]
                raise ApiError(
                    400,
                    f"The network resource 'projects/{self.project}/global/networks/{name}' is already being used by 'projects/{self.project}/regions/{r}/subnetworks/{s}'",
                    "resourceInUseByAnotherResource",
                )
            op = self._new_op("global", "delete", net)
            latency = self._latency("delete")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            self._networks.pop(name, None)
            for key in [k for k, s in self._subnets.items() if last(s["network"]) == name]:
                del self._subnets[key]
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_subnetworks_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            region = self._region(p)
            items = [s for (r, _), s in self._subnets.items() if r == region]
            return self._page(
                items, q, "compute#subnetworkList", self._link(f"regions/{region}/subnetworks")
            )

    def h_subnetworks_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            region = self._region(p)
            sub = self._subnets.get((region, p["name"]))
            if sub is None:
                raise not_found(f"projects/{self.project}/regions/{region}/subnetworks/{p['name']}")
            return copy.deepcopy(sub)

    def h_subnetworks_aggregatedList(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            scoped = {
                f"regions/{r}": [s for (rr, _), s in self._subnets.items() if rr == r]
                for r in self.region_cidrs
            }
            return self._aggregated(
                scoped,
                "subnetworks",
                q,
                "compute#subnetworkAggregatedList",
                self._link("aggregated/subnetworks"),
            )

    def h_subnetworks_insert(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            region = self._region(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            name = b.get("name")
            _check_name(name)
            if (region, name) in self._subnets:
                raise ApiError(
                    409,
                    f"The resource 'projects/{self.project}/regions/{region}/subnetworks/{name}' already exists",
                    "alreadyExists",
                )
            ref = parse_ref(b.get("network"), "global", "networks")
            if ref is None or ref[2] not in self._networks:
                raise invalid(
                    "resource.network",
                    b.get("network", ""),
                    "The referenced network resource cannot be found.",
                )
            network = ref[2]
            try:
                cidr = ipaddress.ip_network(b.get("ipCidrRange", ""))
            except ValueError:
                raise invalid(
                    "resource.ipCidrRange", b.get("ipCidrRange", ""), "Invalid IPCidrRange."
                ) from None
            if not cidr.subnet_of(TEST_NET):  # type: ignore[arg-type]
                raise invalid(
                    "resource.ipCidrRange",
                    str(cidr),
                    f"The test world only has {TEST_NET} (its network rule).",
                )
            for s in self._subnets.values():
                if last(s["network"]) == network and cidr.overlaps(
                    ipaddress.ip_network(s["ipCidrRange"])
                ):
                    raise invalid(
                        "resource.ipCidrRange",
                        str(cidr),
                        f"Invalid IPCidrRange: {cidr} conflicts with existing subnetwork '{s['name']}' in region '{last(s['region'])}'.",
                    )
            op = self._new_op(
                f"regions/{region}", "insert", self._link(f"regions/{region}/subnetworks/{name}")
            )
            self._remember(q, op)
            latency = self._latency("insert")
            extra = {
                k: v
                for k, v in b.items()
                if k in ("description", "privateIpGoogleAccess", "secondaryIpRanges", "logConfig")
            }

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            sub = self._add_subnet(region, name, network, str(cidr), extra)
            op.data["targetId"] = sub["id"]
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_subnetworks_delete(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            region = self._region(p)
            sub = self._subnets.get((region, p["name"]))
            if sub is None:
                raise not_found(f"projects/{self.project}/regions/{region}/subnetworks/{p['name']}")
            users = [
                i
                for i in self._instances.values()
                if i.region == region
                and i.subnet == p["name"]
                and i.network == last(sub["network"])
            ]
            if users:
                raise ApiError(
                    400,
                    f"The subnetwork resource 'projects/{self.project}/regions/{region}/subnetworks/{p['name']}' is already being used by '{users[0].data['selfLink'].split('/compute/v1/', 1)[-1]}'",
                    "resourceInUseByAnotherResource",
                )
            op = self._new_op(f"regions/{region}", "delete", sub)
            latency = self._latency("delete")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            gone = self._subnets.pop((region, p["name"]), None)
            if gone:
                net = self._networks.get(last(gone["network"]))
                if net and gone["selfLink"] in net["subnetworks"]:
                    net["subnetworks"].remove(gone["selfLink"])
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_firewalls_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            return self._page(
                list(self._firewalls.values()),
                q,
                "compute#firewallList",
                self._link("global/firewalls"),
            )

    def h_firewalls_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            fw = self._firewalls.get(p["name"])
            if fw is None:
                raise not_found(f"projects/{self.project}/global/firewalls/{p['name']}")
            return copy.deepcopy(fw)

    def _check_firewall_body(self, b: JSON) -> str:
        ref = parse_ref(b.get("network") or "global/networks/default", "global", "networks")
        if ref is None or ref[2] not in self._networks:
            raise invalid(
                "resource.network",
                b.get("network", ""),
                "The referenced network resource cannot be found.",
            )
        if b.get("allowed") and b.get("denied"):
            raise bad_request("A firewall rule may have allowed or denied entries, not both.")
        if not b.get("allowed") and not b.get("denied"):
            raise ApiError(400, "Required field 'resource.allowed' not specified", "required")
        for entry in (b.get("allowed") or []) + (b.get("denied") or []):
            if not entry.get("IPProtocol"):
                raise ApiError(
                    400, "Required field 'resource.allowed[0].IPProtocol' not specified", "required"
                )
        for r in b.get("sourceRanges") or []:
            try:
                ipaddress.ip_network(r)
            except ValueError:
                raise invalid("resource.sourceRanges", r, "Invalid IPCidrRange.") from None
        return ref[2]

    def h_firewalls_insert(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            name = b.get("name")
            _check_name(name)
            if name in self._firewalls:
                raise ApiError(
                    409,
                    f"The resource 'projects/{self.project}/global/firewalls/{name}' already exists",
                    "alreadyExists",
                )
            network = self._check_firewall_body(b)
            op = self._new_op("global", "insert", self._link(f"global/firewalls/{name}"))
            self._remember(q, op)
            latency = self._latency("insert")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if name in self._firewalls:
                return {
                    "errors": [
                        op_error(
                            "RESOURCE_ALREADY_EXISTS",
                            f"The resource 'projects/{self.project}/global/firewalls/{name}' already exists",
                        )
                    ],
                    "_status": 409,
                }, []
            fw = self._firewall_json(b, network)
            self._firewalls[name] = fw
            op.data["targetId"] = fw["id"]
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_firewalls_patch(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            fw = self._firewalls.get(p["name"])
            if fw is None:
                raise not_found(f"projects/{self.project}/global/firewalls/{p['name']}")
            merged = {
                **fw,
                **{
                    k: v
                    for k, v in b.items()
                    if k not in ("id", "selfLink", "kind", "creationTimestamp")
                },
            }
            self._check_firewall_body(merged)
            op = self._new_op("global", "patch", fw)
            latency = self._latency("patch")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if p["name"] in self._firewalls:
                self._firewalls[p["name"]].update(merged)
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_firewalls_delete(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            fw = self._firewalls.get(p["name"])
            if fw is None:
                raise not_found(f"projects/{self.project}/global/firewalls/{p['name']}")
            op = self._new_op("global", "delete", fw)
            latency = self._latency("delete")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            self._firewalls.pop(p["name"], None)
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    # --- operations ----------------------------------------------------------------------------

    def _op_json(self, op: _Op) -> JSON:
        return copy.deepcopy(op.data)

    def _get_op(self, scope: str, name: str) -> _Op:
        op = self._ops.get(name)
        if op is None or op.scope != scope:
            raise not_found(f"projects/{self.project}/{scope}/operations/{name}")
        return op

    def _op_scope(self, p: JSON) -> str:
        if "zone" in p:
            return f"zones/{self._zone(p)}"
        if "region" in p:
            return f"regions/{self._region(p)}"
        self._project(p)
        return "global"

    def h_zoneOperations_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            return self._op_json(self._get_op(self._op_scope(p), p["operation"]))

    h_globalOperations_get = h_zoneOperations_get
    h_regionOperations_get = h_zoneOperations_get

    def h_zoneOperations_wait(self, p: JSON, q: JSON, b: JSON) -> JSON:
        deadline = time.monotonic() + self.wait_timeout
        with self._cond:
            op = self._get_op(self._op_scope(p), p["operation"])
            while not op.done and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 1.0))
                if self._ops.get(p["operation"]) is not op:
                    raise not_found(
                        f"projects/{self.project}/{op.scope}/operations/{p['operation']}"
                    )
            return self._op_json(op)

    h_globalOperations_wait = h_zoneOperations_wait
    h_regionOperations_wait = h_zoneOperations_wait

    def h_zoneOperations_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            scope = self._op_scope(p)
            items = [o.data for o in self._ops.values() if o.scope == scope]
            q = dict(q)
            q.setdefault("orderBy", "creationTimestamp")
            for i in items:
                i.setdefault("creationTimestamp", i["insertTime"])
            return self._page(items, q, "compute#operationList", self._link(f"{scope}/operations"))

    h_globalOperations_list = h_zoneOperations_list
    h_regionOperations_list = h_zoneOperations_list

    def h_zoneOperations_delete(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            op = self._get_op(self._op_scope(p), p["operation"])
            del self._ops[op.data["name"]]
            return {}

    h_globalOperations_delete = h_zoneOperations_delete
    h_regionOperations_delete = h_zoneOperations_delete

    def h_globalOperations_aggregatedList(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            scoped: dict[str, list[JSON]] = {f"zones/{z}": [] for z in self._zone_region}
            scoped.update({f"regions/{r}": [] for r in self.region_cidrs})
            scoped["global"] = []
            for o in self._ops.values():
                scoped.setdefault(o.scope, []).append(o.data)
            return self._aggregated(
                scoped,
                "operations",
                q,
                "compute#operationAggregatedList",
                self._link("aggregated/operations"),
            )

    # --- disks ---------------------------------------------------------------------------------

    def h_disks_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            zone = self._zone(p)
            items = [d for (z, _), d in self._disks.items() if z == zone]
            return self._page(items, q, "compute#diskList", self._link(f"zones/{zone}/disks"))

    def h_disks_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            zone = self._zone(p)
            disk = self._disks.get((zone, p["disk"]))
            if disk is None:
                raise not_found(f"projects/{self.project}/zones/{zone}/disks/{p['disk']}")
            return copy.deepcopy(disk)

    def h_disks_aggregatedList(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            scoped = {
                f"zones/{z}": [d for (zz, _), d in self._disks.items() if zz == z]
                for z in self._zone_region
            }
            return self._aggregated(
                scoped, "disks", q, "compute#diskAggregatedList", self._link("aggregated/disks")
            )

    def h_disks_delete(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            zone = self._zone(p)
            disk = self._disks.get((zone, p["disk"]))
            if disk is None:
                raise not_found(f"projects/{self.project}/zones/{zone}/disks/{p['disk']}")
            if disk.get("users"):
                raise ApiError(
                    400,
                    f"The disk resource 'projects/{self.project}/zones/{zone}/disks/{p['disk']}' is already being used by '{disk['users'][0].split('/compute/v1/', 1)[-1]}'",
                    "resourceInUseByAnotherResource",
                )
            op = self._new_op(f"zones/{zone}", "delete", disk)
            latency = self._latency("delete")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            self._disks.pop((zone, p["disk"]), None)
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    # --- instances -----------------------------------------------------------------------------

    def h_instances_list(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            zone = self._zone(p)
            items = [i.data for (z, _), i in self._instances.items() if z == zone]
            return self._page(
                items, q, "compute#instanceList", self._link(f"zones/{zone}/instances")
            )

    def h_instances_aggregatedList(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            self._project(p)
            scoped = {
                f"zones/{z}": [i.data for (zz, _), i in self._instances.items() if zz == z]
                for z in self._zone_region
            }
            return self._aggregated(
                scoped,
                "instances",
                q,
                "compute#instanceAggregatedList",
                self._link("aggregated/instances"),
            )

    def h_instances_get(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            return copy.deepcopy(self._get_instance(p).data)

    def _alloc_ip(self, cidr: str, owner: str, want: str | None = None) -> str:
        net = ipaddress.ip_network(cidr)
        if want:
            addr = ipaddress.ip_address(want)
            if addr not in net or addr in (
                net.network_address,
                net.network_address + 1,
                net.broadcast_address,
                net.broadcast_address - 1,
            ):
                raise invalid(
                    "resource.networkInterfaces[0].networkIP",
                    want,
                    f"Requested internal IP is outside the subnetwork CIDR range or reserved ({net}).",
                )
            if want in self._used_ips:
                raise ApiError(
                    400, f"IP '{want}' is already being used by another resource.", "invalid"
                )
            self._used_ips[want] = owner
            return want
        for host in itertools.islice(net.hosts(), 1, net.num_addresses - 3):
            s = str(host)
            if s not in self._used_ips:
                self._used_ips[s] = owner
                return s
        raise ApiError(400, f"IP space of '{cidr}' is exhausted.", "ipSpaceExhausted")

    def _alloc_nat(self, owner: str) -> str:
        for host in EXTERNAL_NET.hosts():
            s = str(host)
            if s not in self._nat_ips and not s.endswith((".0", ".1", ".255")):
                self._nat_ips[s] = owner
                return s
        raise ApiError(400, "test world: external IPs exhausted", "ipSpaceExhausted")

    def h_instances_insert(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            zone = self._zone(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            region = self._zone_region[zone]
            inst, disk, quota, latency = self._prepare_instance(zone, region, b)
            key = (zone, inst.name)
            self._instances[key] = inst
            self._disks[(zone, disk["name"])] = disk
            op = self._new_op(f"zones/{zone}", "insert", inst)
            inst.pending = op.data["name"]
            self._remember(q, op)
            stockout = self._stockout(zone, inst.data, inst.mt, "insert") if quota is None else None
            failure = quota or stockout
        mine = op.data["name"]

        def halfway() -> None:
            if inst.pending == mine and self._instances.get(key) is inst:
                inst.data["status"] = "STAGING"

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if self._instances.get(key) is not inst or inst.pending != mine:
                return None, []  # deleted meanwhile
            if failure is not None:
                self._forget_instance(inst, delete_disks=True)
                return copy.deepcopy(failure), []
            inst.pending = None
            now = stamp()
            inst.data.update(status="RUNNING", lastStartTimestamp=now)
            for name in inst.disks:
                d = self._disks.get((zone, name))
                if d is not None:
                    d["status"] = "READY"
                    d["lastAttachTimestamp"] = now
            return None, [("running", self._event_info(inst))]

        self._start_op(op, latency, effect, halfway)
        return self._op_json(op)

    def _prepare_instance(
        self, zone: str, region: str, b: JSON
    ) -> tuple[_Instance, JSON, JSON | None, float]:
        """Validate an insert body (as the real API does, synchronously) and build the
        instance and its boot disk; the quota error to put in the operation, if any."""
        name = b.get("name")
        _check_name(name, "resource.name")
        if (zone, name) in self._instances:
            raise ApiError(
                409,
                f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' already exists",
                "alreadyExists",
            )
        # machine type
        ref = parse_ref(b.get("machineType"), "zones", "machineTypes")
        if ref is None:
            raise invalid(
                "resource.machineType",
                b.get("machineType", ""),
                "Must be a URL to a valid Compute resource of the correct type.",
            )
        if ref[1] != zone:
            raise invalid(
                "resource.machineType",
                b["machineType"],
                f"Machine type zone '{ref[1]}' does not match the instance zone '{zone}'.",
            )
        mt = self.catalog.machine_types.get(zone, {}).get(ref[2])
        if mt is None:
            raise invalid(
                "resource.machineType",
                b["machineType"],
                f"Machine type with name '{ref[2]}' does not exist in zone '{zone}'.",
            )
        # accelerators
        accel = mt.accelerators
        given = b.get("guestAccelerators") or []
        if len(given) > 1:
            raise bad_request("The test world supports one guestAccelerators entry.")
        if given:
            aref = parse_ref(given[0].get("acceleratorType"), "zones", "acceleratorTypes")
            if aref is None or aref[1] != zone:
                raise invalid(
                    "resource.guestAccelerators[0].acceleratorType",
                    given[0].get("acceleratorType", ""),
                    "Must be a URL to an accelerator type in the instance's zone.",
                )
            count = int(given[0].get("acceleratorCount", 1))
            offered = self.catalog.accelerators.get(zone, {})
            if aref[2] not in offered:
                raise invalid(
                    "resource.guestAccelerators[0].acceleratorType",
                    given[0]["acceleratorType"],
                    f"Accelerator type '{aref[2]}' does not exist in zone '{zone}'.",
                )
            if mt.accelerators:
                if (aref[2], count) != mt.accelerators:
                    raise invalid(
                        "resource.guestAccelerators",
                        f"{aref[2]} x{count}",
                        f"Machine type {mt.name} comes with {mt.accelerators[1]} x {mt.accelerators[0]}.",
                    )
            elif mt.family != "n1" or aref[2] not in N1_ATTACHABLE:
                raise bad_request(
                    f"Invalid resource usage: 'Accelerator type '{aref[2]}' is not supported with machine type '{mt.name}'.'"
                )
            elif count < 1 or count > offered[aref[2]] or count & (count - 1):
                raise invalid(
                    "resource.guestAccelerators[0].acceleratorCount",
                    count,
                    f"Allowed counts for {aref[2]}: 1, 2, 4 (up to {offered[aref[2]]}).",
                )
            accel = (aref[2], count)
        # scheduling
        sched = dict(b.get("scheduling") or {})
        model = sched.get("provisioningModel", "STANDARD")
        if model not in ("STANDARD", "SPOT", "FLEX_START", "RESERVATION_BOUND"):
            raise invalid("resource.scheduling.provisioningModel", model)
        spot = model == "SPOT"
        if spot or sched.get("preemptible"):
            if sched.get("automaticRestart") is True:
                raise invalid(
                    "resource.scheduling.automaticRestart",
                    "true",
                    "Preemptible and Spot instances cannot be automatically restarted.",
                )
            if sched.get("onHostMaintenance") == "MIGRATE":
                raise invalid(
                    "resource.scheduling.onHostMaintenance",
                    "MIGRATE",
                    "Preemptible and Spot instances do not support live migration.",
                )
            sched.setdefault("automaticRestart", False)
            sched.setdefault("onHostMaintenance", "TERMINATE")
            if spot:
                sched.setdefault("instanceTerminationAction", "STOP")
        sched.setdefault("onHostMaintenance", "MIGRATE")
        sched.setdefault("automaticRestart", True)
        sched.setdefault("preemptible", False)
        sched["provisioningModel"] = model
        if accel and sched["onHostMaintenance"] == "MIGRATE":
            raise bad_request("Instances with guest accelerators do not support live migration.")
        if sched.get("instanceTerminationAction") not in (None, "STOP", "DELETE"):
            raise invalid(
                "resource.scheduling.instanceTerminationAction", sched["instanceTerminationAction"]
            )
        # labels, metadata, tags
        labels = b.get("labels") or {}
        _check_labels(labels, "resource.labels")
        items = _check_metadata((b.get("metadata") or {}).get("items") or [], "resource.metadata")
        # disks
        disks = b.get("disks") or []
        boots = [d for d in disks if d.get("boot")]
        if len(disks) != 1 or len(boots) != 1:
            raise bad_request(
                "The test world supports exactly one disk per instance: the boot disk."
            )
        d0 = boots[0]
        if d0.get("source"):
            raise bad_request(
                "The test world creates boot disks from initializeParams only (no 'source')."
            )
        init = d0.get("initializeParams") or {}
        if not init.get("sourceImage"):
            raise ApiError(
                400,
                "Required field 'resource.disks[0].initializeParams.sourceImage' not specified",
                "required",
            )
        image = self._resolve_image(init["sourceImage"])
        if image is None:
            raise invalid(
                "resource.disks[0].initializeParams.sourceImage",
                init["sourceImage"],
                "The referenced image resource cannot be found.",
            )
        if (image["architecture"] == "ARM64") != mt.arm:
            raise bad_request(
                f"Invalid resource usage: 'Image architecture {image['architecture']} is not compatible with machine type {mt.name}.'"
            )
        size = int(init.get("diskSizeGb") or image["diskSizeGb"])
        if size < int(image["diskSizeGb"]):
            raise bad_request(
                f"Invalid value for field 'resource.disks[0].initializeParams.diskSizeGb': '{size}'. Requested disk size cannot be smaller than the image size ({image['diskSizeGb']} GB)"
            )
        dtype = "pd-standard"
        if init.get("diskType"):
            dref = parse_ref(init["diskType"], "zones", "diskTypes")
            if dref is None or dref[1] != zone or dref[2] not in DISK_TYPES:
                raise invalid(
                    "resource.disks[0].initializeParams.diskType",
                    init["diskType"],
                    "The referenced disk type resource cannot be found.",
                )
            dtype = dref[2]
        disk_name = init.get("diskName") or name
        _check_name(disk_name, "resource.disks[0].initializeParams.diskName")
        if (zone, disk_name) in self._disks:
            raise ApiError(
                409,
                f"The resource 'projects/{self.project}/zones/{zone}/disks/{disk_name}' already exists",
                "alreadyExists",
            )
        # network
        nics = b.get("networkInterfaces") or [{"network": "global/networks/default"}]
        if len(nics) != 1:
            raise bad_request("The test world supports one network interface per instance.")
        nic_in = nics[0]
        network = subnet = None
        if nic_in.get("subnetwork"):
            sref = parse_ref(nic_in["subnetwork"], "regions", "subnetworks")
            if sref is None or sref[1] != region or (region, sref[2]) not in self._subnets:
                raise invalid(
                    "resource.networkInterfaces[0].subnetwork",
                    nic_in["subnetwork"],
                    "The referenced subnetwork resource cannot be found.",
                )
            subnet = sref[2]
            network = last(self._subnets[(region, subnet)]["network"])
        if nic_in.get("network"):
            nref = parse_ref(nic_in["network"], "global", "networks")
            if nref is None or nref[2] not in self._networks:
                raise invalid(
                    "resource.networkInterfaces[0].network",
                    nic_in["network"],
                    "The referenced network resource cannot be found.",
                )
            if network is not None and nref[2] != network:
                raise invalid(
                    "resource.networkInterfaces[0].subnetwork",
                    nic_in["subnetwork"],
                    f"Subnetwork does not belong to network '{nref[2]}'.",
                )
            network = nref[2]
        if network is None:
            network = "default"
            if network not in self._networks:
                raise invalid(
                    "resource.networkInterfaces[0].network",
                    "",
                    "The default network does not exist: specify a network or subnetwork.",
                )
        if subnet is None:
            if not self._networks[network]["autoCreateSubnetworks"]:
                raise invalid(
                    "resource.networkInterfaces[0]",
                    "",
                    "Subnetwork should be specified for custom subnetmode network",
                )
            hits = [
                n
                for (r, n), s in self._subnets.items()
                if r == region and last(s["network"]) == network
            ]
            if not hits:
                raise invalid(
                    "resource.networkInterfaces[0].network",
                    network,
                    f"The network has no subnetwork in region {region}.",
                )
            subnet = hits[0]
        sub = self._subnets[(region, subnet)]
        # quota (synchronous mode answers the call itself)
        quota = self._check_quota(region, mt, accel, spot, (dtype, float(size)), new=True)
        quota_error: JSON | None = None
        if quota is not None:
            mode, err = quota
            if mode == "http":
                e = err["errors"][0]
                raise ApiError(403, e["message"], "quotaExceeded", domain="usageLimits")
            quota_error = err
        # build
        iid = self._new_id()
        now = stamp()
        link = self._link(f"zones/{zone}/instances/{name}")
        ip = self._alloc_ip(
            sub["ipCidrRange"], f"zones/{zone}/instances/{name}", nic_in.get("networkIP")
        )
        nic: JSON = {
            "kind": "compute#networkInterface",
            "network": self._link(f"global/networks/{network}"),
            "subnetwork": sub["selfLink"],
            "networkIP": ip,
            "name": "nic0",
            "fingerprint": fingerprint(ip + iid),
            "stackType": "IPV4_ONLY",
        }
        if nic_in.get("nicType"):
            nic["nicType"] = nic_in["nicType"]
        if nic_in.get("accessConfigs"):
            ac = dict(nic_in["accessConfigs"][0])
            ac.setdefault("type", "ONE_TO_ONE_NAT")
            ac.setdefault("name", "External NAT")
            ac.setdefault("networkTier", "PREMIUM")
            ac["kind"] = "compute#accessConfig"
            ac["natIP"] = self._alloc_nat(link)
            nic["accessConfigs"] = [ac]
        disk_link = self._link(f"zones/{zone}/disks/{disk_name}")
        disk: JSON = {
            "kind": "compute#disk",
            "id": self._new_id(),
            "creationTimestamp": now,
            "name": disk_name,
            "sizeGb": str(size),
            "zone": self._link(f"zones/{zone}"),
            "status": "CREATING",
            "selfLink": disk_link,
            "sourceImage": image["selfLink"],
            "sourceImageId": image["id"],
            "type": self._link(f"zones/{zone}/diskTypes/{dtype}"),
            "users": [link],
            "labels": dict(init.get("labels") or {}),
            "labelFingerprint": fingerprint(init.get("labels") or {}),
            "physicalBlockSizeBytes": "4096",
            "architecture": image["architecture"],
            "guestOsFeatures": copy.deepcopy(image["guestOsFeatures"]),
        }
        attached: JSON = {
            "kind": "compute#attachedDisk",
            "type": "PERSISTENT",
            "mode": d0.get("mode", "READ_WRITE"),
            "source": disk_link,
            "deviceName": d0.get("deviceName") or "persistent-disk-0",
            "index": 0,
            "boot": True,
            "autoDelete": bool(d0.get("autoDelete", False)),
            "interface": d0.get("interface", "SCSI"),
            "diskSizeGb": str(size),
            "architecture": image["architecture"],
            "guestOsFeatures": copy.deepcopy(image["guestOsFeatures"]),
        }
        accounts = []
        for sa in b.get("serviceAccounts") or []:
            email = sa.get("email") or "default"
            if email == "default":
                email = f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
            accounts.append({"email": email, "scopes": list(sa.get("scopes") or [])})
        tags = dict(b.get("tags") or {})
        tags["fingerprint"] = fingerprint(tags.get("items") or [])
        data: JSON = {
            **{
                k: v
                for k, v in b.items()
                if k
                not in (
                    "disks",
                    "networkInterfaces",
                    "metadata",
                    "scheduling",
                    "tags",
                    "serviceAccounts",
                    "labels",
                    "guestAccelerators",
                )
            },
            "kind": "compute#instance",
            "id": iid,
            "creationTimestamp": now,
            "name": name,
            "description": b.get("description", ""),
            "tags": tags,
            "machineType": self._link(f"zones/{zone}/machineTypes/{mt.name}"),
            "status": "PROVISIONING",
            "zone": self._link(f"zones/{zone}"),
            "canIpForward": bool(b.get("canIpForward", False)),
            "networkInterfaces": [nic],
            "disks": [attached],
            "metadata": {
                "kind": "compute#metadata",
                "fingerprint": fingerprint(items),
                **({"items": items} if items else {}),
            },
            "serviceAccounts": accounts,
            "selfLink": link,
            "scheduling": sched,
            "cpuPlatform": "AMD Milan"
            if mt.family in ("n2d", "c2d", "t2d", "a2", "g2")
            else "Intel Cascade Lake",
            "labels": dict(labels),
            "labelFingerprint": fingerprint(labels),
            "startRestricted": False,
            "deletionProtection": bool(b.get("deletionProtection", False)),
            "fingerprint": fingerprint(iid),
        }
        if accel:
            data["guestAccelerators"] = [
                {
                    "acceleratorType": self._link(f"zones/{zone}/acceleratorTypes/{accel[0]}"),
                    "acceleratorCount": accel[1],
                }
            ]
        if not accounts:
            del data["serviceAccounts"]
        inst = _Instance(zone, name, data, mt, region, network, subnet, ip, [disk_name])
        return inst, disk, quota_error, self._latency("insert")

    def _forget_instance(self, inst: _Instance, *, delete_disks: bool) -> None:
        """Remove the instance (its IPs released); its disks deleted or detached."""
        self._instances.pop((inst.zone, inst.name), None)
        self._used_ips.pop(inst.ip, None)
        for nic in inst.data.get("networkInterfaces", []):
            for ac in nic.get("accessConfigs", []):
                self._nat_ips.pop(ac.get("natIP", ""), None)
        auto = {last(d["source"]): d.get("autoDelete", False) for d in inst.data.get("disks", [])}
        for name in inst.disks:
            d = self._disks.get((inst.zone, name))
            if d is None:
                continue
            if delete_disks or auto.get(name):
                del self._disks[(inst.zone, name)]
            else:
                d["users"] = [u for u in d.get("users", []) if u != inst.data["selfLink"]]
                d["lastDetachTimestamp"] = stamp()

    def h_instances_delete(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            inst = self._get_instance(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            if inst.data.get("deletionProtection"):
                raise ApiError(
                    400,
                    "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'.",
                    "resourceInUseByAnotherResource",
                )
            op = self._new_op(f"zones/{inst.zone}", "delete", inst)
            self._remember(q, op)
            if inst.data["status"] != "TERMINATED":
                inst.data["status"] = "STOPPING"
            inst.pending = op.data["name"]
            latency = self._latency("delete")
        self._start_op(op, latency, lambda: self._delete_effect(inst, op))
        return self._op_json(op)

    def _delete_effect(
        self, inst: _Instance, op: _Op
    ) -> tuple[JSON | None, list[tuple[str, JSON]]]:
        if (
            self._instances.get((inst.zone, inst.name)) is not inst
            or inst.pending != op.data["name"]
        ):
            return None, []
        info = self._event_info(inst)
        self._forget_instance(inst, delete_disks=False)
        return None, [("deleted", info)]

    def h_instances_stop(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            inst = self._get_instance(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            status = inst.data["status"]
            op = self._new_op(f"zones/{inst.zone}", "stop", inst)
            self._remember(q, op)
            latency = self._latency("stop")
            if status == "TERMINATED":
                effect = None  # already stopped: a no-op
            elif status in ("RUNNING",):
                inst.data["status"] = "STOPPING"
                inst.pending = op.data["name"]
                effect = lambda: self._stop_effect(inst, op)  # noqa: E731
            else:
                del self._ops[op.data["name"]]
                raise not_ready(f"projects/{self.project}/zones/{inst.zone}/instances/{inst.name}")
        self._start_op(op, latency, effect)
        return self._op_json(op)

    def _stop_effect(self, inst: _Instance, op: _Op) -> tuple[JSON | None, list[tuple[str, JSON]]]:
        if (
            self._instances.get((inst.zone, inst.name)) is not inst
            or inst.pending != op.data["name"]
        ):
            return None, []
        inst.pending = None
        inst.data["status"] = "TERMINATED"
        inst.data["lastStopTimestamp"] = stamp()
        for nic in inst.data.get("networkInterfaces", []):
            for ac in nic.get("accessConfigs", []):
                self._nat_ips.pop(ac.pop("natIP", ""), None)
        return None, [("stopped", self._event_info(inst))]

    def h_instances_start(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            inst = self._get_instance(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            status = inst.data["status"]
            if status == "RUNNING":
                op = self._new_op(f"zones/{inst.zone}", "start", inst)
                self._remember(q, op)
                effect = None
                latency = self._latency("start")
                mine = None
            elif status == "TERMINATED":
                spot = inst.data["scheduling"].get("provisioningModel") == "SPOT"
                accel = self._instance_accel(inst.data)
                quota = self._check_quota(inst.region, inst.mt, accel, spot, None, new=False)
                failure: JSON | None = None
                if quota is not None:
                    mode, err = quota
                    if mode == "http":
                        raise ApiError(
                            403, err["errors"][0]["message"], "quotaExceeded", domain="usageLimits"
                        )
                    failure = err
                else:
                    failure = self._stockout(inst.zone, inst.data, inst.mt, "start")
                op = self._new_op(f"zones/{inst.zone}", "start", inst)
                self._remember(q, op)
                latency = self._latency("start")
                mine = op.data["name"]
                if failure is None:
                    inst.data["status"] = "PROVISIONING"
                    inst.pending = mine

                def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
                    if failure is not None:
                        return copy.deepcopy(failure), []
                    if (
                        self._instances.get((inst.zone, inst.name)) is not inst
                        or inst.pending != mine
                    ):
                        return None, []
                    inst.pending = None
                    inst.data.update(status="RUNNING", lastStartTimestamp=stamp())
                    for nic in inst.data.get("networkInterfaces", []):
                        for ac in nic.get("accessConfigs", []):
                            ac["natIP"] = self._alloc_nat(inst.data["selfLink"])
                    return None, [("running", self._event_info(inst))]
            else:
                raise not_ready(f"projects/{self.project}/zones/{inst.zone}/instances/{inst.name}")

        def halfway() -> None:
            if mine is not None and inst.pending == mine:
                inst.data["status"] = "STAGING"

        self._start_op(op, latency, effect, halfway if mine else None)
        return self._op_json(op)

    def h_instances_reset(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            inst = self._get_instance(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            if inst.data["status"] != "RUNNING":
                raise not_ready(f"projects/{self.project}/zones/{inst.zone}/instances/{inst.name}")
            op = self._new_op(f"zones/{inst.zone}", "reset", inst)
            self._remember(q, op)
            latency = self._latency("reset")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if (
                self._instances.get((inst.zone, inst.name)) is not inst
                or inst.data["status"] != "RUNNING"
            ):
                return None, []
            return None, [("reset", self._event_info(inst))]

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_instances_setLabels(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            inst = self._get_instance(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            if not b.get("labelFingerprint"):
                raise ApiError(400, "Required field 'labelFingerprint' not specified", "required")
            if b["labelFingerprint"] != inst.data["labelFingerprint"]:
                raise ApiError(
                    412,
                    "Labels fingerprint either invalid or resource labels have changed",
                    "conditionNotMet",
                )
            labels = dict(b.get("labels") or {})
            _check_labels(labels, "labels")
            op = self._new_op(f"zones/{inst.zone}", "setLabels", inst)
            self._remember(q, op)
            inst.data["labelFingerprint"] = fingerprint(["pending", labels, op.data["id"]])
            latency = self._latency("setLabels")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if self._instances.get((inst.zone, inst.name)) is inst:
                inst.data["labels"] = labels
                inst.data["labelFingerprint"] = fingerprint(labels)
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_instances_setMetadata(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            inst = self._get_instance(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            if b.get("fingerprint", "") != inst.data["metadata"]["fingerprint"]:
                raise ApiError(
                    412,
                    "Supplied fingerprint does not match current metadata fingerprint.",
                    "conditionNotMet",
                )
            items = _check_metadata(b.get("items") or [], "metadata")
            op = self._new_op(f"zones/{inst.zone}", "setMetadata", inst)
            self._remember(q, op)
            inst.data["metadata"]["fingerprint"] = fingerprint(["pending", items, op.data["id"]])
            latency = self._latency("setMetadata")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if self._instances.get((inst.zone, inst.name)) is not inst:
                return None, []
            inst.data["metadata"] = {
                "kind": "compute#metadata",
                "fingerprint": fingerprint(items),
                **({"items": items} if items else {}),
            }
            return None, [("metadata", self._event_info(inst))]

        self._start_op(op, latency, effect)
        return self._op_json(op)

    def h_instances_setTags(self, p: JSON, q: JSON, b: JSON) -> JSON:
        with self._lock:
            inst = self._get_instance(p)
            if (dup := self._dedupe(q)) is not None:
                return dup
            if b.get("fingerprint", "") != inst.data["tags"]["fingerprint"]:
                raise ApiError(
                    412,
                    "Supplied fingerprint does not match current tags fingerprint.",
                    "conditionNotMet",
                )
            items = list(b.get("items") or [])
            op = self._new_op(f"zones/{inst.zone}", "setTags", inst)
            self._remember(q, op)
            latency = self._latency("setTags")

        def effect() -> tuple[JSON | None, list[tuple[str, JSON]]]:
            if self._instances.get((inst.zone, inst.name)) is inst:
                inst.data["tags"] = (
                    {"items": items, "fingerprint": fingerprint(items)}
                    if items
                    else {"fingerprint": EMPTY_FINGERPRINT}
                )
            return None, []

        self._start_op(op, latency, effect)
        return self._op_json(op)


# --- validation helpers -------------------------------------------------------------------------


def _check_name(name: Any, field: str = "resource.name") -> None:
    if not isinstance(name, str) or not name:
        raise ApiError(400, f"Required field '{field}' not specified", "required")
    if not _NAME_RE.fullmatch(name):
        raise invalid(
            field, name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
        )


def _check_labels(labels: Any, field: str) -> None:
    if not isinstance(labels, dict):
        raise invalid(field, labels)
    if len(labels) > 64:
        raise invalid(field, "", "Resources can have at most 64 labels.")
    for k, v in labels.items():
        if not _LABEL_KEY_RE.fullmatch(k):
            raise invalid(
                f"{field}.key",
                k,
                "Label keys must start with a lowercase letter and can only contain lowercase letters, numeric characters, underscores and dashes.",
            )
        if not isinstance(v, str) or not _LABEL_VALUE_RE.fullmatch(v):
            raise invalid(
                f"{field}.value",
                v,
                "Label values can only contain lowercase letters, numeric characters, underscores and dashes.",
            )


def _check_metadata(items: Any, field: str) -> list[JSON]:
    if not isinstance(items, list):
        raise invalid(f"{field}.items", items)
    seen: set[str] = set()
    total = 0
    out = []
    for i, item in enumerate(items):
        key = item.get("key") if isinstance(item, dict) else None
        if not key or not re.fullmatch(r"[a-zA-Z0-9_-]{1,128}", key):
            raise invalid(f"{field}.items[{i}].key", key or "")
        if key in seen:
            raise invalid(f"{field}.items[{i}].key", key, "Duplicate metadata key.")
        seen.add(key)
        value = item.get("value", "")
        total += len(key) + len(value or "")
        out.append({"key": key, "value": value})
    if total > 512 * 1024:
        raise invalid(field, "", "Metadata is larger than 512 KB.")
    return out


def _transient_error(status: int) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            "Rate Limit Exceeded",
            "rateLimitExceeded",
            domain="usageLimits",
            status_name="RESOURCE_EXHAUSTED",
        )
    if status == 500:
        return ApiError(
            500,
            "Internal error. Please try again or contact Google Support.",
            "backendError",
            status_name="INTERNAL",
        )
    return ApiError(
        503, "The service is currently unavailable.", "backendError", status_name="UNAVAILABLE"
    )


def _page_size(q: JSON) -> int:
    raw = q.get("maxResults")
    if raw in (None, ""):
        return 500
    try:
        n = int(raw)
    except ValueError:
        raise invalid("maxResults", raw) from None
    if n < 0:
        raise invalid("maxResults", raw, "Must be between 0 and 500.")
    return min(n or 500, 500)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"styx-gce:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, _, n = raw.partition(":")
        if prefix != "styx-gce":
            raise ValueError(raw)
        return int(n)
    except ValueError:
        raise invalid("pageToken", token) from None


# --- routes -------------------------------------------------------------------------------------

_P = r"projects/(?P<project>[^/]+)"
_Z = _P + r"/zones/(?P<zone>[^/]+)"
_R = _P + r"/regions/(?P<region>[^/]+)"
_G = _P + r"/global"
_ROUTES_SRC: list[tuple[str, str, str]] = [
    ("GET", _P, "h_projects_get"),
    ("POST", _P + r"/setCommonInstanceMetadata", "h_projects_setCommonInstanceMetadata"),
    ("GET", _P + r"/zones", "h_zones_list"),
    ("GET", _Z, "h_zones_get"),
    ("GET", _P + r"/regions", "h_regions_list"),
    ("GET", _R, "h_regions_get"),
    ("GET", _Z + r"/machineTypes", "h_machineTypes_list"),
    ("GET", _Z + r"/machineTypes/(?P<name>[^/]+)", "h_machineTypes_get"),
    ("GET", _P + r"/aggregated/machineTypes", "h_machineTypes_aggregatedList"),
    ("GET", _Z + r"/acceleratorTypes", "h_acceleratorTypes_list"),
    ("GET", _Z + r"/acceleratorTypes/(?P<name>[^/]+)", "h_acceleratorTypes_get"),
    ("GET", _P + r"/aggregated/acceleratorTypes", "h_acceleratorTypes_aggregatedList"),
    ("GET", _Z + r"/diskTypes", "h_diskTypes_list"),
    ("GET", _Z + r"/diskTypes/(?P<name>[^/]+)", "h_diskTypes_get"),
    ("GET", _G + r"/images", "h_images_list"),
    ("GET", _G + r"/images/family/(?P<family>[^/]+)", "h_images_getFromFamily"),
    ("GET", _G + r"/images/(?P<name>[^/]+)", "h_images_get"),
    ("GET", _G + r"/networks", "h_networks_list"),
    ("POST", _G + r"/networks", "h_networks_insert"),
    ("GET", _G + r"/networks/(?P<name>[^/]+)", "h_networks_get"),
    ("DELETE", _G + r"/networks/(?P<name>[^/]+)", "h_networks_delete"),
    ("GET", _R + r"/subnetworks", "h_subnetworks_list"),
    ("POST", _R + r"/subnetworks", "h_subnetworks_insert"),
    ("GET", _R + r"/subnetworks/(?P<name>[^/]+)", "h_subnetworks_get"),
    ("DELETE", _R + r"/subnetworks/(?P<name>[^/]+)", "h_subnetworks_delete"),
    ("GET", _P + r"/aggregated/subnetworks", "h_subnetworks_aggregatedList"),
    ("GET", _G + r"/firewalls", "h_firewalls_list"),
    ("POST", _G + r"/firewalls", "h_firewalls_insert"),
    ("GET", _G + r"/firewalls/(?P<name>[^/]+)", "h_firewalls_get"),
    ("PATCH", _G + r"/firewalls/(?P<name>[^/]+)", "h_firewalls_patch"),
    ("DELETE", _G + r"/firewalls/(?P<name>[^/]+)", "h_firewalls_delete"),
    ("GET", _Z + r"/operations", "h_zoneOperations_list"),
    ("GET", _Z + r"/operations/(?P<operation>[^/]+)", "h_zoneOperations_get"),
    ("DELETE", _Z + r"/operations/(?P<operation>[^/]+)", "h_zoneOperations_delete"),
    ("POST", _Z + r"/operations/(?P<operation>[^/]+)/wait", "h_zoneOperations_wait"),
    ("GET", _R + r"/operations", "h_regionOperations_list"),
    ("GET", _R + r"/operations/(?P<operation>[^/]+)", "h_regionOperations_get"),
    ("DELETE", _R + r"/operations/(?P<operation>[^/]+)", "h_regionOperations_delete"),
    ("POST", _R + r"/operations/(?P<operation>[^/]+)/wait", "h_regionOperations_wait"),
    ("GET", _G + r"/operations", "h_globalOperations_list"),
    ("GET", _G + r"/operations/(?P<operation>[^/]+)", "h_globalOperations_get"),
    ("DELETE", _G + r"/operations/(?P<operation>[^/]+)", "h_globalOperations_delete"),
    ("POST", _G + r"/operations/(?P<operation>[^/]+)/wait", "h_globalOperations_wait"),
    ("GET", _P + r"/aggregated/operations", "h_globalOperations_aggregatedList"),
    ("GET", _Z + r"/disks", "h_disks_list"),
    ("GET", _Z + r"/disks/(?P<disk>[^/]+)", "h_disks_get"),
    ("DELETE", _Z + r"/disks/(?P<disk>[^/]+)", "h_disks_delete"),
    ("GET", _P + r"/aggregated/disks", "h_disks_aggregatedList"),
    ("GET", _Z + r"/instances", "h_instances_list"),
    ("POST", _Z + r"/instances", "h_instances_insert"),
    ("GET", _P + r"/aggregated/instances", "h_instances_aggregatedList"),
    ("GET", _Z + r"/instances/(?P<instance>[^/]+)", "h_instances_get"),
    ("DELETE", _Z + r"/instances/(?P<instance>[^/]+)", "h_instances_delete"),
    *[
        ("POST", _Z + rf"/instances/(?P<instance>[^/]+)/{verb}", f"h_instances_{verb}")
        for verb in ("stop", "start", "reset", "setLabels", "setMetadata", "setTags")
    ],
]
_ROUTES = [(m, re.compile(r"/compute/v1/" + rx), h) for m, rx, h in _ROUTES_SRC]
#: What the stand-in answers: (HTTP method, path pattern, handler), for the record.
SUPPORTED = [(m, rx, h) for m, rx, h in _ROUTES_SRC]


def _match_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for m, rx, handler in _ROUTES:
        if m == method and (hit := rx.fullmatch(path)):
            return handler, {k: urllib.parse.unquote(v) for k, v in hit.groupdict().items()}
    return None


# --- HTTP ---------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gce: GCEServer

    def _handle(self) -> None:
        start, t0 = time.time(), time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if self.path.startswith("/computeMetadata/"):
                status, payload = self._metadata()
            else:
                status, payload = self.gce._serve(
                    self.command, self.path, raw, self.headers.get("Authorization")
                )
        except Exception as exc:  # a stand-in bug: answer like Google's 500, keep serving
            status, payload = 500, ApiError(500, f"stand-in error: {exc!r}", "backendError").body()
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            parsed = urllib.parse.urlsplit(self.path)
            self.gce._log_request(
                {
                    "method": self.command,
                    "path": parsed.path,
                    "query": parsed.query,
                    "status": status,
                    "start": start,
                    "duration": time.monotonic() - t0,
                    "authorization": self.headers.get("Authorization"),
                    "client": self.client_address[0],
                }
            )

    def _metadata(self) -> tuple[int, JSON]:
        """The part of GCE's metadata server autostop uses: the default service account's
        token, for the instance at the caller's address (as the real one knows its caller)."""
        if self.headers.get("Metadata-Flavor") != "Google":
            return 403, {"error": "Missing Metadata-Flavor:Google header."}
        if self.path.split("?")[0] != "/computeMetadata/v1/instance/service-accounts/default/token":
            return 404, {"error": "not found"}
        token = self.gce.metadata_token(self.client_address[0])
        if token is None:
            return 404, {"error": "no service account"}
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass
