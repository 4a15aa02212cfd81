"""The SSH provider: clusters made of the hosts of an SSH node pool (``infra: ssh/<pool>``).

A pool's hosts are given to one cluster at a time: hosts are chosen and the cluster's record is
written under the pool's lock, so two launches never share a host. The runtime lives in
``~/.styx/runtime`` on every host and the agent in ``~/.styx/agent`` on the head; the client
reaches the agent through a unix socket forwarded over the head's SSH ControlMaster.
``down`` stops the agent, every job process and Ray on every host, then frees the hosts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from styx.agent.bootstrap import DEFAULT_RAY_BASE_PORT
from styx.cluster.dests import NodeFolders
from styx.cluster.local_socket import accepts, forwarded_socket_path
from styx.cluster.runner import Runner
from styx.cluster.ssh import SSHHost, SSHRunner, raise_for_failures, run_parallel
from styx.errors import FailoverScope, HostUnreachable, ResourcesUnavailable, UsageError
from styx.providers.base import ClusterHandle, Node, ProvisionRequest, remote_node_folders
from styx.providers.local import canonical_gpu_name, parse_nvidia_smi
from styx.providers.ssh_pools import Pool, PoolHost, get_pool, load_pools

if TYPE_CHECKING:
    from styx.state.db import Database

#: First port of the block each host's Ray uses (hosts are dedicated to one cluster).
RAY_BASE_PORT = DEFAULT_RAY_BASE_PORT  # below the ephemeral ports: see there
BASE_PYTHON = "python3"

_RUNNERS: dict[tuple[object, ...], SSHRunner] = {}


def _ssh_host(h: PoolHost, name: str | None = None) -> SSHHost:
    return SSHHost(
        name=name or h.address,
        hostname=h.address,
        user=h.user,
        port=h.port,
        identity_file=h.identity_file,
        proxy_jump=h.proxy_jump,
    )


def runner_for(host: SSHHost) -> SSHRunner:
    """One runner (and so one ControlMaster) per host per process."""
    key = (host.name, host.hostname, host.user, host.port, host.identity_file, str(host.proxy_jump))
    if key not in _RUNNERS:
        _RUNNERS[key] = SSHRunner(host)
    return _RUNNERS[key]


def _pool_name(request_region: str | None) -> str:
    if request_region:
        return request_region
    pools = load_pools()
    if len(pools) == 1:
        return next(iter(pools))
    raise UsageError(
        "The task asks for infra 'ssh' without naming a pool"
        + (f", and there are {len(pools)} pools." if pools else ", and no pool is defined."),
        "Write `infra: ssh/<pool>` with a pool from ~/.styx/ssh_node_pools.yaml.",
        code="ssh-pool-ambiguous",
    )


def _facts(runner: SSHRunner) -> Node:
    """What one host has, asked over SSH (a few round trips on the shared master)."""
    run = runner.run
    connection = run(["printenv", "SSH_CONNECTION"]).check("printenv SSH_CONNECTION").stdout.split()
    ip = connection[2] if len(connection) >= 3 else (runner.host.hostname or runner.host.name)
    hostname = run(["hostname"]).check("hostname").stdout.strip() or runner.node_name
    cpus = float(run(["nproc"]).check("nproc").stdout.strip() or 1)
    meminfo = run(["cat", "/proc/meminfo"]).check("reading /proc/meminfo").stdout
    mem_kb = next(
        (int(ln.split()[1]) for ln in meminfo.splitlines() if ln.startswith("MemTotal:")),
        1024 * 1024,
    )
    smi = run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    gpus, accel = parse_nvidia_smi(smi.stdout) if smi.returncode == 0 else (0, None)
    return Node(
        name=hostname,
        ip=ip,
        cpus=cpus,
        memory_gb=round(mem_kb / 1024**2, 1),
        gpus=float(gpus),
        accelerator=canonical_gpu_name(accel) if accel else None,
        instance_id=runner.host.hostname,
    )


class SSHProvider:
    """Clusters on the hosts of SSH node pools."""

    name = "ssh"
    #: A pool's hosts are not Styx's to power off, and the record that frees them lives with
    #: the client, so the head cannot stop or release its own cluster.
    creates_machines = False  # nothing to leak: no record before provisioning

    # --- making and breaking ------------------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        from styx.config import database
        from styx.state.clusters import get_cluster, upsert_cluster
        from styx.state.locks import hold_lock
        from styx.state.records import ClusterStatus

        pool = get_pool(_pool_name(request.region))
        db = database()
        with hold_lock(
            db, f"ssh-pool:{pool.name}", purpose=f"launch {request.cluster_name}", timeout=120.0
        ):
            existing = get_cluster(db, request.cluster_name)
            if existing is not None and existing.provider == self.name:
                return ClusterHandle.from_json(dict(existing.handle))
            free = self._free(db, pool, request)
            handle = self._describe_reachable(request, pool, free)
            self._check_fit(request, handle)
            # Recorded before the lock is released: that is what reserves the hosts.
            upsert_cluster(
                db,
                request.cluster_name,
                provider=self.name,
                handle=handle.to_json(),
                status=ClusterStatus.INIT,
                num_nodes=request.num_nodes,
                launched_at=time.time(),
                message=f"hosts reserved in pool {pool.name}",
            )
        return handle

    @staticmethod
    def _free(db: Database, pool: Pool, request: ProvisionRequest) -> list[PoolHost]:
        """The pool's hosts no cluster holds, in the pool's order (at least ``num_nodes``)."""
        from styx.state.clusters import list_clusters

        holders: dict[str, str] = {}
        for record in list_clusters(db):
            extra = dict(record.handle).get("extra") or {}
            if record.provider == "ssh" and extra.get("pool") == pool.name:
                for address in extra.get("hosts", []):
                    holders[address] = record.name
        free = [h for h in pool.hosts if h.address not in holders]
        if len(free) < request.num_nodes:
            busy = ", ".join(sorted(set(holders.values()))) or "none"
            raise ResourcesUnavailable(
                f"SSH pool '{pool.name}' has {len(free)} free host(s) of {len(pool.hosts)}; "
                f"the task needs {request.num_nodes} (held by clusters: {busy}).",
                "Tear down a cluster on this pool (`styx down NAME`), add hosts, or lower "
                "num_nodes.",
            )
        return free

    def _describe_reachable(
        self, request: ProvisionRequest, pool: Pool, free: list[PoolHost]
    ) -> ClusterHandle:
        """Probe free hosts in order, passing over those that do not answer (a dead host must
        not stop a recovery), until ``num_nodes`` answered."""
        n = request.num_nodes
        chosen: list[tuple[PoolHost, SSHRunner, Node]] = []
        dead: list[tuple[str, Exception]] = []
        left = list(free)
        while len(chosen) < n and len(left) >= n - len(chosen):
            batch, left = left[: n - len(chosen)], left[n - len(chosen) :]
            # One connection attempt each: a host that does not answer is passed over at once
            # (the next free one is tried), not retried while the pool's lock is held.
            runners = [SSHRunner(_ssh_host(h), connect_retries=0) for h in batch]
            results = run_parallel(runners, _facts)
            for host, runner, result in zip(batch, runners, results, strict=True):
                if isinstance(result, Node):
                    chosen.append((host, runner, result))
                elif isinstance(result, HostUnreachable):
                    dead.append((runner.node_name, result))
                else:  # the host answers but fails: that is not for us to pass over
                    raise_for_failures([runner.node_name], [result], "Reaching the pool's hosts")
        if len(chosen) < n:
            each = "; ".join(f"{name}: {getattr(e, 'message', e)}" for name, e in dead)
            raise ResourcesUnavailable(
                f"SSH pool '{pool.name}' has {len(chosen)} reachable free host(s); the task "
                f"needs {n} ({len(dead)} did not answer: {each}).",
                "Bring the hosts back or add hosts to the pool, then retry.",
                scope=FailoverScope.REGION,
                details={"unreachable": [name for name, _ in dead]},
            )
        chosen.sort(key=lambda c: free.index(c[0]))
        return self._describe(request, pool, chosen)

    def _describe(
        self,
        request: ProvisionRequest,
        pool: Pool,
        chosen: list[tuple[PoolHost, SSHRunner, Node]],
    ) -> ClusterHandle:
        hosts = [h for h, _, _ in chosen]
        nodes = tuple(node for _, _, node in chosen)
        home = chosen[0][1].remote_home()
        venv = f"{home}/.styx/runtime"
        return ClusterHandle(
            cluster_name=request.cluster_name,
            provider=self.name,
            nodes=nodes,
            agent_root=f"{home}/.styx/agent",
            python=f"{venv}/bin/python",
            workdir=f"{home}/sky_workdir",
            ray_port=RAY_BASE_PORT,
            extra={
                "pool": pool.name,
                "hosts": [h.address for h in hosts],
                "ssh": [_host_json(h) for h in hosts],
                "runtime_venv": venv,
                "base_python": BASE_PYTHON,
            },
        )

    @staticmethod
    def _check_fit(request: ProvisionRequest, handle: ClusterHandle) -> None:
        for node in handle.nodes:
            if request.cpus is not None and request.cpus > node.cpus:
                raise ResourcesUnavailable(
                    f"Host {node.name} has {node.cpus:g} CPUs; the task asks for {request.cpus:g}.",
                    "Lower `cpus`, or use a pool with bigger hosts.",
                )
            for name, count in (request.accelerators or {}).items():
                if (
                    node.accelerator is None
                    or node.accelerator.upper() != name.upper()
                    or count > node.gpus
                ):
                    have = f"{node.gpus:g}x {node.accelerator}" if node.accelerator else "no GPU"
                    raise ResourcesUnavailable(
                        f"Host {node.name} has {have}; the task asks for {name}:{count:g}.",
                        "Drop `accelerators`, or use a pool whose hosts have them.",
                    )

    def is_up(self, handle: ClusterHandle) -> bool:
        return not self.unreachable_nodes(handle)

    def unreachable_nodes(self, handle: ClusterHandle) -> list[str]:
        """Names of the nodes that do not answer over SSH now."""
        runners = [self.runner(handle, i) for i in range(len(handle.nodes))]
        results = run_parallel(runners, lambda r: r.run(["true"], timeout=30).returncode == 0)
        return [n.name for n, ok in zip(handle.nodes, results, strict=True) if ok is not True]

    def gone_nodes(self, handle: ClusterHandle) -> list[str]:
        """Always ``[]``: a host that does not answer may be down or only cut off."""
        return []

    def stop(self, handle: ClusterHandle) -> None:
        from styx.cluster import runtime

        runtime.stop_node_processes(handle, self)

    def start(self, handle: ClusterHandle) -> ClusterHandle:
        return handle

    def terminate(self, handle: ClusterHandle) -> None:
        """Stop everything of ours on every reachable host; the record's deletion frees them."""
        from styx.cluster import runtime

        lost = set(self.unreachable_nodes(handle))
        alive = [i for i, n in enumerate(handle.nodes) if n.name not in lost]
        if alive:
            runtime.stop_node_processes(handle, self, nodes=alive)
            runtime.forget_node_state(handle, self, nodes=alive)  # the hosts stay, for others
        self._forget_socket(handle)

    # --- reaching the nodes -------------------------------------------------------------------

    def runner(self, handle: ClusterHandle, node_index: int = 0) -> Runner:
        raw = handle.extra["ssh"][node_index]
        return runner_for(SSHHost(**{**raw, "name": handle.nodes[node_index].name}))

    def agent_socket(self, handle: ClusterHandle) -> str:
        local = _socket_path(handle)
        if accepts(local):
            return local
        runner = self.runner(handle, 0)
        assert isinstance(runner, SSHRunner)
        return runner.forward_unix_socket(local, f"{handle.agent_root}/agent.sock")

    def _forget_socket(self, handle: ClusterHandle) -> None:
        local = _socket_path(handle)
        runner = self.runner(handle, 0)
        if isinstance(runner, SSHRunner):
            runner.cancel_forward(local, f"{handle.agent_root}/agent.sock")
        Path(local).unlink(missing_ok=True)

    def autostop_commands(self, handle: ClusterHandle) -> tuple[list[str], list[str]]:
        return [], []  # no autostop: see INFO's capabilities

    def node_folders(self, cluster_name: str, handle: ClusterHandle | None) -> NodeFolders:
        return remote_node_folders(handle)


def _host_json(h: PoolHost) -> dict[str, object]:
    return {
        "hostname": h.address,
        "user": h.user,
        "port": h.port,
        "identity_file": h.identity_file,
        "proxy_jump": h.proxy_jump,
    }


def _socket_path(handle: ClusterHandle) -> str:
    return forwarded_socket_path(f"{handle.cluster_name}:{handle.head.ip}")
