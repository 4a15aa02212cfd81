"""The managed-jobs operations (``styx.jobs``, which ``styx jobs ...`` calls): checks before
queueing, why a job ended, the queue drawn as a tree, and the SDK's face."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import styx
from styx.errors import NotSupportedError, ResourcesUnavailable, SpecError, UsageError
from styx.jobs import api, view
from styx.jobs.backend import InMemoryBackend, SimScript
from styx.jobs.controller import Controller, run_until
from styx.spec.dag import Dag
from styx.spec.overrides import Overrides, apply_to_dag
from styx.state import managed_jobs as repo
from styx.state.db import Database
from styx.state.records import DagRunRow, ManagedJobRow, ManagedJobStatus, TerminationReason

S = ManagedJobStatus


def queued(db: Database) -> list[int]:
    return [j.id for j in repo.list_managed_jobs(db)]


def launch_yaml(text: str, *secrets: str) -> api.Submitted:
    dag = apply_to_dag(Dag.from_yaml_str(text), Overrides(secret=secrets))
    return api.launch(dag, start_controller=False)


# --- checks before queueing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "error", "code"),
    [
        (
            "run: x\nresources: {accelerators: A100:8}\n",
            ResourcesUnavailable,
            "managed-job-infeasible",
        ),
        ("run: x\nresources: {cpus: 100000}\n", ResourcesUnavailable, "managed-job-infeasible"),
        ("run: x\nsecrets: {TOKEN: null}\n", SpecError, "missing-value"),
        ("run: x\nenvs: {MODEL: null}\n", SpecError, "missing-value"),
        ("run: x\nworkdir: /no/such/folder\n", SpecError, "workdir-not-found"),
        ("run: x\nfile_mounts: {/tmp/x: /no/such/file}\n", SpecError, "mount-source-not-found"),
        ("run: x\nvolumes: {/data: my-volume}\n", NotSupportedError, "not-supported"),
    ],
)
def test_a_task_that_could_never_run_is_refused_and_nothing_is_queued(
    db: Database, yaml: str, error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as info:
        launch_yaml(yaml)
    assert getattr(info.value, "code", None) == code
    assert queued(db) == []


def test_a_refused_file_mount_destination_is_refused_at_submit_time(
    db: Database, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpecError) as info:
        launch_yaml(f"run: x\nfile_mounts:\n  /etc/styx-test: {tmp_path / 'f'}\n")
    assert info.value.code == "mount-destination-refused"
    assert queued(db) == []


def test_the_infeasible_task_of_a_dag_is_named_and_no_task_is_queued(db: Database) -> None:
    dag = "name: d\n---\nname: a\nrun: x\n---\nname: big\nrun: y\nresources: {cpus: 100000}\n"
    with pytest.raises(ResourcesUnavailable) as info:
        launch_yaml(dag)
    err = info.value
    assert err.code == "managed-job-infeasible" and err.message.startswith("Task 'big' ([1]): ")
    assert err.details["task"] == 1 and err.details["cause"] == "resources-unavailable"
    assert err.hint and queued(db) == []


def test_a_null_secret_given_on_the_command_line_is_queued_but_never_stored(
    db: Database,
) -> None:
    submitted = launch_yaml("run: x\nsecrets: {TOKEN: null}\n", "TOKEN=s3cr3t-value")
    [job_id] = submitted.job_ids
    record = repo.require_managed_job(db, job_id)
    assert "s3cr3t-value" not in json.dumps(record.spec)
    from styx import paths
    from styx.jobs import secrets

    stored = list(paths.home().rglob("*.db*"))
    assert stored and all(b"s3cr3t-value" not in f.read_bytes() for f in stored)
    restored = secrets.restore(job_id, record.spec)
    assert restored["secrets"] == {"TOKEN": "s3cr3t-value"}  # what the controller launches


# --- why a job ended -----------------------------------------------------------------------


def drive(db: Database, backend: InMemoryBackend, ids: list[int]) -> None:
    controller = Controller(db, backend, poll_interval=0.005, sweep_interval=0.02)

    def done() -> bool:
        return all(repo.require_managed_job(db, i).status.is_terminal for i in ids)

    asyncio.run(run_until(controller, done, 20))


def test_a_launch_failure_shows_its_reason_in_the_queue_and_its_error_in_the_logs(
    db: Database,
) -> None:
    backend = InMemoryBackend(scripts={"nores": SimScript(no_resources=True)})
    [job_id] = launch_yaml("name: nores\nrun: x\n").job_ids
    drive(db, backend, [job_id])
    q = api.queue()
    assert q.controller is api.ControllerState.IDLE  # nothing active: nothing started
    [row] = q.jobs
    assert row.termination_reason is TerminationReason.NO_RESOURCES
    table = view.render(q.jobs, q.runs)
    assert table.splitlines()[0].split()[-1] == "REASON"
    assert table.splitlines()[1].endswith("no-resources"), table
    text = "".join(api.logs(job_id))
    assert text.splitlines()[0] == f"Managed job {job_id} (nores): FAILED_NO_RESOURCE"
    assert text.splitlines()[-3:] == [
        f"Managed job {job_id} ended FAILED_NO_RESOURCE (no-resources).",
        "Error [no-capacity]: (simulated) no region has capacity for the task.",
        "Hint: Retry later, or relax the resources.",
    ], text


def test_a_failure_without_an_error_shows_the_reason_the_controller_kept(db: Database) -> None:
    backend = InMemoryBackend(scripts={"bad": SimScript(exit_codes=[3])})
    [job_id] = launch_yaml("name: bad\nrun: x\n").job_ids
    drive(db, backend, [job_id])
    lines = "".join(api.logs(job_id)).splitlines()
    assert lines[-2:] == [
        f"Managed job {job_id} ended FAILED (user-code-failed).",
        "Reason: user code exited with 3",
    ]
    running = next(line for line in lines if " RUNNING " in line)
    assert running.endswith(f"running on cluster styx-mj-{job_id}, as its job 1")
    # A job that succeeded ends with its last transition, nothing more.
    ok = InMemoryBackend()
    [good] = launch_yaml("name: good\nrun: x\n").job_ids
    drive(db, ok, [good])
    assert "".join(api.logs(good)).splitlines()[-1].endswith("job succeeded")


def test_the_agents_lines_name_the_managed_job_first() -> None:
    text = "hello\nstyx: job 1 FAILED: exit code 2\nnot styx: job 1 here\n"
    assert view.speak_of_managed_job(text, 7) == (
        "hello\nstyx: managed job 7 (cluster job 1) FAILED: exit code 2\nnot styx: job 1 here\n"
    )


# --- the queue as a tree -------------------------------------------------------------------


def row(i: int, name: str, status: S, **kw: object) -> ManagedJobRow:
    base: dict[str, object] = dict(
        id=i, name=name, task_name=None, dag_run_id=None, status=status, submitted_at=1000.0,
        started_at=None, ended_at=None, recovery_count=0,
    )  # fmt: skip
    base.update(kw)
    return ManagedJobRow(**base)  # type: ignore[arg-type]


def test_the_queue_draws_dag_runs_as_trees_with_dependencies_and_durations() -> None:
    now = 1000.0 + 7200
    rows = [
        row(1, "lone", S.FAILED_NO_RESOURCE, termination_reason=TerminationReason.NO_RESOURCES),
        row(2, "d", S.SUCCEEDED, task_name="A", dag_run_id=1, task_index=0,
            started_at=1100.0, ended_at=1160.0, termination_reason=TerminationReason.SUCCEEDED),
        row(3, "d", S.RUNNING, task_name="B", dag_run_id=1, task_index=1, started_at=1200.0,
            recovery_count=2),
        row(4, "d", S.PENDING, task_name="C", dag_run_id=1, task_index=2),
    ]  # fmt: skip
    runs = {1: DagRunRow("d", "RUNNING", ((0, 1), (0, 2), (1, 2)))}
    lines = view.render(rows, runs, now=now).splitlines()
    assert lines[0].split() == [
        "ID", "NAME", "STATUS", "SUBMITTED", "DURATION", "RECOVERIES", "REASON",
    ]  # fmt: skip
    assert lines[1].split() == ["1", "lone", "FAILED_NO_RESOURCE", "2h", "ago", "-", "0",
                                "no-resources"]  # fmt: skip
    assert lines[2].split() == ["run", "1", "d", "RUNNING", "2h", "ago", "1h58m20s", "2"]
    assert lines[3].split()[:4] == ["2", "├─", "A", "SUCCEEDED"]
    assert lines[3].split()[-2:] == ["0h01m00s", "0"]  # no reason for a success
    assert "├─ B (after A)" in lines[4] and lines[4].split()[-2:] == ["1h56m40s", "2"]
    assert "└─ C (after A, B)" in lines[5] and lines[5].split()[-2:] == ["-", "0"]


def test_ago() -> None:
    assert [view.ago(t, 100_000.0) for t in (99_990.0, 99_000.0, 90_000.0, 1.0, None)] == [
        "10s ago", "16m ago", "2h ago", "1d ago", "-",
    ]  # fmt: skip


# --- the SDK's face ------------------------------------------------------------------------


def test_styx_jobs_is_the_managed_jobs_sdk(db: Database) -> None:
    assert styx.jobs.launch is api.launch and styx.jobs.tail_logs is api.logs
    task = styx.Task(name="sdk", run="echo hi", resources={"cpus": 1})  # type: ignore[arg-type]
    submitted = styx.jobs.launch(task, start_controller=False)
    [job_id] = submitted.job_ids
    assert submitted.dag_run_id is None and submitted.controller is api.ControllerState.HELD
    assert repo.require_managed_job(db, job_id).spec["resources"] == {"cpus": 1}
    assert [r.id for r in styx.jobs.queue().jobs] == [job_id]
    assert styx.jobs.wait(job_id, timeout=0.05, poll=0.01).status is S.PENDING
    assert styx.jobs.cancel([job_id]) == [job_id]
    assert styx.jobs.job(job_id).status is S.CANCELLING
    with pytest.raises(UsageError):
        styx.jobs.cancel()
    with pytest.raises(SpecError) as info:
        styx.jobs.launch(styx.Task(run="x", resources={"cpus": "lots"}))  # type: ignore[arg-type]
    assert info.value.location is not None and info.value.location.path == "resources.cpus"
    assert queued(db) == [job_id]


def test_a_held_controller_is_not_started_by_queue_or_logs(db: Database) -> None:
    [job_id] = launch_yaml("name: held\nrun: x\n").job_ids
    assert api.is_held()
    assert api.queue().controller is api.ControllerState.HELD
    text = "".join(api.logs(job_id, follow=False))
    assert "held by --no-controller" in text
    from styx.jobs import daemon

    assert not daemon.is_running()


def test_styx_launch_validates_a_task_built_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    from styx import sdk

    seen: list[object] = []
    monkeypatch.setattr(sdk, "_launch", lambda task, *a, **kw: seen.append(task))
    monkeypatch.setattr(sdk, "_exec", lambda task, *a, **kw: seen.append(task))
    styx.launch(styx.Task(run="echo hi", resources={"cpus": 1}), "c")  # type: ignore[arg-type]
    styx.exec(styx.Task(run="echo hi", envs={"A": "b"}), "c")  # type: ignore[arg-type]
    assert [type(t.resources).__name__ for t in seen] == ["Resources", "Resources"]  # type: ignore[attr-defined]
    with pytest.raises(SpecError) as info:
        styx.launch(styx.Task(run="x", resources={"gpus": "A100"}), "c")  # type: ignore[arg-type]
    assert info.value.code == "unknown-key" and len(seen) == 2


def test_a_jobs_non_utf8_output_comes_out_as_the_bytes_it_wrote(db: Database) -> None:
    """Saved attempt output is read without replacing bytes: the CLI writes exactly what the
    job wrote (20 MB of non-UTF-8 output used to grow to 38 MB of U+FFFD)."""
    import os
    import subprocess
    import sys

    from styx.jobs.controller import attempt_log

    [job_id] = launch_yaml("name: raw\nrun: x\n").job_ids
    drive(db, InMemoryBackend(), [job_id])
    raw = b"\xff\xfe binary \xe9t\xe9\n" + bytes(range(128, 256)) + b"\n"
    path = attempt_log(job_id, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    text = "".join(api.logs(job_id))
    assert raw in text.encode("utf-8", "surrogateescape")
    r = subprocess.run(
        [sys.executable, "-m", "styx.cli.main", "jobs", "logs", str(job_id)],
        env=os.environ.copy(),
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert raw in r.stdout and b"\xef\xbf\xbd" not in r.stdout  # no U+FFFD
