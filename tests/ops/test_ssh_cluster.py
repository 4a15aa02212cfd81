"""SSH node pools end to end: real sshd hosts in network namespaces, real rsync, real Ray.

Four test hosts form one pool. The runtime is installed on each host from a local wheelhouse
(the suite has no route out), exactly as on machines without internet.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import leaks
from tests.ops.conftest import Styx, assert_no_leaks, wait_for, wheelhouse
from tests.testworld.testbed import Testbed, usable

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    why = usable()
    if why:
        pytest.skip(why)
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse before the tests)")
    testbed = Testbed(tmp_path_factory.mktemp("bed"), 4).up()
    yield testbed
    testbed.down()


@pytest.fixture(scope="module")
def styx(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Styx]:
    home = tmp_path_factory.mktemp("styx-ssh-home")
    hosts = "\n".join(f"    - {h.ip}" for h in bed.hosts)
    (home / "ssh_node_pools.yaml").write_text(
        f"lab:\n  user: root\n  identity_file: {bed.key}\n  hosts:\n{hosts}\n"
    )
    before = leaks.snapshot()
    runner = Styx(home, extra_env={"STYX_WHEELHOUSE": str(wheelhouse())})
    yield runner
    runner("down", "--all", "-y", timeout=300)
    assert_no_leaks(before, home)
    for i in range(1, 5):  # each host's own /tmp: no private Ray folder left there either
        if bed.alive(i):
            left = bed.ssh(i, "sh", "-c", "ls -d /tmp/styx-ray-* 2>/dev/null || true").stdout
            assert left.strip() == "", (i, left)
            # nor the clusters' job tables, logs and secrets: the next cluster starts afresh
            state = "ls -d ~/.styx/agent/jobs.db ~/.styx/agent/logs ~/.styx/agent/secrets"
            left = bed.ssh(i, "sh", "-c", state + " 2>/dev/null || true").stdout
            assert left.strip() == "", (i, left)


@pytest.fixture(autouse=True)
def _restore_faults(bed: Testbed) -> Iterator[None]:
    yield
    bed.restore()


def our_processes(bed: Testbed, i: int) -> list[str]:
    """Command lines of host i's processes other than its sshd (and sshd's session children)."""
    out = []
    for pid in bed.pids(i):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if cmd and not cmd.startswith("sshd") and "/usr/sbin/sshd" not in cmd:
            out.append(f"{pid}: {cmd[:160]}")
    return out


def write_task(path: Path, body: str) -> str:
    path.write_text(body)
    return str(path)


def status_of(styx: Styx, name: str) -> str | None:
    rows = json.loads(styx("status", "--json", check=True).stdout)
    return next((r["status"] for r in rows if r["name"] == name), None)


def test_two_node_job_ranks_ips_and_workdir(styx: Styx, bed: Testbed, tmp_path: Path) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "marker.txt").write_text("workdir-arrived\n")
    task = write_task(
        tmp_path / "t.yaml",
        f"""
name: two
num_nodes: 2
workdir: {work}
resources:
  infra: ssh/lab
setup: echo "setup on rank $SKYPILOT_SETUP_NODE_RANK of $(hostname)"
run: |
  echo "rank=$SKYPILOT_NODE_RANK styx_rank=$STYX_NODE_RANK n=$SKYPILOT_NUM_NODES $(cat marker.txt)"
  echo "ips=$(echo $SKYPILOT_NODE_IPS | tr ' ' ',') host=$(hostname)"
