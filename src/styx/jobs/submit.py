"""Queueing managed jobs and DAG runs in the database (what ``styx jobs launch`` does)."""

from __future__ import annotations

import getpass

from styx.jobs import secrets
from styx.jobs.dag import dag_spec
from styx.spec.dag import Dag
from styx.state import managed_jobs as repo
from styx.state.db import Database
from styx.state.records import ManagedJobStatus, NewManagedJob

S = ManagedJobStatus
ACTIVE = [S.PENDING, S.STARTING, S.RUNNING, S.RECOVERING]


def submit(db: Database, dag: Dag, *, name: str | None = None) -> tuple[int | None, list[int]]:
    """Queue ``dag``: one managed job for one task, else a DAG run with a job per task.

    Returns the DAG run id (None for a single job) and the job ids in task order.
    """
    user = _user()
    tasks = dag.tasks
    run_name = name or dag.name or tasks[0].name or "managed-job"
    split = [secrets.split(t.to_dict()) for t in tasks]  # the database never sees secrets
    jobs = [
        NewManagedJob(
            name=t.name or run_name,
            spec=split[i][0],
            task_index=i,
            task_name=t.name,
            user_name=user,
        )
        for i, t in enumerate(tasks)
    ]
    if len(tasks) == 1:
        job_id = repo.add_managed_job(db, jobs[0]).id
        secrets.save(job_id, split[0][1])
        return None, [job_id]
    spec = dag_spec([t.name for t in tasks], sorted(dag.edges), dag.on_failure)
    run, records = repo.add_dag_run(db, run_name, spec, on_failure=dag.on_failure, jobs=jobs)
    for record, (_, values) in zip(records, split, strict=True):
        secrets.save(record.id, values)
    return run.id, [r.id for r in records]


def request_cancel(db: Database, job_ids: list[int]) -> list[int]:
    """Move active jobs to CANCELLING (the controller finishes the job); returns those moved.

    A PENDING job that no controller drives yet is cancelled at once.
    """
    moved = []
    for job_id in job_ids:
        if repo.set_managed_job_status(
            db, job_id, S.CANCELLING, expected=ACTIVE, reason="cancel requested"
        ):
            moved.append(job_id)
    return moved


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
