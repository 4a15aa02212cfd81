"""``Dag``: several tasks and their dependencies, from multi-document YAML or Python.

A file with one YAML document is a one-task DAG. With several documents, a first document
holding only header keys (``name``, ``on_failure``, ``execution``, ``primary_tasks``,
``termination_delay``) is the header. Without ``depends_on`` anywhere the tasks form a
serial pipeline, each depending on the one before, as SkyPilot's pipelines run; with
``depends_on`` on any task it is a DAG, and unknown names, duplicate names and cycles are
rejected (a cycle is named: ``a -> b -> a``). ``execution: parallel`` (SkyPilot's job
groups) runs all tasks at once, with no edges.

In Python::

    with Dag(name="train") as dag:
        prep >> [train_a, train_b]
        [train_a, train_b] >> evaluate
"""

from __future__ import annotations

import contextvars
import heapq
import os
from collections.abc import Iterator
from typing import Any

from styx.errors import SpecError, UsageError
from styx.spec import yamlio
from styx.spec.frozen import FrozenDict, thaw
from styx.spec.task import Task, read_source

HEADER_KEYS = ("name", "on_failure", "execution", "primary_tasks", "termination_delay")
ON_FAILURE = ("cancel_dependents", "stop_all")
EXECUTION = ("serial", "parallel")
_stack: contextvars.ContextVar[tuple[Dag, ...]] = contextvars.ContextVar("styx_dag", default=())


def current_dag() -> Dag:
    """The innermost ``with Dag():`` block; ``a >> b`` outside one is a usage error."""
    stack = _stack.get()
    if not stack:
        raise UsageError(
            "'a >> b' was used outside a 'with Dag() as dag:' block.",
            "Build the graph inside 'with Dag() as dag:', or call dag.add_edge(a, b).",
        )
    return stack[-1]