""",
    )
    t0 = time.monotonic()
    r = styx("launch", task, "-c", "two", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    launch_s = time.monotonic() - t0
    ips = f"{bed.host(1).ip},{bed.host(2).ip}"
    for rank, host in ((0, "h1"), (1, "h2")):
        assert f"rank={rank} styx_rank={rank} n=2 workdir-arrived" in r.stdout, r.stdout
        assert f"ips={ips} host={host}" in r.stdout
    assert "(rank 1, h2)" in r.stdout  # each node's lines are prefixed
    assert "setup on rank 0 of h1" in r.stdout and "setup on rank 1 of h2" in r.stdout
    print(f"2-node launch on fresh hosts: {launch_s:.1f} s")


def _listeners(bed: Testbed, i: int) -> list[tuple[str, str]]:
    """(local address, process name) of every listening TCP socket inside host i."""
    out = subprocess.run(
        ["ip", "netns", "exec", bed.host(i).netns, "ss", "-ltnpH"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = []
    for line in out.splitlines():
        addr = line.split()[3].rsplit(":", 1)[0]
        name = line.split('users:(("', 1)[1].split('"', 1)[0] if "users:" in line else "?"
        found.append((addr, name))
    return found


def test_two_node_ports_listen_on_each_nodes_own_address(styx: Styx, bed: Testbed) -> None:
    r = styx("exec", "two", "--num-nodes", "2", "echo warm")  # Ray workers up on both nodes
    assert r.returncode == 0, r.stderr
    for i in (1, 2):
        ip = bed.host(i).ip
        ours = [(a, n) for a, n in _listeners(bed, i) if n != "sshd"]
        allowed = {ip, f"[::ffff:{ip}]", "127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}
        assert [x for x in ours if x[0] not in allowed] == [], (i, ours)
        assert any(a in (ip, f"[::ffff:{ip}]") for a, _ in ours), (i, ours)  # peers reach Ray
        assert not any(a in ("0.0.0.0", "*", "[::]") for a, _ in ours)


def test_remote_destinations_that_would_destroy_the_runtime_are_refused(
    styx: Styx, bed: Testbed, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for i, dest in enumerate(("~/", "~", "~/.styx", "~/.styx/runtime", "/", "/root", "/root/")):
        task = write_task(
            tmp_path / f"d{i}.yaml",
            f"num_nodes: 2\nresources:\n  infra: ssh/lab\nfile_mounts:\n  {dest}: {empty}\n"
            "run: echo never\n",
        )
        r = styx("exec", "two", task)
        assert r.returncode == 2 and "mount-destination-refused" in r.stderr, (dest, r.stderr)
        if dest != "/root" and dest != "/root/":  # the home is known once a node is
            r = styx("launch", task, "-c", "nope", "-y")
            assert r.returncode == 2 and "mount-destination-refused" in r.stderr, r.stderr
            assert status_of(styx, "nope") is None
    assert bed.ssh(1, "test", "-x", "/root/.styx/runtime/bin/python").returncode == 0
    src = tmp_path / "src"
    src.mkdir()
    (src / "new.txt").write_text("new")
    for i in (1, 2):
        made = bed.ssh(i, "sh", "-c", "mkdir -p /tmp/data && echo theirs > /tmp/data/old.txt")
        assert made.returncode == 0, made.stderr
    task = write_task(
        tmp_path / "ok.yaml",
        f"num_nodes: 2\nresources:\n  infra: ssh/lab\nfile_mounts:\n  /tmp/data: {src}\n"
        "run: ls /tmp/data | tr '\\n' ' '\n",
    )
    r = styx("exec", "two", task)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("new.txt old.txt") == 2, r.stdout  # both nodes; nothing deleted


def test_two_clusters_never_share_a_host(styx: Styx, bed: Testbed, tmp_path: Path) -> None:
    task = write_task(
        tmp_path / "three.yaml",
        """
num_nodes: 3
resources:
  infra: ssh/lab
