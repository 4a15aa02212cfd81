"""``styx catalog build aws`` against moto's in-process EC2 (real instance-type data, no prices)."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("boto3")
moto = pytest.importorskip("moto")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Local-only credentials, moto's mock, a fresh STYX_HOME."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "STYX_HOME": str(tmp_path / "home"),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "STYX_CATALOG_DIR"):
        monkeypatch.delenv(key, raising=False)
    from styx.catalog.loader import clear_cache

    clear_cache()
    with moto.mock_aws():
        yield tmp_path
    clear_cache()


@pytest.mark.slow
def test_build_from_ec2_and_optimize(aws: Path) -> None:
    from styx.catalog import source
    from styx.catalog.aws_build import HEADER, build_aws
    from styx.optimizer import optimize_task, plan_text
    from styx.providers.aws.inventory import Inventory
    from styx.spec.task import Task

    report = build_aws(Inventory(), ["us-east-1"])
    assert report.path == source.cache_dir() / "aws" / "vms.csv" and source.is_built("aws")
    assert report.rows > 1000 and report.instance_types > 500
    assert report.priced_rows == 0
    assert any(
        "Pricing API is not reachable" in w and "unknown (NaN)" in w for w in report.warnings
    )
    with report.path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == HEADER
        rows = list(reader)
    p4d = [r for r in rows if r["InstanceType"] == "p4d.24xlarge"]
    assert p4d and {r["AcceleratorName"] for r in p4d} == {"A100"}
    assert {r["AcceleratorCount"] for r in p4d} == {"8"} and p4d[0]["vCPUs"] == "96"
    assert all(r["AvailabilityZone"].startswith("use1-az") for r in rows)  # zone ids, as v8
    assert {r["Price"] for r in rows} == {""}
    graviton = next(r for r in rows if r["InstanceType"] == "m6g.large")
    assert graviton["Arch"] == "arm64" and graviton["MemoryGiB"] == "8"

    plan = optimize_task(Task.from_yaml_str("resources: {accelerators: A100:8}"), clouds=["aws"])
    assert plan.chosen.instance_type == "p4d.24xlarge" and math.isnan(plan.chosen.hourly_price)
    assert plan.notes and "unknown" in plan.notes[0]
    assert "?" in plan_text(plan)


def test_cli_build_writes_where_asked(aws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from styx.cli.main import main

    out = aws / "aws.csv"
    code = main(
        ["catalog", "build", "aws", "--regions", "us-east-1", "--no-spot", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0 and out.is_file()
    assert "on-demand prices are unknown (NaN)" in captured.err
    assert "0 with an on-demand price" in captured.out


def test_accelerator_names() -> None:
    from styx.providers.aws.inventory import accelerator_of

    a100 = {"GpuInfo": {"Gpus": [{"Name": "A100", "Count": 8, "MemoryInfo": {"SizeInMiB": 81920}}]}}
    assert accelerator_of(a100)[:2] == ("A100-80GB", 8)  # type: ignore[index]
    t4 = {"GpuInfo": {"Gpus": [{"Name": "T4", "Count": 1, "MemoryInfo": {"SizeInMiB": 16384}}]}}
    assert accelerator_of(t4)[:2] == ("T4", 1)  # type: ignore[index]
    inf = {"InferenceAcceleratorInfo": {"Accelerators": [{"Name": "Inferentia", "Count": 4}]}}
    assert accelerator_of(inf)[:2] == ("Inferentia", 4)  # type: ignore[index]
    assert accelerator_of({"InstanceType": "m5.large"}) is None
