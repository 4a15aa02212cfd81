"""The runtime stage: Ray and the head-node agent on a cluster's nodes.

Ray and the agent run from the runtime interpreter recorded in the cluster handle. On the
local cluster that is the interpreter Styx itself runs in (installed with the ``runtime`` extra,
which brings Ray). Everything is started through argv lists from :mod:`styx.agent.bootstrap`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from styx.agent import bootstrap
from styx.agent.client import AgentClient, PingInfo
from styx.agent.protocol import AgentConfig, AutostopConfig, NodeInfo
from styx.agent.raynode import TOKEN_FILE
from styx.agent.version import agent_version
from styx.cluster.runner import Runner, put_file
from styx.cluster.target import ClusterTarget, NodeAccess, NodeSpec
from styx.errors import AgentError, StyxError

T = TypeVar("T")
H = TypeVar("H", bound=ClusterTarget)

#: Ray's GCS declares a silent node dead after about 1 s x 5 missed health checks (its default
#: is about 15 s and more), so a crashed host fails its jobs within seconds.
RAY_HEAD_ENV = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "5",
}

#: Ray's object store per node: small by default, since jobs mostly run processes.
OBJECT_STORE_BYTES = 256 * 1024 * 1024


def client(socket: str, timeout: float | None = 30.0) -> AgentClient:
    """A client of a cluster's agent through ``socket``: the local unix socket the cluster's
    provider makes reachable (``Provider.agent_socket``; ops resolve it)."""
    return AgentClient(socket, timeout=timeout)


def ping(socket: str) -> PingInfo | None:
    """What the agent behind ``socket`` says about itself, or None when it does not answer."""
    try:
        with client(socket, timeout=5.0) as c:
            return c.ping()
    except (StyxError, OSError):
        return None


def agent_current(socket: str) -> bool:
    """Whether the agent answers with this Styx's agent version (the fast path of --fast)."""
    info = ping(socket)
    return info is not None and info.agent_version == agent_version()


def ray_listening(runner: Runner, ip: str, port: int) -> bool:
    """Whether something listens on ip:port, asked from the node itself (no firewall between)."""
    probe = ["bash", "-c", 'exec 3<>"/dev/tcp/$1/$2"', "probe", ip, str(port)]
    return runner.run(probe, timeout=30).returncode == 0


def agent_config(
    handle: ClusterTarget, autostop: AutostopConfig, stop_cmd: list[str], down_cmd: list[str]
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
        env={str(k): str(v) for k, v in (handle.extra.get("job_env") or {}).items()},
        cloud=handle.provider,
    )


def start(handle: H, provider: NodeAccess[H], *, autostop: AutostopConfig) -> None:
    """Bring up Ray on every node (head first) and the supervised agent on the head; idempotent.
    ``provider`` (the cluster's provider) gives the runners and the autostop commands.

    When the head's Ray already listens, Ray is left alone and only the agent is ensured.
    """
    runners = [provider.runner(handle, i) for i in range(len(handle.nodes))]
    root = handle.agent_root
    config = agent_config(handle, autostop, *provider.autostop_commands(handle))
    # Every node gets agent.json: `stop` on a worker reads it to find this cluster's processes.
    each(runners, lambda r: put_file(r, config.to_json(), f"{root}/agent.json"), "agent.json")
    if not ray_listening(runners[0], handle.head.ip, handle.ray_port):
        # An agent left from a Ray that is gone (a relaunch after a lost state database, a
        # dead head) would keep the old address: it goes, and comes back with the new Ray.
        runners[0].run(bootstrap.agent_stop_argv(root, handle.python), timeout=120).check(
            f"Stopping a stale agent on {handle.head.name}"
        )
        _start_ray(handle, runners)
    result = runners[0].run(bootstrap.agent_ensure_argv(root, handle.python), timeout=90)
    if result.returncode != 0:
        raise AgentError(
            f"The agent on {handle.head.name} did not start: "
            f"{(result.stderr or result.stdout).strip()[-300:]}",
            f"Look at {root}/agent.log on the head node; `styx down {handle.cluster_name}` "
            "cleans up.",
        )


def _ray_args(handle: ClusterTarget, node: NodeSpec) -> dict[str, Any]:
    return {
        "num_cpus": node.cpus,
        "num_gpus": node.gpus,
        "memory_bytes": int(node.memory_gb * 1024**3),
        "object_store_bytes": OBJECT_STORE_BYTES,
        "ports": bootstrap.RayPorts.from_base(handle.ray_port),
        "temp_dir": bootstrap.default_temp_dir(handle.agent_root),
        "ray_bin": str(Path(handle.python).with_name("ray")),
    }


