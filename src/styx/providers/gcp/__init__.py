"""GCP (``infra: gcp``): Compute Engine instances through google-cloud-compute
(:mod:`.provider`), planned on from GCP's catalog.

The credential check reads application-default credentials, a service-account file named by
``GOOGLE_APPLICATION_CREDENTIALS``, or the account of gcloud's active configuration; with
``--probe`` it lists the project's zones through the API.
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
    """Whether GCP credentials are set up on this machine (files only); with ``probe``,
    whether the Compute API accepts them."""
    local = _local_check()
    if not probe or not local.enabled:
        return local
    from styx.errors import StyxError

    try:
        from styx.providers.gcp import client
        from styx.providers.gcp.errors import translated

        project = client.project(_config_project())
        with translated("global", action="probing the API"):
            zones = list(client.client("ZonesClient").list(project=project, max_results=1,
                                                           timeout=client.TIMEOUT_S))  # fmt: skip
    except ImportError:
        return InfraStatus(
            "gcp", False, "google-cloud-compute is not installed (pip install 'styx[gcp]')"
        )
    except StyxError as err:
        return InfraStatus("gcp", False, f"{local.reason}; the API refused: {err.message}")
    return InfraStatus("gcp", True, f"{local.reason}; project {project} ({len(zones)} zone listed)")


def _config_project() -> str | None:
    from styx.config import user_config

    config = user_config() or {}
    section = config.get("gcp") or {}
    return str(section["project_id"]) if section.get("project_id") else None


def _local_check() -> InfraStatus:
    override = os.environ.get("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", "")
    if override.startswith("http://"):  # Google's API is HTTPS only: this is a stand-in
        return InfraStatus("gcp", True, f"the Compute API stand-in at {override}")
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
        C.PORTS,
        C.BUCKET_MOUNTS,
        C.CONTAINER_IMAGES,
        C.CUSTOM_IMAGES,
        C.ZONES,
        C.AUTOSTOP,
        disk_tiers=("low", "medium", "high", "ultra"),
        network_tiers=("standard", "best"),
    ),
    check=check,
    # No TPU_VMS: TPU VMs (google-cloud-tpu) are not built yet, so plans say so. Autostop runs
    # on the head with the instances' service account (selfstop.py).
    provider="styx.providers.gcp.provider:GCPProvider",
    catalog="gcp",
)
