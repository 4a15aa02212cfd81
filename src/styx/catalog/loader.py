"""Loading catalogs once per process, per cloud, on first use; accelerator name lookups."""

from __future__ import annotations

import ast
import csv
import difflib
import threading
from collections.abc import Iterable
from pathlib import Path

from styx.catalog import source
from styx.catalog.index import CloudCatalog, read_vms

_lock = threading.Lock()
_cache: dict[str, tuple[tuple[str, float], CloudCatalog]] = {}
_common: tuple[tuple[str, float], dict[str, tuple[str, tuple[str, ...]]]] | None = None


def _stamp(path: Path) -> tuple[str, float]:
    return (str(path), path.stat().st_mtime)


def get_catalog(cloud: str, *, refresh: bool | None = None) -> CloudCatalog:
    """The index of ``cloud``'s ``vms.csv``, loaded on first use and reloaded only when the
    file changes. Raises ResourcesUnavailable (``catalog-unavailable``) without one."""
    path = source.catalog_file(cloud, "vms.csv", refresh=refresh)
    stamp = _stamp(path)
    with _lock:
        hit = _cache.get(cloud)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    catalog = read_vms(cloud, path)  # outside the lock: loading clouds in parallel is fine
    with _lock:
        _cache[cloud] = (stamp, catalog)
    return catalog


def clear_cache() -> None:
    """Forget every loaded catalog (tests; after ``styx catalog build``)."""
    global _common
    with _lock:
        _cache.clear()
        _common = None


def common_accelerators() -> dict[str, tuple[str, tuple[str, ...]]]:
    """``common/accelerators.csv`` as {lower-case name: (name, clouds)}; empty when absent.

    It names accelerators across every cloud SkyPilot knows, so an accelerator that exists but
    is not sold by any enabled cloud is told apart from a typo."""
    global _common
    try:
        path = source.catalog_file("common", "accelerators.csv")
    except Exception:  # the file is optional: typo detection degrades gracefully
        return {}
    stamp = _stamp(path)
    if _common is not None and _common[0] == stamp:
        return _common[1]
    table: dict[str, tuple[str, tuple[str, ...]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = (row.get("AcceleratorName") or "").strip()
            if not name:
                continue
            try:
                clouds = tuple(str(c).lower() for c in ast.literal_eval(row.get("Clouds") or "[]"))
            except (ValueError, SyntaxError):
                clouds = ()
            table[name.lower()] = (name, clouds)
    _common = (stamp, table)
    return table


def close_names(name: str, known: Iterable[str], n: int = 4) -> list[str]:
    """Known accelerator names that look like ``name`` (case-insensitive)."""
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)
    prefix = [k for lower, k in sorted(by_lower.items()) if lower.startswith(name.lower())]
    out: list[str] = []
    for candidate in [*(by_lower[m] for m in matches), *prefix]:
        if candidate not in out:
            out.append(candidate)
    return out[:n]
