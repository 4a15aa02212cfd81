"""Secret values of managed jobs, kept out of the state database.

The database stores each job's task with its secrets redacted. The values, which the controller
needs to launch and to relaunch after preemption, live in a file readable only by the user
(``$STYX_HOME/jobs/secrets/<job id>.json``, mode 0600) that is deleted when the job ends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from styx import paths

REDACTED = "<redacted>"


def _file(job_id: int) -> Path:
    folder = paths.home() / "jobs" / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"{job_id}.json"


def split(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``spec`` with every secret value redacted, and the values themselves."""
    values = {k: v for k, v in (spec.get("secrets") or {}).items() if v is not None}
    redacted = dict(spec)
    if values:
        redacted["secrets"] = {k: REDACTED for k in values}
    return redacted, {k: str(v) for k, v in values.items()}


def save(job_id: int, values: Mapping[str, str]) -> None:
    """Keep a job's secret values (nothing is written when there are none)."""
    if not values:
        return
    path = _file(job_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(values), f)


def restore(job_id: int, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with its redacted secrets filled in again from the job's file."""
    out = dict(spec)
    path = _file(job_id)
    if out.get("secrets") and path.exists():
        out["secrets"] = {**out["secrets"], **json.loads(path.read_text())}
    return out


def forget(job_id: int) -> None:
    """Delete a finished job's secret values."""
    _file(job_id).unlink(missing_ok=True)
