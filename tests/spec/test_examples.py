"""Every example validates, round-trips, and starts with a one-line comment saying what it
shows; together they cover every field of the task dialect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from styx.spec.dag import Dag
from styx.spec.task import Task

EXAMPLES = Path(__file__).parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_enough_examples() -> None:
    assert len(FILES) >= 16


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_validates_and_round_trips(path: Path) -> None:
    first, second = path.read_text().splitlines()[:2]
    assert first.startswith("# Shows: ") and first.endswith(".")
    assert not second.startswith("#")
    dag = Dag.from_yaml(path)
    assert Dag.from_yaml_str(dag.to_yaml()) == dag
    for task in dag.tasks:
        assert Task.from_yaml_str(task.to_yaml()) == task
        assert task.substitute_env_vars() is not None


def test_hello_is_the_local_quickstart() -> None:
    task = Task.from_yaml(EXAMPLES / "hello.yaml")
    assert task.num_nodes == 1 and task.setup and task.run
    assert task.run.strip() == 'echo "hello from $STYX_NODE_RANK"'
    assert task.resources.cpus is not None and task.resources.cpus.count <= 1
    assert not task.resources.accelerators and task.resources.infra is None
    assert not task.file_mounts and task.workdir is None


def _keys(data: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            keys.add(prefix + key)
            if key in ("resources", "autostop", "job_recovery", "service"):
                keys |= _keys(value, prefix + key + ".")
    elif isinstance(data, list):
        for item in data:
            keys |= _keys(item, prefix)
    return keys


def test_examples_cover_the_dialect() -> None:
    from styx.spec.yamlio import load_documents

    seen: set[str] = set()
    for path in FILES:
        for doc in load_documents(path.read_text()):
            seen |= _keys(doc.data)
    wanted = {
        "name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup",
        "run", "config", "service", "volumes", "depends_on", "inputs", "outputs", "on_failure",
        "execution", "primary_tasks", "termination_delay",
    }  # fmt: skip
    wanted |= {
        f"resources.{k}"
        for k in (
            "infra", "cloud", "region", "zone", "cpus", "memory", "accelerators",
            "accelerator_args", "instance_type", "use_spot", "job_recovery", "spot_recovery",
            "disk_size", "disk_tier", "network_tier", "ports", "labels", "image_id", "autostop",
            "priority", "max_hourly_cost", "any_of", "ordered",
        )
    }  # fmt: skip
    assert wanted <= seen, sorted(wanted - seen)
