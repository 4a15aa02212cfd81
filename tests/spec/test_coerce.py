"""Tasks built in Python are checked as tasks read from YAML (the SDK's input)."""

from __future__ import annotations

from typing import Any

import pytest

from styx.errors import SpecError
from styx.spec.coerce import checked_dag, checked_task
from styx.spec.dag import Dag
from styx.spec.mounts import Secret
from styx.spec.resources import Resources
from styx.spec.task import Task


def test_a_well_typed_task_is_returned_as_it_is() -> None:
    task = Task.from_yaml_str("run: x\nresources: {cpus: 2+}\nsecrets: {K: v}\nenvs: {A: b}\n")
    assert checked_task(task) is task


def test_mappings_are_parsed_as_their_yaml_would_be() -> None:
    task = Task(
        run="x",
        resources={"cpus": 1, "accelerators": "A100:8"},  # type: ignore[arg-type]
        envs={"A": "b"},  # type: ignore[arg-type]
        secrets={"K": "v", "S": Secret("w")},  # type: ignore[arg-type]
    )
    out = checked_task(task)
    expected = Task.from_yaml_str(
        "run: x\nresources: {cpus: 1, accelerators: A100:8}\nenvs: {A: b}\nsecrets: {K: v, S: w}\n"
    )
    assert out == expected and isinstance(out.resources, Resources)
    assert out.secrets["S"] is not None and out.secrets["S"].reveal() == "w"
    assert checked_task({"run": "x", "num_nodes": 2}) == Task(run="x", num_nodes=2)


@pytest.mark.parametrize(
    ("fields", "code", "path"),
    [
        ({"resources": {"cpus": "lots"}}, "invalid-value", "resources.cpus"),
        ({"resources": ["cpus"]}, "invalid-type", "resources"),
        ({"resources": {"cpu": 1}}, "unknown-key", "resources.cpu"),
        ({"run": 123}, "invalid-type", "run"),
        ({"num_nodes": "two"}, "invalid-type", "num_nodes"),
        ({"num_nodes": True}, "invalid-type", "num_nodes"),
        ({"envs": ["A=b"]}, "invalid-type", "envs"),
    ],
)
def test_wrong_types_are_spec_errors_naming_the_field(
    fields: dict[str, Any], code: str, path: str
) -> None:
    with pytest.raises(SpecError) as info:
        checked_task(Task(**fields))
    assert info.value.code == code
    assert info.value.location is not None and info.value.location.path == path


def test_not_a_task_at_all() -> None:
    with pytest.raises(SpecError, match=r"Expected a styx\.Task, got str"):
        checked_task("run: x")


def test_a_dag_keeps_its_edges_with_its_tasks_checked() -> None:
    dag = Dag("d")
    a = dag.add(Task(name="a", run="x", resources={"cpus": 1}))  # type: ignore[arg-type]
    b = dag.add(Task(name="b", run="y"))
    dag.add_edge(a, b)
    out = checked_dag(dag)
    assert out.edges == dag.edges and isinstance(out.tasks[0].resources, Resources)
    assert out.tasks[1] is b
    good = Dag.from_yaml_str("name: p\n---\nname: a\nrun: x\n---\nname: b\nrun: y\n")
    assert checked_dag(good) is good
    assert checked_dag(Task(run="z")).tasks == (Task(run="z"),)
