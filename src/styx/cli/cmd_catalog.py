"""``styx show-gpus``, ``styx check`` and ``styx catalog build|fetch``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from styx.catalog.index import CloudCatalog


def _price(value: float) -> str:
    return "-" if math.isnan(value) else f"$ {value:.3f}"


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:g}"


def _listing_clouds(infra: str | None) -> tuple[list[CloudCatalog], str | None]:
    """Catalogs to list (the ``--infra`` cloud, else every local catalog when
    STYX_CATALOG_DIR is set, else the enabled clouds) and the region filter."""
    from styx.catalog import source
    from styx.catalog.loader import get_catalog
    from styx.errors import UsageError

    cloud, region = None, None
    if infra:
        cloud, _, rest = infra.strip().lower().partition("/")
        region = rest.split("/")[0] or None if rest else None
        if cloud not in source.CATALOG_CLOUDS:
            raise UsageError(
                f"'{cloud}' has no catalog; catalogs exist for {', '.join(source.CATALOG_CLOUDS)}.",
                "Use --infra with one of those clouds.",
            )
        return [get_catalog(cloud)], region
    if source.local_dir() is not None:
        names = [c for c in source.available_clouds() if c in source.CATALOG_CLOUDS]
    else:
        from styx.providers.checks import statuses
        from styx.providers.registry import infos

        on = {name for name, st in statuses().items() if st.enabled}
        names = [i.catalog for i in infos() if i.name in on and i.catalog in source.CATALOG_CLOUDS]
    if not names:
        raise UsageError(
            "No enabled cloud has a catalog to list.",
            "Enable a cloud (`styx check`), or name one with --infra gcp.",
            code="no-enabled-cloud",
        )
    return [get_catalog(n) for n in names], region


@click.command("show-gpus")
@click.argument("accelerator", required=False)
@click.option("--infra", help="Only this cloud, or cloud/region (e.g. gcp/us-central1).")
@click.option("--all", "show_all", is_flag=True, help="Show every accelerator with its offers.")
@click.option("--all-regions", is_flag=True, help="One row per region instead of the cheapest.")
def show_gpus(accelerator: str | None, infra: str | None, show_all: bool, all_regions: bool) -> int:
    """List accelerators, their counts per node, and prices per region.

    Without arguments, each accelerator and the counts it comes in; with ACCELERATOR (or
    ACCELERATOR:COUNT) or --all, its instance types with on-demand and spot prices (the
    cheapest region unless --all-regions).
    """
    from styx.catalog import gpus
    from styx.cli.tables import render

    if infra and infra.strip().lower().partition("/")[0] in ("k8s", "kubernetes"):
        return _kubernetes_gpus(infra, accelerator)
    catalogs, region = _listing_clouds(infra)
    if accelerator is None and not show_all:
        rows = gpus.summaries(catalogs, region)
        for tpu, title in ((False, "GPU"), (True, "TPU")):
            part = [
                (s.name, ", ".join(_num(c) for c in s.counts), ", ".join(s.clouds))
                for s in rows
                if s.is_tpu == tpu
            ]
            if part:
                render((title, "AVAILABLE_QUANTITIES", "INFRA"), part, max_width=80)
                click.echo("")
        click.echo("Run `styx show-gpus NAME` for instance types and prices, --all for all.")
        return 0
    names = [s.name for s in gpus.summaries(catalogs, region)] if show_all else []
    count = None
    if accelerator is not None:
        name, _, raw = accelerator.partition(":")
        count = _count(raw) if raw else None
        names = [_known(catalogs, name)]
    headers = ("GPU", "QTY", "INFRA", "INSTANCE_TYPE", "DEVICE_MEM", "vCPUs", "HOST_MEM",
               "HOURLY_PRICE", "HOURLY_SPOT_PRICE", "REGION")  # fmt: skip
    rows_out: list[tuple[str, ...]] = []
    for name in names:
        for o in gpus.offers_for(
            catalogs, name, count=count, region=region, all_regions=all_regions
        ):
            rows_out.append(
                (
                    o.accelerator,
                    _num(o.count),
                    o.cloud,
                    o.instance_type,
                    "-" if o.device_memory_gb is None else f"{o.device_memory_gb:g}GB",
                    _num(o.vcpus),
                    "-" if math.isnan(o.memory_gb) else f"{o.memory_gb:g}GB",
                    _price(o.price),
                    _price(o.spot_price),
                    o.region,
                )
            )
    if not rows_out:
        from styx.errors import ResourcesUnavailable

        raise ResourcesUnavailable(
            f"No listed cloud sells {accelerator or 'any accelerator'}"
            + (f" in {region}" if region else "")
            + ".",
            "Drop the count or region, or list the counts with `styx show-gpus`.",
        )
    render(headers, rows_out, max_width=60)
    return 0


def _kubernetes_gpus(infra: str, accelerator: str | None) -> int:
    """GPUs of the allowed Kubernetes contexts (or the one ``k8s/<context>`` names), from
    node labels and allocatable."""
    from styx.cli.tables import render
    from styx.providers.kubernetes.listing import gpu_tables

    context = infra.strip().partition("/")[2] or None
    name = accelerator.partition(":")[0] if accelerator else None
    by_type, by_node = gpu_tables(context, name)
    if not by_type:
        from styx.errors import ResourcesUnavailable

        raise ResourcesUnavailable(
            f"No node of the Kubernetes context(s) has {name or 'a GPU'} (by the labels "
            "skypilot.co/accelerator, cloud.google.com/gke-accelerator or nvidia.com/gpu.product).",
            "Label the GPU nodes, or list another context with --infra k8s/<context>.",
        )
    render(("CONTEXT", "GPU", "REQUESTABLE_QTY_PER_NODE", "UTILIZATION"), by_type, max_width=80)
    click.echo("")
    render(("CONTEXT", "NODE", "GPU", "UTILIZATION"), by_node, max_width=80)
    return 0


def _count(raw: str) -> float:
    from styx.errors import UsageError

    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"'{raw}' is not a count.", "Write NAME:COUNT, e.g. A100:8.") from None


def _known(catalogs: list[CloudCatalog], name: str) -> str:
    """The catalog spelling of ``name``, or SpecError with close names."""
    for catalog in catalogs:
        canonical = catalog.canonical_accelerator(name)
        if canonical is not None:
            return canonical
    from styx.catalog.loader import close_names
    from styx.errors import SpecError

    known = {n for c in catalogs for n in c.accelerator_names.values()}
    close = close_names(name, known)
    raise SpecError(
        f"No listed cloud sells an accelerator named '{name}'"
        + (f"; close names: {', '.join(close)}." if close else "."),
        f"Did you mean '{close[0]}'?" if close else "Run `styx show-gpus` to list them.",
        code="unknown-accelerator",
    )


@click.command("check")
@click.argument("infra", nargs=-1)
@click.option(
    "--probe", is_flag=True, help="Also call each infra's API to prove the credentials work."
)
def check(infra: tuple[str, ...], probe: bool) -> int:
    """Show which infra is enabled, and why the rest is not; remember it for launch."""
    from styx.cli.tables import render
    from styx.providers import registry
    from styx.providers.checks import run_checks

    wanted = {registry.resolve(n) for n in infra}  # UsageError names the known infra
    results = run_checks(probe=probe)
    launchable = set(registry.launchable())
    shown = [s for s in results if not infra or s.name in wanted]
    render(
        ("INFRA", "ENABLED", "LAUNCH", "REASON"),
        [
            (
                s.name,
                "yes" if s.enabled else "no",
                "yes" if s.name in launchable else "not yet",
                s.reason,
            )
            for s in shown
        ],
        max_width=100,
    )
    usable = [s.name for s in results if s.enabled and s.name in launchable]
    planned = [s.name for s in results if s.enabled and s.name not in launchable]
    click.echo(
        f"\nLaunches may use: {', '.join(usable)}. They use this until the next `styx check`."
    )
    if planned:
        click.echo(
            f"Enabled, but Styx cannot launch there yet: {', '.join(planned)} "
            "(plans say when they would be cheaper)."
        )
    if not infra:
        _check_stores()
    return 0


def _check_stores() -> None:
    """The bucket stores file mounts can use from here, and why the rest cannot (local
    checks: the store's SDK and credentials)."""
    from styx.cli.tables import render
    from styx.providers.stores import STORES, problem, store

    rows = []
    for name in STORES:
        why = problem(name)
        rows.append(
            (name, store(name).title, "yes" if why is None else "no", why or "credentials found")
        )
    click.echo("")
    render(("STORE", "SERVICE", "USABLE", "REASON"), rows, max_width=100)
    usable = [r[0] for r in rows if r[2] == "yes"]
    click.echo(f"\nBucket mounts may use: {', '.join(usable) or 'no store'}.")


@click.group("catalog")
def catalog() -> None:
    """Fetch or build the instance/price catalogs the optimizer reads."""


@catalog.command("build")
@click.argument("cloud", type=click.Choice(["aws"]))
@click.option("--regions", help="Comma-separated regions (default: every region EC2 lists).")
@click.option("--no-pricing", is_flag=True, help="Skip the Pricing API (prices stay unknown).")
@click.option("--no-spot", is_flag=True, help="Skip the spot price history.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of the cache.")
def build(cloud: str, regions: str | None, no_pricing: bool, no_spot: bool, out: str | None) -> int:
    """Build a catalog from the cloud's API (AWS: EC2 and the Pricing API)."""
    from pathlib import Path

    from styx.catalog.aws_build import build_aws
    from styx.providers.aws.inventory import Inventory

    names = [r.strip() for r in regions.split(",") if r.strip()] if regions else None
    report = build_aws(
        Inventory(),
        names,
        out=Path(out) if out else None,
        pricing=not no_pricing,
        spot=not no_spot,
    )
    for warning in report.warnings:
        click.echo(click.style("Warning: ", fg="yellow") + warning, err=True)
    click.echo(
        f"Wrote {report.rows} rows ({report.instance_types} instance types in "
        f"{len(report.regions)} regions; {report.priced_rows} with an on-demand price, "
        f"{report.spot_rows} with a spot price) to {report.path}."
    )
    return 0


@catalog.command("fetch")
@click.argument("clouds", nargs=-1, required=True)
def fetch(clouds: tuple[str, ...]) -> int:
    """Download the latest catalogs of CLOUDS into the cache now."""
    from styx.catalog import source

    for cloud in clouds:
        path = source.catalog_file(cloud, "vms.csv", refresh=True)
        click.echo(f"{cloud}: {path}")
    return 0
