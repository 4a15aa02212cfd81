"""The controller as a local daemon, started on demand by ``styx jobs`` commands.

One daemon per Styx home, in two processes. The *supervisor* holds an exclusive ``flock`` on
``<home>/jobs/controller.lock`` (a second daemon exits at once) and runs the *controller* as its
child, which inherits the locked file, so the lock is held while either lives. When the
controller dies abnormally (``kill -9``, a crash) the supervisor starts a new one, which resumes
every job from the database; when it exits after ``STYX_JOBS_IDLE_EXIT`` seconds (default 60)
with no active job, the supervisor exits too. Should both die, the next ``styx jobs`` command
that finds active jobs starts the daemon again.

``controller.pid`` holds the controller's pid, ``supervisor.pid`` the supervisor's;
both log to ``controller.log``. The lock and the restart loop are :mod:`styx.supervisor`'s,
shared with the head-node agent. ``STYX_JOBS_POLL_INTERVAL`` sets seconds between status checks
(default 10). ``STYX_JOBS_BACKEND=memory`` selects the IN-MEMORY SIMULATED backend (tests,
demos).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from styx import paths
from styx.supervisor import RestartPolicy, flock, is_locked, supervise

log = logging.getLogger("styx.jobs.daemon")
#: A controller that exits 0 (idle) ends the daemon; one that dies is restarted after 1 s,
#: unless it died 5 times within 60 s.
_CONTROLLER_RESTARTS = RestartPolicy(
    done_on_clean_exit=True, min_delay_s=1.0, max_delay_s=1.0, max_crashes=5, crash_window_s=60.0
)


def jobs_dir() -> Path:
    """Where the daemon keeps its lock, pids and log."""
    d = paths.home() / "jobs"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def is_running() -> bool:
    """True when a daemon (supervisor or controller) holds the lock."""
    return is_locked(jobs_dir() / "controller.lock")


def ensure_running() -> bool:
    """Start the daemon in the background unless one is running; True when started."""
    if is_running():
        return False
    log_file = open(jobs_dir() / "controller.log", "ab")  # noqa: SIM115  # handed to the child
    subprocess.Popen(
        [sys.executable, "-m", "styx.jobs.daemon"],
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=log_file,
        start_new_session=True,
    )
    log_file.close()
    return True


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
    poll = float(os.environ.get("STYX_JOBS_POLL_INTERVAL") or poll)
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


def _controller_main() -> int:
    (jobs_dir() / "controller.pid").write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(_serve(float(os.environ.get("STYX_JOBS_IDLE_EXIT", "60"))))
    return 0


def _supervise(lock_fd: int) -> int:
    """Run controllers one after another until one exits cleanly (idle); SIGTERM stops the
    running one (it resumes its jobs on the next start)."""

    def spawn() -> subprocess.Popen[bytes]:
        # The controller inherits the locked file, so the lock is held while either lives.
        return subprocess.Popen(
            [sys.executable, "-m", "styx.jobs.daemon", "--controller"], pass_fds=(lock_fd,)
        )

    (jobs_dir() / "supervisor.pid").write_text(str(os.getpid()))
    return supervise(spawn, _CONTROLLER_RESTARTS)


def main(argv: list[str] | None = None) -> int:
    """Run the daemon here (exits 0 at once when another one runs)."""
    args = sys.argv[1:] if argv is None else argv
    os.umask(0o077)  # its logs and the jobs' saved output are this user's alone
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args == ["--controller"]:
        return _controller_main()
    with flock(jobs_dir() / "controller.lock", blocking=False) as lock_fd:
        if lock_fd is None:
            return 0  # another daemon runs
        return _supervise(lock_fd)


if __name__ == "__main__":
    sys.exit(main())