class Dag:
    """Tasks (in order) and dependency edges between them; compared by value."""

    __slots__ = (
        "_edges", "_ids", "_out", "_tasks", "_tokens", "execution", "name", "on_failure", "primary_tasks",
        "termination_delay",
    )  # fmt: skip

    def __init__(
        self,
        name: str | None = None,
        *,
        on_failure: str = "cancel_dependents",
        execution: str = "serial",
        primary_tasks: tuple[str, ...] = (),
        termination_delay: str | FrozenDict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.on_failure = on_failure
        self.execution = execution
        self.primary_tasks = primary_tasks
        self.termination_delay = termination_delay
        self._tasks: list[Task] = []
        self._ids: dict[int, int] = {}  # id(task) -> index; tasks are nodes by identity
        self._edges: set[tuple[int, int]] = set()
        self._out: dict[int, list[int]] = {}  # index -> downstream indices, for fast walks
        self._tokens: list[contextvars.Token[tuple[Dag, ...]]] = []

    # -- building -----------------------------------------------------------------------------

    def __enter__(self) -> Dag:
        self._tokens.append(_stack.set((*_stack.get(), self)))
        return self

    def __exit__(self, *_: object) -> None:
        _stack.reset(self._tokens.pop())

    def _index(self, task: Task) -> int | None:
        return self._ids.get(id(task))

    def add(self, task: Task) -> Task:
        """Add ``task`` (once; tasks are told apart by identity) and return it."""
        if not isinstance(task, Task):
            raise TypeError(f"Dag.add expects a Task, got {type(task).__name__}")
        if self._index(task) is None:
            self._ids[id(task)] = len(self._tasks)
            self._tasks.append(task)
        return task

    def add_edge(self, upstream: Task, downstream: Task) -> None:
        """``downstream`` runs after ``upstream``; both are added if needed. A cycle raises
        SpecError ``dag-cycle``."""
        a, b = self._index(self.add(upstream)), self._index(self.add(downstream))
        assert a is not None and b is not None
        if a == b or self._reaches(b, a):
            path = [a, *(self._path(b, a) or [])] if a != b else [a, a]
            raise SpecError(
                f"Adding this dependency makes a cycle: {self._cycle_text(path)}.",
                "Remove one of the dependencies in the cycle.",
                code="dag-cycle",
                details={"cycle": [self._label(i) for i in path]},
            )
        if (a, b) not in self._edges:
            self._edges.add((a, b))
            self._out.setdefault(a, []).append(b)

    # -- queries ------------------------------------------------------------------------------

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The tasks in file (or insertion) order; edges index into this tuple."""
        return tuple(self._tasks)

    @property
    def edges(self) -> frozenset[tuple[int, int]]:
        """Dependencies as ``(upstream index, downstream index)`` pairs into :attr:`tasks`."""
        return frozenset(self._edges)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.topological_order())

    def upstream(self, task: Task) -> list[Task]:
        """The tasks ``task`` depends on directly."""
        index = self._index(task)
        return [self._tasks[a] for a, b in sorted(self._edges) if b == index]

    def downstream(self, task: Task) -> list[Task]:
        """The tasks that depend directly on ``task``."""
        index = self._index(task)
        return [self._tasks[b] for a, b in sorted(self._edges) if a == index]

    @property
    def is_chain(self) -> bool:
        """True when each task depends exactly on the one before it (a serial pipeline)."""
        return self._edges == {(i, i + 1) for i in range(len(self._tasks) - 1)}

    def topological_order(self) -> list[Task]:
        """Tasks so that every task comes after those it depends on; ties keep file order."""
        indegree = [0] * len(self._tasks)
        for _, b in self._edges:
            indegree[b] += 1
        ready = [i for i, d in enumerate(indegree) if d == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for b in self._out.get(i, ()):
                indegree[b] -= 1
                if indegree[b] == 0:
                    heapq.heappush(ready, b)
        return [self._tasks[i] for i in order]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dag):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable while being built

    def _key(self) -> tuple[Any, ...]:
        return (
            self.name, self.on_failure, self.execution, self.primary_tasks,
            self.termination_delay, tuple(self._tasks), frozenset(self._edges),
        )  # fmt: skip

    def __reduce__(self) -> tuple[Any, ...]:
        # Identity maps and context tokens do not survive pickling or deepcopy; rebuild.
        header = (self.name, self.on_failure, self.execution, self.primary_tasks)
        state = (*header, self.termination_delay, tuple(self._tasks), tuple(sorted(self._edges)))
        return (_rebuild, state)

    def __repr__(self) -> str:
        names = [t.name or f"<task {i}>" for i, t in enumerate(self._tasks)]
        return f"Dag(name={self.name!r}, tasks={names}, edges={sorted(self._edges)})"

    # -- cycles -------------------------------------------------------------------------------

    def _reaches(self, start: int, goal: int) -> bool:
        return self._path(start, goal) is not None

    def _path(self, start: int, goal: int) -> list[int] | None:
        """A path of indices from ``start`` to ``goal`` along edges (inclusive), or None."""
        parents: dict[int, int] = {start: start}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            if node == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return path[::-1]
            for b in self._out.get(node, ()):
                if b not in parents:
                    parents[b] = node
                    frontier.append(b)
        return None

    def _label(self, index: int) -> str:
        return self._tasks[index].name or f"<task {index}>"

    def _cycle_text(self, path: list[int]) -> str:
        return " -> ".join(self._label(i) for i in path)

    # -- YAML ---------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str]) -> Dag:
        """Read a task, pipeline or DAG from a YAML file path or YAML text."""
        text, file = read_source(source)
        return cls.from_yaml_str(text, file=file)

    @classmethod
    def from_yaml_str(cls, text: str, *, file: str | None = None) -> Dag:
        """Read a Dag from YAML text; ``file`` is only used in error locations."""
        from styx.spec.dag_yaml import load_dag

        return load_dag(text, file)

    def to_documents(self) -> list[dict[str, Any]]:
        """The YAML documents: a header (unless one plain task), then one per task, with
        ``depends_on`` written out unless the tasks form a serial chain."""
        if not self._tasks:
            raise SpecError(
                "The DAG has no tasks to write.", "Add a task first.", code="empty-file"
            )
        header: dict[str, Any] = {"name": self.name} if self.name is not None else {}
        if self.on_failure != ON_FAILURE[0]:
            header["on_failure"] = self.on_failure
        if self.execution != EXECUTION[0]:
            header["execution"] = self.execution
        if self.primary_tasks:
            header["primary_tasks"] = list(self.primary_tasks)
        if self.termination_delay is not None:
            header["termination_delay"] = thaw(self.termination_delay)
        documents = [t.to_dict() for t in self._tasks]
        if len(self._tasks) == 1 and header.keys() <= {"name"} and self.name == self._tasks[0].name:
            return documents
        if self.execution == "serial" and not self.is_chain:
            for index, document in enumerate(documents):
                document["depends_on"] = [
                    self._dependency_name(a) for a, b in sorted(self._edges) if b == index
                ]
        return [header or {"on_failure": self.on_failure}, *documents]

    def _dependency_name(self, index: int) -> str:
        name = self._tasks[index].name
        if name is None:
            raise SpecError(
                f"Task {index} has dependents but no name, so depends_on cannot refer to it.",
                "Give every task that others depend on a name.",
                code="missing-field",
            )
        return name

    def to_yaml(self) -> str:
        """Canonical multi-document YAML; ``Dag.from_yaml(d.to_yaml()) == d``."""
        return yamlio.dump_all(self.to_documents())

    def to_display_documents(self) -> list[dict[str, Any]]:
        """Like :meth:`to_documents` with secret values redacted."""
        documents = self.to_documents()
        offset = len(documents) - len(self._tasks)
        for index, task in enumerate(self._tasks):
            display = task.to_display_dict()
            if "secrets" in display:
                documents[offset + index]["secrets"] = display["secrets"]
        return documents


def _rebuild(
    name: str | None,
    on_failure: str,
    execution: str,
    primary_tasks: tuple[str, ...],
    termination_delay: str | FrozenDict[str, str] | None,
    tasks: tuple[Task, ...],
    edges: tuple[tuple[int, int], ...],
) -> Dag:
    dag = Dag(
        name,
        on_failure=on_failure,
        execution=execution,
        primary_tasks=primary_tasks,
        termination_delay=termination_delay,
    )
    for task in tasks:
        dag.add(task)
    for a, b in edges:
        dag.add_edge(tasks[a], tasks[b])
    return dag
