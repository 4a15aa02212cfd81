"""The catalog index against the raw CSV rows of the shared catalog."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from styx.catalog.index import read_vms
from styx.catalog.loader import get_catalog


def raw(root: Path, cloud: str) -> list[dict[str, str]]:
    with (root / cloud / "vms.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_row_is_indexed(catalog_env: Path) -> None:
    for cloud in ("azure", "lambda", "vast"):
        rows = raw(catalog_env, cloud)
        catalog = get_catalog(cloud)
        offers = sum(len(s.offers) for s in catalog.by_type.values())
        assert offers == len(rows)
        assert set(catalog.by_type) == {r["InstanceType"] for r in rows}


def test_gcp_accelerators_join_their_hosts_zone_by_zone(catalog_env: Path) -> None:
    rows = raw(catalog_env, "gcp")
    host = {(r["AvailabilityZone"]): r for r in rows if r["InstanceType"] == "a2-highgpu-8g"}
    acc = [
        r
        for r in rows
        if not r["InstanceType"] and r["AcceleratorName"] == "A100" and r["AcceleratorCount"] == "8"
    ]
    expected = {
        a["AvailabilityZone"]: float(host[a["AvailabilityZone"]]["Price"]) + float(a["Price"])
        for a in acc
        if a["AvailabilityZone"] in host
    }
    (shape,) = [s for s in get_catalog("gcp").shapes_for("a100") if s.accelerator_count == 8]
    assert shape.instance_type == "a2-highgpu-8g" and (shape.vcpus, shape.memory_gb) == (96, 680)
    got = dict(zip(shape.offers.zones, shape.offers.prices, strict=True))
    assert got == pytest.approx(expected)
    cheapest = shape.offers.order(False)[0]
    assert shape.offers.prices[cheapest] == pytest.approx(min(expected.values()))
    assert shape.device_memory_gb == 40


def test_gpu_hosts_and_tpus(catalog_env: Path) -> None:
    gcp = get_catalog("gcp")
    cpu_types = {s.instance_type for s in gcp.cpu_shapes}
    assert "n1-standard-8" in cpu_types
    assert not any(t.startswith(("a2-", "a3-", "g2-")) or t.endswith("-tpu") for t in cpu_types)
    (tpu,) = gcp.shapes_for("TPU-V5P-8")
    assert tpu.instance_type == "TPU-VM" and math.isnan(tpu.vcpus)
    t4 = gcp.shapes_for("T4")
    assert t4 and all(s.instance_type.startswith("n1-") for s in t4)
    assert {s.host_default for s in t4 if s.accelerator_count == 1} == {(4, 16)}


def test_spot_semantics(catalog_env: Path) -> None:
    lam = get_catalog("lambda")
    assert all(not s.offers.order(True) for s in lam.by_type.values())  # no spot on Lambda
    vast = get_catalog("vast")
    assert all(not s.offers.order(True) for s in vast.by_type.values())  # 0.00 means none
    azure = get_catalog("azure")
    assert any(s.offers.order(True) for s in azure.by_type.values())


def test_unknown_prices_sort_last(tmp_path: Path) -> None:
    path = tmp_path / "vms.csv"
    path.write_text(
        "InstanceType,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n"
        "m1,4,16,,0.1,r1,z1\nm1,4,16,0.5,,r2,z2\nm1,4,16,0.3,0.2,r3,z3\n"
    )
    shape = read_vms("fake", path).by_type["m1"]
    assert [shape.offers.regions[i] for i in shape.offers.order(False)] == ["r3", "r2", "r1"]
    assert [shape.offers.regions[i] for i in shape.offers.order(True)] == ["r1", "r3"]


def test_catalog_is_loaded_once_and_reloaded_when_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from styx.catalog.loader import clear_cache

    (tmp_path / "fake").mkdir()
    path = tmp_path / "fake" / "vms.csv"
    path.write_text("InstanceType,vCPUs,MemoryGiB,Price,Region\nm1,4,16,0.1,r1\n")
    monkeypatch.setenv("STYX_CATALOG_DIR", str(tmp_path))
    clear_cache()
    first = get_catalog("fake")
    assert get_catalog("fake") is first
    path.write_text("InstanceType,vCPUs,MemoryGiB,Price,Region\nm2,8,32,0.2,r1\n")
    import os

    os.utime(path, (1, 1))
    assert set(get_catalog("fake").by_type) == {"m2"}
    clear_cache()


def test_importing_the_packages_reads_no_catalog() -> None:
    code = (
        "import sys, styx.catalog, styx.optimizer;"
        "print(sorted(m for m in sys.modules if m.startswith('styx.') or m in ('csv', 'numpy')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert (
        "styx.catalog.index" not in out and "numpy" not in out and "styx.optimizer.core" not in out
    )
