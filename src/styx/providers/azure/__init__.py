"""Azure (``infra: azure``): planned on from its catalog; launching there comes with its
provider.

The credential check accepts a service principal (``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``,
``AZURE_CLIENT_SECRET``) or a logged-in Azure CLI profile with a subscription.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from styx.infra import Capabilities, Capability, InfraStatus
from styx.providers.registry import InfraInfo

C = Capability


def check(probe: bool = False) -> InfraStatus:
    """Whether Azure credentials are set up on this machine (variables and files only)."""
    del probe
    if all(
        os.environ.get(k) for k in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")
    ):
        return InfraStatus("azure", True, "service principal from AZURE_* variables")
    raw = os.environ.get("AZURE_CONFIG_DIR")
    profile = (Path(raw) if raw else Path.home() / ".azure") / "azureProfile.json"
    try:
        data = json.loads(profile.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return InfraStatus("azure", False, "no Azure credentials (run `az login`)")
    if isinstance(data, dict) and data.get("subscriptions"):
        return InfraStatus("azure", True, "Azure CLI profile")
    return InfraStatus("azure", False, "the Azure CLI profile has no subscription (run `az login`)")


INFO = InfraInfo(
    name="azure",
    title="Azure",
    capabilities=Capabilities.of(
        C.MULTI_NODE,
        C.SPOT,
        C.STOP,
        C.AUTOSTOP,
        C.PORTS,
        C.BUCKET_MOUNTS,
        C.CONTAINER_IMAGES,
        C.CUSTOM_IMAGES,
        C.ZONES,
        disk_tiers=("low", "medium", "high", "ultra"),
    ),
    check=check,
    catalog="azure",
)
