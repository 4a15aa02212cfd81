"""The local provider: this machine as a one-node cluster (``infra: local``).

It needs no account and is the embedded default when no other infra is enabled. Each local
cluster has a folder under ``$STYX_HOME/clusters/<name>`` (mode 0700) holding its agent root
(job table, logs) and the node's own home, ``home/``: as on a remote node, ``~`` in file mounts
and in jobs (``HOME``) means that folder, and the workdir is ``home/sky_workdir``. A sync never
writes outside it unless ``local.allowed_host_paths`` in config.yaml names a host folder (see
:mod:`styx.cluster.dests`). Its Ray runs on Styx-owned free ports on loopback, so several local
clusters and a user's own Ray on 6379 do not collide.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from styx import paths
from styx.agent.bootstrap import RayPorts
from styx.cluster.dests import NodeFolders, check_allowed_host_paths
from styx.cluster.runner import LocalRunner, Runner
from styx.providers.local_scan import orphaned_clusters

__all__ = ["LocalProvider", "local_node_folders", "orphan_handle", "orphaned_clusters"]
from styx.errors import ResourcesUnavailable
from styx.infra import Capabilities, Capability, InfraOffer, InfraStatus, NodeCapacity
from styx.providers.base import ClusterHandle, Node, ProvisionRequest
from styx.providers.registry import InfraInfo

if TYPE_CHECKING:
    from styx.spec.task import Task


def detect_cpus() -> float:
    """CPUs this process may use (affinity-aware)."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return float(os.cpu_count() or 1)


def detect_memory_gb() -> float:
    """Total memory in GiB, from /proc/meminfo."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / (1024 * 1024), 1)
    except OSError:
        pass
    return 1.0


def parse_nvidia_smi(output: str) -> tuple[int, str | None]:
    """GPU count and accelerator name from ``nvidia-smi --query-gpu=name --format=csv,noheader``."""
    names = [line.strip() for line in output.splitlines() if line.strip()]
    if not names:
        return 0, None
    return len(names), canonical_gpu_name(names[0])


def canonical_gpu_name(raw: str) -> str:
    """The catalog's name for an nvidia-smi name, e.g. 'NVIDIA H100 80GB HBM3' -> 'H100',
    'Tesla T4' -> 'T4', 'NVIDIA A100-SXM4-80GB' -> 'A100-80GB', 'GeForce RTX 4090' -> 'RTX4090'.
    """
    words = [w for w in raw.split() if w not in ("NVIDIA", "Tesla", "GeForce", "Quadro")]
    if not words:
        return raw.strip()
    if words[0] == "RTX" and len(words) > 1:
        return "RTX" + words[1]
    base, *rest = words[0].split("-")
    if base == "A100" and any(part.upper() == "80GB" for part in rest + words[1:]):
        return "A100-80GB"
    return base


def detect_gpus() -> tuple[int, str | None]:
    """NVIDIA GPUs on this machine via nvidia-smi, where present."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0, None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0, None
    if out.returncode != 0:
        return 0, None
    return parse_nvidia_smi(out.stdout)


def free_port_block(span: int) -> int:
    """The first port of ``span`` consecutive free ports (for one cluster's Ray)."""
    import random

    rng = random.Random()
    top = min(_ephemeral_low(), 60000) - span  # below the ephemeral ports: see bootstrap
    if top <= 10000:  # the kernel lends nearly every port: nothing is safer than the rest
        top = 60000 - span
    for _ in range(200):
        base = rng.randrange(10000, top)
        if all(_port_free(p) for p in (base, base + 1, base + 2, base + 20, base + span - 1)):
            return base
    raise ResourcesUnavailable(
        "No free block of ports was found for the cluster's Ray.",
        "Free some local ports, or stop other local clusters.",
    )


