"""The user's settings and the state database they select, for every layer above ``state``.

``~/.styx/config.yaml`` is read once per process and validated (ConfigError names the key and
line). The database is ``$STYX_DB_URL``, else the config's ``db:``, else SQLite under STYX_HOME.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from styx.spec.config import Config
    from styx.state.db import Database


def user_config() -> Config | None:
    """``~/.styx/config.yaml``, validated; None if absent. Read again when the file (or
    ``STYX_HOME``) changes, so a long-lived process such as the jobs controller sees edits."""
    from styx import paths

    path = paths.config_file()
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return _load_config(str(path), stamp)


@functools.lru_cache(maxsize=8)
def _load_config(path: str, stamp: int) -> Config | None:
    from styx.spec.config import load_config

    return load_config(path)


def config_db_url() -> str | None:
    """``db:`` from the config; STYX_DB_URL, when set, wins without reading the file."""
    if os.environ.get("STYX_DB_URL"):
        return None
    config = user_config()
    value = config.get("db") if config is not None else None
    return str(value) if value else None


def database() -> Database:
    """The state database for this process."""
    from styx.state.db import get_db

    return get_db(config_db_url())


def node_hourly_price(kind: str, pool: str | None = None) -> float:
    """What one node of this machine (``kind`` ``local``) or of SSH pool ``pool`` (``ssh``)
    costs per hour, by the config: ``ssh.context_configs.<pool>.hourly_price``, else
    ``<kind>.hourly_price``, else 0 (machines the user already has are free by default)."""
    config = user_config()
    if config is None:
        return 0.0
    price = None
    if pool is not None:
        price = config.get(f"{kind}.context_configs.{pool}.hourly_price")
    if price is None:
        price = config.get(f"{kind}.hourly_price")
    return 0.0 if price is None else float(price)
