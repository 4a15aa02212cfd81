"""Reading a :class:`~styx.spec.dag.Dag` from multi-document YAML (see that module)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import NoReturn

from styx.errors import SpecError
from styx.spec.check import Value, root, suggest
from styx.spec.dag import EXECUTION, HEADER_KEYS, ON_FAILURE, Dag
from styx.spec.frozen import FrozenDict
from styx.spec.task import (
    TASK_KEYS,
    Task,
    empty_file,
    parse_depends_on,
    parse_task,
    reject_dependencies,
)
from styx.spec.task import _name as parse_name
from styx.spec.yamlio import Document, load_documents

_DURATION = re.compile(r"\s*\d+\s*[smhdw]?\s*")
_HEADER_ONLY = frozenset(HEADER_KEYS) - {"name"}


def _is_header(data: object) -> bool:
    """A first document of header keys only; a document of header keys plus misspelt keys
    closer to header keys than to task keys also counts, so the typo is reported well."""
    if not isinstance(data, dict) or not data:
        return False
    keys = set(data)
    if keys <= set(HEADER_KEYS):
        return True
    others = keys - set(TASK_KEYS) - set(HEADER_KEYS)
    if keys & (set(TASK_KEYS) - {"name"}) or not others:
        return False
    return all(suggest(k, (*HEADER_KEYS, *TASK_KEYS)) in _HEADER_ONLY for k in others)


def _duration(v: Value) -> str:
    text = str(v.raw) if isinstance(v.raw, int) and not isinstance(v.raw, bool) else v.string()
    if not _DURATION.fullmatch(text):
        v.bad_value(
            f"'{v.name}' is not a duration, {v.what()}.", "Write seconds, or '30s', '5m', '1h'."
        )
    return text.strip()


def _header(v: Value, dag: Dag) -> None:
    f = v.fields(HEADER_KEYS, what="the header document")
    if "name" in f:
        dag.name = parse_name(f["name"])
    if "on_failure" in f:
        dag.on_failure = f["on_failure"].choice(ON_FAILURE)
    if "execution" in f:
        dag.execution = f["execution"].choice(EXECUTION)
    if "primary_tasks" in f:
        item = f["primary_tasks"]
        dag.primary_tasks = tuple(i.string().strip() for i in item.items())
    if "termination_delay" in f:
        item = f["termination_delay"]
        if isinstance(item.raw, dict):
            delays = {k: _duration(x) for k, x in item.entries().items()}
            dag.termination_delay = FrozenDict(delays)
        else:
            dag.termination_delay = _duration(item)


def _check_names(values: Sequence[Value], tasks: Sequence[Task]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, (value, task) in enumerate(zip(values, tasks, strict=True)):
        if task.name is None:
            continue
        if task.name in index:
            value.child("name", task.name).fail(
                "duplicate-task",
                f"Two tasks are named '{task.name}'.",
                "Give every task in the file a different name.",
            )
        index[task.name] = position
    return index


def _unknown(value: Value, name: str, names: dict[str, int], what: str) -> NoReturn:
    guess = suggest(name, names)
    value.fail(
        "unknown-dependency",
        f"'{value.name}' names the task '{name}', which is not in the file.",
        f"Did you mean '{guess}'?" if guess else f"{what} must name tasks defined in the file.",
        {"known": sorted(names)},
    )


def _add_edges(dag: Dag, deps: Sequence[Value | None], names: dict[str, int]) -> None:
    tasks = dag.tasks
    for position, value in enumerate(deps):
        if value is None:
            continue
        for name, item in parse_depends_on(value):
            if name not in names:
                _unknown(item, name, names, "depends_on")
            upstream = names[name]
            if (upstream, position) in dag.edges:
                continue
            try:
                dag.add_edge(tasks[upstream], tasks[position])
            except SpecError as exc:
                cycle = exc.details.get("cycle", [])
                value.fail(
                    "dag-cycle",
                    f"The dependencies form a cycle: {' -> '.join(cycle)}.",
                    "Remove one of the depends_on entries in the cycle.",
                    {"cycle": cycle},
                )


def load_dag(text: str, file: str | None) -> Dag:
    """Parse YAML text into a Dag; errors carry file, line and ``[n].field`` paths."""
    every = load_documents(text, file=file)
    documents = [(i, d) for i, d in enumerate(every) if d.data is not None]
    if not documents:
        raise empty_file(file)

    def value(index: int, doc: Document) -> Value:
        prefix = (index,) if len(every) > 1 else ()
        return root(doc.data, file=file, positions=doc.positions, prefix=prefix)

    dag = Dag()
    header: Value | None = None
    if len(documents) > 1 and _is_header(documents[0][1].data):
        header = value(*documents[0])
        _header(header, dag)
        documents = documents[1:]
    values = [value(i, d) for i, d in documents]
    parsed = [parse_task(v) for v in values]
    tasks = [t for t, _ in parsed]
    deps = [d for _, d in parsed]
    names = _check_names(values, tasks)
    for task in tasks:
        dag.add(task)
    if header is None and len(tasks) == 1:
        dag.name = tasks[0].name
    if len(tasks) == 1:
        reject_dependencies(deps[0])
    elif any(d is not None for d in deps):
        if dag.execution == "parallel":
            first = next(d for d in deps if d is not None)
            first.fail(
                "conflicting-fields",
                f"'{first.name}' cannot be used with 'execution: parallel'.",
                "Remove depends_on, or use serial execution to express dependencies.",
            )
        _add_edges(dag, deps, names)
    elif dag.execution == "serial":
        for upstream, downstream in itertools.pairwise(tasks):
            dag.add_edge(upstream, downstream)
    if header is not None:
        _check_header_names(header, dag, names)
    return dag


def _check_header_names(header: Value, dag: Dag, names: dict[str, int]) -> None:
    fields = header.entries()
    for position, name in enumerate(dag.primary_tasks):
        _known(fields["primary_tasks"].child(position, name), name, names, "primary_tasks")
    if isinstance(dag.termination_delay, dict):
        delays = fields["termination_delay"]
        for name in dag.termination_delay:
            if name != "default":
                _known(delays.child(name, name), name, names, "termination_delay")


def _known(value: Value, name: str, names: dict[str, int], what: str) -> None:
    if name not in names:
        _unknown(value, name, names, what)
