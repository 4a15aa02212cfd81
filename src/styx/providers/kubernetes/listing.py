"""``styx show-gpus --infra k8s``: the GPU types of each allowed context, how many a pod can ask
for on one node, and how many are free, read from node labels, allocatable and the pods'
requests."""

from __future__ import annotations

from styx.providers.kubernetes import client, gpus, kubeconfig
from styx.providers.kubernetes.errors import translated
from styx.providers.kubernetes.provider import allowed_contexts_setting


def requestable(total: float) -> str:
    """1, 2, 4, ... up to a node's GPU count (and the count itself)."""
    n, out = 1, []
    while n <= total:
        out.append(n)
        n *= 2
    if total and int(total) not in out:
        out.append(int(total))
    return ", ".join(str(x) for x in out)


def gpu_tables(
    context: str | None, accelerator: str | None
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(per-type rows: CONTEXT, GPU, REQUESTABLE_QTY_PER_NODE, FREE/TOTAL; per-node rows:
    CONTEXT, NODE, GPU, FREE/TOTAL)."""
    names = (
        [context] if context else kubeconfig.allowed(kubeconfig.load(), allowed_contexts_setting())
    )
    if context:
        kubeconfig.resolve(context, allowed_contexts_setting())
    by_type: list[tuple[str, ...]] = []
    by_node: list[tuple[str, ...]] = []
    for name in names:
        core = client.core(name)
        with translated(name, "listing nodes"):
            nodes = core.list_node(_request_timeout=client.TIMEOUT).items
            pods = core.list_pod_for_all_namespaces(_request_timeout=client.TIMEOUT).items
        found = [g for g in gpus.node_gpus(nodes, pods) if g.accelerator and g.total]
        if accelerator:
            found = [
                g for g in found if g.accelerator and g.accelerator.upper() == accelerator.upper()
            ]
        types: dict[str, list[gpus.NodeGpus]] = {}
        for g in found:
            types.setdefault(str(g.accelerator), []).append(g)
        for accel, group in sorted(types.items()):
            free, total = sum(g.free for g in group), sum(g.total for g in group)
            most = max(g.total for g in group)
            by_type.append((name, accel, requestable(most), f"{free:g} of {total:g} free"))
        for g in sorted(found, key=lambda g: g.node):
            by_node.append((name, g.node, str(g.accelerator), f"{g.free:g} of {g.total:g} free"))
    return by_type, by_node
