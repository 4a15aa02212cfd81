"""The real ``ClusterBackend`` on the local cloud (real agent and Ray on this machine)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from styx.jobs.backend import ClusterBackend
from styx.jobs.controller import Controller, cluster_name, run_until
from styx.jobs.submit import submit
from styx.spec.dag import Dag
from styx.state import db as dbmod
from styx.state import managed_jobs as repo
from styx.state.db import Database
from styx.state.records import ManagedJobStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]
S = ManagedJobStatus


@pytest.fixture
def home_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "home"))
    dbmod.clear_cache()
    yield Database.open()
    dbmod.clear_cache()


def test_local_job_is_launched_watched_and_torn_down(home_db: Database) -> None:
    db = home_db
    Path(os.environ["STYX_HOME"], "config.yaml").write_text("local:\n  hourly_price: 36\n")
    yaml = "name: mj\nrun: sleep 3 && echo done\nresources: {infra: local}\n"
    _, [job] = submit(db, Dag.from_yaml_str(yaml))
    backend = ClusterBackend()
    preempted = False

    def ended() -> bool:
        nonlocal preempted
        record = repo.require_managed_job(db, job)
        if record.status == S.RUNNING and not preempted:
            # Tear the cluster down behind the controller's back: a preemption.
            from styx import sdk

            sdk.down(cluster_name(job))
            preempted = True
        return record.status.is_terminal

    controller = Controller(db, backend, poll_interval=0.5, sweep_interval=0.2)
    asyncio.run(run_until(controller, ended, 240))
    record = repo.require_managed_job(db, job)
    assert record.status == S.SUCCEEDED, (record, repo.list_managed_job_events(db, job))
    assert record.recovery_count == 1
    assert backend.clusters() == set()
    assert os.environ["STYX_HOME"]
    # Both attempts' clusters are the job's (the launch runs in a thread of the controller's
    # loop), each billed at the configured price while it existed.
    from styx.ops.cost import cost_report

    report = cost_report(db=db)
    mine = [c for c in report.clusters if c.managed_job_id == job]
    assert len(mine) == 2 and {c.status for c in mine} == {"TERMINATED"}
    assert all(c.hourly_price == 36 and c.seconds > 0 for c in mine)
    (cost,) = [j for j in report.jobs if j.id == job]
    assert cost.total.clusters == 2
    assert cost.total.cost == pytest.approx(sum(c.cost or 0 for c in mine))


def test_a_secret_given_at_submit_reaches_the_job_and_stays_out_of_its_views(
    home_db: Database,
) -> None:
    import hashlib

    from styx.jobs import api
    from styx.spec.overrides import Overrides, apply_to_dag

    db = home_db
    yaml = (
        "name: sec\nresources: {infra: local}\nsecrets: {TOKEN: null}\n"
        'run: printf %s "$TOKEN" | sha256sum\n'
    )
    value = "tok-" + os.urandom(6).hex()
    dag = apply_to_dag(Dag.from_yaml_str(yaml), Overrides(secret=(f"TOKEN={value}",)))
    [job] = api.launch(dag, start_controller=False).job_ids
    controller = Controller(db, ClusterBackend(), poll_interval=0.5, sweep_interval=0.2)
    asyncio.run(
        run_until(controller, lambda: repo.require_managed_job(db, job).status.is_terminal, 240)
    )
    assert repo.require_managed_job(db, job).status == S.SUCCEEDED
    text = "".join(api.logs(job, follow=False))
    assert hashlib.sha256(value.encode()).hexdigest() in text, text
    assert value not in text
    assert text.startswith(f"Managed job {job} (sec) on cluster {cluster_name(job)}: SUCCEEDED")


def test_a_launch_error_keeps_its_code_message_and_hint(
    home_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from styx.errors import NoCapacity
    from styx.jobs.backend import LaunchFailed
    from styx.ops import launch as ops_launch
    from styx.state.records import TerminationReason

    def fail(*args: object, **kwargs: object) -> None:
        raise NoCapacity("No capacity for 8x A100 in any zone.", "Retry later.")

    monkeypatch.setattr(ops_launch, "launch", fail)
    with pytest.raises(LaunchFailed) as info:
        asyncio.run(ClusterBackend().launch("styx-mj-1", {"run": "x"}))
    assert info.value.reason is TerminationReason.NO_RESOURCES
    assert info.value.error == {
        "code": "no-capacity",
        "message": "No capacity for 8x A100 in any zone.",
        "hint": "Retry later.",
    }
