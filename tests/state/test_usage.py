"""``cluster_usage`` and the cost report's reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from styx.state import clusters as repo
from styx.state import managed_jobs as jobs_repo
from styx.state.db import Database
from styx.state.records import ClusterStatus, NewManagedJob
from styx.state.usage import UsageRecord, cost_inputs, get_usage, record_usage


def usage(cluster_id: str, name: str, **kw: object) -> UsageRecord:
    values: dict[str, object] = {
        "cluster_id": cluster_id,
        "cluster_name": name,
        "provider": "aws",
        "infra": "aws/us-east-1/us-east-1a",
        "resources": {"instance_type": "p4d.24xlarge", "accelerators": {"A100": 8}, "ü": 0.1},
        "num_nodes": 2,
        "hourly_price": 65.54,
        "launched_at": 1_800_000_000.25,
        "managed_job_id": 7,
        "user_name": "alice",
    }
    values.update(kw)
    return UsageRecord(**values)  # type: ignore[arg-type]


def test_round_trip_and_overwrite(db: Database) -> None:
    assert get_usage(db, "nope") is None
    u = usage("c1", "a")
    record_usage(db, u)
    assert get_usage(db, "c1") == u
    cheaper = u._replace(hourly_price=None, resources=None, managed_job_id=None)
    record_usage(db, cheaper)  # provisioned again while INIT: priced as what it is now
    assert get_usage(db, "c1") == cheaper
    assert len(cost_inputs(db).usage) == 1


def test_usage_outlives_the_cluster(db: Database) -> None:
    rec = repo.upsert_cluster(db, "gone", provider="local", handle={})
    record_usage(db, usage(rec.cluster_id, "gone", launched_at=rec.created_at))
    repo.set_cluster_status(db, "gone", ClusterStatus.UP)
    repo.delete_cluster(db, "gone")
    inputs = cost_inputs(db)
    assert [u.cluster_id for u in inputs.usage] == [rec.cluster_id]
    assert inputs.live == []
    changes = inputs.changes["gone"]
    assert [c[2:] for c in changes] == [(None, "INIT"), ("INIT", "UP"), ("UP", None)]
    assert changes[0][1] == rec.created_at  # the usage row finds its creation by this time
    assert [c[1] for c in changes] == sorted(c[1] for c in changes)
    assert {c[0] for c in changes} == {"gone"}


def test_inputs_hold_jobs_runs_and_live_clusters(db: Database) -> None:
    repo.upsert_cluster(db, "live", provider="local", handle={}, status=ClusterStatus.UP)
    lone = jobs_repo.add_managed_job(db, NewManagedJob(name="lone", spec={"x": 1}, user_name="u"))
    run, (task,) = jobs_repo.add_dag_run(db, "dag", {}, jobs=[NewManagedJob(name="t", spec={})])
    inputs = cost_inputs(db)
    assert [r.name for r in inputs.live] == ["live"]
    assert [(j.id, j.name, j.dag_run_id, j.status, j.user_name) for j in inputs.jobs] == [
        (lone.id, "lone", None, "PENDING", "u"),
        (task.id, "t", run.id, "PENDING", None),
    ]
    assert inputs.jobs[0].submitted_at == lone.submitted_at and inputs.jobs[0].ended_at is None
    assert inputs.runs == {run.id: ("dag", "PENDING")}
    assert "live" in inputs.changes


def test_fast_path_matches_the_sqlalchemy_path(db: Database) -> None:
    for i in range(3):
        rec = repo.upsert_cluster(db, f"c{i}", provider="local", handle={})
        record_usage(db, usage(rec.cluster_id, rec.name, hourly_price=i or None))
        if i:
            repo.delete_cluster(db, rec.name)
    jobs_repo.add_dag_run(db, "dag", {}, jobs=[NewManagedJob(name="t", spec={})])
    if db.backend != "sqlite":
        assert db.fast_reader() is None
        return
    assert db.fast_reader() is not None
    slow = Database(db.url)
    slow.fast_reader = lambda: None  # type: ignore[method-assign]
    assert cost_inputs(slow) == cost_inputs(db)
    assert get_usage(slow, "missing") is None
    slow.close()


def test_without_job_resources_only_job_clusters_lose_them(db: Database) -> None:
    record_usage(db, usage("j", "styx-mj-7", managed_job_id=7))
    record_usage(db, usage("u", "mine", managed_job_id=None))
    lean = {u.cluster_id: u for u in cost_inputs(db, job_resources=False).usage}
    full = {u.cluster_id: u for u in cost_inputs(db).usage}
    assert lean["j"].resources is None and full["j"].resources is not None
    assert lean["j"]._replace(resources=full["j"].resources) == full["j"]
    assert lean["u"] == full["u"]
