"""Local clusters the state database does not know: found by their folders, cheaply.

Kept apart from :mod:`styx.providers.local` so that ``styx status`` can look without importing
the provider (it runs on every ``status``).
"""

from __future__ import annotations

import os

from styx import paths


def orphaned_clusters(known: set[str]) -> list[tuple[str, bool]]:
    """Local cluster folders under STYX_HOME that the state database does not know (it was
    lost or replaced), as ``(name, runtime running)``: they may still run an agent and Ray."""
    folder = paths.clusters_dir()
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = [n for n in names if n not in known and (folder / n / "agent/agent.json").is_file()]
    if not found:
        return []
    from styx.agent.daemon import is_supervised

    return [(n, is_supervised(folder / n / "agent")) for n in found]
