"""The Kubernetes provider: clusters of pods in any context of the user's kubeconfig
(``infra: k8s`` or ``k8s/<context>``).

A launch makes the head's service account, role and binding, a headless Service over the
pods, a Service for ``ports``, then one pod per node, and waits for them to run. A pod that
stays unschedulable past ``kubernetes.provision_timeout`` is a capacity error for that
context (scope region), so an unpinned launch moves on to other infra. Commands and files go
through the API's exec (:mod:`.podexec`); the agent is reached through a per-cluster local
forwarder (:mod:`.forward`). Where the image has no fitting Python, Styx brings its own
(:mod:`styx.cluster.portable_python`).

Pods cannot be stopped; ``down`` deletes every object of the cluster, found by label.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from styx import paths
from styx.agent.bootstrap import DEFAULT_RAY_BASE_PORT
from styx.cluster.dests import NodeFolders
from styx.cluster.local_socket import accepts, forwarded_socket_path
from styx.cluster.runner import Runner
from styx.errors import (
    AgentError,
    FailoverScope,
    NoCapacity,
    NotSupportedError,
    RemoteError,
    ResourcesUnavailable,
)
from styx.providers.base import ClusterHandle, Node, ProvisionRequest, remote_node_folders
from styx.providers.kubernetes import client, gpus, kubeconfig, manifests, pods
from styx.providers.kubernetes.errors import translated
from styx.providers.kubernetes.podexec import PodRunner, exec_bytes
from styx.providers.kubernetes.settings import K8sSettings

RAY_BASE_PORT = DEFAULT_RAY_BASE_PORT  # below the ephemeral ports: see there
#: A pod without cpus or memory asked for gets these (SkyPilot's default pod is 2 CPUs, 8 GB).
DEFAULT_CPUS = 2.0
DEFAULT_MEMORY_PER_CPU_GB = 4.0
_GONE_PHASES = ("Failed", "Succeeded", "Unknown")

#: Prints the home folder, then each Python found with its version and whether it can make
#: a venv with pip (``ok``), one per line, up to the first that can.
_PROBE = r"""
echo "$HOME"
for p in python3.13 python3.12 python3.11 python3 python; do
  exe=$(command -v "$p" 2>/dev/null) || continue
  v=$("$exe" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  ok=no
  "$exe" -c 'import venv, ensurepip' 2>/dev/null && ok=ok
  echo "$exe $v $ok"
  [ "$ok" = ok ] && break
done
"""


def allowed_contexts_setting() -> object:
    from styx.config import user_config

    config = user_config()
    return config.get("kubernetes.allowed_contexts") if config is not None else None


def settings_for(context: str, task_config: Any = None) -> K8sSettings:
    ctx = kubeconfig.load().contexts.get(context)
    return K8sSettings.load(context, ctx.namespace if ctx else None, task_config)


class KubernetesProvider:
    name = "kubernetes"
    #: Pods hold cluster resources: the cluster is recorded (with its context) before they
    #: are made, so an interrupted launch is found and cleaned up by label.
    creates_machines = True
    #: ``docker:<image>`` is the pod's image, not a container on the node.
    native_images = True

    # --- making and breaking ------------------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        context = kubeconfig.resolve(request.region, allowed_contexts_setting())
        settings = settings_for(context, request.config)
        ns, cluster = settings.namespace, request.cluster_name
        names = manifests.pod_names(cluster, request.num_nodes)
        existing = pods.list_pods(context, ns, cluster)
        if existing:
            reused = self._reuse(context, settings, request, names, existing)
            if reused is not None:
                return reused
            pods.delete_cluster(context, ns, cluster)
        cpus = request.cpus or DEFAULT_CPUS
        memory = request.memory_gb or cpus * DEFAULT_MEMORY_PER_CPU_GB
        accel, count = next(iter((request.accelerators or {}).items()), (None, 0.0))
        terms: list[dict[str, Any]] = []
        if accel:
            terms = self._gpu_terms(context, ns, accel, count)
        image = _image(request.image_id, settings)
        objects: list[dict[str, Any]] = [
            manifests.service_account(cluster, settings),
            manifests.role(cluster, settings),
            manifests.role_binding(cluster, settings),
            manifests.headless_service(cluster, settings),
        ]
        ports = manifests.expand_ports(request.ports)
        if ports:
            objects.append(manifests.ports_service(cluster, settings, ports))
        resource = gpus.resource_for(accel) if accel else "nvidia.com/gpu"
        for i, pod_name in enumerate(names):
            objects.append(
                manifests.pod(
                    cluster, pod_name, i, settings, image=image, cpus=cpus, memory_gb=memory,
                    gpus=count, gpu_resource=resource, affinity_terms=terms,
                    env={"STYX_CLUSTER": cluster, "STYX_NODE_RANK": str(i)},
                )
            )  # fmt: skip
        try:
            made = pods.create_all(context, ns, objects)
            running = pods.wait_running(
                context, ns, cluster, names, provision_timeout=settings.provision_timeout
            )
            self._own_by_head(context, ns, running[0], made)
            return self._describe(context, settings, running, cpus, memory, accel, count, image)
        except BaseException:
            with contextlib.suppress(Exception):
                pods.delete_cluster(context, ns, cluster)
            raise

    def _gpu_terms(self, context: str, ns: str, accel: str, count: float) -> list[dict[str, Any]]:
        core = client.core(context)
        with translated(context, "listing nodes", provisioning=True):
            nodes = core.list_node(_request_timeout=client.TIMEOUT).items
        found = gpus.node_gpus(nodes, [])
        terms = gpus.matching_terms(found, accel)
        if not terms or not any(
            n.accelerator and n.accelerator.upper() == accel.upper() and n.total >= count
            for n in found
        ):
            have = sorted({f"{n.accelerator}:{n.total:g}" for n in found if n.accelerator})
            raise NoCapacity(
                f"No node of Kubernetes context '{context}' has {accel}:{count:g} "
                f"(GPUs there: {', '.join(have) or 'none'}).",
                "Ask for a GPU type the cluster has (`styx show-gpus --infra k8s`), or use "
                "other infra.",
                scope=FailoverScope.REGION,
                details={"cloud": "kubernetes", "region": context},
            )
        return terms

    def _own_by_head(self, context: str, ns: str, head: Any, made: list[Any]) -> None:
        """Let the head pod own every other object, so that deleting it (autostop's down from
        inside the cluster) garbage-collects the rest, the head's own role included."""
        core, rbac = client.core(context), client.rbac(context)
        patch = {"metadata": {"ownerReferences": [manifests.owner_reference(head)]}}
        patchers = {
            "V1Pod": core.patch_namespaced_pod,
            "V1Service": core.patch_namespaced_service,
            "V1ServiceAccount": core.patch_namespaced_service_account,
            "V1Role": rbac.patch_namespaced_role,
            "V1RoleBinding": rbac.patch_namespaced_role_binding,
        }
        for obj in made:
            name = obj.metadata.name
            if name == head.metadata.name:
                continue
            with translated(context, f"setting the owner of {name}", provisioning=True):
                patchers[type(obj).__name__](name, ns, patch, _request_timeout=client.TIMEOUT)

    def _reuse(
        self,
        context: str,
        settings: K8sSettings,
        request: ProvisionRequest,
        names: list[str],
        found: list[Any],
    ) -> ClusterHandle | None:
        by_name = {p.metadata.name: p for p in found}
        live = all(
            n in by_name and by_name[n].status and by_name[n].status.phase == "Running"
            for n in names
        )
        if not live or len(found) < len(names):
            return None
        running = [by_name[n] for n in names]
        container = running[0].spec.containers[0]
        requests = (container.resources.requests if container.resources else None) or {}
        cpus = gpus.quantity(requests.get("cpu", DEFAULT_CPUS))
        memory = gpus.quantity(requests.get("memory", 0)) / 2**30
        count = sum(float(requests.get(r, 0)) for r in gpus.GPU_RESOURCES)
        accel = next(iter(request.accelerators or {}), None) if count else None
        return self._describe(
            context, settings, running, cpus, memory, accel, count, container.image
        )

    def _describe(
        self,
        context: str,
        settings: K8sSettings,
        running: list[Any],
        cpus: float,
        memory: float,
        accel: str | None,
        count: float,
        image: str,
    ) -> ClusterHandle:
        ns = settings.namespace
        names = [p.metadata.name for p in running]
        cluster = running[0].metadata.labels[manifests.CLUSTER_LABEL]
        probes = _parallel(
            [
                lambda n=n: exec_bytes(context, ns, n, ["sh", "-c", _PROBE], timeout=60)
                for n in names
            ]
        )
        code, out, err = probes[0]
        if code != 0:
            raise ResourcesUnavailable(
                f"Pod {names[0]} cannot run /bin/sh: {(err or out).decode(errors='replace')[-200:]}",
                "Use an image with a POSIX shell (and tar).",
                code="k8s-pod-failed",
                scope=FailoverScope.REGION,
            )
        lines = out.decode(errors="replace").splitlines()
        home = (lines[0].strip() if lines else "") or "/root"
        base = _fitting_python(lines[1:])
        if base is None:
            base = self._bring_python(context, ns, names, home)
        else:
            missing = [
                n
                for (c, o, _), n in zip(probes, names, strict=True)
                if base not in o.decode(errors="replace")
            ]
            if missing:  # pods of one image agree; if not, they all get Styx's Python
                base = self._bring_python(context, ns, names, home)
        venv = f"{home}/.styx/runtime"
        nodes = tuple(
            Node(
                name=p.metadata.name,
                ip=str(p.status.pod_ip),
                cpus=cpus,
                memory_gb=memory,
                gpus=count,
                accelerator=accel,
                instance_id=p.metadata.uid,
            )
            for p in running
        )
        return ClusterHandle(
            cluster_name=str(cluster),
            provider=self.name,
            nodes=nodes,
            agent_root=f"{home}/.styx/agent",
            python=f"{venv}/bin/python",
            workdir=f"{home}/sky_workdir",
            ray_port=RAY_BASE_PORT,
            extra={
                "region": context,
                "context": context,
                "namespace": ns,
                "pods": names,
                "home": home,
                "image": image,
                "base_python": base,
                "runtime_venv": venv,
            },
        )

    def _bring_python(self, context: str, ns: str, names: list[str], home: str) -> str:
        from styx.cluster import portable_python

        archive = portable_python.archive()
        target = f"{home}/.styx"

        def unpack(name: str) -> None:
            with open(archive, "rb") as f:
                code, out, err = exec_bytes(
                    context, ns, name,
                    ["sh", "-c", 'mkdir -p "$1" && tar -x -z -o -C "$1" -f -', "sh", target],
                    stdin_file=f, timeout=900,
                )  # fmt: skip
            if code != 0:
                raise RemoteError(
                    f"Unpacking Styx's Python on pod {name} failed: "
                    f"{(err or out).decode(errors='replace').strip()[-300:]}",
                    "The image needs tar and gzip; or use an image with Python "
                    f"{portable_python.version()}.",
                )

        _parallel([lambda n=n: unpack(n) for n in names])
        return portable_python.node_python(home)

    def stop(self, handle: ClusterHandle) -> None:
        raise NotSupportedError(
            f"Cluster '{handle.cluster_name}' runs on Kubernetes pods, which cannot be stopped.",
            f"Tear it down with `styx down {handle.cluster_name}` (or use autostop with --down).",
        )

    def start(self, handle: ClusterHandle) -> ClusterHandle:
        raise NotSupportedError(
            f"Cluster '{handle.cluster_name}' runs on Kubernetes pods, which cannot be started "
            "again once stopped.",
            f"Launch it again: `styx launch -c {handle.cluster_name} TASK`.",
        )

    def terminate(self, handle: ClusterHandle) -> None:
        """Delete every object of the cluster, found by label (also those of a launch that
        was killed before it recorded them), and stop the local forwarder."""
        self._stop_forwarder(handle)
        context = str(handle.extra.get("context") or handle.extra.get("region") or "")
        if not context:
            context = kubeconfig.resolve(None, allowed_contexts_setting())
        ns = str(handle.extra.get("namespace") or settings_for(context).namespace)
        pods.delete_cluster(context, ns, handle.cluster_name)

    # --- state --------------------------------------------------------------------------------

    def _pod_phases(self, handle: ClusterHandle) -> dict[str, str]:
        """Each node's pod phase by node name (``missing`` when the pod is gone or being
        deleted). Raises (RemoteError) when the API server does not answer: an outage says
        nothing about the pods."""
        context, ns = str(handle.extra["context"]), str(handle.extra["namespace"])
        found = {p.metadata.name: p for p in pods.list_pods(context, ns, handle.cluster_name)}
        out = {}
        for node in handle.nodes:
            pod = found.get(node.name)
            if pod is None or pod.metadata.deletion_timestamp is not None:
                out[node.name] = "missing"
            elif node.instance_id and pod.metadata.uid != node.instance_id:
                out[node.name] = "missing"  # a new pod of that name is not this node
            else:
                out[node.name] = str(getattr(pod.status, "phase", None) or "Pending")
        return out

    def query(self, handle: ClusterHandle) -> dict[str, str]:
        return self._pod_phases(handle) if handle.nodes else {}

    def is_up(self, handle: ClusterHandle) -> bool:
        return bool(handle.nodes) and set(self._pod_phases(handle).values()) == {"Running"}

    def unreachable_nodes(self, handle: ClusterHandle) -> list[str]:
        return [n for n, phase in self._pod_phases(handle).items() if phase != "Running"]

    def gone_nodes(self, handle: ClusterHandle) -> list[str]:
        """Pods deleted, evicted or ended: a preemption for managed jobs."""
        phases = self._pod_phases(handle)
        return [n for n, phase in phases.items() if phase == "missing" or phase in _GONE_PHASES]

    # --- reaching the nodes -------------------------------------------------------------------

    def runner(self, handle: ClusterHandle, node_index: int = 0) -> Runner:
        node = handle.nodes[node_index]
        return PodRunner(
            str(handle.extra["context"]),
            str(handle.extra["namespace"]),
            node.name,
            home=str(handle.extra.get("home") or "/root"),
            node_name=node.name,
        )

    def _socket(self, handle: ClusterHandle) -> str:
        key = f"k8s:{handle.extra.get('context')}:{handle.extra.get('namespace')}:"
        return forwarded_socket_path(key + f"{handle.head.name}:{handle.head.instance_id}")

    def agent_socket(self, handle: ClusterHandle) -> str:
        local = self._socket(handle)
        if accepts(local):
            return local
        self._stop_forwarder(handle)
        python = str(handle.extra.get("base_python") or "python3")
        argv = [
            sys.executable, "-m", "styx.providers.kubernetes.forward",
            str(handle.extra["context"]), str(handle.extra["namespace"]), handle.head.name,
            python, f"{handle.agent_root}/agent.sock", local,
        ]  # fmt: skip
        log = paths.home() / "logs" / "k8s-forward.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": _styx_path()}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while not accepts(local):
            if proc.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                raise AgentError(
                    f"Could not forward the agent of '{handle.cluster_name}' from pod "
                    f"{handle.head.name} (see {log}).",
                    "Check the API server (`styx check kubernetes`), then retry.",
                    code="agent-unreachable",
                )
            time.sleep(0.02)
        return local

    def _stop_forwarder(self, handle: ClusterHandle) -> None:
        if not handle.nodes:
            return
        local = self._socket(handle)
        with contextlib.suppress(OSError, ValueError):
            pid = int(Path(local + ".pid").read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.02)
        for path in (local, local + ".pid"):
            with contextlib.suppress(OSError):
                os.unlink(path)

    def autostop_commands(self, handle: ClusterHandle) -> tuple[list[str], list[str]]:
        """No stop on pods; down deletes the cluster from inside through the head pod's
        service account (:mod:`.selfdown`, standard library only)."""
        ns = str(handle.extra["namespace"])
        module = "styx.providers.kubernetes.selfdown"
        selector = manifests.selector(handle.cluster_name)
        return [], [handle.python, "-m", module, ns, selector, handle.head.name]

    def node_folders(self, cluster_name: str, handle: ClusterHandle | None) -> NodeFolders:
        return remote_node_folders(handle)


def _styx_path() -> str:
    """PYTHONPATH that makes this Styx importable by a child process."""
    here = str(Path(__file__).resolve().parents[3])
    rest = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + rest if rest else "")


def _image(image_id: str | None, settings: K8sSettings) -> str:
    if image_id and image_id.startswith("docker:"):
        return image_id[len("docker:") :]
    if image_id:
        return image_id
    return settings.default_image


def _fitting_python(lines: list[str]) -> str | None:
    """The first probed Python that can carry the runtime: at least 3.11, able to make a
    venv with pip, and (with a wheelhouse of this Python's wheels) of this Python's version."""
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheelhouse = bool(os.environ.get("STYX_WHEELHOUSE"))
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[2] != "ok":
            continue
        exe, version = parts[0], parts[1]
        major, _, minor = version.partition(".")
        if not (major.isdigit() and minor.isdigit()) or (int(major), int(minor)) < (3, 11):
            continue
        if wheelhouse and version != mine:
            continue
        return exe
    return None


def _parallel(calls: list[Any]) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor

    if len(calls) == 1:
        return [calls[0]()]
    with ThreadPoolExecutor(max_workers=min(16, len(calls))) as pool:
        futures = [pool.submit(c) for c in calls]
        return [f.result() for f in futures]