def _ephemeral_low() -> int:
    """The first port the kernel hands out for outgoing connections (Linux's default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_dir(cluster_name: str) -> Path:
    return paths.clusters_dir() / cluster_name


class LocalProvider:
    """This machine as a one-node cluster."""

    name = "local"
    creates_machines = False  # nothing to leak: no record before provisioning

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        if request.num_nodes != 1:
            raise ResourcesUnavailable(
                f"infra 'local' is one machine, but the task asks for {request.num_nodes} nodes.",
                "Use num_nodes: 1 for local, or an SSH node pool or cloud for multi-node tasks.",
            )
        cpus, mem = detect_cpus(), detect_memory_gb()
        gpus, gpu_name = detect_gpus()
        self._check_fit(request, cpus, mem, gpus, gpu_name)
        root = cluster_dir(request.cluster_name)
        for folder in (root, root / "agent", root / "home", root / "home" / "sky_workdir"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        node = Node(
            name=socket.gethostname() or "localhost",
            ip="127.0.0.1",
            cpus=cpus,
            memory_gb=mem,
            gpus=float(gpus),
            accelerator=gpu_name,
        )
        return ClusterHandle(
            cluster_name=request.cluster_name,
            provider=self.name,
            nodes=(node,),
            agent_root=str(root / "agent"),
            python=sys.executable,
            workdir=str(root / "home" / "sky_workdir"),
            ray_port=free_port_block(RayPorts.span()),
            extra={"root": str(root), "job_env": {"HOME": str(root / "home")}},
        )

    @staticmethod
    def _check_fit(
        request: ProvisionRequest, cpus: float, mem: float, gpus: int, gpu_name: str | None
    ) -> None:
        if request.cpus is not None and request.cpus > cpus:
            raise ResourcesUnavailable(
                f"The task asks for {request.cpus:g} CPUs but this machine has {cpus:g}.",
                "Lower `cpus`, or run on an SSH node pool or a cloud.",
            )
        if request.memory_gb is not None and request.memory_gb > mem:
            raise ResourcesUnavailable(
                f"The task asks for {request.memory_gb:g} GB of memory but this machine has {mem:g}.",
                "Lower `memory`, or run on an SSH node pool or a cloud.",
            )
        for name, count in (request.accelerators or {}).items():
            if gpu_name is None or count > gpus or name.upper() != gpu_name.upper():
                have = f"{gpus}x {gpu_name}" if gpu_name else "no GPUs"
                raise ResourcesUnavailable(
                    f"The task asks for {name}:{count:g} but this machine has {have}.",
                    "Drop `accelerators` to run here, or choose infra that has them.",
                )

    def is_up(self, handle: ClusterHandle) -> bool:
        return Path(handle.agent_root).is_dir()

    def unreachable_nodes(self, handle: ClusterHandle) -> list[str]:
        return []

    def gone_nodes(self, handle: ClusterHandle) -> list[str]:
        return []

    def stop(self, handle: ClusterHandle) -> None:
        from styx.cluster import runtime

        runtime.stop_node_processes(handle, self)

    def start(self, handle: ClusterHandle) -> ClusterHandle:
        return handle

    def terminate(self, handle: ClusterHandle) -> None:
        self.stop(handle)
        root = handle.extra.get("root")
        if root and Path(root).is_dir():
            shutil.rmtree(root, ignore_errors=True)

    def runner(self, handle: ClusterHandle, node_index: int = 0) -> Runner:
        return LocalRunner(handle.nodes[node_index].name)

    def node_folders(self, cluster_name: str, handle: ClusterHandle | None) -> NodeFolders:
        return local_node_folders(cluster_name, handle)

    def agent_socket(self, handle: ClusterHandle) -> str:
        return str(Path(handle.agent_root) / "agent.sock")

    def autostop_commands(self, handle: ClusterHandle) -> tuple[list[str], list[str]]:
        base = [
            handle.python,
            "-m",
            "styx.ops.autostop_hook",  # ops: stopping a cluster needs the state database
            "--cluster",
            handle.cluster_name,
            "--home",
            str(paths.home()),
        ]
        if os.environ.get("STYX_DB_URL"):
            base += ["--db-url", os.environ["STYX_DB_URL"]]
        return [*base, "stop"], [*base, "down"]


def local_node_folders(cluster_name: str, handle: ClusterHandle | None = None) -> NodeFolders:
    """What a sync may touch on a local cluster: its own home (``~``) and workdir, plus the
    host folders that ``local.allowed_host_paths`` in config.yaml names; never system folders,
    ``$HOME`` itself, ``STYX_HOME`` or another cluster's folder. Symlinks are followed."""
    from styx.agent.bootstrap import ray_private_dir
    from styx.config import user_config

    real = os.path.realpath
    root = real(cluster_dir(cluster_name))
    home = f"{root}/home"
    user_home, styx_home = real(Path.home()), real(paths.home())
    config = user_config()
    allowed = list(config.get("local.allowed_host_paths") or []) if config is not None else []
    check_allowed_host_paths(allowed, user_home, styx_home)
    owned = [home]
    if handle is not None and handle.workdir:  # clusters made before the node home existed
        owned.append(real(handle.workdir))
    agent = real(handle.agent_root) if handle is not None else f"{root}/agent"
    return NodeFolders(
        home=home,
        runtime=(agent, ray_private_dir(agent)),
        owned=tuple(owned),
        confined=True,
        allowed=tuple(real(os.path.expanduser(p)) for p in allowed),
        protected=(styx_home,),
        guarded=(user_home,),
        realpath=real,
    )


def orphan_handle(name: str) -> ClusterHandle | None:
    """A handle rebuilt from an orphaned local cluster's ``agent.json``, enough to stop its
    runtime and remove its folder; None when there is no such folder."""
    from styx.agent.protocol import AgentConfig
    from styx.errors import AgentError

    root = cluster_dir(name)
    try:
        config = AgentConfig.load(root / "agent")
    except (OSError, AgentError):
        if not root.is_dir():
            return None
        config = None
    port = int(config.ray_address.rpartition(":")[2]) if config is not None else 0
    node = Node(name=socket.gethostname() or "localhost", ip="127.0.0.1", cpus=1, memory_gb=1)
    return ClusterHandle(
        cluster_name=name,
        provider="local",
        nodes=(node,),
        agent_root=str(root / "agent"),
        python=sys.executable,
        workdir=str(root / "home" / "sky_workdir"),
        ray_port=port,
        extra={"root": str(root)},
    )


# --- the provider seam's declaration ---------------------------------------------------------


def check(probe: bool = False) -> InfraStatus:
    """This machine is always there."""
    del probe
    return InfraStatus("local", True, "this machine")


def offers(task: Task) -> list[InfraOffer]:
    """This machine, as one node with its CPUs, memory and GPUs, at ``local.hourly_price``
    from the config (0 by default)."""
    from styx.config import node_hourly_price

    del task
    gpus, gpu_name = detect_gpus()
    node = NodeCapacity(
        detect_cpus(), detect_memory_gb(), {gpu_name: float(gpus)} if gpu_name else {}
    )
    return [InfraOffer("local", "local", (node,), node_hourly_price("local"))]


INFO = InfraInfo(
    name="local",
    title="this machine",
    capabilities=Capabilities.of(
        Capability.PORTS,
        Capability.STOP,
        Capability.AUTOSTOP,
        Capability.CONTAINER_IMAGES,
        Capability.BUCKET_MOUNTS,
    ),
    check=check,
    provider="styx.providers.local:LocalProvider",
    offers=offers,
)
