"""The runtime stage: Ray and the head-node agent on a cluster's nodes.

Ray and the agent run from the runtime interpreter recorded in the cluster handle. On the
local cluster that is the interpreter Styx itself runs in (installed with the ``runtime`` extra,
which brings Ray). Everything is started through argv lists from :mod:`styx.agent.bootstrap`.
"""

from __future__ import annotations

import socket
from pathlib import Path

from styx.agent import bootstrap
from styx.agent.client import AgentClient, PingInfo
from styx.agent.protocol import AgentConfig, AutostopConfig, NodeInfo
from styx.agent.version import agent_version
from styx.cluster.runner import Runner
from styx.errors import AgentError, NotSupportedError, StyxError
from styx.providers.base import ClusterHandle

#: Ray's object store per node: small by default, since jobs mostly run processes.
OBJECT_STORE_BYTES = 256 * 1024 * 1024


def socket_path(handle: ClusterHandle) -> str:
    return str(Path(handle.agent_root) / "agent.sock")


def client(handle: ClusterHandle, timeout: float | None = 30.0) -> AgentClient:
    """A client of the cluster's agent (local socket; SSH clusters forward it)."""
    if handle.provider != "local":
        raise NotSupportedError(
            f"Reaching the agent of a '{handle.provider}' cluster is not built yet."
        )
    return AgentClient(socket_path(handle), timeout=timeout)


def ping(handle: ClusterHandle) -> PingInfo | None:
    """What the agent says about itself, or None when it does not answer."""
    try:
        with client(handle, timeout=5.0) as c:
            return c.ping()
    except (StyxError, OSError):
        return None


def agent_current(handle: ClusterHandle) -> bool:
    """Whether the agent answers with this Styx's agent version (the fast path of --fast)."""
    info = ping(handle)
    return info is not None and info.agent_version == agent_version()


def _port_open(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((ip, port)) == 0


def agent_config(
    handle: ClusterHandle, autostop: AutostopConfig, stop_cmd: list[str], down_cmd: list[str]
) -> AgentConfig:
    """The agent.json for a handle."""
    return AgentConfig(
        cluster_name=handle.cluster_name,
        styx_version=agent_version(),
        ray_address=f"{handle.head.ip}:{handle.ray_port}",
        nodes=[
            NodeInfo(
                ip=n.ip,
                name=n.name,
                cpus=n.cpus,
                memory_gb=n.memory_gb,
                gpus=n.gpus,
                accelerator=n.accelerator,
            )
            for n in handle.nodes
        ],
        autostop=autostop,
        stop_command=stop_cmd,
        down_command=down_cmd,
        cloud=handle.provider,
    )


def start(
    handle: ClusterHandle,
    runner: Runner,
    *,
    autostop: AutostopConfig,
    commands: tuple[list[str], list[str]],
) -> None:
    """Bring up Ray on the head and the supervised agent; idempotent."""
    head = handle.head
    root = handle.agent_root
    ray_bin = str(Path(handle.python).with_name("ray"))
    temp_dir = bootstrap.default_temp_dir(root)
    if not _port_open(head.ip, handle.ray_port):
        argv = bootstrap.ray_head_argv(
            head.ip,
            num_cpus=head.cpus,
            num_gpus=head.gpus,
            memory_bytes=int(head.memory_gb * 1024**3),
            object_store_bytes=OBJECT_STORE_BYTES,
            ports=bootstrap.RayPorts.from_base(handle.ray_port),
            temp_dir=temp_dir,
            ray_bin=ray_bin,
        )
        runner.run(argv, timeout=120).check(f"Starting Ray on {head.name}")
    agent_config(handle, autostop, *commands).write(root)
    result = runner.run(bootstrap.agent_ensure_argv(root, handle.python), timeout=90)
    if result.returncode != 0:
        raise AgentError(
            f"The agent on {head.name} did not start: {(result.stderr or result.stdout).strip()[-300:]}",
            f"Look at {root}/agent.log on the head node; `styx down {handle.cluster_name}` cleans up.",
        )


def stop_node_processes(handle: ClusterHandle, runner: Runner) -> None:
    """Stop the agent, the jobs and this cluster's Ray on the head node."""
    argv = bootstrap.agent_stop_argv(
        handle.agent_root,
        handle.python,
        ray_temp_dir=bootstrap.default_temp_dir(handle.agent_root),
        ray_port=handle.ray_port,
    )
    runner.run(argv, timeout=120).check(f"Stopping the runtime of '{handle.cluster_name}'")
