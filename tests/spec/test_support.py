from __future__ import annotations

import pytest

from styx.errors import NotSupportedError, SpecError
from styx.spec.dag import Dag
from styx.spec.support import check_launchable, unsupported_dag_features, unsupported_features
from styx.spec.task import Task


def test_plain_local_task_is_launchable() -> None:
    t = Task.from_yaml_str("file_mounts: {/a: ./a, ~/b: /tmp/b}\nworkdir: .\nrun: x\n")
    assert unsupported_features(t) == []
    check_launchable(t)


def test_unsupported_fields_are_listed_with_paths() -> None:
    t = Task.from_yaml_str(
        """
workdir: {url: https://x/y.git}
file_mounts:
  /bucket: gs://b
  /named: {name: my-bucket}
  /vol: {store: volume, name: v}
  /copy: {source: ./x, mode: COPY}
volumes: {/v: v}
service: {readiness_probe: /}
resources:
  any_of:
    - image_id: docker:ubuntu
"""
    )
    assert unsupported_features(t) == [
        ("file_mounts['/vol']", "volume mounts in file_mounts"),
        ("volumes", "volumes"),
    ]  # a service: section launches (as a plain task, or with `styx serve up`)
    with pytest.raises(NotSupportedError) as info:
        check_launchable(t)
    assert info.value.code == "not-supported"
    assert len(info.value.details["features"]) == 2


def test_dag_features_use_document_paths() -> None:
    dag = Dag.from_yaml_str(
        "name: g\nexecution: parallel\n---\nrun: a\n---\nservice: {replicas: 1}\n"
    )
    assert unsupported_dag_features(dag) == [("execution", "job groups (execution: parallel)")]
    with pytest.raises(NotSupportedError):
        check_launchable(dag)


def test_missing_values_block_launch() -> None:
    with pytest.raises(SpecError) as info:
        check_launchable(Task.from_yaml_str("secrets: {TOKEN: null}\n"))
    assert info.value.code == "missing-value"
    assert "--secret TOKEN=VALUE" in info.value.hint
