"""The ``kubernetes:`` config section for one context, with a task's ``config:`` overrides.

Keys (SkyPilot's, plus Styx's own ``default_image``); a context's
``kubernetes.context_configs.<context>`` entry overrides the section's value:

- ``namespace``: else the context's namespace, else ``default``;
- ``pod_config``: merged into every pod (dicts merge, lists of containers merge by position);
- ``provision_timeout``: seconds a pod may stay unscheduled before the launch is a capacity
  error (default 10; ``-1`` waits forever);
- ``set_pod_resource_limits``: ``true`` (limits equal requests) or a multiplier;
- ``pricing``: ``{cpu, memory, accelerators: {NAME: rate}}`` dollars per hour;
- ``custom_metadata``: ``{labels, annotations}`` put on every object Styx makes;
- ``default_image``: the pod image when the task has no ``image_id: docker:...``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

#: Pods without ``image_id``: Python 3.11 on Debian; the runtime (Ray) is installed at launch.
DEFAULT_IMAGE = "docker.io/library/python:3.11-slim"
DEFAULT_PROVISION_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class K8sSettings:
    context: str
    namespace: str
    pod_config: Mapping[str, Any]
    provision_timeout: float | None  # None: wait forever
    limits: float | None  # the multiplier of requests for limits; None: no limits
    pricing: Mapping[str, Any]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    default_image: str

    @classmethod
    def load(
        cls,
        context: str,
        context_namespace: str | None,
        task_config: Mapping[str, Any] | None = None,
    ) -> K8sSettings:
        from styx.config import user_config

        config = user_config()
        section: dict[str, Any] = dict((config.get("kubernetes") if config else None) or {})
        per_context = (section.get("context_configs") or {}).get(context) or {}
        task = dict((task_config or {}).get("kubernetes") or {})

        def value(key: str, default: Any = None) -> Any:
            for layer in (task, per_context, section):
                if key in layer and layer[key] is not None:
                    return layer[key]
            return default

        pod_config: dict[str, Any] = {}
        for layer in (section, per_context, task):
            if isinstance(layer.get("pod_config"), dict):
                pod_config = merge(pod_config, layer["pod_config"])
        timeout = float(value("provision_timeout", DEFAULT_PROVISION_TIMEOUT))
        raw_limits = value("set_pod_resource_limits", False)
        limits = 1.0 if raw_limits is True else (float(raw_limits) if raw_limits else None)
        pricing: dict[str, Any] = {}
        for layer in (section, per_context):
            if isinstance(layer.get("pricing"), dict):
                pricing = merge(pricing, layer["pricing"])
        meta = value("custom_metadata", {}) or {}
        return cls(
            context=context,
            namespace=str(value("namespace") or context_namespace or "default"),
            pod_config=pod_config,
            provision_timeout=None if timeout < 0 else timeout,
            limits=limits,
            pricing=pricing,
            labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
            default_image=str(value("default_image") or DEFAULT_IMAGE),
        )

    def hourly_price(
        self, cpus: float | None, memory_gb: float | None, accelerators: Mapping[str, float]
    ) -> float:
        """What one pod costs per hour (0 unless ``pricing`` says): an accelerator pod at the
        accelerator's all-in rate, a CPU pod at its CPUs' and memory's rates."""
        if accelerators:
            rates = {str(k).upper(): v for k, v in (self.pricing.get("accelerators") or {}).items()}
            return sum(float(rates.get(a.upper(), 0.0)) * n for a, n in accelerators.items())
        cpu_rate = float(self.pricing.get("cpu") or 0.0)
        mem_rate = float(self.pricing.get("memory") or 0.0)
        return (cpus or 0.0) * cpu_rate + (memory_gb or 0.0) * mem_rate


def merge(base: Any, over: Any) -> Any:
    """``over`` merged into a copy of ``base``: dicts key by key, lists item by item (as
    SkyPilot merges ``pod_config`` into its pod: containers[0] of the config extends the
    task's container), anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(over, list):
        out_list = copy.deepcopy(base)
        for i, value in enumerate(over):
            if i < len(out_list):
                out_list[i] = merge(out_list[i], value)
            else:
                out_list.append(copy.deepcopy(value))
        return out_list
    return copy.deepcopy(over)
