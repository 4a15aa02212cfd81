"""The container stage's pieces without a container runtime: the spec from a task's words, the
node script against a scripted `podman` (what it is asked, in which order, with which exit
codes), and the node side's exec argv. The real runtime runs in tests/ops/test_containers.py."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from styx.agent import container as node_side
from styx.cluster import container
from styx.cluster.runner import LocalRunner
from styx.errors import NotSupportedError, RemoteError, UserInputError


def test_image_of_only_takes_docker_images() -> None:
    assert container.image_of("docker:nvcr.io/nvidia/pytorch:24.01-py3") == (
        "nvcr.io/nvidia/pytorch:24.01-py3"
    )
    assert container.image_of("ami-123") is None
    assert container.image_of(None) is None
    assert container.image_of("docker:  ") is None


def test_run_options_text_or_list_task_over_user() -> None:
    assert container.run_options({"docker": {"run_options": "--shm-size=1g -e A='b c'"}}, {}) == (
        "--shm-size=1g",
        "-e",
        "A=b c",
    )
    user = {"docker": {"run_options": ["--ipc=host"]}}
    assert container.run_options({}, user) == ("--ipc=host",)
    assert container.run_options({"docker": {"run_options": ["-e X=1"]}}, user) == ("-e", "X=1")
    with pytest.raises(UserInputError) as err:
        container.run_options({"docker": {"run_options": "-e 'open"}}, {})
    assert err.value.code == "invalid-config"


def test_registry_login_needs_all_three() -> None:
    assert container.registry_login({"OTHER": "x"}) is None
    login = container.registry_login(
        {
            "SKYPILOT_DOCKER_SERVER": "r.example:5000",
            "SKYPILOT_DOCKER_USERNAME": "u",
            "SKYPILOT_DOCKER_PASSWORD": "p4ss",
        }
    )
    assert login is not None and login.server == "r.example:5000"
    assert "p4ss" not in repr(login)
    with pytest.raises(UserInputError) as err:
        container.registry_login({"SKYPILOT_DOCKER_SERVER": "r.example:5000"})
    assert err.value.code == "missing-value"
    assert "SKYPILOT_DOCKER_USERNAME" in err.value.message


def test_the_password_is_never_in_the_node_argv() -> None:
    login = container.RegistryLogin("r:5000", "u", "p4ss-word")
    spec = container.ContainerSpec("r:5000/img:1", ("--ipc=host",), ("/data",))
    argv = container.node_argv(spec, "c1", "/root/.styx/agent", True, login, "/h")
    assert "p4ss-word" not in " ".join(argv)
    assert argv[4:12] == ["styx-c1", "r:5000/img:1", spec.digest(True), "1", "r:5000", "u", "/h",
                          "/data"]  # fmt: skip
    assert argv[-3:] == ["--label", "styx.dev/cluster=c1", "--ipc=host"][-3:]
    assert spec.digest(True) != spec.digest(False)
    assert container.ContainerSpec.from_json(spec.to_json()) == spec


FAKE_RUNTIME = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case "$1" in
  info) exit 1 ;;
  inspect) if [ -f "$FAKE_DIR/running" ]; then
             case "$*" in *State.Pid*) echo 4242 ;; *) echo "$(cat $FAKE_DIR/spec)|true" ;; esac
           else exit 125; fi ;;
  image) [ -f "$FAKE_DIR/pulled" ] ;;
  login) cat > "$FAKE_DIR/stdin"; [ "$(cat $FAKE_DIR/stdin)" = right ] || {
           echo "Error: logging in: invalid username/password" >&2; exit 125; } ;;
  pull) [ -f "$FAKE_DIR/nopull" ] && exit 125; touch "$FAKE_DIR/pulled" ;;
  run) for a in "$@"; do case "$a" in styx.dev/spec=*) echo "${a#styx.dev/spec=}" > "$FAKE_DIR/spec";; esac; done
       touch "$FAKE_DIR/running"; echo cid ;;
  rm) rm -f "$FAKE_DIR/running" ;;
esac
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "podman"
    tool.write_text(FAKE_RUNTIME)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")  # a CLI whose daemon is not there
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    return tmp_path


def calls(fake: Path) -> list[str]:
    path = fake / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def test_node_script_logs_in_pulls_runs_and_records(fake: Path) -> None:
    root = fake / "agent"
    root.mkdir()
    spec = container.ContainerSpec("r:5000/img:1", ("--ipc=host",))
    login = container.RegistryLogin("r:5000", "u", "right")
    heard: list[tuple[str, str]] = []
    state = container.start_on_node(LocalRunner(), spec, "c1", str(root), False, login, str(fake),
                                    on_node=lambda n, how: heard.append((n, how)))  # fmt: skip
    assert state == node_side.ContainerState("podman", "styx-c1", "r:5000/img:1", 4242)
    assert heard == [("localhost", "pulled")]
    assert node_side.load(root) == state
    log = calls(fake)
    login_call = next(c for c in log if c.startswith("login"))
    assert "right" not in login_call and "--password-stdin" in login_call
    assert "--authfile=" in login_call  # a throw-away auth file, gone after the pull
    run = next(c for c in log if c.startswith("run"))
    assert "--net=host" in run and "--ipc=host" in run and "gpu" not in run
    assert f"-v {fake}:{fake}" in run
    # the same settings again: the running container is kept, nothing is pulled
    before = len(log)
    container.start_on_node(LocalRunner(), spec, "c1", str(root), False, login, str(fake),
                            on_node=lambda n, how: heard.append((n, how)))  # fmt: skip
    assert heard[-1] == ("localhost", "kept")
    assert not any(c.startswith(("pull", "run", "rm")) for c in calls(fake)[before:])


def test_node_script_failures_are_typed_by_exit_code(fake: Path) -> None:
    root = fake / "agent"
    root.mkdir()
    spec = container.ContainerSpec("r:5000/img:1")
    with pytest.raises(RemoteError) as err:
        container.start_on_node(LocalRunner(), spec, "c1", str(root), False,
                                container.RegistryLogin("r:5000", "u", "wrong"))  # fmt: skip
    assert err.value.code == "registry-login-failed"
    assert "r:5000" in err.value.message and "wrong" not in err.value.message
    assert not (fake / "running").exists() and node_side.load(root) is None
    (fake / "nopull").touch()
    with pytest.raises(RemoteError) as err:
        container.start_on_node(LocalRunner(), spec, "c1", str(root), False, None)
    assert err.value.code == "image-pull-failed"


def test_a_node_without_a_runtime_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("sh", "mkdir", "cat", "rm", "mktemp"):
        (empty / tool).symlink_to(f"/bin/{tool}")
    monkeypatch.setenv("PATH", str(empty))
    spec = container.ContainerSpec("img")
    with pytest.raises(NotSupportedError) as err:
        container.start_on_node(LocalRunner(), spec, "c1", str(tmp_path), False, None)
    assert err.value.code == "container-runtime-missing"


def test_exec_passes_no_env_value_on_any_command_line(tmp_path: Path) -> None:
    state = node_side.ContainerState("podman", "styx-c", "img", 1)
    env = {"SECRET_TOKEN": "it's s3cret", "A": "1", "HOME": "/h", "PATH": "/host/bin", "B-C": "x"}
    text = node_side.env_file_text(env, {"SECRET_TOKEN", "A", "B-C"})
    assert "PATH" not in text and "B-C" not in text  # the image keeps its own PATH
    argv = node_side.exec_argv(state, "/r/s.sh", "/h/sky_workdir", str(tmp_path / "env.sh"))
    assert argv[:4] == ["podman", "exec", "-w", "/h/sky_workdir"]
    assert not any("s3cret" in a or "SECRET_TOKEN" in a for a in argv)
    # what the part's shell does with the file: the values arrive intact, the file goes
    (tmp_path / "env.sh").write_text(text)
    (tmp_path / "s.sh").write_text('printf "%s|%s|%s" "$SECRET_TOKEN" "$A" "$HOME"')
    out = subprocess.run([*argv[5:8], str(tmp_path / "s.sh"), str(tmp_path / "env.sh")],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout == "it's s3cret|1|/h"
    assert not (tmp_path / "env.sh").exists()


def test_the_image_is_the_launched_candidates(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from styx.ops.stages import container_spec
    from styx.providers.base import ClusterHandle
    from styx.spec.task import Task

    path = tmp_path / "t.yaml"
    path.write_text(
        "resources:\n  any_of:\n    - {infra: aws, image_id: 'docker:img-for-aws'}\n"
        "    - {infra: ssh, image_id: 'docker:img-for-ssh'}\n"
        "config:\n  docker:\n    run_options: --shm-size=2g\nrun: echo\n"
    )
    task = Task.from_yaml(str(path))
    handle = ClusterHandle(cluster_name="c", provider="ssh", nodes=(), agent_root="/r",
                           python="", workdir="", ray_port=0, extra={})  # fmt: skip
    spec = container_spec(task, handle, SimpleNamespace(name="ssh"))
    assert spec.image == "img-for-ssh" and spec.run_options == ("--shm-size=2g",)
    assert (
        container_spec(task, handle, SimpleNamespace(name="kubernetes", native_images=True)) is None
    )
