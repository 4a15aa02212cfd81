"""The rows of ``styx jobs queue`` as a tree (the rows come from
:func:`styx.state.job_queue.managed_job_queue`)."""

from __future__ import annotations

import time

from styx.state.records import ManagedJobRow


def _duration(row: ManagedJobRow, now: float) -> str:
    if row.started_at is None:
        return "-"
    seconds = int((row.ended_at or now) - row.started_at)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def render(rows: list[ManagedJobRow], runs: dict[int, tuple[str, str]]) -> str:
    """A text table; the tasks of a DAG run are indented under the run, as a tree."""
    now = time.time()
    lines = [f"{'ID':>7}  {'NAME':<28} {'STATUS':<19} {'DURATION':>10} {'RECOVERIES':>10}"]
    children: dict[int, list[ManagedJobRow]] = {}
    for row in rows:
        if row.dag_run_id is not None:
            children.setdefault(row.dag_run_id, []).append(row)
    shown: set[int] = set()
    for row in rows:
        run_id = row.dag_run_id
        if run_id is None:
            lines.append(
                f"{row.id:>7}  {row.name[:28]:<28} {row.status:<19} "
                f"{_duration(row, now):>10} {row.recovery_count:>10}"
            )
            continue
        if run_id in shown:
            continue
        shown.add(run_id)
        name, status = runs.get(run_id, ("?", "?"))
        lines.append(f"{'run ' + str(run_id):>7}  {name[:28]:<28} {status:<19}")
        tasks = children[run_id]
        for i, task in enumerate(tasks):
            branch = "└─ " if i == len(tasks) - 1 else "├─ "
            label = branch + (task.task_name or task.name)
            lines.append(
                f"{task.id:>7}  {label[:28]:<28} {task.status:<19} "
                f"{_duration(task, now):>10} {task.recovery_count:>10}"
            )
    return "\n".join(lines)
