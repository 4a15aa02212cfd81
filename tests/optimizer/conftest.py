"""Optimizer tests run on the shared catalog (see tests/catalog/conftest.py)."""

from tests.catalog.conftest import catalog_env, shared_catalog

__all__ = ["catalog_env", "shared_catalog"]
