"""Kubernetes (``infra: k8s``, ``kubernetes`` or ``k8s/<context>``): pods in any context of the
user's kubeconfig (see :mod:`.provider`).

The credential check reads the kubeconfig and asks each allowed context's API server for its
version (3 s each, in parallel), so ``styx check`` lists the contexts it can reach. Offers
come from the nodes' allocatable (cached for a minute), priced by ``kubernetes.pricing``
(0 by default). Importing this package loads no Kubernetes client.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from styx.infra import Capabilities, Capability, InfraOffer, InfraStatus, NodeCapacity
from styx.providers.registry import InfraInfo

if TYPE_CHECKING:
    from styx.spec.task import Task

C = Capability
#: Seconds a context's node list is reused for planning.
NODES_TTL = 60.0


def contexts_status(timeout: float = 3.0) -> list[tuple[str, bool, str]]:
    """(context, reachable, what) for each context Styx may use."""
    from concurrent.futures import ThreadPoolExecutor

    from styx.providers.kubernetes import kubeconfig
    from styx.providers.kubernetes.provider import allowed_contexts_setting

    names = kubeconfig.allowed(kubeconfig.load(), allowed_contexts_setting())

    def one(name: str) -> tuple[str, bool, str]:
        from styx.providers.kubernetes import client

        try:
            return name, True, f"Kubernetes {client.version(name, timeout)}"
        except Exception as exc:  # unreachable, refused, bad credentials: not usable
            return name, False, _short(exc)

    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return list(pool.map(one, names))


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", "") or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "refused" in str(exc).lower():
        return "connection refused"
    return first[:120]


def check(probe: bool = False) -> InfraStatus:
    """Enabled when at least one allowed context's API server answers."""
    del probe
    from styx.providers.kubernetes import kubeconfig

    config = kubeconfig.load()
    if not config.contexts:
        return InfraStatus("kubernetes", False, "no kubeconfig with a context")
    try:
        import kubernetes  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
    except ImportError:
        from styx.paths import pip_install

        return InfraStatus(
            "kubernetes",
            False,
            f"the Kubernetes client is not installed (`{pip_install('kubernetes')}`)",
        )
    found = contexts_status()
    if not found:
        return InfraStatus(
            "kubernetes", False, "no current context and none in kubernetes.allowed_contexts"
        )
    parts = [
        f"{name}: {what}" if ok else f"{name}: unreachable ({what})" for name, ok, what in found
    ]
    return InfraStatus("kubernetes", any(ok for _, ok, _ in found), "contexts: " + "; ".join(parts))


def _nodes_cached(context: str) -> list[dict[str, Any]]:
    """Each node's allocatable CPUs, memory and GPUs (by Styx's accelerator name)."""
    from styx import paths

    cache = paths.home() / "cache" / f"k8s-nodes-{abs(hash(context)) % 10**8}.json"
    try:
        data = json.loads(cache.read_text())
        if data.get("context") == context and time.time() - float(data["at"]) < NODES_TTL:
            return list(data["nodes"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from styx.providers.kubernetes import client, gpus

    nodes = client.core(context).list_node(_request_timeout=(3.0, 10.0)).items
    out = [
        {"cpus": g.cpus, "memory_gb": g.memory_gb, "accelerator": g.accelerator, "gpus": g.total}
        for g in gpus.node_gpus(nodes, [])
    ]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"context": context, "at": time.time(), "nodes": out}))
    return out


def offers(task: Task) -> list[InfraOffer]:
    """One offer per allowed context that the task may use, with its nodes' allocatable; a
    pod costs what ``kubernetes.pricing`` says (0 by default)."""
    from styx.providers.kubernetes import kubeconfig
    from styx.providers.kubernetes.provider import allowed_contexts_setting, settings_for

    candidates = [c for c in task.resources.candidates() if c.cloud in (None, "kubernetes")]
    if not candidates:
        return []
    wanted = {c.region for c in candidates if c.cloud == "kubernetes"}
    names = kubeconfig.allowed(kubeconfig.load(), allowed_contexts_setting())
    first = candidates[0]
    accels = {a.name: float(a.count) for a in first.accelerators[:1]}
    cpus = first.cpus.count if first.cpus else None
    memory = first.memory.gb if first.memory is not None else None
    out = []
    for name in names:
        if wanted and None not in wanted and name not in wanted:
            continue
        try:
            nodes = _nodes_cached(name)
        except Exception:  # unreachable now: offers nothing (check says why)
            continue
        capacity = tuple(
            NodeCapacity(
                n["cpus"],
                n["memory_gb"],
                {n["accelerator"]: n["gpus"]} if n["accelerator"] and n["gpus"] else {},
            )
            for n in nodes
        )
        price = settings_for(name, dict(task.config) if task.config else None).hourly_price(
            cpus, memory, accels
        )
        out.append(InfraOffer("kubernetes", name, capacity, price))
    return out


INFO = InfraInfo(
    name="kubernetes",
    title="Kubernetes",
    capabilities=Capabilities.of(
        C.MULTI_NODE, C.AUTOSTOP, C.PORTS, C.CONTAINER_IMAGES, C.BUCKET_MOUNTS
    ),
    check=check,
    provider="styx.providers.kubernetes.provider:KubernetesProvider",
    offers=offers,
    aliases=("k8s",),
    task_config=(
        "kubernetes.pod_config",
        "kubernetes.provision_timeout",
        "kubernetes.custom_metadata",
    ),
)
