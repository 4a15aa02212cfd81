"""Local and SSH capacity as offers; errors that name the constraint; the dry-run table."""

from __future__ import annotations

from pathlib import Path

import pytest

from styx.errors import ResourcesUnavailable, SpecError
from styx.optimizer import (
    Blocklist,
    InfraOffer,
    NodeCapacity,
    optimize_dag,
    optimize_task,
    plan_text,
    render_plan,
)
from styx.spec.dag import Dag
from styx.spec.task import Task

CLOUDS = ["gcp", "azure", "lambda"]
LOCAL = InfraOffer("local", "local", (NodeCapacity(8, 32, {"RTX4090": 1}),))
POOL = InfraOffer(
    "ssh", "lab", (NodeCapacity(64, 256, {"A100": 8}), NodeCapacity(64, 256, {"A100": 8}))
)


def task(text: str) -> Task:
    return Task.from_yaml_str(text)


def test_local_wins_when_it_fits(catalog_env: Path) -> None:
    plan = optimize_task(task("resources: {cpus: 4+}"), clouds=CLOUDS, offers=[LOCAL])
    c = plan.chosen
    assert (c.infra, c.region, c.instance_type, c.hourly_price) == ("local", None, None, 0.0)
    assert c.cpus == 4 and plan.total_cost == 0
    gpu = optimize_task(task("resources: {accelerators: rtx4090}"), clouds=[], offers=[LOCAL])
    assert gpu.chosen.infra == "local" and gpu.chosen.accelerators == {"rtx4090": 1}


def test_cloud_when_local_is_too_small(catalog_env: Path) -> None:
    plan = optimize_task(task("resources: {cpus: 16+}"), clouds=CLOUDS, offers=[LOCAL])
    assert plan.chosen.infra in CLOUDS
    assert any(c.infra != "local" for c in plan.tasks[0].runners_up)


def test_ssh_pool_placement_and_node_count(catalog_env: Path) -> None:
    two = task("num_nodes: 2\nresources: {accelerators: A100:8, infra: ssh/lab}")
    plan = optimize_task(two, clouds=CLOUDS, offers=[LOCAL, POOL])
    assert (plan.chosen.infra, plan.chosen.region, plan.chosen.num_nodes) == ("ssh", "lab", 2)
    three = task("num_nodes: 3\nresources: {accelerators: A100:8, infra: ssh/lab}")
    with pytest.raises(
        ResourcesUnavailable, match="2 of its 2 nodes fit one node of the task, 3 needed"
    ):
        optimize_task(three, clouds=CLOUDS, offers=[POOL])
    anywhere = task("num_nodes: 3\nresources: {accelerators: A100:8}")
    assert optimize_task(anywhere, clouds=CLOUDS, offers=[POOL]).chosen.infra in CLOUDS


def test_blocking_the_pool_fails_over_to_clouds(catalog_env: Path) -> None:
    t = task("resources: {accelerators: A100:8}")
    first = optimize_task(t, clouds=CLOUDS, offers=[POOL]).chosen
    assert first.infra == "ssh"
    second = optimize_task(t, clouds=CLOUDS, offers=[POOL], blocked=Blocklist().block_region(first))
    assert second.chosen.infra in CLOUDS


