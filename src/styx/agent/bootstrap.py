"""Argv lists that start and stop a cluster's Ray and agent: pure functions, no I/O.

A provider runs these through its command runner (locally, or over SSH with the runtime venv's
python). Every Ray port is Styx-owned (see :class:`RayPorts`), so a user's own Ray on the default
ports (6379, 8265, 10001, ...) never collides with the cluster's, and Ray's temp dir is a
Styx-owned folder, which is also how :func:`ray_stop_argv` stops only this cluster's Ray.

Typical one-node start::

    ports = RayPorts.from_base()
    run(ray_head_argv("10.0.0.5", num_cpus=8, num_gpus=1, memory_bytes=..., ports=ports,
                      temp_dir=default_temp_dir(root)))
    AgentConfig(..., ray_address=f"10.0.0.5:{ports.gcs}", ...).write(root)
    run(agent_ensure_argv(root))
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys

#: First port of the block a cluster's Ray uses (GCS); SkyPilot's own is 6380. The whole block
#: lies below Linux's ephemeral range (32768-60999) and IANA's (49152-65535): a block inside it
#: collides with the source ports of a node's outgoing connections (rclone, SSH, Ray's own
#: clients), so that Ray fails to bind, or a probe connects to itself and finds a "Ray".
DEFAULT_RAY_BASE_PORT = 16380
#: Ports a node needs above its base: fixed services, then the workers' range.
_WORKER_OFFSET = 20
_WORKER_PORTS = 200


@dataclasses.dataclass(frozen=True, slots=True)
class RayPorts:
    """The ports one Ray node listens on. ``gcs`` matters only on the head."""

    gcs: int
    node_manager: int
    object_manager: int
    dashboard: int
    dashboard_agent_grpc: int
    dashboard_agent_listen: int
    metrics_export: int
    runtime_env_agent: int
    ray_client_server: int
    min_worker: int
    max_worker: int

    @classmethod
    def from_base(cls, base: int = DEFAULT_RAY_BASE_PORT) -> RayPorts:
        """A block of ``span()`` consecutive ports starting at ``base``."""
        return cls(
            gcs=base,
            node_manager=base + 1,
            object_manager=base + 2,
            dashboard=base + 3,
            dashboard_agent_grpc=base + 4,
            dashboard_agent_listen=base + 5,
            metrics_export=base + 6,
            runtime_env_agent=base + 7,
            ray_client_server=base + 8,
            min_worker=base + _WORKER_OFFSET,
            max_worker=base + _WORKER_OFFSET + _WORKER_PORTS - 1,
        )

    @staticmethod
    def span() -> int:
        """How many consecutive ports ``from_base`` uses (give a second node on the same
        machine a base at least this far away)."""
        return _WORKER_OFFSET + _WORKER_PORTS


def ray_private_dir(root: str) -> str:
    """The private folder (0700, removed when Ray stops) of the cluster whose agent root is
    ``root``, which holds its Ray temp dir; see :mod:`styx.agent.raynode`."""
    digest = hashlib.sha1(root.encode()).hexdigest()[:10]
    return f"/tmp/styx-ray-{tmp_tag()}{digest}"


def tmp_tag() -> str:
    """``STYX_TMP_TAG``, put in the names of the private folders Styx makes under /tmp (Ray's,
    the load balancers' sockets), so that several users of one machine (test runs side by side)
    can tell theirs apart; empty by default. Letters, digits and '-' only."""
    import os
    import re

    tag = os.environ.get("STYX_TMP_TAG", "")
    return tag if re.fullmatch(r"[A-Za-z0-9-]{0,16}", tag) else ""


def default_temp_dir(root: str) -> str:
    """A short, Styx-owned Ray temp dir for the cluster whose agent root is ``root``, inside
    its private folder.

    Short because Ray puts unix sockets under it (a socket path must stay under 108 bytes).
    """
    return f"{ray_private_dir(root)}/r"


def _node_args(
    node_ip: str,
    num_cpus: float,
    num_gpus: float,
    memory_bytes: int | None,
    object_store_bytes: int | None,
    ports: RayPorts,
    temp_dir: str | None,
    resources: str | None,
) -> list[str]:
    args = [
        "--node-ip-address",
        node_ip,
        "--num-cpus",
        str(int(num_cpus)),
        "--num-gpus",
        str(int(num_gpus)),
        "--node-manager-port",
        str(ports.node_manager),
        "--object-manager-port",
        str(ports.object_manager),
        "--dashboard-agent-grpc-port",
        str(ports.dashboard_agent_grpc),
        "--dashboard-agent-listen-port",
        str(ports.dashboard_agent_listen),
        "--metrics-export-port",
        str(ports.metrics_export),
        "--runtime-env-agent-port",
        str(ports.runtime_env_agent),
        "--min-worker-port",
        str(ports.min_worker),
        "--max-worker-port",
        str(ports.max_worker),
        "--disable-usage-stats",
    ]
    if memory_bytes is not None:  # without it every node claims the whole machine's memory
        args += ["--memory", str(int(memory_bytes))]
    if object_store_bytes is not None:
        args += ["--object-store-memory", str(int(object_store_bytes))]
    if temp_dir:
        args += ["--temp-dir", temp_dir]
    if resources:
        args += ["--resources", resources]
    return args


def ray_head_argv(
    node_ip: str,
    *,
    num_cpus: float,
    num_gpus: float = 0,
    memory_bytes: int | None = None,
    object_store_bytes: int | None = None,
    ports: RayPorts | None = None,
    temp_dir: str | None = None,
    resources: str | None = None,
    ray_bin: str = "ray",
) -> list[str]:
    """``ray start --head`` on Styx-owned ports, without the dashboard or usage stats."""
    ports = ports or RayPorts.from_base()
    return [
        ray_bin,
        "start",
        "--head",
        "--port",
        str(ports.gcs),
        "--dashboard-port",
        str(ports.dashboard),
        "--ray-client-server-port",
        str(ports.ray_client_server),
        "--include-dashboard=false",
        *_node_args(
            node_ip,
            num_cpus,
            num_gpus,
            memory_bytes,
            object_store_bytes,
            ports,
            temp_dir,
            resources,
        ),
    ]


def ray_worker_argv(
    head_address: str,
    node_ip: str,
    *,
    num_cpus: float,
    num_gpus: float = 0,
    memory_bytes: int | None = None,
    object_store_bytes: int | None = None,
    ports: RayPorts | None = None,
    temp_dir: str | None = None,
    resources: str | None = None,
    ray_bin: str = "ray",
) -> list[str]:
    """``ray start --address HEAD`` for a worker node (``head_address`` is ``ip:gcs_port``)."""
    ports = ports or RayPorts.from_base()
    return [
        ray_bin,
        "start",
        "--address",
        head_address,
        *_node_args(
            node_ip,
            num_cpus,
            num_gpus,
            memory_bytes,
            object_store_bytes,
            ports,
            temp_dir,
            resources,
        ),
    ]


def ray_start_argv(
    root: str, ray_argv: list[str], bind_ip: str, python: str | None = None
) -> list[str]:
    """Run ``ray_argv`` (:func:`ray_head_argv` or :func:`ray_worker_argv`, whose temp dir is
    :func:`default_temp_dir` of ``root``) as this cluster's Ray: private, marked as its own,
    listening on ``bind_ip`` only (see :mod:`styx.agent.raynode`)."""
    temp_dir = default_temp_dir(root)
    return [*_agent(python, "start-ray", root, "--temp-dir", temp_dir, "--bind", bind_ip),
            "--", *ray_argv]  # fmt: skip


def _agent(python: str | None, verb: str, root: str, *extra: str) -> list[str]:
    return [python or sys.executable, "-m", "styx.agent", verb, "--root", root, *extra]


def agent_ensure_argv(root: str, python: str | None = None, timeout_s: float = 60.0) -> list[str]:
    """Start the supervised agent unless one of this version already answers; exits 0 once the
    socket answers ping. Idempotent and fast when the agent is up (it is on `styx exec`'s path)."""
    return _agent(python, "ensure", root, "--timeout", str(timeout_s))


def agent_supervise_argv(root: str, python: str | None = None) -> list[str]:
    """The supervisor in the foreground (``ensure`` starts it detached): it runs the agent and
    restarts it whenever it dies."""
    return _agent(python, "supervise", root)


def agent_run_argv(root: str, python: str | None = None) -> list[str]:
    """The agent itself in the foreground (no supervisor)."""
    return _agent(python, "run", root)


def agent_call_argv(root: str, python: str | None = None) -> list[str]:
    """The stdin/stdout bridge: one JSON request in, the JSON reply lines out."""
    return _agent(python, "call", root)


def agent_stop_argv(
    root: str,
    python: str | None = None,
    *,
    ray_temp_dir: str | None = None,
    ray_port: int | None = None,
) -> list[str]:
    """Stop the supervisor, the agent and every job process it started on this node; with
    ``ray_temp_dir``/``ray_port`` also this cluster's Ray processes (not anyone else's)."""
    extra: list[str] = []
    if ray_temp_dir:
        extra += ["--ray-temp-dir", ray_temp_dir]
    if ray_port is not None:
        extra += ["--ray-port", str(ray_port)]
    return _agent(python, "stop", root, *extra)


def ray_stop_argv(temp_dir: str, port: int | None = None, python: str | None = None) -> list[str]:
    """Stop only the Ray processes of the cluster whose temp dir (and GCS port) is given; use it
    on worker nodes, which run no agent."""
    extra = ["--port", str(port)] if port is not None else []
    return [
        python or sys.executable,
        "-m",
        "styx.agent",
        "stop-ray",
        "--temp-dir",
        temp_dir,
        *extra,
    ]


def ray_stop_all_argv(ray_bin: str = "ray") -> list[str]:
    """``ray stop --force``: every Ray of this user on the machine. Last resort only."""
    return [ray_bin, "stop", "--force"]
