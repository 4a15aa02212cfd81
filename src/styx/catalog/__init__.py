"""Cloud catalogs: fetching, caching and querying instance types and prices (SkyPilot's v8 CSVs).

Importing this package is cheap: the CSVs are read on first use, per cloud, by
:func:`get_catalog`. See :mod:`styx.catalog.source` for where files come from and
:mod:`styx.catalog.index` for the index and why it has that shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from styx.catalog.index import CloudCatalog, Offers, Shape
    from styx.catalog.loader import clear_cache, get_catalog

__all__ = ["CloudCatalog", "Offers", "Shape", "clear_cache", "get_catalog"]
_LAZY = {
    "CloudCatalog": "styx.catalog.index",
    "Offers": "styx.catalog.index",
    "Shape": "styx.catalog.index",
    "clear_cache": "styx.catalog.loader",
    "get_catalog": "styx.catalog.loader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'styx.catalog' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
