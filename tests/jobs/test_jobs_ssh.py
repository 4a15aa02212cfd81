"""Managed jobs on an SSH node pool: real sshd hosts in network namespaces, real Ray.

Preemption here is a host killed outright (its whole PID namespace, sshd included): the job's
cluster stops answering, the controller sees that over several checks, tears the cluster
down (which frees the host record) and launches again on a host that answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.jobs import e2e
from tests.jobs.e2e import cluster_hosts
from tests.ops.conftest import wheelhouse
from tests.testworld.testbed import Testbed, usable

from styx.state.db import Database

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HOSTS = 8  # at once: two diamond runs (up to 4 hosts), 2 more jobs, 1 or 2 dead hosts


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    why = usable()
    if why:
        pytest.skip(why)
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse before the tests)")
    testbed = Testbed(tmp_path_factory.mktemp("jobs-bed"), HOSTS).up()
    yield testbed
    testbed.down()


@pytest.fixture(scope="module")
def home(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("jobs-ssh-home")
    hosts = "\n".join(f"    - {h.ip}" for h in bed.hosts)
    (home / "ssh_node_pools.yaml").write_text(
        f"lab:\n  user: root\n  identity_file: {bed.key}\n  hosts:\n{hosts}\n"
    )
    # A price for the pool's nodes, so that styx cost-report has something to sum.
    (home / "config.yaml").write_text(
        "ssh:\n  context_configs:\n    lab:\n      hourly_price: 0.5\n"
    )
    return home


@pytest.fixture
def db(home: Path, bed: Testbed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    def reboot_dead_hosts() -> None:
        for i in range(1, HOSTS + 1):
            if not bed.alive(i):
                bed.reboot(i)

    # Whatever happened, no managed-job cluster may be left holding a host, nor any process.
    env = {"STYX_WHEELHOUSE": str(wheelhouse())}
    with e2e.jobs_database(home, monkeypatch, env, after=reboot_dead_hosts) as database:
        yield database


def host_index(bed: Testbed, address: str) -> int:
    return next(h.index for h in bed.hosts if h.ip == address)


def test_preemptions_restarts_dags_and_kill_9_at_once(
    db: Database, home: Path, bed: Testbed
) -> None:
    def kill_host(db: Database, cluster: str) -> str:
        [address] = cluster_hosts(db, cluster)
        bed.crash(host_index(bed, address))  # the machine is gone, sshd and all
        return address

    def revive(killed: list[str]) -> None:
        if len(killed) >= 2:  # an earlier host comes back, as capacity returns
            bed.reboot(host_index(bed, killed[-2]))

    def cut_off(db: Database, cluster: str) -> str:
        [address] = cluster_hosts(db, cluster)
        i = host_index(bed, address)
        bed.cut_link(i)  # packets vanish: the controller's checks of it hang, then fail
        time.sleep(20)  # longer than ServerAlive (15 s): the master connection dies
        bed.restore_link(i)
        return address

    e2e.everything_at_once(db, home, "infra: ssh/lab", kill_host, revive, blip=cut_off)
