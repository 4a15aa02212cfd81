"""The typed view of ``service:``: SkyServe's defaults, and the mistakes validation alone misses."""

from __future__ import annotations

import pytest

from styx.errors import NotSupportedError, SpecError
from styx.spec.service import ServiceSpec
from styx.spec.task import Task


def of(yaml: str) -> ServiceSpec:
    task = Task.from_yaml_str(yaml)
    assert task.service is not None
    return ServiceSpec.of(task.service, tuple(p.start for p in task.resources.ports))


def test_a_skyserve_file_with_defaults() -> None:
    s = of(
        "service:\n  readiness_probe: /health\n  replicas: 2\nresources:\n  ports: 8080\nrun: x\n"
    )
    assert (s.port, s.min_replicas, s.max_replicas, s.autoscales) == (8080, 2, 2, False)
    assert (s.probe.path, s.probe.initial_delay_s, s.probe.timeout_s) == ("/health", 1200.0, 15.0)
    assert s.policy == "round_robin"


def test_a_full_replica_policy_and_probe() -> None:
    s = of(
        "service:\n"
        "  readiness_probe:\n    path: /v1/models\n    initial_delay_seconds: 30\n"
        "    timeout_seconds: 2\n    post_data: {model: m}\n    headers: {Authorization: x}\n"
        "  replica_policy:\n    min_replicas: 0\n    max_replicas: 4\n"
        "    target_qps_per_replica: 2.5\n    upscale_delay_seconds: 5\n"
        "    downscale_delay_seconds: 7\n    base_ondemand_fallback_replicas: 1\n"
        "    dynamic_ondemand_fallback: true\n"
        "  ports: 9000\n  load_balancing_policy: least_load\nrun: x\n"
    )
    assert (s.min_replicas, s.max_replicas, s.target_qps, s.autoscales) == (0, 4, 2.5, True)
    assert (s.upscale_delay_s, s.downscale_delay_s) == (5.0, 7.0)
    assert (s.base_ondemand, s.dynamic_ondemand, s.policy, s.port) == (1, True, "least_load", 9000)
    assert s.probe.post_data == '{"model": "m"}'
    assert s.probe.headers == (("Authorization", "x"),)


@pytest.mark.parametrize(
    ("service", "code"),
    [
        ("  readiness_probe: /h\n", "service-port-missing"),
        ("  readiness_probe: health\n  ports: 1\n", "invalid-value"),
        (
            "  replica_policy: {min_replicas: 3, max_replicas: 1, target_qps_per_replica: 1}\n  ports: 1\n",
            "invalid-value",
        ),
        ("  replica_policy: {min_replicas: 1, max_replicas: 3}\n  ports: 1\n", "missing-value"),
        ("  replicas: 0\n  ports: 1\n", "invalid-value"),
        ("  replicas: 1\n  replica_policy: {min_replicas: 1}\n  ports: 1\n", "conflicting-fields"),
        ("  readiness_probe: /h\n  ports: 1\n  tls: {keyfile: k}\n", None),
    ],
)
def test_mistakes_are_refused_with_codes(service: str, code: str | None) -> None:
    with pytest.raises(SpecError) as err:
        of("service:\n" + service + "run: x\n")
    if code is not None:
        assert err.value.code == code
    assert err.value.hint


def test_qps_per_accelerator_is_not_supported_yet() -> None:
    with pytest.raises(NotSupportedError):
        of("service:\n  replica_policy: {min_replicas: 1, max_replicas: 2, "
           "target_qps_per_replica: {A100: 3}}\n  ports: 1\nrun: x\n")  # fmt: skip
