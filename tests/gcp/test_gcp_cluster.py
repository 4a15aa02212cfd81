"""`styx launch` on GCP end to end: google-cloud-compute against the GCE stand-in
(tests/testworld/gce.py, on 127.0.0.1: no GCE emulator exists), real SSH hosts at the
instances' internal IPs (tests/testworld/gce_hosts.py), real Ray, GCP's real catalog."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("google.cloud.compute_v1")

from tests.gcp.conftest import CATALOG, GceHosts, GCEServer, gcp_env
from tests.ops.conftest import Styx, cluster_row, kill_9_mid_launch_then_down, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ONE = "resources: {infra: gcp/us-central1, cpus: 2}\n"
#: us-central1 first (the catalog's price there and in us-east1 ties; the region named first
#: wins), us-east1 when us-central1 is out.
TWO_REGIONS = (
    "resources:\n  cpus: 2\n  any_of:\n    - infra: gcp/us-central1\n    - infra: gcp/us-east1\n"
)


def task(tmp_path: Path, resources: str, run: str = "echo up-$SKYPILOT_NODE_RANK") -> str:
    path = tmp_path / f"task-{len(list(tmp_path.glob('task-*')))}.yaml"
    path.write_text(f"{resources}run: {run}\n")
    return str(path)


def zones_of(gce: GCEServer, cluster: str) -> set[str]:
    return {
        key.split("/")[0]
        for key, inst in gce.instances().items()
        if inst.get("labels", {}).get("styx-cluster") == cluster
    }


def inserts(gce: GCEServer) -> list[str]:
    """The zone of each instances.insert call, in order."""
    return [
        e["path"].split("/zones/")[1].split("/")[0]
        for e in gce.requests("POST", r"/zones/[^/]+/instances$")
    ]


def catalog_price(instance_type: str, zone: str) -> float:
    with open(CATALOG / "gcp" / "vms.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["InstanceType"] == instance_type and row["AvailabilityZone"] == zone:
                return float(row["Price"])
    raise AssertionError(f"{instance_type} in {zone} is not in the catalog")


def test_four_nodes_launch_exec_stop_start_and_down(
    styx: Styx, gce: GCEServer, world: tuple[GCEServer, GceHosts], tmp_path: Path
) -> None:
    _, hosts = world
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
    rules = [n for n in gce.firewalls() if n.startswith("styx-")]
    assert len(rules) == 2, rules  # internal and SSH: the task has no ports
    assert styx("down", "g4", "-y", timeout=300).returncode == 0
    hosts.idle()
    assert hosts.hosts() == {}
    assert not [n for n in gce.firewalls() if n.startswith("styx-")]


def test_a_stockout_in_zone_a_lands_in_zone_b(styx: Styx, gce: GCEServer, tmp_path: Path) -> None:
    gce.stockout("us-central1-a")
    r = styx("launch", task(tmp_path, ONE), "-c", "fz", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "up-0" in r.stdout
    assert inserts(gce) == ["us-central1-a", "us-central1-b"]
    assert zones_of(gce, "fz") == {"us-central1-b"}
    assert styx("down", "fz", "-y", timeout=300).returncode == 0


def test_stockouts_in_every_zone_land_in_the_next_region(
    styx: Styx, gce: GCEServer, tmp_path: Path
) -> None:
    central = ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]
    gce.stockout(central)
    r = styx("launch", task(tmp_path, TWO_REGIONS), "-c", "fr", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    tried = inserts(gce)
    assert sorted(tried[:-1]) == central and tried[-1].startswith("us-east1-"), tried
    assert zones_of(gce, "fr") == {tried[-1]}
    # The cost report prices the cluster where it landed at GCP's real catalog price there
    # (the failed attempt in us-central1 is a row of its own, TERMINATED).
    report = json.loads(styx("cost-report", "--json", check=True).stdout)
    [row] = [c for c in report["clusters"] if c["name"] == "fr" and c["status"] == "UP"]
    assert row["infra"] == "gcp/us-east1", row
    mt = row["resources"]["instance_type"]
    assert row["hourly_price"] == pytest.approx(catalog_price(mt, tried[-1])), row
    assert styx("down", "fr", "-y", timeout=300).returncode == 0


def test_a_quota_error_blocks_the_region(styx: Styx, gce: GCEServer, tmp_path: Path) -> None:
    gce.set_quota("us-central1", "CPUS", 0)
    r = styx("launch", task(tmp_path, TWO_REGIONS), "-c", "fq", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    tried = inserts(gce)
    # One failed insert in us-central1, not one per zone: the quota blocks the region.
    assert len(tried) == 2 and tried[0].startswith("us-central1-"), tried
    assert tried[1].startswith("us-east1-"), tried
    assert styx("down", "fq", "-y", timeout=300).returncode == 0


def test_kill_9_mid_provisioning_then_status_and_down_leave_nothing(
    styx: Styx, gce: GCEServer, tmp_path: Path
) -> None:
    gce.slow(3.0, op_types={"insert"})  # instances exist, their inserts not yet DONE
    kill_9_mid_launch_then_down(
        styx, "k9", [task(tmp_path, TWO_REGIONS), "--num-nodes", "2"],
        lambda: bool(zones_of(gce, "k9")),
    )  # fmt: skip
    assert zones_of(gce, "k9") == set()  # and the gce fixture checks disks, rules and hosts


def test_autostop_stops_then_autodown_deletes_from_the_head_through_its_service_account(
    styx: Styx, gce: GCEServer, world: tuple[GCEServer, GceHosts], tmp_path: Path
) -> None:
    _, hosts = world
    # The head reaches the API and the metadata server as an instance reaches Google's: the
    # stand-in serves on the subnet's gateway too, and the client is pointed there as well.
    url = gce.listen_also(hosts.gateway("us-central1"))
    env = {
        **gcp_env(gce),
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": f"{url}/compute/v1/",
        "GCE_METADATA_HOST": url.removeprefix("http://"),
    }
    s = Styx(styx.home, extra_env=env)
    yaml = task(tmp_path, "num_nodes: 2\n" + ONE)
    r = s("launch", yaml, "-c", "ga", "-y", "-i", "0", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr

    def states() -> set[str]:
        return {
            str(i["status"])
            for i in gce.instances().values()
            if i.get("labels", {}).get("styx-cluster") == "ga"
        }

    wait_for(lambda: states() == {"TERMINATED"}, 120, "autostop to stop both instances")
    # (the stand-in logs a call just after answering it)
    wait_for(lambda: len(gce.requests("POST", r"/instances/[^/]+/stop$")) == 2, 10, "the log")
    stops = gce.requests("POST", r"/instances/[^/]+/stop$")
    head = next(i for i in gce.instances().values() if i["labels"].get("styx-node") == "0")
    head_ip = head["networkInterfaces"][0]["networkIP"]
    # From the head, with its service account's token; the head itself last.
    assert len(stops) == 2 and stops[-1]["path"].endswith(f"/{head['name']}/stop"), stops
    assert {(q["client"], q["authorization"]) for q in stops} == {
        (head_ip, f"Bearer sa-{head['name']}")
    }
    assert cluster_row(s, "ga") is not None and s("status", "-r").returncode == 0
    assert cluster_row(s, "ga")["status"] == "STOPPED"
    # Launched again, it starts; with --down, autostop then deletes it all from the head.
    r = s("launch", yaml, "-c", "ga", "-y", "-i", "0", "--down", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: states() == set(), 120, "autodown to delete both instances")
    wait_for(lambda: not [n for n in gce.firewalls() if n.startswith("styx-")], 30, "the rules")
    deletes = gce.requests("DELETE", r"/(instances|firewalls)/[^/]+$")
    assert deletes and all(q["authorization"].startswith("Bearer sa-") for q in deletes), deletes
    assert s("status", "-r").returncode == 0
    assert cluster_row(s, "ga") is None  # and the gce fixture checks disks, rules and hosts
