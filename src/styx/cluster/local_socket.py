"""Local unix sockets that reach a remote agent: where they live and whether they answer."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from styx import paths


def forwarded_socket_path(key: str) -> str:
    """A short socket path on this machine for the forward named by ``key``.

    Unix socket paths must stay under ~100 bytes, so a long STYX_HOME falls back to /tmp.
    """
    folder = paths.home() / "sockets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    path = folder / f"{digest}.sock"
    if len(str(path)) > 100:
        path = Path("/tmp") / f"styx-{digest}.sock"
    return str(path)


def accepts(path: str) -> bool:
    """Whether a unix socket at ``path`` takes connections now."""
    if not Path(path).exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(path)
        except OSError:
            return False
        return True
