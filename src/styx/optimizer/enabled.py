"""Which infra is enabled, and why the rest is not (``styx check``).

Each check reads local credential files and environment variables only; none makes a network
call (AWS's instance-metadata lookup is switched off unless ``probe=True``). The result is
cached in ``$STYX_HOME/enabled_infra.json`` so that launch reads a small file instead of
checking again; ``styx check`` refreshes it.

* local: always enabled (this machine).
* ssh: ``$STYX_HOME/ssh_node_pools.yaml`` names at least one pool with hosts.
* aws: boto3 is installed and finds credentials (env, shared files, SSO profile...).
* gcp: ``GOOGLE_APPLICATION_CREDENTIALS``, application-default credentials, or an account
  in the active gcloud configuration.
* azure: service-principal env vars, or a logged-in Azure CLI profile with a subscription.
* kubernetes: a kubeconfig (``KUBECONFIG`` or ``~/.kube/config``) with a context.
* lambda: ``~/.lambda_cloud/lambda_keys`` with an ``api_key``.
* vast: ``~/.config/vastai/vast_api_key`` or ``VAST_API_KEY``.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from styx.paths import atomic_write

CACHE_FILE = "enabled_infra.json"
INFRA = ("local", "ssh", "aws", "gcp", "azure", "kubernetes", "lambda", "vast")


@dataclasses.dataclass(frozen=True, slots=True)
class InfraStatus:
    """Whether one infra kind is usable, and a one-line reason."""

    name: str
    enabled: bool
    reason: str


def _home() -> Path:
    return Path.home()


def check_local() -> InfraStatus:
    return InfraStatus("local", True, "this machine")


def ssh_pools_file() -> Path:
    """``$STYX_HOME/ssh_node_pools.yaml`` (SkyPilot's format: pool name -> {hosts: [...]})."""
    from styx.paths import home

    return home() / "ssh_node_pools.yaml"


def ssh_pools() -> dict[str, Any]:
    """The pools that list at least one host; {} when the file is absent or invalid."""
    path = ssh_pools_file()
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(name): pool
        for name, pool in data.items()
        if isinstance(pool, dict) and isinstance(pool.get("hosts"), list) and pool["hosts"]
    }


def check_ssh() -> InfraStatus:
    pools = ssh_pools()
    if pools:
        return InfraStatus("ssh", True, f"node pools: {', '.join(sorted(pools))}")
    return InfraStatus("ssh", False, f"no node pool with hosts in {ssh_pools_file()}")


def check_aws(probe: bool = False) -> InfraStatus:
    try:
        import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return InfraStatus("aws", False, "boto3 is not installed (pip install boto3)")
    saved = os.environ.get("AWS_EC2_METADATA_DISABLED")
    if not probe:
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no network call to 169.254.169.254
    try:
        credentials = boto3.Session().get_credentials()
    except Exception as err:  # any SDK failure means "not usable", with why
        return InfraStatus("aws", False, f"boto3 could not read credentials: {err}")
    finally:
        if not probe:
            if saved is None:
                os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
            else:
                os.environ["AWS_EC2_METADATA_DISABLED"] = saved
    if credentials is None:
        return InfraStatus("aws", False, "no AWS credentials (run `aws configure`)")
    return InfraStatus("aws", True, f"credentials from {getattr(credentials, 'method', 'boto3')}")


def _gcloud_dir() -> Path:
    raw = os.environ.get("CLOUDSDK_CONFIG")
    return Path(raw) if raw else _home() / ".config" / "gcloud"


def check_gcp() -> InfraStatus:
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


def check_azure() -> InfraStatus:
    if all(
        os.environ.get(k) for k in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")
    ):
        return InfraStatus("azure", True, "service principal from AZURE_* variables")
    raw = os.environ.get("AZURE_CONFIG_DIR")
    profile = (Path(raw) if raw else _home() / ".azure") / "azureProfile.json"
    try:
        data = json.loads(profile.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return InfraStatus("azure", False, "no Azure credentials (run `az login`)")
    if data.get("subscriptions"):
        return InfraStatus("azure", True, "Azure CLI profile")
    return InfraStatus("azure", False, "the Azure CLI profile has no subscription (run `az login`)")


def check_kubernetes() -> InfraStatus:
    raw = os.environ.get("KUBECONFIG")
    paths = [Path(p) for p in raw.split(os.pathsep) if p] if raw else [_home() / ".kube" / "config"]
    import yaml

    for path in paths:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        contexts = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
        if contexts:
            return InfraStatus("kubernetes", True, f"kubeconfig {path} ({len(contexts)} contexts)")
    return InfraStatus("kubernetes", False, "no kubeconfig with a context")


def check_lambda() -> InfraStatus:
    path = _home() / ".lambda_cloud" / "lambda_keys"
    try:
        text = path.read_text()
    except OSError:
        return InfraStatus("lambda", False, f"no API key in {path}")
    if any(line.strip().startswith("api_key") and "=" in line for line in text.splitlines()):
        return InfraStatus("lambda", True, f"API key in {path}")
    return InfraStatus("lambda", False, f"{path} has no api_key line")


def check_vast() -> InfraStatus:
    if os.environ.get("VAST_API_KEY"):
        return InfraStatus("vast", True, "VAST_API_KEY")
    path = _home() / ".config" / "vastai" / "vast_api_key"
    if path.is_file() and path.read_text().strip():
        return InfraStatus("vast", True, f"API key in {path}")
    return InfraStatus("vast", False, "no Vast.ai API key")


CHECKS: dict[str, Callable[[], InfraStatus]] = {
    "local": check_local,
    "ssh": check_ssh,
    "aws": check_aws,
    "gcp": check_gcp,
    "azure": check_azure,
    "kubernetes": check_kubernetes,
    "lambda": check_lambda,
    "vast": check_vast,
}


def cache_path() -> Path:
    from styx.paths import home

    return home() / CACHE_FILE


def run_checks(names: tuple[str, ...] = INFRA, *, probe: bool = False) -> list[InfraStatus]:
    """Check each infra kind now and write the cache. ``probe`` allows AWS's metadata lookup."""
    results = [check_aws(probe) if n == "aws" else CHECKS[n]() for n in names]
    if names == INFRA:
        payload = {"checked_at": time.time(), "infra": [dataclasses.asdict(s) for s in results]}
        atomic_write(cache_path(), json.dumps(payload, indent=1))
    return results


def cached_status() -> list[InfraStatus] | None:
    """The last ``styx check`` result, or None when there is none."""
    try:
        data = json.loads(cache_path().read_text())
        return [InfraStatus(**item) for item in data["infra"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def enabled_infra(*, refresh: bool = False) -> list[str]:
    """Names of the enabled infra kinds, from the cache (checked now when there is none)."""
    status = None if refresh else cached_status()
    if status is None:
        status = run_checks()
    return [s.name for s in status if s.enabled]
