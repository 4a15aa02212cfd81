"""Managed jobs and DAG runs: queued in the state database, driven by a controller daemon.

This package is also the SDK's ``styx.jobs``, as SkyPilot's ``sky.jobs``::

    submitted = styx.jobs.launch(styx.Task(run="python train.py"), name="train")
    styx.jobs.queue().jobs                    # every managed job's row
    for chunk in styx.jobs.logs(submitted.job_ids[0]):  # followed to the job's end
        print(chunk, end="")
    styx.jobs.wait(job_id)                    # the job's record once it has ended
    styx.jobs.cancel([job_id])

The functions are those of :mod:`styx.jobs.api` (which ``styx jobs ...`` calls too), loaded on
first use so that importing a submodule (the controller, the daemon) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from styx.jobs.api import (
        ControllerState,
        Queue,
        Submitted,
        cancel,
        job,
        launch,
        logs,
        queue,
        wait,
    )
    from styx.jobs.api import logs as tail_logs


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'styx.jobs' has no attribute {name!r}")
    from styx.jobs import api

    return getattr(api, "logs" if name == "tail_logs" else name)


__all__ = [
    "ControllerState", "Queue", "Submitted", "cancel", "job", "launch", "logs", "queue",
    "tail_logs", "wait",
]  # fmt: skip
