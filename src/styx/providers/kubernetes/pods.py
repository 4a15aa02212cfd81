"""Making a cluster's objects, waiting for its pods, and removing everything by label."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from styx.errors import FailoverScope, NoCapacity, ResourcesUnavailable
from styx.providers.kubernetes import client, manifests
from styx.providers.kubernetes.errors import translated

#: Container waiting reasons that mean the image will not come.
IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
#: Seconds a scheduled pod may take to run (image pull, container start).
START_TIMEOUT = 900.0


def create_all(context: str, namespace: str, objects: Sequence[dict[str, Any]]) -> list[Any]:
    """Create ``objects`` in order; returns what the API answered for each."""
    core, rbac = client.core(context), client.rbac(context)
    made = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        create: Callable[..., Any] = {
            "Pod": core.create_namespaced_pod,
            "Service": core.create_namespaced_service,
            "ServiceAccount": core.create_namespaced_service_account,
            "Secret": core.create_namespaced_secret,
            "Role": rbac.create_namespaced_role,
            "RoleBinding": rbac.create_namespaced_role_binding,
        }[kind]
        with translated(context, f"creating {kind} {name}", provisioning=True):
            made.append(create(namespace, obj, _request_timeout=client.TIMEOUT))
    return made


def list_pods(context: str, namespace: str, cluster: str) -> list[Any]:
    core = client.core(context)
    with translated(context, "listing the cluster's pods"):
        found = core.list_namespaced_pod(
            namespace, label_selector=manifests.selector(cluster), _request_timeout=client.TIMEOUT
        )
    return list(found.items)


def wait_running(
    context: str,
    namespace: str,
    cluster: str,
    names: Sequence[str],
    *,
    provision_timeout: float | None,
) -> list[Any]:
    """The pods ``names``, once every one is Running with an IP (in the order of ``names``).

    NoCapacity (scope region: the context) when a pod stays unschedulable for longer than
    ``provision_timeout``; ResourcesUnavailable when its image cannot be pulled or it fails
    to start."""
    core = client.core(context)
    start = time.monotonic()
    delay = 0.05
    while True:
        pods = {p.metadata.name: p for p in list_pods(context, namespace, cluster)}
        ready = []
        for name in names:
            pod = pods.get(name)
            if pod is None:
                raise ResourcesUnavailable(
                    f"Pod {name} disappeared while starting (deleted or evicted).",
                    "Retry the launch; check the namespace's policies if it keeps happening.",
                    code="k8s-pod-failed",
                    scope=FailoverScope.REGION,
                )
            status = pod.status
            phase = getattr(status, "phase", None)
            if phase == "Running" and getattr(status, "pod_ip", None):
                ready.append(pod)
                continue
            _raise_if_failed(pod, name)
            waited = time.monotonic() - start
            unscheduled = _unschedulable(pod)
            if (
                unscheduled is not None
                and provision_timeout is not None
                and waited > provision_timeout
            ):
                why = _scheduling_event(core, context, namespace, name) or unscheduled
                raise NoCapacity(
                    f"Kubernetes context '{context}' could not schedule pod {name} within "
                    f"{provision_timeout:g} s: {why}",
                    "Free capacity in the cluster, ask for less, raise "
                    "`kubernetes.provision_timeout`, or let Styx use other infra.",
                    scope=FailoverScope.REGION,
                    details={"cloud": "kubernetes", "region": context, "pod": name},
                )
            if waited > START_TIMEOUT:
                raise ResourcesUnavailable(
                    f"Pod {name} did not start within {START_TIMEOUT:g} s (phase {phase}).",
                    "Check the pod's events (`kubectl describe pod`), then retry.",
                    code="k8s-pod-failed",
                    scope=FailoverScope.REGION,
                )
        if len(ready) == len(names):
            return ready
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _unschedulable(pod: Any) -> str | None:
    for cond in getattr(pod.status, "conditions", None) or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return str(cond.message or cond.reason or "unschedulable")
    return None


def _scheduling_event(core: Any, context: str, namespace: str, name: str) -> str | None:
    try:
        events = core.list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.name={name}",
            _request_timeout=client.TIMEOUT,
        )
    except Exception:  # the condition's message is enough
        return None
    for event in reversed(list(events.items)):
        if event.reason == "FailedScheduling" and event.message:
            return str(event.message)
    return None


def _raise_if_failed(pod: Any, name: str) -> None:
    status = pod.status
    for cs in getattr(status, "container_statuses", None) or []:
        waiting = getattr(getattr(cs, "state", None), "waiting", None)
        if waiting is not None and waiting.reason in IMAGE_ERRORS:
            raise ResourcesUnavailable(
                f"Pod {name} cannot pull its image {cs.image}: {waiting.message or waiting.reason}.",
                "Check `image_id` (docker:<image>) and the registry's credentials.",
                code="image-not-found",
                scope=FailoverScope.REGION,
            )
    if getattr(status, "phase", None) in ("Failed", "Succeeded"):
        reason = getattr(status, "reason", None) or getattr(status, "message", None)
        for cs in getattr(status, "container_statuses", None) or []:
            term = getattr(getattr(cs, "state", None), "terminated", None)
            if term is not None:
                reason = f"its container exited with code {term.exit_code} ({term.reason or term.message})"
        raise ResourcesUnavailable(
            f"Pod {name} stopped while starting: {reason or 'no reason given'}.",
            "The image must be able to run /bin/sh; check it with `kubectl logs`.",
            code="k8s-pod-failed",
            scope=FailoverScope.REGION,
        )


#: (kind, list call, delete call) of everything Styx makes, pods last (they hold the rest).
def delete_cluster(context: str, namespace: str, cluster: str, *, wait: float = 60.0) -> None:
    """Delete every object of the cluster, found by label, and wait until its pods are gone."""
    core, rbac = client.core(context), client.rbac(context)
    sel = manifests.selector(cluster)
    t = client.TIMEOUT
    kinds: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        ("pods", core.list_namespaced_pod, core.delete_namespaced_pod),
        ("services", core.list_namespaced_service, core.delete_namespaced_service),
        ("secrets", core.list_namespaced_secret, core.delete_namespaced_secret),
        ("role bindings", rbac.list_namespaced_role_binding, rbac.delete_namespaced_role_binding),
        ("roles", rbac.list_namespaced_role, rbac.delete_namespaced_role),
        (
            "service accounts",
            core.list_namespaced_service_account,
            core.delete_namespaced_service_account,
        ),
    ]
    for what, lister, deleter in kinds:
        with translated(context, f"listing the cluster's {what}"):
            items = lister(namespace, label_selector=sel, _request_timeout=t).items
        for item in items:
            with translated(context, f"deleting {item.metadata.name}"):
                try:
                    deleter(
                        item.metadata.name, namespace, grace_period_seconds=0, _request_timeout=t
                    )
                except Exception as exc:  # gone already (another down, the garbage collector)
                    if getattr(exc, "status", None) != 404:
                        raise
    deadline = time.monotonic() + wait
    while list_pods(context, namespace, cluster) and time.monotonic() < deadline:
        time.sleep(0.1)
