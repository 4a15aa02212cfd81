"""Styx: run AI and batch workloads on any infrastructure from one task description.

The SDK is imported lazily so that ``import styx`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from styx.spec.dag import Dag
    from styx.spec.resources import Resources
    from styx.spec.task import Task

_LAZY = {
    "Task": "styx.spec.task",
    "Resources": "styx.spec.resources",
    "Dag": "styx.spec.dag",
    **{
        op: "styx.sdk"
        for op in (
            "launch",
            "exec",
            "status",
            "queue",
            "wait",
            "tail_logs",
            "cancel",
            "stop",
            "start",
            "down",
            "autostop",
        )
    },
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in ("jobs", "serve"):  # styx.jobs.launch, queue ...; styx.serve.up, status ...
        return importlib.import_module(f"styx.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'styx' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Dag",
    "Resources",
    "Task",
    "__version__",
    "jobs",
    "serve",
    *sorted(set(_LAZY) - {"Dag", "Resources", "Task"}),
]
