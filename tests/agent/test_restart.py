"""Durability: kill -9 of the agent, the supervisor bringing it back, and `ensure`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from styx.agent.bootstrap import agent_ensure_argv, agent_stop_argv
from styx.agent.client import AgentClient
from styx.agent.db import JobStore
from styx.agent.paths import agent_id
from styx.agent.proctree import marked
from styx.agent.protocol import JobSpec, JobStatus
from styx.agent.version import TEST_SUFFIX_ENV

from .conftest import AgentHandle, RayCluster, start_agent, stop_agent

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def handle(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory):
    h = start_agent(tmp_path_factory.mktemp("restart"), ray_cluster)
    yield h
    stop_agent(h)


def wait_for_new_agent(h: AgentHandle, old_pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    client = AgentClient(h.socket, timeout=5)
    while time.monotonic() < deadline:
        try:
            info = client.ping()
            if info.pid != old_pid and info.ray_connected:
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise AssertionError("the agent did not come back")


def test_kill9_agent_comes_back_without_losing_records(handle: AgentHandle) -> None:
    c = handle.client
    finished = [c.submit(JobSpec(name=f"done{i}", run="echo done")) for i in range(3)]
    for job_id in finished:
        assert c.wait(job_id).status is JobStatus.SUCCEEDED
    running = c.submit(JobSpec(name="long", run="echo started; sleep 300", cpus=2))
    for chunk in c.tail_logs(running):
        if "started" in chunk:
            break
    pending = c.submit(
        JobSpec(
            name="queued",
            run="echo resumed $SECRET",
            cpus=1,
            envs={"SECRET": "kept"},
            secret_env_names=["SECRET"],
        )
    )
    assert c.job(pending).status is JobStatus.PENDING
    marker = f"{agent_id(handle.root, handle.config.cluster_name)}:{running}"
    assert marked(marker)

    old = handle.pid()
    os.kill(old, signal.SIGKILL)
    wait_for_new_agent(handle, old)

    c = AgentClient(handle.socket)
    rec = c.job(running)
    assert rec.status is JobStatus.FAILED_DRIVER and "restarted" in (rec.failure_reason or "")
    deadline = time.monotonic() + 20
    while marked(marker):  # the new agent kills what the dead driver left behind
        assert time.monotonic() < deadline, "orphaned job processes survived"
        time.sleep(0.1)
    resumed = c.wait(pending, timeout=60)
    assert resumed.status is JobStatus.SUCCEEDED
    assert "".join(c.tail_logs(pending)) == "resumed kept\n"
    ids = {j.job_id for j in c.queue(all=True)}
    assert {*finished, running, pending} <= ids
    assert all(c.job(i).status is JobStatus.SUCCEEDED for i in finished)
    store = JobStore(handle.root / "jobs.db")
    assert len(store.events("agent_start")) == 2
    store.close()


def test_ensure_is_idempotent_and_replaces_other_versions(handle: AgentHandle) -> None:
    pid = handle.pid()
    t = time.monotonic()
    subprocess.run(agent_ensure_argv(str(handle.root), sys.executable), check=True)
    assert time.monotonic() - t < 5
    assert handle.pid() == pid  # already running at this version: left alone
    env = {**os.environ, TEST_SUFFIX_ENV: "-other"}
    subprocess.run(agent_ensure_argv(str(handle.root), sys.executable), check=True, env=env)
    other = AgentClient(handle.socket).ping()
    assert other.agent_version.endswith("-other") and other.pid != pid
    subprocess.run(agent_ensure_argv(str(handle.root), sys.executable), check=True)
    back = AgentClient(handle.socket).ping()
    assert not back.agent_version.endswith("-other")
    # A supervisor killed with its agent is brought back by ensure too.
    sup = int((handle.root / "supervisor.pid").read_text())
    os.kill(sup, signal.SIGKILL)
    os.kill(back.pid, signal.SIGKILL)
    subprocess.run(agent_ensure_argv(str(handle.root), sys.executable), check=True)
    assert AgentClient(handle.socket).ping().pid not in {back.pid, pid}


def test_stop_fails_running_jobs_and_kills_them(handle: AgentHandle) -> None:
    c = AgentClient(handle.socket)
    job = c.submit(JobSpec(run="echo up; sleep 300"))
    for chunk in c.tail_logs(job):
        if "up" in chunk:
            break
    marker = f"{agent_id(handle.root, handle.config.cluster_name)}:{job}"
    assert marked(marker)
    subprocess.run(agent_stop_argv(str(handle.root), sys.executable), check=True, timeout=60)
    assert marked(marker) == []
    assert not (handle.root / "agent.sock").exists()
    store = JobStore(handle.root / "jobs.db")
    rec = store.get(job)
    assert rec.status is JobStatus.FAILED_DRIVER and "stopped" in (rec.failure_reason or "")
    store.close()
    subprocess.run(agent_ensure_argv(str(handle.root), sys.executable), check=True)
    assert AgentClient(handle.socket).job(job).status is JobStatus.FAILED_DRIVER
