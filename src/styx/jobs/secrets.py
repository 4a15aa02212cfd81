"""Secret values of managed jobs, kept out of the state database.

The database stores each job's task with its secrets redacted. The values, which the controller
needs to launch and to relaunch after preemption, live in a file readable only by the user
(``$STYX_HOME/jobs/secrets/<job id>.json``, mode 0600) that is deleted when the job ends
(:mod:`styx.state.secret_files`, shared with services).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from styx.state import secret_files
from styx.state.secret_files import REDACTED, split

__all__ = ["REDACTED", "forget", "restore", "save", "split"]


def save(job_id: int, values: Mapping[str, str]) -> None:
    """Keep a job's secret values (nothing is written when there are none)."""
    secret_files.save("jobs", str(job_id), values)


def restore(job_id: int, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with its redacted secrets filled in again from the job's file."""
    return secret_files.restore("jobs", str(job_id), spec)


def forget(job_id: int) -> None:
    """Delete a finished job's secret values."""
    secret_files.forget("jobs", str(job_id))
