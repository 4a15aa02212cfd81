"""Tasks in container images (`image_id: docker:<image>`) on this machine and on an SSH pool,
end to end: real podman (runc) on this machine and inside each test host, images pulled from
real local registries (one with a login), real Ray, real sshd hosts.

The image is Debian minbase without Python, so every test here also shows that an image needs
no Python: Styx's runtime stays on the node and the jobs run in the image through exec.
After every test: no container of Styx's left on this machine or any host, no Styx process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import leaks
from tests.jobs import e2e
from tests.ops.conftest import Styx, assert_no_leaks, wait_for, wheelhouse
from tests.testworld.containers import PASSWORD, USER, ContainerWorld, why_not
from tests.testworld.testbed import Testbed, usable

from styx.jobs.controller import cluster_name
from styx.state import db as dbmod
from styx.state.db import Database
from styx.state.records import ManagedJobStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HOSTS = (1, 2, 3)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    why = usable() or why_not()
    if why:
        pytest.skip(why)
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse before the tests)")
    testbed = Testbed(tmp_path_factory.mktemp("cbed"), len(HOSTS)).up()
    yield testbed
    testbed.down()


@pytest.fixture(scope="module")
def world(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerWorld]:
    w = ContainerWorld.for_testbed(tmp_path_factory.mktemp("cworld"), bed).up()
    yield w
    w.down()


@pytest.fixture(scope="module")
def home(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("styx-img-home")
    hosts = "\n".join(f"    - {h.ip}" for h in bed.hosts)
    (home / "ssh_node_pools.yaml").write_text(
        f"lab:\n  user: root\n  identity_file: {bed.key}\n  hosts:\n{hosts}\n"
    )
    return home


@pytest.fixture
def styx(home: Path, world: ContainerWorld, bed: Testbed) -> Iterator[Styx]:
    before = leaks.snapshot()
    env = {"STYX_WHEELHOUSE": str(wheelhouse()), **world.env}
    runner = Styx(home, extra_env=env)
    yield runner
    runner("down", "--all", "-y", timeout=300)
    assert_no_leaks(before, home)
    world.assert_no_containers([i for i in HOSTS if bed.alive(i)])


@pytest.fixture(autouse=True)
def _restore_faults(bed: Testbed) -> Iterator[None]:
    yield
    for i in HOSTS:
        if not bed.alive(i):
            bed.reboot(i)
    bed.restore()


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def job_status(styx: Styx, cluster: str, job_id: int) -> str | None:
    """The job's status from `styx queue --json` (wherever in the document it sits)."""

    def find(node: object) -> str | None:
        if isinstance(node, dict):
            if node.get("job_id") == job_id and "status" in node:
                return str(node["status"])
            node = list(node.values())
        if isinstance(node, list):
            for item in node:
                found = find(item)
                if found is not None:
                    return found
        return None

    return find(json.loads(styx("queue", cluster, "--json", check=True).stdout))


def status_of(styx: Styx, name: str) -> str | None:
    rows = json.loads(styx("status", "--json", check=True).stdout)
    return next((r["status"] for r in rows if r["name"] == name), None)


