"""The local cloud end to end through the real CLI: launch, exec, queue, logs, cancel, down.

Real Ray and the real agent run on this machine; one cluster serves the module.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.ops.conftest import REPO, Styx, own_processes, wait_for

pytestmark = pytest.mark.ray


def jobs(styx: Styx, cluster: str) -> dict[int, dict]:
    out = styx("queue", cluster, "--json", check=True).stdout
    return {j["job_id"]: j for j in json.loads(out)[cluster]}


@pytest.fixture(scope="module")
def cluster(styx: Styx) -> str:
    r = styx("launch", "examples/hello.yaml", "-c", "t1", "-y")
    assert r.returncode == 0, r.stderr
    return "t1"


def test_quickstart_prints_output_and_queue_shows_succeeded(styx: Styx, cluster: str) -> None:
    # The README's quickstart, checked through its visible effects.
    q = jobs(styx, cluster)
    assert q[1]["status"] == "SUCCEEDED"
    logs = styx("logs", cluster, "1", "--no-follow", check=True).stdout
    assert "setting up" in logs and "hello from 0" in logs
    status = styx("status", "--json", check=True).stdout
    assert [c["status"] for c in json.loads(status) if c["name"] == cluster] == ["UP"]


def test_last_use_follows_exec_as_sky_status_does(styx: Styx, cluster: str) -> None:
    def last_use() -> str:
        out = json.loads(styx("status", "--json", check=True).stdout)
        return next(c["last_use"] for c in out if c["name"] == cluster)

    assert styx("exec", cluster, "echo used", check=True).returncode == 0
    assert last_use() == f"styx exec {cluster} echo used"


def test_failing_run_is_failed_with_its_exit_code(styx: Styx, cluster: str, tmp_path: Path) -> None:
    r = styx("exec", cluster, "echo before; exit 7")
    assert r.returncode == 7
    assert "before" in r.stdout
    last = max(jobs(styx, cluster).values(), key=lambda j: j["job_id"])
    assert last["status"] == "FAILED" and last["exit_code"] == 7
    assert f"Job {last['job_id']} on '{cluster}'" in r.stderr  # exec names its job, as launch
    # logs carries the job's exit code, followed or not
    assert styx("logs", cluster, str(last["job_id"])).returncode == 7
    r = styx("logs", cluster, str(last["job_id"]), "--no-follow")
    assert r.returncode == 7 and "before" in r.stdout
    r = styx("exec", cluster, "-d", "echo detached")
    assert r.returncode == 0 and f"Job {last['job_id'] + 1} submitted to '{cluster}'" in r.stderr


def test_logs_pass_the_jobs_bytes_through(styx: Styx, cluster: str) -> None:
    import subprocess
    import sys

    # 1 MB of bytes that are not UTF-8, then a line of text: all of it arrives unchanged.
    run = "head -c 1000000 /dev/zero | tr '\\0' '\\377'; printf 'end\\n'"
    r = styx("exec", cluster, "-d", run)  # -d: this runner decodes its output as text
    assert r.returncode == 0, r.stderr
    job_id = max(jobs(styx, cluster))
    wait_for(lambda: jobs(styx, cluster)[job_id]["status"] == "SUCCEEDED", 60, "the job")
    for follow in ("--follow", "--no-follow"):
        out = subprocess.run(
            [sys.executable, "-m", "styx.cli.main", "logs", cluster, str(job_id), follow],
            env=styx.env(),
            cwd=REPO,
            capture_output=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == b"\xff" * 1_000_000 + b"end\n"


def test_start_on_an_up_cluster_says_so(styx: Styx, cluster: str) -> None:
    r = styx("start", cluster, "-y")
    assert r.returncode == 0, r.stderr
    assert f"cluster '{cluster}' is already up" in r.stderr and "✓" not in r.stderr


def test_failing_setup_is_failed_setup(styx: Styx, tmp_path: Path) -> None:
    task = tmp_path / "bad_setup.yaml"
    task.write_text("setup: exit 4\nrun: echo never\n")
    r = styx("launch", str(task), "-c", "t1", "-y")
    assert r.returncode != 0
    assert "never" not in r.stdout
    last = max(jobs(styx, "t1").values(), key=lambda j: j["job_id"])
    assert last["status"] == "FAILED_SETUP"


def test_envs_workdir_and_skypilot_variables(styx: Styx, cluster: str, tmp_path: Path) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "data.txt").write_text("payload-42\n")
    (work / ".gitignore").write_text("ignored.txt\n")
    (work / "ignored.txt").write_text("should not sync\n")
    task = tmp_path / "t.yaml"
    task.write_text(
        f"workdir: {work}\n"
        "envs:\n  GREETING: hi\n"
        "secrets:\n  TOKEN: s3cr3t\n"
        "run: |\n"
        "  cat data.txt; ls\n"
        '  echo "$GREETING rank=$SKYPILOT_NODE_RANK n=$SKYPILOT_NUM_NODES ips=$STYX_NODE_IPS"\n'
        '  test "$TOKEN" = s3cr3t && echo secret-ok\n'
    )
    r = styx("exec", cluster, str(task), "--env", "GREETING=hello")
    assert r.returncode == 0, r.stderr
    assert "payload-42" in r.stdout
    assert "ignored.txt" not in r.stdout
    assert "hello rank=0 n=1 ips=127.0.0.1" in r.stdout
    assert "secret-ok" in r.stdout
    assert "s3cr3t" not in r.stderr


def test_cancel_kills_the_whole_process_tree(styx: Styx, cluster: str, tmp_path: Path) -> None:
    marker = f"styx-cancel-{time.time_ns()}"
    # Two processes name the marker: a backgrounded child and a grandchild in its own session.
    script = f"bash -c 'sleep 300; echo {marker}' & setsid bash -c 'sleep 301; echo {marker}'"
    r = styx("exec", cluster, "-d", script)
    assert r.returncode == 0, r.stderr
    job_id = max(jobs(styx, cluster))
    wait_for(lambda: len(own_processes(marker)) >= 2, 30, "the job's processes")
    r = styx("cancel", cluster, str(job_id))
    assert r.returncode == 0, r.stderr
    wait_for(lambda: own_processes(marker) == [], 15, "the process tree to die")
    assert jobs(styx, cluster)[job_id]["status"] == "CANCELLED"


def test_fitting_jobs_run_concurrently(styx: Styx, cluster: str) -> None:
    first = max(jobs(styx, cluster), default=0) + 1
    for _ in range(2):
        assert styx("exec", cluster, "-d", "--cpus", "0.5", "sleep 2").returncode == 0
    wait_for(
        lambda: all(jobs(styx, cluster)[i]["status"] == "SUCCEEDED" for i in (first, first + 1)),
        60,
        "both jobs",
    )
    a, b = (jobs(styx, cluster)[i] for i in (first, first + 1))
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]


def test_unknown_cluster_and_job_errors(styx: Styx, cluster: str) -> None:
    r = styx("exec", "nope", "echo hi")
    assert r.returncode == 3 and "cluster-not-found" in r.stderr
    r = styx("logs", cluster, "99999", "--no-follow")
    assert r.returncode == 3 and "job-not-found" in r.stderr
    r = styx("launch", str(REPO / "examples" / "multi_node.yaml"), "-c", "t1")
    assert r.returncode in (4, 6) and "Hint" in r.stderr


def test_down_leaves_no_process(styx: Styx, tmp_path: Path) -> None:
    r = styx("launch", "examples/hello.yaml", "-c", "t2", "-y")
    assert r.returncode == 0, r.stderr
    root = styx.home / "clusters" / "t2"
    assert own_processes(str(root))
    assert styx("down", "t2", "-y").returncode == 0
    wait_for(lambda: own_processes(str(root)) == [], 20, "cluster t2's processes to end")
    assert not root.exists()
    assert "t2" not in styx("status").stdout
    # The cluster is gone, but its job history stays in the state database.
    from styx.state.cluster_jobs import list_cluster_jobs
    from styx.state.db import Database

    db = Database(f"sqlite:///{styx.home / 'state.db'}")
    history = list_cluster_jobs(db, "t2", all_incarnations=True)
    assert [(j.job_id, j.status.value) for j in history] == [(1, "SUCCEEDED")]


def test_rerunning_the_quickstart_reuses_its_cluster(styx: Styx) -> None:
    """The README's first command, twice: the second launch reuses the first's cluster."""
    first = styx("launch", "examples/hello.yaml", "-y")
    assert first.returncode == 0, first.stderr
    before = {c["name"] for c in json.loads(styx("status", "--json", check=True).stdout)}
    second = styx("launch", "examples/hello.yaml", "-y")
    assert second.returncode == 0, second.stderr
    assert "Reusing cluster 'styx-" in second.stdout + second.stderr
    assert "hello from 0" in second.stdout
    after = {c["name"] for c in json.loads(styx("status", "--json", check=True).stdout)}
    assert after == before
    (name,) = [n for n in after if n.startswith("styx-")]
    assert styx("down", name, "-y").returncode == 0


def test_autostop_stops_then_down_removes(styx: Styx) -> None:
    r = styx("launch", "examples/hello.yaml", "-c", "t3", "-y", "-i", "0")
    assert r.returncode == 0, r.stderr

    def status() -> str | None:
        rows = json.loads(styx("status", "--json", check=True).stdout)
        return next((c["status"] for c in rows if c["name"] == "t3"), None)

    wait_for(lambda: status() == "STOPPED", 120, "autostop to stop t3")
    agent_root = str(styx.home / "clusters" / "t3" / "agent")
    wait_for(lambda: own_processes(agent_root) == [], 30, "t3's agent and Ray to stop")
    r = styx("launch", "examples/hello.yaml", "-c", "t3", "-y", "--down")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: status() is None, 120, "--down to remove t3")
    # The record goes first, then the agent stops everything: wait for the processes too.
    root = str(styx.home / "clusters" / "t3")
    wait_for(lambda: own_processes(root) == [], 60, "t3's processes to end after autodown")


def test_ctrl_c_while_following_leaves_the_job_running(styx: Styx, cluster: str) -> None:
    import signal
    import subprocess
    import sys

    r = styx("exec", cluster, "-d", "for i in $(seq 60); do echo tick $i; sleep 0.5; done")
    assert r.returncode == 0, r.stderr
    job_id = max(jobs(styx, cluster))
    follower = subprocess.Popen(
        [sys.executable, "-m", "styx.cli.main", "logs", cluster, str(job_id)],
        env=styx.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        # As from a terminal: a suite started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert follower.stdout is not None
    assert "tick" in follower.stdout.readline()  # it is following
    follower.send_signal(signal.SIGINT)
    _, err = follower.communicate(timeout=15)
    assert follower.returncode == 130
    assert "keeps running" in err and "Traceback" not in err
    assert jobs(styx, cluster)[job_id]["status"] == "RUNNING"
    assert styx("cancel", cluster, str(job_id)).returncode == 0


def test_python_sdk(styx: Styx, cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import styx as sdk

    monkeypatch.setenv("STYX_HOME", str(styx.home))
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    task = sdk.Task(name="sdk", run="echo from-sdk $SKYPILOT_NODE_RANK")
    result = sdk.launch(task, cluster)
    assert result.cluster_name == cluster
    record = sdk.wait(cluster, result.job_id, timeout=60)
    assert record.status.value == "SUCCEEDED"
    assert "from-sdk 0" in "".join(sdk.tail_logs(cluster, result.job_id, follow=False))
    assert result.job_id in [j.job_id for j in sdk.queue(cluster)]
    assert [c.name for c in sdk.status([cluster])] == [cluster]
