"""`styx launch` on GCP end to end: google-cloud-compute against the GCE stand-in
(tests/testworld/gce.py, on 127.0.0.1: no GCE emulator exists), real SSH hosts at the
instances' internal IPs (tests/testworld/gce_hosts.py), real Ray, GCP's real catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("google.cloud.compute_v1")

from tests import leaks
from tests.ops.conftest import Styx, wheelhouse

from testworld.gce import GCEServer, block_google_endpoints
from testworld.gce_hosts import GceHosts, gce_world
from testworld.testbed import usable

pytestmark = [pytest.mark.ray, pytest.mark.slow]
CATALOG = Path(__file__).resolve().parents[3] / "shared" / "catalog"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[GCEServer, GceHosts]]:
    why = usable()
    if why:
        pytest.skip(why)
    if not (CATALOG / "gcp" / "vms.csv").exists():
        pytest.skip(f"no GCP catalog at {CATALOG}")
    with gce_world(tmp_path / "gce") as (gce, hosts), block_google_endpoints() as tried:
        yield gce, hosts
        assert gce.instances() == {} and gce.disks() == {}
        assert (
            not [f for f in gce.firewall_names() if f.startswith("styx-")]
            if hasattr(gce, "firewall_names")
            else True
        )
    assert tried == []


@pytest.fixture
def styx(world: tuple[GCEServer, GceHosts], tmp_path: Path) -> Iterator[Styx]:
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse)")
    gce, _ = world
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(
        yaml.safe_dump({"gcp": {"use_internal_ips": True, "ssh_user": "root"}})
    )
    env = {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": f"{gce.url}/compute/v1/",
        "GOOGLE_CLOUD_PROJECT": "styx-test",
        "STYX_CATALOG_DIR": str(CATALOG),
        "STYX_WHEELHOUSE": str(wheelhouse()),
        "STYX_GCP_PROVIDER": "1",  # launchable behind this switch until issue 17 is done
    }
    before = leaks.snapshot()
    runner = Styx(home, extra_env=env)
    yield runner
    runner("down", "--all", "-y", timeout=300)
    leaks.assert_none_since(before, (str(home),))


def test_four_nodes_launch_exec_stop_start_and_down(
    styx: Styx, world: tuple[GCEServer, GceHosts], tmp_path: Path
) -> None:
    gce, hosts = world
    task = tmp_path / "task.yaml"
    task.write_text(
        "num_nodes: 4\nresources:\n  infra: gcp/us-central1\n  cpus: 2+\n"
        'run: echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES ips=$(echo $SKYPILOT_NODE_IPS)"\n'
    )
    r = styx("launch", str(task), "-c", "g4", "-y", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    ips = sorted(str(i["networkInterfaces"][0]["networkIP"]) for i in gce.instances().values())
    assert len(ips) == 4
    for rank in range(4):
        assert f"rank={rank} of 4" in r.stdout, r.stdout
    rows = json.loads(styx("status", "--json", check=True).stdout)
    assert [row["status"] for row in rows if row["name"] == "g4"] == ["UP"]
    assert styx("stop", "g4", "-y", timeout=300).returncode == 0
    assert styx("start", "g4", "-y", timeout=600).returncode == 0
    again = sorted(str(i["networkInterfaces"][0]["networkIP"]) for i in gce.instances().values())
    assert again == ips  # the same internal IPs after a stop and start
    r = styx("exec", "g4", "--num-nodes", "4", "echo again-$SKYPILOT_NODE_RANK", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(f"again-{k}" in r.stdout for k in range(4))
    assert styx("down", "g4", "-y", timeout=300).returncode == 0
    hosts.idle()
    assert hosts.hosts() == {}
