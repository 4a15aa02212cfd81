"""Compute Engine clients (google-cloud-compute, REST), credentials and the project.

- Credentials: google-auth's application-default chain (``GOOGLE_APPLICATION_CREDENTIALS``,
  gcloud's application-default login, or the metadata server on a GCE machine).
- The project: ``gcp.project_id`` in the config, else the credentials' project, else
  ``GOOGLE_CLOUD_PROJECT`` / ``CLOUDSDK_CORE_PROJECT``, else gcloud's active configuration.
- The endpoint: ``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE``, gcloud's own override, when set
  (``https://HOST/compute/v1/``; the tests point it at a stand-in). A plain ``http://``
  endpoint is a stand-in (Google serves the API over HTTPS only): its calls go without
  credentials, so no token ever crosses a network in the clear.

Every call has a deadline (:data:`TIMEOUT_S`). Operations are waited for through the
endpoint-pointed ``*OperationsClient.wait`` (:func:`wait`): the client library's own
``operation.result()`` polls ``compute.googleapis.com`` whatever the endpoint is.
"""

from __future__ import annotations

import configparser
import functools
import os
import threading
import time
from pathlib import Path
from typing import Any

from styx.errors import ConfigError, RemoteError

#: Seconds one API call may take.
TIMEOUT_S = 60.0
#: Seconds one ``wait`` call blocks at most (GCE's own wait returns after about two minutes).
WAIT_S = 30.0
ENDPOINT_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"
_lock = threading.Lock()
_clients: dict[tuple[str, str], Any] = {}


def endpoint() -> str | None:
    """The API host to use (``host[:port]`` or a URL without the path), or None for Google's."""
    raw = os.environ.get(ENDPOINT_ENV, "").strip()
    if not raw:
        return None
    for suffix in ("/compute/v1/", "/compute/v1", "/"):
        if raw.endswith(suffix):
            raw = raw[: -len(suffix)]
            break
    return raw


def is_stand_in() -> bool:
    """Whether the endpoint is a plain-HTTP stand-in (no credentials are sent to it)."""
    return (endpoint() or "").startswith("http://")


def _gcloud_project() -> str | None:
    raw = os.environ.get("CLOUDSDK_CONFIG")
    folder = Path(raw) if raw else Path.home() / ".config" / "gcloud"
    active = folder / "active_config"
    name = active.read_text().strip() if active.is_file() else "default"
    parser = configparser.ConfigParser()
    parser.read(folder / "configurations" / f"config_{name}")
    return parser.get("core", "project", fallback=None) or None


@functools.lru_cache(maxsize=1)
def _default_credentials() -> tuple[Any, str | None]:
    import google.auth  # type: ignore[import-untyped,import-not-found,unused-ignore]

    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    credentials, project = google.auth.default(scopes=scopes)
    return credentials, project


def credentials() -> Any:
    if is_stand_in():
        from google.auth.credentials import AnonymousCredentials  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return AnonymousCredentials()
    return _default_credentials()[0]


def project(configured: str | None = None) -> str:
    """The project to launch in (see the module docstring); RemoteError when none is known."""
    if configured:
        return configured
    for key in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        if os.environ.get(key):
            return os.environ[key]
    if not is_stand_in():
        from styx.providers.gcp.errors import translated

        with translated("global", action="reading the credentials"):
            found = _default_credentials()[1]
        if found:
            return str(found)
    found = _gcloud_project()
    if found:
        return found
    raise ConfigError(
        "No GCP project is set.",
        "Set gcp.project_id in ~/.styx/config.yaml, GOOGLE_CLOUD_PROJECT, or "
        "`gcloud config set project PROJECT`.",
        code="gcp-project-missing",
    )


def client(kind: str) -> Any:
    """The ``compute_v1`` client of ``kind`` ("InstancesClient", "ZoneOperationsClient", ...),
    made once per endpoint."""
    key = (kind, endpoint() or "")
    with _lock:
        found = _clients.get(key)
        if found is None:
            from google.cloud import compute_v1  # type: ignore[import-untyped,import-not-found,unused-ignore]

            options = {"api_endpoint": key[1]} if key[1] else None
            found = getattr(compute_v1, kind)(
                credentials=credentials(), client_options=options, transport="rest"
            )
            _clients[key] = found
        return found


def reset() -> None:
    """Forget made clients and cached credentials (tests change the environment)."""
    with _lock:
        _clients.clear()
    _default_credentials.cache_clear()


def enum_name(value: Any) -> str:
    """A compute_v1 enum field's name (``DONE``), or a string field as it is: proto-plus
    enums are IntEnums, whose ``str()`` is the number on Python 3.11."""
    name = getattr(value, "name", None)
    return str(name) if isinstance(name, str) else str(value)


def wait(op: Any, *, project_id: str, zone: str | None = None, region: str | None = None,
         timeout: float = 600.0, action: str = "waiting for GCE") -> Any:  # fmt: skip
    """Wait until the operation ``op`` (an ``Operation`` or an ``ExtendedOperation``) is DONE,
    through the endpoint's own ``wait`` calls, for at most ``timeout`` seconds; the finished
    operation. Its error, if any, is for the caller to read (:func:`errors.operation_error`)."""
    from styx.providers.gcp.errors import translated

    raw = getattr(op, "_extended_operation", op)
    name = str(getattr(raw, "name", ""))
    deadline = time.monotonic() + timeout
    where = zone or region or "global"
    while enum_name(getattr(raw, "status", "")) != "DONE":
        left = deadline - time.monotonic()
        if left <= 0:
            raise RemoteError(
                f"A GCE operation ({name}) did not finish in {timeout:.0f} s while {action}.",
                "Check the operation in the console, then retry.",
                code="cloud-api-timeout",
                details={"cloud": "gcp", "region": region or "", "zone": zone or ""},
            )
        with translated(where, zone, action=action):
            if zone:
                raw = client("ZoneOperationsClient").wait(
                    project=project_id, zone=zone, operation=name, timeout=min(WAIT_S, left) + 5
                )
            elif region:
                raw = client("RegionOperationsClient").wait(
                    project=project_id, region=region, operation=name, timeout=min(WAIT_S, left) + 5
                )
            else:
                raw = client("GlobalOperationsClient").wait(
                    project=project_id, operation=name, timeout=min(WAIT_S, left) + 5
                )
    return raw
