"""The controller as a local daemon, started on demand by ``styx jobs launch``.

One daemon per Styx home: it holds an exclusive ``flock`` on ``<home>/jobs/controller.lock``
(a second one exits at once), writes its pid next to it and logs to ``controller.log``. It
drives jobs until none is active for ``STYX_JOBS_IDLE_EXIT`` seconds (default 60), then exits.
``STYX_JOBS_BACKEND=memory`` selects the IN-MEMORY SIMULATED backend (tests, demos).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import subprocess
import sys
from pathlib import Path

from styx import paths


def jobs_dir() -> Path:
    """Where the daemon keeps its lock, pid and log."""
    d = paths.home() / "jobs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def is_running() -> bool:
    """True when a daemon holds the lock."""
    with open(jobs_dir() / "controller.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def ensure_running() -> None:
    """Start the daemon in the background unless one is running."""
    if is_running():
        return
    log = open(jobs_dir() / "controller.log", "ab")  # noqa: SIM115  # handed to the child
    subprocess.Popen(
        [sys.executable, "-m", "styx.jobs.daemon"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()


async def _serve(idle_exit: float) -> None:
    from styx.jobs.backend import Backend, ClusterBackend, InMemoryBackend, SimScript
    from styx.jobs.controller import ACTIVE, Controller
    from styx.state import managed_jobs as repo
    from styx.state.db import Database

    db = Database.open()
    backend: Backend
    if os.environ.get("STYX_JOBS_BACKEND") == "memory":
        duration = float(os.environ.get("STYX_JOBS_SIM_DURATION", "1"))
        backend = InMemoryBackend(default=SimScript(duration=duration))
        poll = 0.2
    else:
        backend = ClusterBackend()
        poll = 10.0
    controller = Controller(db, backend, poll_interval=poll)
    task = asyncio.create_task(controller.run())
    idle_since: float | None = None
    loop = asyncio.get_running_loop()
    while not task.done():
        await asyncio.sleep(1)
        active = await asyncio.to_thread(repo.list_managed_jobs, db, statuses=ACTIVE, limit=1)
        if active:
            idle_since = None
        elif idle_since is None:
            idle_since = loop.time()
        elif loop.time() - idle_since > idle_exit:
            controller.stop()
    await task


def main() -> int:
    """Run the daemon in this process (exits 0 at once when another one runs)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    lock = open(jobs_dir() / "controller.lock", "a+")  # noqa: SIM115  # held for our lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0
    (jobs_dir() / "controller.pid").write_text(str(os.getpid()))
    asyncio.run(_serve(float(os.environ.get("STYX_JOBS_IDLE_EXIT", "60"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
