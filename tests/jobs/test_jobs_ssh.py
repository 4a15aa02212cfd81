"""Managed jobs on an SSH node pool: real sshd hosts in network namespaces, real Ray.

Preemption here is a host killed outright (its whole PID namespace, sshd included): the job's
cluster stops answering, the controller sees that over several checks, tears the cluster
down (which frees the host record) and launches again on a host that answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.jobs.e2e import (
    S,
    cluster_hosts,
    controller_thread,
    history,
    job,
    queue,
    span,
    wait_status,
    wait_until,
)
from tests.ops.conftest import REPO
from tests.testworld.testbed import Testbed, usable

from styx.jobs.controller import cluster_name
from styx.state import db as dbmod
from styx.state import managed_jobs as repo
from styx.state.clusters import list_clusters
from styx.state.db import Database
from styx.state.records import DagRunStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HOSTS = 5


def wheelhouse() -> str | None:
    path = os.environ.get("STYX_TEST_WHEELHOUSE") or str(REPO / ".wheelhouse")
    return path if Path(path).is_dir() and any(Path(path).glob("ray-*.whl")) else None


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
    return home


@pytest.fixture
def db(home: Path, bed: Testbed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    monkeypatch.setenv("STYX_HOME", str(home))
    monkeypatch.setenv("STYX_WHEELHOUSE", str(wheelhouse()))
    dbmod.clear_cache()
    database = Database.open()
    yield database
    # Whatever happened, no managed-job cluster may be left holding a host.
    leaked = [c.name for c in list_clusters(database) if c.name.startswith("styx-mj-")]
    for i in range(1, HOSTS + 1):
        if not bed.alive(i):
            bed.reboot(i)
    database.close()
    dbmod.clear_cache()
    assert leaked == []


def host_index(bed: Testbed, address: str) -> int:
    return next(h.index for h in bed.hosts if h.ip == address)


def test_ten_preemptions_in_a_row_still_succeed(db: Database, bed: Testbed) -> None:
    [job_id] = queue(
        db,
        "name: train\nresources: {infra: ssh/lab}\n"
        "run: for i in $(seq 1 10); do echo step-$i; sleep 1; done\n",
    )
    name = cluster_name(job_id)
    killed: list[int] = []
    with controller_thread(db, check_failures=2):
        for attempt in range(10):
            wait_status(db, job_id, S.RUNNING, 180, attempt)
            wait_job_running_on_cluster(db, job_id, 60)
            [address] = cluster_hosts(db, name)
            i = host_index(bed, address)
            assert i not in killed[-1:], "relaunched on the host just killed"
            bed.crash(i)  # preempted: the machine is gone, sshd and all
            killed.append(i)
            wait_status(db, job_id, S.RECOVERING, 120, attempt + 1)
            if len(killed) >= 2:  # bring back an earlier one, as capacity returns
                bed.reboot(killed[-2])
        wait_status(db, job_id, S.SUCCEEDED, 240, 10)
    record = job(db, job_id)
    assert record.recovery_count == 10
    assert history(db, job_id).count(S.RECOVERING) == 10
    assert history(db, job_id)[-3:] == [S.RECOVERING, S.RUNNING, S.SUCCEEDED]


def test_user_code_failure_restarts_twice_then_fails(db: Database) -> None:
    [job_id] = queue(
        db,
        "name: flaky\nresources:\n  infra: ssh/lab\n  job_recovery: {max_restarts_on_errors: 2}\n"
        "run: echo attempt; exit 3\n",
    )
    with controller_thread(db):
        wait_status(db, job_id, S.FAILED, 180)
    record = job(db, job_id)
    assert history(db, job_id) == [
        S.PENDING, S.STARTING, S.RUNNING, S.RECOVERING, S.RUNNING, S.RECOVERING, S.RUNNING,
        S.FAILED,
    ]  # fmt: skip
    assert record.restarts_on_errors == 2
    assert record.failure_reason == "user code exited with 3"


def test_diamond_runs_b_and_c_together_then_d(db: Database) -> None:
    ids = queue(db, DIAMOND.format(b_run="sleep 6", c_run="sleep 6"))
    a, _, _, d = ids
    with controller_thread(db):
        wait_status(db, d, S.SUCCEEDED, 300)
    for job_id in ids:
        assert job(db, job_id).status == S.SUCCEEDED, history(db, job_id)
    (_, a1), (b0, b1), (c0, c1), (d0, _) = (span(db, i) for i in ids)
    assert a1 <= b0 and a1 <= c0  # B and C start after A succeeded
    overlap = min(b1, c1) - max(b0, c0)
    assert overlap > 2, f"B ran {b0:.1f}-{b1:.1f}, C ran {c0:.1f}-{c1:.1f}"
    assert d0 >= max(b1, c1)  # D starts after both
    run = repo.get_dag_run(db, job(db, a).dag_run_id or 0)
    assert run is not None and run.status == DagRunStatus.SUCCEEDED


def test_b_fails_d_is_cancelled_while_c_finishes(db: Database) -> None:
    a, b, c, d = queue(db, DIAMOND.format(b_run="sleep 1; exit 1", c_run="sleep 8"))
    with controller_thread(db):
        wait_until(lambda: all(job(db, i).status.is_terminal for i in (a, b, c, d)), 300, "end")
    assert job(db, b).status == S.FAILED
    assert job(db, d).status == S.CANCELLED
    assert job(db, c).status == S.SUCCEEDED  # C was not stopped by B's failure
    assert history(db, d) == [S.PENDING, S.CANCELLED]  # D never launched
    assert span(db, c)[1] > span(db, b)[1]  # C finished after B failed
    run = repo.get_dag_run(db, job(db, a).dag_run_id or 0)
    assert run is not None and run.status == DagRunStatus.FAILED


DIAMOND = """\
name: diamond
---
name: A
resources: {{infra: ssh/lab}}
run: echo a
---
name: B
resources: {{infra: ssh/lab}}
run: {b_run}
depends_on: [A]
---
name: C
resources: {{infra: ssh/lab}}
run: {c_run}
depends_on: [A]
---
name: D
resources: {{infra: ssh/lab}}
run: echo d
depends_on: [B, C]
"""


def wait_job_running_on_cluster(db: Database, job_id: int, timeout: float) -> None:
    """Wait until the agent on the job's cluster runs it (not only queued it)."""
    from styx import sdk

    record = job(db, job_id)
    cluster_job = (record.resources or {})["cluster_job_id"]

    def running() -> bool:
        rows = sdk.queue(cluster_name(job_id), all_jobs=True)
        return any(r.job_id == cluster_job and r.status == "RUNNING" for r in rows)

    wait_until(running, timeout, f"job {job_id} to run on its cluster")


