from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from styx.errors import SpecError
from styx.spec.mounts import FileMount, GitWorkdir, Secret
from styx.spec.task import Task

FULL = """\
name: full
workdir: ~/code
num_nodes: 2
resources:
  infra: aws/us-east-1
  accelerators: A100:8
envs:
  MODEL: llama
  BATCH: 32
  FP16: true
  LATER: null
secrets:
  HF_TOKEN: hf_abc123secret
  LATER_SECRET: null
file_mounts:
  /data: ./data
  /bucket: s3://bucket/path
  /ckpt:
    name: ckpt-bucket
    source: [./a, ./b]
    store: S3
    mode: mount_cached
    persistent: false
    config:
      mount_cached:
        transfers: 8
volumes:
  /mnt/vol: my-volume
setup: pip install -r requirements.txt
run: |
  python train.py
config:
  kubernetes:
    provision_timeout: 600
service:
  readiness_probe: /health
  replicas: 2
inputs:
  s3://bucket/in: 10
outputs:
  s3://bucket/out: 2.5
"""


def test_full_task_parses() -> None:
    t = Task.from_yaml_str(FULL)
    assert t.name == "full" and t.workdir == "~/code" and t.num_nodes == 2
    assert t.envs == {"MODEL": "llama", "BATCH": "32", "FP16": "True", "LATER": None}
    assert t.secrets["HF_TOKEN"] == Secret("hf_abc123secret")
    assert t.file_mounts["/data"] == FileMount("./data") and t.file_mounts["/data"].is_local
    assert not t.file_mounts["/bucket"].is_local
    ckpt = t.file_mounts["/ckpt"]
    assert (ckpt.source, ckpt.store, ckpt.mode, ckpt.persistent) == (
        ("./a", "./b"),
        "s3",
        "MOUNT_CACHED",
        False,
    )
    assert t.volumes == {"/mnt/vol": "my-volume"}
    assert t.config == {"kubernetes": {"provision_timeout": 600}}
    assert t.service == {"readiness_probe": "/health", "replicas": 2}
    assert t.inputs is not None and (t.inputs.path, t.inputs.size_gb) == ("s3://bucket/in", 10)
    assert t.missing_values() == ["envs.LATER", "secrets.LATER_SECRET"]


def test_round_trip_and_hash() -> None:
    t = Task.from_yaml_str(FULL)
    assert Task.from_yaml_str(t.to_yaml()) == t
    assert Task.from_dict(t.to_dict()) == t
    assert hash(t) == hash(Task.from_yaml_str(t.to_yaml()))
    assert pickle.loads(pickle.dumps(t)) == t
    assert copy.deepcopy(t) == t


def test_to_dict_is_minimal() -> None:
    assert Task().to_dict() == {}
    assert Task.from_yaml_str(
        "run: echo hi\nnum_nodes: 1\nresources: {}\nenvs: {}\n"
    ).to_dict() == {"run": "echo hi"}


def test_null_sections_count_as_absent() -> None:
    assert Task.from_yaml_str("run: x\nresources:\nenvs:\nfile_mounts:\n") == Task(run="x")


def test_secrets_are_redacted_everywhere_but_to_dict() -> None:
    t = Task.from_yaml_str(FULL)
    token = "hf_abc123secret"
    assert token not in repr(t) and token not in str(t)
    assert repr(t.secrets["HF_TOKEN"]) == str(t.secrets["HF_TOKEN"]) == "<redacted>"
    assert f"{t.secrets['HF_TOKEN']}" == "<redacted>"
    display = t.to_display_dict()
    assert display["secrets"] == {"HF_TOKEN": "<redacted>", "LATER_SECRET": None}
    assert token not in str(display)
    assert t.to_dict()["secrets"]["HF_TOKEN"] == token
    assert token in t.to_yaml()


def test_secret_errors_do_not_show_the_value() -> None:
    with pytest.raises(SpecError) as info:
        Task.from_yaml_str("secrets:\n  '1BAD': hunter2\n")
    assert "hunter2" not in str(info.value.to_dict())


def test_git_workdir() -> None:
    t = Task.from_yaml_str("workdir:\n  url: https://github.com/x/y.git\n  ref: main\n")
    assert t.workdir == GitWorkdir("https://github.com/x/y.git", "main")
    assert Task.from_yaml_str(t.to_yaml()) == t


