from __future__ import annotations

import pytest

from styx.errors import SpecError, UsageError
from styx.spec.dag import Dag
from styx.spec.task import Task

DIAMOND = """\
name: diamond
---
name: a
run: echo a
---
name: b
depends_on: a
---
name: c
depends_on: [a]
---
name: d
depends_on: [b, c]
"""


def names(tasks: object) -> list[str | None]:
    return [t.name for t in tasks]  # type: ignore[attr-defined]


def test_single_document_is_a_one_task_dag() -> None:
    dag = Dag.from_yaml_str("name: solo\nrun: echo\n")
    assert dag.name == "solo" and dag.tasks == (Task(name="solo", run="echo"),)
    assert dag.to_yaml() == "name: solo\nrun: echo\n"


def test_pipeline_without_depends_on_is_a_chain() -> None:
    dag = Dag.from_yaml_str("name: p\n---\nname: x\n---\nname: y\n---\nrun: z\n")
    assert dag.name == "p" and len(dag) == 3
    assert dag.edges == {(0, 1), (1, 2)} and dag.is_chain
    assert "depends_on" not in dag.to_yaml()


def test_pipeline_without_header() -> None:
    dag = Dag.from_yaml_str("run: a\n---\nrun: b\n")
    assert dag.name is None and dag.edges == {(0, 1)}
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


def test_diamond() -> None:
    dag = Dag.from_yaml_str(DIAMOND)
    assert dag.edges == {(0, 1), (0, 2), (1, 3), (2, 3)}
    assert names(dag.topological_order()) == ["a", "b", "c", "d"]
    assert names(dag.upstream(dag.tasks[3])) == ["b", "c"]
    assert names(dag.downstream(dag.tasks[0])) == ["b", "c"]
    assert not dag.is_chain
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


def test_topological_order_follows_edges_not_file_order() -> None:
    dag = Dag.from_yaml_str(
        "---\nname: late\ndepends_on: early\n---\nname: early\ndepends_on: []\n"
    )
    assert names(dag.topological_order()) == ["early", "late"]
    assert names(dag) == ["early", "late"]


def test_independent_tasks_round_trip_as_a_dag() -> None:
    dag = Dag.from_yaml_str("---\nname: a\ndepends_on: []\n---\nname: b\ndepends_on: []\n")
    assert dag.edges == frozenset()
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


def test_header_fields() -> None:
    dag = Dag.from_yaml_str(
        "name: g\nexecution: parallel\non_failure: stop_all\nprimary_tasks: [a]\n"
        "termination_delay: {default: 30s, b: 1m}\n---\nname: a\n---\nname: b\n"
    )
    assert (dag.execution, dag.on_failure, dag.primary_tasks) == ("parallel", "stop_all", ("a",))
    assert dag.termination_delay == {"default": "30s", "b": "1m"}
    assert dag.edges == frozenset()
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


@pytest.mark.parametrize(
    ("text", "code", "path"),
    [
        (
            "name: g\nprimary_tasks: [zz]\n---\nname: a\n---\nname: b\n",
            "unknown-dependency",
            "[0].primary_tasks[0]",
        ),
        (
            "name: g\ntermination_delay: {zz: 1m}\n---\nname: a\n---\nname: b\n",
            "unknown-dependency",
            "[0].termination_delay.zz",
        ),
        (
            "name: g\ntermination_delay: soon\n---\nname: a\n---\nname: b\n",
            "invalid-value",
            "[0].termination_delay",
        ),
        (
            "name: g\nexecution: sideways\n---\nname: a\n---\nname: b\n",
            "invalid-value",
            "[0].execution",
        ),
        ("---\nname: a\ndepends_on: {x: 1}\n---\nname: b\n", "invalid-type", "[0].depends_on"),
        ("name: p\n---\nname: a\n---\nname: a\n", "duplicate-task", "[2].name"),
    ],
)
def test_invalid_dags(text: str, code: str, path: str) -> None:
    with pytest.raises(SpecError) as info:
        Dag.from_yaml_str(text)
    assert (info.value.code, info.value.location and info.value.location.path) == (code, path)


def test_cycle_is_named() -> None:
    with pytest.raises(SpecError) as info:
        Dag.from_yaml_str("---\nname: a\ndepends_on: b\n---\nname: b\ndepends_on: a\n")
    assert info.value.code == "dag-cycle"
    assert "a -> b -> a" in info.value.message
    assert info.value.details["cycle"] == ["a", "b", "a"]


def test_rshift_builds_edges_in_a_context() -> None:
    a, b, c, d = (Task(name=n, run=n) for n in "abcd")
    with Dag(name="built") as dag:
        a >> [b, c]
        [b, c] >> d
    assert dag.edges == {(0, 1), (0, 2), (1, 3), (2, 3)}
    assert Dag.from_yaml_str(DIAMOND.replace("depends_on", "depends_on")) != dag  # run differs
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


def test_rshift_chains() -> None:
    a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
    with Dag() as dag:
        a >> b >> c
    assert dag.is_chain and names(dag.tasks) == ["a", "b", "c"]
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


def test_nested_contexts_use_the_innermost() -> None:
    a, b = Task(name="a"), Task(name="b")
    with Dag() as outer:
        with Dag() as inner:
            a >> b
        assert len(outer) == 0 and len(inner) == 2


def test_rshift_outside_a_dag_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        Task(name="a") >> Task(name="b")


def test_add_edge_refuses_cycles() -> None:
    a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
    dag = Dag()
    dag.add_edge(a, b)
    dag.add_edge(b, c)
    with pytest.raises(SpecError) as info:
        dag.add_edge(c, a)
    assert info.value.code == "dag-cycle" and "c -> a -> b -> c" in info.value.message
    with pytest.raises(SpecError):
        dag.add_edge(a, a)
    assert dag.edges == {(0, 1), (1, 2)}


def test_equal_tasks_are_distinct_nodes() -> None:
    one, two = Task(run="x"), Task(run="x")
    dag = Dag()
    dag.add_edge(one, two)
    assert len(dag) == 2
    assert "<task 0>" in repr(dag)


def test_unnamed_dependencies_cannot_be_written() -> None:
    dag = Dag()
    up, down_a, down_b = Task(run="u"), Task(name="a"), Task(name="b")
    dag.add_edge(up, down_a)
    dag.add(down_b)
    with pytest.raises(SpecError) as info:
        dag.to_yaml()
    assert info.value.code == "missing-field"


def test_single_task_dag_with_other_name_keeps_a_header() -> None:
    dag = Dag(name="outer")
    dag.add(Task(name="inner", run="x"))
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


def test_empty_dag_cannot_be_written() -> None:
    with pytest.raises(SpecError):
        Dag().to_yaml()


def test_pickle_and_deepcopy_rebuild_the_graph() -> None:
    import copy
    import pickle

    dag = Dag.from_yaml_str(DIAMOND)
    for clone in (pickle.loads(pickle.dumps(dag)), copy.deepcopy(dag)):
        assert clone == dag
        assert names(clone.upstream(clone.tasks[3])) == ["b", "c"]


def test_display_documents_redact_secrets() -> None:
    dag = Dag.from_yaml_str("name: p\n---\nsecrets: {K: v4lue}\nrun: a\n---\nrun: b\n")
    assert "v4lue" not in str(dag.to_display_documents())
    assert "v4lue" in dag.to_yaml()
