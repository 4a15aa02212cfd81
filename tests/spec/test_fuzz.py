"""Property tests: no input, as YAML text or as data, makes the spec layer raise anything
but its own errors; whatever parses round-trips."""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from styx.errors import ConfigError, NotSupportedError, SpecError
from styx.spec import yamlio
from styx.spec.config import Config
from styx.spec.dag import HEADER_KEYS, Dag
from styx.spec.overrides import Overrides, apply
from styx.spec.resources import KNOWN_KEYS as RESOURCE_KEYS
from styx.spec.resources import Resources
from styx.spec.support import check_launchable, unsupported_features
from styx.spec.task import TASK_KEYS, Task

ALLOWED = (SpecError, ConfigError, NotSupportedError)
FAST = settings(
    max_examples=int(os.environ.get("STYX_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SCHEMA_WORDS = [
    *TASK_KEYS, *RESOURCE_KEYS, *HEADER_KEYS, "source", "mode", "store", "persistent",
    "strategy", "idle_minutes", "down", "readiness_probe", "replicas", "replica_policy",
    "min_replicas", "path", "url", "ref", "kubernetes", "aws", "vpc_name", "db", "jobs",
    "controller", "pod_config", "docker", "run_options", "max_restarts_on_errors",
    "recover_on_exit_codes", "/data", "~/x", "MY_VAR", "A100:8", "default",
]  # fmt: skip
VALUE_WORDS = [
    "A100:8", "A100", "T4:0.5", "H100:1.5", "4+", "0.5", "32GB+", "4x", "-1", "aws",
    "aws/us-east-1/us-east-1a", "k8s/ctx", "*/x", "s3://b/${MY_VAR}", "./local", "/abs",
    "~/h", "8080-8090", "99999", "FAILOVER", "MOUNT", "best", "docker:", "docker:ubuntu",
    "10h", "${MY_VAR}", "$MY_VAR", "a", "", " ", "null", "true", "1e999", "nan",
    "sqlite:///x",
]  # fmt: skip


def near(words: list[str]) -> st.SearchStrategy[str]:
    """Words of the schema, some with a typo, and arbitrary text."""
    typo = st.tuples(st.sampled_from(words), st.integers(0, 12)).map(
        lambda p: p[0][: p[1]] + p[0][p[1] + 1 :]
    )
    return st.one_of(st.sampled_from(words), typo, st.text(max_size=8))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(VALUE_WORDS),
    st.text(max_size=20),
)
data_scalars = st.one_of(scalars, st.binary(max_size=4), st.dates().map(datetime.date.isoformat))
values: st.SearchStrategy[Any] = st.recursive(
    data_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(near(SCHEMA_WORDS), children, max_size=5),
    ),
    max_leaves=25,
)
documents = st.dictionaries(near(SCHEMA_WORDS), values, max_size=8)


def check_task(task: Task) -> None:
    assert Task.from_yaml_str(task.to_yaml()) == task
    assert Task.from_dict(task.to_dict()) == task
    hash(task)
    task.to_display_dict()
    unsupported_features(task)
    for candidate in task.resources.candidates():
        assert len(candidate.accelerators) <= 1


@FAST
@given(st.text(max_size=300))
def test_any_text_gives_a_spec_error_or_a_dag(text: str) -> None:
    try:
        dag = Dag.from_yaml_str(text)
    except ALLOWED:
        return
    assert Dag.from_yaml_str(dag.to_yaml()) == dag


@FAST
@given(st.lists(documents, min_size=1, max_size=4), st.integers(0, 3))
def test_yaml_documents_near_the_schema(docs: list[dict[str, Any]], mangle: int) -> None:
    try:
        text = yamlio.dump_all(docs)
    except Exception:  # the generator made something PyYAML cannot write; not our input
        return
    if mangle == 1:
        text = text.replace(":", "", 1)
    elif mangle == 2:
        text = text.replace("  ", "\t", 1)
    try:
        dag = Dag.from_yaml_str(text, file="fuzz.yaml")
    except ALLOWED as error:
        assert error.message and error.hint
        return
    assert Dag.from_yaml_str(dag.to_yaml()) == dag
    for task in dag.tasks:
        check_task(task)


@FAST
@given(documents)
def test_task_data_near_the_schema(data: dict[str, Any]) -> None:
    try:
        task = Task.from_dict(data)
    except ALLOWED:
        return
    check_task(task)
    with contextlib.suppress(ALLOWED):
        check_launchable(apply(task, Overrides(env=("MY_VAR=v",)), environ={}))


@FAST
@given(st.dictionaries(near(list(RESOURCE_KEYS)), values, max_size=6))
def test_resources_data(data: dict[str, Any]) -> None:
    try:
        resources = Resources.from_dict(data)
    except ALLOWED:
        return
    assert Resources.from_dict(resources.to_dict()) == resources
    hash(resources)
    resources.candidates()


