"""The GCP provider with real SSH hosts behind the GCE stand-in's instances
(tests/testworld/gce_hosts.py): a 2-node launch reaches every node over SSH at its internal IP,
nodes reach each other, stop/start keeps the IPs and SSH comes back, down leaves no instance,
disk, firewall rule or host. The stand-in answers google-cloud-compute on 127.0.0.1 (no GCE
emulator exists); the hosts are sshd in network namespaces at 198.18.x addresses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("google.cloud.compute_v1")

from styx.providers.base import ClusterHandle, ProvisionRequest
from styx.providers.gcp import client
from styx.providers.gcp.provider import GCPProvider
from styx.providers.gcp.settings import GCPSettings
from testworld.gce import GCEServer, block_google_endpoints
from testworld.gce_hosts import GceHosts, gce_world
from testworld.testbed import usable

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[GCEServer, GceHosts]]:
    why = usable()
    if why:
        pytest.skip(why)
    with gce_world(tmp_path / "gce") as (gce, hosts), block_google_endpoints() as tried:
        monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", f"{gce.url}/compute/v1/")
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "styx-test")
        monkeypatch.setenv("STYX_HOME", str(tmp_path / "styx"))
        client.reset()
        yield gce, hosts
        assert gce.instances() == {} and gce.disks() == {}
        hosts.idle()
        assert hosts.hosts() == {}  # every host behind a deleted instance is gone
    assert tried == []
    client.reset()


def test_two_nodes_over_ssh_stop_start_and_down(world: tuple[GCEServer, GceHosts]) -> None:
    p = GCPProvider(settings=GCPSettings(use_internal_ips=True, ssh_user="root"), ssh_timeout=60)
    h = p.provision(ProvisionRequest("gh", 2, instance_type="n2-standard-4", region="us-central1"))
    try:
        _check(p, h)
    finally:
        p.terminate(h)


def _check(p: GCPProvider, h: ClusterHandle) -> None:
    ips = [n.ip for n in h.nodes]
    for i in range(2):
        out = p.runner(h, i).run(["sh", "-c", "hostname -I"], timeout=30)
        assert out.returncode == 0 and ips[i] in out.stdout, out
    probe = f"timeout 5 bash -c 'echo > /dev/tcp/{ips[1]}/22' && echo ok"  # node to node
    peer = p.runner(h, 0).run(["sh", "-c", probe], timeout=30)
    assert "ok" in peer.stdout, peer
    assert h.agent_root == "/root/.styx/agent"  # the home the node reported
    assert p.unreachable_nodes(h) == []
    p.stop(h)
    again = p.start(h)
    assert [n.ip for n in again.nodes] == ips
    assert p.runner(again, 1).run(["true"], timeout=30).returncode == 0
