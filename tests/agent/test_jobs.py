"""Jobs through a real agent on a real Ray: statuses, logs, env, cancel, many jobs, GPUs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from styx.agent.bootstrap import agent_call_argv
from styx.agent.paths import agent_id
from styx.agent.proctree import marked
from styx.agent.protocol import JobSpec, JobStatus, chunk_bytes, encode, is_chunk, request
from styx.errors import AgentError, JobNotFound

from .conftest import HEAD_IP, AgentHandle

pytestmark = pytest.mark.ray


def run(agent: AgentHandle, **kw: object) -> tuple[int, str]:
    """Submit, follow the logs to the end, return (job id, output)."""
    job_id = agent.client.submit(JobSpec(**kw))  # type: ignore[arg-type]
    return job_id, "".join(agent.client.tail_logs(job_id, follow=True))


def test_submit_queue_logs_wait(agent: AgentHandle) -> None:
    job_id, out = run(agent, name="hello", run="echo hello; echo world >&2")
    assert out == "hello\nworld\n"
    rec = agent.client.wait(job_id)
    assert rec.status is JobStatus.SUCCEEDED and rec.exit_code == 0
    assert rec.name == "hello" and rec.nodes == [HEAD_IP]
    assert rec.submitted_at <= rec.started_at <= rec.ended_at  # type: ignore[operator]
    assert job_id in [j.job_id for j in agent.client.queue()]
    assert agent.client.job(job_id) == rec
    assert "".join(agent.client.tail_logs(job_id, follow=False)) == out
    assert "".join(agent.client.tail_logs(job_id, follow=False, lines=1)) == "world\n"


def test_logs_carry_the_jobs_bytes_as_written(agent: AgentHandle) -> None:
    """Output that is not UTF-8 arrives byte for byte, followed or not (no U+FFFD)."""
    job_id = agent.client.submit(JobSpec(run=r"printf 'a\377\376b\n\303'; printf '\251\n'"))
    followed = b"".join(agent.client.tail_log_bytes(job_id, follow=True))
    assert followed == b"a\xff\xfeb\n\xc3\xa9\n"
    assert b"".join(agent.client.tail_log_bytes(job_id, follow=False)) == followed
    # the text view decodes across chunk ends and replaces only what is not UTF-8
    assert "".join(agent.client.tail_logs(job_id, follow=False)) == "a\ufffd\ufffdb\né\n"


def test_setup_failure_is_failed_setup(agent: AgentHandle) -> None:
    job_id, out = run(agent, setup="echo preparing; exit 3", run="echo never")
    rec = agent.client.job(job_id)
    assert rec.status is JobStatus.FAILED_SETUP and rec.exit_code == 3
    assert "preparing" in out and "never" not in out


def test_run_failure_keeps_exit_code(agent: AgentHandle) -> None:
    job_id, _ = run(agent, setup="true", run="echo oops; exit 42")
    rec = agent.client.job(job_id)
    assert rec.status is JobStatus.FAILED and rec.exit_code == 42
    assert "42" in (rec.failure_reason or "")


def test_env_vars(agent: AgentHandle, tmp_path: os.PathLike[str]) -> None:
    dump = 'python3 -c "import json,os; print(json.dumps(dict(os.environ)))"'
    job_id, out = run(
        agent,
        setup=f"{dump} > {tmp_path}/setup.json",
        run=dump,
        envs={"MINE": "1", "TOKEN": "s3cret"},
        secret_env_names=["TOKEN"],
        task_id="task-7",
        user="alice",
        cwd=str(tmp_path),
    )
    env = json.loads(out)
    setup_env = json.loads(Path(f"{tmp_path}/setup.json").read_text())
    for prefix in ("STYX_", "SKYPILOT_"):
        assert env[f"{prefix}NODE_RANK"] == "0"
        assert env[f"{prefix}NODE_IPS"] == HEAD_IP
        assert env[f"{prefix}NUM_NODES"] == "1"
        assert env[f"{prefix}NUM_GPUS_PER_NODE"] == "0"
        assert env[f"{prefix}TASK_ID"] == "task-7"
        assert json.loads(env[f"{prefix}CLUSTER_INFO"])["cluster_name"] == agent.config.cluster_name
        assert setup_env[f"{prefix}SETUP_NODE_RANK"] == "0"
        assert setup_env[f"{prefix}SETUP_NODE_IPS"] == HEAD_IP
        assert f"{prefix}NODE_RANK" not in setup_env
    assert env["SKYPILOT_USER"] == "alice"
    assert env["MINE"] == "1" and env["TOKEN"] == "s3cret"
    assert env["STYX_TEST_EXTRA"] == "extra"  # agent.json's env extras
    assert "RAY_ADDRESS" not in env  # Styx's Ray is not the job's: see below
    assert env["PWD"] == str(tmp_path)
    assert "RAY_JOB_ID" not in env and "OMP_NUM_THREADS" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # the head has GPUs; this job asked for none
    # Secrets reach the job but never the agent's database.
    assert b"s3cret" not in (agent.root / "jobs.db").read_bytes()
    wal = agent.root / "jobs.db-wal"
    assert not wal.exists() or b"s3cret" not in wal.read_bytes()
    assert not list((agent.root / "secrets").glob(f"{job_id}.json"))


def test_default_task_id_and_gpu_ids(agent: AgentHandle) -> None:
    _, out = run(
        agent,
        gpus=1,
        accelerator="fakegpu",
        run="echo $CUDA_VISIBLE_DEVICES $SKYPILOT_NUM_GPUS_PER_NODE $STYX_TASK_ID",
    )
    devices, per_node, task_id = out.split()
    assert devices in {"0", "1"} and per_node == "1"
    assert task_id.startswith("styx-") and task_id.endswith(
        f"_{agent.config.cluster_name}_" + task_id.rsplit("_", 1)[1]
    )


def test_a_jobs_ray_init_does_not_find_styxs_ray(agent: AgentHandle) -> None:
    """As on SkyPilot: the cluster's Ray is Styx's own (private folder, ports of its own, no
    RAY_ADDRESS), so a plain `ray.init()` in a job starts or finds the user's Ray, never
    Styx's. (tests/ops/test_ssh_cluster.py runs a 2-node task that starts its own Ray.)"""
    prog = "import ray; ray.init(); print('ADDR', ray.get_runtime_context().gcs_address)"
    _, out = run(agent, run=f'{sys.executable} -c "{prog}"', cpus=0.5)
    assert "ADDR " in out, out
    assert f":{agent.config.ray_address.split(':')[1]}" not in out


