"""The catalog builder against a stand-in inventory, and the AWS inventory's error translation.

No AWS API is called: the builder gets a small in-memory :class:`Ec2Inventory`, and the AWS
inventory a stand-in boto3 session whose client answers with botocore's own ``ClientError``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from styx.catalog.aws_build import HEADER, InstanceTypeInfo, build_aws
from styx.errors import AuthFailed, RemoteError


class FakeInventory:
    """Two types in one region's two zones; the Pricing API refuses, spot prices answer."""

    def regions(self) -> list[str]:
        return ["us-east-1"]

    def instance_types(self, region: str) -> dict[str, InstanceTypeInfo]:
        return {
            "m5.large": InstanceTypeInfo("m5.large", 2, 8, "x86_64"),
            "p4d.24xlarge": InstanceTypeInfo(
                "p4d.24xlarge", 96, 1152, "x86_64", "A100", 8, "{'Gpus': ...}"
            ),
        }

    def offerings(self, region: str) -> list[tuple[str, str]]:
        return [("m5.large", "use1-az1"), ("m5.large", "use1-az2"), ("p4d.24xlarge", "use1-az1")]

    def spot_prices(self, region: str) -> dict[tuple[str, str], float]:
        return {("m5.large", "use1-az1"): 0.04}

    def on_demand_prices(self, region: str) -> dict[str, float]:
        raise AuthFailed("AWS refused the credentials while reading the on-demand prices.")


def test_build_writes_rows_and_warns_about_missing_prices(tmp_path: Path) -> None:
    out = tmp_path / "vms.csv"
    report = build_aws(FakeInventory(), out=out)
    assert (report.rows, report.instance_types, report.regions) == (3, 2, ["us-east-1"])
    assert report.priced_rows == 0 and report.spot_rows == 1
    assert len(report.warnings) == 1 and "Pricing API is not reachable" in report.warnings[0]
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == HEADER
    p4d = next(r for r in rows if r["InstanceType"] == "p4d.24xlarge")
    assert (p4d["AcceleratorName"], p4d["AcceleratorCount"], p4d["vCPUs"]) == ("A100", "8", "96")
    m5 = [r for r in rows if r["InstanceType"] == "m5.large"]
    assert [r["SpotPrice"] for r in m5] == ["0.04", ""] and m5[0]["MemoryGiB"] == "8"


def test_a_refused_region_query_raises_and_writes_nothing(tmp_path: Path) -> None:
    class Refused(FakeInventory):
        def instance_types(self, region: str) -> dict[str, InstanceTypeInfo]:
            raise AuthFailed("AWS refused the credentials.")

    out = tmp_path / "vms.csv"
    with pytest.raises(AuthFailed):
        build_aws(Refused(), ["us-east-1"], out=out)
    assert not out.exists()


def _session(code: str) -> Any:
    """A boto3 session stand-in whose every EC2 call fails with ``code``."""
    from botocore.exceptions import ClientError

    def fail(*_: Any, **__: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, "DescribeRegions")

    def client(service: str, region_name: str, config: Any = None) -> Any:
        events = SimpleNamespace(register_first=lambda *a, **k: None)
        return SimpleNamespace(meta=SimpleNamespace(events=events), describe_regions=fail)

    return SimpleNamespace(region_name="us-east-1", client=client)


@pytest.mark.parametrize(
    "code, error, retryable",
    [("UnauthorizedOperation", AuthFailed, None), ("RequestLimitExceeded", RemoteError, True)],
)
def test_inventory_translates_aws_errors_with_the_provider_mapping(
    code: str, error: type[Exception], retryable: bool | None
) -> None:
    """Only refused credentials are AuthFailed; throttling stays a retryable RemoteError."""
    pytest.importorskip("botocore")
    from styx.providers.aws.inventory import Inventory

    with pytest.raises(error) as info:
        Inventory(_session(code)).regions()
    details = getattr(info.value, "details", {})
    assert details.get("aws_code") == code and details.get("retryable") == retryable
    assert info.type is error
