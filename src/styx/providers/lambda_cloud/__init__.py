"""Lambda Cloud (``infra: lambda``): planned on from its catalog; launching there comes with its
provider.

The credential check looks for an ``api_key`` line in ``~/.lambda_cloud/lambda_keys``.
"""

from __future__ import annotations

from pathlib import Path

from styx.infra import Capabilities, Capability, InfraStatus
from styx.providers.registry import InfraInfo

C = Capability


def check(probe: bool = False) -> InfraStatus:
    """Whether a Lambda API key is on this machine (files only)."""
    del probe
    path = Path.home() / ".lambda_cloud" / "lambda_keys"
    try:
        text = path.read_text()
    except OSError:
        return InfraStatus("lambda", False, f"no API key in {path}")
    if any(line.strip().startswith("api_key") and "=" in line for line in text.splitlines()):
        return InfraStatus("lambda", True, f"API key in {path}")
    return InfraStatus("lambda", False, f"{path} has no api_key line")


# As SkyPilot's Lambda support: on-demand VMs only, no stop, no custom images or tiers.
INFO = InfraInfo(
    name="lambda",
    title="Lambda",
    capabilities=Capabilities.of(C.MULTI_NODE, C.PORTS, C.AUTOSTOP, C.CONTAINER_IMAGES),
    check=check,
    catalog="lambda",
)
