"""The ``service:`` section (SkyServe dialect): parsed, validated and kept as data.

Styx does not serve yet (see :func:`styx.spec.support.unsupported_features`); the section
is validated now so that a service YAML fails early on typos and round-trips unchanged.
"""

from __future__ import annotations

from typing import Any

from styx.spec.check import Value
from styx.spec.frozen import FrozenDict, freeze
from styx.spec.schema import Anything, Bool, Fields, Int, MapOf, Num, OneOf, Str

LOAD_BALANCING_POLICIES = ("round_robin", "least_load", "instance_aware_least_load")
SPOT_PLACERS = ("dynamic_fallback",)

_NUMBER = Num(minimum=0)
_READINESS_PROBE = OneOf(
    (
        Str(),
        Fields(
            {
                "path": Str(),
                "initial_delay_seconds": _NUMBER,
                "timeout_seconds": _NUMBER,
                "endpoint_probe_interval_seconds": _NUMBER,
                "consecutive_failure_threshold_timeout": _NUMBER,
                "post_data": OneOf((Str(), MapOf(Anything())), "text or a mapping"),
                "headers": MapOf(Str()),
            },
            required=("path",),
        ),
    ),
    "a path such as /health, or a mapping with 'path'",
)
_REPLICA_POLICY = Fields(
    {
        "min_replicas": Int(minimum=0),
        "max_replicas": Int(minimum=0),
        "num_overprovision": Int(minimum=0),
        "target_qps_per_replica": OneOf((_NUMBER, MapOf(_NUMBER)), "a number or a mapping"),
        "dynamic_ondemand_fallback": Bool(),
        "base_ondemand_fallback_replicas": Int(minimum=0),
        "spot_placer": Str(choices=SPOT_PLACERS),
        "upscale_delay_seconds": _NUMBER,
        "downscale_delay_seconds": _NUMBER,
    },
    required=("min_replicas",),
)
_POOL = Fields(
    {
        "workers": Int(minimum=0),
        "min_workers": Int(minimum=0),
        "max_workers": Int(minimum=0),
        "queue_length_threshold": Int(minimum=1),
        "upscale_delay_seconds": _NUMBER,
        "downscale_delay_seconds": _NUMBER,
    }
)
SERVICE = Fields(
    {
        "readiness_probe": _READINESS_PROBE,
        "replica_policy": _REPLICA_POLICY,
        "replicas": Int(minimum=0),
        "ports": Int(minimum=1, maximum=65535),
        "workers": Int(minimum=0),
        "pool": _POOL,
        "load_balancing_policy": Str(choices=LOAD_BALANCING_POLICIES),
        "load_balancer": Fields({"stream_timeout_seconds": _NUMBER}),
        "tls": Fields({"keyfile": Str(), "certfile": Str()}, required=("keyfile", "certfile")),
    }
)


def parse_service(v: Value) -> FrozenDict[str, Any]:
    """Validate ``service:``; ``replicas`` and ``replica_policy`` exclude each other."""
    data: dict[str, Any] = SERVICE.check(v)
    if "replicas" in data and "replica_policy" in data:
        v.child("replicas", data["replicas"]).fail(
            "conflicting-fields",
            f"'{v.name}.replicas' cannot be used together with 'replica_policy'.",
            "Use 'replicas' for a fixed count, or 'replica_policy' to autoscale.",
        )
    result: FrozenDict[str, Any] = freeze(data)
    return result