def test_local_image_task_with_workdir_mounts_exec_logs_and_cancel(
    styx: Styx, world: ContainerWorld, tmp_path: Path
) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "code.txt").write_text("workdir-in-image\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.txt").write_text("mount-in-image\n")
    task = write(
        tmp_path / "t.yaml",
        f"""
resources:
  infra: local
  image_id: docker:{world.public_image}
workdir: {work}
file_mounts:
  ~/data: {data}
envs:
  GREETING: hello
config:
  docker:
    run_options: ["-e", "FROM_RUN_OPTIONS=yes"]
setup: echo "setup in $STYX_IMAGE"
run: |
  echo "image=$STYX_IMAGE greeting=$GREETING opts=$FROM_RUN_OPTIONS rank=$SKYPILOT_NODE_RANK"
  cat code.txt ~/data/d.txt
  command -v python3 || echo "no python here"
""",
    )
    r = styx("launch", task, "-c", "img", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "setup in nopython-bookworm" in r.stdout
    assert "image=nopython-bookworm greeting=hello opts=yes rank=0" in r.stdout, r.stdout
    assert "workdir-in-image" in r.stdout and "mount-in-image" in r.stdout
    assert "no python here" in r.stdout
    assert world.local_containers() == ["styx-img"]

    r = styx("exec", "img", "echo exec-in-$STYX_IMAGE; exit 3", timeout=120)
    assert r.returncode == 3 and "exec-in-nopython-bookworm" in r.stdout, r.stdout + r.stderr
    r = styx("logs", "img", "2", "--no-follow", timeout=60)
    assert "exec-in-nopython-bookworm" in r.stdout

    # cancel reaches the job's processes inside the container
    r = styx("exec", "img", "-d", "echo started; sleep 300", timeout=60)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "started" in styx("logs", "img", "3", "--no-follow").stdout, 60, "job 3")
    assert styx("cancel", "img", "3", "-y", timeout=60).returncode == 0
    wait_for(lambda: job_status(styx, "img", 3) == "CANCELLED", 60, "job 3 cancelled")
    ps = world.podman("exec", "styx-img", "sh", "-c",
                      'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done')  # fmt: skip
    assert "sleep infinity" in ps and "sleep 300" not in ps, ps

    # a container that dies fails its job with an exit code; the cluster stays usable
    r = styx("exec", "img", "-d", "sleep 300", timeout=60)
    wait_for(lambda: job_status(styx, "img", 4) == "RUNNING", 60, "job 4 running")
    world.podman("kill", "styx-img")
    wait_for(lambda: job_status(styx, "img", 4) == "FAILED", 60, "job 4 failed")
    r = styx("exec", "img", "echo back-in-$STYX_IMAGE", timeout=120)
    assert r.returncode == 0 and "back-in-nopython-bookworm" in r.stdout, r.stdout + r.stderr

    assert styx("down", "img", "-y", timeout=120).returncode == 0
    assert world.local_containers() == []


