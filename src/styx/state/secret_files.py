"""Secret values of tasks Styx launches later (managed jobs, service replicas), kept out of the
state database.

The database stores each task with its secrets redacted. The values, which a controller needs
to launch (and relaunch), live in a file readable only by the user
(``$STYX_HOME/<kind>/secrets/<key>.json``, mode 0600), deleted when the task is done with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from styx import paths

REDACTED = "<redacted>"


def _file(kind: str, key: str) -> Path:
    folder = paths.home() / kind / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"{key}.json"


def split(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``spec`` with every secret value redacted, and the values themselves."""
    values = {k: v for k, v in (spec.get("secrets") or {}).items() if v is not None}
    redacted = dict(spec)
    if values:
        redacted["secrets"] = {k: REDACTED for k in values}
    return redacted, {k: str(v) for k, v in values.items()}


def save(kind: str, key: str, values: Mapping[str, str]) -> None:
    """Keep secret values (nothing is written when there are none)."""
    if not values:
        return
    fd = os.open(_file(kind, key), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(values), f)


def restore(kind: str, key: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with its redacted secrets filled in again from the file."""
    out = dict(spec)
    path = _file(kind, key)
    if out.get("secrets") and path.exists():
        out["secrets"] = {**out["secrets"], **json.loads(path.read_text())}
    return out


def forget(kind: str, key: str) -> None:
    """Delete the secret values kept under ``key``."""
    _file(kind, key).unlink(missing_ok=True)
