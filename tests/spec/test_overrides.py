from __future__ import annotations

from pathlib import Path

import pytest

from styx.errors import SpecError
from styx.spec.dag import Dag
from styx.spec.mounts import FileMount, Secret
from styx.spec.overrides import Overrides, apply, apply_to_dag, read_env_file
from styx.spec.quantities import Accelerator, CpuSpec, Infra, PortRange
from styx.spec.task import Task

TASK = Task.from_yaml_str(
    """
envs: {MODEL: small, STEPS: 10, LATER: null}
secrets: {TOKEN: null}
file_mounts:
  /models/$MODEL: s3://bucket/$MODEL
resources:
  cpus: 2
  any_of:
    - infra: aws
      cpus: 8
    - infra: gcp
run: echo $MODEL
"""
)


def test_no_overrides_still_substitutes() -> None:
    t = apply(TASK, Overrides(), environ={})
    assert "/models/small" in t.file_mounts and t.envs == TASK.envs


def test_env_precedence_file_then_flags(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("MODEL=medium\nSTEPS=20\n")
    t = apply(
        TASK, Overrides(env=("MODEL=large", "LATER"), env_file=str(env_file)), {"LATER": "now"}
    )
    assert t.envs == {"MODEL": "large", "STEPS": "20", "LATER": "now"}
    assert t.file_mounts == {"/models/large": FileMount("s3://bucket/large")}
    assert t.missing_values() == ["secrets.TOKEN"]


def test_secrets_from_flags_and_environment() -> None:
    t = apply(TASK, Overrides(secret=("TOKEN",)), environ={"TOKEN": "s3cret"})
    assert t.secrets == {"TOKEN": Secret("s3cret")}
    t = apply(TASK, Overrides(secret=("TOKEN=x=y",)), environ={})
    assert t.secrets["TOKEN"] == Secret("x=y")


def test_resource_flags_apply_to_defaults_and_every_candidate() -> None:
    t = apply(
        TASK,
        Overrides(
            cpus="4+",
            memory="16",
            gpus="A100:8",
            use_spot=True,
            disk_size="100GB",
            ports=("80", "90-91"),
        ),
        environ={},
    )
    assert t.resources.cpus == CpuSpec(4, True)
    assert [c.cpus for c in t.resources.candidates()] == [CpuSpec(4, True)] * 2
    assert [c.cloud for c in t.resources.candidates()] == ["aws", "gcp"]
    assert all(c.accelerator == Accelerator("A100", 8) for c in t.resources.candidates())
    assert t.resources.use_spot is True and t.resources.disk_size == 100
    assert t.resources.ports == (PortRange(80, 80), PortRange(90, 91))


def test_infra_instance_type_image_and_nodes() -> None:
    t = apply(
        Task(run="x"),
        Overrides(
            infra="k8s/ctx", instance_type="m5.large", image_id="docker:ubuntu", num_nodes="3"
        ),
        environ={},
    )
    assert t.resources.infra == Infra("kubernetes", "ctx")
    assert (t.resources.instance_type, t.resources.image_id, t.num_nodes) == (
        "m5.large",
        "docker:ubuntu",
        3,
    )
    assert apply(Task(), Overrides(use_spot=False), {}).resources.use_spot is False


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        (Overrides(cpus="many"), "--cpus"),
        (Overrides(memory="lots"), "--memory"),
        (Overrides(gpus="A100:1.5"), "--gpus"),
        (Overrides(gpus="[A100, V100]"), "--gpus"),  # several GPUs with any_of
        (Overrides(infra="nowhere"), "--infra"),
        (Overrides(disk_size="big"), "--disk-size"),
        (Overrides(ports=("http",)), "--ports"),
        (Overrides(num_nodes="0"), "--num-nodes"),
        (Overrides(num_nodes="99999999999999999999"), "--num-nodes"),
        (Overrides(instance_type=""), "--instance-type"),
        (Overrides(env=("=x",)), "--env"),
        (Overrides(env=("UNSET_VAR",)), "--env"),
        (Overrides(secret=("1X=2",)), "--secret"),
    ],
)
def test_invalid_overrides_name_the_flag(overrides: Overrides, flag: str) -> None:
    with pytest.raises(SpecError) as info:
        apply(TASK, overrides, environ={})
    assert info.value.code == "invalid-override"
    assert info.value.location is not None and info.value.location.path == flag
    assert info.value.message.endswith(".") and info.value.hint.endswith((".", "?"))


def test_env_file_format(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n\nexport A=1\nB = two words # note\nC='single # kept'\nD=\"multi\\nline\"\nE=\n"
    )
    assert read_env_file(str(path)) == {
        "A": "1",
        "B": "two words",
        "C": "single # kept",
        "D": "multi\nline",
        "E": "",
    }


def test_env_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        read_env_file(str(tmp_path / "missing.env"))
    assert info.value.code == "env-file-not-found"
    bad = tmp_path / "bad.env"
    bad.write_text("A=1\nthis is not an assignment\n")
    with pytest.raises(SpecError) as info:
        read_env_file(str(bad))
    assert info.value.code == "invalid-override"
    assert info.value.location is not None and info.value.location.line == 2


def test_env_file_reads_as_python_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-line quoted values, ``${VAR}`` from earlier lines and the shell, and escapes in
    double quotes, as SkyPilot (python-dotenv) reads them."""
    monkeypatch.setenv("STYX_TEST_HOME_DIR", "/home/u")
    path = tmp_path / ".env"
    path.write_text(
        'CERT="-----BEGIN-----\nabc\n-----END-----"\n'
        "BASE=/data\n"
        "DATA=${BASE}/set\n"
        "CACHE=${STYX_TEST_HOME_DIR}/cache\n"
        'SEP="a\\tb"\n'
        "AFTER=1\n"
    )
    values = read_env_file(str(path))
    assert values == {
        "CERT": "-----BEGIN-----\nabc\n-----END-----",
        "BASE": "/data",
        "DATA": "/data/set",
        "CACHE": "/home/u/cache",
        "SEP": "a\tb",
        "AFTER": "1",
    }


def test_env_file_key_without_value_and_unreadable(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text('A="x\ny"\nLONELY\n')
    with pytest.raises(SpecError) as info:
        read_env_file(str(path))
    assert info.value.code == "invalid-override" and "LONELY" in info.value.message
    assert info.value.location is not None and info.value.location.line == 3
    with pytest.raises(SpecError) as info:
        read_env_file(str(tmp_path))  # a folder
    assert info.value.code == "invalid-override" and "cannot be read" in info.value.message
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(SpecError) as info:
        read_env_file(str(binary))
    assert "cannot be read" in info.value.message


def test_apply_to_dag() -> None:
    dag = Dag.from_yaml_str("name: p\n---\nname: a\nenvs: {X: 1}\n---\nname: b\nrun: echo\n")
    new = apply_to_dag(dag, Overrides(env=("X=2",)), environ={})
    assert [t.envs["X"] for t in new.tasks] == ["2", "2"]
    assert new.edges == dag.edges and new.name == "p"
    with pytest.raises(SpecError) as info:
        apply_to_dag(dag, Overrides(cpus="4"), environ={})
    assert info.value.code == "invalid-override"
    single = Dag.from_yaml_str("run: x\n")
    assert apply_to_dag(single, Overrides(cpus="4"), {}).tasks[0].resources.cpus == CpuSpec(4)
