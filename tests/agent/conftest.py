"""Real Ray, real agents: one Ray head per test session, one agent per test module.

The head listens on loopback at a random free block of ports with a short temp dir of its own;
agents are started the way providers start them (``python -m styx.agent ensure``), so every
test goes through the supervisor, the socket and the client.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from styx.agent.bootstrap import (
    RayPorts,
    agent_ensure_argv,
    agent_stop_argv,
    default_temp_dir,
    ray_head_argv,
    ray_start_argv,
    ray_stop_argv,
    ray_worker_argv,
)
from styx.agent.client import AgentClient
from styx.agent.protocol import AgentConfig, AutostopConfig, NodeInfo

# Not 127.0.0.1: Ray treats that one as "this machine only" and lets no other node join, and
# test_multinode adds a second node on 127.0.0.2. The head binds here through the bind shim.
HEAD_IP = "127.0.0.3"
HEAD_CPUS = 2
HEAD_GPUS = 2  # Ray advertises GPUs it is told about; enough to test GPU accounting and ids
RAY_BIN = str(Path(sys.executable).parent / "ray")


def free_port_base() -> int:
    """A base whose whole RayPorts block is free on loopback right now."""
    for _ in range(200):
        # Below the kernel's ephemeral ports (32768+), as Styx's own blocks: an outgoing
        # connection's source port inside the block would keep Ray from binding it.
        base = random.randrange(10000, 32768 - RayPorts.span())
        ports = RayPorts.from_base(base)
        probe = [
            ports.gcs,
            ports.node_manager,
            ports.object_manager,
            ports.dashboard,
            ports.min_worker,
            ports.max_worker,
        ]
        if all(_free(p) for p in probe):
            return base
    raise RuntimeError("no free port block")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RayCluster:
    address: str
    temp_dir: str
    port: int
    root: Path  # where start-ray left Ray's settings (ray-env.json) for the agents


def _start_ray(root: Path, argv: list[str], ip: str) -> None:
    """As providers start it: private, marked as the cluster's, on loopback only."""
    subprocess.run(
        ray_start_argv(str(root), argv, ip, sys.executable),
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    pytest.importorskip("ray", reason="Ray is the runtime extra: pip install -e '.[runtime]'")
    ports = RayPorts.from_base(free_port_base())
    root = tmp_path_factory.mktemp("ray-head")
    temp_dir = default_temp_dir(str(root))
    argv = ray_head_argv(
        HEAD_IP,
        num_cpus=HEAD_CPUS,
        num_gpus=HEAD_GPUS,
        memory_bytes=2 * 1024**3,
        object_store_bytes=80 * 1024**2,
        ports=ports,
        temp_dir=temp_dir,
        ray_bin=RAY_BIN,
    )
    _start_ray(root, argv, HEAD_IP)
    try:
        yield RayCluster(f"{HEAD_IP}:{ports.gcs}", temp_dir, ports.gcs, root)
    finally:
        subprocess.run(ray_stop_argv(temp_dir, ports.gcs), timeout=120)


@pytest.fixture(scope="module")
def add_ray_worker(
    ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str, int], None]]:
    """Adds worker nodes (another loopback IP each) to the session's Ray for one module."""
    temp_dirs: list[str] = []

    def add(ip: str, cpus: int) -> None:
        root = tmp_path_factory.mktemp("ray-worker")
        temp_dir = default_temp_dir(str(root))
        argv = ray_worker_argv(
            ray_cluster.address,
            ip,
            num_cpus=cpus,
            memory_bytes=1024**3,
            object_store_bytes=80 * 1024**2,
            ports=RayPorts.from_base(free_port_base()),
            temp_dir=temp_dir,
            ray_bin=RAY_BIN,
        )
        _start_ray(root, argv, ip)
        temp_dirs.append(temp_dir)

    yield add
    for temp_dir in temp_dirs:
        subprocess.run(ray_stop_argv(temp_dir), timeout=120)


@dataclass
class AgentHandle:
    root: Path
    client: AgentClient
    config: AgentConfig

    @property
    def socket(self) -> Path:
        return self.root / "agent.sock"

    def pid(self) -> int:
        return int((self.root / "agent.pid").read_text())


def start_agent(
    root: Path,
    ray: RayCluster,
    *,
    nodes: list[NodeInfo] | None = None,
    autostop: AutostopConfig | None = None,
    env: dict[str, str] | None = None,
) -> AgentHandle:
    config = AgentConfig(
        cluster_name=f"t-{root.name}",
        styx_version="test",
        ray_address=ray.address,
        nodes=nodes
        or [
            NodeInfo(
                ip=HEAD_IP,
                name="head",
                cpus=HEAD_CPUS,
                memory_gb=2,
                gpus=HEAD_GPUS,
                accelerator="FAKEGPU",
            )
        ],
        autostop=autostop or AutostopConfig(),
        stop_command=["touch", str(root / "STOPPED")],
        down_command=["touch", str(root / "DOWNED")],
        env={"STYX_TEST_EXTRA": "extra"},
    )
    config.write(root)
    settings = ray.root / "ray-env.json"  # Ray's network settings, as on a real head node
    if settings.exists():
        shutil.copy(settings, root / "ray-env.json")
    subprocess.run(
        agent_ensure_argv(str(root), sys.executable),
        check=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    client = AgentClient(root / "agent.sock")
    deadline = time.monotonic() + 60
    while not client.ping().ray_connected:  # jobs wait in PENDING until then anyway
        assert time.monotonic() < deadline, "agent never joined Ray"
        time.sleep(0.05)
    return AgentHandle(root, client, config)


def stop_agent(handle: AgentHandle) -> None:
    handle.client.close()
    subprocess.run(agent_stop_argv(str(handle.root), sys.executable), timeout=120)


@pytest.fixture(scope="module")
def agent(
    ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentHandle]:
    handle = start_agent(tmp_path_factory.mktemp("agent"), ray_cluster)
    try:
        yield handle
    finally:
        stop_agent(handle)