def styx_cli(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


def test_kill_9_of_the_controller_mid_run_then_the_job_continues(
    db: Database, home: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "STYX_JOBS_POLL_INTERVAL": "0.5", "STYX_JOBS_IDLE_EXIT": "2"}
    task = tmp_path / "long.yaml"
    task.write_text(
        "name: long\nresources: {infra: ssh/lab}\n"
        "run: for i in $(seq 1 12); do echo tick-$i; sleep 1; done\n"
    )
    out = styx_cli(home, "jobs", "launch", str(task), env=env)
    assert out.returncode == 0, out.stderr
    job_id = int(out.stdout.split()[2])
    wait_status(db, job_id, S.RUNNING, 180)
    wait_job_running_on_cluster(db, job_id, 60)
    jobs_dir = home / "jobs"
    victim = int((jobs_dir / "controller.pid").read_text())
    os.kill(victim, signal.SIGKILL)
    # The supervisor starts a new controller, which finds the job's cluster still up and
    # keeps watching it: no recovery, no second cluster.
    wait_until(
        lambda: int((jobs_dir / "controller.pid").read_text()) != victim, 30, "a new controller"
    )
    wait_status(db, job_id, S.SUCCEEDED, 180)
    record = job(db, job_id)
    assert record.recovery_count == 0, history(db, job_id)
    assert history(db, job_id) == [S.PENDING, S.STARTING, S.RUNNING, S.SUCCEEDED]
    logs = styx_cli(home, "jobs", "logs", str(job_id), env=env)
    assert "tick-12" in logs.stdout and logs.returncode == 0, logs.stdout + logs.stderr
    assert "exited with -9" in (jobs_dir / "controller.log").read_text()