def test_infeasible_and_unknown_jobs_are_typed_errors(agent: AgentHandle) -> None:
    with pytest.raises(AgentError) as e:
        agent.client.submit(JobSpec(run="true", cpus=64))
    assert e.value.code == "job-infeasible"
    with pytest.raises(AgentError):
        agent.client.submit(JobSpec(run="true", accelerator="H100", gpus=1))
    with pytest.raises(JobNotFound):
        agent.client.job(10**9)
    with pytest.raises(JobNotFound):
        agent.client.cancel([10**9])


def test_cancel_kills_whole_process_tree(agent: AgentHandle, tmp_path: os.PathLike[str]) -> None:
    pids = f"{tmp_path}/pids"
    script = f"""
    sleep 300 & echo $! >> {pids}
    bash -c 'sleep 301 & echo $! >> {pids}; wait' &
    setsid bash -c 'sleep 302 & echo $! >> {pids}; wait' &
    echo $$ >> {pids}
    echo started
    wait
    """
    job_id = agent.client.submit(JobSpec(run=script))
    for chunk in agent.client.tail_logs(job_id):
        if "started" in chunk:
            break
    deadline = time.monotonic() + 10
    while len(Path(pids).read_text().split()) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    marker = f"{agent_id(agent.root, agent.config.cluster_name)}:{job_id}"
    assert len(marked(marker)) >= 6  # bash, 3 sleeps, 2 sub-shells
    assert agent.client.cancel([job_id]) == [job_id]
    assert marked(marker) == []
    for pid in map(int, Path(pids).read_text().split()):
        assert not _alive(pid), f"pid {pid} survived cancel"
    rec = agent.client.wait(job_id)
    assert rec.status is JobStatus.CANCELLED
    assert agent.client.cancel([job_id]) == []  # terminal states never change


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_hundred_jobs_statuses_and_overlap(agent: AgentHandle) -> None:
    specs = []
    for i in range(100):
        if i % 10 == 3:
            specs.append(JobSpec(name=f"j{i}", run=f"exit {i % 7 + 1}"))
        elif i % 10 == 7:
            specs.append(JobSpec(name=f"j{i}", setup="exit 1", run="true"))
        else:
            specs.append(JobSpec(name=f"j{i}", run="sleep 1" if i < 8 else "true"))
    ids = [agent.client.submit(s) for s in specs]
    records = [agent.client.wait(i, timeout=120) for i in ids]
    for i, rec in enumerate(records):
        expected = (
            JobStatus.FAILED
            if i % 10 == 3
            else JobStatus.FAILED_SETUP
            if i % 10 == 7
            else JobStatus.SUCCEEDED
        )
        assert rec.status is expected, (i, rec)
        if expected is JobStatus.FAILED:
            assert rec.exit_code == i % 7 + 1
    # 0.5 CPU each on 2 CPUs: the first sleeping jobs ran four at a time.
    sleepers = [r for i, r in enumerate(records[:8]) if specs[i].run == "sleep 1"]
    overlaps = sum(
        1
        for a in sleepers
        for b in sleepers
        if a.job_id < b.job_id and a.started_at < b.ended_at and b.started_at < a.ended_at
    )  # type: ignore[operator]
    assert overlaps >= 3
    assert all(j.job_id in ids for j in agent.client.queue(limit=100)[:100])
    assert len(agent.client.queue(all=True)) >= 100


