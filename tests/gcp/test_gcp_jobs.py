"""Managed jobs on GCP spot instances: google-cloud-compute against the GCE stand-in
(tests/testworld/gce.py on 127.0.0.1: no GCE emulator exists), real SSH hosts at the
instances' internal IPs, real Ray, the real jobs daemon and controller.

A preemption here is GCE's: the stand-in preempts the SPOT instance (a DONE
``compute.instances.preempted`` operation; the instance is deleted, as its
``instanceTerminationAction: DELETE`` says) and its host powers off. The controller sees the
node gone, recovers the job on a new instance, and does so ten times in a row.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("google.cloud.compute_v1")

from tests.gcp.conftest import GCEServer, gcp_env, write_config
from tests.jobs import e2e

from styx.jobs.controller import cluster_name
from styx.state.clusters import list_clusters
from styx.state.db import Database

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SPOT = "infra: gcp/us-central1, cpus: 2, memory: 8, use_spot: true"


@pytest.fixture
def db(gce: GCEServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    home = tmp_path / "home"
    home.mkdir()
    write_config(home)
    with e2e.jobs_database(home, monkeypatch, gcp_env(gce)) as database:
        yield database  # and the gce fixture checks the stand-in and its hosts


def preempt(gce: GCEServer, cluster: str) -> str:
    """Preempt the cluster's running instance, as GCE does to a SPOT VM; its name."""
    for key, inst in gce.instances().items():
        labels = inst.get("labels", {})
        if labels.get("styx-cluster") == cluster and inst["status"] == "RUNNING":
            zone, name = key.split("/")
            assert inst["scheduling"]["provisioningModel"] == "SPOT", inst["scheduling"]
            gce.preempt(name, zone)
            return name
    raise AssertionError(f"no running instance of {cluster}")


def test_a_spot_job_preempted_ten_times_in_a_row_succeeds(
    db: Database, gce: GCEServer, tmp_path: Path
) -> None:
    env = {**os.environ, **e2e.FAST_CONTROLLER}
    home = Path(os.environ["STYX_HOME"])
    [job_id] = e2e.launch(env, home, "train", e2e.train_yaml(SPOT, None))
    regions = e2e.preempt_ten_times(
        db, job_id, lambda db, cluster: preempt(gce, cluster), lambda killed: None, 300
    )
    assert set(regions) == {"gcp/us-central1"}
    preempted = gce.operations("compute.instances.preempted")
    assert len(preempted) == 10
    # Every attempt ran on a new SPOT instance; each went when its attempt ended.
    inserts = gce.requests("POST", r"/zones/[^/]+/instances$")
    assert len(inserts) == 11
    e2e.wait_until(
        lambda: (
            not gce.instances() and cluster_name(job_id) not in [c.name for c in list_clusters(db)]
        ),
        120,
        "the last attempt's instance and cluster record to go",
    )
