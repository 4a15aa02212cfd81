"""The GCP provider against the GCE stand-in (tests/testworld/gce.py) without hosts behind it
(``wait_ssh=False``): what it asks GCE for, zone and region failover, quota and auth scopes,
stop/start keeping IPs, and nothing left after ``terminate`` or a failed launch.

No GCE emulator exists; the stand-in answers google-cloud-compute's REST calls with the real
API's shapes on 127.0.0.1, and any lookup of a googleapis.com name fails the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("google.cloud.compute_v1")

from styx.errors import AuthFailed, FailoverScope, NoCapacity, QuotaExceeded
from styx.providers.base import ProvisionRequest
from styx.providers.gcp import client, instances
from styx.providers.gcp.provider import GCPProvider
from styx.providers.gcp.settings import GCPSettings
from testworld.gce import GCEServer, block_google_endpoints


@pytest.fixture(scope="module")
def server() -> Iterator[GCEServer]:
    with GCEServer() as gce:
        yield gce


@pytest.fixture
def gce(server: GCEServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[GCEServer]:
    server.reset()
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", f"{server.url}/compute/v1/")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "styx-test")
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "styx"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    client.reset()
    with block_google_endpoints() as tried:
        yield server
    assert tried == []
    client.reset()
    server.clear_faults()
    # Nothing of Styx's is left after any test: no instance, disk or cluster firewall rule.
    assert server.instances() == {} and server.disks() == {}
    assert not [n for n in server.firewalls() if n.startswith("styx-")]


def provider() -> GCPProvider:
    return GCPProvider(settings=GCPSettings(use_internal_ips=True, ssh_user="root"), wait_ssh=False)


def request(name: str = "g1", **kw: object) -> ProvisionRequest:
    args: dict[str, object] = {"cluster_name": name, "num_nodes": 2, "instance_type": "n2-standard-4",
                               "region": "us-central1"}  # fmt: skip
    args.update(kw)
    return ProvisionRequest(**args)  # type: ignore[arg-type]


def live(gce: GCEServer) -> list[str]:
    return sorted(gce.instances())


def test_a_launch_stop_start_and_down(gce: GCEServer) -> None:
    p = provider()
    h = p.provision(request(ports=("8080",)))
    assert len(h.nodes) == 2 and all(n.ip.startswith("198.18.") for n in h.nodes)
    assert h.extra["zone"].startswith("us-central1-") and h.nodes[0].cpus == 4
    insts = [gce.instance(n.instance_id) for n in h.nodes]
    assert [i["labels"][instances.NODE_LABEL] for i in insts] == ["0", "1"]
    assert all(i["labels"][instances.ID_LABEL] == instances.cluster_id("g1") for i in insts)
    keys = [m["value"] for m in insts[0]["metadata"]["items"] if m["key"] == "ssh-keys"]
    assert keys and keys[0].startswith("root:ssh-ed25519 ")
    assert not insts[0]["networkInterfaces"][0].get("accessConfigs")  # internal IPs only
    assert p.is_up(h) and p.gone_nodes(h) == []
    ips = [n.ip for n in h.nodes]
    p.stop(h)
    assert set(p.query(h).values()) == {"TERMINATED"} and not p.is_up(h)
    again = p.start(h)
    assert [n.ip for n in again.nodes] == ips and p.is_up(again)
    assert p.provision(request()).nodes == again.nodes  # a relaunch reuses the cluster
    p.terminate(again)
    assert live(gce) == [] and gce.disks() == {}
    assert p.query(again) == {n.name: "missing" for n in again.nodes}


def test_a_stockout_in_one_zone_lands_in_the_next(gce: GCEServer) -> None:
    zones = provider()._zones("styx-test", "us-central1")
    gce.stockout(zones[0])
    h = provider().provision(request())
    assert h.extra["zone"] == zones[1]
    assert all(i["zone"].endswith(zones[1]) for i in gce.instances().values())  # zone a emptied
    provider().terminate(h)
    assert live(gce) == []


def test_stockouts_in_every_zone_block_the_region(gce: GCEServer) -> None:
    gce.stockout(provider()._zones("styx-test", "us-central1"))
    with pytest.raises(NoCapacity) as info:
        provider().provision(request())
    assert (
        info.value.scope is FailoverScope.REGION and info.value.details["region"] == "us-central1"
    )
    assert live(gce) == []
    assert not any(str(n).startswith(f"styx-{instances.cluster_id('g1')}") for n in _firewalls(gce))


def test_quota_blocks_the_region_and_auth_the_cloud(gce: GCEServer) -> None:
    gce.set_quota("us-central1", "N2_CPUS", 4)  # one node of two fits
    with pytest.raises(QuotaExceeded) as quota:
        provider().provision(request())
    assert quota.value.scope is FailoverScope.REGION
    assert live(gce) == []
    gce.clear_faults()
    gce.auth_failure("forbidden")
    with pytest.raises(AuthFailed) as auth:
        provider().provision(request())
    assert auth.value.scope is FailoverScope.CLOUD


def test_a_spot_node_preempted_is_gone(gce: GCEServer) -> None:
    p = provider()
    h = p.provision(request(num_nodes=1, use_spot=True))
    inst = gce.instance(h.nodes[0].instance_id)
    assert inst["scheduling"]["provisioningModel"] == "SPOT"
    gce.preempt(h.nodes[0].instance_id)
    assert p.gone_nodes(h) == [h.nodes[0].name]
    p.terminate(h)
    assert live(gce) == []


@pytest.mark.parametrize("action", ["stop", "down"])
def test_autostop_from_the_head_stops_or_deletes_workers_first_then_the_head(
    gce: GCEServer, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commands the agent runs on the head (tests/gcp/test_gcp_cluster.py runs them there,
    with a token from the metadata server); here in this process, with a token given."""
    from styx.providers.gcp import selfstop

    p = provider()
    h = p.provision(request(num_nodes=3, ports=("8080",)))
    stop, down = p.autostop_commands(h)
    argv = stop if action == "stop" else down
    assert argv[:3] == [h.python, "-m", "styx.providers.gcp.selfstop"] and argv[3] == action
    monkeypatch.setattr(selfstop, "_token", lambda metadata: "sa-test")
    mark = gce.mark()
    assert selfstop.main(argv[3:]) == 0
    want = 3 + (3 if action == "down" else 0)  # the instances, and on down the rules first

    def calls_made() -> list[dict]:  # the stand-in logs a call just after answering it
        return [q for q in gce.requests_since(mark) if q["method"] != "GET"]

    deadline = time.monotonic() + 10
    while len(calls_made()) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    calls = calls_made()
    assert len(calls) == want, calls
    assert all(q["authorization"] == "Bearer sa-test" for q in calls)
    names = [q["path"].split("/instances/")[1].removesuffix("/stop") for q in calls
             if "/instances/" in q["path"]]  # fmt: skip
    assert names[-1] == h.nodes[0].instance_id and sorted(names) == sorted(
        n.instance_id for n in h.nodes
    )
    if action == "stop":
        assert set(p.query(h).values()) == {"TERMINATED"}
        p.terminate(h)
    else:
        assert [q["path"].rsplit("/", 2)[1] for q in calls[:3]] == ["firewalls"] * 3
    assert live(gce) == [] and gce.disks() == {}
    assert not any(str(n).startswith(f"styx-{instances.cluster_id('g1')}") for n in _firewalls(gce))


def _firewalls(gce: GCEServer) -> list[str]:
    fw = client.client("FirewallsClient")
    return [r.name for r in fw.list(project="styx-test")]
