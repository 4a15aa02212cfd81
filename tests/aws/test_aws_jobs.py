"""Managed jobs on AWS: boto3 against moto behind the fault proxy, real SSH test hosts at the
instances' private IPs (the materializer), real Ray, the real controller and ``ClusterBackend``.

Preemption here is the instance terminated behind Styx's back, as EC2 does to a spot instance:
the materializer powers its host off and removes its disk; EC2 reports the instance terminated.
The scenarios are shared with the SSH pool tests (tests/jobs/e2e.py). What is the same on
every infra (ten preemptions in a row, restarts on errors, DAG runs, ``kill -9`` of the
controller, all at once) is shown on SSH pools (tests/jobs/test_jobs_ssh.py) and, for ten
preemptions of spot instances, on GCP (tests/gcp/test_gcp_jobs.py); here, what is AWS's own:
a terminated instance seen as a preemption, recoveries moved between regions by
``EAGER_NEXT_REGION``, each attempt priced in its region.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.aws.harness import AwsEndpoint, AwsNetwork
from tests.aws.materializer import Materializer
from tests.aws.test_aws_cluster import PRICES, ZONES, write_catalog
from tests.jobs import e2e
from tests.ops.conftest import wheelhouse

from styx.state.clusters import list_clusters
from styx.state.db import Database

pytestmark = [pytest.mark.ray, pytest.mark.slow]
AWS = "infra: aws, cpus: 2"  # the synthetic catalog has m5.large only


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def db(
    aws_endpoint: AwsEndpoint,
    aws_vpc: AwsNetwork,
    materializer: Materializer,
    no_aws_leaks: set[str],
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Database]:
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse)")
    no_aws_leaks.add("styx-key-*")  # the user's own key pair stays, as in SkyPilot
    (home / "config.yaml").write_text(yaml.safe_dump({"aws": aws_vpc.config()}))
    env = {
        "STYX_CATALOG_DIR": str(write_catalog(tmp_path / "catalog")),
        "STYX_WHEELHOUSE": str(wheelhouse()),
    }
    with e2e.jobs_database(home, monkeypatch, env) as database:
        yield database  # and no_aws_leaks checks moto itself


def terminate(aws_endpoint: AwsEndpoint, cluster: str) -> str:
    """Terminate the cluster's instances, as a spot preemption does; returns their zone."""
    for region in ZONES:
        ec2 = aws_endpoint.client("ec2", region=region, direct=True)
        found = [
            i
            for r in ec2.describe_instances(
                Filters=[
                    {"Name": "tag:styx-cluster", "Values": [cluster]},
                    {"Name": "instance-state-name", "Values": ["pending", "running"]},
                ]
            )["Reservations"]
            for i in r["Instances"]
        ]
        if found:
            ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in found])
            return str(found[0]["InstanceId"])
    raise AssertionError(f"no running instance of {cluster}")


def test_preemptions_move_between_regions_and_each_attempt_is_priced_there(
    db: Database, home: Path, aws_endpoint: AwsEndpoint
) -> None:
    env = {**os.environ, **e2e.FAST_CONTROLLER}
    [train] = e2e.launch(env, home, "train", e2e.train_yaml(AWS, "EAGER_NEXT_REGION"))
    regions = e2e.preempt_ten_times(
        db, train, lambda db, cluster: terminate(aws_endpoint, cluster), lambda killed: None,
        300, times=4,
    )  # fmt: skip
    # us-east-1 is the cheaper region; EAGER_NEXT_REGION moves each recovery to the other one.
    assert regions == ["aws/us-east-1", "aws/us-west-2"] * 2 + ["aws/us-east-1"]
    assert all(a != b for a, b in itertools.pairwise(regions))
    e2e.wait_until(
        lambda: not [c for c in list_clusters(db) if c.name.startswith("styx-mj-")],
        120,
        "the last attempt's cluster to go",
    )
    # Each attempt is priced by the region the optimizer put it in: the catalog's price of
    # m5.large there.
    out = e2e.styx_cli("cost-report", "--json", "--all", env={**os.environ})
    clusters = [c for c in json.loads(out.stdout)["clusters"] if c["managed_job_id"] == train]
    assert len(clusters) == 5
    for c in clusters:
        region = c["infra"].split("/")[1]
        assert c["hourly_price"] == pytest.approx(PRICES[region] * c["num_nodes"]), c