run: echo "rank=$SKYPILOT_NODE_RANK host=$(hostname) ips=$(echo $SKYPILOT_NODE_IPS)"
""",
    )
    r = styx("launch", task, "-c", "three", "-y", timeout=600)
    assert r.returncode == 6, r.stdout + r.stderr  # cluster 'two' holds h1 and h2
    assert "resources-unavailable" in r.stderr and "two" in r.stderr
    assert status_of(styx, "three") is None  # nothing half-made is left
    assert styx("down", "two", "-y", timeout=300).returncode == 0
    r = styx("launch", task, "-c", "three", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in range(3):
        assert f"rank={rank} host=h{rank + 1}" in r.stdout
    three_ips = " ".join(bed.host(i).ip for i in (1, 2, 3))
    assert f"ips={three_ips}" in r.stdout


def test_exec_on_up_cluster_and_fast_relaunch(styx: Styx, tmp_path: Path) -> None:
    r = styx("exec", "three", "echo exec-rank-$SKYPILOT_NODE_RANK")
    assert r.returncode == 0, r.stderr
    assert "exec-rank-0" in r.stdout
    task = write_task(
        tmp_path / "fast.yaml",
        "num_nodes: 3\nresources:\n  infra: ssh/lab\nrun: echo fast-$SKYPILOT_NODE_RANK\n",
    )
    t0 = time.monotonic()
    r = styx("launch", task, "-c", "three", "--fast", "-y")
    assert r.returncode == 0, r.stderr
    assert {"fast-0", "fast-1", "fast-2"} <= set(r.stdout.split())
    print(f"--fast relaunch on the up 3-node cluster: {time.monotonic() - t0:.2f} s")


def test_host_crash_fails_the_job_and_degrades_the_cluster(
    styx: Styx, bed: Testbed, tmp_path: Path
) -> None:
    r = styx("exec", "three", "-d", "--num-nodes", "3", "sleep 600")
    assert r.returncode == 0, r.stderr
    rows = json.loads(styx("queue", "three", "--json", check=True).stdout)["three"]
    job_id = max(j["job_id"] for j in rows)

    def job_status() -> str:
        jobs = json.loads(styx("queue", "three", "--json", check=True).stdout)["three"]
        return next(j["status"] for j in jobs if j["job_id"] == job_id)

    wait_for(lambda: job_status() == "RUNNING", 60, "the job to run")
    time.sleep(1.0)
    crashed_at = time.monotonic()
    bed.crash(3)
    try:
        wait_for(lambda: job_status() in ("FAILED", "FAILED_DRIVER"), 30, "the job to fail")
    except AssertionError:
        log = bed.host(1).dir / "root" / ".styx" / "agent" / "agent.log"
        print("agent.log on the head:", log.read_text()[-3000:] if log.exists() else "missing")
        raise
    took = time.monotonic() - crashed_at
    assert took <= 20.0, f"the job failed {took:.1f} s after the crash"
    # The job's processes on the surviving nodes are gone too.
    wait_for(
        lambda: not any("sleep 600" in p for i in (1, 2) for p in our_processes(bed, i)),
        15,
        "the job's processes on h1 and h2 to end",
    )
    r = styx("status", "-r")
    assert r.returncode == 0
    assert status_of(styx, "three") == "DEGRADED"
    assert "is DEGRADED" in r.stdout and "h3" in r.stdout and "cannot be reached" in r.stdout


def test_down_leaves_nothing_running(styx: Styx, bed: Testbed) -> None:
    assert styx("down", "three", "-y", timeout=300).returncode == 0
    for i in (1, 2):  # h3 crashed in the previous test
        wait_for(lambda i=i: our_processes(bed, i) == [], 20, f"h{i} to have no process of ours")
    assert status_of(styx, "three") is None


def test_launch_passes_over_a_host_that_does_not_answer(
    styx: Styx, bed: Testbed, tmp_path: Path
) -> None:
    bed.reboot(3)
    bed.cut_link(1)
    task = write_task(
        tmp_path / "one.yaml", "resources:\n  infra: ssh/lab\nrun: echo hi from $(hostname)\n"
    )
    t0 = time.monotonic()
    r = styx("launch", task, "-c", "cut", "-y", timeout=300)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hi from h2" in r.stdout  # h1 is first in the pool, but cut off
    assert took < 60, f"took {took:.1f} s"


def test_too_few_hosts_answer_names_the_silent_ones(
    styx: Styx, bed: Testbed, tmp_path: Path
) -> None:
    bed.crash(3)  # 'cut' holds h2; h1, h3 and h4 are free but h3 is down
    task = write_task(
        tmp_path / "three.yaml", "num_nodes: 3\nresources:\n  infra: ssh/lab\nrun: echo hi\n"
    )
    r = styx("launch", task, "-c", "short", "-y", timeout=300)
    assert r.returncode == 6, r.stdout + r.stderr
    assert "resources-unavailable" in r.stderr and "did not answer" in r.stderr
    assert bed.host(3).ip in r.stderr and "Traceback" not in r.stderr
    assert status_of(styx, "short") is None  # no half-made cluster holds the other hosts
    assert styx("down", "cut", "-y", timeout=300).returncode == 0


def test_cost_report_prices_the_pool_from_config(styx: Styx, tmp_path: Path) -> None:
    """A price per node-hour for the pool (``ssh.context_configs.lab`` over ``ssh``) is
    recorded at launch for the whole cluster; stopped time is not billed."""
    config = styx.home / "config.yaml"
    config.write_text(
        "ssh:\n  hourly_price: 0.25\n  context_configs:\n    lab:\n      hourly_price: 1.5\n"
    )
    task = write_task(
        tmp_path / "two.yaml", "num_nodes: 2\nresources:\n  infra: ssh/lab\nrun: echo priced\n"
    )
    try:
        r = styx("launch", task, "-c", "priced", "-y", timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert styx("stop", "priced", "-y", timeout=300).returncode == 0
        time.sleep(1)
        assert styx("start", "priced", "-y", timeout=600).returncode == 0
        assert styx("down", "priced", "-y", timeout=300).returncode == 0
    finally:
        config.unlink()
    data = json.loads(styx("cost-report", "--json", check=True).stdout)
    (c,) = [c for c in data["clusters"] if c["name"] == "priced"]
    assert (c["infra"], c["num_nodes"], c["status"]) == ("ssh/lab", 2, "TERMINATED")
    assert c["hourly_price"] == 3.0  # 2 nodes at $1.50
    (_, stopped), (started, _) = c["intervals"]
    assert started >= stopped + 1
    assert abs(c["cost"] - 3.0 * c["hours"]) < 1e-9
    # The module's other clusters were launched with no price set: free.
    assert all(x["hourly_price"] == 0 for x in data["clusters"] if x["name"] != "priced")


def test_a_two_node_task_starts_its_own_ray_cluster_beside_styxs(
    styx: Styx, tmp_path: Path
) -> None:
    """SkyPilot's distributed Ray examples start a Ray cluster of their own on 6379 from `run:`
    and use it with a plain `ray.init()`. Styx's Ray keeps its own ports and folder, and sets
    no RAY_ADDRESS, so the task's cluster is the one it gets, with both nodes."""
    task = write_task(
        tmp_path / "ownray.yaml",
        """
name: ownray
num_nodes: 2
resources:
  infra: ssh/lab
run: |
  ray=~/.styx/runtime/bin/ray; py=~/.styx/runtime/bin/python
  head=$(echo "$SKYPILOT_NODE_IPS" | head -n1)
  opts="--num-cpus 1 --disable-usage-stats"  # Ray's own default folder, /tmp/ray
  if [ "$SKYPILOT_NODE_RANK" = 0 ]; then
    $ray start --head --port 6379 --node-ip-address "$head" --include-dashboard false $opts >/dev/null
    $py -c "
  import time, ray
  ray.init()
  deadline = time.time() + 90
  while len([n for n in ray.nodes() if n['Alive']]) < 2 and time.time() < deadline:
      time.sleep(1)
  print('OWN-RAY', ray.get_runtime_context().gcs_address, len(ray.nodes()))
  "
    sleep 2
  else
    for i in $(seq 60); do
      $ray start --address "$head:6379" $opts >/dev/null 2>&1 && break; sleep 1
    done
    sleep 20
  fi
  pkill -f /tmp/ray/session || true  # only the task's Ray: Styx's lives in a folder of its own
""",
    )
    r = styx("launch", task, "-c", "ownray", "-y", timeout=600)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        line = next(x for x in r.stdout.splitlines() if "OWN-RAY" in x)
        assert line.endswith(" 2") and ":6379 " in line, line
    finally:
        assert styx("down", "ownray", "-y", timeout=300).returncode == 0
