"""Where Styx keeps its files. ``STYX_HOME`` moves everything that defaults to ``~/.styx``."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` so readers never see half a file, even with other threads or processes
    writing it at the same time (each writes its own temporary file, then renames)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pip_install(*packages: str) -> str:
    """The command that installs ``packages`` into the Python that runs Styx, for hints: a
    bare ``pip`` may belong to another interpreter (or none), and install where Styx never
    looks."""
    import shlex
    import sys

    words = [sys.executable or "python3", "-m", "pip", "install", *packages]
    return " ".join(shlex.quote(w) for w in words)


_CHECKED: set[Path] = set()


def home() -> Path:
    """The Styx home folder (``$STYX_HOME`` or ``~/.styx``), created (0700) on first use.

    A path that is a file, cannot be created or cannot be written is the user's to fix:
    :class:`~styx.errors.ConfigError` ``styx-home-unusable`` says which and why."""
    raw = os.environ.get("STYX_HOME")
    path = Path(raw).expanduser() if raw else Path.home() / ".styx"
    if path in _CHECKED:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        usable = os.access(path, os.W_OK | os.X_OK)
        why = "it is not writable (a read-only mount, or another user's folder)"
    except FileExistsError:
        usable, why = False, "it is a file, not a folder"
    except OSError as e:
        usable, why = False, f"it cannot be created ({e.strerror or e})"
    if not usable:
        from styx.errors import ConfigError

        name = "STYX_HOME" if raw else "~/.styx"
        raise ConfigError(
            f"{name} ({path}) cannot hold Styx's files: {why}.",
            "Point STYX_HOME at a folder you can write to, or unset it to use ~/.styx.",
            code="styx-home-unusable",
        )
    _CHECKED.add(path)
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
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
