"""Vast.ai (``infra: vast``): planned on from its catalog; launching there comes with its
provider.

The credential check reads ``VAST_API_KEY`` or ``~/.config/vastai/vast_api_key``.
"""

from __future__ import annotations

import os
from pathlib import Path

from styx.infra import Capabilities, Capability, InfraStatus
from styx.providers.registry import InfraInfo

C = Capability


def check(probe: bool = False) -> InfraStatus:
    """Whether a Vast.ai API key is set up (variable or file only)."""
    del probe
    if os.environ.get("VAST_API_KEY"):
        return InfraStatus("vast", True, "VAST_API_KEY")
    path = Path.home() / ".config" / "vastai" / "vast_api_key"
    if path.is_file() and path.read_text().strip():
        return InfraStatus("vast", True, f"API key in {path}")
    return InfraStatus("vast", False, "no Vast.ai API key")


# Vast rents single machines: no multi-node clusters, no opened ports, no bucket mounts and no
# disk or network tiers (SkyPilot's Vast support excludes the same).
INFO = InfraInfo(
    name="vast",
    title="Vast.ai",
    capabilities=Capabilities.of(C.SPOT, C.STOP, C.CONTAINER_IMAGES),
    check=check,
    catalog="vast",
)
