"""Autostop: the provider's stop/down command runs after the idle period, not before."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from styx.agent.autostop import MINUTE_ENV
from styx.agent.db import JobStore
from styx.agent.protocol import AutostopConfig, JobSpec

from .conftest import AgentHandle, RayCluster, start_agent, stop_agent

pytestmark = pytest.mark.ray
MINUTE_S = 0.5  # one "minute" of idle time lasts half a second in this module


@pytest.fixture(scope="module")
def handle(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory):
    # agent.json says 60 minutes: a real minute would never pass during the test.
    h = start_agent(
        tmp_path_factory.mktemp("autostop"),
        ray_cluster,
        autostop=AutostopConfig(idle_minutes=60),
        env={MINUTE_ENV: str(MINUTE_S)},
    )
    yield h
    stop_agent(h)


def wait_file(path: Path, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)
    return time.time()


def test_autostop_waits_for_idle_then_runs_stop_command(handle: AgentHandle) -> None:
    c = handle.client
    assert c.status().autostop == AutostopConfig(idle_minutes=60)
    job = c.submit(JobSpec(run="sleep 1.5"))
    assert c.set_autostop(1) == AutostopConfig(idle_minutes=1)  # 0.5 s in this module
    time.sleep(1.0)
    assert not (handle.root / "STOPPED").exists(), "fired while a job was running"
    ended = c.wait(job).ended_at
    assert ended is not None
    fired = wait_file(handle.root / "STOPPED", timeout=10)
    assert fired - ended >= MINUTE_S * 0.9
    events = JobStore(handle.root / "jobs.db").events("autostop")
    assert events[-1]["data"]["action"] == "stop"
    assert events[-1]["at"] >= ended
    assert c.status().autostop_fired_at is not None


def test_set_autostop_resets_timer_and_down(handle: AgentHandle) -> None:
    c = handle.client
    c.set_autostop(None)
    time.sleep(3 * MINUTE_S)
    assert not (handle.root / "DOWNED").exists()
    t = time.time()
    c.set_autostop(2, down=True)  # the idle clock starts again now, not at the last job's end
    fired = wait_file(handle.root / "DOWNED", timeout=10)
    assert fired - t >= 2 * MINUTE_S * 0.9
    assert JobStore(handle.root / "jobs.db").events("autostop")[-1]["data"]["action"] == "down"


def test_a_follower_of_a_jobs_output_holds_autostop_until_it_has_read_the_end(
    handle: AgentHandle,
) -> None:
    """`styx launch -i 0 --down` streams its job: the machines must not go while it reads."""
    from styx.agent.autostop import FOLLOWER_GRACE_S

    c = handle.client
    (handle.root / "STOPPED").unlink(missing_ok=True)
    c.set_autostop(0)
    job = c.submit(JobSpec(run="sleep 1; echo done"))
    out = "".join(c.tail_logs(job, follow=True))
    read_at = time.time()
    assert "done" in out
    fired = wait_file(handle.root / "STOPPED", timeout=20)
    assert fired - read_at >= FOLLOWER_GRACE_S * 0.8
