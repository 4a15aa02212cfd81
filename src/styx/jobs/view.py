"""How managed jobs read to a person: the ``styx jobs queue`` table and the lines of
``styx jobs logs`` that are not the job's own output.

The queue rows come from :func:`styx.state.job_queue.managed_job_queue`. A DAG run is drawn as
a tree: the run, then each task under it with the tasks it waits for (``after B, C``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence

from styx.state.records import DagRunRow, ManagedJobRecord, ManagedJobRow, ManagedJobStatus

#: Columns: id, name (tree drawn in it), status, submitted, duration, recoveries, reason.
_FORMAT = "{:>7}  {:<30} {:<19} {:>9} {:>10} {:>10}  {}"
_NAME = 30


def ago(t: float | None, now: float) -> str:
    """``t`` as time before ``now``: ``"12s ago"``, ``"3m ago"``, ``"5h ago"``, ``"2d ago"``."""
    if t is None:
        return "-"
    s = max(0, int(now - t))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def duration(started: float | None, ended: float | None, now: float) -> str:
    """How long a job ran (so far, while it runs): ``"1h02m03s"``; ``"-"`` before it ran."""
    if started is None:
        return "-"
    seconds = max(0, int((ended or now) - started))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def reason(row: ManagedJobRow) -> str:
    """The short reason column: why the job ended, unless it succeeded."""
    if row.termination_reason is None or row.status is ManagedJobStatus.SUCCEEDED:
        return ""
    return row.termination_reason.value


def _line(row: ManagedJobRow, label: str, now: float) -> str:
    return _FORMAT.format(
        row.id,
        _cut(label),
        row.status.value,
        ago(row.submitted_at, now),
        duration(row.started_at, row.ended_at, now),
        row.recovery_count,
        reason(row),
    ).rstrip()


def _cut(text: str) -> str:
    return text if len(text) <= _NAME else text[: _NAME - 1] + "…"


def render(
    rows: Sequence[ManagedJobRow], runs: Mapping[int, DagRunRow], *, now: float | None = None
) -> str:
    """The queue as text; the tasks of a DAG run are a tree under the run, each with the
    tasks it depends on."""
    now = time.time() if now is None else now
    header = _FORMAT.format(
        "ID", "NAME", "STATUS", "SUBMITTED", "DURATION", "RECOVERIES", "REASON"
    ).rstrip()
    lines = [header]
    children: dict[int, list[ManagedJobRow]] = {}
    for row in rows:
        if row.dag_run_id is not None:
            children.setdefault(row.dag_run_id, []).append(row)
    shown: set[int] = set()
    for row in rows:
        run_id = row.dag_run_id
        if run_id is None:
            lines.append(_line(row, row.name, now))
            continue
        if run_id in shown:
            continue
        shown.add(run_id)
        lines.extend(_run_lines(run_id, runs.get(run_id), children[run_id], now))
    return "\n".join(lines)


def _run_lines(
    run_id: int, run: DagRunRow | None, tasks: list[ManagedJobRow], now: float
) -> list[str]:
    tasks = sorted(tasks, key=lambda t: t.task_index)
    first = min(t.submitted_at for t in tasks)
    started = [t.started_at for t in tasks if t.started_at is not None]
    ended = [t.ended_at for t in tasks if t.ended_at is not None]
    run_ended = max(ended) if len(ended) == len(tasks) else None  # the run ends with its last
    name, status = (run.name, run.status) if run else ("?", "?")
    lines = [
        _FORMAT.format(
            f"run {run_id}",
            _cut(name),
            status,
            ago(first, now),
            duration(min(started) if started else None, run_ended, now),
            sum(t.recovery_count for t in tasks),
            "",
        ).rstrip()
    ]
    label = {t.task_index: t.task_name or t.name for t in tasks}
    upstream: dict[int, list[int]] = {}
    for a, b in run.edges if run else ():
        upstream.setdefault(b, []).append(a)
    for i, task in enumerate(tasks):
        branch = "└─ " if i == len(tasks) - 1 else "├─ "
        after = [label.get(u, f"[{u}]") for u in sorted(upstream.get(task.task_index, []))]
        text = branch + label[task.task_index] + (f" (after {', '.join(after)})" if after else "")
        lines.append(_line(task, text, now))
    return lines


# --- logs --------------------------------------------------------------------------------------

_AGENT_NOTE = re.compile(r"^styx: job (\d+) ", re.MULTILINE)


def speak_of_managed_job(text: str, job_id: int) -> str:
    """Output read from a managed job's cluster, where the agent's own lines name the job by
    its id on that cluster (``styx: job 1 FAILED ...``): those lines name managed job
    ``job_id`` first, the cluster's id after."""
    return _AGENT_NOTE.sub(lambda m: f"styx: managed job {job_id} (cluster job {m[1]}) ", text)


def header(job: ManagedJobRecord) -> str:
    """The first line of ``styx jobs logs``."""
    where = f" on cluster {job.cluster_name}" if job.cluster_name else ""
    return f"Managed job {job.id} ({job.name}){where}: {job.status.value}"


def ending(job: ManagedJobRecord) -> list[str]:
    """The last lines of ``styx jobs logs`` for a job that ended without succeeding: its
    status and why, and the error that stopped it (code, message, hint) when there is one."""
    if not job.status.is_terminal or job.status is ManagedJobStatus.SUCCEEDED:
        return []
    why = f" ({job.termination_reason.value})" if job.termination_reason else ""
    lines = [f"Managed job {job.id} ended {job.status.value}{why}."]
    error = (job.resources or {}).get("error")
    if isinstance(error, Mapping) and error.get("message"):
        lines.append(f"Error [{error.get('code', 'internal')}]: {error['message']}")
        if error.get("hint"):
            lines.append(f"Hint: {error['hint']}")
    elif job.failure_reason:
        lines.append(f"Reason: {job.failure_reason}")
    return lines
