"""Tasks built in Python, checked as strictly as tasks read from YAML.

``Task`` is a plain frozen dataclass, so ``Task(run="x", resources={"cpus": 1})`` builds
without complaint. The SDK passes what it is given through :func:`checked_task` (and
:func:`checked_dag`) before using it: a task whose fields already have their spec types is
returned as it is; any other is turned back into task data and parsed by the YAML validator,
so a dict for ``resources`` is parsed (and validated) as YAML's ``resources:`` would be, and a
wrong type is a SpecError naming the field (``invalid-type`` at ``run``, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from styx.errors import SpecError
from styx.spec.dag import Dag
from styx.spec.frozen import FrozenDict
from styx.spec.mounts import DataSize, FileMount, GitWorkdir, Secret
from styx.spec.resources import Resources
from styx.spec.task import Task


def checked_task(task: Any) -> Task:
    """``task`` (a Task, or a mapping of task data) as a valid Task; SpecError if it is not."""
    if isinstance(task, Mapping):
        return Task.from_dict(task)
    if not isinstance(task, Task):
        raise SpecError(
            f"Expected a styx.Task, got {type(task).__name__}.",
            "Pass styx.Task(run=..., ...) or a mapping of task fields.",
            code="invalid-type",
        )
    if all(_typed(f.name, getattr(task, f.name)) for f in dataclasses.fields(Task)):
        return task
    data = {
        f.name: _raw(getattr(task, f.name))
        for f in dataclasses.fields(Task)
        if not _is_default(getattr(task, f.name), f.default)
    }
    return Task.from_dict(data)


def _is_default(v: Any, default: Any) -> bool:
    """``v`` is the field's default (``True`` is not ``num_nodes``' 1)."""
    return v is default or (type(v) is type(default) and v == default)


def checked_dag(dag: Any) -> Dag:
    """``dag`` (a Dag, a Task or a mapping of task data) as a Dag of valid tasks."""
    if not isinstance(dag, Dag):
        single = Dag()
        single.add(checked_task(dag))
        return single
    tasks = [checked_task(t) for t in dag.tasks]
    if all(a is b for a, b in zip(tasks, dag.tasks, strict=True)):
        return dag
    new = Dag(
        dag.name,
        on_failure=dag.on_failure,
        execution=dag.execution,
        primary_tasks=dag.primary_tasks,
        termination_delay=dag.termination_delay,
    )
    added = [new.add(t) for t in tasks]
    for a, b in sorted(dag.edges):
        new.add_edge(added[a], added[b])
    return new


def _values(v: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(v, FrozenDict) and all(
        isinstance(k, str) and isinstance(x, kinds) for k, x in v.items()
    )


def _typed(name: str, v: Any) -> bool:
    """Whether field ``name`` holds what the YAML parser would have put there."""
    none = type(None)
    if name == "num_nodes":
        return isinstance(v, int) and not isinstance(v, bool)
    if name == "resources":
        return isinstance(v, Resources)
    if name == "envs":
        return _values(v, (str, none))
    if name == "secrets":
        return _values(v, (Secret, none))
    if name == "file_mounts":
        return _values(v, (FileMount,))
    if name in ("volumes", "config"):
        return isinstance(v, FrozenDict)
    if name == "service":
        return v is None or isinstance(v, FrozenDict)
    if name == "workdir":
        return isinstance(v, str | GitWorkdir | none)
    if name in ("inputs", "outputs"):
        return isinstance(v, DataSize | none)
    return isinstance(v, str | none)  # name, setup, run


def _raw(v: Any) -> Any:
    """A field value back in its YAML form (spec objects written out, containers thawed)."""
    if isinstance(v, Resources):
        return v.to_dict()
    if isinstance(v, Secret):
        return v.reveal()
    if isinstance(v, FileMount | GitWorkdir | DataSize):
        return v.to_yaml()
    if isinstance(v, Mapping):
        return {k: _raw(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_raw(x) for x in v]
    return v
