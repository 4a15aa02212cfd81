"""Kubernetes (``infra: k8s`` or ``kubernetes``): known and checked; launching there comes with
its provider.

The credential check looks for a kubeconfig (``KUBECONFIG`` or ``~/.kube/config``) with a
context.
"""

from __future__ import annotations

import os
from pathlib import Path

from styx.infra import Capabilities, Capability, InfraStatus
from styx.providers.registry import InfraInfo

C = Capability


def check(probe: bool = False) -> InfraStatus:
    """Whether a kubeconfig with a context exists (files only)."""
    del probe
    import yaml

    raw = os.environ.get("KUBECONFIG")
    paths = (
        [Path(p) for p in raw.split(os.pathsep) if p] if raw else [Path.home() / ".kube" / "config"]
    )
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        contexts = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
        if contexts:
            return InfraStatus("kubernetes", True, f"kubeconfig {path} ({len(contexts)} contexts)")
    return InfraStatus("kubernetes", False, "no kubeconfig with a context")


INFO = InfraInfo(
    name="kubernetes",
    title="Kubernetes",
    capabilities=Capabilities.of(
        C.MULTI_NODE, C.AUTOSTOP, C.PORTS, C.BUCKET_MOUNTS, C.CONTAINER_IMAGES
    ),
    check=check,
    aliases=("k8s",),
)
