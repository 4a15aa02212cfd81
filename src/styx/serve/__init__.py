"""Serving: replicas behind a load balancer, with readiness probes, autoscaling and rolling
updates (SkyServe's ``service:`` dialect). This package is also the SDK's ``styx.serve``::

    record = styx.serve.up(styx.Task.from_yaml("service.yaml"), "llm")
    record.endpoint                           # http://127.0.0.1:30001
    [view] = styx.serve.status(["llm"])       # the service and its replicas
    styx.serve.update("llm", new_task)        # rolling by default; mode="blue_green"
    styx.serve.down(["llm"])

The functions are those of :mod:`styx.serve.api`, loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from styx.serve.api import ServiceView, down, logs, status, up, update


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'styx.serve' has no attribute {name!r}")
    from styx.serve import api

    return getattr(api, name)


__all__ = ["ServiceView", "down", "logs", "status", "up", "update"]
