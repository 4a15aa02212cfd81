"""Where catalog files come from: a local folder, a fresh download, or a cached copy.

Resolution order for ``<cloud>/<file>``:

1. ``$STYX_CATALOG_DIR/<cloud>/<file>`` when ``STYX_CATALOG_DIR`` is set (tests, air-gapped use);
   nothing is fetched.
2. The cache, ``$STYX_HOME/catalogs/v8/<cloud>/<file>``, when it is younger than the refresh age
   (``STYX_CATALOG_REFRESH_HOURS``, 24 h by default) or was built locally
   (``styx catalog build``).
3. A download from ``$STYX_CATALOG_URL`` (SkyPilot's public v8 catalog by default) with a timeout
   (``STYX_CATALOG_TIMEOUT``, 10 s), written atomically into the cache.
4. When the download fails, the stale cached copy, with a :class:`CatalogWarning`.

Only the standard library is used, so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from styx.errors import ResourcesUnavailable
from styx.paths import atomic_write

DEFAULT_BASE_URL = (
    "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v8"
)
SCHEMA = "v8"
DEFAULT_REFRESH_HOURS = 24.0
DEFAULT_TIMEOUT_S = 10.0
# Clouds with a public v8 catalog that Styx can read (GCP, Azure and Lambda are in the test data).
CATALOG_CLOUDS = ("aws", "gcp", "azure", "lambda", "vast")
_BUILT_MARKER = ".built.json"


class CatalogWarning(UserWarning):
    """A catalog could not be refreshed and an older copy is used instead."""


def local_dir() -> Path | None:
    """``$STYX_CATALOG_DIR`` as a path, or None when it is not set."""
    raw = os.environ.get("STYX_CATALOG_DIR")
    return Path(raw).expanduser() if raw else None


def cache_dir() -> Path:
    """The download cache, ``$STYX_HOME/catalogs/v8`` (created on first use)."""
    from styx.paths import home

    path = home() / "catalogs" / SCHEMA
    path.mkdir(parents=True, exist_ok=True)
    return path


def base_url() -> str:
    """The base URL files are fetched from (``$STYX_CATALOG_URL`` or SkyPilot's v8 catalog)."""
    return os.environ.get("STYX_CATALOG_URL", DEFAULT_BASE_URL).rstrip("/")


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def refresh_age_s() -> float:
    """How old (in seconds) a cached file may be before it is fetched again."""
    return _float_env("STYX_CATALOG_REFRESH_HOURS", DEFAULT_REFRESH_HOURS) * 3600.0


def timeout_s() -> float:
    """The timeout of one download, in seconds."""
    return _float_env("STYX_CATALOG_TIMEOUT", DEFAULT_TIMEOUT_S)


def available_clouds() -> list[str]:
    """Clouds whose ``vms.csv`` is present locally (in ``STYX_CATALOG_DIR`` or the cache)."""
    root = local_dir()
    folders = [root] if root is not None else [cache_dir()]
    found = {
        p.parent.name for folder in folders if folder.is_dir() for p in folder.glob("*/vms.csv")
    }
    return sorted(found)


def mark_built(cloud: str, note: str) -> None:
    """Record that the cached catalog of ``cloud`` was built locally, so it is never
    overwritten by a download."""
    folder = cache_dir() / cloud
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _BUILT_MARKER).write_text(json.dumps({"built_at": time.time(), "note": note}))


def is_built(cloud: str) -> bool:
    """True when the cached catalog of ``cloud`` came from ``styx catalog build``."""
    return (cache_dir() / cloud / _BUILT_MARKER).exists()


def catalog_file(cloud: str, name: str = "vms.csv", *, refresh: bool | None = None) -> Path:
    """A readable path to ``<cloud>/<name>``, fetched or refreshed as described above.

    ``refresh=True`` forces a download attempt, ``False`` never downloads when a cached copy
    exists. Raises ResourcesUnavailable (``catalog-unavailable``) when no copy can be had.
    """
    root = local_dir()
    if root is not None:
        path = root / cloud / name
        if not path.is_file():
            raise ResourcesUnavailable(
                f"There is no catalog file {cloud}/{name} in STYX_CATALOG_DIR ({root}).",
                "Point STYX_CATALOG_DIR at a folder holding <cloud>/vms.csv, or unset it.",
                code="catalog-unavailable",
            )
        return path
    path = cache_dir() / cloud / name
    fresh = path.is_file() and (
        is_built(cloud) or time.time() - path.stat().st_mtime < refresh_age_s()
    )
    if path.is_file() and (refresh is False or (fresh and refresh is None)):
        return path
    url = f"{base_url()}/{cloud}/{name}"
    try:
        _download(url, path)
    except (OSError, urllib.error.URLError, TimeoutError) as err:
        if path.is_file():
            age_h = (time.time() - path.stat().st_mtime) / 3600.0
            warnings.warn(
                CatalogWarning(
                    f"Could not refresh the {cloud} catalog from {url} ({err}); "
                    f"using the cached copy from {age_h:.1f} h ago."
                ),
                stacklevel=2,
            )
            return path
        raise ResourcesUnavailable(
            f"The {cloud} catalog could not be fetched from {url} ({err}) and no cached copy exists.",
            "Check the network, set STYX_CATALOG_URL to a reachable mirror, "
            "or STYX_CATALOG_DIR to a local copy.",
            code="catalog-unavailable",
        ) from err
    return path


def _download(url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "styx-catalog"})
    with urllib.request.urlopen(request, timeout=timeout_s()) as response:
        data = response.read()
    if not data.strip():
        raise OSError(f"empty response from {url}")
    atomic_write(path, data)  # readers never see a half-written file
