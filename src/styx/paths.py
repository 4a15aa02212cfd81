"""Where Styx keeps its files. ``STYX_HOME`` moves everything that defaults to ``~/.styx``."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The Styx home folder (``$STYX_HOME`` or ``~/.styx``), created on first use."""
    raw = os.environ.get("STYX_HOME")
    path = Path(raw).expanduser() if raw else Path.home() / ".styx"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def state_db() -> Path:
    """The default SQLite state database."""
    return home() / "state.db"


def config_file() -> Path:
    """The user's config file (SkyPilot's config dialect where the two overlap)."""
    return home() / "config.yaml"


def clusters_dir() -> Path:
    """Per-cluster working files (handles' keys, local cluster roots, logs fetched)."""
    path = home() / "clusters"
    path.mkdir(parents=True, exist_ok=True)
    return path
