"""The managed-jobs operations: what ``styx jobs ...`` and the SDK's ``styx.jobs.*`` call.

They write requests to and read rows from the state database; the controller daemon
(:mod:`styx.jobs.daemon`, started on demand) does the work. They return values; the CLI
renders them.

The controller and ``--no-controller``: :func:`launch` with ``start_controller=False`` only
queues, and *holds* the controller: until a launch that starts it, :func:`queue` and
:func:`logs` do not start it either (they report it as held). Without the hold, they start
it again when jobs are active and no controller runs (both of its processes died).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from styx.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from styx.spec.dag import Dag
    from styx.spec.task import Task
    from styx.state.job_queue import RunLabels
    from styx.state.records import ManagedJobRecord, ManagedJobRow


class ControllerState(enum.StrEnum):
    """What a call found or did about the controller daemon."""

    RUNNING = "running"  # it was running already
    STARTED = "started"  # this call started it
    HELD = "held"  # not running, and held by ``--no-controller``: nothing started it
    IDLE = "idle"  # not running, and not needed (no active job)


@dataclasses.dataclass(frozen=True, slots=True)
class Submitted:
    """What :func:`launch` queued: the job ids in task order, and the DAG run's id (None for
    a single task)."""

    job_ids: tuple[int, ...]
    dag_run_id: int | None
    controller: ControllerState


@dataclasses.dataclass(frozen=True, slots=True)
class Queue:
    """Every managed job's queue row (by id) and each DAG run's row (by run id)."""

    jobs: list[ManagedJobRow]
    runs: RunLabels
    controller: ControllerState


def _hold_file() -> Path:
    from styx.jobs.daemon import jobs_dir

    return jobs_dir() / "controller.hold"


def is_held() -> bool:
    """True while jobs queued with ``--no-controller`` hold the controller back."""
    return _hold_file().exists()


def controller_for(active: bool) -> ControllerState:
    """Start the controller when ``active`` jobs need it, none runs and none is held."""
    from styx.jobs import daemon

    if daemon.is_running():
        return ControllerState.RUNNING
    if not active:
        return ControllerState.IDLE
    if is_held():
        return ControllerState.HELD
    return ControllerState.STARTED if daemon.ensure_running() else ControllerState.RUNNING


def launch(
    task: Task | Dag | Any, *, name: str | None = None, start_controller: bool = True
) -> Submitted:
    """Check ``task`` (a Task, a Dag, or task data) and queue it as managed jobs.

    Every task is checked first as ``styx launch`` checks it, and placed once by the
    optimizer (:func:`styx.jobs.checks.check_submittable`): a task that could never run is
    refused with its error and nothing is queued. Secrets go to a private file, never the
    database. ``start_controller=False`` only queues, and holds the controller until a launch
    starts it (a controller already running still picks the jobs up).
    """
    from styx.jobs import daemon
    from styx.jobs.checks import check_submittable
    from styx.jobs.submit import submit
    from styx.ops import common
    from styx.spec.coerce import checked_dag

    dag = checked_dag(task)
    check_submittable(dag)
    run_id, ids = submit(common.database(), dag, name=name)
    if not start_controller:
        _hold_file().touch()
        state = ControllerState.RUNNING if daemon.is_running() else ControllerState.HELD
    else:
        _hold_file().unlink(missing_ok=True)
        state = ControllerState.STARTED if daemon.ensure_running() else ControllerState.RUNNING
    return Submitted(tuple(ids), run_id, state)


def queue() -> Queue:
    """Every managed job and DAG run; starts the controller when jobs are active and it is
    not running (unless held)."""
    from styx.ops import common
    from styx.state.job_queue import managed_job_queue

    rows, runs = managed_job_queue(common.database())
    state = controller_for(any(not r.status.is_terminal for r in rows))
    return Queue(rows, runs, state)


def job(job_id: int) -> ManagedJobRecord:
    """The managed job's record; JobNotFound when there is none."""
    from styx.ops import common
    from styx.state import managed_jobs as repo

    return repo.require_managed_job(common.database(), job_id)


