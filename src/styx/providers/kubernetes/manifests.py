"""The objects Styx makes for a cluster on Kubernetes, all labelled with the cluster:

- one pod per node, ``<name>-head`` and ``<name>-worker-<i>``;
- a headless Service ``<name>`` over them (stable DNS names for the pods);
- a Service ``<name>-ports`` for the task's ``ports``, to the head pod;
- a ServiceAccount, Role and RoleBinding ``<name>-styx`` for the head pod: exactly what the head
  needs to tear its own cluster down (autostop with down), in its namespace only.

Object names are DNS labels: a cluster name that is not one is lowered, cleaned and suffixed
with a short hash, so two clusters never share objects.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from styx.providers.kubernetes.settings import K8sSettings, merge

CLUSTER_LABEL = "styx.dev/cluster"
NODE_LABEL = "styx.dev/node"
MANAGED = {"app.kubernetes.io/managed-by": "styx"}
CONTAINER = "styx"
#: The pod's main process: wait, and exit at once when the pod is deleted.
KEEPALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]


def base_name(cluster: str) -> str:
    """The cluster's name as a DNS label prefix (at most 40 characters)."""
    clean = re.sub(r"[^a-z0-9-]+", "-", cluster.lower()).strip("-") or "c"
    if clean == cluster and len(clean) <= 40:
        return clean
    digest = hashlib.sha1(cluster.encode()).hexdigest()[:6]
    return f"{clean[:33].rstrip('-')}-{digest}"


def label_value(cluster: str) -> str:
    """The cluster label's value (label values allow at most 63 characters of [A-Za-z0-9._-])."""
    return cluster if len(cluster) <= 63 else base_name(cluster)


def pod_names(cluster: str, n: int) -> list[str]:
    base = base_name(cluster)
    return [f"{base}-head"] + [f"{base}-worker-{i}" for i in range(1, n)]


def selector(cluster: str) -> str:
    return f"{CLUSTER_LABEL}={label_value(cluster)}"


def _meta(
    name: str, cluster: str, settings: K8sSettings, extra: Mapping[str, str] | None = None
) -> dict[str, Any]:
    labels = {**settings.labels, **MANAGED, CLUSTER_LABEL: label_value(cluster), **(extra or {})}
    meta: dict[str, Any] = {"name": name, "namespace": settings.namespace, "labels": labels}
    if settings.annotations:
        meta["annotations"] = dict(settings.annotations)
    return meta


def account_name(cluster: str) -> str:
    return f"{base_name(cluster)}-styx"


def service_account(cluster: str, settings: K8sSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(account_name(cluster), cluster, settings),
    }


def role(cluster: str, settings: K8sSettings) -> dict[str, Any]:
    """The head pod's rights: list and delete its cluster's pods, services and secrets."""
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
        {"apiGroups": [""], "resources": ["services", "secrets"], "verbs": ["list", "delete"]},
    ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(account_name(cluster), cluster, settings),
        "rules": rules,
    }


def role_binding(cluster: str, settings: K8sSettings) -> dict[str, Any]:
    name = account_name(cluster)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, cluster, settings),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": settings.namespace}],
    }


def headless_service(cluster: str, settings: K8sSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(base_name(cluster), cluster, settings),
        "spec": {
            "clusterIP": "None",
            "selector": {CLUSTER_LABEL: label_value(cluster)},
            "publishNotReadyAddresses": True,
        },
    }


def ports_service(cluster: str, settings: K8sSettings, ports: Sequence[int]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(f"{base_name(cluster)}-ports", cluster, settings),
        "spec": {
            "type": "ClusterIP",
            "selector": {CLUSTER_LABEL: label_value(cluster), NODE_LABEL: "head"},
            "ports": [
                {"name": f"port-{p}", "port": p, "targetPort": p, "protocol": "TCP"} for p in ports
            ],
        },
    }


def expand_ports(ports: Sequence[str]) -> list[int]:
    """``8080`` and ``8000-8002`` into the list of ports (at most 100)."""
    out: list[int] = []
    for p in ports:
        lo, _, hi = str(p).partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(out))[:100]


def pod(
    cluster: str,
    name: str,
    index: int,
    settings: K8sSettings,
    *,
    image: str,
    cpus: float,
    memory_gb: float,
    gpus: float = 0.0,
    gpu_resource: str = "nvidia.com/gpu",
    affinity_terms: Sequence[Mapping[str, Any]] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One node's pod: the keepalive main process in ``image``, requests (and limits when
    ``set_pod_resource_limits``), GPUs through node affinity, then ``pod_config`` merged in."""
    requests: dict[str, str] = {"cpu": _cpu(cpus), "memory": f"{int(memory_gb * 1024)}Mi"}
    if gpus:
        requests[gpu_resource] = str(int(gpus))
    resources: dict[str, Any] = {"requests": requests}
    if settings.limits:
        limits = {
            "cpu": _cpu(cpus * settings.limits),
            "memory": f"{int(memory_gb * 1024 * settings.limits)}Mi",
        }
        if gpus:
            limits[gpu_resource] = str(int(gpus))  # extended resources: limits equal requests
        resources["limits"] = limits
    elif gpus:
        resources["limits"] = {gpu_resource: str(int(gpus))}
    role_label = "head" if index == 0 else f"worker-{index}"
    base = base_name(cluster)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "hostname": name,
        "subdomain": base,
        "terminationGracePeriodSeconds": 10,
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": list(KEEPALIVE),
                "resources": resources,
                "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            }
        ],
    }
    if index == 0:
        spec["serviceAccountName"] = account_name(cluster)
    else:
        spec["automountServiceAccountToken"] = False
    if affinity_terms:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [dict(t) for t in affinity_terms]
                }
            }
        }
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(name, cluster, settings, {NODE_LABEL: role_label}),
        "spec": spec,
    }
    if settings.pod_config:
        manifest = merge(manifest, dict(settings.pod_config))
        manifest["metadata"]["name"] = name  # pod_config never renames or moves the pod
        manifest["metadata"]["namespace"] = settings.namespace
    return manifest


def _cpu(cpus: float) -> str:
    return f"{round(cpus * 1000)}m"


def owner_reference(head: Any) -> dict[str, Any]:
    """An ownerReference to the head pod: deleting the head garbage-collects the rest."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": head.metadata.name,
        "uid": head.metadata.uid,
        "blockOwnerDeletion": False,
    }