def test_two_node_pool_from_a_private_registry(
    styx: Styx, world: ContainerWorld, bed: Testbed, tmp_path: Path
) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "marker.txt").write_text("arrived\n")
    task = write(
        tmp_path / "t.yaml",
        f"""
num_nodes: 2
resources:
  infra: ssh/lab
  image_id: docker:{world.private_image}
workdir: {work}
envs:
  SKYPILOT_DOCKER_SERVER: {world.registry}
  SKYPILOT_DOCKER_USERNAME: {USER}
secrets:
  SKYPILOT_DOCKER_PASSWORD: null
run: |
  echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES ips=$(echo $SKYPILOT_NODE_IPS | tr ' ' ,) image=$STYX_IMAGE $(cat marker.txt)"
""",
    )
    r = styx("launch", task, "-c", "pool", "-y", "--secret", f"SKYPILOT_DOCKER_PASSWORD={PASSWORD}",
             timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    ips = {h.ip for h in bed.hosts}
    lines = [ln for ln in r.stdout.splitlines() if "rank=" in ln]
    assert len(lines) == 2, r.stdout
    for rank in (0, 1):
        line = next(ln for ln in lines if f"rank={rank} of 2" in ln)
        assert "image=nopython-bookworm arrived" in line
        got = set(line.split("ips=")[1].split()[0].split(","))
        assert len(got) == 2 and got <= ips
    used = [i for i in HOSTS if world.host_containers(i) == ["styx-pool"]]
    assert len(used) == 2
    # the login lived for the pull only: no credential is left on the nodes or in Styx's state
    for i in used:
        found = bed.ssh(i, "sh", "-c", f"grep -rl {PASSWORD} /root /run /tmp 2>/dev/null; true")
        assert found.stdout.strip() == "", found.stdout
    db_text = b"".join(p.read_bytes() for p in Path(styx.home).rglob("*.db"))
    assert PASSWORD.encode() not in db_text

    r = styx("exec", "pool", "--num-nodes", "2", "echo again-$SKYPILOT_NODE_RANK-$STYX_IMAGE",
             timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "again-0-nopython-bookworm" in r.stdout and "again-1-nopython-bookworm" in r.stdout

    # stop takes the containers away; start brings them back from the hosts' image stores
    assert styx("stop", "pool", "-y", timeout=300).returncode == 0
    assert all(world.host_containers(i) == [] for i in used)
    assert styx("start", "pool", "-y", timeout=600).returncode == 0
    assert all(world.host_containers(i) == ["styx-pool"] for i in used)
    r = styx("exec", "pool", "echo after-start-$STYX_IMAGE", timeout=120)
    assert r.returncode == 0 and "after-start-nopython-bookworm" in r.stdout, r.stdout + r.stderr


def test_a_wrong_registry_password_fails_clearly_and_leaves_nothing(
    styx: Styx, world: ContainerWorld, bed: Testbed, tmp_path: Path
) -> None:
    task = write(
        tmp_path / "t.yaml",
        f"""
resources:
  infra: ssh/lab
  image_id: docker:{world.private_image}
envs:
  SKYPILOT_DOCKER_SERVER: {world.registry}
  SKYPILOT_DOCKER_USERNAME: {USER}
  SKYPILOT_DOCKER_PASSWORD: not-the-password
run: echo never
""",
    )
    r = styx("launch", task, "-c", "bad", "-y", timeout=600)
    assert r.returncode == 7, r.stdout + r.stderr
    assert f"Logging in to registry {world.registry} failed" in r.stderr, r.stderr
    assert "registry-login-failed" in r.stderr or "SKYPILOT_DOCKER_PASSWORD" in r.stderr
    assert "not-the-password" not in r.stdout + r.stderr
    assert status_of(styx, "bad") is None  # the cluster made for the launch is gone
    assert all(world.host_containers(i) == [] for i in HOSTS)

    # half a login is the user's mistake, said before anything is made
    half = write(tmp_path / "h.yaml", f"resources:\n  infra: ssh/lab\n  image_id: docker:"
                 f"{world.private_image}\nenvs:\n  SKYPILOT_DOCKER_SERVER: {world.registry}\n"
                 "run: echo never\n")  # fmt: skip
    r = styx("launch", half, "-c", "half", "-y", timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "SKYPILOT_DOCKER_USERNAME" in r.stderr


def test_managed_job_in_an_image_survives_a_host_kill(
    styx: Styx, world: ContainerWorld, bed: Testbed, home: Path, tmp_path: Path
) -> None:
    env = {**styx.env(), "STYX_HOME": str(home), **e2e.FAST_CONTROLLER}
    dbmod.clear_cache()
    os.environ["STYX_HOME"] = str(home)
    try:
        db = Database.open()
        yaml = (
            "name: boxed\nresources:\n  infra: ssh/lab\n"
            f"  image_id: docker:{world.public_image}\n"
            "run: |\n  echo attempt in $STYX_IMAGE\n  sleep 25\n  echo done in $STYX_IMAGE\n"
        )
        [job_id] = e2e.launch(env, home, "boxed", yaml)
        e2e.wait_status(db, job_id, ManagedJobStatus.RUNNING, 600)
        [address] = e2e.cluster_hosts(db, cluster_name(job_id))
        victim = next(h.index for h in bed.hosts if h.ip == address)
        bed.crash(victim)  # the machine is gone, its container with it
        e2e.wait_status(db, job_id, ManagedJobStatus.RUNNING, 600, attempt=1)
        [again] = e2e.cluster_hosts(db, cluster_name(job_id))
        assert again != address
        index = next(h.index for h in bed.hosts if h.ip == again)
        assert world.host_containers(index) == [cluster_name(job_id).join(("styx-", ""))]
        e2e.wait_status(db, job_id, ManagedJobStatus.SUCCEEDED, 600, attempt=1)
        e2e.wait_until(lambda: world.host_containers(index) == [], 120, "the job's cluster down")
        db.close()
    finally:
        e2e.stop_everything(home)
        os.environ.pop("STYX_HOME", None)
        dbmod.clear_cache()
