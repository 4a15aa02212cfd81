"""DAG runs: the dependency bookkeeping a controller keeps for each run it drives.

A run's spec (stored with the run) holds its task names, its edges as ``[upstream,
downstream]`` index pairs and ``on_failure``. A task is ready when every upstream task
SUCCEEDED. When a task ends otherwise, ``cancel_dependents`` cancels every task downstream
of it (other branches go on); ``stop_all`` cancels every task of the run not yet ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from styx.state.records import DagRunRecord, DagRunStatus, ManagedJobRecord, ManagedJobStatus

S = ManagedJobStatus


def dag_spec(
    names: Sequence[str | None], edges: Sequence[tuple[int, int]], on_failure: str
) -> dict[str, Any]:
    """The JSON spec stored with a DAG run."""
    return {
        "tasks": list(names),
        "edges": [list(e) for e in sorted(edges)],
        "on_failure": on_failure,
    }


@dataclasses.dataclass(slots=True)
class RunState:
    """One DAG run as the controller sees it: task statuses by index, and the edges."""

    run_id: int
    status: DagRunStatus
    names: list[str | None]
    upstream: dict[int, list[int]]
    downstream: dict[int, list[int]]
    on_failure: str
    job_ids: dict[int, int]
    statuses: dict[int, ManagedJobStatus]
    started: set[int] = dataclasses.field(default_factory=set)

    @classmethod
    def from_records(cls, run: DagRunRecord, jobs: Sequence[ManagedJobRecord]) -> RunState:
        """Rebuild from the database (after a controller restart too)."""
        edges = [tuple(e) for e in run.spec.get("edges", [])]
        up: dict[int, list[int]] = {}
        down: dict[int, list[int]] = {}
        for a, b in edges:
            up.setdefault(b, []).append(a)
            down.setdefault(a, []).append(b)
        return cls(
            run.id, run.status, list(run.spec.get("tasks", [])), up, down,
            run.spec.get("on_failure") or run.on_failure,
            {j.task_index: j.id for j in jobs}, {j.task_index: j.status for j in jobs},
            {j.task_index for j in jobs if j.status != S.PENDING},
        )  # fmt: skip

    def label(self, index: int) -> str:
        """The task's name, or its index."""
        name = self.names[index] if index < len(self.names) else None
        return name or f"task {index}"

    def ready(self, index: int) -> bool:
        """True when every task ``index`` depends on has SUCCEEDED."""
        return all(self.statuses.get(a) == S.SUCCEEDED for a in self.upstream.get(index, ()))

    def pending(self) -> set[int]:
        """Tasks still PENDING."""
        return {i for i, s in self.statuses.items() if s == S.PENDING}

    def newly_ready(self) -> list[int]:
        """PENDING tasks whose dependencies have all succeeded (each returned once)."""
        out = [i for i in sorted(self.pending() - self.started) if self.ready(i)]
        self.started.update(out)
        return out

    def to_cancel_after_failure(self, index: int) -> list[int]:
        """Tasks to cancel because ``index`` did not succeed, per ``on_failure``."""
        if self.on_failure == "stop_all":
            return [i for i, s in sorted(self.statuses.items()) if not s.is_terminal and i != index]
        seen: set[int] = set()
        frontier = list(self.downstream.get(index, ()))
        while frontier:
            i = frontier.pop()
            if i not in seen:
                seen.add(i)
                frontier.extend(self.downstream.get(i, ()))
        return sorted(i for i in seen if not self.statuses[i].is_terminal)

    def done(self) -> bool:
        """True when every task has ended."""
        return all(s.is_terminal for s in self.statuses.values())

    def final_status(self) -> DagRunStatus:
        """SUCCEEDED when every task did; CANCELLED when cancelled; FAILED otherwise."""
        values = set(self.statuses.values())
        if values == {S.SUCCEEDED}:
            return DagRunStatus.SUCCEEDED
        if values <= {S.SUCCEEDED, S.CANCELLED}:
            return DagRunStatus.CANCELLED
        return DagRunStatus.FAILED