@FAST
@given(
    st.builds(
        Overrides,
        env=st.lists(st.sampled_from(["A=1", "B", "=", "1=1", "MY_VAR=${MY_VAR}"]), max_size=3).map(
            tuple
        ),
        cpus=st.one_of(st.none(), st.sampled_from(VALUE_WORDS)),
        memory=st.one_of(st.none(), st.sampled_from(VALUE_WORDS)),
        gpus=st.one_of(st.none(), st.sampled_from(VALUE_WORDS)),
        infra=st.one_of(st.none(), st.sampled_from(VALUE_WORDS)),
        num_nodes=st.one_of(st.none(), st.integers(), st.sampled_from(VALUE_WORDS)),
        disk_size=st.one_of(st.none(), st.integers(), st.sampled_from(VALUE_WORDS)),
        ports=st.lists(st.sampled_from(VALUE_WORDS), max_size=2).map(tuple),
        use_spot=st.one_of(st.none(), st.booleans()),
    )
)
def test_overrides(overrides: Overrides) -> None:
    task = Task.from_yaml_str("resources: {any_of: [{infra: aws}, {cpus: 2}]}\nrun: x\n")
    try:
        result = apply(task, overrides, environ={"B": "b"})
    except ALLOWED:
        return
    check_task(result)


@FAST
@given(st.dictionaries(near(SCHEMA_WORDS), values, max_size=6))
def test_config_data(data: dict[str, Any]) -> None:
    try:
        config = Config.from_dict(data)
    except ConfigError:
        return
    assert Config.from_dict(config.to_dict()) == config


# -- mostly valid tasks, to exercise round trips on the success path ---------------------------

names = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True)
env_values = st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.none(), st.floats())
accelerators = st.one_of(
    st.sampled_from(["A100:8", "H100", "T4:0.5", "L4:2", "tpu-v4-8"]),
    st.lists(st.sampled_from(["A100:8", "H100:1", "L4:1"]), min_size=1, max_size=3, unique=True),
    st.dictionaries(
        st.sampled_from(["A100", "V100", "L4"]), st.integers(1, 8), min_size=1, max_size=3
    ),
)
resource_fields = st.fixed_dictionaries(
    {},
    optional={
        "infra": st.sampled_from(["aws", "gcp/us-central1", "k8s/ctx", "*/us-east-1", "azure/*/z"]),
        "accelerators": accelerators,
        "cpus": st.one_of(st.integers(1, 64), st.sampled_from(["4+", "0.5", "2"])),
        "memory": st.one_of(st.floats(0.5, 512), st.sampled_from(["16+", "32GB", "4x", "512MB+"])),
        "use_spot": st.booleans(),
        "disk_size": st.one_of(st.integers(1, 4096), st.sampled_from(["256GB", "1TB"])),
        "disk_tier": st.sampled_from(["low", "MEDIUM", "best"]),
        "ports": st.one_of(st.integers(1, 65535), st.lists(st.integers(1, 65535), max_size=3)),
        "labels": st.dictionaries(names, names, max_size=2),
        "autostop": st.one_of(st.booleans(), st.integers(0, 600), st.sampled_from(["1h", "30m"])),
        "priority": st.integers(0, 1000),
        "job_recovery": st.sampled_from(["FAILOVER", {"max_restarts_on_errors": 2}]),
        "image_id": st.sampled_from(["ami-1", "docker:ubuntu", {"us-east-1": "ami-2"}]),
    },
)
valid_tasks = st.fixed_dictionaries(
    {},
    optional={
        "name": names,
        "num_nodes": st.integers(1, 16),
        "workdir": st.sampled_from([".", "~/code", {"url": "https://x/y.git", "ref": "main"}]),
        "envs": st.dictionaries(env_names, env_values, max_size=3),
        "secrets": st.dictionaries(
            env_names, st.one_of(st.text(max_size=8), st.none()), max_size=2
        ),
        "file_mounts": st.dictionaries(
            st.sampled_from(["/data", "~/x", "/m/${A}"]),
            st.sampled_from(
                ["./d", "s3://b/$A", {"name": "bkt", "mode": "COPY"}, {"source": ["a", "b"]}]
            ),
            max_size=3,
        ),
        "resources": resource_fields.flatmap(
            lambda base: st.one_of(
                st.just(base),
                st.fixed_dictionaries(
                    {
                        "any_of": st.lists(
                            resource_fields.map(_single_accelerator), min_size=1, max_size=3
                        )
                    }
                ).map(lambda alt: {**_single_accelerator(base), **alt}),
            )
        ),
        "setup": st.text(max_size=30),
        "run": st.text(max_size=30),
        "service": st.sampled_from([{"readiness_probe": "/"}, {"replicas": 2, "ports": 8080}]),
    },
)


def _single_accelerator(resources: dict[str, Any]) -> dict[str, Any]:
    if isinstance(resources.get("accelerators"), list | dict):
        return {k: v for k, v in resources.items() if k != "accelerators"}
    return resources


@FAST
@given(valid_tasks)
def test_valid_tasks_round_trip(data: dict[str, Any]) -> None:
    try:
        task = Task.from_dict(data)
    except ALLOWED as error:  # a generated text value can still be invalid (an empty name,
        # an env value with a NUL byte)
        assert error.code in {"invalid-value", "invalid-type", "invalid-env-value"}, error
        return
    check_task(task)
    assert Task.from_yaml_str(yamlio.dump(data)) == task