def cancel(job_ids: Sequence[int] = (), *, all_jobs: bool = False) -> list[int]:
    """Ask the controller to cancel jobs (their clusters are torn down): ``job_ids``, or every
    active job with ``all_jobs``. Returns the ids moved to CANCELLING; UsageError when neither
    is given. Ids that are not active are left out of the answer."""
    from styx.jobs.controller import ACTIVE
    from styx.jobs.submit import request_cancel
    from styx.ops import common
    from styx.state import managed_jobs as repo

    if not job_ids and not all_jobs:
        raise UsageError(
            "No managed job to cancel was named.",
            "Give job ids (see `styx jobs queue`), or --all for every active job.",
        )
    db = common.database()
    ids = list(job_ids)
    if all_jobs:
        ids = [j.id for j in repo.list_managed_jobs(db, statuses=ACTIVE)]
    return request_cancel(db, ids)


def wait(job_id: int, *, timeout: float | None = None, poll: float = 1.0) -> ManagedJobRecord:
    """Block until the managed job ends (or ``timeout`` seconds pass); its record then."""
    deadline = None if timeout is None else time.monotonic() + timeout
    record = job(job_id)
    controller_for(not record.status.is_terminal)
    while not record.status.is_terminal:
        if deadline is not None and time.monotonic() >= deadline:
            break
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
        record = job(job_id)
    return record


def logs(job_id: int, *, follow: bool = True, poll: float = 1.0) -> Iterator[str]:
    """The managed job's story as text: its status transitions, each attempt's output after
    the RUNNING line that started it (saved by the controller for attempts that are over,
    read live from the cluster for the one running now), and, when it ended without
    succeeding, why (the error's code, message and hint when a launch failed). Followed to
    the job's end unless ``follow`` is False. The first chunk is a header line; the
    controller is started when the job is active and none runs (unless held). The job's own
    output is decoded with ``surrogateescape``: bytes that are not UTF-8 come back exactly
    with ``text.encode("utf-8", "surrogateescape")``, as ``styx jobs logs`` writes them."""
    from styx.jobs import view

    record = job(job_id)
    yield view.header(record) + "\n"
    if controller_for(not record.status.is_terminal) is ControllerState.HELD:
        yield "(the jobs controller is held by --no-controller: `styx jobs launch` starts it)\n"
    yield from _story(job_id, follow, poll)


def _story(job_id: int, follow: bool, poll: float) -> Iterator[str]:
    from styx.jobs import view
    from styx.ops import common
    from styx.state import managed_jobs as repo

    db = common.database()
    printed = 0  # events given so far
    attempts = 0  # RUNNING events given so far
    while True:
        events = repo.list_managed_job_events(db, job_id) or []
        record = repo.require_managed_job(db, job_id)
        tailed = False
        while printed < len(events) and not tailed:
            e = events[printed]
            printed += 1
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
            yield f"{stamp}  {e.to_status.value:<19} {e.reason or ''}".rstrip() + "\n"
            if e.to_status.value != "RUNNING":
                continue
            attempts += 1
            info = record.resources or {}
            live = printed == len(events) and record.status.value == "RUNNING"
            if live and record.cluster_name and info.get("cluster_job_id"):
                yield from _tail(job_id, record.cluster_name, int(info["cluster_job_id"]), follow)
                tailed = True  # read the events again: some may have come while tailing
            else:
                yield from _saved(job_id, attempts - 1)
        if tailed:
            continue
        if record.status.is_terminal:
            for line in view.ending(record):
                yield line + "\n"
            return
        if not follow:
            return
        time.sleep(poll)


def _saved(job_id: int, attempt: int) -> Iterator[str]:
    from styx.jobs import view
    from styx.jobs.controller import attempt_log

    path = attempt_log(job_id, attempt)
    if not path.is_file():
        yield "(no output kept for this attempt: its machines were lost)\n"
        return
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            yield view.speak_of_managed_job(line, job_id)


def _tail(job_id: int, cluster: str, cluster_job_id: int, follow: bool) -> Iterator[str]:
    import codecs

    from styx.errors import StyxError
    from styx.jobs import view
    from styx.ops import queries

    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    try:
        for data in queries.tail_log_bytes(cluster, cluster_job_id, follow=follow):
            chunk = decoder.decode(data)
            if chunk:
                yield view.speak_of_managed_job(chunk, job_id)
        rest = decoder.decode(b"", final=True)
        if rest:
            yield view.speak_of_managed_job(rest, job_id)
    except StyxError as e:  # cluster gone (preempted): keep showing events
        yield f"(output of managed job {job_id} cut off: {e.message})\n"