def test_from_yaml_reads_paths_and_text(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nrun: echo\n")
    assert Task.from_yaml(path) == Task.from_yaml(str(path)) == Task(name="t", run="echo")
    assert Task.from_yaml("run: echo") == Task(run="echo")
    with pytest.raises(SpecError) as info:
        Task.from_yaml(str(tmp_path / "missing.yaml"))
    assert info.value.code == "file-not-found"


def test_several_tasks_need_a_dag() -> None:
    with pytest.raises(SpecError) as info:
        Task.from_yaml_str("name: a\n---\nname: b\n---\nname: c\n")
    assert info.value.code == "multiple-tasks"
    assert "Dag.from_yaml" in info.value.hint and "styx jobs launch" in info.value.hint


def test_a_trailing_empty_document_is_fine() -> None:
    assert Task.from_yaml_str("run: x\n---\n") == Task(run="x")


def test_error_location_has_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nresources:\n  accelerators: A100:8\n  acelerators: A100:8\n")
    with pytest.raises(SpecError) as info:
        Task.from_yaml(path)
    location = info.value.location
    assert location is not None
    assert (location.file, location.line, location.column, location.path) == (
        str(path),
        4,
        3,
        "resources.acelerators",
    )
    assert str(info.value).startswith(f"[unknown-key] {path}:4:3 at 'resources.acelerators'")


@pytest.mark.parametrize(
    ("text", "code", "path"),
    [
        ("name: ''\n", "invalid-value", "name"),
        ("name: -x\n", "invalid-value", "name"),
        ("num_nodes: '2'\n", "invalid-type", "num_nodes"),
        ("run: 5\n", "invalid-type", "run"),
        ("setup: [a]\n", "invalid-type", "setup"),
        ("workdir: 3\n", "invalid-type", "workdir"),
        ("workdir: {url: x, branch: y}\n", "unknown-key", "workdir.branch"),
        ("envs: [A]\n", "invalid-type", "envs"),
        ("envs: {A-B: 1}\n", "invalid-value", "envs.A-B"),
        ("file_mounts: {/x: null}\n", "missing-field", "file_mounts['/x']"),
        ("file_mounts: {/x: {source: []}}\n", "invalid-value", "file_mounts['/x'].source"),
        (
            "file_mounts: {/x: {source: a, store: dropbox}}\n",
            "invalid-value",
            "file_mounts['/x'].store",
        ),
        (
            "file_mounts: {/x: {source: a, config: {disk_sz: 1}}}\n",
            "unknown-key",
            "file_mounts['/x'].config.disk_sz",
        ),
        ("volumes: {rel: v}\n", "invalid-value", "volumes.rel"),
        ("volumes: {/v: {nam: v}}\n", "unknown-key", "volumes['/v'].nam"),
        ("volumes: {/v: 3}\n", "invalid-type", "volumes['/v']"),
        (
            "service: {replica_policy: {max_replicas: 2}}\n",
            "missing-field",
            "service.replica_policy",
        ),
        (
            "service: {readiness_probe: {timeout_seconds: 1}}\n",
            "missing-field",
            "service.readiness_probe",
        ),
        (
            "service: {load_balancing_policy: random}\n",
            "invalid-value",
            "service.load_balancing_policy",
        ),
        ("service: {tls: {keyfile: k}}\n", "missing-field", "service.tls"),
        ("config: {kubernetes: {namespace: x}}\n", "unknown-key", "config.kubernetes.namespace"),
        ("config: {docker: {run_options: 3}}\n", "invalid-type", "config.docker.run_options"),
        ("outputs: {a: -1}\n", "invalid-value", "outputs.a"),
        ("inputs: 3\n", "invalid-type", "inputs"),
    ],
)
def test_invalid_fields(text: str, code: str, path: str) -> None:
    with pytest.raises(SpecError) as info:
        Task.from_yaml_str(text)
    location = info.value.location
    assert (info.value.code, location.path if location else None) == (code, path), str(info.value)


def test_envs_keep_template_until_substituted() -> None:
    t = Task.from_yaml_str("envs: {D: data}\nfile_mounts:\n  /x/${D}: ./$D\nrun: echo $D\n")
    assert "/x/${D}" in t.file_mounts
    resolved = t.substitute_env_vars()
    assert resolved.file_mounts == {"/x/data": FileMount("./data")}
    assert resolved.run == "echo $D"
    assert resolved.substitute_env_vars() is resolved
