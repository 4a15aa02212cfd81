"""The ``service:`` section (SkyServe dialect): parsed, validated and kept as data.

:func:`parse_service` validates the section as written (it round-trips unchanged);
:meth:`ServiceSpec.of` gives ``styx serve`` its typed view, with SkyServe's defaults filled in.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from styx.errors import NotSupportedError, SpecError
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


# -- the typed view ----------------------------------------------------------------------------

#: SkyServe's defaults, kept so that a service file behaves as its authors expect.
DEFAULT_INITIAL_DELAY_S = 1200.0
DEFAULT_PROBE_TIMEOUT_S = 15.0
DEFAULT_UPSCALE_DELAY_S = 300.0
DEFAULT_DOWNSCALE_DELAY_S = 1200.0
DEFAULT_FAILURE_TIMEOUT_S = 180.0
DEFAULT_STREAM_TIMEOUT_S = 600.0


@dataclasses.dataclass(frozen=True, slots=True)
class ReadinessProbe:
    """How a replica is probed: GET ``path`` (POST when ``post_data`` is set), within
    ``timeout_s``; failures in the first ``initial_delay_s`` after launch do not count."""

    path: str
    initial_delay_s: float = DEFAULT_INITIAL_DELAY_S
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
    post_data: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    #: A READY replica that keeps failing its probe this long is replaced.
    failure_timeout_s: float = DEFAULT_FAILURE_TIMEOUT_S


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service as ``styx serve`` runs it: probe, replica bounds, autoscaling, balancing.

    ``min_replicas == max_replicas`` for a fixed count (``replicas: N``); ``target_qps`` is
    None when the service does not autoscale.
    """

    probe: ReadinessProbe
    port: int
    min_replicas: int = 1
    max_replicas: int = 1
    target_qps: float | None = None
    upscale_delay_s: float = DEFAULT_UPSCALE_DELAY_S
    downscale_delay_s: float = DEFAULT_DOWNSCALE_DELAY_S
    base_ondemand: int = 0
    dynamic_ondemand: bool = False
    policy: str = "round_robin"
    tls_keyfile: str | None = None
    tls_certfile: str | None = None
    stream_timeout_s: float = DEFAULT_STREAM_TIMEOUT_S

    @property
    def autoscales(self) -> bool:
        return self.target_qps is not None and self.max_replicas > self.min_replicas

    @classmethod
    def of(cls, section: Any, task_ports: tuple[int, ...] = ()) -> ServiceSpec:
        """The typed view of a validated ``service:`` section (``parse_service``'s result).
        ``task_ports`` are the task's ``resources.ports``: the first is the replica port when
        ``service.ports`` is absent. Raises SpecError for what validation alone cannot see."""
        data: dict[str, Any] = dict(section)
        probe = _probe(data.get("readiness_probe"))
        port = data.get("ports") or (task_ports[0] if task_ports else None)
        if port is None:
            raise SpecError(
                "The service says no port its replicas listen on.",
                "Set 'service.ports' (or 'resources.ports') to the port the replicas serve on.",
                code="service-port-missing",
            )
        policy = dict(data.get("replica_policy") or {})
        if "replicas" in data or not policy:
            count = int(data.get("replicas", 1))
            lo = hi = count
            qps = None
        else:
            lo = int(policy["min_replicas"])
            hi = int(policy.get("max_replicas", lo))
            qps_raw = policy.get("target_qps_per_replica")
            if isinstance(qps_raw, dict):
                raise NotSupportedError(
                    "'service.replica_policy.target_qps_per_replica' per accelerator is not "
                    "supported yet.",
                    "Give one number of queries per second per replica.",
                )
            qps = None if qps_raw is None else float(qps_raw)
            if hi < lo:
                raise SpecError(
                    f"'service.replica_policy.max_replicas' ({hi}) is below 'min_replicas' ({lo}).",
                    "Make max_replicas at least min_replicas.",
                    code="invalid-value",
                )
            if hi > lo and not qps:
                raise SpecError(
                    "The service may scale between min_replicas and max_replicas but gives no "
                    "'target_qps_per_replica' to scale on.",
                    "Set 'service.replica_policy.target_qps_per_replica', or make "
                    "max_replicas equal to min_replicas.",
                    code="missing-value",
                )
        if hi == 0:
            raise SpecError(
                "The service asks for 0 replicas at most, so it could never serve.",
                "Ask for at least one replica (replicas: 1, or max_replicas: 1).",
                code="invalid-value",
            )
        tls = dict(data.get("tls") or {})
        lb = dict(data.get("load_balancer") or {})
        return cls(
            probe=probe,
            port=int(port),
            min_replicas=lo,
            max_replicas=hi,
            target_qps=qps,
            upscale_delay_s=float(policy.get("upscale_delay_seconds", DEFAULT_UPSCALE_DELAY_S)),
            downscale_delay_s=float(
                policy.get("downscale_delay_seconds", DEFAULT_DOWNSCALE_DELAY_S)
            ),
            base_ondemand=int(policy.get("base_ondemand_fallback_replicas", 0)),
            dynamic_ondemand=bool(policy.get("dynamic_ondemand_fallback", False)),
            policy=str(data.get("load_balancing_policy", "round_robin")),
            tls_keyfile=tls.get("keyfile"),
            tls_certfile=tls.get("certfile"),
            stream_timeout_s=float(lb.get("stream_timeout_seconds", DEFAULT_STREAM_TIMEOUT_S)),
        )


def _probe(raw: Any) -> ReadinessProbe:
    if raw is None:
        return ReadinessProbe(path="/")
    if isinstance(raw, str):
        return ReadinessProbe(path=_probe_path(raw))
    data = dict(raw)
    post = data.get("post_data")
    if post is not None and not isinstance(post, str):
        post = json.dumps(_plain(post))
    return ReadinessProbe(
        path=_probe_path(str(data["path"])),
        initial_delay_s=float(data.get("initial_delay_seconds", DEFAULT_INITIAL_DELAY_S)),
        timeout_s=float(data.get("timeout_seconds", DEFAULT_PROBE_TIMEOUT_S)),
        post_data=post,
        headers=tuple((str(k), str(v)) for k, v in dict(data.get("headers") or {}).items()),
        failure_timeout_s=float(
            data.get("consecutive_failure_threshold_timeout", DEFAULT_FAILURE_TIMEOUT_S)
        ),
    )


def _probe_path(path: str) -> str:
    if not path.startswith("/") or any(c in path for c in " \r\n\t"):
        raise SpecError(
            f"The readiness probe path {path!r} is not a URL path.",
            "Give a path that starts with '/', such as /health.",
            code="invalid-value",
        )
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
