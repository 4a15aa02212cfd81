"""Catalog tests read ``<repo>/../shared/catalog`` (never copied into the repo)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_CATALOG = Path(__file__).resolve().parents[2].parent / "shared" / "catalog"


def shared_catalog() -> Path:
    """The shared test catalog, or skip when this checkout has none beside it."""
    if not (SHARED_CATALOG / "gcp" / "vms.csv").is_file():
        pytest.skip(f"no shared catalog at {SHARED_CATALOG} (it lives beside the repo)")
    return SHARED_CATALOG


@pytest.fixture
def catalog_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """STYX_CATALOG_DIR at the shared catalog, a fresh STYX_HOME, an empty loader cache."""
    from styx.catalog.loader import clear_cache

    root = shared_catalog()
    monkeypatch.setenv("STYX_CATALOG_DIR", str(root))
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "home"))
    clear_cache()
    yield root
    clear_cache()
