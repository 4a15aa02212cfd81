"""Honest plans on the real catalogs: a plan chooses only infra that is launchable, enabled and
has every capability the task needs, and names each cheaper place it left out, in one line.

The infra here are the real declarations of ``styx.providers`` (their real capabilities), made
launchable and enabled as a future provider would make them, so that the capability checks are
what decides; the last tests use them as they are today.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from styx.errors import ResourcesUnavailable
from styx.infra import Capabilities, Capability, InfraChoice
from styx.optimizer import optimize_task
from styx.providers import registry
from styx.spec.task import Task

CATALOG_CLOUDS = ("gcp", "azure", "lambda", "vast")


def choice(name: str, *, launchable: bool = True, enabled: bool = True) -> InfraChoice:
    info = registry.info(name)
    return InfraChoice(
        info.name, info.title, info.capabilities, info.catalog, launchable, enabled, "test"
    )


def every(**kw: bool) -> list[InfraChoice]:
    return [choice(n, **kw) for n in CATALOG_CLOUDS]


def task(text: str) -> Task:
    return Task.from_yaml_str(text)


def test_the_cheapest_h100_box_is_on_vast_when_nothing_rules_it_out(catalog_env: Path) -> None:
    plan = optimize_task(task("resources: {accelerators: H100:8}"), choices=every())
    assert plan.chosen.infra == "vast"  # the baseline the cases below depart from
    assert plan.notes == ()


@pytest.mark.parametrize(
    ("yaml", "why"),
    [
        (
            "num_nodes: 2\nresources: {accelerators: H100:8}",
            "has no multi-node clusters (num_nodes: 2)",
        ),
        ("resources: {accelerators: H100:8, disk_tier: high}", "cannot provision disk_tier: high"),
        (
            "resources: {accelerators: H100:8, network_tier: best}",
            "cannot provision network_tier: best",
        ),
        ("resources: {accelerators: H100:8, ports: 8080}", "has no open ports (ports)"),
        (
            "resources: {accelerators: H100:8}\nfile_mounts: {/data: s3://bucket/x}",
            "has no bucket mounts (file_mounts /data)",
        ),
    ],
)
def test_vast_is_left_out_for_what_it_cannot_do(catalog_env: Path, yaml: str, why: str) -> None:
    plan = optimize_task(task(yaml), choices=every())
    assert plan.chosen.infra != "vast"
    vast = [n for n in plan.notes if n.startswith("vast:")]
    assert len(vast) == 1 and why in vast[0], plan.notes
    assert "$" in vast[0] and vast[0].count("\n") == 0


def test_network_tier_rules_out_lambda_too(catalog_env: Path) -> None:
    tiered = task("resources: {accelerators: H100:8, network_tier: best}")
    plan = optimize_task(tiered, choices=every())
    assert plan.chosen.infra == "gcp"  # the only one of the four with a network tier
    left = {n.split(":")[0] for n in plan.notes}
    assert {"lambda", "vast"} <= left


def without(name: str, feature: Capability) -> InfraChoice:
    base = choice(name)
    caps = base.capabilities
    return dataclasses.replace(
        base,
        capabilities=Capabilities(caps.features - {feature}, caps.disk_tiers, caps.network_tiers),
    )


def test_spot_rules_out_infra_without_spot(catalog_env: Path) -> None:
    spot = task("resources: {accelerators: A100:8, use_spot: true}")
    assert optimize_task(spot, choices=[choice("gcp"), choice("azure")]).chosen.infra == "azure"
    plan = optimize_task(spot, choices=[choice("gcp"), without("azure", Capability.SPOT)])
    assert plan.chosen.infra == "gcp" and plan.chosen.use_spot
    assert (
        [n for n in plan.notes if n.startswith("azure:")]
        == [n for n in plan.notes if "has no spot instances (use_spot: true)" in n]
        != []
    )


def test_a_capability_a_fake_infra_declares_is_honoured(catalog_env: Path) -> None:
    """The same check, on declarations written here: take multi-node away from GCP."""
    gcp, crippled = choice("gcp"), without("gcp", Capability.MULTI_NODE)
    two = task("num_nodes: 2\nresources: {accelerators: A100:8}")
    assert optimize_task(two, choices=[gcp, choice("azure")]).chosen.infra == "gcp"
    plan = optimize_task(two, choices=[crippled, choice("azure")])
    assert plan.chosen.infra == "azure"
    assert any(n.startswith("gcp:") and "multi-node" in n for n in plan.notes)


def test_infra_styx_cannot_launch_on_is_never_chosen(catalog_env: Path) -> None:
    """As today: Azure, Lambda and Vast have no provider; with GCP not enabled, an A100:8
    task has nowhere to go, and the error says where it would have gone and why not."""
    today = [
        choice(n, launchable=registry.info(n).launchable, enabled=n != "gcp")
        for n in CATALOG_CLOUDS
    ]
    with pytest.raises(ResourcesUnavailable) as err:
        optimize_task(task("resources: {accelerators: A100:8}"), choices=today)
    message = err.value.message
    assert "Styx cannot launch on Lambda yet" in message
    assert "Styx cannot launch on Azure yet" in message
    assert "gcp is not enabled" in message and "cannot launch on GCP" not in message
    assert err.value.details["left_out"]
    # Enabled, GCP is launchable today: the plan goes there and names the cheaper places
    # that were left out because Styx cannot launch on them.
    today = [choice(n, launchable=registry.info(n).launchable) for n in CATALOG_CLOUDS]
    plan = optimize_task(task("resources: {accelerators: A100:8}"), choices=today)
    assert plan.chosen.infra == "gcp"
    assert all("cannot launch on" in n for n in plan.notes), plan.notes


def test_not_enabled_cheaper_places_are_named(catalog_env: Path) -> None:
    plan = optimize_task(
        task("resources: {accelerators: H100:8}"),
        choices=[choice("azure"), choice("vast", enabled=False)],
    )
    assert plan.chosen.infra == "azure"
    assert any(n.startswith("vast:") and "not enabled" in n for n in plan.notes), plan.notes


def test_a_pinned_infra_gets_no_notes_about_others(catalog_env: Path) -> None:
    plan = optimize_task(
        task("resources: {accelerators: H100:8, infra: azure}"),
        choices=[choice("azure"), choice("vast", enabled=False), choice("lambda")],
    )
    assert plan.chosen.infra == "azure" and plan.notes == ()


def test_a_free_choice_loads_no_other_catalog(catalog_env: Path) -> None:
    """This machine costs nothing: nothing is cheaper, so no catalog is read to say so."""
    from styx.infra import InfraOffer, NodeCapacity

    local = dataclasses.replace(
        choice("local"), offers=(InfraOffer("local", "local", (NodeCapacity(8, 32),)),)
    )
    from styx.catalog import loader

    loader.clear_cache()
    plan = optimize_task(task("resources: {cpus: 2}"), choices=[local, *every(enabled=False)])
    assert plan.chosen.infra == "local" and plan.notes == ()
    assert loader._cache == {}


def test_a_catalog_that_cannot_be_had_is_left_out_with_a_note(
    catalog_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    partial = tmp_path / "catalogs"
    (partial / "azure").mkdir(parents=True)
    (partial / "azure" / "vms.csv").write_text((catalog_env / "azure" / "vms.csv").read_text())
    monkeypatch.setenv("STYX_CATALOG_DIR", str(partial))  # no gcp catalog
    a100 = task("resources: {accelerators: A100:8}")
    plan = optimize_task(a100, choices=[choice("gcp"), choice("azure")])
    assert plan.chosen.infra == "azure"
    gcp = [n for n in plan.notes if n.startswith("gcp")]
    assert len(gcp) == 1 and "catalog could not be had" in gcp[0]


@pytest.mark.parametrize("future", [False, True], ids=["today", "every-provider-built"])
def test_no_example_ever_plans_onto_infra_that_cannot_run_it(
    catalog_env: Path, future: bool
) -> None:
    """Every example task, with every known infra enabled and its real declaration (and this
    machine as an 8-CPU local node): a plan either chooses launchable infra with every
    capability the task needs, or says no. ``every-provider-built`` makes the catalog-only
    infra launchable too, so that only their declared capabilities rule them out."""
    from styx.errors import StyxError
    from styx.infra import InfraOffer, NodeCapacity, needs
    from styx.spec.dag_yaml import load_dag

    root = Path(__file__).resolve().parents[2] / "examples"
    everything = [choice(i.name, launchable=future or i.launchable) for i in registry.infos()]
    machine = (InfraOffer("local", "local", (NodeCapacity(8, 32),)),)
    everything = [
        dataclasses.replace(c, offers=machine) if c.name == "local" else c for c in everything
    ]
    chosen: set[str] = set()
    for path in sorted(root.glob("*.yaml")):
        for t in load_dag(path.read_text(), str(path)).tasks:
            try:
                plan = optimize_task(t, choices=everything)
            except StyxError:
                continue
            c = plan.chosen
            chosen.add(c.infra)
            assert future or registry.info(c.infra).launchable, (path.name, c.describe())
            missing = registry.info(c.infra).capabilities.first_missing(needs(t, c.spec))
            assert missing is None, (path.name, c.describe(), missing)
    assert chosen == ({"local", "gcp", "azure", "vast"} if future else {"local", "gcp"}), chosen


def test_a_name_no_catalog_has_is_skipped_and_the_rest_planned(catalog_env: Path) -> None:
    """SkyPilot plans the alternatives it can place: so does Styx, naming what it skipped."""
    plan = optimize_task(task("resources: {accelerators: {H100:8, NOPE9000:8}}"), choices=every())
    assert plan.chosen.accelerator == "H100"
    assert any(n.startswith("Skipped NOPE9000:8: 'NOPE9000' is not") for n in plan.notes)
    from styx.errors import SpecError

    with pytest.raises(SpecError) as err:
        optimize_task(task("resources: {accelerators: {NOPE9000:8, NOPE9001:8}}"), choices=every())
    assert err.value.code == "unknown-accelerator"


def test_a_tpu_plans_honestly_saying_tpus_are_not_supported_yet(catalog_env: Path) -> None:
    """GCP launches VMs today but not TPU VMs: a TPU task (examples/tpu.yaml) is priced from the
    real catalog and refused, saying so; with TPU VMs declared (a future provider), it plans."""
    from styx.spec.dag_yaml import load_dag

    today = [choice(n, launchable=registry.info(n).launchable) for n in CATALOG_CLOUDS]
    path = Path(__file__).resolve().parents[2] / "examples" / "tpu.yaml"
    [tpu] = load_dag(path.read_text(), str(path)).tasks
    with pytest.raises(ResourcesUnavailable) as err:
        optimize_task(tpu, choices=today)
    assert "gcp does not support TPU VMs yet (accelerators: tpu-v4-8)" in err.value.message
    gcp = registry.info("gcp")
    caps = dataclasses.replace(
        gcp.capabilities, features=gcp.capabilities.features | {Capability.TPU_VMS}
    )
    future = [InfraChoice("gcp", "GCP", caps, "gcp", True, True, "test")]
    plan = optimize_task(tpu, choices=future)
    assert plan.chosen.infra == "gcp" and plan.chosen.accelerator == "tpu-v4-8"
