"""GPU types of a Kubernetes cluster, read from node labels and allocatable.

Three labels name a node's GPU, as SkyPilot reads them: ``skypilot.co/accelerator``
(``a100-80gb``), GKE's ``cloud.google.com/gke-accelerator`` (``nvidia-tesla-a100``) and the GPU
operator's ``nvidia.com/gpu.product`` (``NVIDIA-A100-SXM4-80GB``). Each value maps to Styx's
accelerator name (``A100-80GB``); GPUs are counted from ``nvidia.com/gpu`` or ``amd.com/gpu``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

GPU_LABELS = (
    "skypilot.co/accelerator",
    "cloud.google.com/gke-accelerator",
    "nvidia.com/gpu.product",
)
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
_AMD = ("MI", "RADEON")


def canonical(label: str, value: str) -> str:
    """Styx's accelerator name for a GPU label's value."""
    v = value.strip().upper().replace("_", "-")
    if label == "cloud.google.com/gke-accelerator":
        v = re.sub(r"^NVIDIA-(TESLA-)?", "", v)
        return v
    if label == "nvidia.com/gpu.product":
        v = re.sub(r"^(NVIDIA-)?(TESLA-)?(GEFORCE-)?", "", v)
        tokens = v.split("-")
        model = tokens[0]
        if model == "RTX" and len(tokens) > 1:
            model = "RTX" + tokens[1]
        if model == "A100" and "80GB" in tokens:
            model = "A100-80GB"
        return model
    return v


def resource_for(accelerator: str) -> str:
    """The extended resource a pod asks for: ``amd.com/gpu`` for AMD GPUs (MI300X, ...)."""
    return "amd.com/gpu" if accelerator.upper().startswith(_AMD) else "nvidia.com/gpu"


@dataclasses.dataclass(frozen=True, slots=True)
class NodeGpus:
    node: str
    accelerator: str | None
    label: tuple[str, str] | None  # the (key, value) that named it
    total: float
    free: float
    cpus: float
    memory_gb: float


def quantity(raw: Any) -> float:
    """A Kubernetes quantity as a number (``500m`` -> 0.5, ``4Gi`` -> 4*2**30)."""
    s = str(raw).strip()
    units = {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
        "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "m": 1e-3,
    }  # fmt: skip
    for unit in sorted(units, key=len, reverse=True):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * units[unit]
    return float(s or 0)


def node_gpus(nodes: Iterable[Any], pods: Iterable[Any]) -> list[NodeGpus]:
    """Each node's GPU type, GPU count, and GPUs not requested by running or pending pods."""
    used: dict[str, float] = {}
    for pod in pods:
        phase = getattr(pod.status, "phase", None) if pod.status else None
        node = getattr(pod.spec, "node_name", None) if pod.spec else None
        if not node or phase in ("Succeeded", "Failed"):
            continue
        for c in pod.spec.containers or []:
            requests = (c.resources.requests if c.resources else None) or {}
            used[node] = used.get(node, 0.0) + sum(float(requests.get(r, 0)) for r in GPU_RESOURCES)
    out = []
    for node in nodes:
        labels: Mapping[str, str] = node.metadata.labels or {}
        label = next(((k, labels[k]) for k in GPU_LABELS if labels.get(k)), None)
        alloc = (node.status.allocatable if node.status else None) or {}
        total = sum(quantity(alloc.get(r, 0)) for r in GPU_RESOURCES)
        name = node.metadata.name
        out.append(
            NodeGpus(
                node=name,
                accelerator=canonical(*label) if label else None,
                label=label,
                total=total,
                free=max(0.0, total - used.get(name, 0.0)),
                cpus=quantity(alloc.get("cpu", 0)),
                memory_gb=quantity(alloc.get("memory", 0)) / 2**30,
            )
        )
    return out


def matching_terms(nodes: list[NodeGpus], accelerator: str) -> list[dict[str, Any]]:
    """Node-affinity terms (ORed) that select the nodes with ``accelerator``, by the exact
    label values found on them."""
    values: dict[str, set[str]] = {}
    for n in nodes:
        if n.label and n.accelerator and n.accelerator.upper() == accelerator.upper():
            values.setdefault(n.label[0], set()).add(n.label[1])
    return [
        {"matchExpressions": [{"key": key, "operator": "In", "values": sorted(vals)}]}
        for key, vals in sorted(values.items())
    ]