def test_unknown_accelerator_lists_close_names(catalog_env: Path) -> None:
    with pytest.raises(SpecError) as err:
        optimize_task(task("resources: {accelerators: A10O:8}"), clouds=CLOUDS)
    assert err.value.code == "unknown-accelerator"
    assert "A100" in err.value.details["close_names"]
    assert "A100" in err.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("resources: {accelerators: A100:3}", "A100 comes in counts 1,2,4,8,16 on gcp"),
        ("resources: {accelerators: A100:8, infra: gcp/us-west9}", "gcp has no region 'us-west9'"),
        (
            "resources: {accelerators: A100:8, infra: gcp/asia-east1}",
            "A100:8 on gcp is not sold in asia-east1 (it is in asia-northeast1, asia-northeast3,",
        ),
        ("resources: {accelerators: A100:8, max_hourly_cost: 1}", "above max_hourly_cost $1"),
        ("resources: {cpus: 1000+}", "no CPU-only instance type on azure has cpus 1000+"),
        ("resources: {accelerators: A10, use_spot: true, infra: lambda}", "on demand only"),
        ("resources: {accelerators: K80}", "gcp does not sell K80"),
        ("resources: {accelerators: T4, infra: aws}", "infra aws is not enabled"),
        ("resources: {instance_type: n9-huge, infra: gcp}", "gcp has no instance type n9-huge"),
    ],
)
def test_infeasible_says_which_constraint(catalog_env: Path, text: str, expected: str) -> None:
    with pytest.raises(ResourcesUnavailable) as err:
        optimize_task(task(text), clouds=CLOUDS)
    assert expected in err.value.message
    assert err.value.code == "resources-unavailable" and err.value.hint


def test_everything_blocked_is_explained(catalog_env: Path) -> None:
    blocked = Blocklist().block_infra("gcp").block_infra("azure").block_infra("lambda")
    with pytest.raises(ResourcesUnavailable, match="is blocked"):
        optimize_task(task("resources: {accelerators: A100:8}"), clouds=CLOUDS, blocked=blocked)


def test_render_plan_shows_choice_and_runners_up(catalog_env: Path) -> None:
    from rich.console import Console

    plan = optimize_task(task("resources: {accelerators: A100:8}"), clouds=CLOUDS)
    text = plan_text(plan)
    lines = text.splitlines()
    assert lines[0] == "Considered resources (1 node):"
    assert "✔" in lines[2] and plan.chosen.instance_type in lines[2]
    assert len(plan.tasks[0].runners_up) >= 2  # the best of each other cloud
    assert {c.infra for c in plan.tasks[0].runners_up} >= {"gcp", "azure"}
    console = Console(width=200, record=True)
    console.print(render_plan(plan))
    assert "Considered resources" in console.export_text()


def test_dag_plan_renders_per_task(catalog_env: Path) -> None:
    dag = Dag.from_yaml_str(
        "name: p\n---\nname: a\nresources: {cpus: 2+}\noutputs: {s3://b/x: 10}\n"
        "---\nname: b\nresources: {accelerators: T4}\n"
    )
    plan = optimize_dag(dag, clouds=CLOUDS, offers=[LOCAL])
    text = plan_text(plan)
    assert "Task a:" in text and "Task b:" in text and "solved by dp" in text


SMALL = InfraOffer("local", "local", (NodeCapacity(2, 7.63),))


@pytest.mark.parametrize(
    ("text", "offer", "expected"),
    [
        (
            "resources: {cpus: 4, infra: local}",
            SMALL,
            "local: this machine has 2 vCPUs and 7.6 GB, but the task asks for 4 vCPUs",
        ),
        (
            "resources: {cpus: 1, memory: 16+, infra: local}",
            SMALL,
            "this machine has 2 vCPUs and 7.6 GB, but the task asks for 1 vCPU and 16 GB",
        ),
        (
            "resources: {accelerators: A100:1, infra: local}",
            LOCAL,
            "this machine has 8 vCPUs, 32 GB and RTX4090:1, but the task asks for A100:1",
        ),
        (
            "num_nodes: 2\nresources: {cpus: 32, infra: ssh/mixed}",
            InfraOffer("ssh", "mixed", (NodeCapacity(64, 256), NodeCapacity(16, 64))),
            "1 of its 2 nodes fit one node of the task, 2 needed (its largest node has 64 vCPUs "
            "and 256 GB, but the task asks for 32 vCPUs per node)",
        ),
    ],
)
def test_infeasible_on_own_capacity_gives_the_numbers(
    catalog_env: Path, text: str, offer: InfraOffer, expected: str
) -> None:
    with pytest.raises(ResourcesUnavailable) as err:
        optimize_task(task(text), clouds=[], offers=[offer])
    assert expected in err.value.message, err.value.message