def test_priority_and_backfill(agent: AgentHandle) -> None:
    big = agent.client.submit(JobSpec(run="sleep 0.5", cpus=2))
    waiting_big = agent.client.submit(JobSpec(run="true", cpus=2))
    small_low = agent.client.submit(JobSpec(run="true", cpus=0.5, priority=-1))
    urgent = agent.client.submit(JobSpec(run="true", cpus=2, priority=10))
    recs = {i: agent.client.wait(i, timeout=60) for i in (big, waiting_big, small_low, urgent)}
    assert all(r.status is JobStatus.SUCCEEDED for r in recs.values())
    # The urgent job jumped the queue of equally big jobs...
    assert recs[urgent].started_at < recs[waiting_big].started_at  # type: ignore[operator]
    # ...and nothing ran beside the 2-CPU jobs.
    assert recs[small_low].started_at >= recs[big].ended_at  # type: ignore[operator]


def test_cancel_pending_and_all(agent: AgentHandle) -> None:
    hog = agent.client.submit(JobSpec(run="sleep 30", cpus=2))
    queued = [agent.client.submit(JobSpec(run="true", cpus=1)) for _ in range(3)]
    time.sleep(0.2)
    assert agent.client.job(queued[0]).status is JobStatus.PENDING
    assert agent.client.cancel([queued[0]]) == [queued[0]]
    assert sorted(agent.client.cancel(all=True)) == sorted([hog, *queued[1:]])
    assert {agent.client.wait(i).status for i in [hog, *queued]} == {JobStatus.CANCELLED}
    status = agent.client.status()
    assert status.pending == status.running == 0 and status.idle


def test_wire_errors_are_typed_replies(agent: AgentHandle) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(agent.socket))
        f = s.makefile("rwb")
        for line, code in (
            (b'{"v": 99, "op": "ping"}', "agent-protocol-mismatch"),
            (b"not json", "invalid-request"),
            (b'{"v": 3, "op": "drop_tables"}', "invalid-request"),
            (b'{"v": 3, "op": "job", "args": {"job_id": 999999}}', "job-not-found"),
            (b'{"v": 3, "op": "submit", "args": {"spec": {"rn": "x"}}}', "invalid-request"),
        ):
            f.write(line + b"\n")
            f.flush()
            reply = json.loads(f.readline())
            assert reply["ok"] is False and reply["error"]["code"] == code, reply
            assert reply["error"]["message"] and reply["error"]["hint"]
        f.write(b'{"v": 3, "op": "ping"}\n')  # the connection is still good
        f.flush()
        assert json.loads(f.readline())["ok"] is True


def test_call_bridge(agent: AgentHandle) -> None:
    job_id = agent.client.submit(JobSpec(run="echo bridged"))
    agent.client.wait(job_id)
    requests = [
        request("ping"),
        request("tail_logs", {"job_id": job_id, "follow": True}),
        request("job", {"job_id": job_id}),
    ]
    out = subprocess.run(
        agent_call_argv(str(agent.root), sys.executable),
        check=True,
        input=b"".join(encode(r) for r in requests),
        capture_output=True,
    )
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert replies[0]["result"]["cluster_name"] == agent.config.cluster_name
    assert b"".join(chunk_bytes(r) for r in replies[1:-2] if is_chunk(r)) == b"bridged\n"
    assert replies[-2]["result"]["status"] == "SUCCEEDED"
    assert replies[-1]["result"]["job"]["job_id"] == job_id


def test_fractional_gpus_share_and_whole_gpus_are_exclusive(agent: AgentHandle) -> None:
    c = agent.client
    ids = [
        c.submit(JobSpec(gpus=0.5, cpus=0.25, run="echo $CUDA_VISIBLE_DEVICES; sleep 1"))
        for _ in range(4)
    ]
    recs = [c.wait(i, timeout=60) for i in ids]
    assert all(r.status is JobStatus.SUCCEEDED for r in recs)
    assert max(r.started_at for r in recs) < min(r.ended_at for r in recs)  # type: ignore[type-var]
    devices = ["".join(c.tail_logs(i)).strip() for i in ids]
    assert sorted(devices) == ["0", "0", "1", "1"]  # two halves on each of the two GPUs
    _, out = run(agent, gpus=2, run="echo $CUDA_VISIBLE_DEVICES $STYX_NUM_GPUS_PER_NODE")
    assert out.split() == ["0,1", "2"]
