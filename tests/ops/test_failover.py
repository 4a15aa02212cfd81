"""Failover in ``provision_with_failover``: the error's typed ``FailoverScope`` decides what is
blocked before the optimizer is asked again (no machines; the optimizer and the provider are
stand-ins)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from styx.errors import (
    AuthFailed,
    FailoverScope,
    NoCapacity,
    QuotaExceeded,
    ResourcesUnavailable,
)
from styx.ops import stages
from styx.ops.pipeline import Pipeline

PLACES = [
    ("aws", "r1", "r1a"),
    ("aws", "r1", "r1b"),
    ("aws", "r2", "r2a"),
    ("gcp", "g1", "g1a"),
]


@dataclasses.dataclass(frozen=True)
class _Candidate:
    infra: str
    region: str
    zone: str
    instance_type: str | None = None
    use_spot: bool = False

    def describe(self) -> str:
        return f"{self.infra}/{self.region}/{self.zone}"


@dataclasses.dataclass(frozen=True)
class _Request:
    zone: str | None


def _run(
    monkeypatch: pytest.MonkeyPatch, failures: dict[str, ResourcesUnavailable], *, zone_asked: bool
) -> list[str]:
    """The places tried, in order, until one works (or the error of the last one)."""
    tried: list[str] = []

    def choose(task: Any, name: str, blocked: Any) -> Any:
        for infra, region, zone in PLACES:
            if not blocked.is_blocked(infra, region, zone, None, False):
                c = _Candidate(infra, region, zone)
                return stages.Placement(infra, None, _Request(zone if zone_asked else None), c)  # type: ignore[arg-type]
        raise ResourcesUnavailable("nothing left")

    def provision(db: Any, pipe: Any, task: Any, name: str, placement: Any) -> Any:
        where = placement.candidate.describe()
        tried.append(where)
        if where in failures:
            raise failures[where]
        return where, None

    monkeypatch.setattr(stages, "choose_placement", choose)
    monkeypatch.setattr(stages, "provision", provision)
    stages.provision_with_failover(None, Pipeline(quiet=True), None, "c")  # type: ignore[arg-type]
    return tried


def test_zone_scope_blocks_only_the_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    err = NoCapacity("full", scope=FailoverScope.ZONE)
    assert _run(monkeypatch, {"aws/r1/r1a": err}, zone_asked=False) == ["aws/r1/r1a", "aws/r1/r1b"]


def test_region_scope_blocks_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    err = QuotaExceeded("no quota")  # regional by default
    assert err.scope is FailoverScope.REGION
    assert _run(monkeypatch, {"aws/r1/r1a": err}, zone_asked=True) == ["aws/r1/r1a", "aws/r2/r2a"]


def test_cloud_scope_blocks_the_infra(monkeypatch: pytest.MonkeyPatch) -> None:
    err = AuthFailed("refused")  # cloud-wide by default
    assert _run(monkeypatch, {"aws/r1/r1a": err}, zone_asked=True) == ["aws/r1/r1a", "gcp/g1/g1a"]


def test_an_explicit_scope_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    err = QuotaExceeded("a zonal limit", scope=FailoverScope.ZONE)
    assert _run(monkeypatch, {"aws/r1/r1a": err}, zone_asked=False) == ["aws/r1/r1a", "aws/r1/r1b"]


def test_a_scope_string_in_details_is_display_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the typed attribute drives failover: a NoCapacity without one, for a request that
    # named a zone, blocks that zone, whatever its details say.
    err = NoCapacity("full", details={"scope": "cloud"})
    assert err.scope is None
    assert _run(monkeypatch, {"aws/r1/r1a": err}, zone_asked=True) == ["aws/r1/r1a", "aws/r1/r1b"]


def test_no_scope_means_no_failover(monkeypatch: pytest.MonkeyPatch) -> None:
    err = ResourcesUnavailable("the task does not fit", details={"scope": "region"})
    with pytest.raises(ResourcesUnavailable) as caught:
        _run(monkeypatch, {"aws/r1/r1a": err}, zone_asked=False)
    assert caught.value is err


def test_scope_is_typed_and_serialised_for_display() -> None:
    err = NoCapacity("full", scope=FailoverScope("region"))
    assert err.scope is FailoverScope.REGION
    assert err.to_dict()["scope"] == "region"
    with pytest.raises(ValueError):
        FailoverScope("planet")
