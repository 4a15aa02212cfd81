"""Shared fixtures of the GCP end-to-end tests: one GCE world per module (the stand-in of
tests/testworld/gce.py on 127.0.0.1, no GCE emulator existing, and real SSH hosts at the
instances' internal IPs, tests/testworld/gce_hosts.py), reset between tests, and a leak check
after every test: no instance, disk, styx firewall rule or host left in the world, no process
or Ray folder of Styx left on this machine, and no lookup of a googleapis.com name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests import leaks
from tests.ops.conftest import Styx, wheelhouse

from testworld.gce import GCEServer, block_google_endpoints
from testworld.gce_hosts import GceHosts, gce_world
from testworld.testbed import usable

CATALOG = Path(__file__).resolve().parents[3] / "shared" / "catalog"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GCEServer, GceHosts]]:
    pytest.importorskip("google.cloud.compute_v1")
    why = usable()
    if why:
        pytest.skip(why)
    if not (CATALOG / "gcp" / "vms.csv").exists():
        pytest.skip(f"no GCP catalog at {CATALOG}")
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse)")
    with gce_world(tmp_path_factory.mktemp("gce")) as (gce, hosts):
        yield gce, hosts


def gcp_leftovers(gce: GCEServer, hosts: GceHosts) -> list[str]:
    """What of Styx's is left in the GCE world: instances, disks, firewall rules, hosts."""
    hosts.idle()
    return (
        [f"instance {n}" for n in gce.instances()]
        + [f"disk {n}" for n in gce.disks()]
        + [f"firewall {n}" for n in gce.firewalls() if n.startswith("styx-")]
        + [f"host {n}" for n in hosts.hosts()]
    )


def gcp_env(gce: GCEServer) -> dict[str, str]:
    """The environment that points Styx at the stand-in, the real catalog and the wheelhouse."""
    return {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": f"{gce.url}/compute/v1/",
        "GOOGLE_CLOUD_PROJECT": "styx-test",
        "STYX_CATALOG_DIR": str(CATALOG),
        "STYX_WHEELHOUSE": str(wheelhouse()),
    }


def write_config(home: Path) -> None:
    (home / "config.yaml").write_text(
        yaml.safe_dump({"gcp": {"use_internal_ips": True, "ssh_user": "root"}})
    )


@pytest.fixture
def gce(world: tuple[GCEServer, GceHosts]) -> Iterator[GCEServer]:
    """The world's stand-in, fresh for the test; nothing of Styx's may be left after it."""
    server, hosts = world
    server.reset()
    with block_google_endpoints() as tried:
        yield server
    server.clear_faults()
    assert gcp_leftovers(server, hosts) == []
    assert tried == []


@pytest.fixture
def styx(gce: GCEServer, tmp_path: Path) -> Iterator[Styx]:
    home = tmp_path / "home"
    home.mkdir()
    write_config(home)
    before = leaks.snapshot()
    runner = Styx(home, extra_env=gcp_env(gce))
    yield runner
    runner("down", "--all", "-y", timeout=300)
    leaks.assert_none_since(before, (str(home),))
