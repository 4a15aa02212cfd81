"""GCP (``infra: gcp``): planned on from its catalog; launching there comes with its provider.

The credential check reads application-default credentials, a service-account file named by
``GOOGLE_APPLICATION_CREDENTIALS``, or the account of gcloud's active configuration.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from styx.infra import Capabilities, Capability, InfraStatus
from styx.providers.registry import InfraInfo

C = Capability


def _gcloud_dir() -> Path:
    raw = os.environ.get("CLOUDSDK_CONFIG")
    return Path(raw) if raw else Path.home() / ".config" / "gcloud"


def check(probe: bool = False) -> InfraStatus:
    """Whether GCP credentials are set up on this machine (files only)."""
    del probe  # no API probe until the provider exists
    env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if env:
        if Path(env).is_file():
            return InfraStatus("gcp", True, "GOOGLE_APPLICATION_CREDENTIALS")
        return InfraStatus(
            "gcp", False, f"GOOGLE_APPLICATION_CREDENTIALS names a missing file: {env}"
        )
    folder = _gcloud_dir()
    if (folder / "application_default_credentials.json").is_file():
        return InfraStatus("gcp", True, "application-default credentials")
    parser = configparser.ConfigParser()
    active = folder / "active_config"
    name = active.read_text().strip() if active.is_file() else "default"
    parser.read(folder / "configurations" / f"config_{name}")
    if parser.get("core", "account", fallback=""):
        return InfraStatus("gcp", True, f"gcloud account in configuration '{name}'")
    return InfraStatus(
        "gcp", False, "no GCP credentials (run `gcloud auth application-default login`)"
    )


INFO = InfraInfo(
    name="gcp",
    title="GCP",
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
        network_tiers=("standard", "best"),
    ),
    check=check,
    catalog="gcp",
)