def _start_ray(handle: ClusterTarget, runners: list[Runner]) -> None:
    """Ray head on node 0, then every worker joins it in parallel; each node's Ray is private
    to the cluster, bound to the node's address and guarded by a fresh token (see
    :mod:`styx.agent.raynode`). Whatever is left of an earlier Ray of the cluster (a head that
    died, a worker that lost it) is stopped first."""
    import secrets

    root, python = handle.agent_root, handle.python
    temp_dir = bootstrap.default_temp_dir(root)
    stale = bootstrap.ray_stop_argv(temp_dir, python=python)
    each(runners, lambda r: r.run(stale, timeout=120).check("Stopping a stale Ray"), "stale Ray")
    token = secrets.token_hex(32)  # lives only in ROOT/ray-token (0600) on the nodes
    each(runners, lambda r: put_file(r, token, f"{root}/{TOKEN_FILE}", mode=0o600), "Ray token")
    head = handle.head
    argv = bootstrap.ray_head_argv(head.ip, **_ray_args(handle, head))
    start = bootstrap.ray_start_argv(root, argv, head.ip, python)
    runners[0].run(start, env=RAY_HEAD_ENV, timeout=180).check(f"Starting Ray on {head.name}")
    address = f"{head.ip}:{handle.ray_port}"

    def join(i: int) -> None:
        node = handle.nodes[i]
        argv = bootstrap.ray_worker_argv(address, node.ip, **_ray_args(handle, node))
        start = bootstrap.ray_start_argv(root, argv, node.ip, python)
        runners[i].run(start, timeout=180).check(f"Starting Ray on {node.name}")

    each(list(range(1, len(runners))), join, "Ray workers")


def each(items: Sequence[T], fn: Callable[[T], object], what: str) -> None:
    """Run ``fn`` on every item in parallel threads (its results are dropped); raise the first
    error, naming ``what``."""
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        errors = [f.exception() for f in [pool.submit(fn, item) for item in items]]
    failed = [e for e in errors if e is not None]
    if failed:
        first = failed[0]
        if isinstance(first, StyxError):
            raise first
        raise AgentError(f"{what} failed on {len(failed)} node(s): {first}.") from first


def stop_node_processes(
    handle: H, provider: NodeAccess[H], *, nodes: Sequence[int] | None = None
) -> None:
    """Stop the agent, every job process and this cluster's Ray on every node (or ``nodes``)."""
    argv = bootstrap.agent_stop_argv(
        handle.agent_root,
        handle.python,
        ray_temp_dir=bootstrap.default_temp_dir(handle.agent_root),
        ray_port=handle.ray_port,
    )

    def stop(i: int) -> None:
        runner = provider.runner(handle, i)
        runner.run(argv, timeout=120).check(f"Stopping the runtime on {handle.nodes[i].name}")

    targets = list(range(len(handle.nodes))) if nodes is None else list(nodes)
    each(targets, stop, f"Stopping '{handle.cluster_name}'")


#: What a cluster's agent keeps on a node, removed when the cluster goes from machines that stay
#: (an SSH pool's hosts): the next cluster there starts with no job table, logs or secrets of
#: this one. The bind shim (a build cache) and the runtime venv stay.
_NODE_STATE = (
    "jobs.db", "jobs.db-wal", "jobs.db-shm", "logs", "secrets", "agent.json", "agent.log",
    "autostop.log", TOKEN_FILE, "ray-env.json", "container.json", "container-scripts", "storage",
)  # fmt: skip


def forget_node_state(
    handle: H, provider: NodeAccess[H], *, nodes: Sequence[int] | None = None
) -> None:
    """Remove the cluster's agent state from its nodes (after :func:`stop_node_processes`)."""
    script = 'cd "$1" 2>/dev/null || exit 0; shift; rm -rf -- "$@"'
    argv = ["sh", "-c", script, "sh", handle.agent_root, *_NODE_STATE]

    def forget(i: int) -> None:
        provider.runner(handle, i).run(argv, timeout=60).check(
            f"Removing the agent's state on {handle.nodes[i].name}"
        )

    targets = list(range(len(handle.nodes))) if nodes is None else list(nodes)
    each(targets, forget, f"Cleaning up '{handle.cluster_name}'")
