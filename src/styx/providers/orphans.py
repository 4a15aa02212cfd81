"""Clusters an infra still has that the state database lost: found, and torn down.

Only infra whose clusters live on this machine can leave such orphans today (a local cluster's
folder and runtime under STYX_HOME survive a lost or replaced state database); each scanner is
named here as ``"module:function"`` and imported only when asked, so that ``styx status`` looks
for orphans without loading any provider.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

#: infra -> (its scanner of orphans, the builder of an orphan's handle, where an orphan lives)
_SCANNERS: dict[str, tuple[str, str, str]] = {
    "local": (
        "styx.providers.local_scan:orphaned_clusters",
        "styx.providers.local:orphan_handle",
        "STYX_HOME/clusters/{name}",
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Orphan:
    """A cluster the state database does not know: its infra, its name, and whether its
    runtime (agent, Ray) still runs."""

    infra: str
    name: str
    running: bool
    where: str


def _load(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return found


def find(known: set[str]) -> list[Orphan]:
    """Every orphaned cluster, on every infra that can have them, not named in ``known``."""
    out: list[Orphan] = []
    for infra, (scanner, _, where) in _SCANNERS.items():
        for name, running in _load(scanner)(known):
            out.append(Orphan(infra, name, running, where.format(name=name)))
    return out


def teardown(orphan: Orphan) -> None:
    """Stop the orphan's runtime and remove what Styx made for it (nothing when it is gone)."""
    from styx.providers.registry import get_provider

    handle = _load(_SCANNERS[orphan.infra][1])(orphan.name)
    if handle is None:
        return
    get_provider(orphan.infra).terminate(handle)
