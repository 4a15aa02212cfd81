"""Two Ray nodes on one machine (the second on 127.0.0.2 with its own temp dir and ports)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from styx.agent.paths import agent_id
from styx.agent.proctree import marked
from styx.agent.protocol import JobSpec, JobStatus, NodeInfo

from .conftest import HEAD_CPUS, HEAD_IP, AgentHandle, RayCluster, start_agent, stop_agent

pytestmark = pytest.mark.ray
WORKER_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def handle(
    ray_cluster: RayCluster,
    add_ray_worker: Callable[[str, int], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AgentHandle]:
    add_ray_worker(WORKER_IP, 1)
    nodes = [
        NodeInfo(ip=HEAD_IP, name="h1", cpus=HEAD_CPUS, memory_gb=2),
        NodeInfo(ip=WORKER_IP, name="h2", cpus=1, memory_gb=1),
    ]
    h = start_agent(tmp_path_factory.mktemp("multi"), ray_cluster, nodes=nodes)
    yield h
    stop_agent(h)


def test_two_node_job_ranks_and_prefixed_logs(handle: AgentHandle) -> None:
    c = handle.client
    job = c.submit(
        JobSpec(
            num_nodes=2,
            setup="echo setup $SKYPILOT_SETUP_NODE_RANK",
            run='echo "rank=$STYX_NODE_RANK n=$STYX_NUM_NODES '
            'ips=$(echo $STYX_NODE_IPS | tr " " ,)"; printf tail',
        )
    )
    out = "".join(c.tail_logs(job))
    rec = c.job(job)
    assert rec.status is JobStatus.SUCCEEDED and rec.nodes == [HEAD_IP, WORKER_IP]
    lines = out.splitlines()
    ips = f"{HEAD_IP},{WORKER_IP}"
    assert f"(rank 0, h1) rank=0 n=2 ips={ips}" in lines
    assert f"(rank 1, h2) rank=1 n=2 ips={ips}" in lines
    assert "(rank 0, h1) setup 0" in lines and "(rank 1, h2) setup 1" in lines
    assert "(rank 0, h1) tail" in lines and "(rank 1, h2) tail" in lines  # partial last lines
    # setup lines come before run lines: setup finished on every node first
    assert max(lines.index(x) for x in lines if "setup" in x) < lines.index(
        f"(rank 0, h1) rank=0 n=2 ips={ips}"
    )
    rank1 = (Path(rec.log_dir) / "rank-1.log").read_text()
    assert rank1 == f"setup 1\nrank=1 n=2 ips={ips}\ntail"


def test_failure_on_one_node_kills_the_other(handle: AgentHandle) -> None:
    c = handle.client
    t = time.monotonic()
    job = c.submit(
        JobSpec(
            num_nodes=2, run="if [ $STYX_NODE_RANK = 1 ]; then sleep 0.5; exit 9; fi; sleep 300"
        )
    )
    rec = c.wait(job, timeout=60)
    assert rec.status is JobStatus.FAILED and rec.exit_code == 9
    assert time.monotonic() - t < 20
    assert marked(f"{agent_id(handle.root, handle.config.cluster_name)}:{job}") == []


def test_cancel_multi_node_and_gang_waits_for_both_nodes(handle: AgentHandle) -> None:
    c = handle.client
    hog = c.submit(JobSpec(run="sleep 300", cpus=1, num_nodes=1))  # lands on the head
    worker_hog = c.submit(JobSpec(run="echo up; sleep 300", cpus=1, num_nodes=2))
    gang = c.submit(JobSpec(run="echo gang", cpus=1, num_nodes=2))
    seen = ""
    for chunk in c.tail_logs(worker_hog):
        seen += chunk
        if seen.count("up\n") == 2:
            break
    assert c.job(hog).status is JobStatus.RUNNING
    assert c.job(worker_hog).status is JobStatus.RUNNING
    assert c.job(gang).status is JobStatus.PENDING  # h2's only CPU is taken
    marker = f"{agent_id(handle.root, handle.config.cluster_name)}:{worker_hog}"
    assert len(marked(marker)) >= 2  # one bash per node
    assert c.cancel([worker_hog]) == [worker_hog]
    assert marked(marker) == []
    assert c.wait(gang, timeout=60).status is JobStatus.SUCCEEDED
    c.cancel([hog])
