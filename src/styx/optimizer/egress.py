"""What moving data between tasks costs, in dollars and seconds.

The model follows SkyPilot's: data moves for free inside one cloud; leaving a cloud costs that
cloud's internet egress price and takes ``GB * 8 / 10 Gbps``. Prices are list prices for
egress to the internet, tiered like a tax bracket (each GB is priced at the rate of the tier
it falls in); the tiers are per month, and counting one transfer alone is an approximation.
Data leaving local machines, SSH pools or Kubernetes costs nothing here (no cloud bills it).

A task's ``inputs`` whose path names a bucket (``s3://``, ``gs://``, ``az://``...) come from
that cloud; a task's ``outputs`` flow to each task that depends on it.
"""

from __future__ import annotations

import math

BANDWIDTH_GBPS = 10.0
# (up to GB in the month, $ per GB) -- AWS and Azure from US regions, GCP worldwide.
TIERS: dict[str, tuple[tuple[float, float], ...]] = {
    "aws": ((10 * 1024, 0.09), (50 * 1024, 0.085), (150 * 1024, 0.07), (math.inf, 0.05)),
    "azure": ((10 * 1024, 0.0875), (50 * 1024, 0.083), (150 * 1024, 0.07), (math.inf, 0.05)),
    "gcp": ((1024, 0.12), (10 * 1024, 0.11), (math.inf, 0.08)),
    "lambda": ((math.inf, 0.0),),
    "vast": ((math.inf, 0.0),),
}
DEFAULT_TIERS: tuple[tuple[float, float], ...] = ((math.inf, 0.09),)
FREE_SOURCES = ("local", "ssh", "kubernetes", "cloudflare")
_SCHEMES = {
    "s3": "aws",
    "gs": "gcp",
    "gcs": "gcp",
    "az": "azure",
    "r2": "cloudflare",
    "cos": "ibm",
    "oci": "oci",
}


def egress_cost(src: str, dst: str, gigabytes: float) -> float:
    """Dollars to move ``gigabytes`` from infra kind ``src`` to ``dst``."""
    if gigabytes <= 0 or src == dst or src in FREE_SOURCES:
        return 0.0
    cost, done = 0.0, 0.0
    for upto, rate in TIERS.get(src, DEFAULT_TIERS):
        part = min(gigabytes, upto) - done
        if part <= 0:
            break
        cost += part * rate
        done += part
    return cost


def egress_seconds(src: str, dst: str, gigabytes: float) -> float:
    """Seconds to move ``gigabytes`` from ``src`` to ``dst`` (0 inside one infra kind)."""
    if gigabytes <= 0 or src == dst:
        return 0.0
    return gigabytes * 8.0 / BANDWIDTH_GBPS


def source_infra(path: str) -> str | None:
    """The cloud a data path lives in (``gs://b/x`` -> ``gcp``), or None for local paths."""
    scheme, sep, _ = path.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    if scheme == "https" and ".blob.core.windows.net" in path:
        return "azure"
    return _SCHEMES.get(scheme)
