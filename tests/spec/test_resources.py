from __future__ import annotations

from typing import Any

import pytest

from styx.errors import SpecError
from styx.spec.policies import Autostop
from styx.spec.quantities import Accelerator, CpuSpec, Infra, MemorySpec, PortRange
from styx.spec.resources import Resources


def parse(data: dict[str, Any]) -> Resources:
    resources = Resources.from_dict(data)
    assert Resources.from_dict(resources.to_dict()) == resources  # every form round-trips
    return resources


def error(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        Resources.from_dict(data)
    return info.value


@pytest.mark.parametrize(
    ("text", "infra"),
    [
        ("aws", Infra("aws")),
        ("AWS/us-east-1", Infra("aws", "us-east-1")),
        ("aws/us-east-1/us-east-1a", Infra("aws", "us-east-1", "us-east-1a")),
        ("aws/*/us-east-1a", Infra("aws", None, "us-east-1a")),
        ("*/us-east-1", Infra(None, "us-east-1")),
        ("k8s", Infra("kubernetes")),
        ("kubernetes/my-ctx", Infra("kubernetes", "my-ctx")),
        (
            "k8s/arn:aws:eks:us-east-1:1:cluster/prod",
            Infra("kubernetes", "arn:aws:eks:us-east-1:1:cluster/prod"),
        ),
        ("ssh/my-pool", Infra("ssh", "my-pool")),
        ("local", Infra("local")),
    ],
)
def test_infra_forms(text: str, infra: Infra) -> None:
    assert parse({"infra": text}).infra == infra


def test_any_infra_is_no_infra() -> None:
    assert parse({"infra": "*"}).infra is None
    assert parse({"infra": "*/*"}).infra is None


def test_legacy_cloud_region_zone() -> None:
    r = parse({"cloud": "AWS", "region": "us-east-1", "zone": "us-east-1a"})
    assert (r.cloud, r.region, r.zone) == ("aws", "us-east-1", "us-east-1a")
    assert r.to_dict() == {"infra": "aws/us-east-1/us-east-1a"}


@pytest.mark.parametrize(
    ("raw", "spec"),
    [
        (4, CpuSpec(4)),
        ("4", CpuSpec(4)),
        ("4+", CpuSpec(4, True)),
        (0.5, CpuSpec(0.5)),
        ("0.5+", CpuSpec(0.5, True)),
    ],
)
def test_cpus(raw: Any, spec: CpuSpec) -> None:
    assert parse({"cpus": raw}).cpus == spec


@pytest.mark.parametrize(
    ("raw", "spec"),
    [
        (16, MemorySpec(16)),
        ("16+", MemorySpec(16, at_least=True)),
        ("32GB", MemorySpec(32)),
        ("1024MB", MemorySpec(1)),
        ("1TB+", MemorySpec(1024, at_least=True)),
        ("4x", MemorySpec(per_cpu=4)),
        ("2x+", MemorySpec(per_cpu=2, at_least=True)),
    ],
)
def test_memory(raw: Any, spec: MemorySpec) -> None:
    assert parse({"memory": raw}).memory == spec


@pytest.mark.parametrize(
    ("raw", "accelerators", "ordered"),
    [
        ("A100:8", (Accelerator("A100", 8),), False),
        ("A100", (Accelerator("A100", 1),), False),
        ("T4:0.5", (Accelerator("T4", 0.5),), False),
        ({"A100": 8}, (Accelerator("A100", 8),), False),
        (["A100:8", "H100:8"], (Accelerator("A100", 8), Accelerator("H100", 8)), True),
        ({"A100:8": None, "H100:8": None}, (Accelerator("A100", 8), Accelerator("H100", 8)), False),
        ({"A100:1": None, "A100:8": None}, (Accelerator("A100", 1), Accelerator("A100", 8)), False),
        ("{A100:8, V100:4}", (Accelerator("A100", 8), Accelerator("V100", 4)), False),
        ("['A100:8', 'V100:4']", (Accelerator("A100", 8), Accelerator("V100", 4)), True),
        (["L4:1"], (Accelerator("L4", 1),), False),
    ],
)
def test_accelerator_forms(raw: Any, accelerators: tuple[Accelerator, ...], ordered: bool) -> None:
    r = parse({"accelerators": raw})
    assert (r.accelerators, r.accelerators_ordered) == (accelerators, ordered)


def test_accelerator_counts() -> None:
    assert parse({"accelerators": "A100:8"}).accelerator_counts == {"A100": 8}
    assert parse({"accelerators": {"T4:0.5": None, "L4": 1}}).accelerator_counts == {
        "T4": 0.5,
        "L4": 1,
    }


def test_accelerator_names_keep_their_casing() -> None:
    assert parse({"accelerators": "a100-80gb:2"}).accelerators == (Accelerator("a100-80gb", 2),)


def test_ports_disk_and_simple_fields() -> None:
    r = parse(
        {
            "ports": [8080, "10022-10040", "9000"],
            "disk_size": "1TB",
            "disk_tier": "BEST",
            "network_tier": "best",
            "instance_type": "p3.2xlarge",
            "use_spot": True,
            "priority": 0,
            "max_hourly_cost": 2,
            "labels": {"team": "ml"},
            "image_id": "docker:ubuntu:22.04",
        }
    )
    assert r.ports == (PortRange(8080, 8080), PortRange(10022, 10040), PortRange(9000, 9000))
    assert (r.disk_size, r.disk_tier, r.network_tier) == (1024, "best", "best")
    assert r.is_docker_image and r.labels == {"team": "ml"} and r.max_hourly_cost == 2.0
    assert parse({"disk_size": "1500MB"}).disk_size == 1  # floored, as SkyPilot does


@pytest.mark.parametrize(
    ("raw", "autostop", "canonical"),
    [
        (True, Autostop(), True),
        (False, Autostop(enabled=False), False),
        (10, Autostop(idle_minutes=10), 10),
        ("2h", Autostop(idle_minutes=120), 120),
        ("1d", Autostop(idle_minutes=1440), 1440),
        (
            {"idle_minutes": 5, "down": True},
            Autostop(idle_minutes=5, down=True),
            {"idle_minutes": 5, "down": True},
        ),
        (
            {"down": True, "wait_for": "NONE"},
            Autostop(down=True, wait_for="none"),
            {"down": True, "wait_for": "none"},
        ),
    ],
)
def test_autostop(raw: Any, autostop: Autostop, canonical: Any) -> None:
    r = parse({"autostop": raw})
    assert r.autostop == autostop
    assert r.to_dict()["autostop"] == canonical


def test_job_recovery_forms_and_deprecated_name() -> None:
    assert parse({"job_recovery": "failover"}).to_dict()["job_recovery"] == "FAILOVER"
    r = parse(
        {
            "spot_recovery": {
                "strategy": None,
                "max_restarts_on_errors": 2,
                "recover_on_exit_codes": 7,
            }
        }
    )
    assert r.job_recovery is not None
    assert (r.job_recovery.strategy, r.job_recovery.recover_on_exit_codes) == (None, (7,))


def test_empty_mappings_round_trip() -> None:
    assert parse({"job_recovery": {}}).job_recovery is None
    assert parse({"autostop": {}}).to_dict() == {"autostop": True}
    assert parse({"labels": {}, "accelerator_args": {}}).to_dict() == {
        "accelerator_args": {},
        "labels": {},
    }


def test_image_id_per_region() -> None:
    r = parse({"image_id": {"us-east-1": "ami-1", "us-west-2": "ami-2"}})
    assert r.image_id == {"us-east-1": "ami-1", "us-west-2": "ami-2"}


def test_any_of_candidates_merge_over_defaults() -> None:
    r = parse(
        {
            "accelerators": "H100:8",
            "use_spot": True,
            "any_of": [
                {"infra": "aws/us-west-2"},
                {"infra": "gcp", "use_spot": False, "accelerators": "A100:8"},
            ],
        }
    )
    candidates = r.candidates()
    assert not r.is_ordered
    assert [(c.cloud, c.accelerator, c.use_spot) for c in candidates] == [
        ("aws", Accelerator("H100", 8), True),
        ("gcp", Accelerator("A100", 8), False),
    ]
    assert all(not c.alternatives for c in candidates)


def test_ordered_candidates_keep_their_order() -> None:
    r = parse({"ordered": [{"infra": "aws/us-east-1"}, {"infra": "aws/us-west-2"}], "cpus": 4})
    assert r.is_ordered
    assert [c.region for c in r.candidates()] == ["us-east-1", "us-west-2"]
    assert all(c.cpus == CpuSpec(4) for c in r.candidates())


def test_accelerator_list_and_set_expand_to_candidates() -> None:
    listed = parse({"accelerators": ["A100:1", "L4:1"], "infra": "gcp"})
    assert listed.is_ordered
    assert [str(c.accelerator) for c in listed.candidates()] == ["A100:1", "L4:1"]
    assert all(c.cloud == "gcp" and len(c.accelerators) == 1 for c in listed.candidates())
    assert not parse({"accelerators": {"A100:1": None, "L4:1": None}}).is_ordered


def test_plain_resources_are_their_own_candidate() -> None:
    r = parse({"cpus": 2})
    assert r.candidates() == [r]
    assert Resources().candidates() == [Resources()]


def test_resources_are_hashable_values() -> None:
    a = Resources.from_dict(
        {"accelerators": {"A100:8": None, "H100:8": None}, "labels": {"a": "b"}}
    )
    b = Resources.from_dict({"accelerators": {"A100": 8, "H100": 8}, "labels": {"a": "b"}})
    assert a == b and hash(a) == hash(b)
    assert len({*a.candidates(), *b.candidates()}) == 2


def test_to_dict_omits_defaults() -> None:
    assert Resources().to_dict() == {}
    assert Resources.from_dict({"infra": "*", "ports": []}).to_dict() == {}


@pytest.mark.parametrize(
    ("data", "code", "path"),
    [
        ({"acelerators": "A100"}, "unknown-key", "acelerators"),
        ({"infra": "aws", "region": "x"}, "conflicting-fields", "region"),
        ({"any_of": [{}], "ordered": [{}]}, "conflicting-fields", "ordered"),
        (
            {"accelerators": ["A100", "V100"], "ordered": [{"infra": "aws"}]},
            "conflicting-fields",
            "ordered",
        ),
        ({"any_of": [{"any_of": []}]}, "unknown-key", "any_of[0].any_of"),
        (
            {"any_of": [{"accelerators": {"A100:1": None, "B:1": None}}]},
            "invalid-value",
            "any_of[0].accelerators",
        ),
        ({"accelerators": ["A100", "A100"]}, "invalid-value", "accelerators"),
        ({"accelerators": "A100:0"}, "invalid-value", "accelerators"),
        ({"accelerators": {"A100": True}}, "invalid-type", "accelerators.A100"),
        ({"accelerators": {"A100:2": 3}}, "invalid-value", "accelerators['A100:2']"),
        ({"cpus": [4]}, "invalid-type", "cpus"),
        ({"cpus": 1e300}, "invalid-value", "cpus"),
        ({"cpus": "1e999"}, "invalid-value", "cpus"),
        ({"memory": "x"}, "invalid-value", "memory"),
        ({"memory": "0x"}, "invalid-value", "memory"),
        ({"disk_size": 0}, "invalid-value", "disk_size"),
        ({"disk_size": "12PBX"}, "invalid-value", "disk_size"),
        ({"disk_size": "10+"}, "invalid-value", "disk_size"),
        ({"ports": "0"}, "invalid-value", "ports"),
        ({"ports": True}, "invalid-type", "ports"),
        ({"infra": "aws//x"}, "invalid-value", "infra"),
        ({"infra": "/us-east-1"}, "invalid-value", "infra"),
        ({"infra": "local/x"}, "invalid-value", "infra"),
        ({"cloud": "aws", "region": ""}, "invalid-value", "region"),
        ({"labels": []}, "invalid-type", "labels"),
        ({"image_id": {}}, "invalid-value", "image_id"),
        ({"autostop": -1}, "invalid-value", "autostop"),
        ({"autostop": {"hook_timeout": 0}}, "invalid-value", "autostop.hook_timeout"),
        ({"job_recovery": 3}, "invalid-type", "job_recovery"),
        (
            {"job_recovery": {"recover_on_exit_codes": [1, 1]}},
            "invalid-value",
            "job_recovery.recover_on_exit_codes",
        ),
        ({"accelerator_args": {"tpu_vm": "yes"}}, "invalid-type", "accelerator_args.tpu_vm"),
        ({"accelerator_args": {"tpu": 1}}, "unknown-key", "accelerator_args.tpu"),
        ({"priority": -1}, "invalid-value", "priority"),
        ({"max_hourly_cost": float("inf")}, "invalid-value", "max_hourly_cost"),
    ],
)
def test_invalid_resources(data: dict[str, Any], code: str, path: str) -> None:
    e = error(data)
    assert (e.code, e.location.path if e.location else None) == (code, path), str(e)


def test_not_a_mapping() -> None:
    assert error([1, 2]).code == "invalid-type"  # type: ignore[arg-type]
    assert Resources.from_dict(None) == Resources()


def test_a_memory_number_in_exponent_form_is_a_clear_error_not_a_crash() -> None:
    """Hypothesis found `memory: 7e-287` reaching an internal assertion."""
    from styx.errors import SpecError
    from styx.spec.task import Task

    for data in ({"resources": {"memory": 7e-287}}, {"resources": {"memory": "1e3"}}):
        with pytest.raises(SpecError) as err:
            Task.from_dict(data)
        assert err.value.code == "invalid-value" and "not a memory size" in err.value.message


def test_any_of_with_an_accelerator_set_is_every_pair() -> None:
    """As SkyPilot reads it: each any_of candidate with each accelerator of the set."""
    from styx.spec.task import Task

    r = Task.from_yaml_str(
        "resources:\n  accelerators: {H100:8, H200:8}\n  any_of: [{use_spot: true}, {use_spot: false}]\n"
    ).resources
    pairs = {(str(c.accelerator), bool(c.use_spot)) for c in r.candidates()}
    assert pairs == {("H100:8", True), ("H200:8", True), ("H100:8", False), ("H200:8", False)}
