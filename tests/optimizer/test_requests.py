"""25 resource requests on the shared catalog, each checked against the brute force in
``brute.py``; failover after blocking a zone, then a region."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from tests.optimizer import brute

from styx.optimizer import Blocklist, optimize_task
from styx.optimizer.types import Candidate
from styx.spec.task import Task

CLOUDS = ["gcp", "azure", "lambda"]

REQUESTS: dict[str, str] = {
    "a100x8": "resources: {accelerators: A100:8}",
    "h100x1-spot": "resources: {accelerators: H100:1, use_spot: true}",
    "cpus4+-mem16+": "resources: {cpus: 4+, memory: 16+}",
    "t4-in-us-central1": "resources: {accelerators: T4, infra: gcp/us-central1}",
    "any-of-a100-h100": "resources: {any_of: [{accelerators: A100:8}, {accelerators: H100:8}]}",
    "ordered-azure-h100-then-a100": (
        "resources: {ordered: [{accelerators: H100:8, infra: azure}, {accelerators: A100:8}]}"
    ),
    "ordered-first-infeasible": (
        "resources: {ordered: [{accelerators: A100:3}, {accelerators: L4:2}, {accelerators: T4:1}]}"
    ),
    "cpus-exactly-8": "resources: {cpus: 8}",
    "memory-32+": "resources: {memory: 32+}",
    "memory-4x-of-4-cpus": "resources: {cpus: 4, memory: 4x}",
    "instance-type": "resources: {instance_type: Standard_NC24ads_A100_v4}",
    "v100x4-n1-host-default": "resources: {accelerators: V100:4}",
    "l4-spot": "resources: {accelerators: L4:1, use_spot: true}",
    "tpu-v5p-8": "resources: {accelerators: tpu-v5p-8}",
    "a100-80gb-x4-azure": "resources: {accelerators: A100-80GB:4, infra: azure}",
    "default-node": "name: default",
    "accelerator-set": "resources: {accelerators: {A100:8, H100:8}}",
    "accelerator-list": "resources: {accelerators: [H100:8, A100:8]}",
    "four-nodes-a10": "num_nodes: 4\nresources: {accelerators: A10:1}",
    "max-hourly-cost": "resources: {cpus: 16+, max_hourly_cost: 0.5}",
    "spot-cpus-azure": "resources: {cpus: 2+, use_spot: true, infra: azure}",
    "lambda-a100": "resources: {accelerators: a100:1, infra: lambda}",
    "t4x2-in-zone": "resources: {accelerators: T4:2, infra: gcp/us-central1/us-central1-c}",
    "t4-with-16-cpus": "resources: {accelerators: T4:1, cpus: 16, infra: gcp}",
    "h200x8-spot": "resources: {accelerators: H200:8, use_spot: true}",
    "region-image-map": (
        "resources: {cpus: 4+, image_id: {westeurope: img-1, eastus: img-2}, infra: azure}"
    ),
}


@pytest.fixture(scope="module")
def rows() -> list[brute.Row]:
    from tests.catalog.conftest import shared_catalog

    return brute.load(shared_catalog(), CLOUDS)


def _matches(c: Candidate, found: list[tuple[brute.Row, bool]]) -> bool:
    return any(
        row.cloud == c.infra
        and row.region == c.region
        and row.zone == c.zone
        and row.instance_type == c.instance_type
        and spot == c.use_spot
        for row, spot in found
    )


def check_against_brute(
    task: Task, rows: list[brute.Row], blocked: set[tuple[str, ...]], blocklist: Blocklist
) -> Candidate:
    plan = optimize_task(task, clouds=CLOUDS, blocked=blocklist)
    chosen = plan.chosen
    low, found = brute.best(
        rows, task.resources.candidates(), task.resources.is_ordered, task.num_nodes, blocked
    )
    assert not math.isnan(low), "brute force found nothing, the optimizer did"
    assert chosen.cluster_hourly_price == pytest.approx(low, rel=1e-9, abs=1e-9)
    assert plan.tasks[0].cost == pytest.approx(low)  # 1 hour by default
    assert _matches(chosen, found), (chosen, found[:3])
    return chosen


assert len(REQUESTS) >= 20


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_matches_brute_force(name: str, catalog_env: Path, rows: list[brute.Row]) -> None:
    task = Task.from_yaml_str(REQUESTS[name])
    chosen = check_against_brute(task, rows, set(), Blocklist())
    assert chosen.num_nodes == task.num_nodes


def test_spot_and_accelerator_details(catalog_env: Path, rows: list[brute.Row]) -> None:
    plan = optimize_task(Task.from_yaml_str(REQUESTS["h100x1-spot"]), clouds=CLOUDS)
    c = plan.chosen
    assert c.use_spot and c.accelerator == "H100" and c.accelerator_count == 1
    assert c.accelerators == {"H100": 1}
    t4 = optimize_task(Task.from_yaml_str(REQUESTS["t4-in-us-central1"]), clouds=CLOUDS).chosen
    assert (t4.infra, t4.region) == ("gcp", "us-central1")
    assert t4.cpus is not None and t4.cpus >= 4 and t4.memory_gb is not None and t4.memory_gb >= 16


def test_failover_blocks_zone_then_region(catalog_env: Path, rows: list[brute.Row]) -> None:
    task = Task.from_yaml_str("resources: {accelerators: A100:8, infra: gcp}")
    blocked: set[tuple[str, ...]] = set()
    blocklist = Blocklist()
    first = check_against_brute(task, rows, blocked, blocklist)
    assert first.zone is not None

    blocklist = blocklist.block_zone(first)
    blocked.add(("gcp", first.region or "", first.zone))
    second = check_against_brute(task, rows, blocked, blocklist)
    assert second.zone != first.zone

    blocklist = blocklist.block_region(second)
    blocked.add(("gcp", second.region or ""))
    third = check_against_brute(task, rows, blocked, blocklist)
    assert third.region != second.region and third.zone != first.zone
    assert third.hourly_price >= second.hourly_price >= first.hourly_price


def test_failover_blocking_a_cloud_moves_on(catalog_env: Path, rows: list[brute.Row]) -> None:
    task = Task.from_yaml_str(REQUESTS["a100x8"])
    first = optimize_task(task, clouds=CLOUDS).chosen
    blocklist = Blocklist().block_infra(first.infra)
    second = check_against_brute(task, rows, {(first.infra,)}, blocklist)
    assert second.infra != first.infra


def test_blocking_only_spot_of_one_type(catalog_env: Path, rows: list[brute.Row]) -> None:
    task = Task.from_yaml_str(REQUESTS["h100x1-spot"])
    first = optimize_task(task, clouds=CLOUDS).chosen
    blocklist = Blocklist().block_zone(first, only_this_type=True)
    key = (first.infra, first.region or "", first.zone or "", first.instance_type or "", "True")
    second = check_against_brute(task, rows, {key}, blocklist)
    assert (second.region, second.zone) != (first.region, first.zone)


def test_hours_scale_cost_and_time_objective(catalog_env: Path) -> None:
    from styx.optimizer import Objective

    task = Task.from_yaml_str(REQUESTS["a100x8"])
    plan = optimize_task(task, clouds=CLOUDS, hours=3.0)
    assert plan.total_cost == pytest.approx(plan.chosen.hourly_price * 3)
    assert plan.total_seconds == pytest.approx(3 * 3600)

    def faster_on_gcp(t: Task, c: Candidate) -> float:
        return 0.5 if c.infra == "gcp" else 2.0

    fast = optimize_task(task, clouds=CLOUDS, objective=Objective.TIME, hours=faster_on_gcp)
    assert fast.chosen.infra == "gcp" and fast.total_seconds == pytest.approx(1800)
    cheap = optimize_task(task, clouds=CLOUDS, objective=Objective.COST, hours=faster_on_gcp)
    assert cheap.total_cost <= fast.total_cost


def test_inputs_egress_pulls_task_to_its_bucket(catalog_env: Path) -> None:
    task = Task.from_yaml_str("resources: {accelerators: A100:8}\ninputs: {gs://bucket/data: 5000}")
    plan = optimize_task(task, clouds=CLOUDS)
    # 5 TB out of GCP costs ~$560, more than the ~$3.5/h A100:8 gap between Lambda and GCP.
    assert plan.chosen.infra == "gcp" and plan.egress_cost == 0
